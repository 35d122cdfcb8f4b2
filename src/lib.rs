//! anomalyd learns per-field baselines of health-check results and reports spikes, categorical
//! flips and slow drift against them.
//!
//! - [`engine`]: pure statistics, rules, effective settings and state machines.
//! - [`config`]: the validated configuration model shared by the YAML folder and the API.
//! - [`series`]: series identity and the validated check result every input produces.
//! - [`clock`]: the source of "now": the system clock, or a manual one for tests and replay.
//! - [`detector`]: per-series detection state and the inline step each check result goes through.
//! - [`analyzer`]: the hourly baseline and drift run over stored hourly summaries, and its schedule.
//! - [`retention`]: which samples, summaries, anomalies and series have expired.
//! - [`probes`]: the built-in HTTP, TCP and command probes and their schedule.
//! - [`http_client`]: the outbound HTTP client settings shared by probes and notifiers.
//! - [`replay`]: `anomalyd replay`, the detector and analyzer over a recorded series in event time.

pub mod analyzer;
pub mod clock;
pub mod config;
pub mod detector;
pub mod engine;
pub mod http_client;
pub mod probes;
pub mod replay;
pub mod retention;
pub mod series;
