//! anomalyd learns per-field baselines of health-check results and reports spikes, categorical
//! flips and slow drift against them.
//!
//! - [`engine`]: pure statistics, rules, effective settings and state machines.
//! - [`config`]: the validated configuration model shared by the YAML folder and the API.
//! - [`gitops`]: the YAML config folder: parsing, validation, the last good state and the watcher.
//! - [`series`]: series identity and the validated check result every input produces.

pub mod config;
pub mod engine;
pub mod gitops;
pub mod series;
