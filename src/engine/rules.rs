//! The detection rules: sample validation, spike triggers with practical-significance floors,
//! the dominance test and the drift test.

use super::{
    Baseline, Direction, DriftReading, EPSILON, FieldType, InvalidReason, Outcome, RowDirection,
    Rule, Sample, Value, stats::MIN_BASELINE_SAMPLES,
};

/// Width of the spike band in standard deviations at sensitivity 1.
pub const SIGMA_MULTIPLIER: f64 = 3.0;

/// Share of the baseline the dominant value needs at sensitivity 1 before a flip counts.
pub const DOMINANCE_BASE_SHARE: f64 = 0.9;

/// Cap of the required dominant share, so a high sensitivity still allows detection.
pub const DOMINANCE_MAX_SHARE: f64 = 0.99;

/// Spike triggers of a numeric direction; a value strictly beyond a trigger is statistically
/// anomalous.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Triggers {
    pub lower: Option<f64>,
    pub upper: Option<f64>,
}

/// Returns the triggers μ ± 3·σ·sensitivity on the side(s) the direction watches.
pub fn thresholds(direction: Direction, mean: f64, std_dev: f64, sensitivity: f64) -> Triggers {
    let margin = SIGMA_MULTIPLIER * std_dev * sensitivity;
    let lower = Some(mean - margin);
    let upper = Some(mean + margin);
    match direction {
        Direction::HigherIsBetter => Triggers { lower, upper: None },
        Direction::LowerIsBetter => Triggers { lower: None, upper },
        Direction::Deviation => Triggers { lower, upper },
        Direction::Dominance => Triggers {
            lower: None,
            upper: None,
        },
    }
}

/// Returns whether a change of size `delta` from `mean` clears both practical-significance
/// floors: `delta` ≥ the absolute floor, and (when the relative floor is above 0)
/// `delta` / max(|mean|, ε) ≥ the relative floor.
pub fn passes_floors(delta: f64, mean: f64, min_absolute_delta: f64, min_relative: f64) -> bool {
    if delta < min_absolute_delta {
        return false;
    }
    min_relative <= 0.0 || delta / mean.abs().max(EPSILON) >= min_relative
}

/// Returns whether the number `x` is a spike: strictly beyond a trigger and clearing the floors.
pub fn is_spike(x: f64, baseline: &Baseline, rule: &Rule) -> bool {
    let triggers = thresholds(
        rule.direction,
        baseline.mean,
        baseline.std_dev,
        rule.sensitivity,
    );
    let beyond = triggers.lower.is_some_and(|lower| x < lower)
        || triggers.upper.is_some_and(|upper| x > upper);
    beyond
        && passes_floors(
            (x - baseline.mean).abs(),
            baseline.mean,
            rule.min_absolute_delta,
            rule.min_relative_delta,
        )
}

/// Returns whether `text` flips away from the baseline's dominant value. The baseline must be
/// dominated: its share must reach min(0.99, 0.9·sensitivity), otherwise nothing is a flip.
pub fn is_dominance_flip(text: &str, baseline: &Baseline, sensitivity: f64) -> bool {
    let (Some(dominant), Some(share)) = (&baseline.dominant_value, baseline.dominant_ratio) else {
        return false;
    };
    let required = DOMINANCE_MAX_SHARE.min(DOMINANCE_BASE_SHARE * sensitivity);
    share >= required && text != dominant
}

/// Validates a raw value for a field of the given declared type and direction.
///
/// A numeric direction accepts only finite numbers. Dominance accepts strings, booleans and
/// finite numbers, except a number in a field declared `string`. Without a direction the declared
/// type decides, and without that the value's own type. Null is never a sample.
pub fn classify(
    value: &Value,
    field_type: Option<FieldType>,
    direction: Option<Direction>,
) -> Result<Sample, InvalidReason> {
    match direction {
        Some(Direction::Dominance) => classify_categorical(value, field_type),
        Some(_) => classify_number(value),
        None => match field_type {
            Some(FieldType::Number) => classify_number(value),
            Some(_) => classify_categorical(value, field_type),
            None if matches!(value, Value::Number(_)) => classify_number(value),
            None => classify_categorical(value, None),
        },
    }
}

fn classify_number(value: &Value) -> Result<Sample, InvalidReason> {
    finite_number(value).map(Sample::Number)
}

fn finite_number(value: &Value) -> Result<f64, InvalidReason> {
    match value {
        Value::Number(x) if x.is_finite() => Ok(*x),
        Value::Number(_) => Err(InvalidReason::NotFinite),
        Value::Null => Err(InvalidReason::Null),
        Value::Text(_) | Value::Bool(_) => Err(InvalidReason::NotANumber),
    }
}

fn classify_categorical(
    value: &Value,
    field_type: Option<FieldType>,
) -> Result<Sample, InvalidReason> {
    match value {
        Value::Text(text) => Ok(Sample::Category(text.clone())),
        Value::Bool(flag) => Ok(Sample::Category(bool_string(*flag).to_owned())),
        Value::Null => Err(InvalidReason::Null),
        Value::Number(_) if field_type == Some(FieldType::String) => Err(InvalidReason::NotAString),
        Value::Number(x) if x.is_finite() => Ok(Sample::Number(*x)),
        Value::Number(_) => Err(InvalidReason::NotFinite),
    }
}

