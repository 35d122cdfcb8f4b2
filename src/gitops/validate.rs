//! Turning the documents of the folder into entities: envelope checks, duplicate names,
//! validation kind by kind in reference order, secret templates outside secret fields, and
//! keeping the last good definition of whatever failed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::envelope::{Entity, EntityKind, Header, Metadata, read_header};
use super::fields::{Issues, index, join};
use super::load::{FileScan, FolderScan};
use super::node::{Node, NodeValue};
use super::secrets::{SecretSource, find_templates};
use super::system::SystemScope;
use super::{Problem, Severity, collector, healthcheck, notifier, system};
use crate::config::{CollectorDefinition, Healthcheck, Source};

/// Identity of an entity: its kind and `metadata.name`.
pub(crate) type EntityKey = (EntityKind, String);

/// The last good state: every entity with the file and document it came from.
#[derive(Debug, Default, Clone)]
pub(crate) struct Previous {
    pub entities: BTreeMap<EntityKey, Entity>,
}

/// Outcome of one document.
#[derive(Debug, Clone)]
pub(crate) struct DocumentOutcome {
    pub file: PathBuf,
    pub document: usize,
    pub kind: Option<String>,
    pub name: Option<String>,
    /// True when the definition in this document is the one in effect.
    pub applied: bool,
    pub problems: Vec<Problem>,
}

/// The result of validating the whole folder.
#[derive(Debug, Default)]
pub(crate) struct Validated {
    pub documents: Vec<DocumentOutcome>,
    /// Every entity in effect: the applied documents plus the last good definitions kept for
    /// files and documents that failed.
    pub entities: BTreeMap<EntityKey, Entity>,
}

/// A document of an applied kind waiting for its kind's turn.
struct Pending<'a> {
    outcome: usize,
    kind: EntityKind,
    name: Option<String>,
    metadata: Metadata,
    spec: Option<&'a Node>,
    issues: Issues,
}

/// Validates every document of the folder and works out which entities are in effect.
pub(crate) fn validate(
    scan: &FolderScan,
    previous: &Previous,
    secrets: &SecretSource,
) -> Validated {
    let mut validated = Validated::default();
    let mut pending = Vec::new();
    for file in &scan.files {
        if let FileScan::Parsed { file, documents } = file {
            read_headers(file, documents, &mut validated, &mut pending);
        }
    }
    mark_duplicates(&mut pending, &validated.documents);
    let failed_files: BTreeSet<&Path> = scan
        .files
        .iter()
        .filter(|f| matches!(f, FileScan::Failed { .. }))
        .map(FileScan::file)
        .collect();
    for kind in EntityKind::ALL {
        apply_kind(kind, &mut pending, &mut validated, secrets);
        flush_issues(kind, &mut pending, &mut validated.documents);
        keep_previous(kind, previous, &failed_files, &pending, &mut validated);
    }
    // A document that changed kind and failed keeps what it defined before under its old kind.
    for kind in EntityKind::ALL {
        keep_previous(kind, previous, &failed_files, &pending, &mut validated);
    }
    validated
}

/// Moves the issues of the documents of `kind` into their outcomes once their stage is done.
fn flush_issues(kind: EntityKind, pending: &mut [Pending<'_>], documents: &mut [DocumentOutcome]) {
    for p in pending.iter_mut().filter(|p| p.kind == kind) {
        let outcome = &mut documents[p.outcome];
        let issues = std::mem::take(&mut p.issues);
        outcome
            .problems
            .extend(to_problems(&outcome.file, outcome.document, issues));
    }
}

fn read_headers<'a>(
    file: &Path,
    documents: &'a [Node],
    validated: &mut Validated,
    pending: &mut Vec<Pending<'a>>,
) {
    for (document, root) in documents.iter().enumerate() {
        let mut issues = Issues::default();
        let header = read_header(root, &mut issues);
        check_secret_templates(root, &header, &mut issues);
        let mut outcome = DocumentOutcome {
            file: file.to_owned(),
            document,
            kind: None,
            name: None,
            applied: false,
            problems: Vec::new(),
        };
        match header {
            Header::Applied {
                kind,
                name,
                metadata,
                spec,
            } => {
                outcome.kind = Some(kind.as_str().to_owned());
                outcome.name = name.clone();
                let index = validated.documents.len();
                pending.push(Pending {
                    outcome: index,
                    kind,
                    name,
                    metadata,
                    spec,
                    issues,
                });
            }
            Header::Ignored { kind, name, at } => {
                let message =
                    format!("kind {kind} is not used by anomalyd; the document is ignored");
                issues.warning(at, "kind", message);
                outcome.kind = Some(kind);
                outcome.name = name;
                outcome.problems = to_problems(file, document, issues);
            }
            Header::Invalid { kind, name } => {
                outcome.kind = kind;
                outcome.name = name;
                outcome.problems = to_problems(file, document, issues);
            }
        }
        validated.documents.push(outcome);
    }
}

