//! Queries over a read snapshot: the anomaly feed, baselines, series and raw samples for the API,
//! and everything the detector restores at start.

use std::collections::HashMap;

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable};

use super::records::{
    AnomalyRecord, BaselineRecord, SampleRecord, SeriesRecord, SeriesStateRecord, SummaryRecord,
    decode,
};
use super::tables::{self, KIND_DRIFT, KIND_SPIKE};
use super::{Result, StoreError, db};
use crate::engine::{Anomaly, Baseline, Kind, State, Summary, Timestamp};
use crate::series::SeriesKey;

/// Filter of the feed by operator suppression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SuppressionFilter {
    #[default]
    Active,
    Suppressed,
    All,
}

/// Matches series by any of their key parts; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct SeriesFilter {
    pub system: Option<String>,
    pub healthcheck: Option<String>,
    pub environment: Option<String>,
    pub field: Option<String>,
}

impl SeriesFilter {
    pub fn matches(&self, key: &SeriesKey) -> bool {
        let same = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == have)
        };
        same(&self.system, Some(&key.system))
            && same(&self.healthcheck, Some(&key.healthcheck))
            && same(&self.environment, key.environment.as_deref())
            && same(&self.field, Some(&key.field_path))
    }
}

/// A page request of the anomaly feed, newest first.
#[derive(Debug, Clone, Default)]
pub struct AnomalyQuery {
    pub series: SeriesFilter,
    pub state: Option<State>,
    pub kind: Option<Kind>,
    pub suppression: SuppressionFilter,
    pub limit: usize,
    /// Position after which the page starts: (started at ms, id) of the last row seen.
    pub before: Option<(i64, u64)>,
}

/// One anomaly row with its series.
#[derive(Debug, Clone)]
pub struct AnomalyEntry {
    pub series: SeriesKey,
    pub row: Anomaly,
}

/// A page of the feed and the cursor of the next page, if there may be one.
#[derive(Debug, Clone)]
pub struct AnomalyPage {
    pub rows: Vec<AnomalyEntry>,
    pub next: Option<(i64, u64)>,
}

/// Everything the API shows about one series.
#[derive(Debug, Clone)]
pub struct SeriesEntry {
    pub id: u64,
    pub key: SeriesKey,
    pub baseline: Option<Baseline>,
    pub state: SeriesStateRecord,
    pub open_spike: Option<State>,
    pub open_drift: Option<State>,
}

/// One stored sample of a series.
#[derive(Debug, Clone)]
pub struct StoredSample {
    pub at: Timestamp,
    pub record: SampleRecord,
}

/// Everything the detector needs at start, keyed by series.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub series: Vec<(u64, SeriesKey)>,
    pub baselines: HashMap<u64, Baseline>,
    pub open_rows: Vec<(u64, Anomaly)>,
    pub states: HashMap<u64, SeriesStateRecord>,
    /// The latest hourly summary of each series with its hour start.
    pub current_hours: HashMap<u64, (Timestamp, Summary)>,
    pub analyzer_last_run: Option<Timestamp>,
}

/// Resolves series ids to keys, caching within one query.
struct SeriesNames<'a> {
    tx: &'a ReadTransaction,
    cache: HashMap<u64, SeriesKey>,
}

impl<'a> SeriesNames<'a> {
    fn new(tx: &'a ReadTransaction) -> Self {
        Self {
            tx,
            cache: HashMap::new(),
        }
    }

    fn key(&mut self, anomaly_id: u64, series_id: u64) -> Result<SeriesKey> {
        if let Some(key) = self.cache.get(&series_id) {
            return Ok(key.clone());
        }
        let table = self.tx.open_table(tables::SERIES).map_err(db)?;
        let bytes = table.get(series_id).map_err(db)?;
        let bytes = bytes.ok_or(StoreError::MissingSeries {
            id: anomaly_id,
            series_id,
        })?;
        let key: SeriesKey = decode::<SeriesRecord>("series", series_id, bytes.value())?.into();
        self.cache.insert(series_id, key.clone());
        Ok(key)
    }
}

