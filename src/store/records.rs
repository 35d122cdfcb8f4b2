//! The stored form of every value: one `*Record` type per table, postcard-encoded, decoded with
//! an error rather than a panic, and converted to and from the engine types at this edge only.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::detector::{LastSample, SeriesSnapshot};
use crate::engine::{
    Anomaly, Baseline, Kind, RowDirection, State, Summary, Suppression, Timestamp, Value,
};
use crate::series::SeriesKey;

use super::StoreError;

/// Encodes a record. Postcard into a `Vec` fails only for serde features it does not support
/// (such as sequences of unknown length), which these plain records do not use.
pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    postcard::to_stdvec(record).expect("postcard encodes plain records into a Vec")
}

/// Decodes a record of `table`, naming the table and key when the bytes do not fit.
pub fn decode<T: DeserializeOwned>(
    table: &'static str,
    key: u64,
    bytes: &[u8],
) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|source| StoreError::Corrupt { table, key, source })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeriesRecord {
    pub system: String,
    pub healthcheck: String,
    pub environment: Option<String>,
    pub field_path: String,
}

impl From<&SeriesKey> for SeriesRecord {
    fn from(key: &SeriesKey) -> Self {
        Self {
            system: key.system.clone(),
            healthcheck: key.healthcheck.clone(),
            environment: key.environment.clone(),
            field_path: key.field_path.clone(),
        }
    }
}

impl From<SeriesRecord> for SeriesKey {
    fn from(r: SeriesRecord) -> Self {
        Self {
            system: r.system,
            healthcheck: r.healthcheck,
            environment: r.environment,
            field_path: r.field_path,
        }
    }
}

/// A raw value as stored; mirrors `engine::Value` so the engine type can change on its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ValueRecord {
    Number(f64),
    Text(String),
    Bool(bool),
    Null,
}

impl From<&Value> for ValueRecord {
    fn from(v: &Value) -> Self {
        match v {
            Value::Number(n) => Self::Number(*n),
            Value::Text(s) => Self::Text(s.clone()),
            Value::Bool(b) => Self::Bool(*b),
            Value::Null => Self::Null,
        }
    }
}

