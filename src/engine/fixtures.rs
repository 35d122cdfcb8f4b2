//! Builders of baselines, rules and rows shared by the engine's unit and property tests.

use super::{
    Anomaly, Baseline, Direction, Kind, Outcome, RowDirection, Rule, SpikeContext, State,
    Suppression, Timestamp, Value,
};

pub const NOW: Timestamp = Timestamp(1_700_000_000_000);

/// Builds a numeric baseline computed at `NOW` from 100 samples.
pub fn baseline(mean: f64, std_dev: f64) -> Baseline {
    Baseline {
        mean,
        std_dev,
        slope: 0.0,
        sample_count: 100,
        computed_at: NOW,
        dominant_value: None,
        dominant_ratio: None,
    }
}

/// Builds a categorical baseline dominated by `value` at `share`.
pub fn dominated(value: &str, share: f64) -> Baseline {
    Baseline {
        dominant_value: Some(value.to_owned()),
        dominant_ratio: Some(share),
        ..baseline(0.0, 0.0)
    }
}

/// Builds a baseline with a slope, for drift readings.
pub fn sloped(slope: f64, std_dev: f64, sample_count: u64, mean: f64) -> Baseline {
    Baseline {
        slope,
        sample_count,
        ..baseline(mean, std_dev)
    }
}

/// Builds the default rule of a direction: sensitivity 1, window 3, drift on at 2, no floors.
pub fn rule(direction: Direction) -> Rule {
    Rule {
        direction,
        sensitivity: 1.0,
        confirmation_window: 3,
        drift_enabled: true,
        drift_threshold: 2.0,
        min_absolute_delta: 0.0,
        min_relative_delta: 0.0,
    }
}

pub fn number(x: f64) -> Value {
    Value::Number(x)
}

pub fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

pub fn anomalous(deviation: f64, direction: RowDirection) -> Outcome {
    Outcome::Anomalous {
        deviation,
        direction,
    }
}

pub fn normal() -> Outcome {
    Outcome::Normal { deviation: 0.5 }
}

/// Builds an open row of `kind` in `state` with a run count and confirmation threshold.
pub fn row(kind: Kind, state: State, count: u32, threshold: u32) -> Anomaly {
    Anomaly {
        id: 7,
        kind,
        state,
        direction: RowDirection::Above,
        baseline_mean: Some(100.0),
        baseline_std_dev: Some(10.0),
        observed_value: "200".to_owned(),
        deviation: 10.0,
        suspicious_run_count: count,
        confirmation_threshold: threshold,
        started_at: Timestamp(NOW.0 - 60_000),
        confirmed_at: (state == State::Anomaly).then_some(Timestamp(NOW.0 - 30_000)),
        recovered_at: None,
        recent_samples: Vec::new(),
        stable_drift_run_count: 0,
        self_resolved: false,
        suppression: None,
    }
}

/// Builds a confirmed spike row suppressed at the numeric value `at`.
pub fn suppressed_at(at: f64) -> Anomaly {
    Anomaly {
        suppression: Some(Suppression {
            at: Timestamp(NOW.0 - 10_000),
            value: Some(at),
            baseline: Some(100.0),
        }),
        ..row(Kind::Spike, State::Anomaly, 3, 3)
    }
}

/// Builds a spike context evaluating `value` at `NOW` that inserts id 42, with no
/// self-resolution.
pub fn context<'a>(baseline: &'a Baseline, rule: &'a Rule, value: &'a Value) -> SpikeContext<'a> {
    SpikeContext {
        baseline,
        rule,
        value,
        now: NOW,
        new_id: 42,
        last_self_resolution: None,
    }
}
