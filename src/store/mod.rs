//! The one redb file that contains everything anomalyd learns: series, raw samples, hourly
//! summaries, baselines, anomaly rows and their indexes, per-series detector state and counters.
//!
//! `Store` opens (and migrates) the file; `write::WriteTables` is how the writer thread changes
//! it inside one transaction; `read` serves the API from read snapshots.

pub mod read;
mod records;
mod tables;
pub mod write;

use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, WriteTransaction};

pub use records::{LastSampleRecord, SampleRecord, SeriesStateRecord, ValueRecord};
pub use write::WriteTables;

/// Layout version this binary writes. Version 1 files lack the `anomalies_by_start` index;
/// opening one builds it.
pub const SCHEMA_VERSION: u64 = 2;

/// Name of the data file inside the data directory.
pub const DATA_FILE: &str = "anomalyd.redb";

/// redb's page cache; its 1 GiB default is far too much for a small host.
const CACHE_BYTES: usize = 8 << 20;

/// Errors of the store; each names the file, table or value involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open data file {path}: {source}")]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    #[error(
        "data folder {dir} is in use by another anomalyd process, which holds the lock on \
         {path}; stop that process first, or give this one its own folder with --data-dir"
    )]
    InUse { dir: PathBuf, path: PathBuf },
    #[error(
        "data file {path} has schema version {found}, newer than version {supported} this \
         binary understands; run a newer anomalyd or restore a backup"
    )]
    TooNew {
        path: PathBuf,
        found: u64,
        supported: u64,
    },
    #[error("cannot close data file {path}: {source}")]
    Close {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    #[error("record {key} of table {table} does not decode: {source}")]
    Corrupt {
        table: &'static str,
        key: u64,
        source: postcard::Error,
    },
    #[error("anomaly {id} points at series {series_id}, which is not registered")]
    MissingSeries { id: u64, series_id: u64 },
    #[error("database error: {0}")]
    Database(#[from] redb::Error),
}

/// Shorthand for results of store operations.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Converts any redb error into a `StoreError`.
pub(crate) fn db<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Database(e.into())
}

/// Names the folder and file when another process holds the lock. redb reports that as
/// `DatabaseAlreadyOpen`, or as `LockProtocolMismatch` when the other process runs another redb
/// version.
fn open_error(dir: &Path, path: &Path, source: redb::DatabaseError) -> StoreError {
    match source {
        redb::DatabaseError::DatabaseAlreadyOpen | redb::DatabaseError::LockProtocolMismatch => {
            StoreError::InUse {
                dir: dir.to_path_buf(),
                path: path.to_path_buf(),
            }
        }
        source => StoreError::Open {
            path: path.to_path_buf(),
            source,
        },
    }
}

/// The open data file.
#[derive(Debug)]
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    /// Opens `DIR/anomalyd.redb`, creating the directory and the file, and migrates an older
    /// layout. A file written by a newer version is rejected.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DATA_FILE);
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|source| open_error(dir, &path, source))?;
        let store = Self { db, path };
        store.prepare()?;
        tracing::info!(path = %store.path.display(), version = SCHEMA_VERSION, "data file open");
        Ok(store)
    }

    /// Returns the database, so other modules can keep their own small tables in the same file.
    pub fn database(&self) -> &Database {
        &self.db
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the file, reporting errors that dropping would swallow.
    pub fn close(self) -> Result<()> {
        self.db.close().map_err(|source| StoreError::Close {
            path: self.path,
            source,
        })
    }

    /// Creates missing tables, checks the version and runs the migrations it needs.
    fn prepare(&self) -> Result<()> {
        let tx = self.db.begin_write().map_err(db)?;
        let found = stored_version(&tx)?;
        if let Some(found) = found.filter(|v| *v > SCHEMA_VERSION) {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        create_tables(&tx)?;
        match found {
            None => set_version(&tx, SCHEMA_VERSION)?,
            Some(version) => migrate(&tx, version, &self.path)?,
        }
        tx.commit().map_err(db)
    }
}

impl crate::gitops::DatabaseHandle for Store {
    fn database(&self) -> &Database {
        &self.db
    }
}

fn stored_version(tx: &WriteTransaction) -> Result<Option<u64>> {
    let meta = tx.open_table(tables::META).map_err(db)?;
    let version = meta.get("schema_version").map_err(db)?.map(|v| v.value());
    Ok(version)
}

fn set_version(tx: &WriteTransaction, version: u64) -> Result<()> {
    let mut meta = tx.open_table(tables::META).map_err(db)?;
    meta.insert("schema_version", version).map_err(db)?;
    Ok(())
}

fn create_tables(tx: &WriteTransaction) -> Result<()> {
    tx.open_table(tables::META).map_err(db)?;
    tx.open_table(tables::SERIES_IDS).map_err(db)?;
    tx.open_table(tables::SERIES).map_err(db)?;
    tx.open_table(tables::SAMPLES).map_err(db)?;
    tx.open_table(tables::SUMMARIES).map_err(db)?;
    tx.open_table(tables::BASELINES).map_err(db)?;
    tx.open_table(tables::ANOMALIES).map_err(db)?;
    tx.open_table(tables::OPEN_ANOMALIES).map_err(db)?;
    tx.open_table(tables::ANOMALIES_BY_START).map_err(db)?;
    tx.open_table(tables::SERIES_STATE).map_err(db)?;
    Ok(())
}

/// Brings a file from `from` up to `SCHEMA_VERSION`, one step at a time, in the open transaction.
fn migrate(tx: &WriteTransaction, from: u64, path: &Path) -> Result<()> {
    let mut version = from;
    while version < SCHEMA_VERSION {
        if version == 1 {
            index_anomalies_by_start(tx)?;
        }
        version += 1;
        tracing::info!(path = %path.display(), version, "data file migrated");
    }
    set_version(tx, version)
}

/// Version 1 to 2: builds the feed index from the anomaly rows.
fn index_anomalies_by_start(tx: &WriteTransaction) -> Result<()> {
    let rows = tx.open_table(tables::ANOMALIES).map_err(db)?;
    let mut index = tx.open_table(tables::ANOMALIES_BY_START).map_err(db)?;
    for entry in rows.iter().map_err(db)? {
        let (id, bytes) = entry.map_err(db)?;
        let id = id.value();
        let row: records::AnomalyRecord = records::decode("anomalies", id, bytes.value())?;
        index.insert((row.started_at_ms, id), ()).map_err(db)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
