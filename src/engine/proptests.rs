//! Property tests of the engine: merged summaries against the direct formulas, monotonicity of
//! sensitivity and floors, and the one-open-row invariant of both state machines.

use proptest::prelude::*;

use super::fixtures::{NOW, baseline, context};
use super::stats::{mean, slope, std_dev};
use super::{
    Anomaly, Baseline, Direction, DriftReading, InvalidReason, Kind, Outcome, RowChange,
    RowDirection, Rule, Sample, State, Summary, Suppression, Timestamp, Value, evaluate,
    step_drift, step_spike,
};

/// Relative error of `actual` against `expected`, with `scale` as the smallest denominator so a
/// quantity near zero is compared on the scale of the data instead.
fn relative_error(actual: f64, expected: f64, scale: f64) -> f64 {
    (actual - expected).abs() / expected.abs().max(scale)
}

/// Generates a realistic series: a level, a linear trend per sample and bounded noise.
fn series() -> impl Strategy<Value = Vec<f64>> {
    (1.0..5000.0f64, -0.5..0.5f64, 0.1..200.0f64, 24usize..1500).prop_flat_map(
        |(level, trend, amplitude, n)| {
            prop::collection::vec(-1.0..1.0f64, n).prop_map(move |noise| {
                noise
                    .iter()
                    .enumerate()
                    .map(|(i, e)| level + trend * i as f64 + amplitude * e)
                    .collect()
            })
        },
    )
}

/// Splits `values` into pieces of the given sizes (cycled), summarises each and merges them.
fn merged(values: &[f64], sizes: &[usize]) -> Summary {
    let mut total = Summary::default();
    let mut rest = values;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at((*size).min(rest.len()));
        let samples: Vec<Sample> = piece.iter().map(|x| Sample::Number(*x)).collect();
        total.merge(&Summary::of(&samples));
        rest = tail;
    }
    total
}

fn assert_matches_direct(summary: &Summary, values: &[f64]) {
    let baseline = summary
        .to_baseline(NOW)
        .expect("every generated series has at least 24 samples");
    let sigma = std_dev(values);
    let n = values.len() as f64;
    let mean_error = relative_error(baseline.mean, mean(values), sigma);
    let sigma_error = relative_error(baseline.std_dev, sigma, f64::MIN_POSITIVE);
    let slope_error = relative_error(baseline.slope, slope(values), sigma / n);
    assert!(mean_error < 1e-9, "mean error {mean_error}");
    assert!(sigma_error < 1e-9, "σ error {sigma_error}");
    assert!(slope_error < 1e-9, "slope error {slope_error}");
    assert_eq!(baseline.sample_count, values.len() as u64);
}

