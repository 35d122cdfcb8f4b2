//! The probe schedule: one task per runnable healthcheck, kept in step with the configuration
//! snapshot, with jittered start times and a global limit on concurrent runs.

use std::collections::BTreeMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use super::plan::ProbePlan;
use super::{ProbeConfigError, is_supported};
use crate::config::{CollectorInstance, ConfigSnapshot, Healthcheck};
use crate::http_client::ClientError;
use crate::series::CheckResult;

/// How long the same config error of a healthcheck stays quiet after it was logged.
const CONFIG_WARNING_PERIOD: Duration = Duration::from_secs(600);

/// Maximum random delay added to the start of each run after the first.
const MAX_RUN_OFFSET: Duration = Duration::from_secs(1);

/// Settings of the probe schedule.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Runs in progress at once across all checks; further runs wait for a slot.
    pub max_concurrent_runs: usize,
    /// Length of one unit of `intervalSeconds`: one second in the service. Tests shorten it to
    /// run checks several times a second, which the YAML format cannot express.
    pub interval_unit: Duration,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            max_concurrent_runs: 16,
            interval_unit: Duration::from_secs(1),
        }
    }
}

/// The running probes. Dropping this value stops them as well, without waiting.
#[derive(Debug)]
pub struct Probes {
    shutdown: Option<oneshot::Sender<()>>,
    reconciler: JoinHandle<()>,
}

impl Probes {
    /// Starts a probe for every runnable healthcheck in `config` and keeps the set in step with
    /// each new snapshot; results go to `sink`. Must be called inside a tokio runtime.
    ///
    /// ```no_run
    /// use std::sync::Arc;
    ///
    /// use anomalyd::config::ConfigSnapshot;
    /// use anomalyd::probes::{ProbeOptions, Probes};
    /// use tokio::sync::{mpsc, watch};
    ///
    /// # async fn serve(config: watch::Receiver<Arc<ConfigSnapshot>>) {
    /// let (sink, mut results) = mpsc::channel(256);
    /// let probes = Probes::start(config, sink, ProbeOptions::default()).expect("TLS setup works");
    /// while let Some(result) = results.recv().await {
    ///     // Hand `result` to the same ingest path as results posted to the API.
    ///     # drop(result);
    /// }
    /// probes.stop().await;
    /// # }
    /// ```
    pub fn start(
        config: watch::Receiver<Arc<ConfigSnapshot>>,
        sink: mpsc::Sender<CheckResult>,
        options: ProbeOptions,
    ) -> Result<Self, ClientError> {
        let shared = Arc::new(Shared {
            client: super::client()?,
            permits: Semaphore::new(options.max_concurrent_runs.max(1)),
            sink,
            interval_unit: options.interval_unit,
        });
        let (shutdown, stopped) = oneshot::channel();
        let reconciler = Reconciler {
            shared,
            running: BTreeMap::new(),
            warned: BTreeMap::new(),
            health: BTreeMap::new(),
        };
        let reconciler = tokio::spawn(reconciler.run(config, stopped));
        Ok(Self {
            shutdown: Some(shutdown),
            reconciler,
        })
    }

    /// Stops every probe and waits until none is running; a program a probe started is killed.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // An error means the reconciler has already ended, which is the goal.
            let _ = shutdown.send(());
        }
        if let Err(error) = (&mut self.reconciler).await {
            tracing::error!(%error, "probe reconciler ended abnormally");
        }
    }
}

/// Resources every probe task uses.
struct Shared {
    client: reqwest::Client,
    permits: Semaphore,
    sink: mpsc::Sender<CheckResult>,
    interval_unit: Duration,
}

/// The parts of the configuration that decide how a probe runs; a probe restarts when they
/// change. Anomaly settings are not among them, since the detector reads them per result.
#[derive(Debug, Clone, PartialEq)]
struct Definition {
    strategy: String,
    interval_secs: u32,
    config: serde_json::Value,
    collectors: Vec<CollectorInstance>,
    systems: Vec<String>,
}

/// Outcome of a check's latest probe run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum RunHealth {
    #[default]
    NotRun,
    Healthy,
    Unhealthy,
}

/// A probe task and the definition it was started from.
struct Running {
    definition: Definition,
    task: JoinHandle<()>,
}

/// Starts, restarts and stops probe tasks as the configuration changes.
struct Reconciler {
    shared: Arc<Shared>,
    running: BTreeMap<String, Running>,
    /// The last config error logged per healthcheck and when.
    warned: BTreeMap<String, (ProbeConfigError, Instant)>,
    /// Outcome of the latest run per healthcheck. It outlives a restart of the probe, so a
    /// config change that fixes a failing check logs the recovery.
    health: BTreeMap<String, Arc<Mutex<RunHealth>>>,
}

