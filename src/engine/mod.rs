//! The pure detection engine: baseline statistics, the spike, dominance and drift rules, effective
//! settings with the layer each value came from, and the spike and drift state machines.
//!
//! Nothing here performs I/O or reads the wall clock: every function takes the values and the
//! event time it needs, so the live service and `anomalyd replay` reach identical results.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod catalogue;
mod close;
mod drift;
#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod proptests;
mod rules;
mod settings;
mod spike;
mod stats;

pub use catalogue::{Catalogue, CatalogueError, CollectorSchema, FieldAnnotations};
pub use close::close_row;
pub use drift::{DRIFT_CONFIRMATION_THRESHOLD, STABLE_DRIFT_RUN_COUNT, step_drift};
pub use rules::{
    DOMINANCE_BASE_SHARE, DOMINANCE_MAX_SHARE, MAX_SAMPLE_MAGNITUDE, SIGMA_MULTIPLIER, Triggers,
    classify, detect_drift, drift_band, evaluate, floor_distance, is_dominance_flip, is_spike,
    passes_floors, spike_band, thresholds,
};
pub use settings::{BaselineWindow, defaults, resolve};
pub use spike::{
    REACTIVATION_RELATIVE_CHANGE, SETTLED_RELATIVE_BAND, SETTLED_SAMPLE_COUNT, has_settled,
    is_flat_drift, moved_since_suppression, push_recent_sample, step_spike,
};
pub use stats::{
    MAX_TRACKED_VALUES, MAX_VALUE_KEY_BYTES, MIN_BASELINE_SAMPLES, Summary, dominance, fnv1a_64,
    mean, slope, std_dev, value_key,
};

/// Smallest denominator of relative comparisons (floors, self-resolution, reactivation), so a
/// mean of 0 never divides by zero.
pub const EPSILON: f64 = f64::EPSILON;

/// Milliseconds since the Unix epoch, UTC. The engine's only notion of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }
}

/// Direction in which a field may move before the change counts as worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    HigherIsBetter,
    LowerIsBetter,
    Deviation,
    Dominance,
}

/// The two detection kinds: inline spikes and hourly drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Spike,
    Drift,
}

impl Kind {
    /// Returns the name the API and the event stream use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spike => "spike",
            Self::Drift => "drift",
        }
    }
}

/// Persisted state of an anomaly row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Suspicious,
    Anomaly,
    Recovered,
}

/// A state change as published in events; `Cleared` means a suspicious row was deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateChange {
    Suspicious,
    Anomaly,
    Recovered,
    Cleared,
}

impl StateChange {
    /// Returns the name the API and the event stream use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Suspicious => "suspicious",
            Self::Anomaly => "anomaly",
            Self::Recovered => "recovered",
            Self::Cleared => "cleared",
        }
    }
}

/// Side of the baseline an anomaly is on. Categorical flips are `Changed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RowDirection {
    Above,
    Below,
    Changed,
}

/// The declared type of a result field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FieldType {
    Number,
    String,
    Boolean,
}

/// One field value as it arrived in a result, before validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Number(f64),
    Text(String),
    Bool(bool),
    Null,
}

/// Per-field override object: every key absent means "inherit from the next layer".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldOverride {
    pub enabled: Option<bool>,
    pub direction: Option<Direction>,
    pub sensitivity: Option<f64>,
    pub confirmation_window: Option<u32>,
    pub drift_enabled: Option<bool>,
    pub drift_threshold: Option<f64>,
    pub min_absolute_delta: Option<f64>,
    pub min_relative_delta: Option<f64>,
}

/// Settings of a healthcheck template; every assignment of the template starts from these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateSettings {
    pub enabled: bool,
    pub baseline_window: BaselineWindow,
    pub notify: bool,
    /// Keyed by canonical field path `collectors.<collector id>.<field>`.
    pub field_overrides: BTreeMap<String, FieldOverride>,
}

