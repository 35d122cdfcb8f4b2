//! The gitops tables in the shared redb file: the last good definition of every entity the
//! folder defines, and the status of every document.

use std::collections::BTreeMap;
use std::path::PathBuf;

use redb::{
    Database, ReadableDatabase, ReadableTable, TableDefinition, TableError, WriteTransaction,
};

use super::envelope::{Entity, EntityKind};
use super::reconcile::ReconcileError;
use super::status::DocumentStatus;
use super::validate::{EntityKey, Previous};

/// Last good entity definitions.
///
/// Key: (kind, name), for example `("Healthcheck", "payments-api-http")`.
/// Value: JSON of the entity definition including its source file and document index. JSON
/// rather than postcard because strategy and collector configs are free-form maps, which need a
/// self-describing encoding. Notifier url and header values are stored as written, with their
/// `${{ secrets.NAME }}` templates, so no secret value is ever stored.
const ENTITIES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("gitops_entities_v1");

/// Status of every document after the last rescan.
///
/// Key: (file relative to the folder, document index), where index `u32::MAX` is the row about a
/// whole file that could not be read or parsed.
/// Value: JSON of [`DocumentStatus`].
const STATUS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("gitops_status_v1");

/// Document index that marks a whole-file row.
const WHOLE_FILE: u32 = u32::MAX;

fn kind_from_str(text: &str) -> Option<EntityKind> {
    EntityKind::ALL.into_iter().find(|k| k.as_str() == text)
}

/// Loads the last good entities. An absent table means nothing was applied yet.
pub(crate) fn load_entities(db: &Database) -> Result<Previous, ReconcileError> {
    let mut previous = Previous::default();
    let read = db.begin_read()?;
    let table = match read.open_table(ENTITIES) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok(previous),
        Err(e) => return Err(e.into()),
    };
    for row in table.iter()? {
        let (key, value) = row?;
        let (kind, name) = key.value();
        let Some(kind) = kind_from_str(kind) else {
            return Err(ReconcileError::Corrupt(format!(
                "unknown entity kind {kind} in the store"
            )));
        };
        let entity: Entity = serde_json::from_slice(value.value())?;
        previous.entities.insert((kind, name.to_owned()), entity);
    }
    Ok(previous)
}

/// Loads the document status rows.
pub(crate) fn load_status(db: &Database) -> Result<Vec<DocumentStatus>, ReconcileError> {
    let read = db.begin_read()?;
    let table = match read.open_table(STATUS) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut rows = Vec::new();
    for row in table.iter()? {
        let (_, value) = row?;
        rows.push(serde_json::from_slice(value.value())?);
    }
    Ok(rows)
}

/// The changes one rescan writes.
pub(crate) struct Changes<'a> {
    pub upserts: Vec<(&'a EntityKey, &'a Entity)>,
    pub removals: Vec<EntityKey>,
    /// The complete new status table, or `None` when it did not change.
    pub status: Option<&'a [DocumentStatus]>,
}

impl Changes<'_> {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.removals.is_empty() && self.status.is_none()
    }
}

/// Applies the changes of one rescan in a single write transaction.
pub(crate) fn apply(db: &Database, changes: &Changes<'_>) -> Result<(), ReconcileError> {
    let write = db.begin_write()?;
    write_entities(&write, changes)?;
    if let Some(status) = changes.status {
        write_status(&write, status)?;
    }
    write.commit()?;
    Ok(())
}

fn write_entities(write: &WriteTransaction, changes: &Changes<'_>) -> Result<(), ReconcileError> {
    let mut table = write.open_table(ENTITIES)?;
    for ((kind, name), entity) in &changes.upserts {
        let bytes = serde_json::to_vec(entity)?;
        table.insert((kind.as_str(), name.as_str()), bytes.as_slice())?;
    }
    for (kind, name) in &changes.removals {
        table.remove((kind.as_str(), name.as_str()))?;
    }
    Ok(())
}

fn write_status(write: &WriteTransaction, rows: &[DocumentStatus]) -> Result<(), ReconcileError> {
    let mut table = write.open_table(STATUS)?;
    table.retain(|_, _| false)?;
    for row in rows {
        let file = row.file.to_string_lossy();
        let document = row
            .document
            .map_or(WHOLE_FILE, |d| u32::try_from(d).unwrap_or(WHOLE_FILE - 1));
        let bytes = serde_json::to_vec(row)?;
        table.insert((file.as_ref(), document), bytes.as_slice())?;
    }
    Ok(())
}

/// Groups status rows by location for lookups during a rescan.
pub(crate) fn index_status(
    rows: &[DocumentStatus],
) -> BTreeMap<(PathBuf, Option<usize>), DocumentStatus> {
    rows.iter().map(|r| (r.sort_key(), r.clone())).collect()
}