proptest! {
    #[test]
    fn merged_summary_equals_direct(
        values in series(),
        sizes in prop::collection::vec(1usize..200, 1..8),
    ) {
        assert_matches_direct(&merged(&values, &sizes), &values);
    }

    #[test]
    fn merged_dominance_equals_pushed(
        picks in prop::collection::vec(0usize..4, 24..300),
        sizes in prop::collection::vec(1usize..50, 1..6),
    ) {
        let words = ["OK", "ERROR", "TIMEOUT", "DOWN"];
        let samples: Vec<Sample> =
            picks.iter().map(|i| Sample::Category(words[*i].to_owned())).collect();
        let pushed = Summary::of(&samples).to_baseline(NOW).expect("at least 24 samples");
        let mut total = Summary::default();
        for chunk in chunks(&samples, &sizes) {
            total.merge(&Summary::of(chunk));
        }
        let merged = total.to_baseline(NOW).expect("at least 24 samples");
        prop_assert_eq!(merged.dominant_ratio, pushed.dominant_ratio);
        let mut counts = [0usize; 4];
        for i in &picks {
            counts[*i] += 1;
        }
        let max = counts.iter().max().copied().unwrap_or(0);
        if counts.iter().filter(|c| **c == max).count() == 1 {
            prop_assert_eq!(merged.dominant_value, pushed.dominant_value);
        }
    }

    #[test]
    fn wider_sensitivity_never_adds_anomalies(
        case in evaluation_case(),
        narrow in 0.1..3.0f64,
        widen in 0.0..3.0f64,
    ) {
        let (baseline, rule, value) = case;
        let narrow_rule = Rule { sensitivity: narrow, ..rule };
        let wide_rule = Rule { sensitivity: narrow + widen, ..rule };
        if matches!(evaluate(&value, &baseline, &narrow_rule), Outcome::Normal { .. }) {
            let wide = evaluate(&value, &baseline, &wide_rule);
            prop_assert!(matches!(wide, Outcome::Normal { .. }), "{wide:?}");
        }
    }

    #[test]
    fn floors_never_add_anomalies(
        case in evaluation_case(),
        min_absolute_delta in 0.0..500.0f64,
        min_relative_delta in 0.0..2.0f64,
    ) {
        let (baseline, rule, value) = case;
        let bare = Rule { min_absolute_delta: 0.0, min_relative_delta: 0.0, ..rule };
        let floored = Rule { min_absolute_delta, min_relative_delta, ..rule };
        if matches!(evaluate(&value, &baseline, &bare), Outcome::Normal { .. }) {
            let with_floors = evaluate(&value, &baseline, &floored);
            prop_assert!(matches!(with_floors, Outcome::Normal { .. }), "{with_floors:?}");
        }
    }

    #[test]
    fn spike_machine_keeps_one_open_row(
        steps in prop::collection::vec(spike_step(), 1..120),
        window in 1u32..6,
    ) {
        let mut store = Store::default();
        let rule = Rule { confirmation_window: window, ..super::fixtures::rule(Direction::Deviation) };
        for (i, (outcome, value, suppress)) in steps.iter().enumerate() {
            let baseline = baseline(100.0, 10.0);
            let ctx = super::SpikeContext {
                now: Timestamp(NOW.0 + i as i64),
                new_id: i as u64,
                ..context(&baseline, &rule, value)
            };
            let open = store.open_row().cloned();
            let transition = step_spike(open.as_ref(), outcome, &ctx);
            if matches!(outcome, Outcome::Invalid(_)) {
                prop_assert_eq!(&transition.row, &RowChange::Unchanged);
            }
            store.apply(transition.row, Kind::Spike);
            if *suppress {
                store.suppress_open(Timestamp(NOW.0 + i as i64));
            }
            prop_assert!(store.open_count() <= 1, "open rows: {:?}", store.rows);
        }
    }

    #[test]
    fn drift_machine_keeps_one_open_row(
        readings in prop::collection::vec(drift_step(), 1..120),
    ) {
        let mut store = Store::default();
        for (i, (reading, mean)) in readings.iter().enumerate() {
            let baseline = Baseline { mean: *mean, ..baseline(*mean, 10.0) };
            let open = store.open_row().cloned();
            let now = Timestamp(NOW.0 + i as i64);
            let transition = step_drift(open.as_ref(), reading, &baseline, now, i as u64);
            if open.is_none() && !reading.drifting {
                prop_assert_eq!(&transition.row, &RowChange::Unchanged);
            }
            store.apply(transition.row, Kind::Drift);
            prop_assert!(store.open_count() <= 1, "open rows: {:?}", store.rows);
        }
    }
}

fn chunks<'a>(samples: &'a [Sample], sizes: &[usize]) -> Vec<&'a [Sample]> {
    let mut pieces = Vec::new();
    let mut rest = samples;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at((*size).min(rest.len()));
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