impl Reconciler {
    async fn run(
        mut self,
        mut config: watch::Receiver<Arc<ConfigSnapshot>>,
        mut stopped: oneshot::Receiver<()>,
    ) {
        loop {
            let snapshot = config.borrow_and_update().clone();
            self.reconcile(&snapshot).await;
            tokio::select! {
                changed = config.changed() => {
                    if changed.is_err() {
                        // Without a sender the configuration is final: keep running until stopped.
                        let _ = (&mut stopped).await;
                        break;
                    }
                }
                _ = &mut stopped => break,
            }
        }
        self.stop_all().await;
    }

    async fn reconcile(&mut self, snapshot: &ConfigSnapshot) {
        let runnable_checks = runnable(snapshot);
        let removed: Vec<String> = self
            .running
            .keys()
            .filter(|name| !runnable_checks.contains_key(name.as_str()))
            .cloned()
            .collect();
        for name in removed {
            let interval_secs = self.stop(&name).await;
            tracing::info!(
                healthcheck = %name,
                interval_secs,
                "probe stopped: check removed, assigned to no system, or its strategy is not built in"
            );
        }
        self.warned
            .retain(|name, _| runnable_checks.contains_key(name.as_str()));
        self.health
            .retain(|name, _| runnable_checks.contains_key(name.as_str()));
        for (name, (healthcheck, definition)) in runnable_checks {
            self.apply(name, healthcheck, definition).await;
        }
    }

    /// Starts the probe of one healthcheck, or restarts it when its definition changed.
    async fn apply(&mut self, name: &str, healthcheck: &Healthcheck, definition: Definition) {
        let previous = self.running.get(name).map(|running| &running.definition);
        if previous == Some(&definition) {
            return;
        }
        let stopped_interval_secs = self.stop(name).await;
        match ProbePlan::new(healthcheck, definition.systems.clone()) {
            Ok(plan) => self.spawn(plan, definition, stopped_interval_secs.is_some()),
            Err(error) => {
                if let Some(interval_secs) = stopped_interval_secs {
                    tracing::info!(
                        healthcheck = %name,
                        interval_secs,
                        "probe stopped: its changed config is invalid"
                    );
                }
                self.warn_invalid(error);
            }
        }
    }

    fn spawn(&mut self, plan: ProbePlan, definition: Definition, restarting: bool) {
        let interval = self.shared.interval_unit * plan.interval_secs;
        for warning in &plan.warnings {
            tracing::warn!(healthcheck = %plan.healthcheck, "{warning}");
        }
        let change = if restarting { "restarted" } else { "started" };
        tracing::info!(
            healthcheck = %plan.healthcheck,
            strategy = plan.strategy,
            interval_secs = plan.interval_secs,
            systems = plan.systems.len(),
            change,
            "probe running"
        );
        self.warned.remove(&plan.healthcheck);
        let name = plan.healthcheck.clone();
        let health = self.health.entry(name.clone()).or_default().clone();
        let span = tracing::info_span!("probe", healthcheck = %name);
        let probe = run_probe(Arc::new(plan), self.shared.clone(), health, interval);
        let task = tokio::spawn(probe.instrument(span));
        self.running.insert(name, Running { definition, task });
    }

    /// Logs a config error unless the same error was logged for the check recently.
    fn warn_invalid(&mut self, error: ProbeConfigError) {
        let now = Instant::now();
        let recent = self
            .warned
            .get(&error.healthcheck)
            .is_some_and(|(previous, at)| {
                *previous == error && now.duration_since(*at) < CONFIG_WARNING_PERIOD
            });
        if recent {
            return;
        }
        tracing::warn!(healthcheck = %error.healthcheck, key = %error.key, %error, "probe not started");
        self.warned.insert(error.healthcheck.clone(), (error, now));
    }

    /// Stops the task of one check and waits until it has ended, so a check never runs twice.
    /// Returns the interval of the stopped probe, or `None` when none was running.
    async fn stop(&mut self, name: &str) -> Option<u32> {
        let running = self.running.remove(name)?;
        running.task.abort();
        // The task was aborted on purpose, so its cancellation error carries no news.
        let _ = running.task.await;
        Some(running.definition.interval_secs)
    }

    async fn stop_all(&mut self) {
        let names: Vec<String> = self.running.keys().cloned().collect();
        for name in names {
            self.stop(&name).await;
        }
        tracing::info!("all probes stopped");
    }
}

