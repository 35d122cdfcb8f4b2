//! The `anomaly` settings blocks of `Healthcheck` and `System` documents: template and assignment
//! settings, field overrides, legacy keys and the mapping of bare override keys to canonical
//! field paths.

use std::collections::BTreeMap;

use super::fields::{Fields, Issues, join};
use super::node::{Key, Node};
use super::settings;
use crate::engine::{AssignmentSettings, BaselineWindow, FieldOverride, TemplateSettings};

/// Keys that older Checkstack versions accepted at the top level of a settings object.
const LEGACY_KEYS: [&str; 4] = [
    "sensitivity",
    "confirmationWindow",
    "driftEnabled",
    "driftThreshold",
];

/// The run-level latency key Checkstack accepts besides collector field paths.
const RUN_LATENCY_KEY: &str = "latencyMs";

/// The result fields one healthcheck produces, used to check and map override keys.
pub(crate) struct FieldScope<'a> {
    /// Qualified collector ids of the healthcheck, each with its field names when known.
    pub collectors: Vec<(&'a str, Option<Vec<String>>)>,
}

impl FieldScope<'_> {
    fn canonical_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        for (id, fields) in &self.collectors {
            for field in fields.iter().flatten() {
                keys.push(format!("collectors.{id}.{field}"));
            }
        }
        keys
    }
}

/// Reads `Healthcheck.spec.anomaly`: a complete settings record with defaults for absent keys.
pub(crate) fn read_template(
    node: &Node,
    path: &str,
    scope: &FieldScope<'_>,
    issues: &mut Issues,
) -> Option<TemplateSettings> {
    let mut fields = Fields::open(node, path, issues)?;
    reject_legacy_keys(&mut fields, issues);
    let enabled = fields.bool("enabled", issues).unwrap_or(true);
    let notify = fields.bool("notify", issues).unwrap_or(true);
    let window = read_window(&mut fields, issues);
    let overrides = read_overrides(&mut fields, scope, issues);
    fields.finish(issues);
    Some(TemplateSettings {
        enabled,
        baseline_window: window.unwrap_or_default(),
        notify,
        field_overrides: overrides,
    })
}

/// Reads the settings part of a `System.spec.anomaly[]` entry. The caller has taken
/// `healthcheckRef` already.
pub(crate) fn read_assignment(
    fields: &mut Fields<'_>,
    scope: &FieldScope<'_>,
    issues: &mut Issues,
) -> AssignmentSettings {
    reject_legacy_keys(fields, issues);
    AssignmentSettings {
        enabled: fields.bool("enabled", issues),
        baseline_window: read_window(fields, issues),
        notify: fields.bool("notify", issues),
        field_overrides: read_overrides(fields, scope, issues),
    }
}

fn reject_legacy_keys(fields: &mut Fields<'_>, issues: &mut Issues) {
    for key in LEGACY_KEYS {
        if let Some(at) = fields.take_key(key) {
            let message = format!(
                "the global key `{key}` is no longer supported; move it under \
                 fieldOverrides.\"collectors.<collector id>.<field>\".{key} for each field it \
                 should apply to"
            );
            issues.error(at, &fields.child(key), message);
        }
    }
}

fn read_window(fields: &mut Fields<'_>, issues: &mut Issues) -> Option<BaselineWindow> {
    let node = fields.take("baselineWindow")?;
    let path = fields.child("baselineWindow");
    let text = super::fields::as_string(node, &path, issues)?;
    match settings::parse_baseline_window(&text) {
        Ok(window) => Some(window),
        Err(message) => {
            issues.error(node.at, &path, message);
            None
        }
    }
}

fn read_overrides(
    fields: &mut Fields<'_>,
    scope: &FieldScope<'_>,
    issues: &mut Issues,
) -> BTreeMap<String, FieldOverride> {
    let mut overrides = BTreeMap::new();
    let Some(node) = fields.take("fieldOverrides") else {
        return overrides;
    };
    let path = fields.child("fieldOverrides");
    let Some(mut map) = Fields::open(node, &path, issues) else {
        return overrides;
    };
    for (key, value) in map.take_rest() {
        let entry_path = join(&path, &format!("\"{}\"", key.text));
        let Some(canonical) = canonical_key(key, &entry_path, scope, issues) else {
            continue;
        };
        let Some(field) = read_override(value, &entry_path, issues) else {
            continue;
        };
        if overrides.insert(canonical.clone(), field).is_some() {
            let message = format!("a second override for {canonical}; keep one entry per field");
            issues.error(key.at, &entry_path, message);
        }
    }
    overrides
}

