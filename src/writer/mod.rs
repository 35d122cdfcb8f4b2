//! The single writer: one thread owns the detector and every write transaction.
//!
//! Requests queue their work on a bounded channel. The thread drains what is queued into one
//! transaction and runs the detector inside it. It commits once, so the whole group shares one
//! fsync, and only then replies and publishes the events. A request is therefore acknowledged
//! only after its data is durable.

mod apply;
mod history;
mod request_keys;
mod stats;

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use serde::Serialize;
use tokio::sync::{Notify, mpsc, oneshot, watch};

pub use request_keys::{BadKey, KEY_LIFETIME_MS, MAX_KEY_LEN, RequestKey};
pub use stats::{StatsSnapshot, WriterStats};

use crate::config::ConfigSnapshot;
use crate::detector::{Detector, SeriesSnapshot};
use crate::engine::{Kind, Timestamp};
use crate::events::EventHub;
use crate::notify::{Attempt, DeliveryState, Mute};
use crate::series::{CheckResult, SeriesKey};
use crate::store::{Store, StoreError, read};

/// Maximum number of jobs waiting in the queue. A request that finds it full gets 503.
pub const QUEUE_JOBS: usize = 1024;
/// Most results written in one transaction; a larger request still commits whole.
const GROUP_RESULTS: usize = 20_000;

/// The configuration the writer reads before each transaction.
pub type ConfigFeed = watch::Receiver<Arc<ConfigSnapshot>>;

/// Most invalid samples one reply lists; `invalid_samples` still counts all of them.
pub const MAX_INVALID_LISTED: usize = 100;

/// Counts of one accepted request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestCounts {
    pub results: u64,
    pub field_evaluations: u64,
    pub invalid_samples: u64,
    pub state_changes: u64,
    /// The first [`MAX_INVALID_LISTED`] invalid samples, with their reasons.
    pub invalid: Vec<InvalidSample>,
}

/// Result of a request with an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// The results were stored now.
    Stored(IngestCounts),
    /// A request with the same key and body was stored before; nothing was stored now.
    Replayed(IngestCounts),
}

/// A stored sample that is only counted, because its value cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvalidSample {
    /// Position of the result in the request body (array index or NDJSON line, from 0).
    pub index: usize,
    /// Field path, `collectors.<collector id>.<field>`.
    pub field: String,
    pub reason: String,
}

/// Reason a job did not commit.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the write queue is full ({QUEUE_JOBS} requests); retry shortly")]
    Busy,
    #[error("the service is shutting down; retry after it restarts")]
    Closed,
    #[error("anomaly {id} does not exist")]
    UnknownAnomaly { id: u64 },
    #[error("anomaly {id} is {state}; only a confirmed anomaly can be suppressed")]
    NotConfirmed { id: u64, state: &'static str },
    #[error("storing failed: {0}")]
    Store(#[from] StoreError),
    #[error("processing failed unexpectedly: {0}")]
    Panicked(String),
    #[error(
        "Idempotency-Key {key:?} was used for a request with another body in the last 24 hours; \
         use a new key for new results"
    )]
    KeyReused { key: String },
    /// The error of another job in the same failed group, for the jobs that shared it.
    #[error("{0}")]
    GroupFailed(String),
}

impl WriteError {
    /// Tells whether the error comes from the data file's storage (disk full, a failed write),
    /// so that any other job written now would fail the same way.
    fn fails_every_job(&self) -> bool {
        matches!(
            self,
            Self::Store(StoreError::Database(
                redb::Error::Io(_) | redb::Error::PreviousIo
            ))
        )
    }
}

/// Work for the writer.
#[derive(Debug)]
enum Work {
    Ingest {
        results: Vec<CheckResult>,
        key: Option<RequestKey>,
    },
    Suppress {
        id: u64,
        at: Timestamp,
    },
    Unsuppress {
        id: u64,
    },
    Analyze {
        at: Timestamp,
    },
    Mute(Mute),
    Unmute(Mute),
    RecordDelivery {
        attempt: Attempt,
        prune_before_ms: i64,
    },
    /// Heartbeat, which the writer thread replies to without a transaction.
    Ping,
    /// Another retention pass as of an analyzer run whose pass reached its raw sample limit.
    /// Only the writer thread runs it, when its queue is empty.
    Retention {
        at: Timestamp,
    },
}

