//! The hourly analyzer and its schedule. Each run recomputes every series' baseline over its
//! baseline window from the hourly summaries, installs it in the detector and evaluates drift.
//! It then closes the open rows that no later step would reach.

mod history;
mod schedule;

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::clock::{HOUR_MS, hour_start};
use crate::config::ConfigSnapshot;
use crate::detector::{self, Detector, OpenRow, RowStep};
use crate::engine::{
    Baseline, BaselineWindow, Direction, DriftReading, EffectiveSettings, FieldType, Kind, Summary,
    Timestamp,
};
use crate::retention;
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

/// An open row the run closed because no spike or drift step would reach it again. A
/// suspicious row was cleared, and a confirmed one recovered without a notification.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedRow {
    pub key: SeriesKey,
    pub kind: Kind,
    pub reason: CloseReason,
    pub step: RowStep,
}

/// Reason a run closed an open row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The field no longer has a rule for this kind of row, because the field or its template
    /// is disabled or the field has no direction. A drift row also has none when drift is off
    /// or the direction is dominance.
    NoRule,
    /// The series was not seen for more than twice its baseline window.
    SeriesStale,
}

impl CloseReason {
    /// Describes the reason for logs.
    pub fn message(self) -> &'static str {
        match self {
            Self::NoRule => "the field no longer has a rule for this kind of anomaly",
            Self::SeriesStale => "the series was not seen for twice its baseline window",
        }
    }
}

/// Everything one analyzer run produced, for the caller to persist in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyzerRun {
    /// The run's "now": the hour boundary it ran for, or the catch-up time.
    pub at: Timestamp,
    pub baselines: Vec<BaselineUpdate>,
    pub drift: Vec<DriftUpdate>,
    /// Open rows the run closed, see [`ClosedRow`].
    pub closed: Vec<ClosedRow>,
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
/// enabled then step their drift state machine with that baseline. Last, open rows whose field
/// has no rule or whose series is stale are closed (see [`ClosedRow`]). `ids` must return a
/// unique id for each drift row inserted.
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
        closed: Vec::new(),
        series: keys.len(),
        too_few_samples: 0,
        duration: Duration::ZERO,
    };
    for key in keys {
        analyze_series(&mut run, key, history, config, detector, ids)?;
    }
    close_stuck_rows(&mut run, config, detector);
    run.duration = started.elapsed();
    tracing::info!(
        at = %crate::views::rfc3339(now),
        series = run.series,
        baselines = run.baselines.len(),
        drift_steps = run.drift.len(),
        closed_rows = run.closed.len(),
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

/// Closes the open rows that no step would move again. A spike row moves only when a sample of
/// its series is evaluated, and a drift row only when the run computes a baseline for it, so
/// neither moves once its field has no rule or its series stops reporting. Closing the rows of
/// a silent series also lets retention forget that series.
fn close_stuck_rows(run: &mut AnalyzerRun, config: &ConfigSnapshot, detector: &mut Detector) {
    let stuck: Vec<(SeriesKey, Kind, CloseReason)> = detector
        .open_rows()
        .filter_map(|open| {
            let reason = stuck_reason(run.at, config, detector, open)?;
            Some((open.key.clone(), open.row.kind, reason))
        })
        .collect();
    for (key, kind, reason) in stuck {
        if let Some(step) = detector.close_row(&key, kind, run.at) {
            run.closed.push(ClosedRow {
                key,
                kind,
                reason,
                step,
            });
        }
    }
}

/// Returns why no step will reach an open row again, or `None` while one still can.
fn stuck_reason(
    now: Timestamp,
    config: &ConfigSnapshot,
    detector: &Detector,
    open: OpenRow<'_>,
) -> Option<CloseReason> {
    let settings = detector::effective_settings(config, open.key);
    let rule = settings.rule();
    let has_rule = match open.row.kind {
        Kind::Spike => rule.is_some(),
        Kind::Drift => rule.is_some_and(|rule| drift_applies(rule.direction, rule.drift_enabled)),
    };
    if !has_rule {
        return Some(CloseReason::NoRule);
    }
    // A series without a last sample is never stale, as for retention.
    // NOTE: a series that reports only unhealthy results is never stale either, so its open
    // spike row stays open until a healthy result is evaluated.
    let last = detector.last_sample(open.key)?;
    let window = settings.baseline_window.value;
    retention::series_stale_at(now, last.at, window).then_some(CloseReason::SeriesStale)
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
