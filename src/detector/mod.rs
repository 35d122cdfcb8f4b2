//! The store-free detection pipeline: per-series baselines, open anomaly rows, hourly and
//! learning summaries, and the inline step every check result goes through. The live service and
//! `anomalyd replay` share it, so both produce the same anomalies from the same results.
//!
//! The detector performs no I/O. [`Detector::process`] returns one [`SeriesUpdate`] per field of a
//! result, holding everything the caller must persist in one transaction; [`Detector::restore`]
//! rebuilds the state from what was persisted, so nothing is relearned after a restart.

mod settings;
mod state;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::ConfigSnapshot;
use crate::engine::{
    self, Anomaly, Baseline, DriftReading, InvalidReason, Kind, MIN_BASELINE_SAMPLES, Rule,
    SchemaField, State, Summary, Timestamp, Transition, Value,
};
use crate::series::{CheckResult, FieldValue, SeriesKey, Status};

pub use settings::{effective_settings, schema_field, split_field_path};
pub use state::{HourSummary, LastSample, RowStep};

use state::SeriesState;

/// Treatment of one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "status", content = "reason")]
pub enum SampleStatus {
    /// Healthy and valid: added to the summaries and, with a rule and a baseline, evaluated.
    Valid,
    /// Healthy but unusable for its field (NaN, null, wrong type): only counted.
    Invalid(InvalidReason),
    /// From an unhealthy run: recorded as the last value, never evaluated or summarised.
    Unhealthy,
}

/// Everything one sample changed, for the caller to persist in a single transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesUpdate {
    pub key: SeriesKey,
    pub at: Timestamp,
    /// The raw value as it arrived.
    pub value: Value,
    pub status: SampleStatus,
    /// The running summary of the sample's hour after the sample; `None` unless it changed.
    pub hour: Option<HourSummary>,
    /// The learning summary after the sample while the series has no baseline. `None` when it
    /// did not change or a baseline now exists, so the stored learning summary can go.
    pub learning: Option<Summary>,
    /// Invalid samples of the series so far, this one included.
    pub invalid_samples: u64,
    /// A baseline learned at once because this sample was the 24th without one.
    pub baseline: Option<Baseline>,
    /// The spike step, when the field has a rule and a baseline.
    pub spike: Option<RowStep>,
}

impl SeriesUpdate {
    /// Returns the spike transition, if the sample was evaluated.
    pub fn transition(&self) -> Option<&Transition> {
        self.spike.as_ref().map(|step| &step.transition)
    }

    /// Returns the anomaly row the spike step wrote or deleted.
    pub fn anomaly(&self) -> Option<&Anomaly> {
        self.spike.as_ref()?.anomaly.as_ref()
    }
}

/// The persisted state of one series, as the store loads it at start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesSnapshot {
    pub baseline: Option<Baseline>,
    /// The open (suspicious or anomaly) spike row.
    pub spike_row: Option<Anomaly>,
    /// The open (suspicious or anomaly) drift row.
    pub drift_row: Option<Anomaly>,
    /// When the last spike row recovered by settling at a new level.
    pub last_self_resolution: Option<Timestamp>,
    /// The most recent hourly summary.
    pub hour: Option<HourSummary>,
    /// Ignored when `baseline` is present.
    pub learning: Option<Summary>,
    pub last: Option<LastSample>,
    pub invalid_samples: u64,
}

/// Learning progress of a series without a baseline, for example 17 of 24 samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LearningProgress {
    pub samples: u64,
    pub required: u64,
}

/// An open row of one series.
#[derive(Debug, Clone, Copy)]
pub struct OpenRow<'a> {
    pub key: &'a SeriesKey,
    pub row: &'a Anomaly,
}

/// Per-series detection state for every series seen or restored.
#[derive(Debug, Clone, Default)]
pub struct Detector {
    series: BTreeMap<SeriesKey, SeriesState>,
}