/// Result of a job.
#[derive(Debug)]
enum Done {
    Ingested(IngestCounts),
    /// The counts of the request stored earlier under the same idempotency key.
    Replayed(IngestCounts),
    Changed,
    Analyzed,
    Retained,
    Unmuted(bool),
    Delivery(Option<DeliveryState>),
}

struct Job {
    work: Work,
    reply: oneshot::Sender<Result<Done, WriteError>>,
}

/// Sends work to the writer thread; cheap to clone. It does not keep the thread alive: once
/// the owning [`WriterThread`] stops, submissions fail with [`WriteError::Closed`].
#[derive(Debug, Clone)]
pub struct WriterHandle {
    sender: mpsc::WeakSender<Job>,
    stats: Arc<WriterStats>,
}

/// The running writer thread and the one strong end of its queue.
#[derive(Debug)]
pub struct WriterThread {
    sender: mpsc::Sender<Job>,
    thread: JoinHandle<()>,
    stats: Arc<WriterStats>,
    /// Event time of the last stored analyzer run, as found at start.
    pub analyzer_last_run: Option<Timestamp>,
    /// Signalled after a commit that added outbox rows, to wake the delivery worker.
    pub outbox_wake: Arc<Notify>,
}

impl WriterThread {
    pub fn handle(&self) -> WriterHandle {
        WriterHandle {
            sender: self.sender.downgrade(),
            stats: self.stats.clone(),
        }
    }

    /// Closes the queue; the thread commits what is queued and ends. Join the returned handle.
    pub fn stop(self) -> JoinHandle<()> {
        drop(self.sender);
        self.thread
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.work.fmt(f)
    }
}

impl WriterHandle {
    /// Stores and evaluates the results of one request atomically.
    pub async fn ingest(&self, results: Vec<CheckResult>) -> Result<IngestCounts, WriteError> {
        match self.submit(Work::Ingest { results, key: None }).await? {
            Done::Ingested(counts) => Ok(counts),
            _ => unreachable!("ingest work without a key always answers with its counts"),
        }
    }

    /// Like [`ingest`](Self::ingest), unless a request with the same key and body was stored
    /// within [`KEY_LIFETIME_MS`]: then nothing is stored and that request's counts come back.
    pub async fn ingest_once(
        &self,
        results: Vec<CheckResult>,
        key: RequestKey,
    ) -> Result<Ingested, WriteError> {
        let key = Some(key);
        match self.submit(Work::Ingest { results, key }).await? {
            Done::Ingested(counts) => Ok(Ingested::Stored(counts)),
            Done::Replayed(counts) => Ok(Ingested::Replayed(counts)),
            _ => unreachable!("ingest work always answers with counts"),
        }
    }

    /// Suppresses a confirmed anomaly at `at`.
    pub async fn suppress(&self, id: u64, at: Timestamp) -> Result<(), WriteError> {
        self.submit(Work::Suppress { id, at }).await.map(drop)
    }

    /// Lifts the suppression of an anomaly.
    pub async fn unsuppress(&self, id: u64) -> Result<(), WriteError> {
        self.submit(Work::Unsuppress { id }).await.map(drop)
    }

    /// Runs the analyzer at `at` and stores what it produced.
    pub async fn analyze(&self, at: Timestamp) -> Result<(), WriteError> {
        self.submit(Work::Analyze { at }).await.map(drop)
    }

    /// Mutes notifications of a field or a whole system.
    pub async fn mute(&self, mute: Mute) -> Result<(), WriteError> {
        self.submit(Work::Mute(mute)).await.map(drop)
    }

    /// Lifts a mute; returns whether it existed.
    pub async fn unmute(&self, mute: Mute) -> Result<bool, WriteError> {
        match self.submit(Work::Unmute(mute)).await? {
            Done::Unmuted(existed) => Ok(existed),
            _ => unreachable!("unmute work always answers with whether the mute existed"),
        }
    }

    /// Records a delivery attempt and prunes finished rows older than `prune_before_ms`;
    /// returns the row's new state, or `None` when the row was no longer pending.
    pub async fn record_delivery(
        &self,
        attempt: Attempt,
        prune_before_ms: i64,
    ) -> Result<Option<DeliveryState>, WriteError> {
        let work = Work::RecordDelivery {
            attempt,
            prune_before_ms,
        };
        match self.submit(work).await? {
            Done::Delivery(state) => Ok(state),
            _ => unreachable!("delivery work always answers with the row state"),
        }
    }

