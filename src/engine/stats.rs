//! Baseline statistics: the direct formulas (mean, population standard deviation, slope over the
//! sample index, dominant value) and the mergeable [`Summary`] that reproduces them from per-hour
//! pieces.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{Baseline, Sample, Timestamp};

/// Minimum number of samples a baseline (and a drift test) needs.
pub const MIN_BASELINE_SAMPLES: u64 = 24;

/// Maximum number of distinct values one [`Summary`] counts individually.
pub const MAX_TRACKED_VALUES: usize = 64;

/// Maximum number of distinct values a [`Summary`] with numeric samples counts. A numeric field
/// with more distinct values than this (a latency, a byte count) has no meaningful dominant
/// value, so its summaries stop counting values and stay small.
pub const MAX_TRACKED_NUMERIC_VALUES: usize = 16;

/// Returns the arithmetic mean, or 0 for no values.
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().sum::<f64>() / values.len() as f64
}

/// Returns the population standard deviation √(Σ(x−μ)²/n), or 0 for fewer than two values.
pub fn std_dev(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let mu = mean(values);
    let m2: f64 = values.iter().map(|x| (x - mu) * (x - mu)).sum();
    (m2 / values.len() as f64).sqrt()
}

/// Returns the least-squares slope of the values against their index 0..n−1 (oldest first), in
/// value units per sample, or 0 for fewer than two values.
pub fn slope(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 2 {
        return 0.0;
    }
    let index_mean = (n - 1) as f64 / 2.0;
    let value_mean = mean(values);
    let co_moment: f64 = values
        .iter()
        .enumerate()
        .map(|(i, x)| (i as f64 - index_mean) * (x - value_mean))
        .sum();
    co_moment / index_sum_of_squares(n as u64)
}

/// Returns the most frequent value and its share of all values, or `None` for no values. A tie
/// goes to the value that reached the tied count first while scanning in order.
pub fn dominance<T: PartialEq + Clone>(values: &[T]) -> Option<(T, f64)> {
    let mut counts: Vec<(&T, u64)> = Vec::new();
    let mut best: Option<(usize, u64)> = None;
    for value in values {
        let slot = match counts.iter().position(|(v, _)| *v == value) {
            Some(slot) => slot,
            None => {
                counts.push((value, 0));
                counts.len() - 1
            }
        };
        counts[slot].1 += 1;
        if best.is_none_or(|(_, max)| counts[slot].1 > max) {
            best = Some((slot, counts[slot].1));
        }
    }
    let (slot, max) = best?;
    Some((counts[slot].0.clone(), max as f64 / values.len() as f64))
}

/// Σ(i − ī)² over the indices 0..n−1, which is n(n²−1)/12.
fn index_sum_of_squares(n: u64) -> f64 {
    let n = n as f64;
    n * (n * n - 1.0) / 12.0
}

/// Mergeable statistics of a run of samples in time order: count, mean, M2 and the index
/// co-moment for the slope, plus value counts for the dominant value. Per-hour summaries merge
/// into a baseline without rereading samples, and the merged numbers equal the direct formulas'
/// up to rounding (Chan et al. pairwise updates).
///
/// Numeric moments cover only `Sample::Number` samples, indexed in the order they were added.
/// Value counts cover every sample by its string form (`200`, `true`, `OK`), so a numeric field
/// judged by dominance still has a dominant value.
///
/// Value counts are bounded: the first [`MAX_TRACKED_VALUES`] distinct values are counted one by
/// one, and any later new value only increments `overflow_count`. Overflow samples still count
/// toward the total, so they lower every share, but an overflow value can never become dominant.
/// A summary with numeric samples is bounded harder. Past [`MAX_TRACKED_NUMERIC_VALUES`]
/// distinct values it drops its value counts and has no dominant value, whether its samples were
/// pushed one by one or merged. Per-hour summaries of a latency field therefore stay small.
///
/// Ties for the dominant value: pushing samples one by one gives the tie to the value that
/// reached the tied count first. After [`Summary::merge`] the order inside the pieces is gone, so
/// a tie goes to the earlier summary's dominant value when it is among the tied values, and
/// otherwise to the tied value that was seen first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Every sample added, numeric or categorical.
    count: u64,
    /// Numeric samples added.
    numeric_count: u64,
    /// Mean of the numeric samples.
    mean: f64,
    /// Σ(x − mean)² of the numeric samples.
    m2: f64,
    /// Σ(i − ī)(x − mean) of the numeric samples against their index 0..numeric_count−1.
    index_co_moment: f64,
    /// Distinct values in their string form with their counts, in order of first appearance.
    values: Vec<(String, u64)>,
    /// Samples whose value arrived after `values` was full and was not already in it.
    overflow_count: u64,
    /// Index into `values` of the dominant value.
    dominant: Option<u32>,
    /// True once the summary held numeric samples with more than
    /// [`MAX_TRACKED_NUMERIC_VALUES`] distinct values: `values` is then empty for good and the
    /// summary has no dominant value.
    values_untracked: bool,
}