/// Exceptions for one (system, healthcheck) assignment; absent keys inherit from the template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentSettings {
    pub enabled: Option<bool>,
    pub baseline_window: Option<BaselineWindow>,
    pub notify: Option<bool>,
    /// Keyed by canonical field path; an entry replaces the template's entry for that path whole.
    pub field_overrides: BTreeMap<String, FieldOverride>,
}

/// The `x-anomaly-*` annotations of one result field in a collector schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaField {
    pub name: String,
    pub field_type: FieldType,
    /// `x-anomaly-enabled`; a disabled field carries no direction.
    pub enabled: bool,
    pub direction: Option<Direction>,
    pub sensitivity: Option<f64>,
    pub confirmation_window: Option<u32>,
    pub drift_enabled: Option<bool>,
    pub drift_threshold: Option<f64>,
    pub min_absolute_delta: Option<f64>,
    pub min_relative_delta: Option<f64>,
    /// `x-chart-unit`, for display only.
    pub unit: Option<String>,
    /// `x-chart-label`, for display only.
    pub label: Option<String>,
}

/// Source layer of an effective setting, most specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    AssignmentFieldOverride,
    TemplateFieldOverride,
    Assignment,
    Template,
    SchemaAnnotation,
    EngineDefault,
}

/// A resolved setting together with the layer that supplied it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Resolved<T> {
    pub value: T,
    pub layer: Layer,
}

/// Every setting of one field after resolution, for display and for deriving a [`Rule`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveSettings {
    pub enabled: Resolved<bool>,
    pub direction: Resolved<Option<Direction>>,
    pub sensitivity: Resolved<f64>,
    pub confirmation_window: Resolved<u32>,
    pub drift_enabled: Resolved<bool>,
    pub drift_threshold: Resolved<f64>,
    pub min_absolute_delta: Resolved<f64>,
    pub min_relative_delta: Resolved<f64>,
    pub baseline_window: Resolved<BaselineWindow>,
    pub notify: Resolved<bool>,
}

/// The compact, validated form of [`EffectiveSettings`] the hot path evaluates against. It exists
/// only for an enabled field with a direction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub direction: Direction,
    pub sensitivity: f64,
    pub confirmation_window: u32,
    pub drift_enabled: bool,
    pub drift_threshold: f64,
    pub min_absolute_delta: f64,
    pub min_relative_delta: f64,
}

/// A learned baseline of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Baseline {
    pub mean: f64,
    pub std_dev: f64,
    /// Least-squares slope over the sample index, in field units per sample.
    pub slope: f64,
    pub sample_count: u64,
    pub computed_at: Timestamp,
    /// Most frequent value in its string form (`true`, `false`, `200`, `OK`), if any.
    pub dominant_value: Option<String>,
    /// Share of the samples equal to `dominant_value`, in 0..=1.
    pub dominant_ratio: Option<f64>,
}

/// The result of evaluating one value against a baseline and a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The value cannot be judged (NaN, infinite, null, wrong type). It changes no state.
    Invalid(InvalidReason),
    Normal {
        deviation: f64,
    },
    Anomalous {
        deviation: f64,
        direction: RowDirection,
    },
}

/// Reason a value was classified invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InvalidReason {
    NotFinite,
    Null,
    NotANumber,
    NotAString,
    /// A number larger in magnitude than [`MAX_SAMPLE_MAGNITUDE`].
    OutOfRange,
}

impl InvalidReason {
    /// Describes the reason for a client, with what to send instead.
    pub fn message(self) -> String {
        match self {
            InvalidReason::NotFinite => "the value is NaN or infinite; send a finite number".into(),
            InvalidReason::Null => "the value is null, so there is nothing to evaluate".into(),
            InvalidReason::NotANumber => {
                "the field is numeric but the value is a string or boolean; send a number".into()
            }
            InvalidReason::NotAString => {
                "the field is a string field but the value is a number; send a string".into()
            }
            InvalidReason::OutOfRange => {
                format!("the number is larger in magnitude than {MAX_SAMPLE_MAGNITUDE:e}")
            }
        }
    }
}

