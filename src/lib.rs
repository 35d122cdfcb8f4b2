//! anomalyd learns per-field baselines of health-check results and reports spikes, categorical
//! flips and slow drift against them.
//!
//! - [`engine`]: pure statistics, rules, effective settings and state machines.
//! - [`config`]: the validated configuration model shared by the YAML folder and the API.

pub mod config;
pub mod engine;