/// Evaluates one value against a baseline under a rule.
///
/// A number's deviation is |x − μ| / σ (0 when σ = 0) and its row direction is `Above` when
/// x > μ, else `Below`. A dominance flip has deviation 0 and direction `Changed`.
pub fn evaluate(value: &Value, baseline: &Baseline, rule: &Rule) -> Outcome {
    if rule.direction == Direction::Dominance {
        return evaluate_categorical(value, baseline, rule);
    }
    let x = match finite_number(value) {
        Ok(x) => x,
        Err(reason) => return Outcome::Invalid(reason),
    };
    let deviation = sigma_distance(x, baseline);
    if !is_spike(x, baseline, rule) {
        return Outcome::Normal { deviation };
    }
    let direction = if x > baseline.mean {
        RowDirection::Above
    } else {
        RowDirection::Below
    };
    Outcome::Anomalous {
        deviation,
        direction,
    }
}

fn evaluate_categorical(value: &Value, baseline: &Baseline, rule: &Rule) -> Outcome {
    let flipped = match value {
        Value::Text(text) => is_dominance_flip(text, baseline, rule.sensitivity),
        Value::Bool(flag) => is_dominance_flip(bool_string(*flag), baseline, rule.sensitivity),
        Value::Number(x) if x.is_finite() => {
            is_dominance_flip(&number_string(*x), baseline, rule.sensitivity)
        }
        Value::Number(_) => return Outcome::Invalid(InvalidReason::NotFinite),
        Value::Null => return Outcome::Invalid(InvalidReason::Null),
    };
    if flipped {
        Outcome::Anomalous {
            deviation: 0.0,
            direction: RowDirection::Changed,
        }
    } else {
        Outcome::Normal { deviation: 0.0 }
    }
}

fn sigma_distance(x: f64, baseline: &Baseline) -> f64 {
    if baseline.std_dev > 0.0 {
        (x - baseline.mean).abs() / baseline.std_dev
    } else {
        0.0
    }
}

/// Computes the drift reading of a baseline under a rule.
///
/// The projected change P = slope · n is the change across the baseline window. The reading
/// fires only in the worsening direction, with at least 24 samples and drift enabled, when |P| is
/// strictly above threshold · σ · sensitivity and clears both floors.
pub fn detect_drift(baseline: &Baseline, rule: &Rule) -> DriftReading {
    let n = baseline.sample_count;
    let projected_change = baseline.slope * n as f64;
    let reading = |drifting| DriftReading {
        drifting,
        projected_change,
        deviation_sigmas: drift_sigmas(projected_change, baseline.slope, baseline.std_dev),
        direction: if baseline.slope >= 0.0 {
            RowDirection::Above
        } else {
            RowDirection::Below
        },
    };
    if !rule.drift_enabled || n < MIN_BASELINE_SAMPLES || !worsens(baseline.slope, rule.direction) {
        return reading(false);
    }
    let band = rule.drift_threshold * baseline.std_dev * rule.sensitivity;
    reading(drift_fires(
        projected_change.abs(),
        band,
        Some(baseline.mean),
        rule,
    ))
}

/// Returns whether a slope moves the field the way its direction counts as worse.
fn worsens(slope: f64, direction: Direction) -> bool {
    match direction {
        _ if slope == 0.0 || slope.is_nan() => false,
        Direction::Dominance => false,
        Direction::LowerIsBetter => slope > 0.0,
        Direction::HigherIsBetter => slope < 0.0,
        Direction::Deviation => true,
    }
}

/// Applies the statistical band and the floors to an absolute projected change. Without a mean
/// the relative floor cannot be judged and is skipped.
pub(super) fn drift_fires(change: f64, band: f64, mean: Option<f64>, rule: &Rule) -> bool {
    if change <= band || change < rule.min_absolute_delta {
        return false;
    }
    match mean {
        Some(mean) if rule.min_relative_delta > 0.0 => {
            change / mean.abs().max(EPSILON) >= rule.min_relative_delta
        }
        _ => true,
    }
}

fn drift_sigmas(projected_change: f64, slope: f64, std_dev: f64) -> f64 {
    if std_dev > 0.0 {
        projected_change.abs() / std_dev
    } else if slope == 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// Returns the string form of a boolean sample.
pub(super) fn bool_string(flag: bool) -> &'static str {
    if flag { "true" } else { "false" }
}

/// Returns the string form of a number sample: the shortest decimal that reads back as the same
/// number, with negative zero written `0`.
pub(super) fn number_string(x: f64) -> String {
    if x == 0.0 {
        return "0".to_owned();
    }
    x.to_string()
}

/// Returns the string form a value is stored and compared in.
pub(super) fn value_string(value: &Value) -> String {
    match value {
        Value::Number(x) => number_string(*x),
        Value::Text(text) => text.clone(),
        Value::Bool(flag) => bool_string(*flag).to_owned(),
        Value::Null => "null".to_owned(),
    }
}