impl Summary {
    /// Builds a summary of the samples in order.
    pub fn of(samples: &[Sample]) -> Self {
        let mut summary = Self::default();
        for sample in samples {
            summary.push(sample);
        }
        summary
    }

    /// Adds one sample after every sample already added.
    pub fn push(&mut self, sample: &Sample) {
        self.count += 1;
        if let Sample::Number(x) = sample {
            self.push_number(*x);
        }
        if self.values_untracked {
            return;
        }
        match sample {
            Sample::Number(x) => self.count_value(super::rules::number_string(*x)),
            Sample::Category(text) => self.count_value_ref(text),
        }
        self.untrack_values_if_numeric_and_wide();
    }

    /// Appends `later`, whose samples all come after this summary's.
    pub fn merge(&mut self, later: &Summary) {
        if later.count == 0 {
            return;
        }
        self.merge_moments(later);
        self.count += later.count;
        if self.values_untracked || later.values_untracked {
            self.untrack_values();
            return;
        }
        self.overflow_count += later.overflow_count;
        let slots = self.slots_of(&later.values);
        for ((value, count), slot) in later.values.iter().zip(slots) {
            self.add_count(value, *count, slot);
        }
        self.dominant = self.merged_dominant();
        self.untrack_values_if_numeric_and_wide();
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Builds a baseline, or `None` below the minimum of 24 samples. A summary with any
    /// categorical sample is categorical: its mean, standard deviation and slope are 0.
    pub fn to_baseline(&self, computed_at: Timestamp) -> Option<Baseline> {
        if self.count < MIN_BASELINE_SAMPLES {
            return None;
        }
        let numeric = self.numeric_count == self.count;
        let (dominant_value, dominant_ratio) = match self.dominant {
            Some(slot) => {
                let (value, count) = &self.values[slot as usize];
                (Some(value.clone()), Some(*count as f64 / self.count as f64))
            }
            None => (None, None),
        };
        Some(Baseline {
            mean: if numeric { self.mean } else { 0.0 },
            std_dev: if numeric { self.std_dev() } else { 0.0 },
            slope: if numeric { self.slope() } else { 0.0 },
            sample_count: self.count,
            computed_at,
            dominant_value,
            dominant_ratio,
        })
    }

    /// Population standard deviation of the numeric samples.
    pub fn std_dev(&self) -> f64 {
        if self.numeric_count < 2 {
            return 0.0;
        }
        (self.m2.max(0.0) / self.numeric_count as f64).sqrt()
    }

    /// Least-squares slope of the numeric samples against their index.
    pub fn slope(&self) -> f64 {
        if self.numeric_count < 2 {
            return 0.0;
        }
        self.index_co_moment / index_sum_of_squares(self.numeric_count)
    }

    fn push_number(&mut self, x: f64) {
        let n_before = self.numeric_count as f64;
        let n = n_before + 1.0;
        let delta = x - self.mean;
        self.mean += delta / n;
        self.m2 += delta * (x - self.mean);
        // The new index lies n/2 above the old index mean, so the co-moment grows by
        // n_before · 1 / n · (n / 2) · delta.
        self.index_co_moment += n_before / 2.0 * delta;
        self.numeric_count += 1;
    }

    fn merge_moments(&mut self, later: &Summary) {
        if later.numeric_count == 0 {
            return;
        }
        let na = self.numeric_count as f64;
        let nb = later.numeric_count as f64;
        let n = na + nb;
        let delta = later.mean - self.mean;
        self.mean += delta * nb / n;
        self.m2 += later.m2 + delta * delta * na * nb / n;
        // The later piece's index mean sits n/2 above this one's, so the cross term of the
        // co-moment is na·nb/n · (n/2) · delta.
        self.index_co_moment += later.index_co_moment + na * nb / 2.0 * delta;
        self.numeric_count += later.numeric_count;
    }

    fn untrack_values_if_numeric_and_wide(&mut self) {
        if self.numeric_count > 0 && self.values.len() > MAX_TRACKED_NUMERIC_VALUES {
            self.untrack_values();
        }
    }

    fn untrack_values(&mut self) {
        self.values = Vec::new();
        self.overflow_count = 0;
        self.dominant = None;
        self.values_untracked = true;
    }

    fn count_value(&mut self, text: String) {
        if let Some(slot) = self.values.iter().position(|(v, _)| *v == text) {
            self.bump(slot, 1);
        } else {
            self.insert_value(text, 1);
        }
    }

    fn count_value_ref(&mut self, text: &str) {
        if let Some(slot) = self.values.iter().position(|(v, _)| v == text) {
            self.bump(slot, 1);
        } else {
            self.insert_value(text.to_owned(), 1);
        }
    }

    /// Finds the slot of each of `values` in this summary's table. A hash index replaces the
    /// linear scans, which cost up to 64 × 64 string comparisons per merge on numeric data.
    fn slots_of(&self, values: &[(String, u64)]) -> Vec<Option<usize>> {
        let index: HashMap<&str, usize> = self
            .values
            .iter()
            .enumerate()
            .map(|(slot, (value, _))| (value.as_str(), slot))
            .collect();
        values
            .iter()
            .map(|(value, _)| index.get(value.as_str()).copied())
            .collect()
    }

    /// Adds `count` occurrences of `text`, found at `slot` or new, during a merge without
    /// updating the dominant value.
    fn add_count(&mut self, text: &str, count: u64, slot: Option<usize>) {
        if let Some(slot) = slot {
            self.values[slot].1 += count;
        } else if self.values.len() < MAX_TRACKED_VALUES {
            self.values.push((text.to_owned(), count));
        } else {
            self.overflow_count += count;
        }
    }

    fn insert_value(&mut self, text: String, count: u64) {
        if self.values.len() >= MAX_TRACKED_VALUES {
            self.overflow_count += count;
            return;
        }
        self.values.push((text, 0));
        self.bump(self.values.len() - 1, count);
    }

    fn bump(&mut self, slot: usize, count: u64) {
        self.values[slot].1 += count;
        let best = self.dominant.map(|d| self.values[d as usize].1);
        if best.is_none_or(|max| self.values[slot].1 > max) {
            self.dominant = Some(to_slot(slot));
        }
    }

    fn merged_dominant(&self) -> Option<u32> {
        let max = self.values.iter().map(|(_, c)| *c).max()?;
        if let Some(d) = self.dominant
            && self.values[d as usize].1 == max
        {
            return Some(d);
        }
        let slot = self.values.iter().position(|(_, c)| *c == max)?;
        Some(to_slot(slot))
    }
}

fn to_slot(slot: usize) -> u32 {
    u32::try_from(slot).expect("value slots are bounded by MAX_TRACKED_VALUES")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
        (actual - expected).abs() <= tolerance
    }