/// Suppression of a confirmed anomaly by an operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Suppression {
    pub at: Timestamp,
    /// The numeric observed value at suppression time, if it was numeric.
    pub value: Option<f64>,
    pub baseline: Option<f64>,
}

/// One detection episode of a series and kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Anomaly {
    pub id: u64,
    pub kind: Kind,
    pub state: State,
    pub direction: RowDirection,
    pub baseline_mean: Option<f64>,
    pub baseline_std_dev: Option<f64>,
    /// Latest observed value (spike) or window mean (drift), in its string form.
    pub observed_value: String,
    /// Distance from the baseline in standard deviations; may be +infinity for drift when σ = 0.
    pub deviation: f64,
    pub suspicious_run_count: u32,
    pub confirmation_threshold: u32,
    pub started_at: Timestamp,
    pub confirmed_at: Option<Timestamp>,
    pub recovered_at: Option<Timestamp>,
    /// Last values seen while confirmed (oldest first, at most 5), for self-resolution.
    pub recent_samples: Vec<f64>,
    /// Consecutive analyzer runs that found a confirmed drift flat.
    pub stable_drift_run_count: u32,
    /// True when the row recovered by settling at a new level rather than returning to baseline.
    pub self_resolved: bool,
    pub suppression: Option<Suppression>,
}

/// Change a state machine step makes to the stored row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowChange {
    Unchanged,
    /// A new row; its `id` is the one the caller passed to the step.
    Insert(Anomaly),
    Update(Anomaly),
    /// The open row is deleted (a suspicious row that saw a normal value).
    Delete,
}

/// Notification a transition requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotificationKind {
    Confirmed,
    Recovered,
    DriftConfirmed,
    DriftRecovered,
}

/// Everything one state machine step decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub row: RowChange,
    pub state_change: Option<StateChange>,
    /// The caller drops it when the field's effective `notify` is off; the row change and the
    /// state change still apply.
    pub notification: Option<NotificationKind>,
}

/// A validated sample: a finite number, or a category in its string form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Sample {
    Number(f64),
    Category(String),
}

/// Drift reading of one baseline. It is always computed, and `drifting` tells whether it fires.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftReading {
    pub drifting: bool,
    /// slope × sample count: the change across the baseline window.
    pub projected_change: f64,
    /// |projected change| / σ; +infinity when σ = 0 and the slope is not.
    pub deviation_sigmas: f64,
    pub direction: RowDirection,
}

/// Inputs of one spike state machine step besides the open row and the outcome.
#[derive(Debug, Clone, Copy)]
pub struct SpikeContext<'a> {
    pub baseline: &'a Baseline,
    pub rule: &'a Rule,
    /// The value that was evaluated, for observed value, self-resolution and reactivation.
    pub value: &'a Value,
    pub now: Timestamp,
    /// Id given to a row this step inserts.
    pub new_id: u64,
    /// When the series' last spike row recovered by self-resolution; no new row opens until a
    /// baseline computed after that time exists.
    pub last_self_resolution: Option<Timestamp>,
}

/// Errors of settings validation; each names the key, the value and what is allowed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

#[cfg(test)]
mod tests {
    use super::{Kind, StateChange};

    #[test]
    fn as_str_matches_serde_names() {
        for kind in [Kind::Spike, Kind::Drift] {
            let json = serde_json::to_value(kind).expect("serialize kind");
            assert_eq!(json, kind.as_str());
        }
        for change in [
            StateChange::Suspicious,
            StateChange::Anomaly,
            StateChange::Recovered,
            StateChange::Cleared,
        ] {
            let json = serde_json::to_value(change).expect("serialize state change");
            assert_eq!(json, change.as_str());
        }
    }
}