/// Reads one page of the anomaly feed.
pub fn anomalies(database: &Database, query: &AnomalyQuery) -> Result<AnomalyPage> {
    let tx = database.begin_read().map_err(db)?;
    let index = tx.open_table(tables::ANOMALIES_BY_START).map_err(db)?;
    let rows = tx.open_table(tables::ANOMALIES).map_err(db)?;
    let mut names = SeriesNames::new(&tx);
    let upper = query.before.unwrap_or((i64::MAX, u64::MAX));
    let mut page = AnomalyPage {
        rows: Vec::new(),
        next: None,
    };
    for entry in index.range(..upper).map_err(db)?.rev() {
        let (position, _) = entry.map_err(db)?;
        let (started, id) = position.value();
        let Some(bytes) = rows.get(id).map_err(db)? else {
            continue;
        };
        let record: AnomalyRecord = decode("anomalies", id, bytes.value())?;
        let series = names.key(id, record.series_id)?;
        if !shows(query, &series, &record) {
            continue;
        }
        if page.rows.len() == query.limit {
            break;
        }
        page.rows.push(AnomalyEntry {
            series,
            row: record.to_anomaly(id),
        });
        page.next = Some((started, id));
    }
    if page.rows.len() < query.limit {
        page.next = None;
    }
    Ok(page)
}

fn shows(query: &AnomalyQuery, series: &SeriesKey, row: &AnomalyRecord) -> bool {
    let suppression = match query.suppression {
        SuppressionFilter::Active => row.suppression.is_none(),
        SuppressionFilter::Suppressed => row.suppression.is_some(),
        SuppressionFilter::All => true,
    };
    suppression
        && query.state.is_none_or(|s| s == row.state)
        && query.kind.is_none_or(|k| k == row.kind)
        && query.series.matches(series)
}

/// Reads one anomaly row by id.
pub fn anomaly(database: &Database, id: u64) -> Result<Option<AnomalyEntry>> {
    let tx = database.begin_read().map_err(db)?;
    let rows = tx.open_table(tables::ANOMALIES).map_err(db)?;
    let Some(bytes) = rows.get(id).map_err(db)? else {
        return Ok(None);
    };
    let record: AnomalyRecord = decode("anomalies", id, bytes.value())?;
    let series = SeriesNames::new(&tx).key(id, record.series_id)?;
    Ok(Some(AnomalyEntry {
        series,
        row: record.to_anomaly(id),
    }))
}

/// Lists the series matching a filter with their baseline, state and open rows.
pub fn series(database: &Database, filter: &SeriesFilter) -> Result<Vec<SeriesEntry>> {
    let tx = database.begin_read().map_err(db)?;
    let series = tx.open_table(tables::SERIES).map_err(db)?;
    let baselines = tx.open_table(tables::BASELINES).map_err(db)?;
    let states = tx.open_table(tables::SERIES_STATE).map_err(db)?;
    let mut out = Vec::new();
    for entry in series.iter().map_err(db)? {
        let (id, bytes) = entry.map_err(db)?;
        let id = id.value();
        let key: SeriesKey = decode::<SeriesRecord>("series", id, bytes.value())?.into();
        if !filter.matches(&key) {
            continue;
        }
        let baseline = match baselines.get(id).map_err(db)? {
            Some(b) => Some(decode::<BaselineRecord>("baselines", id, b.value())?.into()),
            None => None,
        };
        let state = match states.get(id).map_err(db)? {
            Some(s) => Some(decode("series_state", id, s.value())?),
            None => None,
        };
        let open_spike = open_state(&tx, id, KIND_SPIKE)?;
        let open_drift = open_state(&tx, id, KIND_DRIFT)?;
        let forgotten = state.is_none() && baseline.is_none();
        if forgotten && open_spike.is_none() && open_drift.is_none() {
            // Retention removed what this series learned; only its registry entry is left.
            continue;
        }
        let state = state.unwrap_or_default();
        out.push(SeriesEntry {
            id,
            key,
            baseline,
            state,
            open_spike,
            open_drift,
        });
    }
    Ok(out)
}

