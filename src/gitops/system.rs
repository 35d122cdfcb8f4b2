//! `kind: System` documents: the healthchecks assigned to a system and the per-assignment
//! anomaly settings.

use std::collections::BTreeMap;

use super::anomaly::{self, FieldScope};
use super::envelope::Metadata;
use super::fields::{Fields, Issues, as_list, index};
use super::healthcheck::collector_fields;
use super::node::Node;
use crate::config::{AssignmentOptions, CollectorDefinition, Healthcheck, Source, System};
use crate::engine::AssignmentSettings;

/// Checkstack keys of a System spec that anomalyd accepts but does not use.
const UNUSED_KEYS: [&str; 3] = ["groups", "environments", "dependencies"];

/// Entities a System document may refer to.
pub(crate) struct SystemScope<'a> {
    pub healthchecks: &'a BTreeMap<String, Healthcheck>,
    pub collectors: &'a BTreeMap<String, CollectorDefinition>,
}

/// Reads the spec of a `System` document.
pub(crate) fn read(
    name: &str,
    metadata: Metadata,
    spec: &Node,
    source: Source,
    scope: &SystemScope<'_>,
    issues: &mut Issues,
) -> Option<System> {
    let mut fields = Fields::open(spec, "spec", issues)?;
    reject_singular_namespace(&mut fields, issues);
    let options = read_assignments(&mut fields, scope, issues);
    let settings = read_anomaly(&mut fields, scope, &options, issues);
    warn_unused(&mut fields, issues);
    fields.finish(issues);
    Some(System {
        name: name.to_owned(),
        title: metadata.title,
        description: metadata.description,
        healthchecks: options.keys().cloned().collect(),
        anomaly: settings,
        healthcheck_options: options,
        source,
    })
}

fn reject_singular_namespace(fields: &mut Fields<'_>, issues: &mut Issues) {
    if let Some(at) = fields.take_key("healthcheck") {
        let message = "unknown namespace `healthcheck`; assignments go under `healthchecks` \
                       (plural), as a list of entries with `ref: {kind: Healthcheck, name: ...}`";
        issues.error(at, &fields.child("healthcheck"), message);
    }
}

fn warn_unused(fields: &mut Fields<'_>, issues: &mut Issues) {
    for key in UNUSED_KEYS {
        if let Some(at) = fields.take_key(key) {
            let message =
                format!("`{key}` is a Checkstack catalog key that anomalyd does not use; ignored");
            issues.warning(at, &fields.child(key), message);
        }
    }
}

fn read_assignments(
    fields: &mut Fields<'_>,
    scope: &SystemScope<'_>,
    issues: &mut Issues,
) -> BTreeMap<String, AssignmentOptions> {
    let mut assignments = BTreeMap::new();
    let Some(node) = fields.take("healthchecks") else {
        return assignments;
    };
    let path = fields.child("healthchecks");
    let Some(items) = as_list(node, &path, issues) else {
        return assignments;
    };
    for (i, item) in items.iter().enumerate() {
        let item_path = index(&path, i);
        let Some((name, options)) = read_assignment(item, &item_path, scope, issues) else {
            continue;
        };
        if assignments.insert(name.clone(), options).is_some() {
            let message = format!("healthcheck {name} is assigned twice; keep one entry");
            issues.error(item.at, &item_path, message);
        }
    }
    assignments
}

fn read_assignment(
    node: &Node,
    path: &str,
    scope: &SystemScope<'_>,
    issues: &mut Issues,
) -> Option<(String, AssignmentOptions)> {
    let mut fields = Fields::open(node, path, issues)?;
    let name = read_reference(&mut fields, "ref", scope, issues);
    let options = AssignmentOptions {
        degraded_threshold: fields.integer("degradedThreshold", 1, issues),
        unhealthy_threshold: fields.integer("unhealthyThreshold", 1, issues),
        satellite_ids: fields
            .string_list("satelliteIds", issues)
            .unwrap_or_default(),
        include_local: fields.bool("includeLocal", issues),
        notification_policy: read_policy(&mut fields, issues),
    };
    fields.finish(issues);
    Some((name?, options))
}

