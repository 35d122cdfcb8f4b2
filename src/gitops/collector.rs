//! `kind: Collector` documents (`anomalyd.dev/v1`): the result fields of a custom collector with
//! the same `x-anomaly-*` annotations the built-in catalogue uses.

use super::anomaly::read_direction;
use super::envelope::check_qualified;
use super::fields::{Fields, Issues};
use super::node::Node;
use super::settings;
use crate::config::{CollectorDefinition, Source};
use crate::engine::{FieldAnnotations, FieldType, SchemaField};

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
    if !check_qualified(&id, id_at, "spec.id", "acme.queue", issues) {
        return None;
    }
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
    let errors_before = issues.error_count();
    let annotations = FieldAnnotations {
        field_type: read_type(&mut fields, issues),
        enabled: fields.bool("x-anomaly-enabled", issues),
        direction: read_direction(&mut fields, "x-anomaly-direction", issues),
        sensitivity: fields.number("x-anomaly-sensitivity", issues),
        confirmation_window: fields.integer_in(
            "x-anomaly-confirmation-window",
            1,
            crate::engine::defaults::MAX_CONFIRMATION_WINDOW,
            issues,
        ),
        drift_enabled: fields.bool("x-anomaly-drift-enabled", issues),
        drift_threshold: fields.number("x-anomaly-drift-threshold", issues),
        min_absolute_delta: fields.number("x-anomaly-min-absolute-delta", issues),
        min_relative_delta: fields.number("x-anomaly-min-relative-delta", issues),
        unit: fields.string("x-chart-unit", issues),
        label: fields.string("x-chart-label", issues),
        note: None,
    };
    for key in CHART_KEYS {
        fields.take(key);
    }
    if issues.error_count() > errors_before {
        fields.finish(issues);
        return None;
    }
    let field = settings::schema_field(name, &annotations).map_err(|rejected| {
        for error in rejected {
            let at = fields.take(&error.key).map_or(fields.at, |n| n.at);
            issues.error(at, &fields.child(&error.key), error.message);
        }
    });
    fields.finish(issues);
    field.ok()
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