impl From<ValueRecord> for Value {
    fn from(v: ValueRecord) -> Self {
        match v {
            ValueRecord::Number(n) => Self::Number(n),
            ValueRecord::Text(s) => Self::Text(s),
            ValueRecord::Bool(b) => Self::Bool(b),
            ValueRecord::Null => Self::Null,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SampleRecord {
    pub value: ValueRecord,
    /// False when the engine classified the value invalid for its field.
    pub valid: bool,
    pub healthy: bool,
}

/// Mergeable statistics of one hour. The engine's `Summary` is plain data without an API form,
/// so the record carries it as is behind a version tag.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SummaryRecord {
    V1(Summary),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaselineRecord {
    pub mean: f64,
    pub std_dev: f64,
    pub slope: f64,
    pub sample_count: u64,
    pub computed_at_ms: i64,
    pub dominant_value: Option<String>,
    pub dominant_ratio: Option<f64>,
}

impl From<&Baseline> for BaselineRecord {
    fn from(b: &Baseline) -> Self {
        Self {
            mean: b.mean,
            std_dev: b.std_dev,
            slope: b.slope,
            sample_count: b.sample_count,
            computed_at_ms: b.computed_at.as_millis(),
            dominant_value: b.dominant_value.clone(),
            dominant_ratio: b.dominant_ratio,
        }
    }
}

impl From<BaselineRecord> for Baseline {
    fn from(r: BaselineRecord) -> Self {
        Self {
            mean: r.mean,
            std_dev: r.std_dev,
            slope: r.slope,
            sample_count: r.sample_count,
            computed_at: Timestamp::from_millis(r.computed_at_ms),
            dominant_value: r.dominant_value,
            dominant_ratio: r.dominant_ratio,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuppressionRecord {
    pub at_ms: i64,
    pub value: Option<f64>,
    pub baseline: Option<f64>,
}

/// An anomaly row with the series it belongs to. Enums are stored as their engine types, whose
/// variant order is part of this layout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnomalyRecord {
    pub series_id: u64,
    pub kind: Kind,
    pub state: State,
    pub direction: RowDirection,
    pub baseline_mean: Option<f64>,
    pub baseline_std_dev: Option<f64>,
    pub observed_value: String,
    pub deviation: f64,
    pub suspicious_run_count: u32,
    pub confirmation_threshold: u32,
    pub started_at_ms: i64,
    pub confirmed_at_ms: Option<i64>,
    pub recovered_at_ms: Option<i64>,
    pub recent_samples: Vec<f64>,
    pub stable_drift_run_count: u32,
    pub self_resolved: bool,
    pub suppression: Option<SuppressionRecord>,
}

impl AnomalyRecord {
    pub fn new(series_id: u64, a: &Anomaly) -> Self {
        Self {
            series_id,
            kind: a.kind,
            state: a.state,
            direction: a.direction,
            baseline_mean: a.baseline_mean,
            baseline_std_dev: a.baseline_std_dev,
            observed_value: a.observed_value.clone(),
            deviation: a.deviation,
            suspicious_run_count: a.suspicious_run_count,
            confirmation_threshold: a.confirmation_threshold,
            started_at_ms: a.started_at.as_millis(),
            confirmed_at_ms: a.confirmed_at.map(Timestamp::as_millis),
            recovered_at_ms: a.recovered_at.map(Timestamp::as_millis),
            recent_samples: a.recent_samples.clone(),
            stable_drift_run_count: a.stable_drift_run_count,
            self_resolved: a.self_resolved,
            suppression: a.suppression.as_ref().map(|s| SuppressionRecord {
                at_ms: s.at.as_millis(),
                value: s.value,
                baseline: s.baseline,
            }),
        }
    }

    pub fn to_anomaly(&self, id: u64) -> Anomaly {
        Anomaly {
            id,
            kind: self.kind,
            state: self.state,
            direction: self.direction,
            baseline_mean: self.baseline_mean,
            baseline_std_dev: self.baseline_std_dev,
            observed_value: self.observed_value.clone(),
            deviation: self.deviation,
            suspicious_run_count: self.suspicious_run_count,
            confirmation_threshold: self.confirmation_threshold,
            started_at: Timestamp::from_millis(self.started_at_ms),
            confirmed_at: self.confirmed_at_ms.map(Timestamp::from_millis),
            recovered_at: self.recovered_at_ms.map(Timestamp::from_millis),
            recent_samples: self.recent_samples.clone(),
            stable_drift_run_count: self.stable_drift_run_count,
            self_resolved: self.self_resolved,
            suppression: self.suppression.as_ref().map(|s| Suppression {
                at: Timestamp::from_millis(s.at_ms),
                value: s.value,
                baseline: s.baseline,
            }),
        }
    }
}

/// The latest value of a series, healthy or not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastSampleRecord {
    pub value: ValueRecord,
    pub at_ms: i64,
    pub healthy: bool,
}

/// Per-series detector state besides baselines, summaries and rows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SeriesStateRecord {
    pub last: Option<LastSampleRecord>,
    pub invalid_count: u64,
    pub last_self_resolution_ms: Option<i64>,
    /// Samples learned before the first baseline; `None` once a baseline exists.
    pub learning: Option<Summary>,
}

impl SeriesStateRecord {
    /// Copies the parts of a detector snapshot that this record stores.
    pub fn from_snapshot(s: &SeriesSnapshot) -> Self {
        Self {
            last: s.last.as_ref().map(|l| LastSampleRecord {
                value: (&l.value).into(),
                at_ms: l.at.as_millis(),
                healthy: l.healthy,
            }),
            invalid_count: s.invalid_samples,
            last_self_resolution_ms: s.last_self_resolution.map(Timestamp::as_millis),
            learning: s.learning.clone(),
        }
    }

    /// Fills the parts of a detector snapshot that this record stores.
    pub fn fill(&self, s: &mut SeriesSnapshot) {
        s.last = self.last.as_ref().map(|l| LastSample {
            value: l.value.clone().into(),
            at: Timestamp::from_millis(l.at_ms),
            healthy: l.healthy,
        });
        s.invalid_samples = self.invalid_count;
        s.last_self_resolution = self.last_self_resolution_ms.map(Timestamp::from_millis);
        s.learning = self.learning.clone();
    }
}
