//! Idempotency keys of result requests. A sender that lost a reply cannot tell whether its
//! results were stored. When it retries with the same `Idempotency-Key`, the retry gets the
//! first request's counts and nothing is stored twice.

use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{IngestCounts, InvalidSample, WriteError};
use crate::store::{Result, StoreError, db};

/// `request_keys`: idempotency key → `KeyRecord` (postcard): when the request was stored, the
/// fingerprint of its body and the counts of its reply.
const REQUEST_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("request_keys");

/// `request_keys_by_time`: (stored at ms, key) → (), so expired keys are found from the front.
const REQUEST_KEYS_BY_TIME: TableDefinition<(i64, &str), ()> =
    TableDefinition::new("request_keys_by_time");

/// How long a key is remembered. Retries come within minutes; a day covers a sender that
/// retries after its own restart.
pub const KEY_LIFETIME_MS: i64 = 24 * 60 * 60 * 1000;

/// Most expired keys removed per stored key. Deleting more than one per insert keeps the table
/// at one lifetime of keys even after a burst.
const EXPIRED_PER_INSERT: usize = 4;

/// Maximum key length, in bytes.
pub const MAX_KEY_LEN: usize = 255;

/// A request's idempotency key and the fingerprint of its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    key: String,
    body_hash: u64,
}

/// Error for an invalid `Idempotency-Key` header value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadKey {
    #[error("Idempotency-Key is empty; send 1 to {MAX_KEY_LEN} characters, such as a UUID")]
    Empty,
    #[error("Idempotency-Key has {0} bytes; at most {MAX_KEY_LEN} are accepted, so use a UUID")]
    TooLong(usize),
    #[error(
        "Idempotency-Key may contain only visible ASCII characters, without spaces or control \
         characters, but byte {0} is not one; a UUID is a good choice"
    )]
    Character(usize),
}

impl RequestKey {
    /// Checks a header value and pairs it with the fingerprint of the body it came with.
    pub fn new(key: &[u8], body: &[u8]) -> std::result::Result<Self, BadKey> {
        if key.is_empty() {
            return Err(BadKey::Empty);
        }
        if key.len() > MAX_KEY_LEN {
            return Err(BadKey::TooLong(key.len()));
        }
        if let Some(position) = key.iter().position(|b| !b.is_ascii_graphic()) {
            return Err(BadKey::Character(position + 1));
        }
        let key = String::from_utf8(key.to_vec()).expect("visible ASCII is UTF-8");
        let body_hash = crate::engine::fnv1a_64(body);
        Ok(Self { key, body_hash })
    }

    pub fn as_str(&self) -> &str {
        &self.key
    }
}

/// Result of looking up a request's key among the stored ones.
#[derive(Debug)]
pub enum Seen {
    /// Not stored, or expired: store the request.
    New,
    /// The same body was stored: reply with its counts.
    Stored(IngestCounts),
}

/// The stored form of one key.
#[derive(Debug, Serialize, Deserialize)]
struct KeyRecord {
    stored_at_ms: i64,
    body_hash: u64,
    counts: CountsRecord,
}

/// `IngestCounts` as stored, so the reply type can change on its own.
#[derive(Debug, Serialize, Deserialize)]
struct CountsRecord {
    results: u64,
    field_evaluations: u64,
    invalid_samples: u64,
    state_changes: u64,
    /// (result index, field path, reason) of the listed invalid samples.
    invalid: Vec<(u64, String, String)>,
}

impl From<&IngestCounts> for CountsRecord {
    fn from(c: &IngestCounts) -> Self {
        Self {
            results: c.results,
            field_evaluations: c.field_evaluations,
            invalid_samples: c.invalid_samples,
            state_changes: c.state_changes,
            invalid: c
                .invalid
                .iter()
                .map(|s| (s.index as u64, s.field.clone(), s.reason.clone()))
                .collect(),
        }
    }
}

impl From<CountsRecord> for IngestCounts {
    fn from(c: CountsRecord) -> Self {
        Self {
            results: c.results,
            field_evaluations: c.field_evaluations,
            invalid_samples: c.invalid_samples,
            state_changes: c.state_changes,
            invalid: c
                .invalid
                .into_iter()
                .map(|(index, field, reason)| InvalidSample {
                    index: usize::try_from(index).unwrap_or(usize::MAX),
                    field,
                    reason,
                })
                .collect(),
        }
    }
}

