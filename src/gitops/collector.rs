//! `kind: Collector` documents (`anomalyd.dev/v1`): the result fields of a custom collector with
//! the same `x-anomaly-*` annotations the built-in catalogue uses.

use super::anomaly::read_direction;
use super::envelope::check_qualified;
use super::fields::{Fields, Issues};
use super::node::Node;
use super::settings;
use crate::config::{CollectorDefinition, Source};
use crate::engine::{Direction, FieldType, SchemaField};

/// Chart keys of the annotation format that anomalyd accepts and does not use.
const CHART_KEYS: [&str; 7] = [
    "x-chart-type",
    "x-chart-priority",
    "x-chart-good-direction",
    "x-chart-true-label",
    "x-chart-false-label",
    "x-ephemeral",
    "x-jsonpath",
];

/// Reads the spec of a `Collector` document.
pub(crate) fn read(
    spec: &Node,
    source: Source,
    issues: &mut Issues,
) -> Option<CollectorDefinition> {
    let mut fields = Fields::open(spec, "spec", issues)?;
    let id_at = fields.take("id").map_or(fields.at, |n| n.at);
    let id = fields.required_string(
        "id",
        "the qualified collector id, for example acme.queue",
        issues,
    );
    let schema = read_fields(&mut fields, issues);
    fields.finish(issues);
    let id = id?;
    check_qualified(&id, id_at, "spec.id", "acme.queue", issues).then_some(())?;
    if settings::builtin_fields(&id).is_some() {
        let message = format!("collector {id} is built in; this document replaces its fields");
        issues.warning(id_at, "spec.id", message);
    }
    Some(CollectorDefinition {
        id,
        fields: schema,
        source,
    })
}

fn read_fields(fields: &mut Fields<'_>, issues: &mut Issues) -> Vec<SchemaField> {
    let Some(node) = fields.take("fields") else {
        fields.missing(
            "fields",
            "a map of field name to its type and annotations",
            issues,
        );
        return Vec::new();
    };
    let path = fields.child("fields");
    let Some(mut map) = Fields::open(node, &path, issues) else {
        return Vec::new();
    };
    let entries = map.take_rest();
    let schema = entries
        .into_iter()
        .filter_map(|(key, value)| read_field(&key.text, value, &map.child(&key.text), issues));
    schema.collect()
}

fn read_field(name: &str, node: &Node, path: &str, issues: &mut Issues) -> Option<SchemaField> {
    let mut fields = Fields::open(node, path, issues)?;
    let field_type = read_type(&mut fields, issues);
    let direction = read_direction(&mut fields, "x-anomaly-direction", issues);
    let enabled = fields
        .bool("x-anomaly-enabled", issues)
        .unwrap_or(direction.is_some());
    let field = SchemaField {
        name: name.to_owned(),
        field_type: field_type?,
        enabled,
        direction,
        sensitivity: fields.number("x-anomaly-sensitivity", issues),
        confirmation_window: fields.integer("x-anomaly-confirmation-window", 1, issues),
        drift_enabled: fields.bool("x-anomaly-drift-enabled", issues),
        drift_threshold: fields.number("x-anomaly-drift-threshold", issues),
        min_absolute_delta: fields.number("x-anomaly-min-absolute-delta", issues),
        min_relative_delta: fields.number("x-anomaly-min-relative-delta", issues),
        unit: fields.string("x-chart-unit", issues),
        label: fields.string("x-chart-label", issues),
    };
    for key in CHART_KEYS {
        fields.take(key);
    }
    let consistent = check_annotations(&field, &fields, issues);
    fields.finish(issues);
    consistent.then_some(field)
}

fn read_type(fields: &mut Fields<'_>, issues: &mut Issues) -> Option<FieldType> {
    let at = fields.take("type").map_or(fields.at, |n| n.at);
    let text = fields.required_string("type", "number, string or boolean", issues)?;
    let field_type = settings::parse_field_type(&text);
    if field_type.is_none() {
        let message = format!("unknown field type \"{text}\"; allowed: number, string, boolean");
        issues.error(at, &fields.child("type"), message);
    }
    field_type
}

/// Checks the combinations the annotation format forbids.
fn check_annotations(field: &SchemaField, fields: &Fields<'_>, issues: &mut Issues) -> bool {
    let path = fields.path();
    let problem = if field.enabled && field.direction.is_none() {
        Some("x-anomaly-enabled: true needs x-anomaly-direction".to_owned())
    } else if !field.enabled && field.direction.is_some() {
        Some("x-anomaly-direction is not allowed when x-anomaly-enabled is false".to_owned())
    } else if field.field_type != FieldType::Number
        && field.direction.is_some_and(|d| d != Direction::Dominance)
    {
        Some("a string or boolean field can only use the direction dominance".to_owned())
    } else if field.direction == Some(Direction::Dominance)
        && (field.min_absolute_delta.is_some() || field.min_relative_delta.is_some())
    {
        Some("the delta floors apply to numeric directions only, not to dominance".to_owned())
    } else {
        settings::validate_schema_field(field)
            .err()
            .map(|(key, message)| format!("{key}: {message}"))
    };
    if let Some(problem) = &problem {
        issues.error(fields.at, path, problem.clone());
    }
    problem.is_none()
}
