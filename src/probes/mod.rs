//! Built-in probes: anomalyd itself runs each healthcheck whose strategy it implements (HTTP, TCP,
//! command) on the check's interval and sends one result per assigned system into the same
//! pipeline as pushed results.
//!
//! [`Probes::start`] is the entry point. It follows a `watch` channel of configuration snapshots,
//! starts, restarts and stops one task per check as the snapshot changes, and sends every result
//! to an `mpsc` sink. Healthchecks with any other strategy stay templates for pushed results,
//! and [`is_supported`] reports which is which to the settings page.
//!
//! Each strategy reports the fields of the matching built-in collector, so the catalogue's
//! anomaly annotations apply:
//!
//! | Strategy | Collector | Fields |
//! |---|---|---|
//! | `healthcheck-http.http` | `healthcheck-http.request` | statusCode, statusText, responseTimeMs, bodyLength, success |
//! | `healthcheck-tcp.tcp` | `healthcheck-tcp.banner` | readTimeMs, hasBanner, banner |
//! | `healthcheck-script.execute` | `healthcheck-script.execute` | exitCode, executionTimeMs, success, timedOut, stdout, stderr |
//!
//! Settings (timeouts in milliseconds):
//!
//! | Strategy | Keys |
//! |---|---|
//! | HTTP | `url` (required), `method` (GET), `headers` (map or list of `{name, value}`), `body`, `timeout` (10 000), `expectedStatus` |
//! | TCP | `host` and `port` (required), `timeout` (10 000), `readBanner` (false) |
//! | command | `command` (required, run without a shell), `args`, `timeout` (30 000), `cwd`, `env` |
//!
//! Settings are read from the healthcheck's `config`, overlaid key by key by the `config` of
//! the collector entry with the matching id, because Checkstack keeps the HTTP request settings
//! on the collector. A run is unhealthy when the probe fails (connection error, timeout) or an
//! assertion fails. `success: false` alone does not make a run unhealthy, so that the dominance
//! rule on `success` sees the flip in healthy runs.

mod assertions;
mod http;
mod plan;
mod reader;
mod schedule;
mod script;
mod tcp;

use std::time::Duration;

pub use schedule::{ProbeOptions, Probes};

use crate::config::Healthcheck;
use crate::engine::Value;
use crate::http_client::{self, ClientError};
use crate::series::CheckResult;
use plan::ProbePlan;
pub use plan::ProbeWarning;

/// Strategy ids of the built-in probes.
pub const STRATEGIES: [&str; 3] = [http::STRATEGY, tcp::STRATEGY, script::STRATEGY];

/// Upper bound of one HTTP request of the shared probe client; each probe sets its own, shorter
/// timeout per request.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(3600);

/// A healthcheck's probe settings are invalid, so the check does not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid probe config in healthcheck `{healthcheck}`: `{key}` {reason}")]
pub struct ProbeConfigError {
    pub healthcheck: String,
    /// Path of the offending key, for example `collectors[0].config.url`.
    pub key: String,
    pub reason: String,
}

impl ProbeConfigError {
    pub(crate) fn new(
        healthcheck: &str,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            healthcheck: healthcheck.to_owned(),
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Returns whether anomalyd runs checks of `strategy` itself; other strategies only receive
/// pushed results.
pub fn is_supported(strategy: &str) -> bool {
    plan::strategy(strategy).is_some()
}

/// Checks a healthcheck's probe settings and assertions without running it.
pub fn validate(healthcheck: &Healthcheck) -> Result<(), ProbeConfigError> {
    check(healthcheck).map(drop)
}

/// Checks a healthcheck's probe settings and assertions without running it, and returns the
/// warnings the probe would log when it starts (ignored settings and collectors).
pub fn check(healthcheck: &Healthcheck) -> Result<Vec<ProbeWarning>, ProbeConfigError> {
    ProbePlan::new(healthcheck, Vec::new()).map(|plan| plan.warnings)
}

/// Builds the HTTP client probes use: the shared settings, and no idle connections kept, so
/// every run measures a fresh connection.
pub fn client() -> Result<reqwest::Client, ClientError> {
    Ok(http_client::builder(CLIENT_TIMEOUT)
        .pool_max_idle_per_host(0)
        .build()?)
}

/// Runs a healthcheck's probe once, outside any schedule, and returns one result per system.
pub async fn run_once(
    healthcheck: &Healthcheck,
    systems: &[String],
    client: &reqwest::Client,
) -> Result<Vec<CheckResult>, ProbeConfigError> {
    let plan = ProbePlan::new(healthcheck, systems.to_vec())?;
    Ok(plan.run(client).await.results)
}

/// The observations of one probe run.
#[derive(Debug)]
pub(crate) struct Measurement {
    /// Reported fields of the strategy's collector.
    pub fields: Vec<(&'static str, Value)>,
    /// The HTTP response body, for assertions only: it never leaves the probe.
    pub body: Option<String>,
    /// The reason the probe failed. A failed run is unhealthy.
    pub failure: Option<String>,
    pub elapsed: Duration,
}
