//! The hourly analyzer over an in-memory history: baselines over the configured window, drift
//! through the analyzer, and what it leaves out.

mod common;

use anomalyd::analyzer::{AnalyzerRun, CloseReason};
use anomalyd::detector::HourSummary;
use anomalyd::engine::{
    self, Direction, FieldOverride, Kind, NotificationKind, RowChange, RowDirection, State,
    StateChange, Timestamp, Value,
};
use anomalyd::series::Status;
use common::*;

const SYSTEM: &str = "shop";

fn drift_override(direction: Direction) -> FieldOverride {
    FieldOverride {
        direction: Some(direction),
        ..FieldOverride::default()
    }
}

/// Runs the analyzer once per list of values: each list becomes the hour before the run, and a
/// one-hour window makes that hour the run's whole baseline.
fn drift_runs(config: anomalyd::config::ConfigSnapshot, hours: &[Vec<f64>]) -> Vec<AnalyzerRun> {
    let mut harness = Harness::new(config);
    let mut runs = Vec::new();
    for (index, values) in hours.iter().enumerate() {
        let hour_start = Timestamp(index as i64 * HOUR_MS);
        let hour = HourSummary {
            hour_start,
            summary: summary(values.iter().copied()),
        };
        harness.history.record(&key(SYSTEM), hour);
        runs.push(harness.run_at(Timestamp(hour_start.0 + HOUR_MS)));
    }
    runs
}

fn steep() -> Vec<f64> {
    ramp(100, 100.0, 1.5)
}

/// Projected change 150 on a mean near 10 000: statistically drifting but flat within 10 %.
fn flat_high_mean() -> Vec<f64> {
    ramp(100, 10_000.0, 1.5)
}

fn stable() -> Vec<f64> {
    (0..100)
        .map(|i| if i % 2 == 0 { 100.0 } else { 102.0 })
        .collect()
}

fn state_changes(run: &AnalyzerRun) -> Vec<StateChange> {
    run.drift
        .iter()
        .filter_map(|drift| drift.step.transition.state_change)
        .collect()
}

fn notifications(run: &AnalyzerRun) -> Vec<NotificationKind> {
    run.drift
        .iter()
        .filter_map(|drift| drift.step.transition.notification)
        .collect()
}

#[test]
fn drift_skipped_cases() {
    let cases = [
        (
            "23 samples",
            config("1h", drift_override(Direction::Deviation)),
            ramp(23, 100.0, 5.0),
        ),
        (
            "dominance",
            config("1h", drift_override(Direction::Dominance)),
            steep(),
        ),
        (
            "drift disabled",
            config(
                "1h",
                FieldOverride {
                    drift_enabled: Some(false),
                    ..drift_override(Direction::Deviation)
                },
            ),
            steep(),
        ),
        (
            "template disabled",
            config_with("1h", false, drift_override(Direction::Deviation)),
            steep(),
        ),
        (
            "no direction",
            config("1h", FieldOverride::default()),
            steep(),
        ),
    ];
    for (name, config, values) in cases {
        let runs = drift_runs(config, &[values.clone(), values]);
        for run in &runs {
            assert!(run.drift.is_empty(), "{name}: {:?}", run.drift);
        }
    }
    let runs = drift_runs(
        config("1h", drift_override(Direction::Deviation)),
        &[ramp(23, 100.0, 5.0)],
    );
    assert_eq!(runs[0].too_few_samples, 1);
    assert!(runs[0].baselines.is_empty());
}

#[test]
fn drift_inserts_then_confirms_on_second_run() {
    let runs = drift_runs(
        config("1h", drift_override(Direction::Deviation)),
        &[steep(), steep()],
    );

    let first = &runs[0].drift;
    assert_eq!(first.len(), 1);
    let RowChange::Insert(row) = &first[0].step.transition.row else {
        panic!("expected an insert, got {:?}", first[0].step.transition.row);
    };
    assert_eq!(row.kind, Kind::Drift);
    assert_eq!(row.state, State::Suspicious);
    assert_eq!(row.suspicious_run_count, 1);
    assert_eq!(row.confirmation_threshold, 2);
    assert_eq!(row.direction, RowDirection::Above);
    assert_eq!(state_changes(&runs[0]), [StateChange::Suspicious]);
    assert!(notifications(&runs[0]).is_empty());

    assert_eq!(state_changes(&runs[1]), [StateChange::Anomaly]);
    assert_eq!(notifications(&runs[1]), [NotificationKind::DriftConfirmed]);
    let confirmed = runs[1].drift[0].step.anomaly.as_ref().expect("row");
    assert_eq!(confirmed.id, row.id);
    assert_eq!(confirmed.confirmed_at, Some(runs[1].at));
}

