//! Single-core throughput of the engine's hot path: `evaluate` + `step_spike` on a mix of
//! numeric and categorical fields with their baselines in memory, plus summary building.
//!
//! Run with `cargo bench --bench engine`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anomalyd::engine::{
    Anomaly, Baseline, Direction, Outcome, RowChange, Rule, Sample, SpikeContext, State, Summary,
    Timestamp, Value, evaluate, step_spike,
};

/// One series as the detector keeps it in memory: its baseline, rule and open row, if any.
struct Series {
    baseline: Baseline,
    rule: Rule,
    open: Option<Anomaly>,
}

fn rule(direction: Direction, min_absolute_delta: f64, min_relative_delta: f64) -> Rule {
    Rule {
        direction,
        sensitivity: 2.0,
        confirmation_window: 3,
        drift_enabled: true,
        drift_threshold: 2.0,
        min_absolute_delta,
        min_relative_delta,
    }
}

fn numeric(mean: f64, std_dev: f64, rule: Rule) -> Series {
    Series {
        baseline: Baseline {
            mean,
            std_dev,
            slope: 0.0,
            sample_count: 10_080,
            computed_at: Timestamp(0),
            dominant_value: None,
            dominant_ratio: None,
        },
        rule,
        open: None,
    }
}

fn categorical(dominant: &str, share: f64) -> Series {
    Series {
        baseline: Baseline {
            mean: 0.0,
            std_dev: 0.0,
            slope: 0.0,
            sample_count: 10_080,
            computed_at: Timestamp(0),
            dominant_value: Some(dominant.to_owned()),
            dominant_ratio: Some(share),
        },
        rule: rule(Direction::Dominance, 0.0, 0.0),
        open: None,
    }
}

/// Eight fields of a typical HTTP + database + host check: five numeric, three categorical.
fn fields() -> Vec<Series> {
    vec![
        numeric(120.0, 15.0, rule(Direction::LowerIsBetter, 50.0, 0.5)),
        numeric(8.0, 2.0, rule(Direction::LowerIsBetter, 50.0, 0.5)),
        numeric(35.0, 6.0, rule(Direction::LowerIsBetter, 10.0, 0.25)),
        numeric(60.0, 4.0, rule(Direction::LowerIsBetter, 5.0, 0.0)),
        numeric(99.0, 0.5, rule(Direction::HigherIsBetter, 10.0, 0.0)),
        categorical("true", 0.99),
        categorical("true", 0.97),
        categorical("SERVING", 0.995),
    ]
}

/// Returns the value of field `f` at run `i`: mostly normal, about one spike in 97 runs.
fn value(f: usize, i: u64) -> Value {
    let spike = (i.wrapping_mul(2_654_435_761) >> 7).is_multiple_of(97);
    let jitter = ((i.wrapping_mul(40_503) >> 3) % 100) as f64 / 100.0 - 0.5;
    match f {
        0 => Value::Number(if spike { 900.0 } else { 120.0 + 20.0 * jitter }),
        1 => Value::Number(if spike { 400.0 } else { 8.0 + 2.0 * jitter }),
        2 => Value::Number(if spike { 95.0 } else { 35.0 + 8.0 * jitter }),
        3 => Value::Number(60.0 + 4.0 * jitter),
        4 => Value::Number(if spike { 40.0 } else { 99.0 + jitter }),
        5 | 6 => Value::Bool(!spike),
        _ => Value::Text(if spike { "NOT_SERVING" } else { "SERVING" }.to_owned()),
    }
}

/// Applies a transition to the in-memory row, as the detector would after its write.
fn apply(series: &mut Series, change: RowChange) {
    match change {
        RowChange::Unchanged => {}
        RowChange::Insert(row) | RowChange::Update(row) => {
            series.open = (row.state != State::Recovered).then_some(row);
        }
        RowChange::Delete => series.open = None,
    }
}

fn run_evaluations(values: &[Vec<Value>], series: &mut [Series]) -> (u64, u64) {
    let mut evaluations = 0u64;
    let mut anomalous = 0u64;
    for (i, row) in values.iter().enumerate() {
        for (f, value) in row.iter().enumerate() {
            let s = &mut series[f];
            let outcome = evaluate(black_box(value), &s.baseline, &s.rule);
            if matches!(outcome, Outcome::Anomalous { .. }) {
                anomalous += 1;
            }
            let ctx = SpikeContext {
                baseline: &s.baseline,
                rule: &s.rule,
                value,
                now: Timestamp(i as i64 * 60_000),
                new_id: i as u64,
                last_self_resolution: None,
            };
            let transition = step_spike(s.open.as_ref(), &outcome, &ctx);
            apply(s, black_box(transition).row);
            evaluations += 1;
        }
    }
    (evaluations, anomalous)
}

fn bench_evaluations() {
    let runs = 250_000u64;
    let fields_per_run = fields().len();
    let values: Vec<Vec<Value>> = (0..runs)
        .map(|i| (0..fields_per_run).map(|f| value(f, i)).collect())
        .collect();
    let mut series = fields();
    run_evaluations(&values[..10_000], &mut series);

    let mut best = Duration::MAX;
    let mut totals = (0, 0);
    for _ in 0..5 {
        let mut series = fields();
        let start = Instant::now();
        totals = run_evaluations(&values, &mut series);
        best = best.min(start.elapsed());
    }
    let (evaluations, anomalous) = totals;
    let per_second = evaluations as f64 / best.as_secs_f64();
    println!(
        "evaluate + step_spike: {evaluations} field evaluations ({anomalous} anomalous) in \
         {:.1} ms, best of 5: {:.2} million per second, {:.0} ns each",
        best.as_secs_f64() * 1e3,
        per_second / 1e6,
        best.as_nanos() as f64 / evaluations as f64,
    );
}

fn bench_summaries() {
    let hours = 30 * 24;
    let per_hour = 60;
    let samples: Vec<Sample> = (0..hours * per_hour)
        .map(|i| Sample::Number(250.0 + ((i * 7919) % 1000) as f64 / 50.0))
        .collect();

    let mut push_time = Duration::MAX;
    let mut merge_time = Duration::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let pieces: Vec<Summary> = samples
            .chunks(per_hour)
            .map(|chunk| black_box(Summary::of(chunk)))
            .collect();
        push_time = push_time.min(start.elapsed());

        let start = Instant::now();
        let mut total = Summary::default();
        for piece in &pieces {
            total.merge(black_box(piece));
        }
        black_box(total.to_baseline(Timestamp(0)));
        merge_time = merge_time.min(start.elapsed());
    }

    println!(
        "Summary::push: {} numeric samples in {:.1} ms, {:.0} ns each",
        samples.len(),
        push_time.as_secs_f64() * 1e3,
        push_time.as_nanos() as f64 / samples.len() as f64,
    );
    println!(
        "Summary::merge + to_baseline: {hours} hourly summaries into a 30-day baseline in \
         {:.1} µs",
        merge_time.as_secs_f64() * 1e6,
    );
}

fn main() {
    bench_evaluations();
    bench_summaries();
}
