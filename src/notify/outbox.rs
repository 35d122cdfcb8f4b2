//! The durable outbox and the mutes: their redb tables, the changes the writer thread makes to
//! them inside its transactions, and the read queries of the delivery worker and the API.

use std::collections::HashSet;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, Table, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::store::{Result, StoreError, db};

/// `outbox`: row id → `OutboxRecord` (postcard). Ids only grow while a row exists, so an id
/// scan is first in, first out. A row is one notification for one notifier; it stays after
/// delivery or failure until pruned.
pub const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");

/// `outbox_pending`: row id → next attempt time (Unix ms) of every pending row. The delivery
/// worker scans only this index; delivered and failed rows leave it.
pub const OUTBOX_PENDING: TableDefinition<u64, i64> = TableDefinition::new("outbox_pending");

/// `mutes`: (system, field path or "" for the whole system) → time the mute was set (Unix ms).
pub const MUTES: TableDefinition<(&str, &str), i64> = TableDefinition::new("mutes");

/// Rows kept in the outbox; beyond this the oldest delivered or failed rows are deleted.
pub const MAX_OUTBOX_ROWS: u64 = 10_000;

/// Maximum rows one prune pass reads, so pruning keeps each writer transaction short.
const PRUNE_SCAN_LIMIT: usize = 1_000;

/// Delivery state of an outbox row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
}

/// One notification for one notifier, with its delivery history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxRecord {
    pub notifier: String,
    pub anomaly_id: u64,
    pub idempotency_key: String,
    /// The `Notification` as JSON, stored once so every attempt sends the same body.
    pub payload: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub created_at_ms: i64,
    pub next_attempt_at_ms: i64,
    pub last_attempt_at_ms: Option<i64>,
    /// When the row was delivered or given up.
    pub finished_at_ms: Option<i64>,
    /// Error of the latest failed attempt, kept after a later success.
    pub last_error: Option<String>,
}

/// The outcome of one delivery attempt and the worker's decision about the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub id: u64,
    pub at_ms: i64,
    /// `None` when the receiver accepted the notification.
    pub error: Option<String>,
    /// When to try again after a failure; `None` gives the row up as failed.
    pub retry_at_ms: Option<i64>,
}

/// A mute of one field, or of a whole system when `field` is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mute {
    pub system: String,
    pub field: Option<String>,
}

/// The outbox tables opened in one write transaction of the writer thread.
pub struct OutboxTables<'txn> {
    outbox: Table<'txn, u64, &'static [u8]>,
    pending: Table<'txn, u64, i64>,
    mutes: Table<'txn, (&'static str, &'static str), i64>,
}

impl<'txn> OutboxTables<'txn> {
    pub fn open(tx: &'txn redb::WriteTransaction) -> Result<Self> {
        Ok(Self {
            outbox: tx.open_table(OUTBOX).map_err(db)?,
            pending: tx.open_table(OUTBOX_PENDING).map_err(db)?,
            mutes: tx.open_table(MUTES).map_err(db)?,
        })
    }

    /// Returns whether a mute covers the field or its whole system.
    pub fn is_muted(&self, system: &str, field: &str) -> Result<bool> {
        Ok(self.mutes.get((system, field)).map_err(db)?.is_some()
            || self.mutes.get((system, "")).map_err(db)?.is_some())
    }

    pub fn mute(&mut self, mute: &Mute, at_ms: i64) -> Result<()> {
        let field = mute.field.as_deref().unwrap_or("");
        self.mutes
            .insert((mute.system.as_str(), field), at_ms)
            .map_err(db)?;
        Ok(())
    }

    /// Removes a mute; returns whether it existed.
    pub fn unmute(&mut self, mute: &Mute) -> Result<bool> {
        let field = mute.field.as_deref().unwrap_or("");
        let removed = self
            .mutes
            .remove((mute.system.as_str(), field))
            .map_err(db)?;
        Ok(removed.is_some())
    }

    /// Appends a pending row, due at once; returns its id.
    pub fn enqueue(&mut self, record: &OutboxRecord) -> Result<u64> {
        let id = match self.outbox.last().map_err(db)? {
            Some((key, _)) => key.value() + 1,
            None => 1,
        };
        self.put(id, record)?;
        self.pending
            .insert(id, record.next_attempt_at_ms)
            .map_err(db)?;
        Ok(id)
    }

