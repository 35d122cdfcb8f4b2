//! `kind: Healthcheck` documents: strategy, interval, collectors with assertions and the
//! template anomaly settings.

use std::collections::BTreeMap;

use super::anomaly::{self, FieldScope};
use super::envelope::{Metadata, check_qualified};
use super::fields::{Fields, Issues, as_list, index};
use super::node::Node;
use super::settings;
use crate::config::{Assertion, CollectorDefinition, CollectorInstance, Healthcheck, Source};

/// Assertion operators Checkstack's collectors implement. Others are kept with a warning.
const OPERATORS: [&str; 15] = [
    "equals",
    "notEquals",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "exists",
    "notExists",
    "lessThan",
    "lessThanOrEqual",
    "greaterThan",
    "greaterThanOrEqual",
    "isEmpty",
    "isTrue",
    "isFalse",
];

/// Returns the field names of a collector: a `Collector` document first, then the built-in
/// catalogue.
pub(crate) fn collector_fields(
    id: &str,
    declared: &BTreeMap<String, CollectorDefinition>,
) -> Option<Vec<String>> {
    match declared.get(id) {
        Some(collector) => Some(collector.fields.iter().map(|f| f.name.clone()).collect()),
        None => settings::builtin_fields(id),
    }
}

/// Reads the spec of a `Healthcheck` document.
pub(crate) fn read(
    name: &str,
    metadata: Metadata,
    spec: &Node,
    source: Source,
    declared: &BTreeMap<String, CollectorDefinition>,
    issues: &mut Issues,
) -> Option<Healthcheck> {
    let mut fields = Fields::open(spec, "spec", issues)?;
    let strategy = read_strategy(&mut fields, issues);
    let interval = read_interval(&mut fields, issues);
    let config = read_config(&mut fields, issues);
    let collectors = read_collectors(&mut fields, declared, issues);
    let scope = FieldScope {
        collectors: collectors
            .iter()
            .map(|c| {
                (
                    c.collector_id.as_str(),
                    collector_fields(&c.collector_id, declared),
                )
            })
            .collect(),
    };
    let template = fields.take("anomaly");
    let anomaly =
        template.and_then(|node| anomaly::read_template(node, "spec.anomaly", &scope, issues));
    fields.finish(issues);
    let healthcheck = Healthcheck {
        name: name.to_owned(),
        title: metadata.title,
        strategy: strategy?,
        interval_secs: interval?,
        config: config?,
        collectors,
        anomaly,
        source,
    };
    if crate::probes::is_supported(&healthcheck.strategy) {
        check_probe(&healthcheck, spec, issues);
    } else {
        warn_near_builtin_strategy(&healthcheck.strategy, spec, issues);
        warn_unknown_operators(&healthcheck, spec, issues);
    }
    Some(healthcheck)
}

/// Checks the settings of a strategy anomalyd runs itself, as its probe does when it starts,
/// so a bad URL or method is an error of the document rather than only a line in the log.
fn check_probe(healthcheck: &Healthcheck, spec: &Node, issues: &mut Issues) {
    match crate::probes::check(healthcheck) {
        Ok(warnings) => {
            for warning in warnings {
                let at = spec.locate(&warning.key).at;
                let path = format!("spec.{}", warning.key);
                issues.warning(
                    at,
                    &path,
                    format!("the built-in probe: {}", warning.message),
                );
            }
        }
        Err(error) => {
            let at = spec.locate(&error.key).at;
            let path = format!("spec.{}", error.key);
            issues.error(at, &path, error.reason);
        }
    }
}

fn read_strategy(fields: &mut Fields<'_>, issues: &mut Issues) -> Option<String> {
    let at = fields.take("strategy").map(|n| n.at);
    let strategy =
        fields.required_string("strategy", "for example healthcheck-http.http", issues)?;
    let at = at.unwrap_or(fields.at);
    let path = fields.child("strategy");
    check_qualified(&strategy, at, &path, "healthcheck-http.http", issues).then_some(strategy)
}

fn read_interval(fields: &mut Fields<'_>, issues: &mut Issues) -> Option<u32> {
    if fields.take("intervalSeconds").is_none() {
        let message = "seconds between runs, an integer of at least 1; the key is not `interval`";
        fields.missing("intervalSeconds", message, issues);
        return None;
    }
    fields.integer("intervalSeconds", 1, issues)
}

fn read_config(fields: &mut Fields<'_>, issues: &mut Issues) -> Option<serde_json::Value> {
    let Some(node) = fields.take("config") else {
        fields.missing(
            "config",
            "the strategy configuration, `{}` if it has none",
            issues,
        );
        return None;
    };
    Fields::open(node, &fields.child("config"), issues)?;
    Some(node.to_json())
}

