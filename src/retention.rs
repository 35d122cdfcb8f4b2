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

    /// Returns whether a raw sample taken at `at` has expired.
    pub fn raw_sample_expired(
        &self,
        at: Timestamp,
        largest_window: Option<BaselineWindow>,
    ) -> bool {
        at < self.raw_sample_cutoff(largest_window)
    }

    /// Returns the hour start before which hourly summaries have expired. A summary is kept
    /// while any part of its hour lies within the largest baseline window, because the analyzer
    /// merges every hour that overlaps a window.
    pub fn summary_cutoff(&self, largest_window: Option<BaselineWindow>) -> Timestamp {
        let window_hours = largest_window.map_or(0, window_hours);
        hour_start(self.ago_ms(window_hours * HOUR_MS))
    }

    /// Returns whether the hourly summary of the hour starting at `hour_start` has expired.
    pub fn summary_expired(
        &self,
        hour_start: Timestamp,
        largest_window: Option<BaselineWindow>,
    ) -> bool {
        hour_start < self.summary_cutoff(largest_window)
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
        series_stale_at(self.clock.now(), last_seen, window)
    }

    fn ago_ms(&self, ms: i64) -> Timestamp {
        Timestamp::from_millis(self.clock.now().as_millis().saturating_sub(ms))
    }
}