/// The key tables opened in one write transaction.
pub struct RequestKeys<'txn> {
    keys: Table<'txn, &'static str, &'static [u8]>,
    by_time: Table<'txn, (i64, &'static str), ()>,
}

impl<'txn> RequestKeys<'txn> {
    pub fn open(tx: &'txn WriteTransaction) -> Result<Self> {
        Ok(Self {
            keys: tx.open_table(REQUEST_KEYS).map_err(db)?,
            by_time: tx.open_table(REQUEST_KEYS_BY_TIME).map_err(db)?,
        })
    }

    /// Looks `key` up as of `now_ms`. A key stored with another body is rejected, because the
    /// sender reused it for a different request.
    pub fn check(
        &self,
        key: &RequestKey,
        now_ms: i64,
    ) -> Result<std::result::Result<Seen, WriteError>> {
        let Some(bytes) = self.keys.get(key.as_str()).map_err(db)? else {
            return Ok(Ok(Seen::New));
        };
        let record: KeyRecord = decode(bytes.value())?;
        if record.stored_at_ms <= now_ms - KEY_LIFETIME_MS {
            return Ok(Ok(Seen::New));
        }
        if record.body_hash != key.body_hash {
            return Ok(Err(WriteError::KeyReused {
                key: key.as_str().to_owned(),
            }));
        }
        Ok(Ok(Seen::Stored(record.counts.into())))
    }

    /// Stores `key` with the counts of its reply, and removes up to [`EXPIRED_PER_INSERT`]
    /// expired keys.
    pub fn remember(&mut self, key: &RequestKey, counts: &IngestCounts, now_ms: i64) -> Result<()> {
        let record = KeyRecord {
            stored_at_ms: now_ms,
            body_hash: key.body_hash,
            counts: counts.into(),
        };
        let bytes = postcard::to_stdvec(&record).expect("postcard encodes plain records");
        let previous = self
            .keys
            .insert(key.as_str(), bytes.as_slice())
            .map_err(db)?
            .map(|old| decode(old.value()))
            .transpose()?;
        // An expired entry of the same key leaves its old time behind in the index.
        if let Some(old) = previous {
            self.by_time
                .remove((old.stored_at_ms, key.as_str()))
                .map_err(db)?;
        }
        self.by_time
            .insert((now_ms, key.as_str()), ())
            .map_err(db)?;
        self.forget_expired(now_ms)
    }

    fn forget_expired(&mut self, now_ms: i64) -> Result<()> {
        let cutoff = now_ms - KEY_LIFETIME_MS;
        let mut expired = Vec::new();
        for entry in self.by_time.iter().map_err(db)?.take(EXPIRED_PER_INSERT) {
            let (at_and_key, _) = entry.map_err(db)?;
            let (at, key) = at_and_key.value();
            if at > cutoff {
                break;
            }
            expired.push((at, key.to_owned()));
        }
        for (at, key) in &expired {
            self.by_time.remove((*at, key.as_str())).map_err(db)?;
            self.keys.remove(key.as_str()).map_err(db)?;
        }
        Ok(())
    }

    /// Returns the number of keys held, expired ones not yet removed included.
    #[cfg(test)]
    fn len(&self) -> Result<u64> {
        redb::ReadableTableMetadata::len(&self.keys).map_err(db)
    }
}

fn decode(bytes: &[u8]) -> Result<KeyRecord> {
    postcard::from_bytes(bytes).map_err(|source| StoreError::Corrupt {
        table: "request_keys",
        key: 0,
        source,
    })
}

#[cfg(test)]
mod tests {
    use redb::ReadableTableMetadata;

    use super::*;

    fn counts(results: u64) -> IngestCounts {
        IngestCounts {
            results,
            field_evaluations: 2 * results,
            invalid_samples: 1,
            state_changes: 0,
            invalid: vec![InvalidSample {
                index: 0,
                field: "collectors.a.b".into(),
                reason: "not a number".into(),
            }],
        }
    }

