//! anomalyd learns per-field baselines of health-check results and reports spikes, categorical
//! flips and slow drift against them.
//!
//! - [`engine`]: pure statistics, rules, effective settings and state machines.
//! - [`config`]: the validated configuration model shared by the YAML folder and the API.
//! - [`series`]: series identity and the validated check result every input produces.
//! - [`events`]: events published after commit, with a replay buffer for reconnecting clients.
//! - [`ingest`]: parsing and validation of result bodies in both accepted shapes.
//! - [`store`]: the redb data file: tables, layout versions, writes and read queries.
//! - [`views`]: the JSON forms of stored entities for the API and the event stream.

pub mod config;
pub mod engine;
pub mod events;
pub mod ingest;
pub mod series;
pub mod store;
pub mod views;