/// Returns the canonical field path for an override key, mapping a bare field name when exactly
/// one collector of the healthcheck has that field.
fn canonical_key(
    key: &Key,
    path: &str,
    scope: &FieldScope<'_>,
    issues: &mut Issues,
) -> Option<String> {
    if key.text == RUN_LATENCY_KEY {
        let message =
            "run latency is stored for display but not evaluated; this override has no effect";
        issues.warning(key.at, path, message);
        return Some(key.text.clone());
    }
    if let Some(rest) = key.text.strip_prefix("collectors.") {
        check_canonical(rest, key, path, scope, issues);
        return Some(key.text.clone());
    }
    map_bare_key(key, path, scope, issues)
}

fn check_canonical(rest: &str, key: &Key, path: &str, scope: &FieldScope<'_>, issues: &mut Issues) {
    let owner = scope.collectors.iter().find(|(id, _)| {
        rest.strip_prefix(id)
            .is_some_and(|field| field.starts_with('.'))
    });
    let Some((id, known)) = owner else {
        let ids: Vec<&str> = scope.collectors.iter().map(|(id, _)| *id).collect();
        let message = format!(
            "no collector of this healthcheck produces {}; its collectors are: {}",
            key.text,
            list_or_none(&ids)
        );
        issues.warning(key.at, path, message);
        return;
    };
    let field = &rest[id.len() + 1..];
    if let Some(names) = known
        && !names.iter().any(|name| name == field)
    {
        let message = format!(
            "collector {id} has no field `{field}`; its fields are: {}",
            names.join(", ")
        );
        issues.warning(key.at, path, message);
    }
}

fn map_bare_key(
    key: &Key,
    path: &str,
    scope: &FieldScope<'_>,
    issues: &mut Issues,
) -> Option<String> {
    let candidates: Vec<String> = scope
        .collectors
        .iter()
        .filter(|(_, fields)| fields.iter().flatten().any(|f| *f == key.text))
        .map(|(id, _)| format!("collectors.{id}.{}", key.text))
        .collect();
    match candidates.as_slice() {
        [canonical] => {
            let message = format!("bare field name mapped to {canonical}; write that key instead");
            issues.warning(key.at, path, message);
            Some(canonical.clone())
        }
        [] => {
            let message = format!(
                "unknown field `{}`: no collector of this healthcheck has it; write the key as \
                 collectors.<collector id>.<field>, one of: {}",
                key.text,
                list_or_none(&scope.canonical_keys())
            );
            issues.error(key.at, path, message);
            None
        }
        several => {
            let message = format!(
                "ambiguous field `{}`: several collectors have it; write one of: {}",
                key.text,
                several.join(", ")
            );
            issues.error(key.at, path, message);
            None
        }
    }
}

fn list_or_none<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        return "(none)".to_owned();
    }
    let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    items.join(", ")
}

/// Reads one field override object and checks its ranges.
pub(crate) fn read_override(node: &Node, path: &str, issues: &mut Issues) -> Option<FieldOverride> {
    let mut fields = Fields::open(node, path, issues)?;
    let errors_before = issues.error_count();
    let field = FieldOverride {
        enabled: fields.bool("enabled", issues),
        direction: read_direction(&mut fields, "direction", issues),
        sensitivity: fields.number("sensitivity", issues),
        confirmation_window: fields.integer_in(
            "confirmationWindow",
            1,
            crate::engine::defaults::MAX_CONFIRMATION_WINDOW,
            issues,
        ),
        drift_enabled: fields.bool("driftEnabled", issues),
        drift_threshold: fields.number("driftThreshold", issues),
        min_absolute_delta: fields.number("minAbsoluteDelta", issues),
        min_relative_delta: fields.number("minRelativeDelta", issues),
    };
    for rejected in settings::validate_override(&field) {
        let at = fields.take(&rejected.key).map_or(fields.at, |n| n.at);
        issues.error(at, &fields.child(&rejected.key), rejected.message);
    }
    fields.finish(issues);
    (issues.error_count() == errors_before).then_some(field)
}

pub(crate) fn read_direction(
    fields: &mut Fields<'_>,
    key: &str,
    issues: &mut Issues,
) -> Option<crate::engine::Direction> {
    let node = fields.take(key)?;
    let path = fields.child(key);
    let text = super::fields::as_string(node, &path, issues)?;
    match settings::parse_direction(&text) {
        Ok(direction) => Some(direction),
        Err(message) => {
            issues.error(node.at, &path, message);
            None
        }
    }
}