fn open_state(tx: &ReadTransaction, series_id: u64, kind: u8) -> Result<Option<State>> {
    let open = tx.open_table(tables::OPEN_ANOMALIES).map_err(db)?;
    let Some(id) = open.get((series_id, kind)).map_err(db)? else {
        return Ok(None);
    };
    let id = id.value();
    let rows = tx.open_table(tables::ANOMALIES).map_err(db)?;
    let Some(bytes) = rows.get(id).map_err(db)? else {
        return Ok(None);
    };
    let record: AnomalyRecord = decode("anomalies", id, bytes.value())?;
    Ok(Some(record.state))
}

/// Looks up the id of a series.
pub fn series_id(database: &Database, key: &SeriesKey) -> Result<Option<u64>> {
    let tx = database.begin_read().map_err(db)?;
    let ids = tx.open_table(tables::SERIES_IDS).map_err(db)?;
    let env = key.environment.as_deref().unwrap_or("");
    let lookup = (
        key.system.as_str(),
        key.healthcheck.as_str(),
        env,
        key.field_path.as_str(),
    );
    Ok(ids.get(lookup).map_err(db)?.map(|g| g.value()))
}

/// Reads the raw samples of a series in `[from, to]`, oldest first, at most `limit`.
pub fn samples(
    database: &Database,
    series_id: u64,
    from: Timestamp,
    to: Timestamp,
    limit: usize,
) -> Result<Vec<StoredSample>> {
    let tx = database.begin_read().map_err(db)?;
    let table = tx.open_table(tables::SAMPLES).map_err(db)?;
    let range = (series_id, from.as_millis(), 0)..=(series_id, to.as_millis(), u64::MAX);
    let mut out = Vec::new();
    for entry in table.range(range).map_err(db)?.take(limit) {
        let (key, bytes) = entry.map_err(db)?;
        let (_, at, seq) = key.value();
        let record = decode("samples", seq, bytes.value())?;
        out.push(StoredSample {
            at: Timestamp::from_millis(at),
            record,
        });
    }
    Ok(out)
}

/// Calls `visit` with each hourly summary of a series whose hour starts within `hours`.
pub fn visit_summaries(
    tx: &ReadTransaction,
    series_id: u64,
    hours: std::ops::RangeInclusive<Timestamp>,
    visit: &mut dyn FnMut(Timestamp, Summary),
) -> Result<()> {
    let table = tx.open_table(tables::SUMMARIES).map_err(db)?;
    let range = (series_id, hours.start().as_millis())..=(series_id, hours.end().as_millis());
    for entry in table.range(range).map_err(db)? {
        let (key, bytes) = entry.map_err(db)?;
        let SummaryRecord::V1(summary) = decode("summaries", series_id, bytes.value())?;
        visit(Timestamp::from_millis(key.value().1), summary);
    }
    Ok(())
}

/// Loads everything the detector restores at start.
pub fn snapshot(database: &Database) -> Result<Snapshot> {
    let tx = database.begin_read().map_err(db)?;
    let mut snap = Snapshot::default();
    load_series(&tx, &mut snap)?;
    load_baselines(&tx, &mut snap)?;
    load_open_rows(&tx, &mut snap)?;
    load_states(&tx, &mut snap)?;
    load_current_hours(&tx, &mut snap)?;
    let meta = tx.open_table(tables::META).map_err(db)?;
    let last_run = meta
        .get("analyzer_last_run")
        .map_err(db)?
        .map(|v| v.value());
    snap.analyzer_last_run = last_run.map(|ms| Timestamp::from_millis(ms as i64));
    Ok(snap)
}