fn read_policy(fields: &mut Fields<'_>, issues: &mut Issues) -> Option<serde_json::Value> {
    let node = fields.take("notificationPolicy")?;
    Fields::open(node, &fields.child("notificationPolicy"), issues)?;
    Some(node.to_json())
}

/// Reads a `{kind: Healthcheck, name}` reference and checks that it resolves.
fn read_reference(
    fields: &mut Fields<'_>,
    key: &str,
    scope: &SystemScope<'_>,
    issues: &mut Issues,
) -> Option<String> {
    let Some(node) = fields.take(key) else {
        fields.missing(key, "{kind: Healthcheck, name: <healthcheck name>}", issues);
        return None;
    };
    let path = fields.child(key);
    let mut reference = Fields::open(node, &path, issues)?;
    let kind_at = reference.take("kind").map_or(node.at, |n| n.at);
    let kind = reference.required_string("kind", "Healthcheck", issues);
    let name = reference.required_string("name", "the healthcheck's metadata.name", issues);
    reference.finish(issues);
    if let Some(kind) = kind.filter(|k| k != "Healthcheck") {
        let message = format!("a reference here must have kind Healthcheck, found {kind}");
        issues.error(kind_at, &super::fields::join(&path, "kind"), message);
        return None;
    }
    let name = name?;
    if !scope.healthchecks.contains_key(&name) {
        issues.error(node.at, &path, unresolved_message(&name, scope));
        return None;
    }
    Some(name)
}

fn unresolved_message(name: &str, scope: &SystemScope<'_>) -> String {
    let known: Vec<&str> = scope.healthchecks.keys().map(String::as_str).collect();
    let known = if known.is_empty() {
        "(none)".to_owned()
    } else {
        known.join(", ")
    };
    format!(
        "healthcheck \"{name}\" is not defined by any document of the folder; define it or fix \
         the name (defined healthchecks: {known})"
    )
}

fn read_anomaly(
    fields: &mut Fields<'_>,
    scope: &SystemScope<'_>,
    assigned: &BTreeMap<String, AssignmentOptions>,
    issues: &mut Issues,
) -> BTreeMap<String, AssignmentSettings> {
    let mut entries = BTreeMap::new();
    let Some(node) = fields.take("anomaly") else {
        return entries;
    };
    let path = fields.child("anomaly");
    let Some(items) = as_list(node, &path, issues) else {
        return entries;
    };
    for (i, item) in items.iter().enumerate() {
        let item_path = index(&path, i);
        let Some((name, settings)) = read_anomaly_entry(item, &item_path, scope, issues) else {
            continue;
        };
        if !assigned.contains_key(&name) {
            let message = format!(
                "healthcheck {name} is not listed under spec.healthchecks, so these settings \
                 apply only once it is assigned"
            );
            issues.warning(item.at, &item_path, message);
        }
        if entries.insert(name.clone(), settings).is_some() {
            let message = format!("a second anomaly entry for healthcheck {name}; keep one");
            issues.error(item.at, &item_path, message);
        }
    }
    entries
}

fn read_anomaly_entry(
    node: &Node,
    path: &str,
    scope: &SystemScope<'_>,
    issues: &mut Issues,
) -> Option<(String, AssignmentSettings)> {
    let mut fields = Fields::open(node, path, issues)?;
    let Some(name) = read_reference(&mut fields, "healthcheckRef", scope, issues) else {
        // Override keys cannot be checked without the healthcheck's collectors.
        fields.take_rest();
        return None;
    };
    let collectors = scope
        .healthchecks
        .get(&name)
        .map(|h| h.collectors.as_slice())
        .unwrap_or_default();
    let field_scope = FieldScope {
        collectors: collectors
            .iter()
            .map(|c| {
                (
                    c.collector_id.as_str(),
                    collector_fields(&c.collector_id, scope.collectors),
                )
            })
            .collect(),
    };
    let settings = anomaly::read_assignment(&mut fields, &field_scope, issues);
    fields.finish(issues);
    Some((name, settings))
}