    /// Records one attempt. A row that is no longer pending (pruned, or finished by an
    /// earlier report of the same attempt) is left alone.
    pub fn record(&mut self, attempt: &Attempt) -> Result<Option<DeliveryState>> {
        let Some(mut record) = self.get(attempt.id)? else {
            return Ok(None);
        };
        if record.state != DeliveryState::Pending {
            return Ok(None);
        }
        record.attempts += 1;
        record.last_attempt_at_ms = Some(attempt.at_ms);
        // A success keeps the error of the attempt before it, which explains the retries.
        if attempt.error.is_some() {
            record.last_error = attempt.error.clone();
        }
        match (&attempt.error, attempt.retry_at_ms) {
            (None, _) => self.finish(&mut record, DeliveryState::Delivered, attempt)?,
            (Some(_), None) => self.finish(&mut record, DeliveryState::Failed, attempt)?,
            (Some(_), Some(retry_at_ms)) => {
                record.next_attempt_at_ms = retry_at_ms;
                self.pending.insert(attempt.id, retry_at_ms).map_err(db)?;
            }
        }
        self.put(attempt.id, &record)?;
        Ok(Some(record.state))
    }

    /// Deletes delivered and failed rows that finished before `before_ms`, and the oldest
    /// finished rows beyond `MAX_OUTBOX_ROWS`; returns how many were deleted.
    pub fn prune(&mut self, before_ms: i64) -> Result<usize> {
        let mut excess = self
            .outbox
            .len()
            .map_err(db)?
            .saturating_sub(MAX_OUTBOX_ROWS);
        let mut doomed = Vec::new();
        for entry in self.outbox.iter().map_err(db)?.take(PRUNE_SCAN_LIMIT) {
            let (key, bytes) = entry.map_err(db)?;
            let record: OutboxRecord = decode(key.value(), bytes.value())?;
            let Some(finished) = record.finished_at_ms else {
                continue;
            };
            if finished < before_ms || excess > 0 {
                excess = excess.saturating_sub(1);
                doomed.push(key.value());
            }
        }
        for id in &doomed {
            self.outbox.remove(*id).map_err(db)?;
        }
        Ok(doomed.len())
    }

    fn finish(
        &mut self,
        record: &mut OutboxRecord,
        state: DeliveryState,
        attempt: &Attempt,
    ) -> Result<()> {
        record.state = state;
        record.finished_at_ms = Some(attempt.at_ms);
        self.pending.remove(attempt.id).map_err(db)?;
        Ok(())
    }

    fn get(&self, id: u64) -> Result<Option<OutboxRecord>> {
        match self.outbox.get(id).map_err(db)? {
            Some(bytes) => Ok(Some(decode(id, bytes.value())?)),
            None => Ok(None),
        }
    }

    fn put(&mut self, id: u64, record: &OutboxRecord) -> Result<()> {
        let bytes = postcard::to_stdvec(record).expect("postcard encodes plain records");
        self.outbox.insert(id, bytes.as_slice()).map_err(db)?;
        Ok(())
    }
}

fn decode(id: u64, bytes: &[u8]) -> Result<OutboxRecord> {
    postcard::from_bytes(bytes).map_err(|source| StoreError::Corrupt {
        table: "outbox",
        key: id,
        source,
    })
}

/// The first two fields of an encoded `OutboxRecord`, which the outbox scan reads for each
/// pending row up to the last due one. postcard encodes fields in declaration order and ignores
/// trailing bytes, so this decodes without copying the payload. It must list the same leading
/// fields as `OutboxRecord`.
#[derive(Deserialize)]
struct OutboxGroup<'a> {
    notifier: &'a str,
    anomaly_id: u64,
}

fn decode_group(id: u64, bytes: &[u8]) -> Result<OutboxGroup<'_>> {
    postcard::from_bytes(bytes).map_err(|source| StoreError::Corrupt {
        table: "outbox",
        key: id,
        source,
    })
}

/// Pending rows that are due, and when the next one that is not falls due.
#[derive(Debug, Default)]
pub struct DueRows {
    pub rows: Vec<(u64, OutboxRecord)>,
    pub next_due_ms: Option<i64>,
}