    fn with_keys<T>(db: &redb::Database, f: impl FnOnce(&mut RequestKeys<'_>) -> T) -> T {
        let tx = db.begin_write().expect("begin");
        let out = {
            let mut keys = RequestKeys::open(&tx).expect("open");
            f(&mut keys)
        };
        tx.commit().expect("commit");
        out
    }

    fn database() -> (tempfile::TempDir, redb::Database) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = redb::Database::create(dir.path().join("keys.redb")).expect("create");
        (dir, db)
    }

    #[test]
    fn key_header_values_checked() {
        assert!(RequestKey::new(b"5f0c-a1", b"{}").is_ok());
        assert_eq!(RequestKey::new(b"", b"{}"), Err(BadKey::Empty));
        assert_eq!(
            RequestKey::new(b"two words", b"{}"),
            Err(BadKey::Character(4))
        );
        assert_eq!(RequestKey::new(b"tab\t", b"{}"), Err(BadKey::Character(4)));
        assert_eq!(
            RequestKey::new("é".as_bytes(), b"{}"),
            Err(BadKey::Character(1))
        );
        assert_eq!(
            RequestKey::new(&[b'k'; 256], b"{}"),
            Err(BadKey::TooLong(256))
        );
        assert!(RequestKey::new(&[b'k'; 255], b"{}").is_ok());
    }

    #[test]
    fn key_returns_counts_until_expiry() {
        let (_dir, db) = database();
        let key = RequestKey::new(b"k1", b"[1]").expect("key");
        with_keys(&db, |keys| {
            assert!(matches!(keys.check(&key, 1_000), Ok(Ok(Seen::New))));
            keys.remember(&key, &counts(3), 1_000).expect("remember");
        });
        with_keys(&db, |keys| {
            let Ok(Ok(Seen::Stored(stored))) = keys.check(&key, 2_000) else {
                panic!("key not found");
            };
            assert_eq!(stored, counts(3));
            let last_moment = 1_000 + KEY_LIFETIME_MS - 1;
            assert!(matches!(
                keys.check(&key, last_moment),
                Ok(Ok(Seen::Stored(_)))
            ));
            let expired = 1_000 + KEY_LIFETIME_MS;
            assert!(matches!(keys.check(&key, expired), Ok(Ok(Seen::New))));
        });
    }

    #[test]
    fn key_with_other_body_is_rejected() {
        let (_dir, db) = database();
        let first = RequestKey::new(b"k1", b"[1]").expect("key");
        let other = RequestKey::new(b"k1", b"[2]").expect("key");
        with_keys(&db, |keys| keys.remember(&first, &counts(1), 0)).expect("remember");
        with_keys(&db, |keys| {
            let answer = keys.check(&other, 10).expect("read");
            assert!(matches!(answer, Err(WriteError::KeyReused { ref key }) if key == "k1"));
        });
    }

    #[test]
    fn expired_keys_removed_on_insert() {
        let (_dir, db) = database();
        with_keys(&db, |keys| {
            for i in 0..10 {
                let key = RequestKey::new(format!("old-{i}").as_bytes(), b"[]").expect("key");
                keys.remember(&key, &counts(1), i).expect("remember");
            }
            assert_eq!(keys.len().expect("len"), 10);
            let later = KEY_LIFETIME_MS + 100;
            for i in 0..3 {
                let key = RequestKey::new(format!("new-{i}").as_bytes(), b"[]").expect("key");
                keys.remember(&key, &counts(1), later + i)
                    .expect("remember");
            }
            // Three inserts remove up to twelve expired keys: all ten old ones.
            assert_eq!(keys.len().expect("len"), 3);
            assert_eq!(keys.by_time.len().expect("len"), 3);
        });
    }

    #[test]
    fn reused_expired_key_keeps_one_entry() {
        let (_dir, db) = database();
        let key = RequestKey::new(b"k1", b"[1]").expect("key");
        let later = KEY_LIFETIME_MS + 10;
        with_keys(&db, |keys| {
            keys.remember(&key, &counts(1), 0).expect("remember");
            // Stored again after expiry: the old index entry goes with the overwrite, so
            // removing expired keys cannot take the new entry with it.
            keys.remember(&key, &counts(2), later).expect("remember");
            assert_eq!(keys.by_time.len().expect("len"), 1);
            let Ok(Ok(Seen::Stored(stored))) = keys.check(&key, later + 1) else {
                panic!("key lost");
            };
            assert_eq!(stored, counts(2));
        });
    }
}
