//! Changes to the data file inside one write transaction, used only by the writer thread.

use redb::{ReadableTable, Table, WriteTransaction};

use super::records::{
    AnomalyRecord, BaselineRecord, SampleRecord, SeriesRecord, SeriesStateRecord, SummaryRecord,
    decode, encode,
};
use super::tables::{self, KIND_DRIFT, KIND_SPIKE};
use super::{Result, db};
use crate::engine::{Anomaly, Baseline, Kind, State, Summary, Timestamp};
use crate::series::SeriesKey;

/// The counters of the `meta` table, read once per transaction and written back by `finish`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub next_series_id: u64,
    pub next_anomaly_id: u64,
    pub next_sample_seq: u64,
    pub next_event_id: u64,
}

/// Every table of the file opened in one write transaction.
pub struct WriteTables<'txn> {
    meta: Table<'txn, &'static str, u64>,
    series_ids: Table<'txn, (&'static str, &'static str, &'static str, &'static str), u64>,
    series: Table<'txn, u64, &'static [u8]>,
    samples: Table<'txn, (u64, i64, u64), &'static [u8]>,
    summaries: Table<'txn, (u64, i64), &'static [u8]>,
    baselines: Table<'txn, u64, &'static [u8]>,
    anomalies: Table<'txn, u64, &'static [u8]>,
    open: Table<'txn, (u64, u8), u64>,
    by_start: Table<'txn, (i64, u64), ()>,
    state: Table<'txn, u64, &'static [u8]>,
    counters: Counters,
}

