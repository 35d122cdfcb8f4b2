//! The drift state machine of one series, stepped once per analyzer run.

use super::{
    Anomaly, Baseline, DriftReading, Kind, NotificationKind, RowChange, State, StateChange,
    Timestamp, Transition, rules::number_string, spike::is_flat_drift,
};

/// Consecutive drifting analyzer runs that confirm a drift, whatever the confirmation window.
pub const DRIFT_CONFIRMATION_THRESHOLD: u32 = 2;

/// Consecutive flat analyzer runs after which a confirmed drift recovers at its new level.
pub const STABLE_DRIFT_RUN_COUNT: u32 = 2;

/// Steps the drift state machine of one series after an analyzer run.
///
/// `row` must be the series' open drift row if it has one; a recovered row changes nothing.
pub fn step_drift(
    row: Option<&Anomaly>,
    reading: &DriftReading,
    baseline: &Baseline,
    now: Timestamp,
    new_id: u64,
) -> Transition {
    match row {
        Some(row) if !row.is_open() => Transition::UNCHANGED,
        None if reading.drifting => open_row(reading, baseline, now, new_id),
        None => Transition::UNCHANGED,
        Some(row) if !reading.drifting => on_not_drifting(row, baseline, now),
        Some(row) if row.state == State::Suspicious => {
            on_suspicious_drifting(row, reading, baseline, now)
        }
        Some(row) => on_confirmed_drifting(row, reading, baseline, now),
    }
}

fn open_row(reading: &DriftReading, baseline: &Baseline, now: Timestamp, id: u64) -> Transition {
    let row = Anomaly {
        id,
        kind: Kind::Drift,
        state: State::Suspicious,
        direction: reading.direction,
        baseline_mean: Some(baseline.mean),
        baseline_std_dev: Some(baseline.std_dev),
        observed_value: number_string(baseline.mean),
        deviation: reading.deviation_sigmas,
        suspicious_run_count: 1,
        confirmation_threshold: DRIFT_CONFIRMATION_THRESHOLD,
        started_at: now,
        confirmed_at: None,
        recovered_at: None,
        recent_samples: Vec::new(),
        stable_drift_run_count: 0,
        self_resolved: false,
        suppression: None,
    };
    Transition {
        row: RowChange::Insert(row),
        state_change: Some(StateChange::Suspicious),
        notification: None,
    }
}

fn refreshed(row: &Anomaly, reading: &DriftReading, baseline: &Baseline) -> Anomaly {
    let mut row = row.clone();
    row.observed_value = number_string(baseline.mean);
    row.deviation = reading.deviation_sigmas;
    row
}

fn on_not_drifting(row: &Anomaly, baseline: &Baseline, now: Timestamp) -> Transition {
    if row.state == State::Suspicious {
        return Transition::cleared();
    }
    let mut row = row.clone();
    row.observed_value = number_string(baseline.mean);
    row.stable_drift_run_count = 0;
    recovered(row, now)
}

fn on_suspicious_drifting(
    row: &Anomaly,
    reading: &DriftReading,
    baseline: &Baseline,
    now: Timestamp,
) -> Transition {
    let mut row = refreshed(row, reading, baseline);
    row.suspicious_run_count += 1;
    if row.suspicious_run_count < row.confirmation_threshold {
        return update(row, None, None);
    }
    row.state = State::Anomaly;
    row.confirmed_at = Some(now);
    update(
        row,
        Some(StateChange::Anomaly),
        Some(NotificationKind::DriftConfirmed),
    )
}

/// Counts flat runs of a confirmed drift; the second consecutive flat run recovers it at its
/// new level, and a steep run resets the count.
fn on_confirmed_drifting(
    row: &Anomaly,
    reading: &DriftReading,
    baseline: &Baseline,
    now: Timestamp,
) -> Transition {
    let mut row = refreshed(row, reading, baseline);
    row.stable_drift_run_count = if is_flat_drift(reading.projected_change, baseline.mean) {
        row.stable_drift_run_count + 1
    } else {
        0
    };
    if row.stable_drift_run_count < STABLE_DRIFT_RUN_COUNT {
        return update(row, None, None);
    }
    row.stable_drift_run_count = 0;
    row.self_resolved = true;
    recovered(row, now)
}

/// Recovers a confirmed drift. Unlike a spike, a suppressed drift still notifies its recovery,
/// because drift suppression is never lifted by a later reading.
fn recovered(mut row: Anomaly, now: Timestamp) -> Transition {
    row.mark_recovered(now);
    update(
        row,
        Some(StateChange::Recovered),
        Some(NotificationKind::DriftRecovered),
    )
}