#[test]
fn confirmed_drift_refreshes_while_steep() {
    let runs = drift_runs(
        config("1h", drift_override(Direction::Deviation)),
        &[steep(), steep(), steep()],
    );
    let third = &runs[2];
    assert_eq!(third.drift.len(), 1, "the row is refreshed");
    assert!(matches!(
        third.drift[0].step.transition.row,
        RowChange::Update(_)
    ));
    assert!(state_changes(third).is_empty());
    assert!(notifications(third).is_empty());
}

#[test]
fn suspicious_drift_cleared_when_stable() {
    let runs = drift_runs(
        config("1h", drift_override(Direction::Deviation)),
        &[steep(), stable()],
    );
    let second = &runs[1].drift;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].step.transition.row, RowChange::Delete);
    assert_eq!(state_changes(&runs[1]), [StateChange::Cleared]);
    assert!(notifications(&runs[1]).is_empty());
}

#[test]
fn confirmed_drift_recovers_when_stable() {
    let runs = drift_runs(
        config("1h", drift_override(Direction::Deviation)),
        &[steep(), steep(), stable()],
    );
    assert_eq!(state_changes(&runs[2]), [StateChange::Recovered]);
    assert_eq!(notifications(&runs[2]), [NotificationKind::DriftRecovered]);
    let row = runs[2].drift[0].step.anomaly.as_ref().expect("row");
    assert_eq!(row.state, State::Recovered);
}

#[test]
fn confirmed_drift_recovers_after_two_flat_runs() {
    let hours = [
        flat_high_mean(),
        flat_high_mean(),
        flat_high_mean(),
        steep(),
        flat_high_mean(),
        flat_high_mean(),
    ];
    let runs = drift_runs(config("1h", drift_override(Direction::Deviation)), &hours);
    assert_eq!(notifications(&runs[1]), [NotificationKind::DriftConfirmed]);

    let counter = |run: &AnalyzerRun| {
        run.drift[0]
            .step
            .anomaly
            .as_ref()
            .map(|row| row.stable_drift_run_count)
    };
    assert_eq!(counter(&runs[2]), Some(1), "first flat run counts");
    assert!(state_changes(&runs[2]).is_empty());
    assert_eq!(counter(&runs[3]), Some(0), "a steep run resets the count");
    assert_eq!(counter(&runs[4]), Some(1));
    assert_eq!(state_changes(&runs[5]), [StateChange::Recovered]);
    assert_eq!(notifications(&runs[5]), [NotificationKind::DriftRecovered]);
}

/// Records a steep ramp as hour `index` and runs the analyzer at the end of that hour.
fn run_steep_hour(harness: &mut Harness, index: i64) -> AnalyzerRun {
    let hour = HourSummary {
        hour_start: Timestamp(index * HOUR_MS),
        summary: summary(steep()),
    };
    harness.history.record(&key(SYSTEM), hour);
    harness.run_at(Timestamp((index + 1) * HOUR_MS))
}

#[test]
fn drift_turned_off_closes_drift_row() {
    // (drifting runs before drift is turned off, the change of the closing run)
    let cases = [(1, StateChange::Cleared), (2, StateChange::Recovered)];
    for (drifting_runs, expected) in cases {
        let mut harness = Harness::new(config("1h", drift_override(Direction::Deviation)));
        for index in 0..drifting_runs {
            assert_eq!(run_steep_hour(&mut harness, index).drift.len(), 1);
        }
        harness.config = config(
            "1h",
            FieldOverride {
                drift_enabled: Some(false),
                ..drift_override(Direction::Deviation)
            },
        );

        let run = run_steep_hour(&mut harness, drifting_runs);
        assert!(run.drift.is_empty(), "{expected:?}: {:?}", run.drift);
        assert_eq!(run.closed.len(), 1, "{expected:?}");
        let closed = &run.closed[0];
        assert_eq!(closed.key, key(SYSTEM));
        assert_eq!(closed.kind, Kind::Drift);
        assert_eq!(closed.reason, CloseReason::NoRule);
        assert_eq!(closed.step.transition.state_change, Some(expected));
        assert_eq!(closed.step.transition.notification, None);
        assert_eq!(harness.detector.open_rows().count(), 0, "{expected:?}");

        let next = run_steep_hour(&mut harness, drifting_runs + 1);
        assert!(next.closed.is_empty(), "{expected:?}: {:?}", next.closed);
    }
}

#[test]
fn stable_baseline_writes_nothing() {
    let runs = drift_runs(
        config("1h", drift_override(Direction::Deviation)),
        &[stable(), stable()],
    );
    for run in &runs {
        assert!(run.drift.is_empty());
        assert_eq!(run.baselines.len(), 1);
    }
}

