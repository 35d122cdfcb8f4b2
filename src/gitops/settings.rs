//! The boundary to the engine's settings rules: baseline windows, field override ranges,
//! collector annotations and the built-in field catalogue. Validation of values lives in the
//! engine; this file only adapts its answers to the YAML reader.

use crate::engine::{BaselineWindow, Direction, FieldOverride, FieldType, SchemaField};

/// Parses a baseline window written `<n>h` or `<n>d`, from 1h to 90d.
pub(crate) fn parse_baseline_window(text: &str) -> Result<BaselineWindow, String> {
    let invalid =
        || format!("invalid baseline window \"{text}\": write <n>h or <n>d, from 1h to 90d");
    let (digits, hours_per_unit) = match text.strip_suffix('h') {
        Some(digits) => (digits, 1),
        None => (text.strip_suffix('d').ok_or_else(invalid)?, 24),
    };
    let count: u32 = digits.parse().map_err(|_| invalid())?;
    let hours = count.checked_mul(hours_per_unit).ok_or_else(invalid)?;
    if !(1..=90 * 24).contains(&hours) {
        return Err(invalid());
    }
    // NOTE: built through serde because the engine contract has no public constructor yet.
    serde_json::from_value(serde_json::json!({ "hours": hours })).map_err(|_| invalid())
}

/// Checks the ranges of one field override; the error names the key and the allowed range.
pub(crate) fn validate_override(field: &FieldOverride) -> Result<(), (&'static str, String)> {
    positive("sensitivity", field.sensitivity)?;
    positive("driftThreshold", field.drift_threshold)?;
    non_negative("minAbsoluteDelta", field.min_absolute_delta)?;
    non_negative("minRelativeDelta", field.min_relative_delta)?;
    if field.confirmation_window == Some(0) {
        let message = "must be an integer of at least 1, found 0".to_owned();
        return Err(("confirmationWindow", message));
    }
    Ok(())
}

fn positive(key: &'static str, value: Option<f64>) -> Result<(), (&'static str, String)> {
    match value {
        Some(v) if !(v > 0.0 && v.is_finite()) => {
            Err((key, format!("must be a number greater than 0, found {v}")))
        }
        _ => Ok(()),
    }
}

fn non_negative(key: &'static str, value: Option<f64>) -> Result<(), (&'static str, String)> {
    match value {
        Some(v) if !(v >= 0.0 && v.is_finite()) => {
            Err((key, format!("must be a number of at least 0, found {v}")))
        }
        _ => Ok(()),
    }
}

/// Parses a direction name as the YAML writes it.
pub(crate) fn parse_direction(text: &str) -> Option<Direction> {
    match text {
        "higher-is-better" => Some(Direction::HigherIsBetter),
        "lower-is-better" => Some(Direction::LowerIsBetter),
        "deviation" => Some(Direction::Deviation),
        "dominance" => Some(Direction::Dominance),
        _ => None,
    }
}

/// Parses a result field type as a `Collector` document writes it.
pub(crate) fn parse_field_type(text: &str) -> Option<FieldType> {
    match text {
        "number" => Some(FieldType::Number),
        "string" => Some(FieldType::String),
        "boolean" => Some(FieldType::Boolean),
        _ => None,
    }
}

/// Returns the names of the result fields of a built-in collector, or `None` when the
/// catalogue does not know the collector.
pub(crate) fn builtin_fields(collector_id: &str) -> Option<Vec<String>> {
    // NOTE: the built-in catalogue is not available yet, so only `Collector` documents are known.
    let _ = collector_id;
    None
}

/// Checks a schema field built from `x-anomaly-*` annotations.
pub(crate) fn validate_schema_field(field: &SchemaField) -> Result<(), (&'static str, String)> {
    let as_override = FieldOverride {
        enabled: Some(field.enabled),
        direction: field.direction,
        sensitivity: field.sensitivity,
        confirmation_window: field.confirmation_window,
        drift_enabled: field.drift_enabled,
        drift_threshold: field.drift_threshold,
        min_absolute_delta: field.min_absolute_delta,
        min_relative_delta: field.min_relative_delta,
    };
    validate_override(&as_override)
}
