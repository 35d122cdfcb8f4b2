//! When the analyzer runs: at the top of every UTC hour in the service, once at start when an
//! hour was missed, and at every hh:00 boundary the data crosses in replay.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use crate::clock::{Clock, HOUR_MS, hour_start, next_hour_boundary};
use crate::engine::Timestamp;

/// Six-field cron expression (with seconds) for the top of every hour, evaluated in UTC.
pub const HOURLY_CRON: &str = "0 0 * * * *";

/// Errors of starting the hourly schedule.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("failed to start the hourly analyzer schedule `{expression}`: {source}")]
    Scheduler {
        expression: &'static str,
        source: JobSchedulerError,
    },
}

/// Returns whether an analyzer run is due at start: true when an hour boundary passed since the
/// last stored run. Without a stored run nothing was missed, because nothing ran before.
pub fn catch_up_due(last_run: Option<Timestamp>, now: Timestamp) -> bool {
    last_run.is_some_and(|last| hour_start(now) > last)
}

/// Starts a scheduler that calls `job` with the clock's time at the top of every UTC hour.
///
/// A run that is still going when the next hour starts makes that hour's run skip, with a
/// warning. Stop the schedule with [`JobScheduler::shutdown`].
pub async fn start_hourly<F, Fut>(
    clock: Arc<dyn Clock>,
    job: F,
) -> Result<JobScheduler, ScheduleError>
where
    F: Fn(Timestamp) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let scheduler = JobScheduler::new().await.map_err(scheduler_error)?;
    let job = Arc::new(job);
    let running = Arc::new(AtomicBool::new(false));
    let hourly = Job::new_async(HOURLY_CRON, move |_id, _scheduler| {
        let (clock, job, running) = (clock.clone(), job.clone(), running.clone());
        Box::pin(async move {
            run_unless_running(&running, job(clock.now())).await;
        })
    })
    .map_err(scheduler_error)?;
    scheduler.add(hourly).await.map_err(scheduler_error)?;
    scheduler.start().await.map_err(scheduler_error)?;
    Ok(scheduler)
}

/// Awaits `run` unless an earlier run is still going, in which case it skips with a warning.
/// Returns whether it ran.
async fn run_unless_running(running: &AtomicBool, run: impl Future<Output = ()>) -> bool {
    if running.swap(true, Ordering::AcqRel) {
        tracing::warn!("previous analyzer run still going, skipping this hour");
        return false;
    }
    run.await;
    running.store(false, Ordering::Release);
    true
}

fn scheduler_error(source: JobSchedulerError) -> ScheduleError {
    ScheduleError::Scheduler {
        expression: HOURLY_CRON,
        source,
    }
}

/// The hh:00 boundaries a stream of event times crosses, for running the analyzer in event time.
#[derive(Debug, Clone, Default)]
pub struct HourBoundaries {
    next: Option<Timestamp>,
}

impl HourBoundaries {
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the boundaries in `(previous event, at]`, oldest first, which are the analyzer
    /// runs due before the event at `at` is processed. The first event crosses none.
    pub fn crossed(&mut self, at: Timestamp) -> Vec<Timestamp> {
        let Some(mut next) = self.next else {
            self.next = Some(next_hour_boundary(at));
            return Vec::new();
        };
        let mut due = Vec::new();
        while next <= at {
            due.push(next);
            next = Timestamp::from_millis(next.as_millis() + HOUR_MS);
        }
        self.next = Some(next);
        due
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn catch_up_due_cases() {
        let at = |minutes: i64| Timestamp(minutes * 60_000);
        let cases = [
            (None, at(90), false),
            (Some(at(60)), at(90), false),
            (Some(at(61)), at(119), false),
            (Some(at(59)), at(60), true),
            (Some(at(60)), at(125), true),
            (Some(at(0)), at(24 * 60 + 5), true),
        ];
        for (last_run, now, expected) in cases {
            assert_eq!(
                catch_up_due(last_run, now),
                expected,
                "{last_run:?} {now:?}"
            );
        }
    }

    #[test]
    fn boundaries_follow_event_time() {
        let mut boundaries = HourBoundaries::new();
        let at = |minutes: i64| Timestamp(minutes * 60_000);
        assert!(
            boundaries.crossed(at(30)).is_empty(),
            "the first event crosses none"
        );
        assert!(boundaries.crossed(at(59)).is_empty());
        assert_eq!(boundaries.crossed(at(60)), [at(60)]);
        assert!(boundaries.crossed(at(61)).is_empty());
        assert_eq!(boundaries.crossed(at(240)), [at(120), at(180), at(240)]);
        assert!(
            boundaries.crossed(at(200)).is_empty(),
            "time never runs backwards"
        );
    }

    #[test]
    fn first_event_on_boundary_runs_next_hour() {
        let mut boundaries = HourBoundaries::new();
        assert!(boundaries.crossed(Timestamp(HOUR_MS)).is_empty());
        assert_eq!(
            boundaries.crossed(Timestamp(2 * HOUR_MS)),
            [Timestamp(2 * HOUR_MS)]
        );
    }

    #[tokio::test]
    async fn overlapping_run_skipped() {
        let running = AtomicBool::new(false);
        let first = tokio::time::timeout(
            Duration::from_secs(10),
            run_unless_running(&running, async {}),
        );
        assert!(first.await.expect("runs in time"), "an idle schedule runs");
        assert!(
            !running.load(Ordering::Acquire),
            "the guard is released after a run"
        );

        running.store(true, Ordering::Release);
        let second = tokio::time::timeout(
            Duration::from_secs(10),
            run_unless_running(&running, async { panic!("must not run") }),
        );
        assert!(
            !second.await.expect("returns in time"),
            "a busy schedule skips"
        );
        assert!(
            running.load(Ordering::Acquire),
            "the running run keeps the guard"
        );
    }

    #[tokio::test]
    async fn hourly_schedule_starts_and_stops() {
        let clock = Arc::new(ManualClock::new(Timestamp(0)));
        let start = start_hourly(clock, |_now| async {});
        let mut scheduler = tokio::time::timeout(Duration::from_secs(10), start)
            .await
            .expect("the scheduler starts in time")
            .expect("the hourly expression is valid");
        let stop = scheduler.shutdown();
        tokio::time::timeout(Duration::from_secs(10), stop)
            .await
            .expect("the scheduler stops in time")
            .expect("the scheduler shuts down cleanly");
    }
}