/// Reads up to `limit` pending rows due at `now_ms`, oldest first, that `choose` accepts. The
/// caller uses `choose` to leave out rows already being sent and to cap requests per notifier.
///
/// Rows of one anomaly for one notifier are delivered in outbox order. A row is left out while
/// an earlier row of the same anomaly and notifier is pending, whether that row is due, waiting
/// for a retry or being sent. So `recovered` is sent only after `confirmed` was delivered or
/// given up.
pub fn due(
    database: &redb::Database,
    now_ms: i64,
    limit: usize,
    choose: &mut dyn FnMut(u64, &OutboxRecord) -> bool,
) -> Result<DueRows> {
    let tx = database.begin_read().map_err(db)?;
    let mut found = DueRows::default();
    let (pending, outbox) = match (tx.open_table(OUTBOX_PENDING), tx.open_table(OUTBOX)) {
        (Ok(pending), Ok(outbox)) => (pending, outbox),
        (Err(redb::TableError::TableDoesNotExist(_)), _)
        | (_, Err(redb::TableError::TableDoesNotExist(_))) => return Ok(found),
        (Err(e), _) | (_, Err(e)) => return Err(db(e)),
    };
    let mut schedule = Vec::new();
    for entry in pending.iter().map_err(db)? {
        let (key, next) = entry.map_err(db)?;
        schedule.push((key.value(), next.value()));
    }
    // A row that waits behind an earlier one may make this wake earlier than needed, which
    // costs one scan and nothing else.
    found.next_due_ms = schedule
        .iter()
        .map(|&(_, next)| next)
        .filter(|&next| next > now_ms)
        .min();
    let Some(last_due) = schedule
        .iter()
        .rev()
        .find(|&&(_, next)| next <= now_ms)
        .map(|&(id, _)| id)
    else {
        return Ok(found);
    };

    // (notifier, anomaly id) of every pending row seen so far, including rows that are not
    // due, because a row waiting for its retry still delays later rows.
    let mut waiting: HashSet<(String, u64)> = HashSet::new();
    for &(id, next) in schedule.iter().take_while(|&&(id, _)| id <= last_due) {
        if found.rows.len() >= limit {
            break;
        }
        let Some(bytes) = outbox.get(id).map_err(db)? else {
            continue;
        };
        let group = decode_group(id, bytes.value())?;
        if !waiting.insert((group.notifier.to_owned(), group.anomaly_id)) || next > now_ms {
            continue;
        }
        let record = decode(id, bytes.value())?;
        if choose(id, &record) {
            found.rows.push((id, record));
        }
    }
    Ok(found)
}

/// Filter of the deliveries list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub state: Option<DeliveryState>,
    pub notifier: Option<String>,
    pub limit: usize,
}

/// Reads outbox rows, newest first, that match `filter`.
pub fn list(
    database: &redb::Database,
    filter: &DeliveryFilter,
) -> Result<Vec<(u64, OutboxRecord)>> {
    let tx = database.begin_read().map_err(db)?;
    let outbox = match tx.open_table(OUTBOX) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(db(e)),
    };
    let mut rows = Vec::new();
    for entry in outbox.iter().map_err(db)?.rev() {
        let (key, bytes) = entry.map_err(db)?;
        let record = decode(key.value(), bytes.value())?;
        let state_matches = filter.state.is_none_or(|s| s == record.state);
        let notifier_matches = filter
            .notifier
            .as_ref()
            .is_none_or(|n| *n == record.notifier);
        if state_matches && notifier_matches {
            rows.push((key.value(), record));
        }
        if rows.len() >= filter.limit {
            break;
        }
    }
    Ok(rows)
}

/// Returns the number of pending rows.
pub fn pending_count(database: &redb::Database) -> Result<u64> {
    let tx = database.begin_read().map_err(db)?;
    match tx.open_table(OUTBOX_PENDING) {
        Ok(table) => table.len().map_err(db),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
        Err(e) => Err(db(e)),
    }
}

