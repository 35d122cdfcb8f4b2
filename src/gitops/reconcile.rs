//! The [`Reconciler`]: rescans the folder, validates it, diffs the result against the last good
//! state stored in redb, applies the difference in one write transaction and publishes the new
//! [`ConfigSnapshot`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use redb::Database;
use thiserror::Error;
use tokio::sync::watch;

use super::envelope::{Entity, EntityKind};
use super::load::{FileScan, FolderScan, Limits, collect_problems, scan_folder};
use super::secrets::SecretSource;
use super::status::{
    DocumentStatus, FolderError, FolderStatus, StatusMessage, state_of, status_body,
};
use super::tables::{self, Changes};
use super::validate::{DocumentOutcome, EntityKey, Previous, Validated, validate};
use super::{Problem, notifier};
use crate::config::{ConfigSnapshot, UnusableNotifier};

/// Errors of loading or storing the folder's state. A bad file is not an error here: it is
/// reported in the document status and keeps its last good state.
#[derive(Debug, Error)]
pub enum ReconcileError {
    #[error("cannot read the config folder {dir}: {source}; check that it exists and is readable")]
    Folder {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("gitops store failed: {0}")]
    Store(#[from] redb::Error),
    #[error("gitops store holds a record that does not decode: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("gitops store is inconsistent: {0}")]
    Corrupt(String),
}

macro_rules! from_redb {
    ($($error:ty),*) => {
        $(impl From<$error> for ReconcileError {
            fn from(e: $error) -> Self {
                ReconcileError::Store(e.into())
            }
        })*
    };
}

from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Report of one rescan: what it found and what it applied.
#[derive(Debug, Clone, PartialEq)]
pub struct RescanReport {
    /// True when the configuration in effect changed.
    pub changed: bool,
    /// Status of every document and of every file that could not be read.
    pub documents: Vec<DocumentStatus>,
    /// Every finding, including skipped folder entries, in `file:line:col` order.
    pub problems: Vec<Problem>,
}

/// Settings of a reconciler.
#[derive(Debug, Clone)]
pub struct ReconcilerOptions {
    pub dir: PathBuf,
    pub secrets: SecretSource,
    pub limits: Limits,
}

impl ReconcilerOptions {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            secrets: SecretSource::default(),
            limits: Limits::default(),
        }
    }
}

/// Access to the shared redb file, so the reconciler can sit beside whatever owns the file.
pub trait DatabaseHandle: Send + Sync + 'static {
    fn database(&self) -> &Database;
}

impl DatabaseHandle for Database {
    fn database(&self) -> &Database {
        self
    }
}

/// State between rescans: the stored entities and status rows.
struct Applied {
    previous: Previous,
    /// The same rows as the reconciler's published status.
    status: Arc<Vec<DocumentStatus>>,
}

/// Keeps the configuration in effect in line with the folder.
pub struct Reconciler {
    options: ReconcilerOptions,
    db: Arc<dyn DatabaseHandle>,
    /// Held for a whole rescan, across the folder scan and the redb commit, so rescans are
    /// serialized. Only `rescan` takes it, so readers never wait for a rescan in progress.
    applied: Mutex<Applied>,
    /// Status rows of the last rescan that read the folder, or the stored rows before the first
    /// one, and the error of rescans that could not read it. Each rescan replaces the rows whole
    /// when it ends.
    status: watch::Sender<FolderStatus>,
    snapshot: watch::Sender<Arc<ConfigSnapshot>>,
    reports: watch::Sender<Option<Arc<RescanReport>>>,
}