#[test]
fn higher_is_better_drifts_only_downward() {
    let rising = drift_runs(
        config("1h", drift_override(Direction::HigherIsBetter)),
        &[steep()],
    );
    assert!(rising[0].drift.is_empty());

    let falling = drift_runs(
        config("1h", drift_override(Direction::HigherIsBetter)),
        &[ramp(100, 300.0, -1.5)],
    );
    let row = falling[0].drift[0].step.anomaly.as_ref().expect("inserted");
    assert_eq!(row.direction, RowDirection::Below);
}

#[test]
fn baseline_needs_24_runs_per_series() {
    let config = config("7d", drift_override(Direction::LowerIsBetter));
    let mut harness = Harness::new(config);
    for minute in 0..24 {
        for system in ["shop", "blog"] {
            let value = Value::Number(100.0 + minute as f64 % 3.0);
            harness.process(&result(system, minute * MINUTE_MS, Status::Healthy, value));
        }
    }
    let run = harness.run_at(Timestamp(HOUR_MS));
    assert_eq!(run.series, 2);
    assert_eq!(run.baselines.len(), 2);
    assert!(run.baselines.iter().all(|update| update.numeric));
    assert!(
        run.baselines
            .iter()
            .all(|update| update.baseline.sample_count == 24)
    );

    let mut harness = Harness::new(config_with(
        "7d",
        true,
        drift_override(Direction::LowerIsBetter),
    ));
    for minute in 0..10 {
        harness.process(&result(
            "shop",
            minute * MINUTE_MS,
            Status::Healthy,
            Value::Number(1.0),
        ));
    }
    let run = harness.run_at(Timestamp(HOUR_MS));
    assert!(run.baselines.is_empty());
    assert!(run.drift.is_empty());
    assert_eq!(run.too_few_samples, 1);
    assert!(harness.detector.baseline(&key("shop")).is_none());
}

/// Feeds 30 days at one sample per 10 minutes: 100 for 29 days, then 200 for the last day.
fn thirty_days(harness: &mut Harness) {
    for step in 0..(30 * 144) {
        let at = step * 10 * MINUTE_MS;
        let value = if at >= 29 * DAY_MS { 200.0 } else { 100.0 };
        harness.process(&result(SYSTEM, at, Status::Healthy, Value::Number(value)));
    }
}

#[test]
fn baseline_window_is_honoured() {
    let now = Timestamp(30 * DAY_MS);
    let mut one_day = Harness::new(config("1d", drift_override(Direction::LowerIsBetter)));
    thirty_days(&mut one_day);
    let mut thirty = Harness::new(config("30d", drift_override(Direction::LowerIsBetter)));
    thirty_days(&mut thirty);

    let short = one_day.run_at(now).baselines.remove(0).baseline;
    let long = thirty.run_at(now).baselines.remove(0).baseline;

    assert_eq!(short.sample_count, 144);
    assert_eq!(short.mean, 200.0);
    assert_eq!(long.sample_count, 30 * 144);
    assert!(
        (long.mean - (29.0 * 100.0 + 200.0) / 30.0).abs() < 1e-9,
        "{}",
        long.mean
    );
    assert_eq!(one_day.detector.baseline(&key(SYSTEM)), Some(&short));
}

#[test]
fn baseline_excludes_unhealthy_and_invalid() {
    let mut harness = Harness::new(config("1d", drift_override(Direction::LowerIsBetter)));
    for minute in 0..120 {
        let at = minute * MINUTE_MS;
        let (status, value) = match minute % 4 {
            0 => (Status::Unhealthy, Value::Number(10_000.0)),
            1 => (Status::Healthy, Value::Number(f64::NAN)),
            2 => (Status::Healthy, Value::Text("timeout".into())),
            _ => (Status::Healthy, Value::Number(100.0 + (minute % 8) as f64)),
        };
        harness.process(&result(SYSTEM, at, status, value));
    }
    let run = harness.run_at(Timestamp(2 * HOUR_MS));
    let baseline = &run.baselines[0].baseline;
    assert_eq!(baseline.sample_count, 30);
    assert!((baseline.mean - 105.0).abs() < 1e-9, "{}", baseline.mean);
    assert_eq!(harness.detector.invalid_samples(&key(SYSTEM)), 60);
}

