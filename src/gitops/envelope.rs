//! The document envelope (`apiVersion`, `kind`, `metadata`, `spec`) and the entity types a
//! document turns into.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::fields::{Fields, Issues, as_string};
use super::node::{Node, NodeValue, Position};
use crate::config::{CollectorDefinition, Healthcheck, NotifierFilters, NotifierFormat, System};

pub(crate) const CHECKSTACK_API: &str = "checkstack.io/v1alpha1";
pub(crate) const ANOMALYD_API: &str = "anomalyd.dev/v1";

/// Checkstack kinds anomalyd accepts in a file but does not use.
const IGNORED_KINDS: [&str; 6] = [
    "Group",
    "Environment",
    "SLO",
    "Satellite",
    "Automation",
    "View",
];

/// Maximum length of `metadata.name`.
const MAX_NAME_LEN: usize = 63;

/// The kinds anomalyd applies, in the order they are validated: every kind is validated after
/// the kinds its documents refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EntityKind {
    Collector,
    Healthcheck,
    System,
    Notifier,
}

impl EntityKind {
    pub const ALL: [EntityKind; 4] = [
        EntityKind::Collector,
        EntityKind::Healthcheck,
        EntityKind::System,
        EntityKind::Notifier,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Collector => "Collector",
            EntityKind::Healthcheck => "Healthcheck",
            EntityKind::System => "System",
            EntityKind::Notifier => "Notifier",
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            EntityKind::Healthcheck | EntityKind::System => CHECKSTACK_API,
            EntityKind::Collector | EntityKind::Notifier => ANOMALYD_API,
        }
    }

    fn parse(api_version: &str, kind: &str) -> Option<Self> {
        let found = Self::ALL.into_iter().find(|k| k.as_str() == kind)?;
        (found.api_version() == api_version).then_some(found)
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A notifier as written in YAML: the url and header values keep their `${{ secrets.NAME }}`
/// templates, so secret values are never stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NotifierRecord {
    pub name: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub timeout_secs: u32,
    pub format: NotifierFormat,
    pub filters: NotifierFilters,
    pub source: crate::config::Source,
}

/// The validated definition of one entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Entity {
    Healthcheck(Healthcheck),
    System(System),
    Collector(CollectorDefinition),
    Notifier(NotifierRecord),
}

impl Entity {
    pub fn source(&self) -> &crate::config::Source {
        match self {
            Entity::Healthcheck(e) => &e.source,
            Entity::System(e) => &e.source,
            Entity::Collector(e) => &e.source,
            Entity::Notifier(e) => &e.source,
        }
    }
}

/// Kind, name and spec of a document, as read from its envelope.
pub(crate) enum Header<'a> {
    /// A kind anomalyd applies, with its name (if valid) and its `spec`.
    Applied {
        kind: EntityKind,
        name: Option<String>,
        metadata: Metadata,
        spec: Option<&'a Node>,
    },
    /// A Checkstack kind anomalyd does not use. `at` is the position of its `kind` value.
    Ignored {
        kind: String,
        name: Option<String>,
        at: Position,
    },
    /// An invalid envelope, with the reasons recorded in the issues.
    Invalid {
        kind: Option<String>,
        name: Option<String>,
    },
}

/// The parts of `metadata` the configuration keeps.
#[derive(Debug, Default)]
pub(crate) struct Metadata {
    pub title: Option<String>,
    pub description: Option<String>,
    /// Position of the `metadata.name` value, or of the document when it has none.
    pub name_at: Position,
}

/// Reads the envelope of one document.
pub(crate) fn read_header<'a>(root: &'a Node, issues: &mut Issues) -> Header<'a> {
    let Some(mut top) = Fields::open(root, "", issues) else {
        return Header::Invalid {
            kind: None,
            name: None,
        };
    };
    let api_version = top.required_string("apiVersion", CHECKSTACK_API, issues);
    let kind_node = top.take("kind");
    let kind = top.required_string("kind", "for example Healthcheck", issues);
    let (name, metadata) = read_metadata(&mut top, issues);
    let spec = top.take("spec");
    top.finish(issues);

    let (Some(api_version), Some(kind_text)) = (api_version, kind) else {
        return Header::Invalid { kind: None, name };
    };

    if let Some(kind) = EntityKind::parse(&api_version, &kind_text) {
        return Header::Applied {
            kind,
            name,
            metadata,
            spec,
        };
    }

    let at = kind_node.map_or(root.at, |n| n.at);
    if api_version == CHECKSTACK_API && IGNORED_KINDS.contains(&kind_text.as_str()) {
        return Header::Ignored {
            kind: kind_text,
            name,
            at,
        };
    }

    issues.error(at, "kind", unknown_kind_message(&api_version, &kind_text));
    Header::Invalid {
        kind: Some(kind_text),
        name,
    }
}

