//! The work inside one write transaction: running the detector or the analyzer and turning
//! their updates into rows, summaries, baselines and events.

use std::collections::{BTreeMap, HashMap};

use crate::analyzer::{self, AnalyzerRun};
use crate::clock::ManualClock;
use crate::clock::{Clock, SystemClock};
use crate::config::ConfigSnapshot;
use crate::detector::{self, RowStep, SampleStatus, SeriesUpdate};
use crate::engine::{
    NotificationKind, RowChange, State, StateChange, Summary, Suppression, Timestamp,
};
use crate::events::{Event, Payload};
use crate::notify::{self, OutboxTables, Transitioned};
use crate::retention::{self, Retention};
use crate::series::{CheckResult, SeriesKey};
use crate::store::{self, SampleRecord, SeriesStateRecord, WriteTables};
use crate::views::{AnomalyView, BaselineView};

use super::history::StoreHistory;
use super::request_keys::{RequestKeys, Seen};
use super::{Done, IngestCounts, InvalidSample, MAX_INVALID_LISTED, Work, WriteError, Writer};

/// Maximum number of anomaly rows one retention pass looks at.
const ANOMALY_SCAN_LIMIT: usize = 10_000;

/// Maximum number of stale series whose learned data one retention pass deletes, so a pass
/// stays short.
const STALE_SERIES_PER_RUN: usize = 1_000;

/// Changes one transaction collects before it commits.
#[derive(Default)]
struct Group {
    /// Series whose detector state changed, written once at the end.
    touched: BTreeMap<u64, SeriesKey>,
    /// The latest summary of each (series, hour), written once at the end.
    hours: HashMap<(u64, i64), Summary>,
    payloads: Vec<Payload>,
    /// Transitions that may notify, turned into outbox rows before commit.
    transitions: Vec<Transitioned>,
}

/// The tables one work item may change.
struct Tables<'a, 'txn> {
    w: &'a mut WriteTables<'txn>,
    outbox: &'a mut OutboxTables<'txn>,
    /// Open only when a work item of the transaction carries an idempotency key.
    keys: Option<&'a mut RequestKeys<'txn>>,
}

fn has_key(work: &Work) -> bool {
    matches!(work, Work::Ingest { key: Some(_), .. })
}

/// The outcome of each work item, or the error that aborts the whole transaction.
pub(super) type Applied = (Vec<Result<Done, WriteError>>, Vec<Event>);

impl Writer {
    /// Applies the works in one write transaction and commits it.
    pub(super) fn apply(&mut self, works: &[&Work]) -> Result<Applied, WriteError> {
        let config = self.config.borrow().clone();
        let tx = self.store.database().begin_write().map_err(store::db)?;
        let mut group = Group::default();
        let mut done = Vec::with_capacity(works.len());
        let mut enqueued = 0;
        let events = {
            let mut w = WriteTables::open(&tx)?;
            let mut outbox = OutboxTables::open(&tx)?;
            let mut keys = match works.iter().any(|work| has_key(work)) {
                true => Some(RequestKeys::open(&tx)?),
                false => None,
            };
            for work in works {
                let tables = Tables {
                    w: &mut w,
                    outbox: &mut outbox,
                    keys: keys.as_mut(),
                };
                done.push(self.apply_one(tables, &mut group, work, &config)?);
            }
            self.flush(&mut w, &mut group)?;
            let now_ms = SystemClock.now().as_millis();
            for transitioned in &group.transitions {
                enqueued += notify::enqueue(&mut outbox, transitioned, &config, now_ms)?;
            }
            let events = group
                .payloads
                .iter()
                .map(|p| Event::new(w.next_event_id(), p))
                .collect();
            w.finish()?;
            events
        };
        tx.commit().map_err(store::db)?;
        if enqueued > 0 {
            self.outbox_wake.notify_one();
        }
        Ok((done, events))
    }