impl Reconciler {
    /// Loads the last good state from the store, so the configuration is in effect before the
    /// first rescan, even when files are broken at start.
    pub fn open(
        options: ReconcilerOptions,
        db: Arc<impl DatabaseHandle>,
    ) -> Result<Self, ReconcileError> {
        let previous = tables::load_entities(db.database())?;
        let status = Arc::new(tables::load_status(db.database())?);
        let snapshot = build_snapshot(&previous.entities, &options.secrets);
        log_notifier_changes(None, &snapshot);
        Ok(Self {
            options,
            db,
            applied: Mutex::new(Applied {
                previous,
                status: status.clone(),
            }),
            status: watch::Sender::new(FolderStatus {
                documents: status,
                folder_error: None,
            }),
            snapshot: watch::Sender::new(Arc::new(snapshot)),
            reports: watch::Sender::new(None),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.options.dir
    }

    /// The configuration in effect.
    pub fn snapshot(&self) -> Arc<ConfigSnapshot> {
        self.snapshot.borrow().clone()
    }

    /// A receiver notified of every change of the configuration in effect.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ConfigSnapshot>> {
        self.snapshot.subscribe()
    }

    /// A receiver of the report of every rescan, changed or not.
    pub fn subscribe_reports(&self) -> watch::Receiver<Option<Arc<RescanReport>>> {
        self.reports.subscribe()
    }

    /// The status of every document after the last rescan. It does not wait for a rescan in
    /// progress, so async code may call it.
    pub fn status(&self) -> Vec<DocumentStatus> {
        self.status.borrow().documents.to_vec()
    }

    /// Returns the error of the last rescan when it could not read the folder, or `None` when it
    /// could. Like [`Reconciler::status`], it does not wait.
    pub fn folder_error(&self) -> Option<FolderError> {
        self.status.borrow().folder_error.clone()
    }

    /// The JSON body of `GET /api/v1/gitops`. Like [`Reconciler::status`], it does not wait.
    pub fn status_json(&self) -> String {
        status_body(&self.status.borrow())
    }

    /// Rescans the whole folder and applies what changed. Blocking: call it from a thread or
    /// `spawn_blocking`. Rescans are serialized, and status readers keep getting the previous
    /// status until the rescan publishes its own.
    ///
    /// When the folder cannot be read, the configuration in effect and the document rows stay
    /// as they are, and the status carries the error until a rescan reads the folder again.
    pub fn rescan(&self) -> Result<Arc<RescanReport>, ReconcileError> {
        // The state is replaced whole after a successful commit, so a poisoned lock still holds
        // a consistent value.
        let mut applied = self.applied.lock().unwrap_or_else(PoisonError::into_inner);
        let dir = &self.options.dir;
        let scan = match scan_folder(dir, &self.options.limits) {
            Ok(scan) => scan,
            Err(source) => {
                let error = ReconcileError::Folder {
                    dir: dir.clone(),
                    source,
                };
                self.publish_folder_error(&error);
                return Err(error);
            }
        };
        let validated = validate(&scan, &applied.previous, &self.options.secrets);
        let now = jiff::Timestamp::now();
        let status = build_status(&scan, &validated, &applied, now);
        let changes = diff(&applied, &validated, &status);
        if !changes.is_empty() {
            tables::apply(self.db.database(), &changes)?;
        }
        let report = Arc::new(RescanReport {
            changed: !changes.upserts.is_empty() || !changes.removals.is_empty(),
            documents: status.clone(),
            problems: collect_problems(&scan, &validated),
        });
        log_rescan(&report, &changes);
        *applied = Applied {
            previous: Previous {
                entities: validated.entities,
            },
            status: Arc::new(status),
        };
        self.publish(&applied, report.clone());
        Ok(report)
    }

    fn publish(&self, applied: &Applied, report: Arc<RescanReport>) {
        let previous = self.status.send_replace(FolderStatus {
            documents: applied.status.clone(),
            folder_error: None,
        });
        if let Some(error) = previous.folder_error {
            tracing::info!(
                dir = %self.options.dir.display(),
                unreadable_since = %error.since,
                "config folder is readable again"
            );
        }
        let entities = &applied.previous.entities;
        let snapshot = Arc::new(build_snapshot(entities, &self.options.secrets));
        let mut before = None;
        self.snapshot.send_if_modified(|current| {
            if **current == *snapshot {
                return false;
            }
            before = Some(std::mem::replace(current, snapshot.clone()));
            true
        });
        // An unchanged configuration was logged when it took effect.
        if let Some(before) = before {
            log_notifier_changes(Some(&before), &snapshot);
        }
        self.reports.send_replace(Some(report));
    }

    /// Publishes a folder read error in the status, keeping the time of the first failure of
    /// a run of them.
    fn publish_folder_error(&self, error: &ReconcileError) {
        let message = error.to_string();
        self.status.send_if_modified(|status| {
            let since = match &status.folder_error {
                Some(previous) => previous.since,
                None => jiff::Timestamp::now(),
            };
            let folder_error = Some(FolderError { message, since });
            if status.folder_error == folder_error {
                return false;
            }
            status.folder_error = folder_error;
            true
        });
    }
}

fn diff<'a>(
    applied: &Applied,
    validated: &'a Validated,
    status: &'a [DocumentStatus],
) -> Changes<'a> {
    let old = &applied.previous.entities;
    let new = &validated.entities;
    let upserts = new
        .iter()
        .filter(|(key, entity)| old.get(key) != Some(entity));
    let removals = old.keys().filter(|key| !new.contains_key(key)).cloned();
    Changes {
        upserts: upserts.collect(),
        removals: removals.collect(),
        status: (*applied.status != status).then_some(status),
    }
}