    /// Sends the writer thread a heartbeat. Its reply marks the thread alive in its stats.
    pub async fn ping(&self) -> Result<(), WriteError> {
        self.submit(Work::Ping).await.map(drop)
    }

    /// Returns the writer's counters and the time it was last alive.
    pub fn stats(&self) -> &Arc<WriterStats> {
        &self.stats
    }

    async fn submit(&self, work: Work) -> Result<Done, WriteError> {
        let (reply, answer) = oneshot::channel();
        let sender = self.sender.upgrade().ok_or(WriteError::Closed)?;
        sender.try_send(Job { work, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => WriteError::Busy,
            mpsc::error::TrySendError::Closed(_) => WriteError::Closed,
        })?;
        // Only the writer thread's owner keeps the queue open.
        drop(sender);
        answer.await.map_err(|_| WriteError::Closed)?
    }
}

/// The writer thread's state.
struct Writer {
    store: Arc<Store>,
    detector: Detector,
    /// Series ids by key, so the hot path needs no lookup in the file.
    ids: HashMap<SeriesKey, u64>,
    /// Time of the analyzer run whose retention pass reached its raw sample limit, so more
    /// expired samples may be left. Cleared by a pass that stays under the limit.
    retention_backlog: Option<Timestamp>,
    config: ConfigFeed,
    events: Arc<EventHub>,
    outbox_wake: Arc<Notify>,
    stats: Arc<WriterStats>,
    options: WriterOptions,
}

/// Settings of the writer thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterOptions {
    /// Days a recovered anomaly is kept before retention deletes it.
    pub retention_days: u32,
    /// Maximum number of raw samples one retention pass deletes over all series, expired ones
    /// and those of stale series. Later passes delete the rest.
    pub raw_samples_per_run: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            retention_days: crate::retention::DEFAULT_ANOMALY_RETENTION_DAYS,
            raw_samples_per_run: RAW_SAMPLES_PER_RUN,
        }
    }
}

/// Default of [`WriterOptions::raw_samples_per_run`]. A pass of this size took at most 0.37 s,
/// analyzer run included, in `cargo bench --bench retention` on a 2-core machine.
pub const RAW_SAMPLES_PER_RUN: usize = 500_000;

/// Loads the detector from the store and starts the writer thread.
pub fn start(
    store: Arc<Store>,
    config: ConfigFeed,
    events: Arc<EventHub>,
    options: WriterOptions,
) -> Result<WriterThread, StoreError> {
    let Restored {
        detector,
        ids,
        analyzer_last_run,
    } = restore(&store)?;
    tracing::info!(series = ids.len(), "detector restored");
    let (sender, receiver) = mpsc::channel(QUEUE_JOBS);
    let outbox_wake = Arc::new(Notify::new());
    let stats = Arc::new(WriterStats::default());
    stats.mark_alive();
    let writer = Writer {
        store,
        detector,
        ids,
        retention_backlog: None,
        config,
        events,
        outbox_wake: outbox_wake.clone(),
        stats: stats.clone(),
        options,
    };
    let thread = std::thread::Builder::new()
        .name("anomalyd-writer".into())
        .spawn(move || writer.run(receiver))
        .expect("spawning a thread only fails when the process is out of resources");
    Ok(WriterThread {
        sender,
        thread,
        stats,
        analyzer_last_run,
        outbox_wake,
    })
}

/// The writer's state as loaded from the file.
struct Restored {
    detector: Detector,
    ids: HashMap<SeriesKey, u64>,
    analyzer_last_run: Option<Timestamp>,
}