impl Detector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the detector from persisted series state.
    pub fn restore(series: impl IntoIterator<Item = (SeriesKey, SeriesSnapshot)>) -> Self {
        let series = series
            .into_iter()
            .map(|(key, snapshot)| (key, SeriesState::from(snapshot)))
            .collect();
        Self { series }
    }

    /// Returns the state of one series in the form [`Detector::restore`] takes.
    pub fn snapshot(&self, key: &SeriesKey) -> Option<SeriesSnapshot> {
        self.series.get(key).map(SeriesSnapshot::from)
    }

    /// Processes one check result: every field is a sample of its own series.
    ///
    /// `ids` is called once for every anomaly row the step inserts and must return unique ids.
    pub fn process(
        &mut self,
        result: &CheckResult,
        config: &ConfigSnapshot,
        ids: &mut dyn FnMut() -> u64,
    ) -> Vec<SeriesUpdate> {
        result
            .fields
            .iter()
            .map(|field| self.process_field(result, field, config, ids))
            .collect()
    }

    fn process_field(
        &mut self,
        result: &CheckResult,
        field: &FieldValue,
        config: &ConfigSnapshot,
        ids: &mut dyn FnMut() -> u64,
    ) -> SeriesUpdate {
        let key = result.series_key(field);
        let state = self.series.entry(key.clone()).or_default();
        let mut update = SeriesUpdate {
            key,
            at: result.timestamp,
            value: field.value.clone(),
            status: SampleStatus::Unhealthy,
            hour: None,
            learning: None,
            invalid_samples: state.invalid_samples,
            baseline: None,
            spike: None,
        };
        if result.status == Status::Unhealthy {
            keep_latest(&mut state.last, last_sample(&update, false));
            return update;
        }

        let schema = config.schema_field(&field.collector_id, &field.field);
        let settings = settings::resolve_with_schema(config, &update.key, schema);
        let field_type = schema.map(|schema: &SchemaField| schema.field_type);
        let sample = match engine::classify(&field.value, field_type, settings.direction.value) {
            Ok(sample) => sample,
            Err(reason) => {
                state.invalid_samples += 1;
                update.invalid_samples = state.invalid_samples;
                update.status = SampleStatus::Invalid(reason);
                tracing::debug!(series = ?update.key, ?reason, "invalid sample counted");
                return update;
            }
        };

        update.status = SampleStatus::Valid;
        keep_latest(&mut state.last, last_sample(&update, true));
        update.hour = Some(state.add_to_hour(&sample, update.at).clone());
        update.baseline = state.learn(&sample, update.at);
        update.learning = state.learning.as_deref().cloned();
        // The sample that completes the learning set is part of its baseline, so evaluation
        // starts with the next one.
        if update.baseline.is_none() {
            update.spike = settings
                .rule()
                .and_then(|rule| state.step_spike(&field.value, &rule, update.at, ids));
        }
        log_spike_change(&update);
        update
    }

    /// Installs a baseline computed by the analyzer; the series stops learning.
    pub fn set_baseline(&mut self, key: &SeriesKey, baseline: Baseline) {
        self.state_mut(key).install_baseline(baseline);
    }

    /// Steps the drift state machine of a series with a freshly computed baseline.
    pub(crate) fn step_drift(
        &mut self,
        key: &SeriesKey,
        baseline: &Baseline,
        rule: &Rule,
        now: Timestamp,
        ids: &mut dyn FnMut() -> u64,
    ) -> (DriftReading, RowStep) {
        self.state_mut(key).step_drift(baseline, rule, now, ids)
    }

    /// Closes an open row of a series that no step will reach again, because its field lost its
    /// rule or the series went silent. Returns the step, or `None` when the series has no open
    /// row of that kind.
    pub(crate) fn close_row(
        &mut self,
        key: &SeriesKey,
        kind: Kind,
        now: Timestamp,
    ) -> Option<RowStep> {
        self.series.get_mut(key)?.close_row(kind, now)
    }

    /// Replaces an open spike or drift row with an updated copy of the same id, for example after
    /// an operator suppressed it. A copy that is no longer open leaves the slot empty. Returns
    /// false, changing nothing, when the series has no open row with that id.
    pub fn replace_open_row(&mut self, key: &SeriesKey, row: Anomaly) -> bool {
        let Some(state) = self.series.get_mut(key) else {
            return false;
        };
        let slot = state.row_slot(row.kind);
        if slot.as_ref().is_none_or(|open| open.id != row.id) {
            return false;
        }
        *slot = (row.state != State::Recovered).then(|| Box::new(row));
        true
    }

    /// Forgets a series, for example when retention found it stale or its system was deleted.
    pub fn remove(&mut self, key: &SeriesKey) -> bool {
        self.series.remove(key).is_some()
    }

    /// Iterates over every known series key, in key order.
    pub fn series(&self) -> impl Iterator<Item = &SeriesKey> {
        self.series.keys()
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Iterates over every open spike and drift row.
    pub fn open_rows(&self) -> impl Iterator<Item = OpenRow<'_>> {
        self.series.iter().flat_map(|(key, state)| {
            [state.spike_row.as_deref(), state.drift_row.as_deref()]
                .into_iter()
                .flatten()
                .map(move |row| OpenRow { key, row })
        })
    }

    pub fn baseline(&self, key: &SeriesKey) -> Option<&Baseline> {
        self.series.get(key)?.baseline.as_ref()
    }

    pub fn last_sample(&self, key: &SeriesKey) -> Option<&LastSample> {
        self.series.get(key)?.last.as_ref()
    }

    pub fn invalid_samples(&self, key: &SeriesKey) -> u64 {
        self.series
            .get(key)
            .map_or(0, |state| state.invalid_samples)
    }

    pub fn hour_summary(&self, key: &SeriesKey) -> Option<&HourSummary> {
        self.series.get(key)?.hour.as_ref()
    }

    /// Returns how far a series without a baseline has come; `None` once it has one or when
    /// the series is unknown.
    pub fn learning_progress(&self, key: &SeriesKey) -> Option<LearningProgress> {
        let state = self.series.get(key)?;
        if state.baseline.is_some() {
            return None;
        }
        let samples = state.learning.as_ref().map_or(0, |summary| summary.count());
        Some(LearningProgress {
            samples,
            required: MIN_BASELINE_SAMPLES,
        })
    }

    fn state_mut(&mut self, key: &SeriesKey) -> &mut SeriesState {
        if !self.series.contains_key(key) {
            self.series.insert(key.clone(), SeriesState::default());
        }
        self.series
            .get_mut(key)
            .expect("the series was inserted just above")
    }
}