fn unknown_kind_message(api_version: &str, kind: &str) -> String {
    format!(
        "unknown kind {kind} for apiVersion {api_version}; anomalyd applies Healthcheck and \
         System under {CHECKSTACK_API} and Collector and Notifier under {ANOMALYD_API}, and \
         ignores {} under {CHECKSTACK_API}",
        IGNORED_KINDS.join(", ")
    )
}

fn read_metadata(top: &mut Fields<'_>, issues: &mut Issues) -> (Option<String>, Metadata) {
    let Some(node) = top.take("metadata") else {
        top.missing("metadata", "a mapping with at least `name`", issues);
        return (None, Metadata::default());
    };
    let Some(mut fields) = Fields::open(node, "metadata", issues) else {
        return (None, Metadata::default());
    };
    let name_at = fields.take("name").map_or(fields.at, |n| n.at);
    let name = read_name(&mut fields, issues);
    let metadata = Metadata {
        title: fields.string("title", issues),
        description: fields.string("description", issues),
        name_at,
    };
    read_string_map(&mut fields, "labels", issues);
    read_string_map(&mut fields, "annotations", issues);
    fields.string_list("tags", issues);
    fields.finish(issues);
    (name, metadata)
}

fn read_name(fields: &mut Fields<'_>, issues: &mut Issues) -> Option<String> {
    let node = fields.take("name");
    let name = fields.required_string("name", "the entity's identity", issues)?;
    let at = node.map_or(fields.at, |n| n.at);
    match name_problem(&name) {
        Some(problem) => {
            issues.error(at, "metadata.name", problem);
            None
        }
        None => Some(name),
    }
}

/// Explains why a name is not allowed, or returns `None` for a valid name.
pub(crate) fn name_problem(name: &str) -> Option<String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if first_ok && rest_ok && name.len() <= MAX_NAME_LEN {
        return None;
    }
    Some(format!(
        "invalid name \"{name}\": use lowercase letters, digits and hyphens, starting with a \
         letter or digit (^[a-z0-9][a-z0-9-]*$), at most {MAX_NAME_LEN} characters"
    ))
}

/// Reads a map of strings (labels, annotations, headers). Non-string values are errors.
pub(crate) fn read_string_map(
    fields: &mut Fields<'_>,
    key: &str,
    issues: &mut Issues,
) -> Option<BTreeMap<String, (String, Position)>> {
    let node = fields.take(key)?;
    let mut map = Fields::open(node, &fields.child(key), issues)?;
    let mut values = BTreeMap::new();
    for (entry_key, value) in map.take_rest() {
        let path = map.child(&entry_key.text);
        if let NodeValue::Str(_) = value.value {
            let text = as_string(value, &path, issues)?;
            values.insert(entry_key.text.clone(), (text, value.at));
        } else {
            let message = "values must be strings; quote numbers and booleans, for example \"1\"";
            issues.error(value.at, &path, message);
        }
    }
    Some(values)
}

/// Checks that an id is qualified as `<plugin id>.<id>`, for example `healthcheck-http.request`.
pub(crate) fn check_qualified(
    id: &str,
    at: Position,
    path: &str,
    example: &str,
    issues: &mut Issues,
) -> bool {
    let qualified = id
        .split_once('.')
        .is_some_and(|(plugin, rest)| !plugin.is_empty() && !rest.is_empty());
    if !qualified {
        let message = format!(
            "\"{id}\" is not a fully qualified id; write <plugin id>.<id>, for example {example}"
        );
        issues.error(at, path, message);
    }
    qualified
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rule_cases() {
        let longest = "a".repeat(MAX_NAME_LEN);
        let too_long = "a".repeat(MAX_NAME_LEN + 1);
        let cases: [(&str, bool); 10] = [
            ("web", true),
            ("0web", true),
            ("web-", true),
            ("web--api", true),
            (&longest, true),
            (&too_long, false),
            ("-web", false),
            ("Web", false),
            ("web_api", false),
            ("", false),
        ];
        for (name, valid) in cases {
            assert_eq!(name_problem(name).is_none(), valid, "name {name:?}");
        }
    }

    #[test]
    fn kind_needs_its_api_version() {
        assert_eq!(
            EntityKind::parse(CHECKSTACK_API, "System"),
            Some(EntityKind::System)
        );
        assert_eq!(
            EntityKind::parse(ANOMALYD_API, "Notifier"),
            Some(EntityKind::Notifier)
        );
        assert_eq!(EntityKind::parse(ANOMALYD_API, "System"), None);
        assert_eq!(EntityKind::parse(CHECKSTACK_API, "HealthCheck"), None);
    }
}