/// Generates a baseline, a rule and a value, numeric or categorical.
fn evaluation_case() -> impl Strategy<Value = (Baseline, Rule, Value)> {
    let numeric = (
        -1000.0..1000.0f64,
        0.0..100.0f64,
        prop_oneof![
            Just(Direction::HigherIsBetter),
            Just(Direction::LowerIsBetter),
            Just(Direction::Deviation),
        ],
        -2000.0..2000.0f64,
        0.0..100.0f64,
        0.0..1.0f64,
    )
        .prop_map(|(mu, sigma, direction, x, abs, rel)| {
            let rule = Rule {
                min_absolute_delta: abs,
                min_relative_delta: rel,
                ..super::fixtures::rule(direction)
            };
            (baseline(mu, sigma), rule, Value::Number(x))
        });
    let categorical = (0.0..=1.0f64, prop::bool::ANY).prop_map(|(share, same)| {
        let value = Value::Text(if same { "OK" } else { "ERROR" }.to_owned());
        (
            super::fixtures::dominated("OK", share),
            super::fixtures::rule(Direction::Dominance),
            value,
        )
    });
    prop_oneof![3 => numeric, 1 => categorical]
}

/// Generates one detector step: an outcome, the value behind it, and whether an operator
/// suppresses the open row afterwards.
fn spike_step() -> impl Strategy<Value = (Outcome, Value, bool)> {
    let anomalous = (150.0..400.0f64).prop_map(|x| {
        (
            Outcome::Anomalous {
                deviation: (x - 100.0) / 10.0,
                direction: RowDirection::Above,
            },
            Value::Number(x),
        )
    });
    let normal = (80.0..120.0f64).prop_map(|x| {
        (
            Outcome::Normal {
                deviation: (x - 100.0).abs() / 10.0,
            },
            Value::Number(x),
        )
    });
    let invalid = Just((Outcome::Invalid(InvalidReason::Null), Value::Null));
    (
        prop_oneof![4 => anomalous, 2 => normal, 1 => invalid],
        prop::bool::weighted(0.05),
    )
        .prop_map(|((outcome, value), suppress)| (outcome, value, suppress))
}

/// Generates one analyzer run: a drift reading and the baseline mean it came from.
fn drift_step() -> impl Strategy<Value = (DriftReading, f64)> {
    (prop::bool::ANY, -500.0..500.0f64, 10.0..10_000.0f64).prop_map(|(drifting, change, mean)| {
        let reading = DriftReading {
            drifting,
            projected_change: change,
            deviation_sigmas: change.abs() / 10.0,
            direction: if change >= 0.0 {
                RowDirection::Above
            } else {
                RowDirection::Below
            },
        };
        (reading, mean)
    })
}

/// Rows of one series as a store would keep them: history plus at most one open row.
#[derive(Default)]
struct Store {
    rows: Vec<Anomaly>,
}

impl Store {
    fn open_row(&self) -> Option<&Anomaly> {
        self.rows.iter().find(|row| row.is_open())
    }

    fn open_count(&self) -> usize {
        self.rows.iter().filter(|row| row.is_open()).count()
    }

    fn apply(&mut self, change: RowChange, kind: Kind) {
        match change {
            RowChange::Unchanged => {}
            RowChange::Insert(row) => {
                assert_eq!(row.kind, kind);
                self.rows.push(row);
            }
            RowChange::Update(row) => {
                let slot = self
                    .rows
                    .iter()
                    .position(|r| r.id == row.id)
                    .expect("an update targets a stored row");
                self.rows[slot] = row;
            }
            RowChange::Delete => self.rows.retain(|row| !row.is_open()),
        }
    }

    fn suppress_open(&mut self, at: Timestamp) {
        if let Some(row) = self.rows.iter_mut().find(|r| r.state == State::Anomaly) {
            row.suppression = Some(Suppression {
                at,
                value: row.observed_value.parse().ok(),
                baseline: row.baseline_mean,
            });
        }
    }
}

#[test]
fn thirty_days_of_hourly_summaries_match_direct() {
    // 30 days × 24 hours × 60 samples of a latency with a daily cycle and a slow trend.
    let values: Vec<f64> = (0..30 * 24 * 60)
        .map(|i| {
            let t = i as f64;
            let daily = 40.0 * (t / 1440.0 * std::f64::consts::TAU).sin();
            let jitter = ((i * 7919) % 1000) as f64 / 50.0;
            250.0 + daily + jitter + t * 0.0005
        })
        .collect();
    assert_matches_direct(&merged(&values, &[60]), &values);
}
