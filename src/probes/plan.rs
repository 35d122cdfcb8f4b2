//! A healthcheck turned into a runnable probe: the strategy's validated settings, the compiled
//! assertions and the systems that receive each run's results.

use std::time::Duration;

use super::assertions::{self, AssertionSite, CompiledAssertion, Observation};
use super::http::{self, HttpProbe};
use super::reader::ConfigReader;
use super::script::{self, ScriptProbe};
use super::tcp::{self, TcpProbe};
use super::{Measurement, ProbeConfigError};
use crate::clock::{Clock, SystemClock};
use crate::config::Healthcheck;
use crate::engine::Timestamp;
use crate::series::{CheckResult, FieldValue, Status};

/// Time a run may take beyond the probe's own timeout before it is stopped from outside. Each
/// probe enforces its own timeout, so this only stops a probe that overruns it.
const RUN_GRACE: Duration = Duration::from_secs(2);

/// A strategy anomalyd runs itself.
pub(crate) struct Strategy {
    pub id: &'static str,
    /// Qualified id of the collector whose fields the probe reports.
    pub collector: &'static str,
    pub fields: &'static [&'static str],
    pub config_keys: &'static [&'static str],
}

pub(crate) const STRATEGIES: [Strategy; 3] = [
    Strategy {
        id: http::STRATEGY,
        collector: http::COLLECTOR,
        fields: http::FIELDS,
        config_keys: http::CONFIG_KEYS,
    },
    Strategy {
        id: tcp::STRATEGY,
        collector: tcp::COLLECTOR,
        fields: tcp::FIELDS,
        config_keys: tcp::CONFIG_KEYS,
    },
    Strategy {
        id: script::STRATEGY,
        collector: script::COLLECTOR,
        fields: script::FIELDS,
        config_keys: script::CONFIG_KEYS,
    },
];

pub(crate) fn strategy(id: &str) -> Option<&'static Strategy> {
    STRATEGIES.iter().find(|strategy| strategy.id == id)
}

#[derive(Debug)]
enum Probe {
    Http(HttpProbe),
    Tcp(TcpProbe),
    Script(ScriptProbe),
}

/// The results of one probe run and why the run was unhealthy.
#[derive(Debug)]
pub(crate) struct ProbeRun {
    /// One result per assigned system, all with the same status and fields.
    pub results: Vec<CheckResult>,
    /// The probe's error or the failed assertions, or `None` for a healthy run. It leaves out
    /// the request headers and body, the URL's credentials and query, and a command's arguments
    /// and environment.
    pub failure: Option<String>,
}

/// A validated probe for one healthcheck.
#[derive(Debug)]
pub(crate) struct ProbePlan {
    pub healthcheck: String,
    pub strategy: &'static str,
    pub collector: &'static str,
    /// Systems the healthcheck is assigned to; every run yields one result for each.
    pub systems: Vec<String>,
    pub interval_secs: u32,
    probe: Probe,
    assertions: Vec<CompiledAssertion>,
    /// Settings that were ignored, for example unknown keys.
    pub warnings: Vec<ProbeWarning>,
}

