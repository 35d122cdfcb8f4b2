//! Series identity and the validated form of one check result, shared by ingest, probes, replay,
//! the detector and the store.

use serde::{Deserialize, Serialize};

use crate::engine::{Timestamp, Value};

/// One learned series: a field of one healthcheck of one system, optionally per environment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesKey {
    pub system: String,
    pub healthcheck: String,
    /// `None` is the environment-less slice.
    pub environment: Option<String>,
    /// Canonical path `collectors.<qualified collector id>.<field>`.
    pub field_path: String,
}

/// Health of a run as reported by the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Healthy,
    Unhealthy,
}

/// One field of a result: where it came from and its raw value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldValue {
    /// Qualified collector id, for example `healthcheck-http.request`.
    pub collector_id: String,
    pub field: String,
    pub value: Value,
}

impl FieldValue {
    /// Returns the canonical field path `collectors.<collector id>.<field>`.
    pub fn path(&self) -> String {
        format!("collectors.{}.{}", self.collector_id, self.field)
    }
}

/// A validated check result, whatever its origin (results API, probe, replay).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    pub system: String,
    pub healthcheck: String,
    pub environment: Option<String>,
    pub status: Status,
    pub timestamp: Timestamp,
    /// Total run latency; stored for display, not evaluated.
    pub latency_ms: Option<f64>,
    pub fields: Vec<FieldValue>,
}

impl CheckResult {
    /// Returns the series key of one of this result's fields.
    pub fn series_key(&self, field: &FieldValue) -> SeriesKey {
        SeriesKey {
            system: self.system.clone(),
            healthcheck: self.healthcheck.clone(),
            environment: self.environment.clone(),
            field_path: field.path(),
        }
    }
}
