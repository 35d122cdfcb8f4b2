//! The JSON forms (camelCase) of stored entities, shared by the read API and the event stream.

use serde::Serialize;
use serde_json::Value as Json;

use crate::engine::{
    Anomaly, Baseline, Kind, MIN_BASELINE_SAMPLES, RowDirection, State, Timestamp, Value,
};
use crate::series::SeriesKey;
use crate::store::ValueRecord;
use crate::store::read::{AnomalyEntry, SeriesEntry, StoredSample};

/// Formats event time as RFC 3339 in UTC.
pub fn rfc3339(at: Timestamp) -> String {
    jiff::Timestamp::from_millisecond(at.as_millis())
        .map(|ts| ts.to_string())
        .unwrap_or_else(|_| at.as_millis().to_string())
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesRef {
    pub system: String,
    pub healthcheck: String,
    pub environment: Option<String>,
    pub field: String,
}

impl From<&SeriesKey> for SeriesRef {
    fn from(key: &SeriesKey) -> Self {
        Self {
            system: key.system.clone(),
            healthcheck: key.healthcheck.clone(),
            environment: key.environment.clone(),
            field: key.field_path.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SuppressionView {
    pub at: String,
    pub value: Option<f64>,
    pub baseline: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnomalyView {
    pub id: u64,
    #[serde(flatten)]
    pub series: SeriesRef,
    pub kind: Kind,
    pub state: State,
    pub direction: RowDirection,
    pub baseline_mean: Option<f64>,
    pub baseline_std_dev: Option<f64>,
    pub observed_value: String,
    /// `None` with `deviation_unbounded` when the deviation is +infinity (drift with σ = 0).
    pub deviation: Option<f64>,
    pub deviation_unbounded: bool,
    pub suspicious_run_count: u32,
    pub confirmation_threshold: u32,
    pub started_at: String,
    pub confirmed_at: Option<String>,
    pub recovered_at: Option<String>,
    pub self_resolved: bool,
    pub suppressed: bool,
    pub suppression: Option<SuppressionView>,
}

impl AnomalyView {
    pub fn new(series: &SeriesKey, row: &Anomaly) -> Self {
        let unbounded = row.deviation == f64::INFINITY;
        Self {
            id: row.id,
            series: series.into(),
            kind: row.kind,
            state: row.state,
            direction: row.direction,
            baseline_mean: row.baseline_mean,
            baseline_std_dev: row.baseline_std_dev,
            observed_value: row.observed_value.clone(),
            deviation: (!unbounded && row.deviation.is_finite()).then_some(row.deviation),
            deviation_unbounded: unbounded,
            suspicious_run_count: row.suspicious_run_count,
            confirmation_threshold: row.confirmation_threshold,
            started_at: rfc3339(row.started_at),
            confirmed_at: row.confirmed_at.map(rfc3339),
            recovered_at: row.recovered_at.map(rfc3339),
            self_resolved: row.self_resolved,
            suppressed: row.suppression.is_some(),
            suppression: row.suppression.as_ref().map(|s| SuppressionView {
                at: rfc3339(s.at),
                value: s.value,
                baseline: s.baseline,
            }),
        }
    }
}

impl From<&AnomalyEntry> for AnomalyView {
    fn from(entry: &AnomalyEntry) -> Self {
        Self::new(&entry.series, &entry.row)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BaselineStats {
    pub mean: f64,
    pub std_dev: f64,
    pub slope: f64,
    pub sample_count: u64,
    pub computed_at: String,
    pub dominant_value: Option<String>,
    pub dominant_ratio: Option<f64>,
}

impl From<&Baseline> for BaselineStats {
    fn from(b: &Baseline) -> Self {
        Self {
            mean: b.mean,
            std_dev: b.std_dev,
            slope: b.slope,
            sample_count: b.sample_count,
            computed_at: rfc3339(b.computed_at),
            dominant_value: b.dominant_value.clone(),
            dominant_ratio: b.dominant_ratio,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BaselineView {
    #[serde(flatten)]
    pub series: SeriesRef,
    #[serde(flatten)]
    pub stats: BaselineStats,
}

impl BaselineView {
    pub fn new(series: &SeriesKey, baseline: &Baseline) -> Self {
        Self {
            series: series.into(),
            stats: baseline.into(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Learning {
    pub samples: u64,
    pub required: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesView {
    #[serde(flatten)]
    pub series: SeriesRef,
    /// False when the system or healthcheck is not defined in the configuration.
    pub managed: bool,
    pub baseline: Option<BaselineStats>,
    /// Progress towards the first baseline; absent once a baseline exists.
    pub learning: Option<Learning>,
    pub last_value: Json,
    pub last_at: Option<String>,
    pub invalid_count: u64,
    pub spike_state: Option<State>,
    pub drift_state: Option<State>,
}

impl SeriesView {
    pub fn new(entry: &SeriesEntry, managed: bool) -> Self {
        let learning = entry.baseline.is_none().then(|| Learning {
            samples: entry.state.learning.as_ref().map_or(0, |s| s.count()),
            required: MIN_BASELINE_SAMPLES,
        });
        Self {
            series: (&entry.key).into(),
            managed,
            baseline: entry.baseline.as_ref().map(Into::into),
            learning,
            last_value: entry
                .state
                .last
                .as_ref()
                .map_or(Json::Null, |l| record_json(&l.value)),
            last_at: entry
                .state
                .last
                .as_ref()
                .map(|l| rfc3339(Timestamp::from_millis(l.at_ms))),
            invalid_count: entry.state.invalid_count,
            spike_state: entry.open_spike,
            drift_state: entry.open_drift,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SampleView {
    pub at: String,
    pub value: Json,
    pub valid: bool,
    pub healthy: bool,
}

impl From<&StoredSample> for SampleView {
    fn from(s: &StoredSample) -> Self {
        Self {
            at: rfc3339(s.at),
            value: record_json(&s.record.value),
            valid: s.record.valid,
            healthy: s.record.healthy,
        }
    }
}

/// Converts a raw value to JSON. A non-finite number becomes its text form.
pub fn value_json(value: &Value) -> Json {
    match value {
        Value::Number(n) => serde_json::Number::from_f64(*n)
            .map_or_else(|| Json::String(n.to_string()), Json::Number),
        Value::Text(s) => Json::String(s.clone()),
        Value::Bool(b) => Json::Bool(*b),
        Value::Null => Json::Null,
    }
}

fn record_json(value: &ValueRecord) -> Json {
    value_json(&value.clone().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Anomaly, Kind, RowDirection, State};

    fn drift_row(deviation: f64) -> Anomaly {
        Anomaly {
            id: 7,
            kind: Kind::Drift,
            state: State::Suspicious,
            direction: RowDirection::Above,
            baseline_mean: Some(10.0),
            baseline_std_dev: Some(0.0),
            observed_value: "12".into(),
            deviation,
            suspicious_run_count: 1,
            confirmation_threshold: 2,
            started_at: Timestamp::from_millis(0),
            confirmed_at: None,
            recovered_at: None,
            recent_samples: Vec::new(),
            stable_drift_run_count: 0,
            self_resolved: false,
            suppression: None,
        }
    }

    fn key() -> SeriesKey {
        SeriesKey {
            system: "shop".into(),
            healthcheck: "web".into(),
            environment: None,
            field_path: "collectors.a.b".into(),
        }
    }

    #[test]
    fn infinite_deviation_is_unbounded() {
        let json =
            serde_json::to_value(AnomalyView::new(&key(), &drift_row(f64::INFINITY))).unwrap();
        assert_eq!(json["deviation"], Json::Null);
        assert_eq!(json["deviationUnbounded"], true);
        assert_eq!(json["startedAt"], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn finite_deviation_is_a_number() {
        let json = serde_json::to_value(AnomalyView::new(&key(), &drift_row(2.5))).unwrap();
        assert_eq!(json["deviation"], 2.5);
        assert_eq!(json["deviationUnbounded"], false);
    }
}
