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

/// Maximum length of a field name inside a collector.
pub const MAX_FIELD_LEN: usize = 128;

/// Tells whether `field` is a valid field name inside a collector: 1 to [`MAX_FIELD_LEN`]
/// letters, digits, `_` or `-`.
pub fn is_field_name(field: &str) -> bool {
    let chars_ok = field
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    !field.is_empty() && field.len() <= MAX_FIELD_LEN && chars_ok
}

/// Checks a canonical field path `collectors.<collector id>.<field>` with the rules the results
/// API applies to collector ids and field names. The error names the path and the broken rule.
pub fn check_field_path(path: &str) -> Result<(), String> {
    let shape = || {
        format!("field {path:?} is not a canonical path; write collectors.<collector id>.<field>")
    };
    let rest = path.strip_prefix("collectors.").ok_or_else(shape)?;
    let (collector_id, field) = rest.rsplit_once('.').ok_or_else(shape)?;
    for part in collector_id.split('.') {
        crate::ingest::check_name(part)
            .map_err(|reason| format!("field {path:?} has an invalid collector id: {reason}"))?;
    }
    if !is_field_name(field) {
        return Err(format!(
            "field {path:?} has an invalid field name {field:?}: use 1 to {MAX_FIELD_LEN} \
             letters, digits, '_' or '-'"
        ));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_path_rules() {
        for valid in [
            "collectors.healthcheck-http.request.responseTimeMs",
            "collectors.replay.csv.value",
            "collectors.c.status_code",
        ] {
            assert_eq!(check_field_path(valid), Ok(()), "{valid}");
        }
        let cases = [
            ("responseTimeMs", "not a canonical path"),
            ("collectors.x", "not a canonical path"),
            ("collectors.Bad!.value", "invalid collector id"),
            ("collectors..value", "invalid collector id"),
            ("collectors.http.", "invalid field name"),
            ("collectors.http.a b", "invalid field name"),
        ];
        for (path, expected) in cases {
            let reason = check_field_path(path).expect_err(path);
            assert!(reason.contains(expected), "{path}: {reason}");
        }
    }
}