/// Returns whether a series last seen at `last_seen` is stale at `now`, which means not seen
/// for more than twice its baseline window.
pub fn series_stale_at(now: Timestamp, last_seen: Timestamp, window: BaselineWindow) -> bool {
    let cutoff = now
        .as_millis()
        .saturating_sub(2 * window_hours(window) * HOUR_MS);
    last_seen < Timestamp::from_millis(cutoff)
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::clock::ManualClock;
    use crate::config::{Healthcheck, Source};
    use crate::engine::{Kind, RowDirection, TemplateSettings};

    const NOW: Timestamp = Timestamp(1_000 * DAY_MS);

    fn at_days_ago(days: f64) -> Timestamp {
        Timestamp(NOW.0 - (days * DAY_MS as f64) as i64)
    }

    fn window(text: &str) -> BaselineWindow {
        BaselineWindow::parse(text).expect("valid window")
    }

    fn row(state: State, recovered_at: Option<Timestamp>) -> Anomaly {
        Anomaly {
            id: 1,
            kind: Kind::Spike,
            state,
            direction: RowDirection::Above,
            baseline_mean: Some(1.0),
            baseline_std_dev: Some(0.1),
            observed_value: "5".into(),
            deviation: 40.0,
            suspicious_run_count: 3,
            confirmation_threshold: 3,
            started_at: at_days_ago(400.0),
            confirmed_at: None,
            recovered_at,
            recent_samples: Vec::new(),
            stable_drift_run_count: 0,
            self_resolved: false,
            suppression: None,
        }
    }

    #[test]
    fn raw_sample_cutoff_cases() {
        let clock = ManualClock::new(NOW);
        let retention = Retention::new(&clock, DEFAULT_ANOMALY_RETENTION_DAYS);
        let cases = [
            (None, at_days_ago(7.0)),
            (Some(window("1d")), at_days_ago(7.0)),
            (Some(window("7d")), at_days_ago(7.0)),
            (Some(window("30d")), at_days_ago(30.0)),
            (Some(window("90d")), at_days_ago(90.0)),
        ];
        for (largest, expected) in cases {
            let cutoff = retention.raw_sample_cutoff(largest);
            assert_eq!(cutoff, expected, "{largest:?}");
            let newest_expired = Timestamp(cutoff.0 - 1);
            assert!(
                !retention.raw_sample_expired(cutoff, largest),
                "{largest:?}"
            );
            assert!(!retention.raw_sample_expired(NOW, largest), "{largest:?}");
            assert!(
                retention.raw_sample_expired(newest_expired, largest),
                "{largest:?}"
            );
        }
    }

    #[test]
    fn summaries_kept_while_overlapping_window() {
        let clock = ManualClock::new(Timestamp(NOW.0 + 30 * 60_000));
        let retention = Retention::new(&clock, DEFAULT_ANOMALY_RETENTION_DAYS);
        let cutoff = retention.summary_cutoff(Some(window("1d")));
        // The window (now − 24h, now] starts at 00:30 a day ago, so that day's 00:00 hour still
        // overlaps it and is kept. The hour before it is not needed.
        assert_eq!(cutoff, at_days_ago(1.0));
        let oldest_needed = at_days_ago(1.0);
        let newest_expired = Timestamp(oldest_needed.0 - HOUR_MS);
        let largest = Some(window("1d"));
        assert!(!retention.summary_expired(oldest_needed, largest));
        assert!(
            !retention.summary_expired(NOW, largest),
            "the current hour is kept"
        );
        assert!(retention.summary_expired(newest_expired, largest));
    }

    #[test]
    fn recovered_anomalies_expire_after_retention() {
        let clock = ManualClock::new(NOW);
        let retention = Retention::new(&clock, 30);
        let cases = [
            (State::Recovered, Some(at_days_ago(31.0)), true),
            (State::Recovered, Some(at_days_ago(30.0)), false),
            (State::Recovered, Some(at_days_ago(29.0)), false),
            (State::Recovered, None, false),
            (State::Anomaly, None, false),
            (State::Suspicious, None, false),
        ];
        for (state, recovered_at, expected) in cases {
            let row = row(state, recovered_at);
            assert_eq!(
                retention.anomaly_expired(&row),
                expected,
                "{state:?} {recovered_at:?}"
            );
        }
        clock.advance_ms(2 * DAY_MS);
        assert!(retention.anomaly_expired(&row(State::Recovered, Some(at_days_ago(29.0)))));
    }

    #[test]
    fn series_stale_after_twice_window() {
        let clock = ManualClock::new(NOW);
        let retention = Retention::new(&clock, DEFAULT_ANOMALY_RETENTION_DAYS);
        let cases = [
            (at_days_ago(13.9), "7d", false),
            (at_days_ago(14.1), "7d", true),
            (at_days_ago(1.9), "1d", false),
            (at_days_ago(2.1), "1d", true),
            (at_days_ago(59.0), "30d", false),
            (at_days_ago(61.0), "30d", true),
        ];
        for (last_seen, text, expected) in cases {
            assert_eq!(
                retention.series_stale(last_seen, window(text)),
                expected,
                "{last_seen:?} {text}"
            );
        }
    }

    #[test]
    fn largest_window_over_series() {
        let template = |text: &str| TemplateSettings {
            enabled: true,
            baseline_window: window(text),
            notify: true,
            field_overrides: BTreeMap::new(),
        };
        let healthcheck = |name: &str, text: &str| Healthcheck {
            name: name.into(),
            title: None,
            strategy: "push".into(),
            interval_secs: 60,
            config: serde_json::Value::Null,
            collectors: Vec::new(),
            anomaly: Some(template(text)),
            source: Source::Api,
        };
        let config = ConfigSnapshot {
            healthchecks: BTreeMap::from([
                ("fast".to_owned(), healthcheck("fast", "1d")),
                ("slow".to_owned(), healthcheck("slow", "30d")),
            ]),
            ..ConfigSnapshot::default()
        };
        let key = |healthcheck: &str| SeriesKey {
            system: "shop".into(),
            healthcheck: healthcheck.into(),
            environment: None,
            field_path: "collectors.custom.probe.value".into(),
        };
        let keys = [key("fast"), key("slow"), key("unconfigured")];
        assert_eq!(largest_window(&config, &keys), Some(window("30d")));
        assert_eq!(largest_window(&config, &keys[..1]), Some(window("1d")));
        assert_eq!(largest_window(&config, &keys[2..]), Some(window("7d")));
        assert_eq!(largest_window(&config, []), None);
    }
}
