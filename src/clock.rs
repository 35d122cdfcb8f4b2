//! The source of "now" for every scheduled step: the system clock in the service, a manual clock
//! in tests and replay.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::engine::Timestamp;

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

/// Supplies the current time. Nothing in the detection pipeline reads the wall clock directly.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The operating system's UTC clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the system clock is set after 1970");
        let ms = i64::try_from(since_epoch.as_millis()).expect("milliseconds since 1970 fit i64");
        Timestamp::from_millis(ms)
    }
}

/// A clock that moves only when set or advanced, safe to share between threads.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    pub fn new(now: Timestamp) -> Self {
        Self {
            now_ms: AtomicI64::new(now.as_millis()),
        }
    }

    /// Sets the current time; it may move backwards.
    pub fn set(&self, now: Timestamp) {
        self.now_ms.store(now.as_millis(), Ordering::SeqCst);
    }

    /// Moves the clock forward by `ms` milliseconds.
    pub fn advance_ms(&self, ms: i64) {
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.now_ms.load(Ordering::SeqCst))
    }
}

/// Returns the start of the UTC hour that contains `at`.
pub fn hour_start(at: Timestamp) -> Timestamp {
    Timestamp::from_millis(at.as_millis().div_euclid(HOUR_MS) * HOUR_MS)
}

/// Returns the first hh:00 boundary strictly after `at`.
pub fn next_hour_boundary(at: Timestamp) -> Timestamp {
    Timestamp::from_millis(hour_start(at).as_millis() + HOUR_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_start_rounds_down() {
        let cases = [
            (0, 0),
            (HOUR_MS - 1, 0),
            (HOUR_MS, HOUR_MS),
            (5 * HOUR_MS + 17, 5 * HOUR_MS),
            (-1, -HOUR_MS),
        ];
        for (at, expected) in cases {
            assert_eq!(hour_start(Timestamp(at)), Timestamp(expected), "at {at}");
        }
    }

    #[test]
    fn next_boundary_is_strictly_later() {
        assert_eq!(next_hour_boundary(Timestamp(0)), Timestamp(HOUR_MS));
        assert_eq!(
            next_hour_boundary(Timestamp(HOUR_MS - 1)),
            Timestamp(HOUR_MS)
        );
        assert_eq!(
            next_hour_boundary(Timestamp(HOUR_MS)),
            Timestamp(2 * HOUR_MS)
        );
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp(1_000));
        assert_eq!(clock.now(), Timestamp(1_000));
        clock.advance_ms(500);
        assert_eq!(clock.now(), Timestamp(1_500));
        clock.set(Timestamp(10));
        assert_eq!(clock.now(), Timestamp(10));
    }

    #[test]
    fn system_clock_is_after_2020() {
        let now = SystemClock.now();
        assert!(now.as_millis() > 1_577_836_800_000, "now = {now:?}");
    }
}
