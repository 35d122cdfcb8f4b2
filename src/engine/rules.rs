//! The detection rules: sample validation, spike triggers with practical-significance floors,
//! the dominance test and the drift test.

use super::{
    Baseline, Direction, DriftReading, EPSILON, FieldType, InvalidReason, Outcome, RowDirection,
    Rule, Sample, Value,
    stats::{MIN_BASELINE_SAMPLES, value_key},
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

impl Triggers {
    /// Returns whether `x` lies strictly beyond a trigger; a value on a trigger is normal.
    pub fn is_beyond(&self, x: f64) -> bool {
        self.lower.is_some_and(|lower| x < lower) || self.upper.is_some_and(|upper| x > upper)
    }
}

/// Returns the triggers μ ± 3·σ·sensitivity on the side(s) the direction watches.
pub fn thresholds(direction: Direction, mean: f64, std_dev: f64, sensitivity: f64) -> Triggers {
    band_around(direction, mean, SIGMA_MULTIPLIER * std_dev * sensitivity)
}

/// Returns the spike band a number is judged against under `rule`: the triggers of
/// [`thresholds`], each moved out to [`floor_distance`] from the mean when that is wider. A
/// value strictly beyond a trigger is a spike ([`is_spike`]). A value exactly on a trigger that
/// the floor moved out is a spike too, because the floors are inclusive.
pub fn spike_band(mean: f64, std_dev: f64, rule: &Rule) -> Triggers {
    let sigma_margin = SIGMA_MULTIPLIER * std_dev * rule.sensitivity;
    band_around(
        rule.direction,
        mean,
        sigma_margin.max(floor_distance(mean, rule)),
    )
}

/// Returns the drift band of [`detect_drift`] on the side(s) where the direction counts a change
/// as worse. Its margin is the projected change that counts as drift: drift threshold · σ ·
/// sensitivity, or the floor distance when that is wider.
pub fn drift_band(mean: f64, std_dev: f64, rule: &Rule) -> Triggers {
    let sigma_margin = rule.drift_threshold * std_dev * rule.sensitivity;
    band_around(
        rule.direction,
        mean,
        sigma_margin.max(floor_distance(mean, rule)),
    )
}

/// Returns the smallest distance from `mean` that clears both floors of `rule`:
/// max(absolute floor, relative floor · max(|mean|, ε)).
pub fn floor_distance(mean: f64, rule: &Rule) -> f64 {
    let relative = rule.min_relative_delta * mean.abs().max(EPSILON);
    rule.min_absolute_delta.max(relative)
}

fn band_around(direction: Direction, mean: f64, margin: f64) -> Triggers {
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
    triggers.is_beyond(x)
        && passes_floors(
            (x - baseline.mean).abs(),
            baseline.mean,
            rule.min_absolute_delta,
            rule.min_relative_delta,
        )
}

/// Returns whether the string form `text` flips away from the baseline's dominant value. The
/// baseline must be dominated: its share must reach min(0.99, 0.9·sensitivity), otherwise nothing
/// is a flip. Both sides are compared by their [`value_key`], the form summaries count values
/// in, which also matches a long dominant value stored before values were keyed.
pub fn is_dominance_flip(text: &str, baseline: &Baseline, sensitivity: f64) -> bool {
    let (Some(dominant), Some(share)) = (&baseline.dominant_value, baseline.dominant_ratio) else {
        return false;
    };
    let required = DOMINANCE_MAX_SHARE.min(DOMINANCE_BASE_SHARE * sensitivity);
    share >= required && value_key(text) != value_key(dominant)
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

/// Largest magnitude a sample may have. Squares and sums of larger values overflow f64 in the
/// variance, which would leave the series with a NaN standard deviation and no detection.
pub const MAX_SAMPLE_MAGNITUDE: f64 = 1e150;

fn finite_number(value: &Value) -> Result<f64, InvalidReason> {
    match value {
        Value::Number(x) if x.is_finite() && x.abs() <= MAX_SAMPLE_MAGNITUDE => Ok(*x),
        Value::Number(x) if x.is_finite() => Err(InvalidReason::OutOfRange),
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
        Value::Number(_) => finite_number(value).map(Sample::Number),
    }
}

/// Evaluates one value against a baseline under a rule.
///
/// A number's deviation is |x − μ| / σ (0 when σ = 0) and its row direction is `Above` when
/// x > μ, else `Below`. A dominance flip has deviation 0 and direction `Changed`. The declared
/// field type is not known here, so callers that have one run [`classify`] first to reject a
/// number in a `string` field.
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
    // Written as positive comparisons so a NaN band or change never fires.
    let clears_band_and_floor = change > band && change >= rule.min_absolute_delta;
    if !clears_band_and_floor {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fixtures::{NOW, baseline, dominated, number, rule, sloped, text};
    use crate::engine::{MAX_VALUE_KEY_BYTES, Summary};
    use Direction::{Deviation, Dominance, HigherIsBetter, LowerIsBetter};

    #[test]
    fn thresholds_cases() {
        // (direction, μ, σ, sensitivity, lower, upper)
        let cases = [
            (HigherIsBetter, 90.0, 5.0, 1.0, Some(75.0), None),
            (LowerIsBetter, 100.0, 20.0, 1.0, None, Some(160.0)),
            (Deviation, 50.0, 10.0, 1.0, Some(20.0), Some(80.0)),
            (Deviation, 50.0, 10.0, 0.5, Some(35.0), Some(65.0)),
            (Deviation, 50.0, 10.0, 2.0, Some(-10.0), Some(110.0)),
            (Dominance, 50.0, 10.0, 1.0, None, None),
        ];
        for (direction, mu, sigma, sensitivity, lower, upper) in cases {
            let triggers = thresholds(direction, mu, sigma, sensitivity);
            assert_eq!(
                triggers.lower, lower,
                "{direction} μ{mu} σ{sigma} s{sensitivity}"
            );
            assert_eq!(
                triggers.upper, upper,
                "{direction} μ{mu} σ{sigma} s{sensitivity}"
            );
        }
    }

    #[test]
    fn triggers_are_strict() {
        let lower = Triggers {
            lower: Some(50.0),
            upper: None,
        };
        let upper = Triggers {
            lower: None,
            upper: Some(100.0),
        };
        let both = Triggers {
            lower: Some(20.0),
            upper: Some(80.0),
        };
        let none = Triggers {
            lower: None,
            upper: None,
        };
        // (triggers, value, beyond)
        let cases = [
            (lower, 40.0, true),
            (lower, 50.0, false),
            (lower, 60.0, false),
            (upper, 110.0, true),
            (upper, 100.0, false),
            (upper, 90.0, false),
            (both, 10.0, true),
            (both, 90.0, true),
            (both, 50.0, false),
            (none, 1000.0, false),
            (none, -1000.0, false),
        ];
        for (triggers, x, expected) in cases {
            assert_eq!(triggers.is_beyond(x), expected, "{x} against {triggers:?}");
        }
    }

    #[test]
    fn spike_floors_cases() {
        // (direction, μ, σ, abs floor, rel floor, value, anomalous)
        let cases = [
            (LowerIsBetter, 6.0, 1.0, 50.0, 0.0, 20.0, false),
            (LowerIsBetter, 6.0, 1.0, 50.0, 0.0, 200.0, true),
            (Deviation, 1000.0, 10.0, 0.0, 0.5, 1100.0, false),
            (Deviation, 1000.0, 10.0, 0.0, 0.5, 2000.0, true),
            (Deviation, 100.0, 5.0, 10.0, 0.5, 120.0, false),
            (Deviation, 100.0, 5.0, 10.0, 0.5, 180.0, true),
            (LowerIsBetter, 70.0, 10.0, 0.0, 0.0, 101.0, true),
            (LowerIsBetter, 0.0, 0.01 / 3.0, 0.0, 0.5, 10.0, true),
            // Δ exactly on the absolute floor passes.
            (LowerIsBetter, 100.0, 1.0, 50.0, 0.0, 150.0, true),
        ];
        for (direction, mu, sigma, min_abs, min_rel, x, expected) in cases {
            let rule = Rule {
                min_absolute_delta: min_abs,
                min_relative_delta: min_rel,
                ..rule(direction)
            };
            assert_eq!(
                is_spike(x, &baseline(mu, sigma), &rule),
                expected,
                "{x} against μ{mu} σ{sigma} floors {min_abs}/{min_rel}"
            );
        }
    }

    #[test]
    fn spike_band_matches_is_spike() {
        // (direction, μ, σ, abs floor, rel floor, expected lower, expected upper)
        let cases = [
            (LowerIsBetter, 6.0, 1.0, 50.0, 0.0, None, Some(56.0)),
            (HigherIsBetter, 100.0, 2.0, 0.0, 0.25, Some(75.0), None),
            (Deviation, 100.0, 5.0, 10.0, 0.5, Some(50.0), Some(150.0)),
            (Deviation, 100.0, 5.0, 1.0, 0.0, Some(85.0), Some(115.0)),
        ];
        for (direction, mu, sigma, min_abs, min_rel, lower, upper) in cases {
            let rule = Rule {
                min_absolute_delta: min_abs,
                min_relative_delta: min_rel,
                ..rule(direction)
            };
            let band = spike_band(mu, sigma, &rule);
            assert_eq!(band.lower, lower, "{direction:?} μ{mu} σ{sigma}");
            assert_eq!(band.upper, upper, "{direction:?} μ{mu} σ{sigma}");
            let edges = [(band.upper, 1e-6), (band.lower, -1e-6)];
            for (edge, outward) in edges.into_iter().filter_map(|(e, o)| Some((e?, o))) {
                let outside = edge + outward;
                let inside = edge - outward;
                let base = baseline(mu, sigma);
                assert!(is_spike(outside, &base, &rule), "{outside} is a spike");
                assert!(!is_spike(inside, &base, &rule), "{inside} is not a spike");
            }
        }
    }

    #[test]
    fn drift_band_matches_detect_drift() {
        let rule = Rule {
            min_absolute_delta: 30.0,
            ..rule(LowerIsBetter)
        };
        let band = drift_band(100.0, 5.0, &rule);
        assert_eq!(band.lower, None);
        assert_eq!(band.upper, Some(130.0), "the floor is wider than 2σ");
        let samples = 100;
        let per_sample = |change: f64| change / samples as f64;
        let beyond = sloped(per_sample(30.5), 5.0, samples, 100.0);
        let within = sloped(per_sample(29.5), 5.0, samples, 100.0);
        assert!(detect_drift(&beyond, &rule).drifting);
        assert!(!detect_drift(&within, &rule).drifting);
    }

    #[test]
    fn dominance_cases() {
        // (dominant value, share, sensitivity, value, flip)
        let cases = [
            ("OK", 0.95, 1.0, "ERROR", true),
            ("OK", 0.95, 1.0, "OK", false),
            ("OK", 0.85, 1.0, "ERROR", false),
            ("OK", 0.50, 0.5, "ERROR", true),
            ("OK", 0.95, 2.0, "ERROR", false),
            ("OK", 0.995, 2.0, "ERROR", true),
            ("OK", 0.90, 1.0, "ERROR", true),
        ];
        for (dominant, share, sensitivity, value, expected) in cases {
            assert_eq!(
                is_dominance_flip(value, &dominated(dominant, share), sensitivity),
                expected,
                "{value} against {dominant} at {share}, sensitivity {sensitivity}"
            );
        }
    }

    #[test]
    fn dominance_without_dominant_is_never_a_flip() {
        let missing_value = Baseline {
            dominant_value: None,
            ..dominated("OK", 0.99)
        };
        let missing_share = Baseline {
            dominant_ratio: None,
            ..dominated("OK", 0.99)
        };
        assert!(!is_dominance_flip("ERROR", &missing_value, 1.0));
        assert!(!is_dominance_flip("ERROR", &missing_share, 1.0));
    }

    #[test]
    fn drift_cases() {
        // (direction, slope, σ, n, mean, sensitivity, abs, rel, drifting, projected)
        let cases = [
            (Deviation, 0.5, 30.0, 100, 0.0, 1.0, 0.0, 0.0, false, 50.0),
            (Deviation, 1.0, 30.0, 100, 0.0, 1.0, 0.0, 0.0, true, 100.0),
            (Deviation, -1.0, 30.0, 100, 0.0, 1.0, 0.0, 0.0, true, -100.0),
            (
                LowerIsBetter,
                1.0,
                30.0,
                100,
                0.0,
                1.0,
                0.0,
                0.0,
                true,
                100.0,
            ),
            (
                LowerIsBetter,
                -1.0,
                30.0,
                100,
                0.0,
                1.0,
                0.0,
                0.0,
                false,
                -100.0,
            ),
            (
                HigherIsBetter,
                -1.0,
                30.0,
                100,
                0.0,
                1.0,
                0.0,
                0.0,
                true,
                -100.0,
            ),
            (
                HigherIsBetter,
                1.0,
                30.0,
                100,
                0.0,
                1.0,
                0.0,
                0.0,
                false,
                100.0,
            ),
            (
                Dominance, 100.0, 1.0, 100, 0.0, 1.0, 0.0, 0.0, false, 10000.0,
            ),
            (Deviation, 1.0, 30.0, 100, 0.0, 2.0, 0.0, 0.0, false, 100.0),
            (Deviation, 0.5, 30.0, 100, 0.0, 0.5, 0.0, 0.0, true, 50.0),
            (Deviation, 1.0, 0.0, 100, 0.0, 1.0, 0.0, 0.0, true, 100.0),
            (Deviation, 0.0, 30.0, 100, 0.0, 1.0, 0.0, 0.0, false, 0.0),
            (Deviation, 1.0, 30.0, 0, 0.0, 1.0, 0.0, 0.0, false, 0.0),
            (Deviation, 0.0, 0.0, 100, 0.0, 1.0, 0.0, 0.0, false, 0.0),
            (
                Deviation, 1.0, 30.0, 100, 0.0, 1.0, 200.0, 0.0, false, 100.0,
            ),
            (Deviation, 1.0, 30.0, 100, 0.0, 1.0, 50.0, 0.0, true, 100.0),
            (
                Deviation, 1.0, 30.0, 100, 1000.0, 1.0, 0.0, 0.5, false, 100.0,
            ),
            (Deviation, 1.0, 30.0, 100, 100.0, 1.0, 0.0, 0.5, true, 100.0),
            (Deviation, 0.001, 0.0, 100, 0.0, 1.0, 1.0, 0.0, false, 0.1),
        ];
        for (direction, slope, sigma, n, mean, sensitivity, abs, rel, drifting, projected) in cases
        {
            let rule = Rule {
                sensitivity,
                min_absolute_delta: abs,
                min_relative_delta: rel,
                ..rule(direction)
            };
            let reading = detect_drift(&sloped(slope, sigma, n, mean), &rule);
            let case = format!("{direction} slope {slope} σ{sigma} n{n} μ{mean} s{sensitivity}");
            assert_eq!(reading.drifting, drifting, "drifting of {case}");
            assert!(
                (reading.projected_change - projected).abs() < 1e-9,
                "P of {case}"
            );
        }
    }

    #[test]
    fn drift_reading_sigmas_and_direction() {
        let rule = rule(Deviation);
        let rising = detect_drift(&sloped(1.0, 30.0, 100, 0.0), &rule);
        assert!((rising.deviation_sigmas - 100.0 / 30.0).abs() < 1e-4);
        assert_eq!(rising.direction, RowDirection::Above);
        let falling = detect_drift(&sloped(-1.0, 30.0, 100, 0.0), &rule);
        assert_eq!(falling.direction, RowDirection::Below);
        let flat = detect_drift(&sloped(0.0, 0.0, 100, 0.0), &rule);
        assert_eq!(flat.deviation_sigmas, 0.0);
        assert_eq!(flat.direction, RowDirection::Above);
    }

    #[test]
    fn drift_deviation_may_be_unbounded() {
        let rule = Rule {
            min_absolute_delta: 1.0,
            ..rule(Deviation)
        };
        let steep = detect_drift(&sloped(1.0, 0.0, 100, 0.0), &rule);
        assert!(steep.drifting);
        assert_eq!(steep.deviation_sigmas, f64::INFINITY);
        let held_back = detect_drift(&sloped(0.001, 0.0, 100, 0.0), &rule);
        assert!(!held_back.drifting);
        assert_eq!(held_back.deviation_sigmas, f64::INFINITY);
    }

    #[test]
    fn drift_needs_24_samples_and_drift_enabled() {
        let enabled = rule(Deviation);
        let disabled = Rule {
            drift_enabled: false,
            ..enabled
        };
        assert!(!detect_drift(&sloped(10.0, 1.0, 23, 0.0), &enabled).drifting);
        assert!(detect_drift(&sloped(10.0, 1.0, 24, 0.0), &enabled).drifting);
        assert!(!detect_drift(&sloped(10.0, 1.0, 100, 0.0), &disabled).drifting);
    }

    #[test]
    fn drift_relative_floor_without_mean_is_ignored() {
        let rule = Rule {
            min_relative_delta: 0.5,
            ..rule(Deviation)
        };
        assert!(drift_fires(100.0, 60.0, None, &rule));
        assert!(!drift_fires(100.0, 60.0, Some(1000.0), &rule));
        assert!(!drift_fires(60.0, 60.0, None, &rule));
    }

    #[test]
    fn classify_cases() {
        use FieldType::{Boolean, Number, String};
        use InvalidReason::{NotANumber, NotAString, NotFinite, Null, OutOfRange};
        let category = |s: &str| Ok(Sample::Category(s.to_owned()));
        // (value, declared type, direction, expected)
        let cases = [
            (
                number(1.5),
                Some(Number),
                Some(LowerIsBetter),
                Ok(Sample::Number(1.5)),
            ),
            (
                number(f64::NAN),
                Some(Number),
                Some(LowerIsBetter),
                Err(NotFinite),
            ),
            (number(f64::INFINITY), None, Some(Deviation), Err(NotFinite)),
            (number(f64::NEG_INFINITY), None, None, Err(NotFinite)),
            (number(1e308), None, Some(LowerIsBetter), Err(OutOfRange)),
            (number(-1e151), Some(Number), None, Err(OutOfRange)),
            (
                number(1e150),
                None,
                Some(Deviation),
                Ok(Sample::Number(1e150)),
            ),
            (number(1e300), None, Some(Dominance), Err(OutOfRange)),
            (Value::Null, Some(Number), Some(HigherIsBetter), Err(Null)),
            (text("12"), Some(Number), Some(Deviation), Err(NotANumber)),
            (
                Value::Bool(true),
                None,
                Some(LowerIsBetter),
                Err(NotANumber),
            ),
            (number(3.0), Some(String), Some(Dominance), Err(NotAString)),
            (number(3.0), Some(String), None, Err(NotAString)),
            (Value::Null, Some(String), Some(Dominance), Err(Null)),
            (Value::Null, Some(Boolean), None, Err(Null)),
            (text("OK"), Some(String), Some(Dominance), category("OK")),
            (
                Value::Bool(false),
                Some(Boolean),
                Some(Dominance),
                category("false"),
            ),
            (
                number(200.0),
                Some(Number),
                Some(Dominance),
                Ok(Sample::Number(200.0)),
            ),
            (
                number(f64::NAN),
                Some(Number),
                Some(Dominance),
                Err(NotFinite),
            ),
            (text("x"), Some(Number), None, Err(NotANumber)),
            (text("x"), None, None, category("x")),
            (number(4.0), None, None, Ok(Sample::Number(4.0))),
        ];
        for (value, field_type, direction, expected) in cases {
            assert_eq!(
                classify(&value, field_type, direction),
                expected,
                "{value:?} as {field_type:?} with {direction:?}"
            );
        }
    }

    #[test]
    fn evaluate_numeric_cases() {
        // (direction, μ, σ, value, expected)
        let cases = [
            (
                LowerIsBetter,
                100.0,
                10.0,
                105.0,
                Outcome::Normal { deviation: 0.5 },
            ),
            (
                LowerIsBetter,
                100.0,
                10.0,
                200.0,
                Outcome::Anomalous {
                    deviation: 10.0,
                    direction: RowDirection::Above,
                },
            ),
            (
                HigherIsBetter,
                99.0,
                1.0,
                50.0,
                Outcome::Anomalous {
                    deviation: 49.0,
                    direction: RowDirection::Below,
                },
            ),
            (
                HigherIsBetter,
                95.0,
                1.0,
                100.0,
                Outcome::Normal { deviation: 5.0 },
            ),
            (
                Deviation,
                200.0,
                5.0,
                500.0,
                Outcome::Anomalous {
                    deviation: 60.0,
                    direction: RowDirection::Above,
                },
            ),
            (
                LowerIsBetter,
                100.0,
                0.0,
                101.0,
                Outcome::Anomalous {
                    deviation: 0.0,
                    direction: RowDirection::Above,
                },
            ),
            (
                LowerIsBetter,
                100.0,
                10.0,
                f64::NAN,
                Outcome::Invalid(InvalidReason::NotFinite),
            ),
        ];
        for (direction, mu, sigma, x, expected) in cases {
            let outcome = evaluate(&number(x), &baseline(mu, sigma), &rule(direction));
            assert_eq!(outcome, expected, "{x} against {direction} μ{mu} σ{sigma}");
        }
    }

    #[test]
    fn evaluate_categorical_cases() {
        let flip = Outcome::Anomalous {
            deviation: 0.0,
            direction: RowDirection::Changed,
        };
        let same = Outcome::Normal { deviation: 0.0 };
        // (dominant value, value, expected)
        let cases = [
            ("OK", text("ERROR"), flip.clone()),
            ("OK", text("OK"), same.clone()),
            ("true", Value::Bool(false), flip.clone()),
            ("true", Value::Bool(true), same.clone()),
            ("200", number(200.0), same.clone()),
            ("200", number(503.0), flip),
            ("OK", Value::Null, Outcome::Invalid(InvalidReason::Null)),
        ];
        for (dominant, value, expected) in cases {
            let outcome = evaluate(&value, &dominated(dominant, 0.95), &rule(Dominance));
            assert_eq!(outcome, expected, "{value:?} against {dominant}");
        }
    }

    #[test]
    fn long_values_flip_exactly() {
        let long_text = "x".repeat(4096);
        let mut other_text = long_text.clone();
        other_text.replace_range(4095.., "y");
        // A number this small prints as 302 characters, so its key is bounded too.
        let cases = [
            (text(&long_text), text(&other_text)),
            (number(1e-300), number(2e-300)),
        ];
        let flip = Outcome::Anomalous {
            deviation: 0.0,
            direction: RowDirection::Changed,
        };
        for (usual, changed) in cases {
            let sample = classify(&usual, None, Some(Dominance)).expect("a valid sample");
            let baseline = Summary::of(&vec![sample; 30])
                .to_baseline(NOW)
                .expect("30 samples make a baseline");
            let dominant = baseline
                .dominant_value
                .as_deref()
                .expect("a dominated baseline");
            assert!(
                dominant.len() <= MAX_VALUE_KEY_BYTES,
                "{} bytes",
                dominant.len()
            );
            let rule = rule(Dominance);
            assert_eq!(
                evaluate(&usual, &baseline, &rule),
                Outcome::Normal { deviation: 0.0 }
            );
            assert_eq!(evaluate(&changed, &baseline, &rule), flip, "{changed:?}");
        }
    }

    #[test]
    fn long_dominant_stored_unkeyed_still_matches() {
        let long_text = "x".repeat(4096);
        assert!(!is_dominance_flip(
            &long_text,
            &dominated(&long_text, 0.95),
            1.0
        ));
        assert!(is_dominance_flip("x", &dominated(&long_text, 0.95), 1.0));
    }

    #[test]
    fn number_string_cases() {
        let cases = [(200.0, "200"), (1.5, "1.5"), (-0.0, "0"), (-3.25, "-3.25")];
        for (x, expected) in cases {
            assert_eq!(number_string(x), expected);
        }
    }
}