/// Ten days at one sample per 5 minutes around 20 with ±5 noise, creeping up `creep` per
/// sample. The level is low enough that the creep is never flat (within 10 % of the mean).
fn ten_day_runs(creep: f64) -> (Harness, Vec<AnalyzerRun>) {
    let config = config("7d", drift_override(Direction::LowerIsBetter));
    let mut harness = Harness::new(config);
    let mut noise = Noise::new(7);
    let mut runs = Vec::new();
    for step in 0..(10 * 288) {
        let at = step * 5 * MINUTE_MS;
        let value = 20.0 + noise.next(5.0) + creep * step as f64;
        runs.extend(harness.push(&result(SYSTEM, at, Status::Healthy, Value::Number(value))));
    }
    (harness, runs)
}

#[test]
fn creeping_series_confirms_two_runs_after_rule_holds() {
    let (harness, runs) = ten_day_runs(0.01);
    let rule = anomalyd::detector::effective_settings(&harness.config, &key(SYSTEM))
        .rule()
        .expect("lower-is-better rule");
    let holds = |run: &AnalyzerRun| {
        run.baselines
            .first()
            .is_some_and(|update| engine::detect_drift(&update.baseline, &rule).drifting)
    };
    let first = runs
        .iter()
        .position(holds)
        .expect("the creep becomes a drift");
    assert!(
        first > 24,
        "the rule should not hold in the first day, held at run {first}"
    );

    for run in &runs[..first] {
        assert!(run.drift.is_empty(), "no drift row before the rule holds");
    }
    assert_eq!(state_changes(&runs[first]), [StateChange::Suspicious]);
    assert!(holds(&runs[first + 1]));
    assert_eq!(
        notifications(&runs[first + 1]),
        [NotificationKind::DriftConfirmed]
    );
    let confirmed: Vec<usize> = runs
        .iter()
        .enumerate()
        .filter(|(_, run)| notifications(run).contains(&NotificationKind::DriftConfirmed))
        .map(|(index, _)| index)
        .collect();
    assert_eq!(confirmed, [first + 1], "confirmed exactly once");
}

#[test]
fn flat_series_never_confirms_drift() {
    let (_, runs) = ten_day_runs(0.0);
    assert!(runs.len() >= 239, "{} runs", runs.len());
    for run in &runs {
        assert!(
            !notifications(run).contains(&NotificationKind::DriftConfirmed),
            "drift confirmed at {:?}",
            run.at
        );
    }
}

#[test]
fn drift_threshold_read_from_row() {
    let mut harness = Harness::new(config("1h", drift_override(Direction::Deviation)));
    let steep_hour = HourSummary {
        hour_start: Timestamp(0),
        summary: summary(steep()),
    };
    harness.history.record(&key(SYSTEM), steep_hour);
    let first = harness.run_at(Timestamp(HOUR_MS));

    // A row stored with a threshold of 3 keeps it, whatever the engine gives new rows.
    let mut row = first.drift[0].step.anomaly.clone().expect("inserted");
    row.confirmation_threshold = 3;
    let mut snapshot = harness
        .detector
        .snapshot(&key(SYSTEM))
        .expect("known series");
    snapshot.drift_row = Some(row);
    harness.detector = anomalyd::detector::Detector::restore([(key(SYSTEM), snapshot)]);

    harness.history.record(
        &key(SYSTEM),
        HourSummary {
            hour_start: Timestamp(HOUR_MS),
            summary: summary(steep()),
        },
    );
    let second = harness.run_at(Timestamp(2 * HOUR_MS));
    let row = second.drift[0].step.anomaly.as_ref().expect("updated");
    assert_eq!(row.suspicious_run_count, 2);
    assert_eq!(row.state, State::Suspicious);
    assert!(state_changes(&second).is_empty());
    assert!(notifications(&second).is_empty());
}

#[test]
fn drift_scoped_per_environment() {
    let mut harness = Harness::new(config("1h", drift_override(Direction::Deviation)));
    let prod = anomalyd::series::SeriesKey {
        environment: Some("prod".into()),
        ..key(SYSTEM)
    };
    for hour in 0..2 {
        let hour_start = Timestamp(hour * HOUR_MS);
        let steep_hour = HourSummary {
            hour_start,
            summary: summary(steep()),
        };
        let stable_hour = HourSummary {
            hour_start,
            summary: summary(stable()),
        };
        harness.history.record(&prod, steep_hour);
        harness.history.record(&key(SYSTEM), stable_hour);
        let run = harness.run_at(Timestamp(hour_start.0 + HOUR_MS));
        assert_eq!(run.series, 2);
        assert_eq!(run.drift.len(), 1);
        assert_eq!(run.drift[0].key, prod);
    }
    let open: Vec<_> = harness
        .detector
        .open_rows()
        .map(|open| open.key.clone())
        .collect();
    assert_eq!(open, [prod]);
}