/// Returns the healthchecks the probes should run: a built-in strategy and at least one
/// assigned system.
fn runnable(snapshot: &ConfigSnapshot) -> BTreeMap<&str, (&Healthcheck, Definition)> {
    let mut runnable_checks = BTreeMap::new();
    for healthcheck in snapshot.healthchecks.values() {
        if !is_supported(&healthcheck.strategy) {
            continue;
        }
        let systems: Vec<String> = snapshot
            .systems
            .values()
            .filter(|system| system.healthchecks.contains(&healthcheck.name))
            .map(|system| system.name.clone())
            .collect();
        if systems.is_empty() {
            continue;
        }
        let definition = Definition {
            strategy: healthcheck.strategy.clone(),
            interval_secs: healthcheck.interval_secs,
            config: healthcheck.config.clone(),
            collectors: healthcheck.collectors.clone(),
            systems,
        };
        runnable_checks.insert(healthcheck.name.as_str(), (healthcheck, definition));
    }
    runnable_checks
}

/// Runs one check on its interval until aborted or until the sink closes. The first run falls
/// at a random point of the first interval so that checks loaded together spread out. Each
/// later run starts one interval after the previous scheduled start plus a small random offset,
/// and a run is awaited before the next is scheduled.
async fn run_probe(
    plan: Arc<ProbePlan>,
    shared: Arc<Shared>,
    health: Arc<Mutex<RunHealth>>,
    interval: Duration,
) {
    let mut scheduled = Instant::now() + interval.mul_f64(random_fraction());
    let mut start = scheduled;
    loop {
        tokio::time::sleep_until(start).await;
        let run = {
            let _permit = shared
                .permits
                .acquire()
                .await
                .expect("the semaphore is never closed");
            plan.run(&shared.client).await
        };
        log_health_change(&plan, &health, run.failure.as_deref());
        for result in run.results {
            if shared.sink.send(result).await.is_err() {
                tracing::info!("probe stopped: the result sink is closed");
                return;
            }
        }
        // A run longer than the interval delays the next one instead of starting a backlog.
        scheduled = (scheduled + interval).max(Instant::now());
        start = scheduled + run_offset(interval);
    }
}

/// Logs a warning when a check's runs turn unhealthy, after healthy runs or none, and an info
/// line when they turn healthy again. A check that keeps failing therefore logs once, not on
/// every run. `failure` is the reason of an unhealthy run, which leaves out the request headers
/// and body, the URL's credentials and query, and a command's arguments and environment.
fn log_health_change(plan: &ProbePlan, health: &Mutex<RunHealth>, failure: Option<&str>) {
    let current = match failure {
        Some(_) => RunHealth::Unhealthy,
        None => RunHealth::Healthy,
    };
    let previous = {
        let mut last = health.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *last, current)
    };
    let systems = plan.systems.join(", ");
    match (previous, failure) {
        (RunHealth::NotRun | RunHealth::Healthy, Some(error)) => tracing::warn!(
            systems,
            healthcheck = %plan.healthcheck,
            strategy = plan.strategy,
            error,
            "probe run unhealthy, and later failures are logged at debug level until a run is healthy"
        ),
        (RunHealth::Unhealthy, None) => tracing::info!(
            systems,
            healthcheck = %plan.healthcheck,
            strategy = plan.strategy,
            "probe run healthy again"
        ),
        _ => {}
    }
}

/// Returns a random delay of up to 5 % of the interval, at most [`MAX_RUN_OFFSET`].
fn run_offset(interval: Duration) -> Duration {
    (interval / 20)
        .min(MAX_RUN_OFFSET)
        .mul_f64(random_fraction())
}

/// Returns a random number in `[0, 1)`. The standard library gives every new `RandomState`
/// different SipHash keys, which is random enough to spread start times without a dependency.
fn random_fraction() -> f64 {
    let bits = RandomState::new().hash_one(0_u8) >> 11;
    bits as f64 / (1_u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_fraction_stays_in_range() {
        let fractions: Vec<f64> = (0..1000).map(|_| random_fraction()).collect();
        assert!(
            fractions
                .iter()
                .all(|fraction| (0.0..1.0).contains(fraction))
        );
        let distinct = fractions
            .iter()
            .filter(|fraction| **fraction != fractions[0])
            .count();
        assert!(
            distinct > 900,
            "only {distinct} fractions differ from the first"
        );
    }

    #[test]
    fn run_offset_is_bounded() {
        for _ in 0..100 {
            assert!(run_offset(Duration::from_secs(10)) <= Duration::from_millis(500));
            assert!(run_offset(Duration::from_secs(3600)) <= MAX_RUN_OFFSET);
        }
    }
}
