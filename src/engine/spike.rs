//! The spike state machine of one series, with self-resolution, suppression reactivation and
//! the re-arm guard after a self-resolution.

use super::{
    Anomaly, EPSILON, Kind, NotificationKind, Outcome, RowChange, RowDirection, SpikeContext,
    State, StateChange, Transition, Value, rules::value_string,
};

/// Samples a confirmed spike must have settled over before it self-resolves.
pub const SETTLED_SAMPLE_COUNT: usize = 5;

/// Largest spread (max − min) of the settled samples, relative to their mean; also the largest
/// projected change, relative to the mean, of a flat drift.
pub const SETTLED_RELATIVE_BAND: f64 = 0.10;

/// Relative move away from the suppressed value beyond which a suppression is lifted.
pub const REACTIVATION_RELATIVE_CHANGE: f64 = 0.25;

/// Appends a sample to the recent window and keeps only the last five, oldest first.
pub fn push_recent_sample(window: &mut Vec<f64>, x: f64) {
    window.push(x);
    if window.len() > SETTLED_SAMPLE_COUNT {
        window.drain(..window.len() - SETTLED_SAMPLE_COUNT);
    }
}

/// Returns whether the last five samples lie within 10 % of their mean (inclusive); fewer than
/// five never have settled.
pub fn has_settled(window: &[f64]) -> bool {
    if window.len() < SETTLED_SAMPLE_COUNT {
        return false;
    }
    let last = &window[window.len() - SETTLED_SAMPLE_COUNT..];
    let max = last.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = last.iter().copied().fold(f64::INFINITY, f64::min);
    let mean = last.iter().sum::<f64>() / SETTLED_SAMPLE_COUNT as f64;
    (max - min) / mean.abs().max(EPSILON) <= SETTLED_RELATIVE_BAND
}

/// Returns whether a projected drift change is within 10 % of the mean (inclusive).
pub fn is_flat_drift(projected_change: f64, mean: f64) -> bool {
    projected_change.abs() / mean.abs().max(EPSILON) <= SETTLED_RELATIVE_BAND
}

/// Returns whether `x` moved strictly more than 25 % away from the suppressed value `s`.
pub fn moved_since_suppression(x: f64, s: f64) -> bool {
    (x - s).abs() / s.abs().max(EPSILON) > REACTIVATION_RELATIVE_CHANGE
}

impl Transition {
    /// A step that changes nothing.
    pub const UNCHANGED: Transition = Transition {
        row: RowChange::Unchanged,
        state_change: None,
        notification: None,
    };

    fn update(row: Anomaly) -> Self {
        Transition {
            row: RowChange::Update(row),
            state_change: None,
            notification: None,
        }
    }

    fn with_state(mut self, change: StateChange) -> Self {
        self.state_change = Some(change);
        self
    }

    fn with_notification(mut self, kind: Option<NotificationKind>) -> Self {
        self.notification = kind;
        self
    }

    /// The step that deletes an unconfirmed suspicious row.
    pub(super) fn cleared() -> Self {
        Transition {
            row: RowChange::Delete,
            state_change: Some(StateChange::Cleared),
            notification: None,
        }
    }
}

impl Anomaly {
    /// Returns whether an operator suppressed this row.
    pub fn is_suppressed(&self) -> bool {
        self.suppression.is_some()
    }

    /// Returns whether the row is suspicious or confirmed, the only states a step takes.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Suspicious | State::Anomaly)
    }

    /// Marks the row recovered at `now` and lifts its suppression.
    pub(super) fn mark_recovered(&mut self, now: super::Timestamp) {
        self.state = State::Recovered;
        self.recovered_at = Some(now);
        self.suppression = None;
    }
}

/// Steps the spike state machine of one series.
///
/// `row` must be the series' open spike row (suspicious or anomaly) if it has one; a recovered
/// row is history and changes nothing. An invalid value changes nothing either.
pub fn step_spike(row: Option<&Anomaly>, outcome: &Outcome, ctx: &SpikeContext<'_>) -> Transition {
    match (row, outcome) {
        (_, Outcome::Invalid(_)) => Transition::UNCHANGED,
        (Some(row), _) if !row.is_open() => Transition::UNCHANGED,
        (None, Outcome::Normal { .. }) => Transition::UNCHANGED,
        (
            None,
            Outcome::Anomalous {
                deviation,
                direction,
            },
        ) => open_row(*deviation, *direction, ctx),
        (Some(row), Outcome::Normal { .. }) => on_normal(row, ctx),
        (Some(row), Outcome::Anomalous { deviation, .. }) if row.state == State::Suspicious => {
            on_suspicious_anomalous(row, *deviation, ctx)
        }
        (Some(row), Outcome::Anomalous { deviation, .. }) => {
            on_confirmed_anomalous(row, *deviation, ctx)
        }
    }
}