/// Rebuilds the detector and the series ids from the file.
fn restore(store: &Store) -> Result<Restored, StoreError> {
    let mut snap = read::snapshot(store.database())?;
    let mut rows: HashMap<u64, SeriesSnapshot> = HashMap::new();
    for (series_id, row) in snap.open_rows.drain(..) {
        let entry = rows.entry(series_id).or_default();
        match row.kind {
            Kind::Spike => entry.spike_row = Some(row),
            Kind::Drift => entry.drift_row = Some(row),
        }
    }
    let mut ids = HashMap::with_capacity(snap.series.len());
    let mut series = Vec::with_capacity(snap.series.len());
    for (id, key) in snap.series {
        let mut s = rows.remove(&id).unwrap_or_default();
        s.baseline = snap.baselines.remove(&id);
        if let Some(state) = snap.states.get(&id) {
            state.fill(&mut s);
        }
        s.hour = snap.current_hours.remove(&id).map(|(hour_start, summary)| {
            crate::detector::HourSummary {
                hour_start,
                summary,
            }
        });
        ids.insert(key.clone(), id);
        if is_forgotten(&s) {
            continue;
        }
        series.push((key, s));
    }
    Ok(Restored {
        detector: Detector::restore(series),
        ids,
        analyzer_last_run: snap.analyzer_last_run,
    })
}

impl Writer {
    fn run(mut self, mut receiver: mpsc::Receiver<Job>) {
        let mut carried: Option<Job> = None;
        let mut churn = 0;
        loop {
            let first = match carried.take() {
                Some(job) => job,
                None => match self.next_job(&mut receiver) {
                    Some(job) => job,
                    None => break,
                },
            };
            let (batch, next) = gather(first, &mut receiver);
            carried = next;
            if matches!(batch[0].work, Work::Ping) {
                self.stats.mark_alive();
                reply_each(batch, vec![Ok(Done::Changed)]);
                continue;
            }
            churn += batch.iter().map(|job| heap_churn(&job.work)).sum::<usize>();
            self.commit_group(batch);
            if churn >= RELEASE_AFTER_CHURN && carried.is_none() && receiver.is_empty() {
                release_heap(churn);
                churn = 0;
            }
        }
        tracing::info!("writer stopped");
    }

    /// Waits for the next job. While a retention backlog is left, it runs one more bounded
    /// retention pass whenever the queue is empty, so queued jobs wait for at most one pass.
    fn next_job(&mut self, receiver: &mut mpsc::Receiver<Job>) -> Option<Job> {
        loop {
            let Some(at) = self.retention_backlog else {
                return receiver.blocking_recv();
            };
            match receiver.try_recv() {
                Ok(job) => return Some(job),
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
                Err(mpsc::error::TryRecvError::Empty) => self.continue_retention(at),
            }
        }
    }

    fn continue_retention(&mut self, at: Timestamp) {
        if let Err(error) = self.try_commit(&[&Work::Retention { at }]) {
            tracing::error!(%error, "retention pass failed; the next analyzer run retries it");
            self.retention_backlog = None;
        }
        if self.retention_backlog.is_none() {
            release_heap(RELEASE_AFTER_CHURN);
        }
    }

    /// Commits a group; when it fails, retries each job alone so one bad job fails alone. A
    /// storage error fails the whole group at once, because every retry would fail too and
    /// reload the detector from the file.
    fn commit_group(&mut self, batch: Vec<Job>) {
        let works: Vec<&Work> = batch.iter().map(|j| &j.work).collect();
        match self.try_commit(&works) {
            Ok(done) => reply_each(batch, done),
            Err(error) if batch.len() == 1 || error.fails_every_job() => {
                tracing::error!(%error, jobs = batch.len(), "write failed");
                // redb refuses every later write once a write failed on the disk, until the
                // file is opened again, so only a restart recovers.
                if error.fails_every_job() && self.stats.mark_storage_failed(&error.to_string()) {
                    tracing::error!(
                        %error,
                        "the data file cannot be written until anomalyd restarts; fix the \
                         cause (such as a full disk), then restart the service"
                    );
                }
                reply_all_err(batch, error);
            }
            Err(error) => {
                tracing::warn!(%error, jobs = batch.len(), "group write failed, retrying one by one");
                for job in batch {
                    self.commit_group(vec![job]);
                }
            }
        }
    }

    /// Runs the works in one transaction and publishes their events after commit. On any
    /// failure the transaction is dropped and the detector reloaded from the file.
    fn try_commit(&mut self, works: &[&Work]) -> Result<Vec<Result<Done, WriteError>>, WriteError> {
        let began = std::time::Instant::now();
        let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.apply(works)));
        let failure = match attempt {
            Ok(Ok((done, events))) => {
                self.events.publish(events);
                self.count(&done, began.elapsed());
                return Ok(done);
            }
            Ok(Err(error)) => error,
            Err(panic) => WriteError::Panicked(panic_message(panic)),
        };
        match restore(&self.store) {
            Ok(restored) => (self.detector, self.ids) = (restored.detector, restored.ids),
            Err(error) => {
                tracing::error!(%error, "reloading the detector after a failed write failed")
            }
        }
        Err(failure)
    }
}

