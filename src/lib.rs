//! anomalyd learns per-field baselines of health-check results and reports spikes, categorical
//! flips and slow drift against them.
//!
//! - [`engine`]: pure statistics, rules, effective settings and state machines.
//! - [`config`]: the validated configuration model shared by the YAML folder and the API.
//! - [`api_settings`]: settings made through the API, their table and their merge into the config.
//! - [`gitops`]: the YAML config folder: parsing, validation, the last good state and the watcher.
//! - [`series`]: series identity and the validated check result every input produces.
//! - [`clock`]: the source of "now": the system clock, or a manual one for tests and replay.
//! - [`detector`]: per-series detection state and the inline step each check result goes through.
//! - [`analyzer`]: the hourly baseline and drift run over stored hourly summaries, and its schedule.
//! - [`retention`]: which samples, summaries, anomalies and series have expired.
//! - [`ingest`]: parsing and validation of result bodies in both accepted shapes.
//! - [`store`]: the redb data file: tables, layout versions, writes and read queries.
//! - [`writer`]: the single writer thread: group commit of results, suppression and analyzer runs.
//! - [`notify`]: notifications: the durable outbox, mutes and the delivery worker.
//! - [`http`]: routes, the results endpoint, the read API, suppression and the event stream.
//! - [`server`]: `serve` as a library call on a given listener, with orderly shutdown.
//! - [`events`]: events published after commit, with a replay buffer for reconnecting clients.
//! - [`views`]: the JSON forms of stored entities for the API and the event stream.
//! - [`probes`]: the built-in HTTP, TCP and command probes and their schedule.
//! - [`http_client`]: the outbound HTTP client settings shared by probes and notifiers.
//! - [`heap`]: returning freed heap memory to the kernel after bursts of work.
//! - [`systemd`]: READY, STOPPING, the status line and health-checked watchdog pings.
//! - [`metrics`]: the Prometheus text exposition of `GET /metrics`.
//! - [`replay`]: `anomalyd replay`, the detector and analyzer over a recorded series in event time.

pub mod analyzer;
pub mod api_settings;
pub mod clock;
pub mod config;
pub mod detector;
pub mod engine;
pub mod events;
pub mod gitops;
pub mod heap;
pub mod http;
pub mod http_client;
pub mod ingest;
pub mod metrics;
pub mod notify;
pub mod probes;
pub mod replay;
pub mod retention;
pub mod series;
pub mod server;
pub mod store;
pub mod suggest;
pub mod systemd;
pub mod views;
pub mod writer;