fn load_series(tx: &ReadTransaction, snap: &mut Snapshot) -> Result<()> {
    let table = tx.open_table(tables::SERIES).map_err(db)?;
    for entry in table.iter().map_err(db)? {
        let (id, bytes) = entry.map_err(db)?;
        let id = id.value();
        let record: SeriesRecord = decode("series", id, bytes.value())?;
        snap.series.push((id, record.into()));
    }
    Ok(())
}

fn load_baselines(tx: &ReadTransaction, snap: &mut Snapshot) -> Result<()> {
    let table = tx.open_table(tables::BASELINES).map_err(db)?;
    for entry in table.iter().map_err(db)? {
        let (id, bytes) = entry.map_err(db)?;
        let id = id.value();
        let record: BaselineRecord = decode("baselines", id, bytes.value())?;
        snap.baselines.insert(id, record.into());
    }
    Ok(())
}

fn load_open_rows(tx: &ReadTransaction, snap: &mut Snapshot) -> Result<()> {
    let open = tx.open_table(tables::OPEN_ANOMALIES).map_err(db)?;
    let rows = tx.open_table(tables::ANOMALIES).map_err(db)?;
    for entry in open.iter().map_err(db)? {
        let (key, id) = entry.map_err(db)?;
        let ((series_id, _), id) = (key.value(), id.value());
        let Some(bytes) = rows.get(id).map_err(db)? else {
            continue;
        };
        let record: AnomalyRecord = decode("anomalies", id, bytes.value())?;
        snap.open_rows.push((series_id, record.to_anomaly(id)));
    }
    Ok(())
}

fn load_states(tx: &ReadTransaction, snap: &mut Snapshot) -> Result<()> {
    let table = tx.open_table(tables::SERIES_STATE).map_err(db)?;
    for entry in table.iter().map_err(db)? {
        let (id, bytes) = entry.map_err(db)?;
        let id = id.value();
        snap.states
            .insert(id, decode("series_state", id, bytes.value())?);
    }
    Ok(())
}

fn load_current_hours(tx: &ReadTransaction, snap: &mut Snapshot) -> Result<()> {
    let table = tx.open_table(tables::SUMMARIES).map_err(db)?;
    for &(id, _) in &snap.series {
        let range = (id, i64::MIN)..=(id, i64::MAX);
        let Some(last) = table.range(range).map_err(db)?.next_back() else {
            continue;
        };
        let (key, bytes) = last.map_err(db)?;
        let SummaryRecord::V1(summary) = decode("summaries", id, bytes.value())?;
        snap.current_hours
            .insert(id, (Timestamp::from_millis(key.value().1), summary));
    }
    Ok(())
}

/// Counts for metrics and the service status line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub series: u64,
    /// Open anomaly rows by kind and state.
    pub open: HashMap<(Kind, State), u64>,
}

impl Totals {
    /// Open rows of every kind and state.
    pub fn open_total(&self) -> u64 {
        self.open.values().sum()
    }
}

/// Counts the series and the open anomaly rows by kind and state.
pub fn totals(database: &Database) -> Result<Totals> {
    let tx = database.begin_read().map_err(db)?;
    let series = tx.open_table(tables::SERIES).map_err(db)?;
    let open = tx.open_table(tables::OPEN_ANOMALIES).map_err(db)?;
    let rows = tx.open_table(tables::ANOMALIES).map_err(db)?;
    let mut totals = Totals {
        series: redb::ReadableTableMetadata::len(&series).map_err(db)?,
        open: HashMap::new(),
    };
    for entry in open.iter().map_err(db)? {
        let (key, id) = entry.map_err(db)?;
        let ((_, kind), id) = (key.value(), id.value());
        let Some(bytes) = rows.get(id).map_err(db)? else {
            continue;
        };
        let record: AnomalyRecord = decode("anomalies", id, bytes.value())?;
        let kind = if kind == KIND_DRIFT {
            Kind::Drift
        } else {
            Kind::Spike
        };
        *totals.open.entry((kind, record.state)).or_default() += 1;
    }
    Ok(totals)
}