fn to_problems(file: &Path, document: usize, issues: Issues) -> Vec<Problem> {
    let problems = issues.list.into_iter().map(|issue| Problem {
        file: file.to_owned(),
        document: Some(document),
        severity: issue.severity,
        line: issue.at.line,
        column: issue.at.column,
        path: issue.path,
        message: issue.message,
    });
    problems.collect()
}

/// Marks every document whose (kind, name) another document also defines.
fn mark_duplicates(pending: &mut [Pending<'_>], documents: &[DocumentOutcome]) {
    let mut by_key: BTreeMap<(EntityKind, String), Vec<usize>> = BTreeMap::new();
    for (i, p) in pending.iter().enumerate() {
        if let Some(name) = &p.name {
            by_key.entry((p.kind, name.clone())).or_default().push(i);
        }
    }
    for ((kind, name), members) in by_key.into_iter().filter(|(_, m)| m.len() > 1) {
        for &i in &members {
            let others: Vec<String> = members
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| describe_location(&documents[pending[j].outcome]))
                .collect();
            let message = format!(
                "{kind} {name} is also defined in {}; names must be unique per kind across \
                 the folder, so none of these documents is applied",
                others.join(", ")
            );
            let at = pending[i].metadata.name_at;
            pending[i].issues.error(at, "metadata.name", message);
        }
    }
}

fn describe_location(outcome: &DocumentOutcome) -> String {
    format!("{} (document {})", outcome.file.display(), outcome.document)
}

/// Validates the documents of one kind against the entities of the kinds before it.
fn apply_kind(
    kind: EntityKind,
    pending: &mut [Pending<'_>],
    validated: &mut Validated,
    secrets: &SecretSource,
) {
    let scope = Scope {
        collectors: collectors_in_effect(&validated.entities),
        healthchecks: healthchecks_in_effect(&validated.entities),
        systems: names_in_effect(&validated.entities, EntityKind::System),
        secrets,
    };
    let mut applied = Vec::new();
    for p in pending.iter_mut().filter(|p| p.kind == kind) {
        let (Some(name), 0) = (p.name.clone(), p.issues.error_count()) else {
            continue;
        };
        let outcome = &validated.documents[p.outcome];
        let source = Source::Yaml {
            file: outcome.file.clone(),
            document: outcome.document,
        };
        let entity = read_entity(p, &name, source, &scope);
        if let Some(entity) = entity.filter(|_| p.issues.error_count() == 0) {
            applied.push((p.outcome, name, entity));
        }
    }
    reject_duplicate_collector_ids(&mut applied, pending);
    for (outcome, name, entity) in applied {
        validated.documents[outcome].applied = true;
        validated.entities.insert((kind, name), entity);
    }
}

/// The entities of earlier kinds a document may refer to, and the secret source.
struct Scope<'a> {
    collectors: BTreeMap<String, CollectorDefinition>,
    healthchecks: BTreeMap<String, Healthcheck>,
    systems: BTreeSet<String>,
    secrets: &'a SecretSource,
}

/// Reads the spec of one document with the reader of its kind.
fn read_entity(
    p: &mut Pending<'_>,
    name: &str,
    source: Source,
    scope: &Scope<'_>,
) -> Option<Entity> {
    let Some(spec) = p.spec else {
        let message = "missing required key `spec` (write `spec: {}` if there is nothing else)";
        p.issues.error(p.metadata.name_at, "spec", message);
        return None;
    };
    let metadata = std::mem::take(&mut p.metadata);
    let issues = &mut p.issues;
    match p.kind {
        EntityKind::Collector => collector::read(spec, source, issues).map(Entity::Collector),
        EntityKind::Healthcheck => {
            healthcheck::read(name, metadata, spec, source, &scope.collectors, issues)
                .map(Entity::Healthcheck)
        }
        EntityKind::System => {
            let systems = SystemScope {
                healthchecks: &scope.healthchecks,
                collectors: &scope.collectors,
            };
            system::read(name, metadata, spec, source, &systems, issues).map(Entity::System)
        }
        EntityKind::Notifier => {
            notifier::read(name, spec, source, &scope.systems, scope.secrets, issues)
                .map(Entity::Notifier)
        }
    }
}