/// Opens a row for a first anomalous value, unless the series self-resolved since the baseline
/// was computed. Window 1 confirms at once.
fn open_row(deviation: f64, direction: RowDirection, ctx: &SpikeContext<'_>) -> Transition {
    if ctx
        .last_self_resolution
        .is_some_and(|at| ctx.baseline.computed_at <= at)
    {
        return Transition::UNCHANGED;
    }
    let confirmed = ctx.rule.confirmation_window <= 1;
    let row = Anomaly {
        id: ctx.new_id,
        kind: Kind::Spike,
        state: if confirmed {
            State::Anomaly
        } else {
            State::Suspicious
        },
        direction,
        baseline_mean: Some(ctx.baseline.mean),
        baseline_std_dev: Some(ctx.baseline.std_dev),
        observed_value: value_string(ctx.value),
        deviation,
        suspicious_run_count: 1,
        confirmation_threshold: ctx.rule.confirmation_window,
        started_at: ctx.now,
        confirmed_at: confirmed.then_some(ctx.now),
        recovered_at: None,
        recent_samples: Vec::new(),
        stable_drift_run_count: 0,
        self_resolved: false,
        suppression: None,
    };
    let transition = Transition {
        row: RowChange::Insert(row),
        state_change: None,
        notification: None,
    };
    if confirmed {
        transition
            .with_state(StateChange::Anomaly)
            .with_notification(Some(NotificationKind::Confirmed))
    } else {
        transition.with_state(StateChange::Suspicious)
    }
}

fn on_normal(row: &Anomaly, ctx: &SpikeContext<'_>) -> Transition {
    if row.state == State::Suspicious {
        return Transition::cleared();
    }
    let mut row = row.clone();
    row.observed_value = value_string(ctx.value);
    row.recent_samples.clear();
    recovered(row, ctx)
}

fn on_suspicious_anomalous(row: &Anomaly, deviation: f64, ctx: &SpikeContext<'_>) -> Transition {
    let mut row = row.clone();
    row.observed_value = value_string(ctx.value);
    row.deviation = deviation;
    row.suspicious_run_count += 1;
    if row.suspicious_run_count < row.confirmation_threshold {
        return Transition::update(row);
    }
    row.state = State::Anomaly;
    row.confirmed_at = Some(ctx.now);
    Transition::update(row)
        .with_state(StateChange::Anomaly)
        .with_notification(Some(NotificationKind::Confirmed))
}

/// Handles a confirmed row that is still anomalous: a suppression lifts when the value moved
/// more than 25 %, a value that settled at a new level self-resolves, anything else refreshes.
fn on_confirmed_anomalous(row: &Anomaly, deviation: f64, ctx: &SpikeContext<'_>) -> Transition {
    let mut row = row.clone();
    row.observed_value = value_string(ctx.value);
    row.deviation = deviation;
    let Value::Number(x) = *ctx.value else {
        return Transition::update(row);
    };

    let suppressed_at = row.suppression.as_ref().and_then(|s| s.value);
    if suppressed_at.is_some_and(|s| moved_since_suppression(x, s)) {
        row.suppression = None;
        return Transition::update(row).with_state(StateChange::Anomaly);
    }

    push_recent_sample(&mut row.recent_samples, x);
    if !has_settled(&row.recent_samples) {
        return Transition::update(row);
    }
    row.recent_samples.clear();
    row.self_resolved = true;
    recovered(row, ctx)
}

/// Recovers a confirmed spike. A suppressed row recovers silently: the operator already chose not
/// to hear about it.
fn recovered(mut row: Anomaly, ctx: &SpikeContext<'_>) -> Transition {
    let notification = (!row.is_suppressed()).then_some(NotificationKind::Recovered);
    row.mark_recovered(ctx.now);
    Transition::update(row)
        .with_state(StateChange::Recovered)
        .with_notification(notification)
}
