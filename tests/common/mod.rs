//! Helpers shared by the integration tests: configuration builders and a harness that feeds
//! results through a detector and an in-memory history and runs the analyzer at hour
//! boundaries, as the service does.
#![allow(dead_code)]

use std::collections::BTreeMap;

use anomalyd::analyzer::{self, AnalyzerRun, HourBoundaries, MemoryHistory};
use anomalyd::config::{ConfigSnapshot, Healthcheck, Source};
use anomalyd::detector::Detector;
use anomalyd::engine::{
    BaselineWindow, FieldOverride, Sample, Summary, TemplateSettings, Timestamp, Value,
};
use anomalyd::series::{CheckResult, FieldValue, SeriesKey, Status};

pub const HEALTHCHECK: &str = "api";
pub const COLLECTOR: &str = "custom.probe";
pub const FIELD: &str = "latencyMs";
pub const PATH: &str = "collectors.custom.probe.latencyMs";
pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Builds a configuration whose `api` healthcheck template has `window` and one field override.
pub fn config(window: &str, field_override: FieldOverride) -> ConfigSnapshot {
    config_with(window, true, field_override)
}

pub fn config_with(window: &str, enabled: bool, field_override: FieldOverride) -> ConfigSnapshot {
    let template = TemplateSettings {
        enabled,
        baseline_window: BaselineWindow::parse(window).expect("valid window"),
        notify: true,
        field_overrides: BTreeMap::from([(PATH.to_owned(), field_override)]),
    };
    let healthcheck = Healthcheck {
        name: HEALTHCHECK.into(),
        title: None,
        strategy: "push".into(),
        interval_secs: 60,
        config: serde_json::Value::Null,
        collectors: Vec::new(),
        anomaly: Some(template),
        source: Source::Api,
    };
    ConfigSnapshot {
        healthchecks: BTreeMap::from([(HEALTHCHECK.to_owned(), healthcheck)]),
        ..ConfigSnapshot::default()
    }
}

pub fn key(system: &str) -> SeriesKey {
    SeriesKey {
        system: system.into(),
        healthcheck: HEALTHCHECK.into(),
        environment: None,
        field_path: PATH.into(),
    }
}

pub fn result(system: &str, at_ms: i64, status: Status, value: Value) -> CheckResult {
    CheckResult {
        system: system.into(),
        healthcheck: HEALTHCHECK.into(),
        environment: None,
        status,
        timestamp: Timestamp(at_ms),
        latency_ms: None,
        fields: vec![FieldValue {
            collector_id: COLLECTOR.into(),
            field: FIELD.into(),
            value,
        }],
    }
}

/// Builds a summary of numeric samples.
pub fn summary(values: impl IntoIterator<Item = f64>) -> Summary {
    let samples: Vec<Sample> = values.into_iter().map(Sample::Number).collect();
    Summary::of(&samples)
}

/// `n` samples starting at `start`, moving `step` per sample.
pub fn ramp(n: usize, start: f64, step: f64) -> Vec<f64> {
    (0..n).map(|i| start + step * i as f64).collect()
}

/// A deterministic uniform noise source in `[-amplitude, amplitude]`.
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self, amplitude: f64) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let unit = (self.0 >> 11) as f64 / (1_u64 << 53) as f64;
        (unit * 2.0 - 1.0) * amplitude
    }
}

/// Detector, history and analyzer wired as the service wires them.
pub struct Harness {
    pub config: ConfigSnapshot,
    pub detector: Detector,
    pub history: MemoryHistory,
    boundaries: HourBoundaries,
    next_id: u64,
}

impl Harness {
    pub fn new(config: ConfigSnapshot) -> Self {
        Self {
            config,
            detector: Detector::new(),
            history: MemoryHistory::new(),
            boundaries: HourBoundaries::new(),
            next_id: 0,
        }
    }

    /// Runs the analyzer at every hour boundary crossed since the previous result, then
    /// processes the result. Returns the analyzer runs.
    pub fn push(&mut self, result: &CheckResult) -> Vec<AnalyzerRun> {
        let runs = self
            .boundaries
            .crossed(result.timestamp)
            .into_iter()
            .map(|at| self.run_at(at))
            .collect();
        self.process(result);
        runs
    }

    /// Processes a result without running the analyzer.
    pub fn process(&mut self, result: &CheckResult) {
        let next_id = &mut self.next_id;
        let mut ids = || {
            *next_id += 1;
            *next_id
        };
        for mut update in self.detector.process(result, &self.config, &mut ids) {
            if let Some(hour) = update.hour.take() {
                self.history.record(&update.key, hour);
            }
        }
    }

    pub fn run_at(&mut self, at: Timestamp) -> AnalyzerRun {
        let next_id = &mut self.next_id;
        let mut ids = || {
            *next_id += 1;
            *next_id
        };
        let Ok(run) = analyzer::run(
            at,
            &self.history,
            &self.config,
            &mut self.detector,
            &mut ids,
        );
        run
    }
}
