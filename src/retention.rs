//! Retention decisions: which raw samples, hourly summaries, recovered anomalies and series have
//! expired at the clock's current time. The store applies them in bounded batches; nothing here
//! deletes anything.

use crate::analyzer::window_hours;
use crate::clock::{Clock, HOUR_MS, hour_start};
use crate::config::ConfigSnapshot;
use crate::detector::effective_settings;
use crate::engine::{Anomaly, BaselineWindow, State, Timestamp};
use crate::series::SeriesKey;

/// How long recovered anomalies are kept unless configured otherwise.
pub const DEFAULT_ANOMALY_RETENTION_DAYS: u32 = 30;

/// Raw samples are kept at least this long so the page can chart a week of history.
pub const CHART_RANGE_HOURS: i64 = 7 * 24;

const DAY_MS: i64 = 24 * HOUR_MS;

/// Retention settings and the clock they are judged against.
pub struct Retention<'a> {
    clock: &'a dyn Clock,
    anomaly_retention_days: u32,
}

impl<'a> Retention<'a> {
    pub fn new(clock: &'a dyn Clock, anomaly_retention_days: u32) -> Self {
        Self {
            clock,
            anomaly_retention_days,
        }
    }

    /// Returns the time before which raw samples have expired: the largest effective baseline
    /// window of any series, but never less than the chart range.
    pub fn raw_sample_cutoff(&self, largest_window: Option<BaselineWindow>) -> Timestamp {
        let window_hours = largest_window.map_or(0, window_hours);
        self.ago_ms(window_hours.max(CHART_RANGE_HOURS) * HOUR_MS)
    }

    /// Returns the hour start before which hourly summaries have expired. A summary is kept
    /// while any part of its hour lies within the largest baseline window, because the analyzer
    /// merges every hour that overlaps a window.
    pub fn summary_cutoff(&self, largest_window: Option<BaselineWindow>) -> Timestamp {
        let window_hours = largest_window.map_or(0, window_hours);
        hour_start(self.ago_ms(window_hours * HOUR_MS))
    }

    /// Returns whether an anomaly row has expired: recovered more than the retention period ago.
    /// Open rows never expire.
    pub fn anomaly_expired(&self, row: &Anomaly) -> bool {
        let cutoff = self.ago_ms(i64::from(self.anomaly_retention_days) * DAY_MS);
        row.state == State::Recovered && row.recovered_at.is_some_and(|at| at < cutoff)
    }

    /// Returns whether a series is stale: not seen for more than twice its baseline window, so
    /// its baseline and summaries can go.
    pub fn series_stale(&self, last_seen: Timestamp, window: BaselineWindow) -> bool {
        last_seen < self.ago_ms(2 * window_hours(window) * HOUR_MS)
    }

    fn ago_ms(&self, ms: i64) -> Timestamp {
        Timestamp::from_millis(self.clock.now().as_millis().saturating_sub(ms))
    }
}

/// Returns the largest effective baseline window over the given series, or `None` without
/// series.
pub fn largest_window<'k>(
    config: &ConfigSnapshot,
    keys: impl IntoIterator<Item = &'k SeriesKey>,
) -> Option<BaselineWindow> {
    keys.into_iter()
        .map(|key| effective_settings(config, key).baseline_window.value)
        .max()
}
