//! The spike state machine of one series, with self-resolution, suppression reactivation and
//! the re-arm guard after a self-resolution.

use super::{
    Anomaly, EPSILON, Kind, NotificationKind, Outcome, RowChange, RowDirection, SpikeContext,
    State, StateChange, Transition, Value, rules::value_string,
};

/// Samples a confirmed spike must have settled over before it self-resolves.
pub const SETTLED_SAMPLE_COUNT: usize = 5;

/// Maximum spread (max − min) of settled samples, relative to their mean. The same band bounds
/// the projected change of a flat drift, relative to the baseline mean.
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

    /// Builds the step that deletes an unconfirmed suspicious row.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fixtures::{
        NOW, anomalous, baseline, context, dominated, normal, number, row, rule, suppressed_at,
        text,
    };
    use crate::engine::{Baseline, Direction, InvalidReason, Rule, Timestamp, evaluate};

    #[test]
    fn settled_cases() {
        let cases: &[(&[f64], bool)] = &[
            (&[500.0, 505.0, 498.0, 502.0], false),
            (&[500.0, 505.0, 498.0, 502.0, 500.0], true),
            (&[300.0, 700.0, 400.0, 600.0, 500.0], false),
            (
                &[100.0, 900.0, 20.0, 500.0, 505.0, 498.0, 502.0, 500.0],
                true,
            ),
            // Spread exactly 10 % of the mean (100) is settled.
            (&[95.0, 105.0, 100.0, 100.0, 100.0], true),
            (&[0.0, 0.0, 0.0, 0.0, 0.0], true),
        ];
        for (window, expected) in cases {
            assert_eq!(has_settled(window), *expected, "{window:?}");
        }
    }

    #[test]
    fn recent_window_keeps_last_five() {
        let mut window = Vec::new();
        push_recent_sample(&mut window, 1.0);
        assert_eq!(window, [1.0]);
        for x in 2..=8 {
            push_recent_sample(&mut window, f64::from(x));
        }
        assert_eq!(window, [4.0, 5.0, 6.0, 7.0, 8.0]);
    }

    #[test]
    fn flat_drift_cases() {
        let cases = [
            (5.0, 1000.0, true),
            (500.0, 1000.0, false),
            (0.0, 0.0, true),
            (1.0, 0.0, false),
            (-50.0, 1000.0, true),
        ];
        for (projected, mean, expected) in cases {
            assert_eq!(
                is_flat_drift(projected, mean),
                expected,
                "P{projected} μ{mean}"
            );
        }
    }

    #[test]
    fn reactivation_cases() {
        let cases = [
            (110.0, 100.0, false),
            (125.0, 100.0, false),
            (126.0, 100.0, true),
            (50.0, 100.0, true),
        ];
        for (x, s, expected) in cases {
            assert_eq!(moved_since_suppression(x, s), expected, "{x} vs {s}");
        }
    }

    fn inserted(transition: &Transition) -> &Anomaly {
        match &transition.row {
            RowChange::Insert(row) => row,
            other => panic!("expected an insert, got {other:?}"),
        }
    }

    fn updated(transition: &Transition) -> &Anomaly {
        match &transition.row {
            RowChange::Update(row) => row,
            other => panic!("expected an update, got {other:?}"),
        }
    }

    #[test]
    fn categorical_flip_inserts_suspicious() {
        let baseline = dominated("OK", 0.95);
        let rule = rule(Direction::Dominance);
        let value = text("ERROR");
        let outcome = evaluate(&value, &baseline, &rule);
        let transition = step_spike(None, &outcome, &context(&baseline, &rule, &value));
        let row = inserted(&transition);
        assert_eq!(row.id, 42);
        assert_eq!(row.kind, Kind::Spike);
        assert_eq!(row.state, State::Suspicious);
        assert_eq!(row.direction, RowDirection::Changed);
        assert_eq!(row.observed_value, "ERROR");
        assert_eq!(row.deviation, 0.0);
        assert_eq!(row.suspicious_run_count, 1);
        assert_eq!(row.confirmation_threshold, 3);
        assert_eq!(row.started_at, NOW);
        assert_eq!(transition.state_change, Some(StateChange::Suspicious));
        assert_eq!(transition.notification, None);
    }

    #[test]
    fn first_value_cases() {
        // (direction, μ, σ, value, inserted row direction or None)
        let cases = [
            (Direction::LowerIsBetter, 100.0, 10.0, 105.0, None),
            (
                Direction::LowerIsBetter,
                100.0,
                10.0,
                200.0,
                Some(RowDirection::Above),
            ),
            (
                Direction::HigherIsBetter,
                99.0,
                1.0,
                50.0,
                Some(RowDirection::Below),
            ),
            (Direction::HigherIsBetter, 95.0, 1.0, 100.0, None),
            (
                Direction::Deviation,
                200.0,
                5.0,
                500.0,
                Some(RowDirection::Above),
            ),
        ];
        for (direction, mu, sigma, x, expected) in cases {
            let baseline = baseline(mu, sigma);
            let rule = rule(direction);
            let value = number(x);
            let outcome = evaluate(&value, &baseline, &rule);
            let transition = step_spike(None, &outcome, &context(&baseline, &rule, &value));
            let found = match &transition.row {
                RowChange::Insert(row) => Some(row.direction),
                RowChange::Unchanged => None,
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(found, expected, "{x} against {direction} μ{mu} σ{sigma}");
        }
    }

    #[test]
    fn inserted_row_snapshots_baseline() {
        let baseline = baseline(100.0, 10.0);
        let rule = rule(Direction::LowerIsBetter);
        let value = number(200.0);
        let transition = step_spike(
            None,
            &anomalous(10.0, RowDirection::Above),
            &context(&baseline, &rule, &value),
        );
        let row = inserted(&transition);
        assert_eq!(row.baseline_mean, Some(100.0));
        assert_eq!(row.baseline_std_dev, Some(10.0));
        assert_eq!(row.observed_value, "200");
        assert_eq!(row.deviation, 10.0);
        assert_eq!(row.confirmed_at, None);
    }

    /// One step from an open row: (state, count, threshold, outcome, value) to
    /// (row change kind, state after, count after, state change, notification).
    #[test]
    fn open_row_transition_cases() {
        use NotificationKind::{Confirmed, Recovered};
        let above = anomalous(10.0, RowDirection::Above);
        let cases = [
            (
                State::Suspicious,
                2,
                3,
                above.clone(),
                200.0,
                "update",
                State::Anomaly,
                3,
                Some(StateChange::Anomaly),
                Some(Confirmed),
            ),
            (
                State::Suspicious,
                1,
                5,
                above.clone(),
                200.0,
                "update",
                State::Suspicious,
                2,
                None,
                None,
            ),
            (
                State::Suspicious,
                1,
                3,
                normal(),
                105.0,
                "delete",
                State::Suspicious,
                1,
                Some(StateChange::Cleared),
                None,
            ),
            (
                State::Anomaly,
                3,
                3,
                normal(),
                105.0,
                "update",
                State::Recovered,
                3,
                Some(StateChange::Recovered),
                Some(Recovered),
            ),
            (
                State::Anomaly,
                3,
                3,
                above,
                200.0,
                "update",
                State::Anomaly,
                3,
                None,
                None,
            ),
        ];
        for (
            state,
            count,
            threshold,
            outcome,
            x,
            change,
            after,
            count_after,
            state_change,
            notification,
        ) in cases
        {
            let open = row(Kind::Spike, state, count, threshold);
            let baseline = baseline(100.0, 10.0);
            let rule = rule(Direction::LowerIsBetter);
            let value = number(x);
            let transition = step_spike(Some(&open), &outcome, &context(&baseline, &rule, &value));
            let case = format!("{state:?} {count}/{threshold} with {x}");
            assert_eq!(transition.state_change, state_change, "{case}");
            assert_eq!(transition.notification, notification, "{case}");
            match (&transition.row, change) {
                (RowChange::Update(row), "update") => {
                    assert_eq!(row.state, after, "{case}");
                    assert_eq!(row.suspicious_run_count, count_after, "{case}");
                    assert_eq!(row.observed_value, number_string_of(x), "{case}");
                }
                (RowChange::Delete, "delete") => {}
                (other, _) => panic!("{case}: unexpected {other:?}"),
            }
        }
    }

    fn number_string_of(x: f64) -> String {
        crate::engine::rules::number_string(x)
    }

    #[test]
    fn confirm_and_recover_stamp_times() {
        let baseline = baseline(100.0, 10.0);
        let rule = rule(Direction::LowerIsBetter);
        let value = number(200.0);
        let suspicious = row(Kind::Spike, State::Suspicious, 2, 3);
        let transition = step_spike(
            Some(&suspicious),
            &anomalous(10.0, RowDirection::Above),
            &context(&baseline, &rule, &value),
        );
        assert_eq!(updated(&transition).confirmed_at, Some(NOW));

        let confirmed = row(Kind::Spike, State::Anomaly, 3, 3);
        let value = number(105.0);
        let transition = step_spike(
            Some(&confirmed),
            &normal(),
            &context(&baseline, &rule, &value),
        );
        let recovered = updated(&transition);
        assert_eq!(recovered.recovered_at, Some(NOW));
        assert!(!recovered.self_resolved);
    }

    #[test]
    fn settled_confirmed_row_self_resolves() {
        let baseline = baseline(100.0, 10.0);
        let rule = rule(Direction::LowerIsBetter);
        let value = number(200.0);
        let mut open = row(Kind::Spike, State::Anomaly, 3, 3);
        open.recent_samples = vec![200.0; 4];
        let transition = step_spike(
            Some(&open),
            &anomalous(10.0, RowDirection::Above),
            &context(&baseline, &rule, &value),
        );
        let row = updated(&transition);
        assert_eq!(row.state, State::Recovered);
        assert!(row.self_resolved);
        assert!(row.recent_samples.is_empty());
        assert_eq!(row.recovered_at, Some(NOW));
        assert_eq!(transition.state_change, Some(StateChange::Recovered));
        assert_eq!(transition.notification, Some(NotificationKind::Recovered));
    }

    #[test]
    fn unsettled_confirmed_row_extends_window() {
        let baseline = baseline(100.0, 10.0);
        let rule = rule(Direction::LowerIsBetter);
        let value = number(200.0);
        let mut open = row(Kind::Spike, State::Anomaly, 3, 3);
        open.recent_samples = vec![200.0, 200.0];
        let transition = step_spike(
            Some(&open),
            &anomalous(10.0, RowDirection::Above),
            &context(&baseline, &rule, &value),
        );
        assert_eq!(updated(&transition).recent_samples, [200.0, 200.0, 200.0]);
        assert_eq!(updated(&transition).state, State::Anomaly);
        assert_eq!(transition.state_change, None);
    }

    #[test]
    fn suppression_reactivation_cases() {
        // (suppressed at, value, suppression lifted)
        let cases = [
            (200.0, 200.0, false),
            (50.0, 200.0, true),
            (200.0, 240.0, false),
            (200.0, 260.0, true),
        ];
        for (at, x, lifted) in cases {
            let baseline = baseline(100.0, 10.0);
            let rule = rule(Direction::LowerIsBetter);
            let value = number(x);
            let open = suppressed_at(at);
            let transition = step_spike(
                Some(&open),
                &anomalous(10.0, RowDirection::Above),
                &context(&baseline, &rule, &value),
            );
            let row = updated(&transition);
            assert_eq!(
                row.suppression.is_none(),
                lifted,
                "suppressed at {at}, value {x}"
            );
            let expected = lifted.then_some(StateChange::Anomaly);
            assert_eq!(
                transition.state_change, expected,
                "suppressed at {at}, value {x}"
            );
            assert_eq!(transition.notification, None);
            assert_eq!(row.state, State::Anomaly);
        }
    }

    #[test]
    fn suppressed_row_recovers_silently() {
        let baseline = baseline(100.0, 10.0);
        let rule = rule(Direction::LowerIsBetter);
        let value = number(100.0);
        let open = suppressed_at(200.0);
        let transition = step_spike(Some(&open), &normal(), &context(&baseline, &rule, &value));
        let row = updated(&transition);
        assert_eq!(row.state, State::Recovered);
        assert_eq!(row.suppression, None);
        assert_eq!(transition.state_change, Some(StateChange::Recovered));
        assert_eq!(transition.notification, None);
    }

    #[test]
    fn suppressed_row_self_resolves_silently_and_unsuppressed() {
        let baseline = baseline(100.0, 10.0);
        let rule = rule(Direction::LowerIsBetter);
        let value = number(200.0);
        let mut open = suppressed_at(200.0);
        open.recent_samples = vec![200.0; 4];
        let transition = step_spike(
            Some(&open),
            &anomalous(10.0, RowDirection::Above),
            &context(&baseline, &rule, &value),
        );
        let row = updated(&transition);
        assert_eq!(row.state, State::Recovered);
        assert!(row.self_resolved);
        assert_eq!(row.suppression, None);
        assert_eq!(transition.notification, None);
    }

    #[test]
    fn categorical_confirmed_row_never_self_resolves() {
        let baseline = dominated("OK", 0.95);
        let rule = rule(Direction::Dominance);
        let value = text("ERROR");
        let mut open = row(Kind::Spike, State::Anomaly, 3, 3);
        open.recent_samples = vec![200.0; 4];
        let transition = step_spike(
            Some(&open),
            &anomalous(0.0, RowDirection::Changed),
            &context(&baseline, &rule, &value),
        );
        let row = updated(&transition);
        assert_eq!(row.state, State::Anomaly);
        assert_eq!(row.observed_value, "ERROR");
        assert_eq!(row.recent_samples, [200.0; 4]);
    }

    #[test]
    fn skipped_fields_have_no_rule() {
        use crate::engine::{Catalogue, FieldOverride, TemplateSettings, resolve};
        let catalogue = Catalogue::builtin();
        let disabled_template = TemplateSettings {
            enabled: false,
            ..TemplateSettings::default()
        };
        let only_enabled = TemplateSettings {
            field_overrides: [(
                "collectors.healthcheck-http.request.statusCode".to_owned(),
                FieldOverride {
                    enabled: Some(true),
                    ..FieldOverride::default()
                },
            )]
            .into(),
            ..TemplateSettings::default()
        };
        let http = "healthcheck-http.request";
        // (case, field path, template, schema field)
        let cases = [
            (
                "template disabled",
                "collectors.healthcheck-http.request.responseTimeMs",
                Some(&disabled_template),
                catalogue.field(http, "responseTimeMs"),
            ),
            (
                "schema-disabled field",
                "collectors.healthcheck-http.request.statusCode",
                None,
                catalogue.field(http, "statusCode"),
            ),
            (
                "enabled without a direction",
                "collectors.healthcheck-http.request.statusCode",
                Some(&only_enabled),
                catalogue.field(http, "statusCode"),
            ),
            (
                "unknown collector",
                "collectors.custom.probe.latencyMs",
                None,
                catalogue.field("custom.probe", "latencyMs"),
            ),
        ];
        for (case, path, template, schema) in cases {
            assert_eq!(resolve(path, template, None, schema).rule(), None, "{case}");
        }
    }

    #[test]
    fn window_one_confirms_on_first_run() {
        let baseline = baseline(100.0, 10.0);
        let rule = Rule {
            confirmation_window: 1,
            ..rule(Direction::LowerIsBetter)
        };
        let value = number(200.0);
        let transition = step_spike(
            None,
            &anomalous(10.0, RowDirection::Above),
            &context(&baseline, &rule, &value),
        );
        let row = inserted(&transition);
        assert_eq!(row.state, State::Anomaly);
        assert_eq!(row.confirmed_at, Some(NOW));
        assert_eq!(row.confirmation_threshold, 1);
        assert_eq!(transition.state_change, Some(StateChange::Anomaly));
        assert_eq!(transition.notification, Some(NotificationKind::Confirmed));
    }

    #[test]
    fn window_n_confirms_on_nth_run() {
        for window in 1..=6 {
            let baseline = baseline(100.0, 10.0);
            let rule = Rule {
                confirmation_window: window,
                ..rule(Direction::LowerIsBetter)
            };
            let value = number(200.0);
            let ctx = context(&baseline, &rule, &value);
            let outcome = anomalous(10.0, RowDirection::Above);
            let mut open: Option<Anomaly> = None;
            let mut confirmed_on = None;
            for run in 1..=window + 1 {
                let transition = step_spike(open.as_ref(), &outcome, &ctx);
                if transition.notification == Some(NotificationKind::Confirmed) {
                    confirmed_on.get_or_insert(run);
                }
                open = match transition.row {
                    RowChange::Insert(row) | RowChange::Update(row) => Some(row),
                    RowChange::Unchanged => open,
                    RowChange::Delete => None,
                };
            }
            assert_eq!(confirmed_on, Some(window), "window {window}");
        }
    }

    #[test]
    fn invalid_value_never_recovers() {
        let baseline = baseline(100.0, 10.0);
        let rule = rule(Direction::LowerIsBetter);
        let invalid = [
            (number(f64::NAN), InvalidReason::NotFinite),
            (Value::Null, InvalidReason::Null),
            (text("fast"), InvalidReason::NotANumber),
        ];
        for state in [State::Suspicious, State::Anomaly] {
            let open = row(Kind::Spike, state, 1, 3);
            for (value, reason) in &invalid {
                let outcome = evaluate(value, &baseline, &rule);
                assert_eq!(outcome, Outcome::Invalid(*reason));
                let transition =
                    step_spike(Some(&open), &outcome, &context(&baseline, &rule, value));
                assert_eq!(
                    transition,
                    Transition::UNCHANGED,
                    "{state:?} with {value:?}"
                );
            }
        }
    }

    #[test]
    fn invalid_value_never_opens_a_row() {
        let baseline = baseline(100.0, 10.0);
        let rule = rule(Direction::LowerIsBetter);
        let value = number(f64::INFINITY);
        let outcome = evaluate(&value, &baseline, &rule);
        let transition = step_spike(None, &outcome, &context(&baseline, &rule, &value));
        assert_eq!(transition, Transition::UNCHANGED);
    }

    #[test]
    fn invalid_value_does_not_break_a_suspicious_run() {
        let baseline = baseline(100.0, 10.0);
        let rule = rule(Direction::LowerIsBetter);
        let bad = Value::Null;
        let good = number(200.0);
        let anomalous = anomalous(10.0, RowDirection::Above);
        let first = step_spike(None, &anomalous, &context(&baseline, &rule, &good));
        let open = inserted(&first).clone();
        let skipped = step_spike(
            Some(&open),
            &Outcome::Invalid(InvalidReason::Null),
            &context(&baseline, &rule, &bad),
        );
        assert_eq!(skipped, Transition::UNCHANGED);
        let second = step_spike(Some(&open), &anomalous, &context(&baseline, &rule, &good));
        assert_eq!(updated(&second).suspicious_run_count, 2);
    }

    #[test]
    fn recovered_row_is_never_stepped() {
        let baseline = baseline(100.0, 10.0);
        let rule = rule(Direction::LowerIsBetter);
        let value = number(200.0);
        let mut recovered = row(Kind::Spike, State::Anomaly, 3, 3);
        recovered.state = State::Recovered;
        let transition = step_spike(
            Some(&recovered),
            &anomalous(10.0, RowDirection::Above),
            &context(&baseline, &rule, &value),
        );
        assert_eq!(transition, Transition::UNCHANGED);
    }

    #[test]
    fn recovered_row_does_not_block_new_detection() {
        let baseline = baseline(100.0, 10.0);
        let rule = rule(Direction::LowerIsBetter);
        let value = number(100.0);
        let confirmed = row(Kind::Spike, State::Anomaly, 3, 3);
        let recovery = step_spike(
            Some(&confirmed),
            &normal(),
            &context(&baseline, &rule, &value),
        );
        assert_eq!(updated(&recovery).state, State::Recovered);

        // The caller passes only open rows, so the next anomalous value sees no row.
        let value = number(200.0);
        let next = step_spike(
            None,
            &anomalous(10.0, RowDirection::Above),
            &context(&baseline, &rule, &value),
        );
        assert_eq!(inserted(&next).state, State::Suspicious);
        assert_eq!(inserted(&next).id, 42);
    }

    #[test]
    fn self_resolution_rearms_after_newer_baseline() {
        let rule = rule(Direction::LowerIsBetter);
        let value = number(200.0);
        let outcome = anomalous(10.0, RowDirection::Above);
        let resolved_at = Timestamp(NOW.0 - 1_000);
        // (baseline computed at, row opens)
        let cases = [
            (Timestamp(resolved_at.0 - 1), false),
            (resolved_at, false),
            (Timestamp(resolved_at.0 + 1), true),
        ];
        for (computed_at, opens) in cases {
            let baseline = Baseline {
                computed_at,
                ..baseline(100.0, 10.0)
            };
            let ctx = SpikeContext {
                last_self_resolution: Some(resolved_at),
                ..context(&baseline, &rule, &value)
            };
            let transition = step_spike(None, &outcome, &ctx);
            let opened = matches!(transition.row, RowChange::Insert(_));
            assert_eq!(opened, opens, "baseline computed at {computed_at:?}");
        }
    }

    #[test]
    fn state_changes_follow_lifecycle() {
        let baseline = baseline(100.0, 10.0);
        let rule = Rule {
            confirmation_window: 2,
            ..rule(Direction::LowerIsBetter)
        };
        let high = number(200.0);
        let low = number(100.0);
        let spike = anomalous(10.0, RowDirection::Above);
        let insert = step_spike(None, &spike, &context(&baseline, &rule, &high));
        assert_eq!(insert.state_change, Some(StateChange::Suspicious));
        let confirm = step_spike(
            Some(inserted(&insert)),
            &spike,
            &context(&baseline, &rule, &high),
        );
        assert_eq!(confirm.state_change, Some(StateChange::Anomaly));
        let recover = step_spike(
            Some(updated(&confirm)),
            &normal(),
            &context(&baseline, &rule, &low),
        );
        assert_eq!(recover.state_change, Some(StateChange::Recovered));
    }
}
