//! Replay output: the event stream, the anomaly episodes for the summary, and the per-row
//! scores.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::analyzer::AnalyzerRun;
use crate::detector::{RowStep, SampleStatus, SeriesUpdate};
use crate::engine::{Kind, NotificationKind, RowDirection, StateChange, Timestamp};
use crate::series::SeriesKey;

/// One event of the replay's NDJSON output.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum ReplayEvent {
    /// An anomaly row changed state (`cleared` means a suspicious row was deleted).
    StateChanged {
        at: String,
        #[serde(flatten)]
        series: SeriesKey,
        anomaly_id: u64,
        kind: Kind,
        state: StateChange,
        direction: RowDirection,
        observed_value: String,
        /// `None` (JSON `null`) when the deviation is unbounded.
        deviation: Option<f64>,
        deviation_unbounded: bool,
        notification: Option<NotificationKind>,
    },
    /// A numeric series got a new baseline, learned at once or from an analyzer run.
    BaselineUpdated {
        at: String,
        #[serde(flatten)]
        series: SeriesKey,
        mean: f64,
        std_dev: f64,
        slope: f64,
        sample_count: u64,
    },
}

/// One detection episode: an anomaly row from insertion to deletion or recovery.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub id: u64,
    pub key: SeriesKey,
    pub kind: Kind,
    pub started_at: Timestamp,
    pub confirmed_at: Option<Timestamp>,
    pub recovered_at: Option<Timestamp>,
    /// Deviation when the episode was confirmed.
    pub confirmed_deviation: Option<f64>,
}

/// Counts and episodes of one replay.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplaySummary {
    pub rows: usize,
    pub samples: u64,
    pub invalid_samples: u64,
    pub unhealthy_samples: u64,
    pub analyzer_runs: u64,
    /// Every episode, confirmed or not, by anomaly id.
    pub episodes: BTreeMap<u64, Episode>,
}

impl ReplaySummary {
    /// Returns the number of rows that opened as suspicious.
    pub fn suspicious_episodes(&self) -> usize {
        self.episodes.len()
    }

    /// Iterates over the episodes that were confirmed as anomalies.
    pub fn confirmed(&self) -> impl Iterator<Item = &Episode> {
        self.episodes.values().filter(|e| e.confirmed_at.is_some())
    }
}

impl fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "replayed {}: {}, {} invalid, {} unhealthy, {}",
            counted(self.rows, "row", "rows"),
            counted(self.samples as usize, "sample", "samples"),
            self.invalid_samples,
            self.unhealthy_samples,
            counted(self.analyzer_runs as usize, "analyzer run", "analyzer runs"),
        )?;
        writeln!(
            f,
            "{}, {}",
            counted(
                self.suspicious_episodes(),
                "suspicious episode",
                "suspicious episodes"
            ),
            counted(
                self.confirmed().count(),
                "confirmed anomaly",
                "confirmed anomalies"
            ),
        )?;
        for episode in self.confirmed() {
            writeln!(f, "{episode}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Episode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Spike => "spike",
            Kind::Drift => "drift",
        };
        write!(
            f,
            "  anomaly {} ({kind}) {}/{}/{}: started {}, confirmed {}, ",
            self.id,
            self.key.system,
            self.key.healthcheck,
            self.key.field_path,
            rfc3339(self.started_at),
            self.confirmed_at.map_or_else(|| "-".to_owned(), rfc3339),
        )?;
        match self.recovered_at {
            Some(at) => write!(f, "recovered {}", rfc3339(at)),
            None => f.write_str("still open"),
        }
    }
}

/// Formats a count with the noun form that agrees with it, for example `1 row` or `2 rows`.
fn counted(count: usize, singular: &str, plural: &str) -> String {
    match count {
        1 => format!("1 {singular}"),
        count => format!("{count} {plural}"),
    }
}

/// Formats a time as RFC 3339 in UTC.
pub fn rfc3339(at: Timestamp) -> String {
    jiff::Timestamp::from_millisecond(at.as_millis()).map_or_else(
        |_| format!("{}ms", at.as_millis()),
        |instant| instant.to_string(),
    )
}

/// Score of a confirmation row: 1 − exp(−deviation / 10), so 0 at the baseline, about 0.26 at 3σ,
/// 0.63 at 10σ and 1 for an unbounded deviation.
pub fn confirmation_score(deviation: f64) -> f64 {
    if deviation.is_nan() {
        return 0.0;
    }
    1.0 - (-deviation.abs() / 10.0).exp()
}

/// Collects events, episodes and scores while a replay runs.
#[derive(Debug, Default)]
pub struct Recorder {
    pub events: Vec<ReplayEvent>,
    pub summary: ReplaySummary,
    /// One score per input row.
    pub scores: Vec<f64>,
}

