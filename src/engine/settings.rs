//! Effective settings: the baseline window, validation of every settings object, the engine
//! defaults and the four-layer resolution of one field's settings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{
    AssignmentSettings, Direction, EffectiveSettings, FieldOverride, Layer, Resolved, Rule,
    SchemaField, SettingsError, TemplateSettings,
};

/// Engine defaults, used when no layer sets a value.
pub mod defaults {
    pub const SENSITIVITY: f64 = 1.0;
    pub const CONFIRMATION_WINDOW: u32 = 3;
    pub const DRIFT_ENABLED: bool = true;
    pub const DRIFT_THRESHOLD: f64 = 2.0;
    pub const MIN_ABSOLUTE_DELTA: f64 = 0.0;
    pub const MIN_RELATIVE_DELTA: f64 = 0.0;
    pub const ENABLED: bool = true;
    pub const NOTIFY: bool = true;
    /// Baseline window in hours (7 days).
    pub const BASELINE_WINDOW_HOURS: u32 = 7 * 24;
    /// Largest confirmation window accepted.
    pub const MAX_CONFIRMATION_WINDOW: u32 = 100;
    /// Shortest baseline window accepted, in hours.
    pub const MIN_BASELINE_WINDOW_HOURS: u32 = 1;
    /// Longest baseline window accepted, in hours (90 days).
    pub const MAX_BASELINE_WINDOW_HOURS: u32 = 90 * 24;
}

/// Length of history a baseline is learned from, written `<n>h` or `<n>d`, from 1h to 90d.
/// It serializes as that string form in every format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BaselineWindow {
    hours: u32,
}

impl BaselineWindow {
    /// Parses `<n>h` or `<n>d` with n a positive integer, between 1h and 90d.
    pub fn parse(text: &str) -> Result<Self, SettingsError> {
        let invalid = || SettingsError::Invalid {
            key: "baselineWindow".to_owned(),
            message: format!(
                "invalid value {text:?}: write a whole number of hours or days such as \"36h\" \
                 or \"7d\", between 1h and 90d"
            ),
        };
        let (digits, hours_per_unit) = if let Some(digits) = text.strip_suffix('h') {
            (digits, 1)
        } else if let Some(digits) = text.strip_suffix('d') {
            (digits, 24)
        } else {
            return Err(invalid());
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let count: u32 = digits.parse().map_err(|_| invalid())?;
        let hours = count.checked_mul(hours_per_unit).ok_or_else(invalid)?;
        Self::from_hours(hours).ok_or_else(invalid)
    }

    /// Returns the window of `hours`, or `None` outside 1h..=90d.
    pub fn from_hours(hours: u32) -> Option<Self> {
        let range = defaults::MIN_BASELINE_WINDOW_HOURS..=defaults::MAX_BASELINE_WINDOW_HOURS;
        range.contains(&hours).then_some(Self { hours })
    }

    pub fn hours(self) -> u32 {
        self.hours
    }

    pub fn as_millis(self) -> i64 {
        i64::from(self.hours) * 3_600_000
    }
}

impl Default for BaselineWindow {
    fn default() -> Self {
        Self {
            hours: defaults::BASELINE_WINDOW_HOURS,
        }
    }
}

/// Writes whole days as `<n>d` and anything else as `<n>h`.
impl fmt::Display for BaselineWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.hours.is_multiple_of(24) {
            write!(f, "{}d", self.hours / 24)
        } else {
            write!(f, "{}h", self.hours)
        }
    }
}