/// Reads every mute with the time it was set (Unix ms).
pub fn mutes(database: &redb::Database) -> Result<Vec<(Mute, i64)>> {
    let tx = database.begin_read().map_err(db)?;
    let table = match tx.open_table(MUTES) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(db(e)),
    };
    let mut found = Vec::new();
    for entry in table.iter().map_err(db)? {
        let (key, at) = entry.map_err(db)?;
        let (system, field) = key.value();
        let mute = Mute {
            system: system.to_owned(),
            field: (!field.is_empty()).then(|| field.to_owned()),
        };
        found.push((mute, at.value()));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> (tempfile::TempDir, redb::Database) {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = redb::Database::create(dir.path().join("outbox.redb")).expect("create");
        (dir, database)
    }

    fn record(notifier: &str, created_at_ms: i64) -> OutboxRecord {
        OutboxRecord {
            notifier: notifier.to_owned(),
            anomaly_id: 1,
            idempotency_key: "anomalyd-1-confirmed".to_owned(),
            payload: "{}".to_owned(),
            state: DeliveryState::Pending,
            attempts: 0,
            created_at_ms,
            next_attempt_at_ms: created_at_ms,
            last_attempt_at_ms: None,
            finished_at_ms: None,
            last_error: None,
        }
    }

    fn write<T>(database: &redb::Database, f: impl FnOnce(&mut OutboxTables<'_>) -> T) -> T {
        let tx = database.begin_write().expect("begin write");
        let value = {
            let mut tables = OutboxTables::open(&tx).expect("open tables");
            f(&mut tables)
        };
        tx.commit().expect("commit");
        value
    }

    fn attempt(id: u64, at_ms: i64, error: Option<&str>, retry_at_ms: Option<i64>) -> Attempt {
        Attempt {
            id,
            at_ms,
            error: error.map(str::to_owned),
            retry_at_ms,
        }
    }

    #[test]
    fn reads_before_first_write_are_empty() {
        let (_dir, database) = database();
        assert!(
            due(&database, 0, 10, &mut |_, _| true)
                .expect("due")
                .rows
                .is_empty()
        );
        assert_eq!(pending_count(&database).expect("count"), 0);
        assert!(mutes(&database).expect("mutes").is_empty());
        let filter = DeliveryFilter {
            limit: 10,
            ..Default::default()
        };
        assert!(list(&database, &filter).expect("list").is_empty());
    }

    #[test]
    fn enqueue_is_fifo_and_due_respects_time() {
        let (_dir, database) = database();
        let ids = write(&database, |t| {
            let first = t.enqueue(&record("a", 100)).expect("enqueue");
            let second = t.enqueue(&record("b", 100)).expect("enqueue");
            (first, second)
        });
        assert!(ids.0 < ids.1);
        let found = due(&database, 100, 10, &mut |_, _| true).expect("due");
        let order: Vec<u64> = found.rows.iter().map(|(id, _)| *id).collect();
        assert_eq!(order, vec![ids.0, ids.1]);
        let skipped = due(&database, 100, 10, &mut |id, _| id != ids.0).expect("due");
        assert_eq!(skipped.rows.len(), 1);
        let early = due(&database, 99, 10, &mut |_, _| true).expect("due");
        assert!(early.rows.is_empty());
        assert_eq!(early.next_due_ms, Some(100));
        assert_eq!(pending_count(&database).expect("count"), 2);
    }

    #[test]
    fn group_decodes_record_prefix() {
        let record = OutboxRecord {
            anomaly_id: 42,
            ..record("ops", 7)
        };
        let bytes = postcard::to_stdvec(&record).expect("encode");
        let group = decode_group(1, &bytes).expect("decode");
        assert_eq!(group.notifier, "ops");
        assert_eq!(group.anomaly_id, 42);
    }

    #[test]
    fn due_keeps_anomaly_order_per_notifier() {
        let (_dir, database) = database();
        let other_anomaly = OutboxRecord {
            anomaly_id: 2,
            ..record("a", 0)
        };
        let (confirmed, recovered, other_notifier, other) = write(&database, |t| {
            let confirmed = t.enqueue(&record("a", 0)).expect("enqueue");
            let recovered = t.enqueue(&record("a", 0)).expect("enqueue");
            let other_notifier = t.enqueue(&record("b", 0)).expect("enqueue");
            let other = t.enqueue(&other_anomaly).expect("enqueue");
            (confirmed, recovered, other_notifier, other)
        });
        let ids = |found: DueRows| -> Vec<u64> { found.rows.iter().map(|(id, _)| *id).collect() };

        let all = due(&database, 0, 10, &mut |_, _| true).expect("due");
        assert_eq!(ids(all), vec![confirmed, other_notifier, other]);
        // An earlier row being sent (left out by the caller) still delays the later one.
        let in_flight = due(&database, 0, 10, &mut |id, _| id != confirmed).expect("due");
        assert_eq!(ids(in_flight), vec![other_notifier, other]);

        write(&database, |t| {
            t.record(&attempt(confirmed, 10, Some("HTTP 500"), Some(500)))
        })
        .expect("record");
        let retrying = due(&database, 100, 10, &mut |_, _| true).expect("due");
        assert_eq!(retrying.next_due_ms, Some(500));
        assert_eq!(ids(retrying), vec![other_notifier, other]);

        write(&database, |t| {
            t.record(&attempt(confirmed, 600, None, None))
        })
        .expect("record");
        let after = due(&database, 600, 10, &mut |_, _| true).expect("due");
        assert_eq!(ids(after), vec![recovered, other_notifier, other]);
    }

    #[test]
    fn retry_then_deliver_records_attempts() {
        let (_dir, database) = database();
        let id = write(&database, |t| t.enqueue(&record("a", 0)).expect("enqueue"));
        let state = write(&database, |t| {
            t.record(&attempt(id, 10, Some("HTTP 500"), Some(500)))
        });
        assert_eq!(state.expect("record"), Some(DeliveryState::Pending));
        let found = due(&database, 100, 10, &mut |_, _| true).expect("due");
        assert!(found.rows.is_empty());
        assert_eq!(found.next_due_ms, Some(500));

        let state = write(&database, |t| t.record(&attempt(id, 600, None, None)));
        assert_eq!(state.expect("record"), Some(DeliveryState::Delivered));
        let filter = DeliveryFilter {
            limit: 10,
            ..Default::default()
        };
        let rows = list(&database, &filter).expect("list");
        assert_eq!(rows[0].1.attempts, 2);
        assert_eq!(rows[0].1.finished_at_ms, Some(600));
        assert_eq!(rows[0].1.last_error.as_deref(), Some("HTTP 500"));
        assert_eq!(pending_count(&database).expect("count"), 0);

        // A repeated report of a finished row changes nothing.
        let again = write(&database, |t| t.record(&attempt(id, 700, None, None)));
        assert_eq!(again.expect("record"), None);
    }

    #[test]
    fn give_up_marks_failed() {
        let (_dir, database) = database();
        let id = write(&database, |t| t.enqueue(&record("a", 0)).expect("enqueue"));
        let state = write(&database, |t| {
            t.record(&attempt(id, 10, Some("refused"), None))
        });
        assert_eq!(state.expect("record"), Some(DeliveryState::Failed));
        let filter = DeliveryFilter {
            state: Some(DeliveryState::Failed),
            limit: 10,
            ..Default::default()
        };
        let rows = list(&database, &filter).expect("list");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].1.last_error.as_deref(), Some("refused"));
        assert_eq!(pending_count(&database).expect("count"), 0);
    }

    #[test]
    fn prune_keeps_pending_and_recent() {
        let (_dir, database) = database();
        let (old, recent, pending) = write(&database, |t| {
            let ids = (
                t.enqueue(&record("a", 0)).expect("enqueue"),
                t.enqueue(&record("a", 0)).expect("enqueue"),
                t.enqueue(&record("a", 0)).expect("enqueue"),
            );
            t.record(&attempt(ids.0, 100, None, None)).expect("record");
            t.record(&attempt(ids.1, 900, None, None)).expect("record");
            ids
        });
        let deleted = write(&database, |t| t.prune(500).expect("prune"));
        assert_eq!(deleted, 1);
        let filter = DeliveryFilter {
            limit: 10,
            ..Default::default()
        };
        let ids: Vec<u64> = list(&database, &filter)
            .expect("list")
            .iter()
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(ids, vec![pending, recent]);
        assert!(!ids.contains(&old));
    }

    #[test]
    fn mutes_cover_field_or_system() {
        let (_dir, database) = database();
        let field = Mute {
            system: "shop".to_owned(),
            field: Some("collectors.c.latency".to_owned()),
        };
        let system = Mute {
            system: "shed".to_owned(),
            field: None,
        };
        write(&database, |t| {
            t.mute(&field, 1).expect("mute");
            t.mute(&system, 2).expect("mute");
            assert!(t.is_muted("shop", "collectors.c.latency").expect("read"));
            assert!(!t.is_muted("shop", "collectors.c.other").expect("read"));
            assert!(t.is_muted("shed", "collectors.c.anything").expect("read"));
            assert!(t.unmute(&field).expect("unmute"));
            assert!(!t.unmute(&field).expect("unmute"));
            assert!(!t.is_muted("shop", "collectors.c.latency").expect("read"));
        });
        let stored = mutes(&database).expect("mutes");
        assert_eq!(stored, vec![(system, 2)]);
    }
}