impl<'txn> WriteTables<'txn> {
    pub fn open(tx: &'txn WriteTransaction) -> Result<Self> {
        let meta = tx.open_table(tables::META).map_err(db)?;
        let counters = read_counters(&meta)?;
        Ok(Self {
            meta,
            series_ids: tx.open_table(tables::SERIES_IDS).map_err(db)?,
            series: tx.open_table(tables::SERIES).map_err(db)?,
            samples: tx.open_table(tables::SAMPLES).map_err(db)?,
            summaries: tx.open_table(tables::SUMMARIES).map_err(db)?,
            baselines: tx.open_table(tables::BASELINES).map_err(db)?,
            anomalies: tx.open_table(tables::ANOMALIES).map_err(db)?,
            open: tx.open_table(tables::OPEN_ANOMALIES).map_err(db)?,
            by_start: tx.open_table(tables::ANOMALIES_BY_START).map_err(db)?,
            state: tx.open_table(tables::SERIES_STATE).map_err(db)?,
            counters,
        })
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Returns the id of a series, registering it on first sight.
    pub fn series_id(&mut self, key: &SeriesKey) -> Result<u64> {
        let env = key.environment.as_deref().unwrap_or("");
        let lookup = (
            key.system.as_str(),
            key.healthcheck.as_str(),
            env,
            key.field_path.as_str(),
        );
        if let Some(id) = self.series_ids.get(lookup).map_err(db)? {
            return Ok(id.value());
        }
        let id = self.counters.next_series_id;
        self.counters.next_series_id += 1;
        self.series_ids.insert(lookup, id).map_err(db)?;
        let record = encode(&SeriesRecord::from(key));
        self.series.insert(id, record.as_slice()).map_err(db)?;
        Ok(id)
    }

    pub fn insert_sample(
        &mut self,
        series_id: u64,
        at: Timestamp,
        sample: &SampleRecord,
    ) -> Result<()> {
        let seq = self.counters.next_sample_seq;
        self.counters.next_sample_seq += 1;
        let bytes = encode(sample);
        self.samples
            .insert((series_id, at.as_millis(), seq), bytes.as_slice())
            .map_err(db)?;
        Ok(())
    }

    pub fn put_summary(
        &mut self,
        series_id: u64,
        hour_start: Timestamp,
        summary: &Summary,
    ) -> Result<()> {
        let bytes = encode(&SummaryRecord::V1(summary.clone()));
        let key = (series_id, hour_start.as_millis());
        self.summaries.insert(key, bytes.as_slice()).map_err(db)?;
        Ok(())
    }

    pub fn put_baseline(&mut self, series_id: u64, baseline: &Baseline) -> Result<()> {
        let bytes = encode(&BaselineRecord::from(baseline));
        self.baselines
            .insert(series_id, bytes.as_slice())
            .map_err(db)?;
        Ok(())
    }

    pub fn put_series_state(&mut self, series_id: u64, state: &SeriesStateRecord) -> Result<()> {
        let bytes = encode(state);
        self.state.insert(series_id, bytes.as_slice()).map_err(db)?;
        Ok(())
    }

    /// Inserts or updates an anomaly row and keeps both indexes in step with it.
    pub fn put_anomaly(&mut self, series_id: u64, row: &Anomaly) -> Result<()> {
        let bytes = encode(&AnomalyRecord::new(series_id, row));
        self.anomalies
            .insert(row.id, bytes.as_slice())
            .map_err(db)?;
        self.by_start
            .insert((row.started_at.as_millis(), row.id), ())
            .map_err(db)?;
        let open_key = (series_id, kind_key(row.kind));
        if matches!(row.state, State::Recovered) {
            let current = self.open.get(open_key).map_err(db)?.map(|g| g.value());
            if current == Some(row.id) {
                self.open.remove(open_key).map_err(db)?;
            }
        } else {
            self.open.insert(open_key, row.id).map_err(db)?;
        }
        Ok(())
    }

    /// Deletes an anomaly row (a suspicious row that saw a normal value) and its index entries.
    pub fn delete_anomaly(&mut self, series_id: u64, row: &Anomaly) -> Result<()> {
        self.anomalies.remove(row.id).map_err(db)?;
        self.by_start
            .remove((row.started_at.as_millis(), row.id))
            .map_err(db)?;
        let open_key = (series_id, kind_key(row.kind));
        let current = self.open.get(open_key).map_err(db)?.map(|g| g.value());
        if current == Some(row.id) {
            self.open.remove(open_key).map_err(db)?;
        }
        Ok(())
    }

    /// Reads one anomaly row with its series id.
    pub fn anomaly(&self, id: u64) -> Result<Option<(u64, Anomaly)>> {
        let Some(bytes) = self.anomalies.get(id).map_err(db)? else {
            return Ok(None);
        };
        let record: AnomalyRecord = decode("anomalies", id, bytes.value())?;
        Ok(Some((record.series_id, record.to_anomaly(id))))
    }

    /// Deletes the oldest raw samples of a series taken before `before`, at most `limit` of
    /// them, and returns how many were deleted.
    pub fn prune_samples(
        &mut self,
        series_id: u64,
        before: Timestamp,
        limit: usize,
    ) -> Result<usize> {
        let range = (series_id, i64::MIN, 0)..(series_id, before.as_millis(), 0);
        // Only the entries read from the iterator are removed, so `limit` bounds the work.
        let mut extracted = self.samples.extract_if(range, |_, _| true).map_err(db)?;
        let mut deleted = 0;
        while deleted < limit {
            let Some(entry) = extracted.next() else {
                break;
            };
            entry.map_err(db)?;
            deleted += 1;
        }
        extracted.close().map_err(db)?;
        Ok(deleted)
    }

    /// Deletes the hourly summaries of a series whose hour starts before `before`.
    pub fn prune_summaries(&mut self, series_id: u64, before: Timestamp) -> Result<()> {
        let range = (series_id, i64::MIN)..(series_id, before.as_millis());
        self.summaries.retain_in(range, |_, _| false).map_err(db)
    }

    /// Deletes what a series learned: its raw samples, hourly summaries, baseline and detector
    /// state. Its registry entry stays, so anomaly rows that name it still resolve, and it
    /// starts learning afresh if it reports again.
    pub fn forget_series_data(&mut self, series_id: u64) -> Result<()> {
        let samples = (series_id, i64::MIN, 0)..=(series_id, i64::MAX, u64::MAX);
        self.samples.retain_in(samples, |_, _| false).map_err(db)?;
        let summaries = (series_id, i64::MIN)..=(series_id, i64::MAX);
        self.summaries
            .retain_in(summaries, |_, _| false)
            .map_err(db)?;
        self.baselines.remove(series_id).map_err(db)?;
        self.state.remove(series_id).map_err(db)?;
        Ok(())
    }

    /// Deletes recovered rows for which `expired` holds, looking at no more than `scan_limit`
    /// rows from the oldest start time on; returns how many were deleted.
    pub fn prune_anomalies(
        &mut self,
        scan_limit: usize,
        expired: impl Fn(&Anomaly) -> bool,
    ) -> Result<usize> {
        let mut doomed = Vec::new();
        for entry in self.by_start.iter().map_err(db)?.take(scan_limit) {
            let (position, _) = entry.map_err(db)?;
            let (started, id) = position.value();
            let Some(bytes) = self.anomalies.get(id).map_err(db)? else {
                continue;
            };
            let record: AnomalyRecord = decode("anomalies", id, bytes.value())?;
            if record.state == State::Recovered && expired(&record.to_anomaly(id)) {
                doomed.push((started, id));
            }
        }
        for (started, id) in &doomed {
            self.anomalies.remove(*id).map_err(db)?;
            self.by_start.remove((*started, *id)).map_err(db)?;
        }
        Ok(doomed.len())
    }

    /// Takes the next anomaly id.
    pub fn next_anomaly_id(&mut self) -> u64 {
        let id = self.counters.next_anomaly_id;
        self.counters.next_anomaly_id += 1;
        id
    }

    /// Takes the next event id.
    pub fn next_event_id(&mut self) -> u64 {
        let id = self.counters.next_event_id;
        self.counters.next_event_id += 1;
        id
    }

    pub fn set_analyzer_last_run(&mut self, at: Timestamp) -> Result<()> {
        let ms = u64::try_from(at.as_millis()).unwrap_or(0);
        self.meta.insert("analyzer_last_run", ms).map_err(db)?;
        Ok(())
    }

    /// Writes the counters back; call once before commit.
    pub fn finish(mut self) -> Result<Counters> {
        let c = self.counters;
        self.meta
            .insert("next_series_id", c.next_series_id)
            .map_err(db)?;
        self.meta
            .insert("next_anomaly_id", c.next_anomaly_id)
            .map_err(db)?;
        self.meta
            .insert("next_sample_seq", c.next_sample_seq)
            .map_err(db)?;
        self.meta
            .insert("next_event_id", c.next_event_id)
            .map_err(db)?;
        Ok(c)
    }
}

pub(super) fn kind_key(kind: Kind) -> u8 {
    match kind {
        Kind::Spike => KIND_SPIKE,
        Kind::Drift => KIND_DRIFT,
    }
}

fn read_counters(meta: &impl ReadableTable<&'static str, u64>) -> Result<Counters> {
    let get = |name: &str, default: u64| -> Result<u64> {
        Ok(meta.get(name).map_err(db)?.map_or(default, |v| v.value()))
    };
    Ok(Counters {
        next_series_id: get("next_series_id", 1)?,
        next_anomaly_id: get("next_anomaly_id", 1)?,
        next_sample_seq: get("next_sample_seq", 0)?,
        next_event_id: get("next_event_id", 1)?,
    })
}
