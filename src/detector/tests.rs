use std::collections::BTreeMap;

use super::*;
use crate::clock::HOUR_MS;
use crate::config::{Healthcheck, Source};
use crate::engine::{
    BaselineWindow, Direction, FieldOverride, NotificationKind, RowChange, State, StateChange,
    TemplateSettings,
};

const COLLECTOR: &str = "custom.probe";
const FIELD: &str = "latencyMs";
const PATH: &str = "collectors.custom.probe.latencyMs";
const MINUTE_MS: i64 = 60_000;

fn config(field_override: Option<FieldOverride>) -> ConfigSnapshot {
    let field_overrides = field_override
        .map(|o| BTreeMap::from([(PATH.to_owned(), o)]))
        .unwrap_or_default();
    let template = TemplateSettings {
        enabled: true,
        baseline_window: BaselineWindow::default(),
        notify: true,
        field_overrides,
    };
    let healthcheck = Healthcheck {
        name: "api".into(),
        title: None,
        strategy: "push".into(),
        interval_secs: 60,
        config: serde_json::Value::Null,
        collectors: Vec::new(),
        anomaly: Some(template),
        source: Source::Api,
    };
    ConfigSnapshot {
        healthchecks: BTreeMap::from([("api".to_owned(), healthcheck)]),
        ..ConfigSnapshot::default()
    }
}

fn lower_is_better(window: u32) -> ConfigSnapshot {
    config(Some(FieldOverride {
        direction: Some(Direction::LowerIsBetter),
        confirmation_window: Some(window),
        ..FieldOverride::default()
    }))
}

fn result(minute: i64, status: Status, value: Value) -> CheckResult {
    CheckResult {
        system: "shop".into(),
        healthcheck: "api".into(),
        environment: None,
        status,
        timestamp: Timestamp(minute * MINUTE_MS),
        latency_ms: None,
        fields: vec![FieldValue {
            collector_id: COLLECTOR.into(),
            field: FIELD.into(),
            value,
        }],
    }
}

fn key() -> SeriesKey {
    SeriesKey {
        system: "shop".into(),
        healthcheck: "api".into(),
        environment: None,
        field_path: PATH.into(),
    }
}

struct Ids(u64);