fn read_collectors(
    fields: &mut Fields<'_>,
    declared: &BTreeMap<String, CollectorDefinition>,
    issues: &mut Issues,
) -> Vec<CollectorInstance> {
    let mut collectors: Vec<CollectorInstance> = Vec::new();
    let Some(node) = fields.take("collectors") else {
        return collectors;
    };
    let path = fields.child("collectors");
    let Some(items) = as_list(node, &path, issues) else {
        return collectors;
    };
    for (i, item) in items.iter().enumerate() {
        let Some(collector) = read_collector(item, &index(&path, i), issues) else {
            continue;
        };
        if collectors
            .iter()
            .any(|c| c.collector_id == collector.collector_id)
        {
            let message = format!(
                "collector {} is listed twice; a healthcheck runs each collector once because \
                 its field paths are keyed by collector id",
                collector.collector_id
            );
            issues.error(item.at, &index(&path, i), message);
            continue;
        }
        if collector_fields(&collector.collector_id, declared).is_none() {
            let message = format!(
                "collector {} is neither built in nor declared by a Collector document, so its \
                 fields have no annotations; declare it to give them defaults",
                collector.collector_id
            );
            issues.warning(item.at, &index(&path, i), message);
        }
        collectors.push(collector);
    }
    collectors
}

fn read_collector(node: &Node, path: &str, issues: &mut Issues) -> Option<CollectorInstance> {
    let mut fields = Fields::open(node, path, issues)?;
    let id_at = fields.take("collectorId").map_or(fields.at, |n| n.at);
    let id = fields.required_string(
        "collectorId",
        "for example healthcheck-http.request",
        issues,
    );
    let config = match fields.take("config") {
        Some(config) => {
            Fields::open(config, &fields.child("config"), issues).map(|_| config.to_json())
        }
        None => Some(serde_json::json!({})),
    };
    let assertions = read_assertions(&mut fields, issues);
    let id_path = fields.child("collectorId");
    fields.finish(issues);

    let id = id?;
    if !check_qualified(&id, id_at, &id_path, "healthcheck-http.request", issues) {
        return None;
    }
    Some(CollectorInstance {
        collector_id: id,
        config: config?,
        assertions,
    })
}

fn read_assertions(fields: &mut Fields<'_>, issues: &mut Issues) -> Vec<Assertion> {
    let Some(node) = fields.take("assertions") else {
        return Vec::new();
    };
    let path = fields.child("assertions");
    let Some(items) = as_list(node, &path, issues) else {
        return Vec::new();
    };
    let assertions = items.iter().enumerate();
    let assertions =
        assertions.filter_map(|(i, item)| read_assertion(item, &index(&path, i), issues));
    assertions.collect()
}

fn read_assertion(node: &Node, path: &str, issues: &mut Issues) -> Option<Assertion> {
    let mut fields = Fields::open(node, path, issues)?;
    let field = fields.required_string("field", "the result field to check", issues);
    let json_path = fields.string("jsonPath", issues);
    let operator = fields.required_string("operator", "for example equals", issues);
    let value = fields.take("value").map(Node::to_json);
    fields.finish(issues);
    Some(Assertion {
        field: field?,
        json_path,
        operator: operator?,
        value,
    })
}

/// Warns when a strategy differs from one anomalyd runs by a typo or two, because then no
/// probe runs and no other message reports it.
fn warn_near_builtin_strategy(strategy: &str, spec: &Node, issues: &mut Issues) {
    let near = crate::suggest::closest(strategy, crate::probes::STRATEGIES);
    if let Some(builtin) = near {
        let message = format!(
            "strategy {strategy} is not one anomalyd runs, so no probe runs and the healthcheck \
             waits for pushed results; did you mean {builtin}?"
        );
        issues.warning(spec.locate("strategy").at, "spec.strategy", message);
    }
}

/// Warns about assertion operators Checkstack does not know, for a strategy anomalyd does not
/// run. For the strategies it runs, the probe check reports them as errors instead.
fn warn_unknown_operators(healthcheck: &Healthcheck, spec: &Node, issues: &mut Issues) {
    for (i, collector) in healthcheck.collectors.iter().enumerate() {
        for (j, assertion) in collector.assertions.iter().enumerate() {
            if OPERATORS.contains(&assertion.operator.as_str()) {
                continue;
            }
            let path = format!("collectors[{i}].assertions[{j}].operator");
            let message = format!(
                "unknown operator \"{}\", kept as written; known operators: {}",
                assertion.operator,
                OPERATORS.join(", ")
            );
            issues.warning(spec.locate(&path).at, &format!("spec.{path}"), message);
        }
    }
}