    /// Applies one work item. Client errors (unknown id, wrong state) answer that item alone;
    /// storage errors abort the transaction.
    fn apply_one(
        &mut self,
        tables: Tables<'_, '_>,
        group: &mut Group,
        work: &Work,
        config: &ConfigSnapshot,
    ) -> Result<Result<Done, WriteError>, WriteError> {
        let Tables { w, outbox, keys } = tables;
        Ok(match work {
            Work::Ingest { results, key: None } => {
                Ok(Done::Ingested(self.ingest(w, group, results, config)?))
            }
            Work::Ingest {
                results,
                key: Some(key),
            } => {
                let keys = keys.expect("the key tables are open for work with a key");
                let now_ms = SystemClock.now().as_millis();
                match keys.check(key, now_ms)? {
                    Err(reused) => Err(reused),
                    Ok(Seen::Stored(counts)) => Ok(Done::Replayed(counts)),
                    Ok(Seen::New) => {
                        let counts = self.ingest(w, group, results, config)?;
                        keys.remember(key, &counts, now_ms)?;
                        Ok(Done::Ingested(counts))
                    }
                }
            }
            Work::Suppress { id, at } => self.suppress(w, *id, Some(*at))?.map(|()| Done::Changed),
            Work::Unsuppress { id } => self.suppress(w, *id, None)?.map(|()| Done::Changed),
            Work::Analyze { at } => {
                self.analyze(w, group, *at, config)?;
                Ok(Done::Analyzed)
            }
            Work::Mute(mute) => {
                outbox.mute(mute, SystemClock.now().as_millis())?;
                Ok(Done::Changed)
            }
            Work::Unmute(mute) => Ok(Done::Unmuted(outbox.unmute(mute)?)),
            Work::RecordDelivery {
                attempt,
                prune_before_ms,
            } => {
                let state = outbox.record(attempt)?;
                outbox.prune(*prune_before_ms)?;
                Ok(Done::Delivery(state))
            }
            // The thread replies to heartbeats before they reach a transaction.
            Work::Ping => Ok(Done::Changed),
            Work::Retention { at } => {
                self.prune(w, *at, config)?;
                Ok(Done::Retained)
            }
        })
    }

    fn ingest(
        &mut self,
        w: &mut WriteTables<'_>,
        group: &mut Group,
        results: &[CheckResult],
        config: &ConfigSnapshot,
    ) -> Result<IngestCounts, WriteError> {
        let mut counts = IngestCounts {
            results: results.len() as u64,
            ..Default::default()
        };
        for (index, result) in results.iter().enumerate() {
            let updates = self
                .detector
                .process(result, config, &mut || w.next_anomaly_id());
            for update in updates {
                if let SampleStatus::Invalid(reason) = update.status
                    && counts.invalid.len() < MAX_INVALID_LISTED
                {
                    counts.invalid.push(InvalidSample {
                        index,
                        field: update.key.field_path.clone(),
                        reason: reason.message(),
                    });
                }
                self.store_update(w, group, update, config, &mut counts)?;
            }
        }
        Ok(counts)
    }

    fn store_update(
        &mut self,
        w: &mut WriteTables<'_>,
        group: &mut Group,
        update: SeriesUpdate,
        config: &ConfigSnapshot,
        counts: &mut IngestCounts,
    ) -> Result<(), WriteError> {
        let id = self.series_id(w, &update.key)?;
        let sample = SampleRecord {
            value: (&update.value).into(),
            valid: !matches!(update.status, SampleStatus::Invalid(_)),
            healthy: update.status != SampleStatus::Unhealthy,
        };
        w.insert_sample(id, update.at, &sample)?;
        // Fields of an unhealthy run are stored for the record but never evaluated.
        counts.field_evaluations += u64::from(sample.healthy);
        counts.invalid_samples += u64::from(!sample.valid);
        if let Some(hour) = update.hour {
            group
                .hours
                .insert((id, hour.hour_start.as_millis()), hour.summary);
        }
        if let Some(baseline) = &update.baseline {
            w.put_baseline(id, baseline)?;
            // Only numeric baselines are published, whether learned inline or by the analyzer.
            if analyzer::series_is_numeric(config, &update.key) {
                let baseline = BaselineView::new(&update.key, baseline);
                group.payloads.push(Payload::BaselineUpdated { baseline });
            }
        }
        if let Some(step) = &update.spike {
            counts.state_changes += u64::from(store_step(w, group, id, &update.key, step)?);
        }
        group.touched.insert(id, update.key);
        Ok(())
    }

    fn series_id(&mut self, w: &mut WriteTables<'_>, key: &SeriesKey) -> Result<u64, WriteError> {
        if let Some(&id) = self.ids.get(key) {
            return Ok(id);
        }
        let id = w.series_id(key)?;
        self.ids.insert(key.clone(), id);
        Ok(id)
    }

