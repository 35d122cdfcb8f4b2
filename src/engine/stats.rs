//! Baseline statistics: the direct formulas (mean, population standard deviation, slope over the
//! sample index, dominant value) and the mergeable [`Summary`] that reproduces them from per-hour
//! pieces.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{Baseline, Sample, Timestamp};

/// Minimum number of samples a baseline (and a drift test) needs.
pub const MIN_BASELINE_SAMPLES: u64 = 24;

/// Maximum number of distinct values one [`Summary`] counts individually.
pub const MAX_TRACKED_VALUES: usize = 64;

/// Maximum number of distinct values a [`Summary`] with numeric samples counts. A numeric field
/// with more distinct values than this in an hour (a latency, a byte count) has no meaningful
/// dominant value, so its hourly summaries stop counting values and stay small.
pub const MAX_TRACKED_NUMERIC_VALUES: usize = 16;

/// Maximum length in bytes of a value that a [`Summary`] counts under its own string form.
pub const MAX_VALUE_KEY_BYTES: usize = 256;

/// Maximum length in bytes of the prefix a longer value keeps in its key.
const VALUE_KEY_PREFIX_BYTES: usize = 200;

/// Returns the key a value's string form is counted and compared under.
///
/// A string of at most [`MAX_VALUE_KEY_BYTES`] bytes is its own key. A longer one becomes its
/// first bytes, cut at a char boundary at or before byte 200, then `…`, then the 64-bit FNV-1a
/// hash of the whole string in 16 lowercase hex digits. A key is therefore at most 219 bytes,
/// and is its own key again. Two long values share a key only when their first 200 bytes match
/// and their hashes collide. The hash is fixed by its definition, so keys stay the same across
/// versions and platforms.
pub fn value_key(text: &str) -> Cow<'_, str> {
    if text.len() <= MAX_VALUE_KEY_BYTES {
        return Cow::Borrowed(text);
    }
    let cut = (0..=VALUE_KEY_PREFIX_BYTES)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    let hash = fnv1a_64(text.as_bytes());
    Cow::Owned(format!("{}…{hash:016x}", &text[..cut]))
}

/// Returns the [`value_key`] of an owned string, reusing the string when it is its own key.
fn into_value_key(text: String) -> String {
    if let Cow::Owned(key) = value_key(&text) {
        return key;
    }
    text
}