fn build_status(
    scan: &FolderScan,
    validated: &Validated,
    applied: &Applied,
    now: jiff::Timestamp,
) -> Vec<DocumentStatus> {
    let before = tables::index_status(&applied.status);
    let mut rows = Vec::new();
    for file in &scan.files {
        if let FileScan::Failed { file, problem } = file {
            rows.push(file_row(file, problem, &before, &validated.entities));
        }
    }
    for outcome in &validated.documents {
        rows.push(document_row(outcome, &before, applied, validated, now));
    }
    rows.sort_by_key(DocumentStatus::sort_key);
    rows
}

/// Status of a file that could not be read or parsed.
fn file_row(
    file: &Path,
    problem: &Problem,
    before: &BTreeMap<(PathBuf, Option<usize>), DocumentStatus>,
    entities: &BTreeMap<EntityKey, Entity>,
) -> DocumentStatus {
    let messages = vec![StatusMessage::from(problem)];
    let last_applied = before
        .get(&(file.to_owned(), None))
        .and_then(|r| r.last_applied);
    DocumentStatus {
        file: file.to_owned(),
        document: None,
        kind: None,
        name: None,
        state: state_of(&messages),
        messages,
        kept_previous: kept_in_file(file, entities),
        last_applied,
    }
}

/// Status of one document. `last_applied` moves only when the document's definition changed.
fn document_row(
    outcome: &DocumentOutcome,
    before: &BTreeMap<(PathBuf, Option<usize>), DocumentStatus>,
    applied: &Applied,
    validated: &Validated,
    now: jiff::Timestamp,
) -> DocumentStatus {
    let messages: Vec<StatusMessage> = outcome.problems.iter().map(StatusMessage::from).collect();
    let previous_row = before.get(&(outcome.file.clone(), Some(outcome.document)));
    let previous_time = previous_row.and_then(|r| r.last_applied);
    let keeps_time = !outcome.applied || is_unchanged(outcome, applied, validated);
    let last_applied = match previous_time {
        Some(time) if keeps_time => Some(time),
        _ if outcome.applied => Some(now),
        _ => None,
    };
    DocumentStatus {
        file: outcome.file.clone(),
        document: Some(outcome.document),
        kind: outcome.kind.clone(),
        name: outcome.name.clone(),
        state: state_of(&messages),
        kept_previous: !outcome.applied && kept_at(outcome, &validated.entities),
        messages,
        last_applied,
    }
}

fn entity_key(outcome: &DocumentOutcome) -> Option<EntityKey> {
    let kind = EntityKind::ALL
        .into_iter()
        .find(|k| Some(k.as_str()) == outcome.kind.as_deref())?;
    Some((kind, outcome.name.clone()?))
}

fn is_unchanged(outcome: &DocumentOutcome, applied: &Applied, validated: &Validated) -> bool {
    let Some(key) = entity_key(outcome) else {
        return false;
    };
    applied.previous.entities.get(&key) == validated.entities.get(&key)
}

/// True when an entity from this file is in effect although the file failed.
fn kept_in_file(file: &Path, entities: &BTreeMap<EntityKey, Entity>) -> bool {
    entities.values().any(|e| match e.source() {
        crate::config::Source::Yaml { file: f, .. } => f == file,
        crate::config::Source::Api => false,
    })
}

/// True when a previous definition stays in effect for a failed document.
fn kept_at(outcome: &DocumentOutcome, entities: &BTreeMap<EntityKey, Entity>) -> bool {
    if let Some(key) = entity_key(outcome)
        && entities.contains_key(&key)
    {
        return true;
    }
    entities.values().any(|e| match e.source() {
        crate::config::Source::Yaml { file, document } => {
            *file == outcome.file && *document == outcome.document
        }
        crate::config::Source::Api => false,
    })
}

