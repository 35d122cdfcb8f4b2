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
