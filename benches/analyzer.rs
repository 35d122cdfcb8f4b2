//! Benchmark of one analyzer run over 10 000 series holding 7 days of hourly summaries at one
//! sample per minute, read from the in-memory history. It also measures the detector's memory
//! for 10 000 series.
//!
//! Run with `cargo bench --bench analyzer`. Prints wall time and resident memory (VmRSS, and
//! the peak VmHWM, from /proc/self/status).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use anomalyd::analyzer::{self, MemoryHistory};
use anomalyd::config::{ConfigSnapshot, Healthcheck, Source};
use anomalyd::detector::{Detector, HourSummary};
use anomalyd::engine::{
    BaselineWindow, Direction, FieldOverride, Sample, Summary, TemplateSettings, Timestamp, Value,
};
use anomalyd::series::{CheckResult, FieldValue, SeriesKey, Status};

const SERIES: usize = 10_000;
const HOURS: i64 = 7 * 24;
const SAMPLES_PER_HOUR: usize = 60;
const HOUR_MS: i64 = 3_600_000;
const PATH: &str = "collectors.custom.probe.latencyMs";
/// Distinct hourly shapes; series share them so the history fits in memory.
const PATTERNS: usize = 8;

fn main() {
    report_memory("start");
    println!("load average at start: {}", load_average());
    // The detector goes first, so its resident growth is not hidden by memory that the history
    // phases freed.
    bench_detector_memory();
    for (label, decimals) in [
        ("integer ms latencies", false),
        ("latencies with decimals", true),
    ] {
        bench_analyzer(label, decimals);
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn bench_analyzer(label: &str, decimals: bool) {
    let config = config();
    let history = history(decimals);
    report_memory(&format!("history built ({label})"));

    let mut detector = Detector::new();
    let mut next_id = 0;
    let mut ids = || {
        next_id += 1;
        next_id
    };
    let now = Timestamp(HOURS * HOUR_MS);
    let started = Instant::now();
    let Ok(run) = analyzer::run(now, &history, &config, &mut detector, &mut ids);
    let elapsed = started.elapsed();
    println!(
        "analyzer, {label}: {} series, {} baselines, {} drift steps in {:.2} s",
        run.series,
        run.baselines.len(),
        run.drift.len(),
        elapsed.as_secs_f64()
    );
    report_memory(&format!("after analyzer run ({label})"));
}

/// 10 000 series, each with 168 hourly summaries of 60 samples drawn from shared patterns.
fn history(decimals: bool) -> MemoryHistory {
    let patterns: Vec<Vec<Arc<HourSummary>>> = (0..PATTERNS)
        .map(|pattern| {
            (0..HOURS)
                .map(|hour| Arc::new(hour_summary(pattern as u64, hour, decimals)))
                .collect()
        })
        .collect();
    let mut history = MemoryHistory::new();
    for series in 0..SERIES {
        let key = key(series);
        for hour in &patterns[series % PATTERNS] {
            history.record_shared(&key, hour.clone());
        }
    }
    history
}

fn hour_summary(pattern: u64, hour: i64, decimals: bool) -> HourSummary {
    let mut noise = Noise(pattern * 1_000_003 + hour as u64);
    let mut summary = Summary::default();
    for _ in 0..SAMPLES_PER_HOUR {
        let raw = 120.0 + noise.next(10.0) + hour as f64 * 0.05;
        let value = if decimals {
            (raw * 100.0).round() / 100.0
        } else {
            raw.round()
        };
        summary.push(&Sample::Number(value));
    }
    HourSummary {
        hour_start: Timestamp(hour * HOUR_MS),
        summary,
    }
}

/// Feeds one hour of samples to 10 000 series and reports the detector's resident memory. Every
/// series ends with a baseline and a full hourly summary.
fn bench_detector_memory() {
    let config = config();
    let before = status_kib("VmRSS");
    let mut detector = Detector::new();
    let mut noise = Noise(42);
    let mut ids = || 0;
    let started = Instant::now();
    for minute in 0..SAMPLES_PER_HOUR as i64 {
        for series in 0..SERIES {
            // Two decimals make nearly every value distinct, the costliest case for summaries.
            let value = ((120.0 + noise.next(10.0)) * 100.0).round() / 100.0;
            let result = result(series, minute, value);
            detector.process(&result, &config, &mut ids);
        }
    }
    let elapsed = started.elapsed();
    let after = status_kib("VmRSS");
    println!(
        "detector: {} samples into {} series in {:.2} s, resident growth {:.1} MiB",
        SAMPLES_PER_HOUR * SERIES,
        detector.len(),
        elapsed.as_secs_f64(),
        (after.saturating_sub(before)) as f64 / 1024.0
    );
    report_memory("after detector");
}

fn config() -> ConfigSnapshot {
    let field = FieldOverride {
        direction: Some(Direction::LowerIsBetter),
        ..FieldOverride::default()
    };
    let template = TemplateSettings {
        enabled: true,
        baseline_window: BaselineWindow::parse("7d").expect("valid window"),
        notify: true,
        field_overrides: BTreeMap::from([(PATH.to_owned(), field)]),
    };
    let healthcheck = Healthcheck {
        name: "api".into(),
        title: None,
        strategy: "push".into(),
        interval_secs: 60,
        config: serde_json::Value::Null,
        collectors: Vec::new(),
        anomaly: Some(template),
        source: Source::Api,
    };
    ConfigSnapshot {
        healthchecks: BTreeMap::from([("api".to_owned(), healthcheck)]),
        ..ConfigSnapshot::default()
    }
}

fn key(series: usize) -> SeriesKey {
    SeriesKey {
        system: format!("system-{series:05}"),
        healthcheck: "api".into(),
        environment: None,
        field_path: PATH.into(),
    }
}

fn result(series: usize, minute: i64, value: f64) -> CheckResult {
    CheckResult {
        system: format!("system-{series:05}"),
        healthcheck: "api".into(),
        environment: None,
        status: Status::Healthy,
        timestamp: Timestamp(minute * 60_000),
        latency_ms: None,
        fields: vec![FieldValue {
            collector_id: "custom.probe".into(),
            field: "latencyMs".into(),
            value: Value::Number(value),
        }],
    }
}

struct Noise(u64);

impl Noise {
    fn next(&mut self, amplitude: f64) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let unit = (self.0 >> 11) as f64 / (1_u64 << 53) as f64;
        (unit * 2.0 - 1.0) * amplitude
    }
}

fn report_memory(stage: &str) {
    println!(
        "memory {stage}: VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        status_kib("VmRSS") as f64 / 1024.0,
        status_kib("VmHWM") as f64 / 1024.0
    );
}

/// Reads one `kB` line of /proc/self/status; 0 where it is not available.
fn status_kib(name: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