impl Ids {
    fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

fn feed(
    detector: &mut Detector,
    config: &ConfigSnapshot,
    ids: &mut Ids,
    minute: i64,
    status: Status,
    value: f64,
) -> SeriesUpdate {
    let result = result(minute, status, Value::Number(value));
    let mut updates = detector.process(&result, config, &mut || ids.next());
    assert_eq!(updates.len(), 1);
    updates.remove(0)
}

/// Feeds 24 healthy samples alternating 95 and 105 (mean 100, σ 5) at minutes 0..24.
fn learned(config: &ConfigSnapshot, ids: &mut Ids) -> Detector {
    let mut detector = Detector::new();
    for minute in 0..24 {
        let value = if minute % 2 == 0 { 95.0 } else { 105.0 };
        feed(&mut detector, config, ids, minute, Status::Healthy, value);
    }
    detector
}

#[test]
fn baseline_learned_at_24_samples() {
    let config = lower_is_better(3);
    let mut ids = Ids(0);
    let mut detector = Detector::new();
    for minute in 0..23 {
        let update = feed(
            &mut detector,
            &config,
            &mut ids,
            minute,
            Status::Healthy,
            100.0,
        );
        assert!(update.baseline.is_none(), "minute {minute}");
        assert!(update.learning.is_some(), "minute {minute}");
    }

    assert_eq!(
        detector.learning_progress(&key()),
        Some(LearningProgress {
            samples: 23,
            required: 24
        })
    );

    let update = feed(&mut detector, &config, &mut ids, 23, Status::Healthy, 100.0);
    let baseline = update.baseline.expect("the 24th sample learns a baseline");
    assert_eq!(baseline.sample_count, 24);
    assert_eq!(baseline.mean, 100.0);
    assert!(update.learning.is_none());
    assert!(
        update.spike.is_none(),
        "the learning sample is not evaluated"
    );
    assert_eq!(detector.learning_progress(&key()), None);
    assert_eq!(detector.baseline(&key()), Some(&baseline));
}

#[test]
fn unhealthy_results_recorded_only() {
    let config = lower_is_better(3);
    let mut ids = Ids(0);
    let mut detector = learned(&config, &mut ids);
    let hour_before = detector.hour_summary(&key()).cloned();

    let update = feed(
        &mut detector,
        &config,
        &mut ids,
        30,
        Status::Unhealthy,
        5000.0,
    );

    assert_eq!(update.status, SampleStatus::Unhealthy);
    assert!(update.hour.is_none());
    assert!(update.spike.is_none());
    assert_eq!(detector.hour_summary(&key()).cloned(), hour_before);
    let last = detector.last_sample(&key()).expect("last sample");
    assert_eq!(last.value, Value::Number(5000.0));
    assert!(!last.healthy);
    assert_eq!(detector.open_rows().count(), 0);
}

#[test]
fn late_sample_keeps_last_value() {
    let config = lower_is_better(3);
    let mut ids = Ids(0);
    let mut detector = learned(&config, &mut ids);

    feed(&mut detector, &config, &mut ids, 40, Status::Healthy, 101.0);
    feed(&mut detector, &config, &mut ids, 30, Status::Healthy, 99.0);
    feed(
        &mut detector,
        &config,
        &mut ids,
        35,
        Status::Unhealthy,
        98.0,
    );

    let last = detector.last_sample(&key()).expect("last sample");
    assert_eq!(last.value, Value::Number(101.0));
    assert_eq!(last.at, Timestamp(40 * MINUTE_MS));
    assert!(last.healthy);
}

#[test]
fn invalid_values_counted_only() {
    let config = lower_is_better(3);
    let mut ids = Ids(0);
    let mut detector = Detector::new();
    let invalid = [
        Value::Number(f64::NAN),
        Value::Null,
        Value::Text("slow".into()),
    ];
    for (minute, value) in invalid.into_iter().enumerate() {
        let result = result(minute as i64, Status::Healthy, value);
        let update = detector
            .process(&result, &config, &mut || ids.next())
            .remove(0);
        assert!(
            matches!(update.status, SampleStatus::Invalid(_)),
            "{update:?}"
        );
        assert_eq!(update.invalid_samples, minute as u64 + 1);
        assert!(update.hour.is_none());
        assert!(update.learning.is_none());
    }
    assert_eq!(detector.invalid_samples(&key()), 3);
    assert_eq!(detector.last_sample(&key()), None);
    assert_eq!(detector.hour_summary(&key()), None);
    let progress = detector.learning_progress(&key()).expect("still learning");
    assert_eq!(progress.samples, 0);
}

#[test]
fn spike_confirms_on_window_run() {
    let config = lower_is_better(3);
    let mut ids = Ids(0);
    let mut detector = learned(&config, &mut ids);

    let first = feed(&mut detector, &config, &mut ids, 30, Status::Healthy, 500.0);
    let inserted = first.anomaly().expect("a suspicious row").clone();
    assert_eq!(inserted.state, State::Suspicious);
    assert_eq!(inserted.id, 1);
    assert_eq!(
        first.transition().and_then(|t| t.state_change),
        Some(StateChange::Suspicious)
    );
    assert!(matches!(
        first.transition().map(|t| &t.row),
        Some(RowChange::Insert(_))
    ));

    let second = feed(&mut detector, &config, &mut ids, 31, Status::Healthy, 500.0);
    assert_eq!(
        second.anomaly().map(|row| row.state),
        Some(State::Suspicious)
    );
    // An unhealthy run in between neither counts nor resets.
    feed(
        &mut detector,
        &config,
        &mut ids,
        32,
        Status::Unhealthy,
        50.0,
    );
    let third = feed(&mut detector, &config, &mut ids, 33, Status::Healthy, 500.0);
    let transition = third.transition().expect("evaluated");
    assert_eq!(transition.state_change, Some(StateChange::Anomaly));
    assert_eq!(transition.notification, Some(NotificationKind::Confirmed));
    assert_eq!(third.anomaly().map(|row| row.id), Some(1));

    let open: Vec<_> = detector.open_rows().map(|open| open.row.id).collect();
    assert_eq!(open, [1]);
    assert_eq!(ids.0, 1, "ids are drawn only for inserted rows");

    let recovered = feed(&mut detector, &config, &mut ids, 34, Status::Healthy, 100.0);
    let transition = recovered.transition().expect("evaluated");
    assert_eq!(transition.state_change, Some(StateChange::Recovered));
    assert_eq!(
        recovered.anomaly().map(|row| row.state),
        Some(State::Recovered)
    );
    assert_eq!(detector.open_rows().count(), 0);
}

#[test]
fn suspicious_row_cleared_by_normal_value() {
    let config = lower_is_better(3);
    let mut ids = Ids(0);
    let mut detector = learned(&config, &mut ids);
    feed(&mut detector, &config, &mut ids, 30, Status::Healthy, 500.0);
    let cleared = feed(&mut detector, &config, &mut ids, 31, Status::Healthy, 100.0);
    let transition = cleared.transition().expect("evaluated");
    assert_eq!(transition.row, RowChange::Delete);
    assert_eq!(transition.state_change, Some(StateChange::Cleared));
    assert_eq!(
        cleared.anomaly().map(|row| row.id),
        Some(1),
        "names the deleted row"
    );
    assert_eq!(detector.open_rows().count(), 0);
}

#[test]
fn field_without_direction_not_evaluated() {
    let config = config(None);
    let mut ids = Ids(0);
    let mut detector = learned(&config, &mut ids);
    assert!(
        detector.baseline(&key()).is_some(),
        "still learns a baseline"
    );
    let update = feed(
        &mut detector,
        &config,
        &mut ids,
        30,
        Status::Healthy,
        5000.0,
    );
    assert_eq!(update.status, SampleStatus::Valid);
    assert!(update.spike.is_none());
    assert!(update.hour.is_some());
}

#[test]
fn hour_summary_rolls_over() {
    let config = lower_is_better(3);
    let mut ids = Ids(0);
    let mut detector = Detector::new();
    let first = feed(&mut detector, &config, &mut ids, 58, Status::Healthy, 1.0);
    let second = feed(&mut detector, &config, &mut ids, 59, Status::Healthy, 1.0);
    let third = feed(&mut detector, &config, &mut ids, 60, Status::Healthy, 1.0);
    let late = feed(&mut detector, &config, &mut ids, 59, Status::Healthy, 1.0);
    let hours = [first, second, third, late].map(|u| u.hour.expect("valid sample"));
    assert_eq!(hours[0].hour_start, Timestamp(0));
    assert_eq!(hours[1].summary.count(), 2);
    assert_eq!(hours[2].hour_start, Timestamp(HOUR_MS));
    assert_eq!(hours[2].summary.count(), 1);
    assert_eq!(
        hours[3].hour_start,
        Timestamp(HOUR_MS),
        "late samples join the running hour"
    );
    assert_eq!(hours[3].summary.count(), 2);
}

#[test]
fn restore_continues_without_relearning() {
    let config = lower_is_better(3);
    let mut ids = Ids(0);
    let mut detector = learned(&config, &mut ids);
    feed(&mut detector, &config, &mut ids, 30, Status::Healthy, 500.0);
    feed(&mut detector, &config, &mut ids, 31, Status::Healthy, 500.0);
    let snapshot = detector.snapshot(&key()).expect("known series");

    let mut restored = Detector::restore([(key(), snapshot.clone())]);
    assert_eq!(restored.snapshot(&key()), Some(snapshot));
    assert_eq!(restored.learning_progress(&key()), None);
    let third = feed(&mut restored, &config, &mut ids, 32, Status::Healthy, 500.0);
    let transition = third.transition().expect("evaluated after restore");
    assert_eq!(transition.state_change, Some(StateChange::Anomaly));
}

#[test]
fn restore_keeps_learning_progress() {
    let config = lower_is_better(3);
    let mut ids = Ids(0);
    let mut detector = Detector::new();
    for minute in 0..17 {
        feed(
            &mut detector,
            &config,
            &mut ids,
            minute,
            Status::Healthy,
            100.0,
        );
    }
    let snapshot = detector.snapshot(&key()).expect("known series");
    let mut restored = Detector::restore([(key(), snapshot)]);
    let progress = restored.learning_progress(&key()).expect("learning");
    assert_eq!(progress.samples, 17);
    for minute in 17..23 {
        let update = feed(
            &mut restored,
            &config,
            &mut ids,
            minute,
            Status::Healthy,
            100.0,
        );
        assert!(update.baseline.is_none());
    }
    let update = feed(&mut restored, &config, &mut ids, 23, Status::Healthy, 100.0);
    assert!(
        update.baseline.is_some(),
        "the 24th sample overall learns the baseline"
    );
}

#[test]
fn set_baseline_stops_learning() {
    let config = lower_is_better(3);
    let mut ids = Ids(0);
    let mut detector = Detector::new();
    feed(&mut detector, &config, &mut ids, 0, Status::Healthy, 100.0);
    let baseline = detector
        .hour_summary(&key())
        .map(|hour| hour.summary.clone())
        .map(|mut summary| {
            for _ in 0..30 {
                summary.push(&crate::engine::Sample::Number(100.0));
            }
            summary
        })
        .and_then(|summary| summary.to_baseline(Timestamp(HOUR_MS)))
        .expect("31 samples");
    detector.set_baseline(&key(), baseline.clone());
    assert_eq!(detector.baseline(&key()), Some(&baseline));
    assert_eq!(detector.learning_progress(&key()), None);
    assert!(detector.remove(&key()));
    assert!(detector.is_empty());
}

#[test]
fn replace_open_row_by_id() {
    let config = lower_is_better(3);
    let mut ids = Ids(0);
    let mut detector = learned(&config, &mut ids);
    let update = feed(&mut detector, &config, &mut ids, 30, Status::Healthy, 500.0);
    let mut row = update.anomaly().expect("suspicious row").clone();

    row.observed_value = "changed".into();
    assert!(detector.replace_open_row(&key(), row.clone()));
    let open: Vec<_> = detector.open_rows().map(|open| open.row.clone()).collect();
    assert_eq!(open, [row.clone()]);

    let mut other = row.clone();
    other.id = 99;
    assert!(
        !detector.replace_open_row(&key(), other),
        "another id changes nothing"
    );
    let mut unknown = key();
    unknown.system = "elsewhere".into();
    assert!(!detector.replace_open_row(&unknown, row.clone()));

    row.state = State::Recovered;
    assert!(detector.replace_open_row(&key(), row));
    assert_eq!(
        detector.open_rows().count(),
        0,
        "a recovered copy closes the slot"
    );
}

mod restart {
    use proptest::prelude::*;