/// Returns the 64-bit FNV-1a hash of `bytes`, which stays the same across builds and
/// platforms, so it may be stored.
pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}

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
/// Value counts cover every sample by the [`value_key`] of its string form (`200`, `true`,
/// `OK`), so a numeric field judged by dominance still has a dominant value, and a long value
/// costs at most 219 bytes of the table.
///
/// Value counts are bounded by [`MAX_TRACKED_VALUES`] distinct values. Pushing counts the first
/// ones one by one, and any later new value only increments `overflow_count`. Merging keeps the
/// most frequent values of both tables, ties going to the value seen first, and moves the counts
/// of the rest into `overflow_count`. Overflow samples still count toward the total, so they
/// lower every share, but an overflow value can never become dominant.
///
/// A summary with numeric samples is bounded by [`MAX_TRACKED_NUMERIC_VALUES`] instead. Pushing
/// a new value past that bound drops the value counts for good, and the summary then has no
/// dominant value, so per-hour summaries of a latency field stay small. Merging keeps the most
/// frequent values up to the bound as above, so a status code field with a few rare codes over a
/// week keeps its dominant value. A merge with a piece that had dropped its value counts drops
/// the merged ones too, because that piece's counts are unknown.
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
            Sample::Number(x) => {
                self.count_owned_value(into_value_key(super::rules::number_string(*x)))
            }
            Sample::Category(text) => self.count_value(&value_key(text)),
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
        self.merge_values(later);
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

    /// Returns the maximum number of distinct values this summary counts.
    fn value_cap(&self) -> usize {
        if self.numeric_count > 0 {
            MAX_TRACKED_NUMERIC_VALUES
        } else {
            MAX_TRACKED_VALUES
        }
    }

    /// Adds the value counts of `later`, keeps the most frequent values up to the cap and picks
    /// the dominant value. Values of `later` are keyed again, so a summary stored before values
    /// were keyed merges its long values with their keyed counts.
    fn merge_values(&mut self, later: &Summary) {
        self.overflow_count += later.overflow_count;
        let keys: Vec<Cow<'_, str>> = later.values.iter().map(|(v, _)| value_key(v)).collect();
        let slots = self.slots_of(&keys);
        for ((key, (_, count)), slot) in keys.into_iter().zip(&later.values).zip(slots) {
            match slot {
                Some(slot) => self.values[slot].1 += count,
                None => self.values.push((key.into_owned(), *count)),
            }
        }
        self.keep_most_frequent(self.value_cap());
        self.dominant = self.merged_dominant();
    }

    /// Keeps the `cap` most frequent values in their order of first appearance and moves the
    /// counts of the rest into `overflow_count`. Among equal counts the value seen first stays.
    fn keep_most_frequent(&mut self, cap: usize) {
        if self.values.len() <= cap {
            return;
        }
        let mut by_frequency: Vec<usize> = (0..self.values.len()).collect();
        by_frequency.sort_by(|a, b| self.values[*b].1.cmp(&self.values[*a].1).then(a.cmp(b)));
        let mut is_retained = vec![false; self.values.len()];
        for slot in &by_frequency[..cap] {
            is_retained[*slot] = true;
        }
        let dominant = self.dominant.map(|d| d as usize);
        self.dominant = None;
        let mut values = Vec::with_capacity(cap);
        for (slot, entry) in std::mem::take(&mut self.values).into_iter().enumerate() {
            if !is_retained[slot] {
                self.overflow_count += entry.1;
                continue;
            }
            if dominant == Some(slot) {
                self.dominant = Some(to_slot(values.len()));
            }
            values.push(entry);
        }
        self.values = values;
    }

    fn untrack_values(&mut self) {
        self.values = Vec::new();
        self.overflow_count = 0;
        self.dominant = None;
        self.values_untracked = true;
    }

    /// Counts `text`, moving it into the table when it is new.
    fn count_owned_value(&mut self, text: String) {
        if let Some(slot) = self.values.iter().position(|(v, _)| *v == text) {
            self.bump(slot, 1);
        } else {
            self.insert_value(text, 1);
        }
    }

    fn count_value(&mut self, text: &str) {
        if let Some(slot) = self.values.iter().position(|(v, _)| v == text) {
            self.bump(slot, 1);
        } else {
            self.insert_value(text.to_owned(), 1);
        }
    }

    /// Finds the slot of each of `keys` in this summary's table. A hash index replaces the
    /// linear scans, which cost up to 64 × 64 string comparisons per merge.
    fn slots_of(&self, keys: &[Cow<'_, str>]) -> Vec<Option<usize>> {
        let index: HashMap<&str, usize> = self
            .values
            .iter()
            .enumerate()
            .map(|(slot, (value, _))| (value.as_str(), slot))
            .collect();
        keys.iter()
            .map(|key| index.get(key.as_ref()).copied())
            .collect()
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

    #[test]
    fn fnv1a_64_reference_values() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn value_key_cases() {
        let at_limit = "x".repeat(MAX_VALUE_KEY_BYTES);
        assert!(matches!(value_key(&at_limit), Cow::Borrowed(key) if key == at_limit));

        let long = "x".repeat(MAX_VALUE_KEY_BYTES + 1);
        let key = value_key(&long);
        let expected = format!("{}…{:016x}", "x".repeat(200), fnv1a_64(long.as_bytes()));
        assert_eq!(key, expected);
        assert_eq!(key.len(), 219);
        assert_eq!(value_key(&key), key, "a key is its own key");

        // 'é' is two bytes, so byte 200 is a char boundary, and after one leading 'a' it is not.
        let accents = "é".repeat(150);
        assert!(value_key(&accents).starts_with(&format!("{}…", "é".repeat(100))));
        let shifted = format!("a{accents}");
        assert!(value_key(&shifted).starts_with(&format!("a{}…", "é".repeat(99))));
    }

    #[test]
    fn long_values_counted_under_bounded_keys() {
        let long = "A".repeat(64 * 1024);
        let mut other = long.clone();
        other.push('B');
        let mut samples = categories(&[long.as_str(); 30]);
        samples.push(Sample::Category(other.clone()));
        let summary = Summary::of(&samples);
        assert_eq!(summary.values.len(), 2);
        for (key, _) in &summary.values {
            assert!(
                key.len() <= MAX_VALUE_KEY_BYTES,
                "key of {} bytes",
                key.len()
            );
        }
        let baseline = summary.to_baseline(NOW_TS).expect("31 samples");
        assert_eq!(baseline.dominant_value, Some(value_key(&long).into_owned()));
        assert_eq!(baseline.dominant_ratio, Some(30.0 / 31.0));
        assert_ne!(value_key(&long), value_key(&other));
    }

    #[test]
    fn merge_rekeys_old_long_values() {
        let long = "A".repeat(1000);
        let mut stored = Summary::of(&categories(&["OK"]));
        stored.values = vec![(long.clone(), 20)];
        stored.count = 20;
        stored.dominant = Some(0);
        let mut merged = Summary::default();
        merged.merge(&stored);
        merged.merge(&Summary::of(&categories(&[long.as_str(); 10])));
        assert_eq!(merged.values, vec![(value_key(&long).into_owned(), 30)]);
    }

    /// 24 hours of 20 × status 200 plus one code seen in no other hour: 25 distinct numbers.
    fn status_code_hours() -> Vec<Summary> {
        (0..24)
            .map(|hour| {
                let mut codes = vec![200.0; 20];
                codes.push(f64::from(400 + hour));
                Summary::of(&numbers(&codes))
            })
            .collect()
    }

    #[test]
    fn merge_keeps_dominant_status_code() {
        let mut merged = Summary::default();
        for hour in &status_code_hours() {
            merged.merge(hour);
        }
        assert_eq!(merged.values.len(), MAX_TRACKED_NUMERIC_VALUES);
        assert_eq!(merged.overflow_count, 24 - 15);
        let baseline = merged.to_baseline(NOW_TS).expect("504 samples");
        assert_eq!(baseline.dominant_value.as_deref(), Some("200"));
        assert_eq!(baseline.dominant_ratio, Some(480.0 / 504.0));
        assert_eq!(baseline.sample_count, 504);
    }

    #[test]
    fn keep_most_frequent_ties_first_seen() {
        // Counts 1, 3, 2, 3 against a cap of 2: both 3s stay, in the order first seen.
        let mut merged = Summary::of(&categories(&["a", "b", "b", "b"]));
        merged.merge(&Summary::of(&categories(&["c", "c", "d", "d", "d"])));
        merged.keep_most_frequent(2);
        assert_eq!(
            merged.values,
            vec![("b".to_owned(), 3), ("d".to_owned(), 3)]
        );
        assert_eq!(merged.overflow_count, 3);
        let slot = merged.dominant.expect("a dominant value exists") as usize;
        assert_eq!(merged.values[slot].0, "b");
    }

    #[test]
    fn merge_keeps_frequent_categorical_value() {
        let rare: Vec<String> = (0..MAX_TRACKED_VALUES)
            .map(|i| format!("rare-{i}"))
            .collect();
        let rare: Vec<&str> = rare.iter().map(String::as_str).collect();
        let mut merged = Summary::of(&categories(&rare));
        merged.merge(&Summary::of(&categories(&["OK"; 100])));
        let baseline = merged.to_baseline(NOW_TS).expect("164 samples");
        assert_eq!(baseline.dominant_value.as_deref(), Some("OK"));
        assert_eq!(merged.values.len(), MAX_TRACKED_VALUES);
        assert_eq!(merged.overflow_count, 1);
    }

    #[test]
    fn merge_with_untracked_piece_drops_value_counts() {
        let hours = status_code_hours();
        let wide: Vec<f64> = (0..30).map(f64::from).collect();
        let mut merged = Summary::default();
        merged.merge(&hours[0]);
        merged.merge(&Summary::of(&numbers(&wide)));
        merged.merge(&hours[1]);
        let baseline = merged.to_baseline(NOW_TS).expect("72 samples");
        assert_eq!(baseline.dominant_value, None);
        assert!(merged.values.is_empty());
    }
}