impl Writer {
    /// Adds a committed group to the stats and marks the thread alive.
    fn count(&self, done: &[Result<Done, WriteError>], took: std::time::Duration) {
        for result in done {
            match result {
                Ok(Done::Ingested(counts)) => self.stats.add_ingest(counts),
                // An analyzer run is always committed in a group of its own.
                Ok(Done::Analyzed) => self.stats.add_analyzer_run(took),
                Ok(Done::Retained) => self.stats.add_retention_follow_up(),
                _ => {}
            }
        }
        self.stats.mark_alive();
    }
}

/// Takes `first` and whatever else is queued, up to the group limit. An analyzer run reads the
/// committed file, so it goes in a group of its own; so does a heartbeat, which needs no
/// transaction.
fn gather(first: Job, receiver: &mut mpsc::Receiver<Job>) -> (Vec<Job>, Option<Job>) {
    let alone = matches!(first.work, Work::Analyze { .. } | Work::Ping);
    let mut size = weight(&first.work);
    let mut batch = vec![first];
    while !alone && size < GROUP_RESULTS {
        let Ok(job) = receiver.try_recv() else { break };
        if matches!(job.work, Work::Analyze { .. } | Work::Ping) {
            return (batch, Some(job));
        }
        size += weight(&job.work);
        batch.push(job);
    }
    (batch, None)
}

/// Heap churn, in field samples, after which the writer returns freed memory once its queue is
/// empty. A burst this large costs far more than returning the memory does.
const RELEASE_AFTER_CHURN: usize = 10_000;

/// Returns freed heap memory to the kernel and logs how long that took.
fn release_heap(churn: usize) {
    let began = std::time::Instant::now();
    crate::heap::release_free_memory();
    tracing::debug!(churn, took = ?began.elapsed(), "freed heap memory returned");
}

/// How much short-lived memory a job allocates, in field samples; an analyzer run reads every
/// series.
fn heap_churn(work: &Work) -> usize {
    match work {
        Work::Ingest { results, .. } => results.iter().map(|result| result.fields.len()).sum(),
        Work::Analyze { .. } => RELEASE_AFTER_CHURN,
        _ => 0,
    }
}

fn weight(work: &Work) -> usize {
    match work {
        Work::Ingest { results, .. } => results.len(),
        _ => 1,
    }
}

fn reply_each(batch: Vec<Job>, done: Vec<Result<Done, WriteError>>) {
    for (job, done) in batch.into_iter().zip(done) {
        // The client may have gone away; its data is committed all the same.
        let _ = job.reply.send(done);
    }
}

/// Replies `error` to the first job and its text to the others.
fn reply_all_err(batch: Vec<Job>, error: WriteError) {
    let message = error.to_string();
    let mut error = Some(error);
    for job in batch {
        let e = error
            .take()
            .unwrap_or_else(|| WriteError::GroupFailed(message.clone()));
        let _ = job.reply.send(Err(e));
    }
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Returns whether a restored series is empty, because retention deleted what it learned.
fn is_forgotten(series: &SeriesSnapshot) -> bool {
    series.baseline.is_none()
        && series.spike_row.is_none()
        && series.drift_row.is_none()
        && series.hour.is_none()
        && series.learning.is_none()
        && series.last.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(error: redb::Error) -> WriteError {
        WriteError::Store(StoreError::Database(error))
    }

    #[test]
    fn storage_errors_fail_every_job() {
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert!(database(redb::Error::Io(full)).fails_every_job());
        assert!(database(redb::Error::PreviousIo).fails_every_job());
    }

    #[test]
    fn job_errors_are_retried_alone() {
        assert!(!WriteError::Panicked("bug".into()).fails_every_job());
        assert!(!database(redb::Error::ValueTooLarge(1 << 40)).fails_every_job());
        let missing = StoreError::MissingSeries {
            id: 1,
            series_id: 2,
        };
        assert!(!WriteError::Store(missing).fails_every_job());
    }
}