    /// Sets (`at` given) or lifts the suppression of a row, in the file and in the detector.
    fn suppress(
        &mut self,
        w: &mut WriteTables<'_>,
        id: u64,
        at: Option<Timestamp>,
    ) -> Result<Result<(), WriteError>, WriteError> {
        let Some((series_id, mut row)) = w.anomaly(id)? else {
            return Ok(Err(WriteError::UnknownAnomaly { id }));
        };
        if at.is_some() && row.state != State::Anomaly {
            return Ok(Err(WriteError::NotConfirmed {
                id,
                state: state_name(row.state),
            }));
        }
        row.suppression = at.map(|at| Suppression {
            at,
            value: row
                .observed_value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite()),
            baseline: row.baseline_mean,
        });
        w.put_anomaly(series_id, &row)?;
        if row.state != State::Recovered {
            self.replace_open_row(series_id, row);
        }
        Ok(Ok(()))
    }

    /// Puts a changed open row into the detector, which owns the open rows.
    fn replace_open_row(&mut self, series_id: u64, row: crate::engine::Anomaly) {
        let key = self
            .ids
            .iter()
            .find(|(_, id)| **id == series_id)
            .map(|(k, _)| k.clone());
        let replaced = key.is_some_and(|key| self.detector.replace_open_row(&key, row));
        if !replaced {
            tracing::warn!(series_id, "suppressed row is not open in the detector");
        }
    }

    fn analyze(
        &mut self,
        w: &mut WriteTables<'_>,
        group: &mut Group,
        at: Timestamp,
        config: &ConfigSnapshot,
    ) -> Result<(), WriteError> {
        let history = StoreHistory::new(self.store.database(), &self.ids)?;
        let run = analyzer::run(at, &history, config, &mut self.detector, &mut || {
            w.next_anomaly_id()
        })?;
        drop(history);
        self.store_run(w, group, &run)?;
        self.prune(w, at, config)?;
        tracing::info!(
            baselines = run.baselines.len(),
            drift_steps = run.drift.len(),
            closed_rows = run.closed.len(),
            duration_ms = run.duration.as_millis() as u64,
            "analyzer run stored"
        );
        Ok(())
    }

    fn store_run(
        &mut self,
        w: &mut WriteTables<'_>,
        group: &mut Group,
        run: &AnalyzerRun,
    ) -> Result<(), WriteError> {
        for update in &run.baselines {
            let id = self.series_id(w, &update.key)?;
            w.put_baseline(id, &update.baseline)?;
            if update.numeric {
                let baseline = BaselineView::new(&update.key, &update.baseline);
                group.payloads.push(Payload::BaselineUpdated { baseline });
            }
            group.touched.insert(id, update.key.clone());
        }
        for drift in &run.drift {
            let id = self.series_id(w, &drift.key)?;
            store_step(w, group, id, &drift.key, &drift.step)?;
            let confirmed =
                drift.step.transition.notification == Some(NotificationKind::DriftConfirmed);
            if let (true, Some(row)) = (confirmed, &drift.step.anomaly) {
                group.payloads.push(Payload::DriftConfirmed {
                    anomaly: AnomalyView::new(&drift.key, row),
                });
            }
        }
        for closed in &run.closed {
            let id = self.series_id(w, &closed.key)?;
            store_step(w, group, id, &closed.key, &closed.step)?;
            tracing::info!(
                system = %closed.key.system,
                healthcheck = %closed.key.healthcheck,
                field = %closed.key.field_path,
                anomaly_id = closed.step.anomaly.as_ref().map(|row| row.id),
                kind = closed.kind.as_str(),
                change = closed.step.transition.state_change.map(StateChange::as_str),
                reason = closed.reason.message(),
                "open anomaly closed without a notification"
            );
        }
        w.set_analyzer_last_run(run.at)?;
        Ok(())
    }

    /// Deletes expired raw samples, hourly summaries and recovered anomalies as of `at`, and the
    /// learned data of stale series. Each run removes at most `raw_samples_per_run` raw samples,
    /// one scan's worth of anomalies and the data of at most [`STALE_SERIES_PER_RUN`] series.
    /// The rest go in later runs. When the sample limit was reached, the writer thread runs
    /// further passes as of the same `at` while its queue is empty.
    fn prune(
        &mut self,
        w: &mut WriteTables<'_>,
        at: Timestamp,
        config: &ConfigSnapshot,
    ) -> Result<(), WriteError> {
        let clock = ManualClock::new(at);
        let retention = Retention::new(&clock, self.options.retention_days);
        let largest = retention::largest_window(config, self.ids.keys());
        let sample_cutoff = retention.raw_sample_cutoff(largest);
        let summary_cutoff = retention.summary_cutoff(largest);
        let samples = self.prune_samples(w, sample_cutoff)?;
        for &id in self.ids.values() {
            w.prune_summaries(id, summary_cutoff)?;
        }
        let deleted =
            w.prune_anomalies(ANOMALY_SCAN_LIMIT, |row| retention.anomaly_expired(row))?;
        let mut sample_budget = self.sample_limit() - samples;
        let forgotten = self.forget_stale_series(w, &retention, config, &mut sample_budget)?;
        let backlog = (sample_budget == 0).then_some(at);
        match (self.retention_backlog.is_some(), backlog.is_some()) {
            (false, true) => tracing::info!(
                limit = self.sample_limit(),
                "retention pass reached its raw sample limit; further passes run while idle"
            ),
            (true, false) => tracing::info!("retention backlog deleted"),
            _ => {}
        }
        self.retention_backlog = backlog;
        tracing::debug!(samples, deleted, forgotten, "retention pass done");
        Ok(())
    }

    /// Returns the raw sample limit of one retention pass, at least 1 so a pass always makes
    /// progress.
    fn sample_limit(&self) -> usize {
        self.options.raw_samples_per_run.max(1)
    }

    /// Deletes raw samples taken before `cutoff`, at most `raw_samples_per_run` of them over
    /// all series, and returns how many were deleted.
    fn prune_samples(
        &self,
        w: &mut WriteTables<'_>,
        cutoff: Timestamp,
    ) -> Result<usize, WriteError> {
        let limit = self.sample_limit();
        let mut deleted = 0;
        for &id in self.ids.values() {
            if deleted == limit {
                break;
            }
            deleted += w.prune_samples(id, cutoff, limit - deleted)?;
        }
        Ok(deleted)
    }

    /// Forgets series not seen for twice their baseline window and with no open anomaly: their
    /// samples, summaries, baseline and detector state go. Their samples count against
    /// `sample_budget`, and a series whose samples do not fit is forgotten by a later pass.
    /// Returns how many were forgotten.
    fn forget_stale_series(
        &mut self,
        w: &mut WriteTables<'_>,
        retention: &Retention<'_>,
        config: &ConfigSnapshot,
        sample_budget: &mut usize,
    ) -> Result<usize, WriteError> {
        let stale: Vec<(SeriesKey, u64)> = self
            .ids
            .iter()
            .filter(|(key, _)| self.is_stale(key, retention, config))
            .take(STALE_SERIES_PER_RUN)
            .map(|(key, id)| (key.clone(), *id))
            .collect();
        let mut forgotten = 0;
        for (key, id) in &stale {
            let budget = *sample_budget;
            let removed = w.prune_samples(*id, Timestamp::from_millis(i64::MAX), budget)?;
            *sample_budget -= removed;
            if removed == budget {
                // The budget ran out, so samples of this series may be left.
                tracing::debug!(
                    stale_series_left = stale.len() - forgotten,
                    "stale series wait for a later retention pass"
                );
                break;
            }
            forgotten += 1;
            w.forget_series_data(*id)?;
            self.detector.remove(key);
            tracing::info!(
                system = %key.system,
                healthcheck = %key.healthcheck,
                field = %key.field_path,
                "series not seen for twice its baseline window; its learned data was deleted"
            );
        }
        Ok(forgotten)
    }

    fn is_stale(
        &self,
        key: &SeriesKey,
        retention: &Retention<'_>,
        config: &ConfigSnapshot,
    ) -> bool {
        let Some(last) = self.detector.last_sample(key) else {
            return false;
        };
        let window = detector::effective_settings(config, key)
            .baseline_window
            .value;
        retention.series_stale(last.at, window)
            && !self.detector.open_rows().any(|row| row.key == key)
    }

    /// Writes the per-hour summaries and the detector state of every touched series.
    fn flush(&self, w: &mut WriteTables<'_>, group: &mut Group) -> Result<(), WriteError> {
        for ((id, hour), summary) in group.hours.drain() {
            w.put_summary(id, Timestamp::from_millis(hour), &summary)?;
        }
        for (id, key) in &group.touched {
            if let Some(snapshot) = self.detector.snapshot(key) {
                w.put_series_state(*id, &SeriesStateRecord::from_snapshot(&snapshot))?;
            }
        }
        Ok(())
    }
}

/// Writes a spike or drift step's row change; returns whether the state changed.
fn store_step(
    w: &mut WriteTables<'_>,
    group: &mut Group,
    series_id: u64,
    key: &SeriesKey,
    step: &RowStep,
) -> Result<bool, WriteError> {
    let Some(row) = &step.anomaly else {
        return Ok(false);
    };
    match step.transition.row {
        RowChange::Unchanged => {}
        RowChange::Delete => w.delete_anomaly(series_id, row)?,
        RowChange::Insert(_) | RowChange::Update(_) => w.put_anomaly(series_id, row)?,
    }
    if let Some(kind) = step.transition.notification {
        group.transitions.push(Transitioned {
            key: key.clone(),
            row: row.clone(),
            kind,
        });
    }
    let Some(change) = step.transition.state_change else {
        return Ok(false);
    };
    group.payloads.push(Payload::StateChanged {
        change,
        anomaly: AnomalyView::new(key, row),
    });
    Ok(true)
}

pub(super) fn state_name(state: State) -> &'static str {
    match state {
        State::Suspicious => "suspicious",
        State::Anomaly => "a confirmed anomaly",
        State::Recovered => "recovered",
    }
}