    #[test]
    fn mean_cases() {
        let cases: &[(&[f64], f64)] = &[
            (&[2.0, 4.0, 6.0, 8.0], 5.0),
            (&[1.0, 1.0, 1.0, 1.0], 1.0),
            (&[], 0.0),
            (&[-1.5, 2.5, 0.0], 1.0 / 3.0),
            (&[-10.0, -20.0, -30.0], -20.0),
        ];
        for (values, expected) in cases {
            assert!(close(mean(values), *expected, 1e-5), "mean of {values:?}");
        }
    }

    #[test]
    fn std_dev_cases() {
        let cases: &[(&[f64], f64)] = &[
            (&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0], 2.0),
            (&[0.0, 2.0, 4.0], 1.63299),
            (&[5.0], 0.0),
            (&[], 0.0),
        ];
        for (values, expected) in cases {
            assert!(close(std_dev(values), *expected, 1e-5), "σ of {values:?}");
        }
    }

    #[test]
    fn slope_cases() {
        let cases: &[(&[f64], f64)] = &[
            (&[0.0, 2.0, 4.0, 6.0, 8.0], 2.0),
            (&[10.0, 8.0, 6.0, 4.0], -2.0),
            (&[3.0, 3.0, 3.0], 0.0),
            (&[1.0, 3.0, 2.0, 4.0, 5.0], 0.9),
            (&[7.0], 0.0),
            (&[], 0.0),
        ];
        for (values, expected) in cases {
            assert!(close(slope(values), *expected, 1e-9), "slope of {values:?}");
        }
    }

    #[test]
    fn dominance_cases() {
        let words = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        let cases: &[(&str, Option<(&str, f64)>)] = &[
            (
                "success success error success timeout",
                Some(("success", 0.6)),
            ),
            ("true true false", Some(("true", 2.0 / 3.0))),
            ("a b a b", Some(("a", 0.5))),
            ("b a a b", Some(("a", 0.5))),
        ];
        for (input, expected) in cases {
            let found = dominance(&words(input));
            let found = found.as_ref().map(|(v, r)| (v.as_str(), *r));
            match (found, expected) {
                (Some((value, ratio)), Some((want, share))) => {
                    assert_eq!(value, *want, "dominant of {input}");
                    assert!(close(ratio, *share, 1e-4), "share of {input}");
                }
                _ => panic!("dominance of {input}: got {found:?}, want {expected:?}"),
            }
        }
        assert_eq!(dominance::<String>(&[]), None);
    }

    #[test]
    fn dominance_tells_number_from_string() {
        let values = [
            Sample::Category("1".to_owned()),
            Sample::Number(1.0),
            Sample::Number(1.0),
        ];
        assert_eq!(dominance(&values), Some((Sample::Number(1.0), 2.0 / 3.0)));
    }

    fn numbers(values: &[f64]) -> Vec<Sample> {
        values.iter().map(|x| Sample::Number(*x)).collect()
    }

    fn categories(values: &[&str]) -> Vec<Sample> {
        values
            .iter()
            .map(|s| Sample::Category((*s).to_owned()))
            .collect()
    }

    #[test]
    fn summary_matches_direct_formulas() {
        let values: Vec<f64> = (0..30).map(|i| 100.0 + (i * 7 % 11) as f64).collect();
        let baseline = Summary::of(&numbers(&values))
            .to_baseline(Timestamp(5))
            .expect("30 samples make a baseline");
        assert!(close(baseline.mean, mean(&values), 1e-12));
        assert!(close(baseline.std_dev, std_dev(&values), 1e-12));
        assert!(close(baseline.slope, slope(&values), 1e-12));
        assert_eq!(baseline.sample_count, 30);
        assert_eq!(baseline.computed_at, Timestamp(5));
    }

    #[test]
    fn summary_yields_baseline_at_24_samples() {
        let mut summary = Summary::of(&numbers(&[1.0; 23]));
        assert_eq!(summary.to_baseline(NOW_TS), None);
        summary.push(&Sample::Number(1.0));
        assert!(summary.to_baseline(NOW_TS).is_some());
    }

    const NOW_TS: Timestamp = Timestamp(0);

    #[test]
    fn categorical_summary_has_zero_moments() {
        let mut samples = categories(&["OK"; 23]);
        samples.push(Sample::Category("ERROR".to_owned()));
        let baseline = Summary::of(&samples)
            .to_baseline(NOW_TS)
            .expect("24 samples make a baseline");
        assert_eq!(baseline.mean, 0.0);
        assert_eq!(baseline.std_dev, 0.0);
        assert_eq!(baseline.slope, 0.0);
        assert_eq!(baseline.dominant_value.as_deref(), Some("OK"));
        assert!(close(
            baseline.dominant_ratio.unwrap_or(0.0),
            23.0 / 24.0,
            1e-12
        ));
    }

    #[test]
    fn numeric_summary_counts_string_forms() {
        let mut values = vec![200.0; 20];
        values.extend([500.0; 4]);
        let baseline = Summary::of(&numbers(&values))
            .to_baseline(NOW_TS)
            .expect("24 samples make a baseline");
        assert_eq!(baseline.dominant_value.as_deref(), Some("200"));
        assert!(close(
            baseline.dominant_ratio.unwrap_or(0.0),
            20.0 / 24.0,
            1e-12
        ));
    }

    #[test]
    fn overflow_values_count_but_never_dominate() {
        let mut samples: Vec<Sample> = (0..MAX_TRACKED_VALUES)
            .map(|i| Sample::Category(i.to_string()))
            .collect();
        samples.extend(std::iter::repeat_n(Sample::Category("late".to_owned()), 10));
        let summary = Summary::of(&samples);
        assert_eq!(summary.values.len(), MAX_TRACKED_VALUES);
        assert_eq!(summary.overflow_count, 10);
        let baseline = summary
            .to_baseline(NOW_TS)
            .expect("74 samples make a baseline");
        assert_eq!(baseline.dominant_value.as_deref(), Some("0"));
        assert!(close(
            baseline.dominant_ratio.unwrap_or(0.0),
            1.0 / 74.0,
            1e-12
        ));
        assert_eq!(baseline.sample_count, 74);
    }

    #[test]
    fn merge_keeps_tracked_values_bounded() {
        let first: Vec<Sample> = (0..60).map(|i| Sample::Category(i.to_string())).collect();
        let second: Vec<Sample> = (100..110)
            .map(|i| Sample::Category(i.to_string()))
            .collect();
        let mut merged = Summary::of(&first);
        merged.merge(&Summary::of(&second));
        assert_eq!(merged.values.len(), MAX_TRACKED_VALUES);
        assert_eq!(merged.overflow_count, 6);
        assert_eq!(merged.count(), 70);
    }

    #[test]
    fn merge_tie_prefers_earlier_dominant() {
        let mut merged = Summary::of(&categories(&["a", "a", "b"]));
        merged.merge(&Summary::of(&categories(&["b", "c"])));
        let slot = merged.dominant.expect("a dominant value exists") as usize;
        assert_eq!(merged.values[slot].0, "a");
    }

    #[test]
    fn merge_tie_without_earlier_dominant_takes_first_seen() {
        let mut merged = Summary::of(&categories(&["a", "b", "c"]));
        merged.merge(&Summary::of(&categories(&["c", "b", "b", "c"])));
        let slot = merged.dominant.expect("a dominant value exists") as usize;
        assert_eq!(merged.values[slot].0, "b");
    }

    #[test]
    fn merge_with_empty_changes_nothing() {
        let summary = Summary::of(&numbers(&[1.0, 2.0, 4.0]));
        let mut merged = summary.clone();
        merged.merge(&Summary::default());
        assert_eq!(merged, summary);
        let mut from_empty = Summary::default();
        from_empty.merge(&summary);
        assert_eq!(from_empty, summary);
    }

    #[test]
    fn summary_round_trips_through_postcard_and_json() {
        let mut samples = numbers(&[1.5, 2.5, 2.5]);
        samples.extend(categories(&["x"]));
        let summary = Summary::of(&samples);
        let bytes = postcard::to_stdvec(&summary).expect("summary encodes");
        let decoded: Summary = postcard::from_bytes(&bytes).expect("summary decodes");
        assert_eq!(decoded, summary);
        let json = serde_json::to_string(&summary).expect("summary encodes as json");
        let decoded: Summary = serde_json::from_str(&json).expect("summary decodes from json");
        assert_eq!(decoded, summary);
    }

    #[test]
    fn wide_numeric_summary_drops_value_counts() {
        let samples: Vec<Sample> = (0..100).map(|i| Sample::Number(f64::from(i))).collect();
        let pushed = Summary::of(&samples);
        let mut merged = Summary::of(&samples[..10]);
        merged.merge(&Summary::of(&samples[10..]));
        let baseline = pushed.to_baseline(Timestamp(0)).expect("100 samples");
        assert_eq!(baseline.dominant_value, None);
        assert!(pushed.values.is_empty());
        assert_eq!(merged.to_baseline(Timestamp(0)), Some(baseline));
    }

    #[test]
    fn narrow_numeric_summary_keeps_dominant_value() {
        let samples: Vec<Sample> = (0..30)
            .map(|i| Sample::Number(if i % 10 == 0 { 503.0 } else { 200.0 }))
            .collect();
        let baseline = Summary::of(&samples)
            .to_baseline(Timestamp(0))
            .expect("30 samples");
        assert_eq!(baseline.dominant_value.as_deref(), Some("200"));
        assert_eq!(baseline.dominant_ratio, Some(0.9));
    }
}