fn last_sample(update: &SeriesUpdate, healthy: bool) -> LastSample {
    LastSample {
        value: update.value.clone(),
        at: update.at,
        healthy,
    }
}

/// Replaces the series' last sample unless the new one is stamped earlier, so a late arrival
/// never shows as the latest value.
fn keep_latest(last: &mut Option<LastSample>, sample: LastSample) {
    if last.as_ref().is_none_or(|kept| kept.at <= sample.at) {
        *last = Some(sample);
    }
}

fn log_spike_change(update: &SeriesUpdate) {
    let Some(transition) = update.transition() else {
        return;
    };
    let Some(change) = transition.state_change else {
        return;
    };
    let anomaly_id = update.anomaly().map(|row| row.id);
    tracing::debug!(
        system = %update.key.system,
        healthcheck = %update.key.healthcheck,
        field = %update.key.field_path,
        anomaly_id,
        change = change.as_str(),
        "spike state changed"
    );
}

impl From<SeriesSnapshot> for SeriesState {
    fn from(snapshot: SeriesSnapshot) -> Self {
        let learning = match snapshot.baseline {
            Some(_) => None,
            None => snapshot.learning.map(Box::new),
        };
        Self {
            baseline: snapshot.baseline,
            spike_row: snapshot.spike_row.map(Box::new),
            drift_row: snapshot.drift_row.map(Box::new),
            last_self_resolution: snapshot.last_self_resolution,
            hour: snapshot.hour,
            learning,
            last: snapshot.last,
            invalid_samples: snapshot.invalid_samples,
        }
    }
}

impl From<&SeriesState> for SeriesSnapshot {
    fn from(state: &SeriesState) -> Self {
        Self {
            baseline: state.baseline.clone(),
            spike_row: state.spike_row.as_deref().cloned(),
            drift_row: state.drift_row.as_deref().cloned(),
            last_self_resolution: state.last_self_resolution,
            hour: state.hour.clone(),
            learning: state.learning.as_deref().cloned(),
            last: state.last.clone(),
            invalid_samples: state.invalid_samples,
        }
    }
}

#[cfg(test)]
mod tests;