    use super::*;

    /// Processes `values` minute by minute; when `restart_at` is given, the detector is rebuilt
    /// from its snapshots before that sample, as the service does after a restart.
    fn run(values: &[(bool, f64)], restart_at: Option<usize>) -> Vec<SeriesUpdate> {
        let config = lower_is_better(2);
        let mut ids = Ids(0);
        let mut detector = Detector::new();
        let mut updates = Vec::new();
        for (index, (healthy, value)) in values.iter().enumerate() {
            if restart_at == Some(index) {
                let series = detector.series().cloned().collect::<Vec<_>>();
                let snapshots = series
                    .into_iter()
                    .filter_map(|key| Some((key.clone(), detector.snapshot(&key)?)));
                detector = Detector::restore(snapshots.collect::<Vec<_>>());
            }
            let status = if *healthy {
                Status::Healthy
            } else {
                Status::Unhealthy
            };
            let minute = index as i64 * 7;
            updates.push(feed(
                &mut detector,
                &config,
                &mut ids,
                minute,
                status,
                *value,
            ));
        }
        updates
    }

    proptest! {
        #[test]
        fn restart_changes_nothing(
            values in prop::collection::vec(
                (prop::bool::weighted(0.9), prop_oneof![90.0..110.0_f64, 300.0..400.0_f64]),
                1..120,
            ),
            cut in 0..120_usize,
        ) {
            let restart_at = cut % values.len();
            let uninterrupted = run(&values, None);
            let restarted = run(&values, Some(restart_at));
            prop_assert_eq!(uninterrupted, restarted);
        }
    }
}
