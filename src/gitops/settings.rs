//! The boundary to the engine's settings rules: baseline windows, directions, field override
//! ranges, collector annotations and the built-in field catalogue. The rules themselves live in
//! the engine, and this file only adapts their results to the YAML reader.

use crate::engine::{
    BaselineWindow, Catalogue, Direction, FieldAnnotations, FieldOverride, FieldType, SchemaField,
    SettingsError,
};

/// One rejected setting: the key relative to the object checked, and why.
pub(crate) struct Rejected {
    pub key: String,
    pub message: String,
}

fn rejected(errors: Vec<SettingsError>) -> Vec<Rejected> {
    let rejected = errors.into_iter().map(|error| match error {
        SettingsError::Invalid { key, message } => Rejected { key, message },
    });
    rejected.collect()
}

/// Parses a baseline window written `<n>h` or `<n>d`, from 1h to 90d.
pub(crate) fn parse_baseline_window(text: &str) -> Result<BaselineWindow, String> {
    BaselineWindow::parse(text).map_err(|e| match e {
        SettingsError::Invalid { message, .. } => message,
    })
}

/// Parses a direction name. The error lists the allowed names.
pub(crate) fn parse_direction(text: &str) -> Result<Direction, String> {
    Direction::parse(text).map_err(|e| match e {
        SettingsError::Invalid { message, .. } => message,
    })
}

/// Checks the ranges of one field override, keyed by the override's own keys (`sensitivity`).
pub(crate) fn validate_override(field: &FieldOverride) -> Vec<Rejected> {
    field.validate().err().map(rejected).unwrap_or_default()
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
    let collector = Catalogue::builtin().collector(collector_id)?;
    Some(collector.fields.iter().map(|f| f.name.clone()).collect())
}

/// Validates the annotations of field `name` and converts them. Error keys are the annotation
/// keys (`x-anomaly-direction`).
pub(crate) fn schema_field(
    name: &str,
    annotations: &FieldAnnotations,
) -> Result<SchemaField, Vec<Rejected>> {
    let prefix = format!("{name}.");
    annotations.to_schema_field(name).map_err(|errors| {
        let mut errors = rejected(errors);
        for error in &mut errors {
            if let Some(key) = error.key.strip_prefix(&prefix) {
                error.key = key.to_owned();
            }
        }
        errors
    })
}