impl FromStr for BaselineWindow {
    type Err = SettingsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl Serialize for BaselineWindow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BaselineWindow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Direction {
    /// Every direction name as written in settings and annotations.
    pub const NAMES: [&'static str; 4] = [
        "higher-is-better",
        "lower-is-better",
        "deviation",
        "dominance",
    ];

    /// Returns the kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Direction::HigherIsBetter => Self::NAMES[0],
            Direction::LowerIsBetter => Self::NAMES[1],
            Direction::Deviation => Self::NAMES[2],
            Direction::Dominance => Self::NAMES[3],
        }
    }

    /// Parses a direction name.
    pub fn parse(text: &str) -> Result<Self, SettingsError> {
        match text {
            "higher-is-better" => Ok(Direction::HigherIsBetter),
            "lower-is-better" => Ok(Direction::LowerIsBetter),
            "deviation" => Ok(Direction::Deviation),
            "dominance" => Ok(Direction::Dominance),
            _ => Err(SettingsError::Invalid {
                key: "direction".to_owned(),
                message: format!(
                    "invalid value {text:?}: use one of {}",
                    Self::NAMES.join(", ")
                ),
            }),
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl SettingsError {
    /// Returns the same error with `prefix.` put before its key.
    pub fn within(self, prefix: &str) -> Self {
        match self {
            SettingsError::Invalid { key, message } => SettingsError::Invalid {
                key: format!("{prefix}.{key}"),
                message,
            },
        }
    }

    pub fn key(&self) -> &str {
        match self {
            SettingsError::Invalid { key, .. } => key,
        }
    }
}

/// The numeric settings a field override and a schema annotation share, checked under the key
/// names of the layer being validated.
pub(super) struct Tuning {
    pub sensitivity: Option<f64>,
    pub confirmation_window: Option<u32>,
    pub drift_threshold: Option<f64>,
    pub min_absolute_delta: Option<f64>,
    pub min_relative_delta: Option<f64>,
}

/// Key names of the [`Tuning`] values in one syntax (camelCase settings or `x-anomaly-*`).
pub(super) struct TuningKeys {
    pub sensitivity: &'static str,
    pub confirmation_window: &'static str,
    pub drift_threshold: &'static str,
    pub min_absolute_delta: &'static str,
    pub min_relative_delta: &'static str,
}

pub(super) const SETTINGS_KEYS: TuningKeys = TuningKeys {
    sensitivity: "sensitivity",
    confirmation_window: "confirmationWindow",
    drift_threshold: "driftThreshold",
    min_absolute_delta: "minAbsoluteDelta",
    min_relative_delta: "minRelativeDelta",
};

impl Tuning {
    pub(super) fn validate(&self, keys: &TuningKeys) -> Vec<SettingsError> {
        let mut problems = Vec::new();
        check_positive(&mut problems, keys.sensitivity, self.sensitivity);
        check_window(
            &mut problems,
            keys.confirmation_window,
            self.confirmation_window,
        );
        check_positive(&mut problems, keys.drift_threshold, self.drift_threshold);
        check_floor(
            &mut problems,
            keys.min_absolute_delta,
            self.min_absolute_delta,
        );
        check_floor(
            &mut problems,
            keys.min_relative_delta,
            self.min_relative_delta,
        );
        problems
    }
}

fn problem(key: &str, message: String) -> SettingsError {
    SettingsError::Invalid {
        key: key.to_owned(),
        message,
    }
}

fn check_positive(problems: &mut Vec<SettingsError>, key: &str, value: Option<f64>) {
    if let Some(v) = value
        && !(v.is_finite() && v > 0.0)
    {
        let message = format!("invalid value {v}: use a finite number greater than 0");
        problems.push(problem(key, message));
    }
}

fn check_window(problems: &mut Vec<SettingsError>, key: &str, value: Option<u32>) {
    if let Some(v) = value
        && !(1..=defaults::MAX_CONFIRMATION_WINDOW).contains(&v)
    {
        let message = format!("invalid value {v}: use a whole number from 1 to 100");
        problems.push(problem(key, message));
    }
}

fn check_floor(problems: &mut Vec<SettingsError>, key: &str, value: Option<f64>) {
    if let Some(v) = value
        && !(v.is_finite() && v >= 0.0)
    {
        let message = format!("invalid value {v}: use a finite number of 0 or more");
        problems.push(problem(key, message));
    }
}

fn into_result(problems: Vec<SettingsError>) -> Result<(), Vec<SettingsError>> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn field_override_problems(
    overrides: &std::collections::BTreeMap<String, FieldOverride>,
) -> Vec<SettingsError> {
    overrides
        .iter()
        .flat_map(|(path, field)| {
            let prefix = format!("fieldOverrides.{path}");
            field.problems().into_iter().map(move |p| p.within(&prefix))
        })
        .collect()
}

impl FieldOverride {
    /// Checks every key; errors are keyed by the bare key name (`sensitivity`).
    pub fn validate(&self) -> Result<(), Vec<SettingsError>> {
        into_result(self.problems())
    }

    fn problems(&self) -> Vec<SettingsError> {
        let tuning = Tuning {
            sensitivity: self.sensitivity,
            confirmation_window: self.confirmation_window,
            drift_threshold: self.drift_threshold,
            min_absolute_delta: self.min_absolute_delta,
            min_relative_delta: self.min_relative_delta,
        };
        tuning.validate(&SETTINGS_KEYS)
    }
}

impl Default for TemplateSettings {
    fn default() -> Self {
        Self {
            enabled: defaults::ENABLED,
            baseline_window: BaselineWindow::default(),
            notify: defaults::NOTIFY,
            field_overrides: Default::default(),
        }
    }
}

impl TemplateSettings {
    /// Checks every field override; errors are keyed like
    /// `fieldOverrides.collectors.healthcheck-http.request.responseTimeMs.sensitivity`.
    pub fn validate(&self) -> Result<(), Vec<SettingsError>> {
        into_result(field_override_problems(&self.field_overrides))
    }
}

impl AssignmentSettings {
    /// Checks every field override; errors are keyed as for [`TemplateSettings::validate`].
    pub fn validate(&self) -> Result<(), Vec<SettingsError>> {
        into_result(field_override_problems(&self.field_overrides))
    }
}

fn set<T>(value: T, layer: Layer) -> Resolved<T> {
    Resolved { value, layer }
}

/// Returns the first layer's value that is set, else the default.
fn first<T: Copy>(candidates: &[(Option<T>, Layer)], default: T) -> Resolved<T> {
    candidates
        .iter()
        .find_map(|(value, layer)| value.map(|v| set(v, *layer)))
        .unwrap_or(set(default, Layer::EngineDefault))
}

/// Resolves every setting of one field through the four layers.
///
/// The field override object is the assignment's entry for the path if it has one, else the
/// template's; the two are never merged. `enabled` falls back to the assignment, the template
/// and then `true`. The tuning values fall back to the schema annotation, then the engine
/// default. `baselineWindow` and `notify` come from the assignment, the template, the default.
pub fn resolve(
    field_path: &str,
    template: Option<&TemplateSettings>,
    assignment: Option<&AssignmentSettings>,
    schema: Option<&SchemaField>,
) -> EffectiveSettings {
    let assignment_field = assignment.and_then(|a| a.field_overrides.get(field_path));
    let (field, field_layer) = match assignment_field {
        Some(field) => (Some(field), Layer::AssignmentFieldOverride),
        None => (
            template.and_then(|t| t.field_overrides.get(field_path)),
            Layer::TemplateFieldOverride,
        ),
    };
    let layers = FieldLayers {
        field,
        field_layer,
        schema,
    };

    EffectiveSettings {
        enabled: first(
            &[
                (field.and_then(|o| o.enabled), field_layer),
                (assignment.and_then(|a| a.enabled), Layer::Assignment),
                (template.map(|t| t.enabled), Layer::Template),
            ],
            defaults::ENABLED,
        ),
        direction: resolve_direction(field.and_then(|o| o.direction), field_layer, schema),
        sensitivity: layers.tuning(|o| o.sensitivity, |s| s.sensitivity, defaults::SENSITIVITY),
        confirmation_window: layers.tuning(
            |o| o.confirmation_window,
            |s| s.confirmation_window,
            defaults::CONFIRMATION_WINDOW,
        ),
        drift_enabled: layers.tuning(
            |o| o.drift_enabled,
            |s| s.drift_enabled,
            defaults::DRIFT_ENABLED,
        ),
        drift_threshold: layers.tuning(
            |o| o.drift_threshold,
            |s| s.drift_threshold,
            defaults::DRIFT_THRESHOLD,
        ),
        min_absolute_delta: layers.tuning(
            |o| o.min_absolute_delta,
            |s| s.min_absolute_delta,
            defaults::MIN_ABSOLUTE_DELTA,
        ),
        min_relative_delta: layers.tuning(
            |o| o.min_relative_delta,
            |s| s.min_relative_delta,
            defaults::MIN_RELATIVE_DELTA,
        ),
        baseline_window: first(
            &[
                (
                    assignment.and_then(|a| a.baseline_window),
                    Layer::Assignment,
                ),
                (template.map(|t| t.baseline_window), Layer::Template),
            ],
            BaselineWindow::default(),
        ),
        notify: first(
            &[
                (assignment.and_then(|a| a.notify), Layer::Assignment),
                (template.map(|t| t.notify), Layer::Template),
            ],
            defaults::NOTIFY,
        ),
    }
}

/// The layers a tuning value is looked up in: the field override object, then the schema.
struct FieldLayers<'a> {
    field: Option<&'a FieldOverride>,
    field_layer: Layer,
    schema: Option<&'a SchemaField>,
}

impl FieldLayers<'_> {
    fn tuning<T: Copy>(
        &self,
        from_field: fn(&FieldOverride) -> Option<T>,
        from_schema: fn(&SchemaField) -> Option<T>,
        default: T,
    ) -> Resolved<T> {
        first(
            &[
                (self.field.and_then(from_field), self.field_layer),
                (self.schema.and_then(from_schema), Layer::SchemaAnnotation),
            ],
            default,
        )
    }
}

fn resolve_direction(
    field: Option<Direction>,
    field_layer: Layer,
    schema: Option<&SchemaField>,
) -> Resolved<Option<Direction>> {
    if let Some(direction) = field {
        return set(Some(direction), field_layer);
    }
    match schema.and_then(|s| s.direction) {
        Some(direction) => set(Some(direction), Layer::SchemaAnnotation),
        None => set(None, Layer::EngineDefault),
    }
}

impl EffectiveSettings {
    /// Returns the rule to evaluate with, or `None` when the field is disabled or has no direction.
    pub fn rule(&self) -> Option<Rule> {
        if !self.enabled.value {
            return None;
        }
        Some(Rule {
            direction: self.direction.value?,
            sensitivity: self.sensitivity.value,
            confirmation_window: self.confirmation_window.value,
            drift_enabled: self.drift_enabled.value,
            drift_threshold: self.drift_threshold.value,
            min_absolute_delta: self.min_absolute_delta.value,
            min_relative_delta: self.min_relative_delta.value,
        })
    }
}