/// Two `Collector` documents with different names may not declare the same collector id.
fn reject_duplicate_collector_ids(
    applied: &mut Vec<(usize, String, Entity)>,
    pending: &mut [Pending<'_>],
) {
    let mut by_id: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, (_, _, entity)) in applied.iter().enumerate() {
        if let Entity::Collector(c) = entity {
            by_id.entry(c.id.clone()).or_default().push(i);
        }
    }
    let mut rejected = BTreeSet::new();
    for (id, members) in by_id.into_iter().filter(|(_, m)| m.len() > 1) {
        for &i in &members {
            let outcome = applied[i].0;
            if let Some(p) = pending.iter_mut().find(|p| p.outcome == outcome) {
                let message = format!(
                    "collector id {id} is declared by several Collector documents; keep one"
                );
                let at = p.spec.map_or(Default::default(), |s| s.at);
                p.issues.error(at, "spec.id", message);
            }
            rejected.insert(i);
        }
    }
    let mut i = 0;
    applied.retain(|_| {
        i += 1;
        !rejected.contains(&(i - 1))
    });
}

/// Keeps the last good definition of every entity of `kind` whose file failed to load or whose
/// document failed validation, unless a valid document defines it now.
fn keep_previous(
    kind: EntityKind,
    previous: &Previous,
    failed_files: &BTreeSet<&Path>,
    pending: &[Pending<'_>],
    validated: &mut Validated,
) {
    let waiting_with_errors: BTreeSet<usize> = pending
        .iter()
        .filter(|p| p.issues.error_count() > 0)
        .map(|p| p.outcome)
        .collect();
    let failed_documents: Vec<&DocumentOutcome> = validated
        .documents
        .iter()
        .enumerate()
        .filter(|(i, d)| !d.applied && (is_failed(d) || waiting_with_errors.contains(i)))
        .map(|(_, d)| d)
        .collect();
    let mut keep = Vec::new();
    for ((entity_kind, name), entity) in &previous.entities {
        if *entity_kind != kind || validated.entities.contains_key(&(kind, name.clone())) {
            continue;
        }
        let Source::Yaml { file, document } = entity.source() else {
            continue;
        };
        let file_failed = failed_files.contains(file.as_path());
        let document_failed = failed_documents.iter().any(|d| {
            (d.file == *file && d.document == *document)
                || (d.kind.as_deref() == Some(kind.as_str()) && d.name.as_deref() == Some(name))
        });
        if file_failed || document_failed {
            keep.push(((kind, name.clone()), entity.clone()));
        }
    }
    validated.entities.extend(keep);
}

/// Returns true when a document has an error. Ignored kinds only carry warnings.
fn is_failed(outcome: &DocumentOutcome) -> bool {
    outcome
        .problems
        .iter()
        .any(|p| p.severity == Severity::Error)
}

fn collectors_in_effect(
    entities: &BTreeMap<EntityKey, Entity>,
) -> BTreeMap<String, CollectorDefinition> {
    let collectors = entities.values().filter_map(|e| match e {
        Entity::Collector(c) => Some((c.id.clone(), c.clone())),
        _ => None,
    });
    collectors.collect()
}

fn healthchecks_in_effect(entities: &BTreeMap<EntityKey, Entity>) -> BTreeMap<String, Healthcheck> {
    let healthchecks = entities.values().filter_map(|e| match e {
        Entity::Healthcheck(h) => Some((h.name.clone(), h.clone())),
        _ => None,
    });
    healthchecks.collect()
}

fn names_in_effect(entities: &BTreeMap<EntityKey, Entity>, kind: EntityKind) -> BTreeSet<String> {
    let names = entities
        .keys()
        .filter(|(k, _)| *k == kind)
        .map(|(_, n)| n.clone());
    names.collect()
}

/// Reports `${{ secrets.NAME }}` templates outside the fields where they are resolved: an error
/// in `metadata`, a warning elsewhere because the text stays as written.
fn check_secret_templates(root: &Node, header: &Header<'_>, issues: &mut Issues) {
    let notifier = matches!(
        header,
        Header::Applied {
            kind: EntityKind::Notifier,
            ..
        }
    );
    let mut strings = Vec::new();
    collect_strings(root, "", &mut strings);
    for (path, node, text) in strings {
        let Some(template) = find_templates(text).into_iter().next() else {
            continue;
        };
        let name = template.name;
        if path.starts_with("metadata") {
            let message =
                format!("secret {name} is referenced in metadata, where secrets are not allowed");
            issues.error(node.at, &path, message);
        } else if !(notifier && is_notifier_secret_field(&path)) {
            let message = format!(
                "secret {name} is only resolved in a Notifier's url and headers; here the \
                 template stays as text"
            );
            issues.warning(node.at, &path, message);
        }
    }
}

fn is_notifier_secret_field(path: &str) -> bool {
    path == "spec.url" || path.starts_with("spec.headers.")
}

fn collect_strings<'a>(node: &'a Node, path: &str, out: &mut Vec<(String, &'a Node, &'a str)>) {
    match &node.value {
        NodeValue::Str(text) => out.push((path.to_owned(), node, text)),
        NodeValue::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_strings(item, &index(path, i), out);
            }
        }
        NodeValue::Map(entries) => {
            for (key, value) in entries {
                collect_strings(value, &join(path, &key.text), out);
            }
        }
        _ => {}
    }
}
