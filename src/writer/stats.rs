//! Counters the writer thread keeps for `/metrics`, and the time it last showed it was alive.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::IngestCounts;

/// Shared between the writer thread, which updates it, and readers on any thread.
#[derive(Debug)]
pub struct WriterStats {
    started: Instant,
    /// Milliseconds after `started` of the last commit or heartbeat reply.
    alive_ms: AtomicU64,
    results: AtomicU64,
    field_evaluations: AtomicU64,
    invalid_samples: AtomicU64,
    analyzer_runs: AtomicU64,
    analyzer_micros: AtomicU64,
    last_analyzer_micros: AtomicU64,
    retention_follow_ups: AtomicU64,
    /// The first storage error after which the data file cannot be written until a restart.
    storage_failure: std::sync::OnceLock<String>,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub results: u64,
    pub field_evaluations: u64,
    pub invalid_samples: u64,
    pub analyzer_runs: u64,
    /// Time spent in all analyzer runs since start.
    pub analyzer_time: Duration,
    /// Duration of the last analyzer run.
    pub last_analyzer_time: Duration,
    /// Retention passes the writer ran on its own, because an analyzer run's pass reached its
    /// raw sample limit.
    pub retention_follow_ups: u64,
    /// Whether a storage error stopped all writes until a restart.
    pub storage_failed: bool,
}

impl Default for WriterStats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            alive_ms: AtomicU64::new(0),
            results: AtomicU64::new(0),
            field_evaluations: AtomicU64::new(0),
            invalid_samples: AtomicU64::new(0),
            analyzer_runs: AtomicU64::new(0),
            analyzer_micros: AtomicU64::new(0),
            last_analyzer_micros: AtomicU64::new(0),
            retention_follow_ups: AtomicU64::new(0),
            storage_failure: std::sync::OnceLock::new(),
        }
    }
}

impl WriterStats {
    /// Records that the writer thread just finished a commit or replied to a heartbeat.
    pub(super) fn mark_alive(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.alive_ms.store(ms, Ordering::Relaxed);
    }

    /// Time since the writer thread last committed or replied to a heartbeat.
    pub fn since_alive(&self) -> Duration {
        let alive = Duration::from_millis(self.alive_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(alive)
    }

    pub(super) fn add_ingest(&self, counts: &IngestCounts) {
        self.results.fetch_add(counts.results, Ordering::Relaxed);
        self.field_evaluations
            .fetch_add(counts.field_evaluations, Ordering::Relaxed);
        self.invalid_samples
            .fetch_add(counts.invalid_samples, Ordering::Relaxed);
    }

    pub(super) fn add_analyzer_run(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.analyzer_runs.fetch_add(1, Ordering::Relaxed);
        self.analyzer_micros.fetch_add(micros, Ordering::Relaxed);
        self.last_analyzer_micros.store(micros, Ordering::Relaxed);
    }

    /// Records a storage error that leaves the data file unwritable until the process restarts;
    /// returns whether it is the first.
    pub(super) fn mark_storage_failed(&self, error: &str) -> bool {
        self.storage_failure.set(error.to_owned()).is_ok()
    }

    /// Returns the storage error that stopped all writes, if one happened.
    pub fn storage_failure(&self) -> Option<&str> {
        self.storage_failure.get().map(String::as_str)
    }

    pub(super) fn add_retention_follow_up(&self) {
        self.retention_follow_ups.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            results: self.results.load(Ordering::Relaxed),
            field_evaluations: self.field_evaluations.load(Ordering::Relaxed),
            invalid_samples: self.invalid_samples.load(Ordering::Relaxed),
            analyzer_runs: self.analyzer_runs.load(Ordering::Relaxed),
            analyzer_time: Duration::from_micros(self.analyzer_micros.load(Ordering::Relaxed)),
            last_analyzer_time: Duration::from_micros(
                self.last_analyzer_micros.load(Ordering::Relaxed),
            ),
            retention_follow_ups: self.retention_follow_ups.load(Ordering::Relaxed),
            storage_failed: self.storage_failure.get().is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_failure_keeps_first_error() {
        let stats = WriterStats::default();
        assert_eq!(stats.storage_failure(), None);
        assert!(!stats.snapshot().storage_failed);
        assert!(stats.mark_storage_failed("No space left on device"));
        assert!(!stats.mark_storage_failed("Previous I/O error occurred"));
        assert_eq!(stats.storage_failure(), Some("No space left on device"));
        assert!(stats.snapshot().storage_failed);
    }
}
