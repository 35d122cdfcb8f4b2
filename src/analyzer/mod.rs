//! The hourly analyzer and its schedule. Each run recomputes every series' baseline over its
//! baseline window from the hourly summaries, installs it in the detector and evaluates drift.

mod history;
mod schedule;

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::clock::{HOUR_MS, hour_start};
use crate::config::ConfigSnapshot;
use crate::detector::{self, Detector, RowStep};
use crate::engine::{
    Baseline, BaselineWindow, Direction, DriftReading, EffectiveSettings, FieldType, Summary,
    Timestamp,
};
use crate::series::SeriesKey;

pub use history::{History, MemoryHistory};
pub use schedule::{HOURLY_CRON, HourBoundaries, ScheduleError, catch_up_due, start_hourly};

/// A baseline one run computed and installed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BaselineUpdate {
    pub key: SeriesKey,
    pub baseline: Baseline,
    /// True for numeric series; only those publish a baseline-updated event.
    pub numeric: bool,
}

/// A drift step that changed the series' drift row.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftUpdate {
    pub key: SeriesKey,
    pub reading: DriftReading,
    pub step: RowStep,
}

/// Everything one analyzer run produced, for the caller to persist in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyzerRun {
    /// The run's "now": the hour boundary it ran for, or the catch-up time.
    pub at: Timestamp,
    pub baselines: Vec<BaselineUpdate>,
    pub drift: Vec<DriftUpdate>,
    /// Series the run looked at.
    pub series: usize,
    /// Series with fewer than 24 healthy valid samples in their window; they keep any baseline
    /// they had.
    pub too_few_samples: usize,
    /// Wall time the run took, for logs and metrics only.
    pub duration: Duration,
}

/// Runs the analyzer once at `now` over every series in `history`.
///
/// For each series it merges the hourly summaries that overlap its baseline window
/// `(now − window, now]`, the current hour's included, so the window is rounded out to whole
/// hours. A merge of at least 24 samples becomes the new baseline. Numeric series with drift
/// enabled then step their drift state machine with that baseline. `ids` must return a unique
/// id for each drift row inserted.
pub fn run<H: History>(
    now: Timestamp,
    history: &H,
    config: &ConfigSnapshot,
    detector: &mut Detector,
    ids: &mut dyn FnMut() -> u64,
) -> Result<AnalyzerRun, H::Error> {
    let started = Instant::now();
    let keys = history.series()?;
    let mut run = AnalyzerRun {
        at: now,
        baselines: Vec::new(),
        drift: Vec::new(),
        series: keys.len(),
        too_few_samples: 0,
        duration: Duration::ZERO,
    };
    for key in keys {
        analyze_series(&mut run, key, history, config, detector, ids)?;
    }
    run.duration = started.elapsed();
    tracing::info!(
        at = now.as_millis(),
        series = run.series,
        baselines = run.baselines.len(),
        drift_steps = run.drift.len(),
        too_few_samples = run.too_few_samples,
        duration_ms = run.duration.as_millis(),
        "analyzer run finished"
    );
    Ok(run)
}

fn analyze_series<H: History>(
    run: &mut AnalyzerRun,
    key: SeriesKey,
    history: &H,
    config: &ConfigSnapshot,
    detector: &mut Detector,
    ids: &mut dyn FnMut() -> u64,
) -> Result<(), H::Error> {
    let settings = detector::effective_settings(config, &key);
    let Some(baseline) = window_baseline(run.at, &key, &settings, history)? else {
        run.too_few_samples += 1;
        return Ok(());
    };
    detector.set_baseline(&key, baseline.clone());

    if let Some(rule) = settings
        .rule()
        .filter(|rule| drift_applies(rule.direction, rule.drift_enabled))
    {
        let (reading, step) = detector.step_drift(&key, &baseline, &rule, run.at, ids);
        if step.anomaly.is_some() {
            run.drift.push(DriftUpdate {
                key: key.clone(),
                reading,
                step,
            });
        }
    }

    let numeric = is_numeric(config, &key, &settings);
    run.baselines.push(BaselineUpdate {
        key,
        baseline,
        numeric,
    });
    Ok(())
}

/// Merges the summaries overlapping the series' window into a baseline, or `None` below 24
/// samples.
fn window_baseline<H: History>(
    now: Timestamp,
    key: &SeriesKey,
    settings: &EffectiveSettings,
    history: &H,
) -> Result<Option<Baseline>, H::Error> {
    let window_ms = window_hours(settings.baseline_window.value) * HOUR_MS;
    let first_hour = hour_start(Timestamp::from_millis(now.as_millis() - window_ms));
    let mut merged = Summary::default();
    history.visit_hours(key, first_hour..=hour_start(now), &mut |hour| {
        merged.merge(&hour.summary)
    })?;
    Ok(merged.to_baseline(now))
}

/// Drift is judged only for numeric directions with drift enabled.
fn drift_applies(direction: Direction, drift_enabled: bool) -> bool {
    drift_enabled && direction != Direction::Dominance
}

/// Returns whether a series is numeric, which decides whether its baseline updates are
/// published.
pub fn series_is_numeric(config: &ConfigSnapshot, key: &SeriesKey) -> bool {
    is_numeric(config, key, &detector::effective_settings(config, key))
}

/// Decides whether a series is numeric: its effective direction is numeric, or, without a
/// direction, its schema declares a number.
fn is_numeric(config: &ConfigSnapshot, key: &SeriesKey, settings: &EffectiveSettings) -> bool {
    match settings.direction.value {
        Some(direction) => direction != Direction::Dominance,
        None => detector::schema_field(config, key)
            .is_some_and(|field| field.field_type == FieldType::Number),
    }
}

/// Returns the length of a baseline window in hours.
pub fn window_hours(window: BaselineWindow) -> i64 {
    i64::from(window.hours())
}