fn update(
    row: Anomaly,
    state_change: Option<StateChange>,
    notification: Option<NotificationKind>,
) -> Transition {
    Transition {
        row: RowChange::Update(row),
        state_change,
        notification,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fixtures::{NOW, row, rule, sloped};
    use crate::engine::{Direction, RowDirection, Rule, Suppression, detect_drift};

    /// Builds a steep drift: slope 1 over 100 samples against σ 30 and mean 100.
    fn steep() -> Baseline {
        sloped(1.0, 30.0, 100, 100.0)
    }

    /// Builds a drift that is real in σ terms but flat relative to its high mean.
    fn flat_high_mean() -> Baseline {
        sloped(1.5, 10.0, 100, 10_000.0)
    }

    fn still() -> Baseline {
        sloped(0.0, 30.0, 100, 100.0)
    }

    fn step(row: Option<&Anomaly>, baseline: &Baseline, rule: &Rule) -> Transition {
        let reading = detect_drift(baseline, rule);
        step_drift(row, &reading, baseline, NOW, 42)
    }

    #[test]
    fn skipped_series_change_nothing() {
        let deviation = rule(Direction::Deviation);
        let cases = [
            (sloped(1.0, 30.0, 23, 100.0), deviation),
            (steep(), rule(Direction::Dominance)),
            (
                steep(),
                Rule {
                    drift_enabled: false,
                    ..deviation
                },
            ),
            (still(), deviation),
        ];
        for (baseline, rule) in cases {
            assert_eq!(
                step(None, &baseline, &rule),
                Transition::UNCHANGED,
                "{rule:?}"
            );
        }
    }

    #[test]
    fn first_detection_inserts_suspicious_drift() {
        let transition = step(None, &steep(), &rule(Direction::Deviation));
        let RowChange::Insert(row) = &transition.row else {
            panic!("expected an insert, got {:?}", transition.row);
        };
        assert_eq!(row.id, 42);
        assert_eq!(row.kind, Kind::Drift);
        assert_eq!(row.state, State::Suspicious);
        assert_eq!(row.suspicious_run_count, 1);
        assert_eq!(row.confirmation_threshold, 2);
        assert_eq!(row.direction, RowDirection::Above);
        assert_eq!(row.observed_value, "100");
        assert!((row.deviation - 100.0 / 30.0).abs() < 1e-9);
        assert_eq!(row.baseline_mean, Some(100.0));
        assert_eq!(transition.state_change, Some(StateChange::Suspicious));
        assert_eq!(transition.notification, None);
    }

    #[test]
    fn higher_is_better_drifts_only_downward() {
        let rule = rule(Direction::HigherIsBetter);
        assert_eq!(step(None, &steep(), &rule), Transition::UNCHANGED);
        let falling = sloped(-1.0, 30.0, 100, 100.0);
        let transition = step(None, &falling, &rule);
        let RowChange::Insert(row) = &transition.row else {
            panic!("expected an insert, got {:?}", transition.row);
        };
        assert_eq!(row.direction, RowDirection::Below);
    }

    /// One analyzer run on an open drift row: (state, count, threshold, stable runs, baseline) to
    /// (change, state after, count after, stable runs after, state change, notification).
    #[test]
    fn open_row_transition_cases() {
        use NotificationKind::{DriftConfirmed, DriftRecovered};
        let cases = [
            (
                State::Suspicious,
                1,
                3,
                0,
                steep(),
                "update",
                State::Suspicious,
                2,
                0,
                None,
                None,
            ),
            (
                State::Suspicious,
                1,
                2,
                0,
                steep(),
                "update",
                State::Anomaly,
                2,
                0,
                Some(StateChange::Anomaly),
                Some(DriftConfirmed),
            ),
            (
                State::Anomaly,
                2,
                2,
                0,
                steep(),
                "update",
                State::Anomaly,
                2,
                0,
                None,
                None,
            ),
            (
                State::Suspicious,
                1,
                2,
                0,
                still(),
                "delete",
                State::Suspicious,
                1,
                0,
                Some(StateChange::Cleared),
                None,
            ),
            (
                State::Anomaly,
                2,
                2,
                1,
                still(),
                "update",
                State::Recovered,
                2,
                0,
                Some(StateChange::Recovered),
                Some(DriftRecovered),
            ),
            (
                State::Anomaly,
                2,
                2,
                1,
                flat_high_mean(),
                "update",
                State::Recovered,
                2,
                0,
                Some(StateChange::Recovered),
                Some(DriftRecovered),
            ),
            (
                State::Anomaly,
                2,
                2,
                0,
                flat_high_mean(),
                "update",
                State::Anomaly,
                2,
                1,
                None,
                None,
            ),
            (
                State::Anomaly,
                2,
                2,
                1,
                steep(),
                "update",
                State::Anomaly,
                2,
                0,
                None,
                None,
            ),
        ];
        let rule = rule(Direction::Deviation);
        for (
            state,
            count,
            threshold,
            stable,
            baseline,
            change,
            after,
            count_after,
            stable_after,
            state_change,
            notification,
        ) in cases
        {
            let mut open = row(Kind::Drift, state, count, threshold);
            open.stable_drift_run_count = stable;
            let transition = step(Some(&open), &baseline, &rule);
            let case = format!(
                "{state:?} {count}/{threshold} stable {stable} slope {}",
                baseline.slope
            );
            assert_eq!(transition.state_change, state_change, "{case}");
            assert_eq!(transition.notification, notification, "{case}");
            match (&transition.row, change) {
                (RowChange::Update(row), "update") => {
                    assert_eq!(row.state, after, "{case}");
                    assert_eq!(row.suspicious_run_count, count_after, "{case}");
                    assert_eq!(row.stable_drift_run_count, stable_after, "{case}");
                }
                (RowChange::Delete, "delete") => {}
                (other, _) => panic!("{case}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn flat_drift_really_is_drifting() {
        let reading = detect_drift(&flat_high_mean(), &rule(Direction::Deviation));
        assert!(reading.drifting);
        assert!(crate::engine::is_flat_drift(
            reading.projected_change,
            10_000.0
        ));
    }

    #[test]
    fn confirmation_and_recovery_stamp_times() {
        let rule = rule(Direction::Deviation);
        let suspicious = row(Kind::Drift, State::Suspicious, 1, 2);
        let RowChange::Update(confirmed) = step(Some(&suspicious), &steep(), &rule).row else {
            panic!("confirmation updates the row");
        };
        assert_eq!(confirmed.confirmed_at, Some(NOW));
        let RowChange::Update(recovered) = step(Some(&confirmed), &still(), &rule).row else {
            panic!("recovery updates the row");
        };
        assert_eq!(recovered.recovered_at, Some(NOW));
        assert!(!recovered.self_resolved);
    }

    #[test]
    fn flat_recovery_is_self_resolution() {
        let rule = rule(Direction::Deviation);
        let mut open = row(Kind::Drift, State::Anomaly, 2, 2);
        open.stable_drift_run_count = 1;
        let RowChange::Update(recovered) = step(Some(&open), &flat_high_mean(), &rule).row else {
            panic!("recovery updates the row");
        };
        assert!(recovered.self_resolved);
        assert_eq!(recovered.observed_value, "10000");
    }

    #[test]
    fn recovery_clears_suppression_and_notifies() {
        let rule = rule(Direction::Deviation);
        let mut open = row(Kind::Drift, State::Anomaly, 2, 2);
        open.suppression = Some(Suppression {
            at: NOW,
            value: Some(100.0),
            baseline: Some(100.0),
        });
        let transition = step(Some(&open), &still(), &rule);
        let RowChange::Update(recovered) = &transition.row else {
            panic!("recovery updates the row");
        };
        assert_eq!(recovered.suppression, None);
        assert_eq!(
            transition.notification,
            Some(NotificationKind::DriftRecovered)
        );
    }

    #[test]
    fn drift_deviation_may_be_unbounded() {
        let constant_then_rising = sloped(1.0, 0.0, 100, 100.0);
        let transition = step(None, &constant_then_rising, &rule(Direction::Deviation));
        let RowChange::Insert(row) = &transition.row else {
            panic!("expected an insert, got {:?}", transition.row);
        };
        assert_eq!(row.deviation, f64::INFINITY);
    }

    #[test]
    fn recovered_row_is_never_stepped() {
        let mut recovered = row(Kind::Drift, State::Anomaly, 2, 2);
        recovered.state = State::Recovered;
        let transition = step(Some(&recovered), &steep(), &rule(Direction::Deviation));
        assert_eq!(transition, Transition::UNCHANGED);
    }
}
