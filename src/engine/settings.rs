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
    /// Maximum confirmation window.
    pub const MAX_CONFIRMATION_WINDOW: u32 = 100;
    /// Minimum baseline window, in hours.
    pub const MIN_BASELINE_WINDOW_HOURS: u32 = 1;
    /// Maximum baseline window, in hours (90 days).
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::engine::FieldType;

    const PATH: &str = "collectors.healthcheck-http.request.responseTimeMs";

    fn template(enabled: bool, field: Option<FieldOverride>) -> TemplateSettings {
        TemplateSettings {
            enabled,
            field_overrides: field.map(|f| (PATH.to_owned(), f)).into_iter().collect(),
            ..TemplateSettings::default()
        }
    }

    fn assignment(enabled: Option<bool>, field: Option<FieldOverride>) -> AssignmentSettings {
        AssignmentSettings {
            enabled,
            field_overrides: field.map(|f| (PATH.to_owned(), f)).into_iter().collect(),
            ..AssignmentSettings::default()
        }
    }

    fn schema() -> SchemaField {
        SchemaField {
            name: "responseTimeMs".to_owned(),
            field_type: FieldType::Number,
            enabled: true,
            direction: Some(Direction::LowerIsBetter),
            sensitivity: Some(1.5),
            confirmation_window: Some(5),
            drift_enabled: Some(false),
            drift_threshold: Some(3.0),
            min_absolute_delta: Some(50.0),
            min_relative_delta: Some(0.5),
            unit: Some("ms".to_owned()),
            label: None,
        }
    }

    #[test]
    fn nothing_supplied_gives_engine_defaults() {
        let settings = resolve(PATH, None, None, None);
        let default = Layer::EngineDefault;
        assert_eq!(settings.enabled, set(true, default));
        assert_eq!(settings.sensitivity, set(1.0, default));
        assert_eq!(settings.confirmation_window, set(3, default));
        assert_eq!(settings.direction, set(None, default));
        assert_eq!(settings.drift_enabled, set(true, default));
        assert_eq!(settings.drift_threshold, set(2.0, default));
        assert_eq!(settings.min_absolute_delta, set(0.0, default));
        assert_eq!(settings.min_relative_delta, set(0.0, default));
        assert_eq!(settings.baseline_window.value.to_string(), "7d");
        assert_eq!(settings.notify, set(true, default));
        assert_eq!(settings.rule(), None);
    }

    #[test]
    fn master_switch_cases() {
        let off = FieldOverride {
            enabled: Some(false),
            ..FieldOverride::default()
        };
        // (template, assignment, enabled, layer)
        let cases = [
            (Some(template(false, None)), None, false, Layer::Template),
            (
                Some(template(false, None)),
                Some(assignment(Some(true), None)),
                true,
                Layer::Assignment,
            ),
            (
                Some(template(true, Some(off.clone()))),
                None,
                false,
                Layer::TemplateFieldOverride,
            ),
            (
                Some(template(true, None)),
                Some(assignment(None, Some(off))),
                false,
                Layer::AssignmentFieldOverride,
            ),
            (
                None,
                Some(assignment(None, None)),
                true,
                Layer::EngineDefault,
            ),
        ];
        for (template, assignment, enabled, layer) in cases {
            let settings = resolve(PATH, template.as_ref(), assignment.as_ref(), None);
            assert_eq!(
                settings.enabled,
                set(enabled, layer),
                "{template:?} {assignment:?}"
            );
        }
    }

    #[test]
    fn template_field_override_sets_values() {
        let field = FieldOverride {
            sensitivity: Some(2.0),
            confirmation_window: Some(5),
            drift_enabled: Some(false),
            drift_threshold: Some(4.0),
            ..FieldOverride::default()
        };
        let template = template(true, Some(field));
        let settings = resolve(PATH, Some(&template), None, None);
        let layer = Layer::TemplateFieldOverride;
        assert_eq!(settings.sensitivity, set(2.0, layer));
        assert_eq!(settings.confirmation_window, set(5, layer));
        assert_eq!(settings.drift_enabled, set(false, layer));
        assert_eq!(settings.drift_threshold, set(4.0, layer));
    }

    #[test]
    fn assignment_field_override_replaces_template_entry() {
        let template_field = FieldOverride {
            sensitivity: Some(2.0),
            min_absolute_delta: Some(80.0),
            ..FieldOverride::default()
        };
        let assignment_field = FieldOverride {
            sensitivity: Some(0.5),
            ..FieldOverride::default()
        };
        let template = template(true, Some(template_field));
        let assignment = assignment(None, Some(assignment_field));
        let settings = resolve(PATH, Some(&template), Some(&assignment), None);
        assert_eq!(
            settings.sensitivity,
            set(0.5, Layer::AssignmentFieldOverride)
        );
        // The template's floor is not merged into the assignment's entry.
        assert_eq!(settings.min_absolute_delta, set(0.0, Layer::EngineDefault));
    }

    #[test]
    fn template_entry_applies_without_assignment_entry() {
        let template_field = FieldOverride {
            sensitivity: Some(2.0),
            ..FieldOverride::default()
        };
        let other_path = FieldOverride {
            sensitivity: Some(0.5),
            ..FieldOverride::default()
        };
        let template = template(true, Some(template_field));
        let assignment = AssignmentSettings {
            field_overrides: BTreeMap::from([("collectors.other.field".to_owned(), other_path)]),
            ..AssignmentSettings::default()
        };
        let settings = resolve(PATH, Some(&template), Some(&assignment), None);
        assert_eq!(settings.sensitivity, set(2.0, Layer::TemplateFieldOverride));
    }

    #[test]
    fn schema_annotations_fill_in() {
        let schema = schema();
        let settings = resolve(PATH, None, None, Some(&schema));
        let layer = Layer::SchemaAnnotation;
        assert_eq!(settings.sensitivity, set(1.5, layer));
        assert_eq!(settings.confirmation_window, set(5, layer));
        assert_eq!(settings.drift_enabled, set(false, layer));
        assert_eq!(settings.drift_threshold, set(3.0, layer));
        assert_eq!(settings.min_absolute_delta, set(50.0, layer));
        assert_eq!(settings.min_relative_delta, set(0.5, layer));
        assert_eq!(
            settings.direction,
            set(Some(Direction::LowerIsBetter), layer)
        );
    }

    #[test]
    fn field_override_beats_schema() {
        let field = FieldOverride {
            sensitivity: Some(0.7),
            ..FieldOverride::default()
        };
        let template = template(true, Some(field));
        let schema = schema();
        let settings = resolve(PATH, Some(&template), None, Some(&schema));
        assert_eq!(settings.sensitivity, set(0.7, Layer::TemplateFieldOverride));
        assert_eq!(
            settings.confirmation_window,
            set(5, Layer::SchemaAnnotation)
        );
    }

    #[test]
    fn direction_cases() {
        let with_direction = FieldOverride {
            direction: Some(Direction::Deviation),
            ..FieldOverride::default()
        };
        let template_with = template(true, Some(with_direction));
        let template_without = template(true, None);
        let schema = schema();
        let cases = [
            (
                resolve(PATH, Some(&template_with), None, None),
                set(Some(Direction::Deviation), Layer::TemplateFieldOverride),
            ),
            (
                resolve(PATH, Some(&template_without), None, None),
                set(None, Layer::EngineDefault),
            ),
            (
                resolve(PATH, Some(&template_with), None, Some(&schema)),
                set(Some(Direction::Deviation), Layer::TemplateFieldOverride),
            ),
        ];
        for (settings, expected) in cases {
            assert_eq!(settings.direction, expected);
        }
    }

    #[test]
    fn explicit_zero_counts_as_set() {
        let field = FieldOverride {
            sensitivity: Some(0.0),
            min_absolute_delta: Some(0.0),
            drift_enabled: Some(false),
            ..FieldOverride::default()
        };
        let template = template(true, Some(field));
        let schema = schema();
        let settings = resolve(PATH, Some(&template), None, Some(&schema));
        let layer = Layer::TemplateFieldOverride;
        assert_eq!(settings.sensitivity, set(0.0, layer));
        assert_eq!(settings.min_absolute_delta, set(0.0, layer));
        assert_eq!(settings.drift_enabled, set(false, layer));
    }

    #[test]
    fn global_legacy_keys_are_never_read() {
        let json = r#"{"enabled": true, "sensitivity": 9, "confirmationWindow": 9,
            "driftEnabled": false, "driftThreshold": 9, "fieldOverrides": {}}"#;
        let assignment: AssignmentSettings =
            serde_json::from_str(json).expect("legacy keys are ignored");
        let settings = resolve(PATH, None, Some(&assignment), None);
        assert_eq!(settings.sensitivity.value, 1.0);
        assert_eq!(settings.confirmation_window.value, 3);
        assert!(settings.drift_enabled.value);
        assert_eq!(settings.drift_threshold.value, 2.0);
    }

    #[test]
    fn window_and_notify_resolve_from_assignment_then_template() {
        let template = TemplateSettings {
            baseline_window: BaselineWindow::parse("14d").expect("14d is valid"),
            notify: false,
            ..TemplateSettings::default()
        };
        let assignment = AssignmentSettings {
            baseline_window: Some(BaselineWindow::parse("36h").expect("36h is valid")),
            ..AssignmentSettings::default()
        };
        let settings = resolve(PATH, Some(&template), Some(&assignment), None);
        assert_eq!(settings.baseline_window.value.hours(), 36);
        assert_eq!(settings.baseline_window.layer, Layer::Assignment);
        assert_eq!(settings.notify, set(false, Layer::Template));
    }

    #[test]
    fn rule_needs_enabled_and_direction() {
        let schema = schema();
        let enabled = resolve(PATH, None, None, Some(&schema));
        let rule = enabled
            .rule()
            .expect("an enabled field with a direction has a rule");
        assert_eq!(rule.direction, Direction::LowerIsBetter);
        assert_eq!(rule.sensitivity, 1.5);
        assert_eq!(rule.confirmation_window, 5);
        assert!(!rule.drift_enabled);
        assert_eq!(rule.drift_threshold, 3.0);
        assert_eq!(rule.min_absolute_delta, 50.0);
        assert_eq!(rule.min_relative_delta, 0.5);

        let off = template(false, None);
        assert_eq!(resolve(PATH, Some(&off), None, Some(&schema)).rule(), None);
        let disabled_schema = SchemaField {
            enabled: false,
            direction: None,
            ..schema
        };
        assert_eq!(
            resolve(PATH, None, None, Some(&disabled_schema)).rule(),
            None
        );
    }

    #[test]
    fn baseline_window_parse_cases() {
        // (text, hours or None when invalid)
        let cases = [
            ("7d", Some(168)),
            ("36h", Some(36)),
            ("1h", Some(1)),
            ("90d", Some(2160)),
            ("2160h", Some(2160)),
            ("0h", None),
            ("0d", None),
            ("91d", None),
            ("2161h", None),
            ("7", None),
            ("d", None),
            ("-1d", None),
            ("+1d", None),
            ("1.5d", None),
            ("7D", None),
            (" 7d", None),
            ("1w", None),
            ("99999999999d", None),
        ];
        for (text, hours) in cases {
            let parsed = BaselineWindow::parse(text).ok().map(BaselineWindow::hours);
            assert_eq!(parsed, hours, "{text:?}");
        }
    }

    #[test]
    fn baseline_window_display_and_millis() {
        let cases = [("7d", "7d"), ("36h", "36h"), ("48h", "2d"), ("1h", "1h")];
        for (text, shown) in cases {
            let window = BaselineWindow::parse(text).expect("case is valid");
            assert_eq!(window.to_string(), shown);
        }
        assert_eq!(BaselineWindow::default().to_string(), "7d");
        assert_eq!(BaselineWindow::default().as_millis(), 7 * 24 * 3_600_000);
    }

    #[test]
    fn baseline_window_error_names_key_and_range() {
        let error = BaselineWindow::parse("7w").expect_err("7w is invalid");
        assert_eq!(error.key(), "baselineWindow");
        let message = error.to_string();
        assert!(message.contains("\"7w\""), "{message}");
        assert!(
            message.contains("1h") && message.contains("90d"),
            "{message}"
        );
    }

    #[test]
    fn baseline_window_serde_uses_string_form() {
        let window = BaselineWindow::parse("36h").expect("36h is valid");
        let json = serde_json::to_string(&window).expect("window encodes as json");
        assert_eq!(json, "\"36h\"");
        let decoded: BaselineWindow = serde_json::from_str(&json).expect("window decodes");
        assert_eq!(decoded, window);
        let bytes = postcard::to_stdvec(&window).expect("window encodes with postcard");
        let decoded: BaselineWindow = postcard::from_bytes(&bytes).expect("window decodes");
        assert_eq!(decoded, window);
        let invalid = serde_json::from_str::<BaselineWindow>("\"0h\"");
        assert!(invalid.is_err());
    }

    #[test]
    fn template_settings_round_trip_through_postcard() {
        let template = template(
            true,
            Some(FieldOverride {
                sensitivity: Some(2.0),
                ..FieldOverride::default()
            }),
        );
        let bytes = postcard::to_stdvec(&template).expect("template encodes");
        let decoded: TemplateSettings = postcard::from_bytes(&bytes).expect("template decodes");
        assert_eq!(decoded, template);
    }

    #[test]
    fn template_default_values() {
        let template = TemplateSettings::default();
        assert!(template.enabled);
        assert!(template.notify);
        assert_eq!(template.baseline_window.hours(), 168);
        assert!(template.field_overrides.is_empty());
    }

    #[test]
    fn direction_parse_cases() {
        for name in Direction::NAMES {
            let direction = Direction::parse(name).expect("every listed name parses");
            assert_eq!(direction.name(), name);
        }
        let error = Direction::parse("up").expect_err("up is not a direction");
        assert!(error.to_string().contains("dominance"), "{error}");
    }

    #[test]
    fn field_override_validation_cases() {
        // (override, keys reported)
        let cases: Vec<(FieldOverride, Vec<&str>)> = vec![
            (FieldOverride::default(), vec![]),
            (
                FieldOverride {
                    sensitivity: Some(0.0),
                    ..FieldOverride::default()
                },
                vec!["sensitivity"],
            ),
            (
                FieldOverride {
                    sensitivity: Some(f64::NAN),
                    drift_threshold: Some(-1.0),
                    ..FieldOverride::default()
                },
                vec!["sensitivity", "driftThreshold"],
            ),
            (
                FieldOverride {
                    confirmation_window: Some(0),
                    ..FieldOverride::default()
                },
                vec!["confirmationWindow"],
            ),
            (
                FieldOverride {
                    confirmation_window: Some(101),
                    ..FieldOverride::default()
                },
                vec!["confirmationWindow"],
            ),
            (
                FieldOverride {
                    confirmation_window: Some(100),
                    min_absolute_delta: Some(0.0),
                    ..FieldOverride::default()
                },
                vec![],
            ),
            (
                FieldOverride {
                    min_absolute_delta: Some(-0.5),
                    min_relative_delta: Some(f64::INFINITY),
                    ..FieldOverride::default()
                },
                vec!["minAbsoluteDelta", "minRelativeDelta"],
            ),
        ];
        for (field, keys) in cases {
            let found: Vec<String> = match field.validate() {
                Ok(()) => vec![],
                Err(problems) => problems.iter().map(|p| p.key().to_owned()).collect(),
            };
            assert_eq!(found, keys, "{field:?}");
        }
    }

    #[test]
    fn settings_validation_prefixes_field_path() {
        let bad = FieldOverride {
            sensitivity: Some(-1.0),
            confirmation_window: Some(0),
            ..FieldOverride::default()
        };
        let template = template(true, Some(bad.clone()));
        let problems = template.validate().expect_err("two values are invalid");
        let keys: Vec<&str> = problems.iter().map(SettingsError::key).collect();
        assert_eq!(
            keys,
            [
                "fieldOverrides.collectors.healthcheck-http.request.responseTimeMs.sensitivity",
                "fieldOverrides.collectors.healthcheck-http.request.responseTimeMs.confirmationWindow",
            ]
        );
        assert!(problems[0].to_string().contains("greater than 0"));
        let assignment = AssignmentSettings {
            field_overrides: BTreeMap::from([("a".to_owned(), bad)]),
            ..AssignmentSettings::default()
        };
        assert_eq!(assignment.validate().map_err(|p| p.len()), Err(2));
        assert_eq!(TemplateSettings::default().validate(), Ok(()));
    }
}
