//! Every redb table of the data file, with the layout of its keys and values.
//!
//! Keys are redb's native integers, strings or tuples of them, so redb orders integer keys
//! numerically and a time range of one series is a single range scan. Values are postcard bytes
//! decoded by the record types in `records`, which return errors instead of panicking.

use redb::TableDefinition;

/// `meta`: small named counters of the file.
///
/// | key                 | value                                           |
/// |---------------------|-------------------------------------------------|
/// | `schema_version`    | layout version of this file, see `SCHEMA_VERSION` |
/// | `next_series_id`    | id the next new series receives                 |
/// | `next_anomaly_id`   | id the next new anomaly row receives            |
/// | `next_sample_seq`   | sequence that orders samples sharing a timestamp |
/// | `next_event_id`     | id of the next published event, so ids keep rising across restarts |
/// | `analyzer_last_run` | event time (ms) of the last analyzer run, absent before the first |
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// `series_ids`: (system, healthcheck, environment or "", field path) → series id.
/// Names never are empty, so "" is free to mean the environment-less slice.
pub const SERIES_IDS: TableDefinition<(&str, &str, &str, &str), u64> =
    TableDefinition::new("series_ids");

/// `series`: series id → `SeriesRecord` (the key fields, for turning ids back into names).
pub const SERIES: TableDefinition<u64, &[u8]> = TableDefinition::new("series");

/// `samples`: (series id, timestamp ms, sequence) → `SampleRecord` (raw value, validity,
/// health of the run). A time range of a series is the key range
/// `(id, from, 0)..(id, to, u64::MAX)`.
pub const SAMPLES: TableDefinition<(u64, i64, u64), &[u8]> = TableDefinition::new("samples");

/// `summaries`: (series id, UTC hour start ms) → `SummaryRecord`, the mergeable statistics of
/// the healthy valid samples of that hour.
pub const SUMMARIES: TableDefinition<(u64, i64), &[u8]> = TableDefinition::new("summaries");

/// `baselines`: series id → `BaselineRecord`, the baseline the detector evaluates against.
pub const BASELINES: TableDefinition<u64, &[u8]> = TableDefinition::new("baselines");

/// `anomalies`: anomaly id → `AnomalyRecord` (the row with its series id).
pub const ANOMALIES: TableDefinition<u64, &[u8]> = TableDefinition::new("anomalies");

/// `open_anomalies`: (series id, kind: 0 spike, 1 drift) → id of the open (suspicious or
/// confirmed) row. At most one open row per series and kind.
pub const OPEN_ANOMALIES: TableDefinition<(u64, u8), u64> = TableDefinition::new("open_anomalies");

/// `anomalies_by_start`: (started at ms, anomaly id) → (). The feed walks it backwards, newest
/// first; the pair is also the paging cursor.
pub const ANOMALIES_BY_START: TableDefinition<(i64, u64), ()> =
    TableDefinition::new("anomalies_by_start");

/// `series_state`: series id → `SeriesStateRecord` (last value and time, invalid-sample count,
/// time of the last self-resolution, learning summary): what the detector keeps per series
/// besides baselines and rows.
pub const SERIES_STATE: TableDefinition<u64, &[u8]> = TableDefinition::new("series_state");

/// Key of the spike kind in `open_anomalies`.
pub const KIND_SPIKE: u8 = 0;
/// Key of the drift kind in `open_anomalies`.
pub const KIND_DRIFT: u8 = 1;