impl Recorder {
    pub fn new(rows: usize) -> Self {
        Self {
            events: Vec::new(),
            summary: ReplaySummary {
                rows,
                ..ReplaySummary::default()
            },
            scores: vec![0.0; rows],
        }
    }

    /// Records what one sample changed; `row` is the index of the input row it came from.
    pub fn sample(&mut self, update: &SeriesUpdate, numeric: bool, row: usize) {
        self.summary.samples += 1;
        match update.status {
            SampleStatus::Valid => {}
            SampleStatus::Invalid(_) => self.summary.invalid_samples += 1,
            SampleStatus::Unhealthy => self.summary.unhealthy_samples += 1,
        }
        if let Some(baseline) = update.baseline.as_ref().filter(|_| numeric) {
            self.events
                .push(baseline_event(update.at, &update.key, baseline));
        }
        if let Some(step) = &update.spike {
            self.step(&update.key, Kind::Spike, step, update.at, row);
        }
    }

    /// Records an analyzer run that happened just before input row `row`. A drift it confirms is
    /// scored on that row.
    pub fn analyzer_run(&mut self, run: &AnalyzerRun, row: usize) {
        self.summary.analyzer_runs += 1;
        for update in run.baselines.iter().filter(|update| update.numeric) {
            self.events
                .push(baseline_event(run.at, &update.key, &update.baseline));
        }
        for drift in &run.drift {
            self.step(&drift.key, Kind::Drift, &drift.step, run.at, row);
        }
        for closed in &run.closed {
            self.step(&closed.key, closed.kind, &closed.step, run.at, row);
        }
    }

    fn step(&mut self, key: &SeriesKey, kind: Kind, step: &RowStep, at: Timestamp, row: usize) {
        let (Some(state), Some(anomaly)) = (step.transition.state_change, &step.anomaly) else {
            return;
        };
        let notification = step.transition.notification;
        let episode = self
            .summary
            .episodes
            .entry(anomaly.id)
            .or_insert_with(|| Episode {
                id: anomaly.id,
                key: key.clone(),
                kind,
                started_at: anomaly.started_at,
                confirmed_at: None,
                recovered_at: None,
                confirmed_deviation: None,
            });
        episode.confirmed_at = anomaly.confirmed_at;
        episode.recovered_at = anomaly.recovered_at;
        if matches!(
            notification,
            Some(NotificationKind::Confirmed | NotificationKind::DriftConfirmed)
        ) {
            episode.confirmed_deviation = Some(anomaly.deviation);
            let score = confirmation_score(anomaly.deviation);
            if let Some(slot) = self.scores.get_mut(row) {
                *slot = slot.max(score);
            }
        }
        let bounded = anomaly.deviation.is_finite();
        self.events.push(ReplayEvent::StateChanged {
            at: rfc3339(at),
            series: key.clone(),
            anomaly_id: anomaly.id,
            kind,
            state,
            direction: anomaly.direction,
            observed_value: anomaly.observed_value.clone(),
            deviation: bounded.then_some(anomaly.deviation),
            deviation_unbounded: !bounded,
            notification,
        });
    }
}

fn baseline_event(
    at: Timestamp,
    key: &SeriesKey,
    baseline: &crate::engine::Baseline,
) -> ReplayEvent {
    ReplayEvent::BaselineUpdated {
        at: rfc3339(at),
        series: key.clone(),
        mean: baseline.mean,
        std_dev: baseline.std_dev,
        slope: baseline.slope,
        sample_count: baseline.sample_count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmation_score_grows_in_unit_range() {
        let cases = [
            (0.0, 0.0),
            (3.0, 0.259),
            (10.0, 0.632),
            (f64::INFINITY, 1.0),
            (f64::NAN, 0.0),
        ];
        for (deviation, expected) in cases {
            let score = confirmation_score(deviation);
            assert!((score - expected).abs() < 1e-3, "{deviation} gave {score}");
        }
    }

    #[test]
    fn summary_counts_agree_in_number() {
        let one = ReplaySummary {
            rows: 1,
            samples: 1,
            analyzer_runs: 1,
            ..ReplaySummary::default()
        };
        let text = one.to_string();
        assert!(
            text.starts_with("replayed 1 row: 1 sample, 0 invalid, 0 unhealthy, 1 analyzer run\n"),
            "{text}"
        );
        assert!(
            text.contains("0 suspicious episodes, 0 confirmed anomalies\n"),
            "{text}"
        );
        let two = ReplaySummary {
            rows: 2,
            samples: 2,
            analyzer_runs: 2,
            ..ReplaySummary::default()
        };
        let text = two.to_string();
        assert!(
            text.starts_with(
                "replayed 2 rows: 2 samples, 0 invalid, 0 unhealthy, 2 analyzer runs\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(
            rfc3339(Timestamp(1_392_388_200_000)),
            "2014-02-14T14:30:00Z"
        );
    }
}