/// Logs what a rescan applied, and each rejected document once: only when the status changed,
/// so the periodic rescan does not repeat the same warnings.
fn log_rescan(report: &RescanReport, changes: &Changes<'_>) {
    let errors = report.documents.iter();
    let errors = errors
        .filter(|d| d.state == super::DocumentState::Error)
        .count();
    if report.changed {
        tracing::info!(
            updated = changes.upserts.len(),
            removed = changes.removals.len(),
            documents_with_errors = errors,
            "config applied"
        );
    }
    if changes.status.is_none() {
        return;
    }
    let rejected = report.documents.iter();
    for row in rejected.filter(|d| d.state == super::DocumentState::Error) {
        log_rejected(row);
    }
}

/// Logs each error of a rejected document or file, saying whether an earlier definition from
/// it stays in effect.
fn log_rejected(row: &DocumentStatus) {
    let outcome = if row.kept_previous {
        "its last good state is kept"
    } else {
        "nothing from it is in effect until it is fixed"
    };
    let errors = row.messages.iter();
    for message in errors.filter(|m| m.severity == super::Severity::Error) {
        tracing::warn!(
            file = %row.file.display(),
            document = row.document,
            line = message.line,
            column = message.column,
            path = %message.path,
            error = %message.message,
            "config document rejected; {outcome}"
        );
    }
}

/// Builds the configuration in effect from the entities. A notifier whose secret no longer
/// resolves is listed in `unusable_notifiers` with the error, in place of `notifiers`.
pub(crate) fn build_snapshot(
    entities: &BTreeMap<EntityKey, Entity>,
    secrets: &SecretSource,
) -> ConfigSnapshot {
    let mut snapshot = ConfigSnapshot::default();
    for entity in entities.values() {
        match entity {
            Entity::Healthcheck(h) => {
                snapshot.healthchecks.insert(h.name.clone(), h.clone());
            }
            Entity::System(s) => {
                snapshot.systems.insert(s.name.clone(), s.clone());
            }
            Entity::Collector(c) => {
                snapshot.collectors.insert(c.id.clone(), c.clone());
            }
            Entity::Notifier(record) => match notifier::resolve(record, secrets) {
                Ok(n) => {
                    snapshot.notifiers.insert(n.name.clone(), n);
                }
                Err(reason) => {
                    let unusable = UnusableNotifier {
                        filters: record.filters.clone(),
                        reason,
                    };
                    snapshot
                        .unusable_notifiers
                        .insert(record.name.clone(), unusable);
                }
            },
        }
    }
    drop_dangling_assignments(&mut snapshot);
    snapshot
}

/// Logs the notifiers that became unusable or usable again from `before` to `after`. Only a
/// notifier kept from its last good definition can be unusable, because a document whose
/// secret is missing fails validation.
pub(crate) fn log_notifier_changes(before: Option<&ConfigSnapshot>, after: &ConfigSnapshot) {
    for (notifier, unusable) in &after.unusable_notifiers {
        let known = before.and_then(|b| b.unusable_notifiers.get(notifier));
        if known != Some(unusable) {
            tracing::warn!(
                notifier = %notifier,
                error = %unusable.reason,
                "notifier cannot be used until its secret is set; its notifications wait and are retried"
            );
        }
    }
    let Some(before) = before else { return };
    for notifier in before.unusable_notifiers.keys() {
        if after.notifiers.contains_key(notifier) {
            tracing::info!(notifier = %notifier, "notifier can be used again");
        }
    }
}

/// Removes assignments to healthchecks that are no longer configured. Only a system kept from
/// its last good state can have them, because its document now fails on that same reference.
fn drop_dangling_assignments(snapshot: &mut ConfigSnapshot) {
    let healthchecks = &snapshot.healthchecks;
    for system in snapshot.systems.values_mut() {
        system
            .healthchecks
            .retain(|name| healthchecks.contains_key(name));
        system
            .anomaly
            .retain(|name, _| healthchecks.contains_key(name));
        system
            .healthcheck_options
            .retain(|name, _| healthchecks.contains_key(name));
    }
}