/// A setting the probe ignores, with the path of its key such as `config.timeot`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeWarning {
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ProbeWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ProbePlan {
    /// Validates the healthcheck's strategy config, the config of its matching collector and
    /// the collector's assertions.
    pub(crate) fn new(
        healthcheck: &Healthcheck,
        systems: Vec<String>,
    ) -> Result<Self, ProbeConfigError> {
        let name = healthcheck.name.as_str();
        let Some(strategy) = strategy(&healthcheck.strategy) else {
            let reason = format!(
                "`{}` is not a built-in probe strategy",
                healthcheck.strategy
            );
            return Err(ProbeConfigError::new(name, "strategy", reason));
        };
        let mut reader = ConfigReader::new(name).layer("config", &healthcheck.config)?;
        let mut assertions = Vec::new();
        let mut warnings = Vec::new();
        for (index, collector) in healthcheck.collectors.iter().enumerate() {
            if collector.collector_id != strategy.collector {
                warnings.push(ProbeWarning {
                    key: format!("collectors[{index}]"),
                    message: format!(
                        "collectors[{index}] `{}` is ignored: the built-in probe reports only `{}`",
                        collector.collector_id, strategy.collector
                    ),
                });
                continue;
            }
            reader = reader.layer(format!("collectors[{index}].config"), &collector.config)?;
            for (assertion_index, assertion) in collector.assertions.iter().enumerate() {
                let site = AssertionSite {
                    healthcheck: name,
                    collector_index: index,
                    assertion_index,
                };
                assertions.push(assertions::compile(assertion, strategy.fields, &site)?);
            }
        }
        for key in reader.unknown_keys(strategy.config_keys) {
            let name = key.rsplit('.').next().unwrap_or(&key);
            let hint = crate::suggest::closest(name, strategy.config_keys.iter().copied())
                .map(|known| format!("; did you mean `{known}`?"))
                .unwrap_or_default();
            warnings.push(ProbeWarning {
                message: format!(
                    "`{key}` is not a setting of `{}` and is ignored{hint}",
                    strategy.id
                ),
                key,
            });
        }
        Ok(Self {
            healthcheck: healthcheck.name.clone(),
            strategy: strategy.id,
            collector: strategy.collector,
            systems,
            interval_secs: healthcheck.interval_secs.max(1),
            probe: build_probe(strategy.id, &reader)?,
            assertions,
            warnings,
        })
    }

    /// Returns the probe's own timeout of one run.
    pub(crate) fn timeout(&self) -> Duration {
        match &self.probe {
            Probe::Http(probe) => probe.timeout,
            Probe::Tcp(probe) => probe.timeout,
            Probe::Script(probe) => probe.timeout,
        }
    }

    /// Runs the probe once and returns one result per system, timestamped at the start.
    pub(crate) async fn run(&self, client: &reqwest::Client) -> ProbeRun {
        let timestamp = SystemClock.now();
        let limit = self.timeout() + RUN_GRACE;
        let measurement = match tokio::time::timeout(limit, self.measure(client)).await {
            Ok(measurement) => measurement,
            Err(_) => Measurement {
                fields: Vec::new(),
                body: None,
                failure: Some(format!(
                    "run exceeded {} ms and was stopped",
                    limit.as_millis()
                )),
                elapsed: limit,
            },
        };
        let verdict = self.verdict(&measurement);
        if let Err(reason) = &verdict {
            tracing::debug!(healthcheck = %self.healthcheck, error = %reason, "probe run unhealthy");
        }
        ProbeRun {
            results: self.results(&measurement, verdict.is_ok(), timestamp),
            failure: verdict.err(),
        }
    }

    async fn measure(&self, client: &reqwest::Client) -> Measurement {
        match &self.probe {
            Probe::Http(probe) => probe.run(client).await,
            Probe::Tcp(probe) => probe.run().await,
            Probe::Script(probe) => probe.run().await,
        }
    }

    /// Returns why the run is unhealthy: the probe failed, or assertions did.
    pub(crate) fn verdict(&self, measurement: &Measurement) -> Result<(), String> {
        if let Some(failure) = &measurement.failure {
            return Err(failure.clone());
        }
        let observation = Observation {
            fields: &measurement.fields,
            body: measurement.body.as_deref(),
        };
        let failures: Vec<String> = self
            .assertions
            .iter()
            .filter_map(|assertion| assertion.evaluate(&observation).err())
            .collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }

    /// Builds one result per assigned system from a measurement and its verdict.
    pub(crate) fn results(
        &self,
        measurement: &Measurement,
        healthy: bool,
        timestamp: Timestamp,
    ) -> Vec<CheckResult> {
        let fields: Vec<FieldValue> = measurement
            .fields
            .iter()
            .map(|(field, value)| FieldValue {
                collector_id: self.collector.to_owned(),
                field: (*field).to_owned(),
                value: value.clone(),
            })
            .collect();
        let status = if healthy {
            Status::Healthy
        } else {
            Status::Unhealthy
        };
        self.systems
            .iter()
            .map(|system| CheckResult {
                system: system.clone(),
                healthcheck: self.healthcheck.clone(),
                environment: None,
                status,
                timestamp,
                latency_ms: Some(measurement.elapsed.as_secs_f64() * 1000.0),
                fields: fields.clone(),
            })
            .collect()
    }
}

fn build_probe(strategy: &str, reader: &ConfigReader<'_>) -> Result<Probe, ProbeConfigError> {
    let probe = match strategy {
        http::STRATEGY => Probe::Http(HttpProbe::from_config(reader)?),
        tcp::STRATEGY => Probe::Tcp(TcpProbe::from_config(reader)?),
        script::STRATEGY => Probe::Script(ScriptProbe::from_config(reader)?),
        other => unreachable!("`{other}` is not in STRATEGIES, which lists only these three"),
    };
    Ok(probe)
}
