//! The field catalogue: the `x-anomaly-*` annotations of every result field of the built-in
//! Checkstack collectors (data in `catalogue.json`), and the annotated-field type the YAML
//! `Collector` kind shares.
//!
//! Array result fields (DNS `values`, RCON `playerNames`) are not listed because arrays are never
//! evaluated. Strategy-level result fields are not listed because only collector results reach
//! the detector.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::settings::{Tuning, TuningKeys};
use super::{Direction, FieldType, SchemaField, SettingsError};

const BUILTIN_JSON: &str = include_str!("catalogue.json");

/// The annotations of one result field as written in a collector schema, with the same keys as
/// the YAML `Collector` kind. Unknown keys (other `x-chart-*` hints) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FieldAnnotations {
    #[serde(rename = "type")]
    pub field_type: Option<FieldType>,
    /// Absent means enabled exactly when a direction is given.
    #[serde(rename = "x-anomaly-enabled", default)]
    pub enabled: Option<bool>,
    #[serde(rename = "x-anomaly-direction", default)]
    pub direction: Option<Direction>,
    #[serde(rename = "x-anomaly-sensitivity", default)]
    pub sensitivity: Option<f64>,
    #[serde(rename = "x-anomaly-confirmation-window", default)]
    pub confirmation_window: Option<u32>,
    #[serde(rename = "x-anomaly-drift-enabled", default)]
    pub drift_enabled: Option<bool>,
    #[serde(rename = "x-anomaly-drift-threshold", default)]
    pub drift_threshold: Option<f64>,
    #[serde(rename = "x-anomaly-min-absolute-delta", default)]
    pub min_absolute_delta: Option<f64>,
    #[serde(rename = "x-anomaly-min-relative-delta", default)]
    pub min_relative_delta: Option<f64>,
    #[serde(rename = "x-chart-unit", default)]
    pub unit: Option<String>,
    #[serde(rename = "x-chart-label", default)]
    pub label: Option<String>,
    /// Why a value was chosen where the source plugin left it open; for reviewers only.
    #[serde(default)]
    pub note: Option<String>,
}

const ANNOTATION_KEYS: TuningKeys = TuningKeys {
    sensitivity: "x-anomaly-sensitivity",
    confirmation_window: "x-anomaly-confirmation-window",
    drift_threshold: "x-anomaly-drift-threshold",
    min_absolute_delta: "x-anomaly-min-absolute-delta",
    min_relative_delta: "x-anomaly-min-relative-delta",
};

impl FieldAnnotations {
    /// Validates the annotations of the field `name` and converts them into a [`SchemaField`].
    ///
    /// Errors are keyed `<name>.<annotation key>`. A disabled field must not carry a direction
    /// or floors, an enabled field needs a direction, dominance carries no floors, and a numeric
    /// direction needs `type: number`.
    pub fn to_schema_field(&self, name: &str) -> Result<SchemaField, Vec<SettingsError>> {
        let problems: Vec<SettingsError> = self
            .problems()
            .into_iter()
            .map(|p| p.within(name))
            .collect();
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(SchemaField {
            name: name.to_owned(),
            field_type: self.field_type.unwrap_or(FieldType::Number),
            enabled: self.is_enabled(),
            direction: self.direction,
            sensitivity: self.sensitivity,
            confirmation_window: self.confirmation_window,
            drift_enabled: self.drift_enabled,
            drift_threshold: self.drift_threshold,
            min_absolute_delta: self.min_absolute_delta,
            min_relative_delta: self.min_relative_delta,
            unit: self.unit.clone(),
            label: self.label.clone(),
        })
    }

    fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(self.direction.is_some())
    }

    fn has_floors(&self) -> bool {
        self.min_absolute_delta.is_some() || self.min_relative_delta.is_some()
    }

    fn problems(&self) -> Vec<SettingsError> {
        let tuning = Tuning {
            sensitivity: self.sensitivity,
            confirmation_window: self.confirmation_window,
            drift_threshold: self.drift_threshold,
            min_absolute_delta: self.min_absolute_delta,
            min_relative_delta: self.min_relative_delta,
        };
        let mut problems = tuning.validate(&ANNOTATION_KEYS);
        problems.extend(self.shape_problem());
        problems
    }

    /// Checks the combination of type, enabled flag, direction and floors.
    fn shape_problem(&self) -> Option<SettingsError> {
        let problem = |key: &str, message: &str| {
            Some(SettingsError::Invalid {
                key: key.to_owned(),
                message: message.to_owned(),
            })
        };
        let Some(field_type) = self.field_type else {
            return problem("type", "missing: use number, string or boolean");
        };
        match (self.is_enabled(), self.direction) {
            (false, Some(_)) => problem(
                "x-anomaly-direction",
                "a disabled field must not carry a direction: remove it or enable the field",
            ),
            (false, None) if self.has_floors() => problem(
                "x-anomaly-min-absolute-delta",
                "a disabled field must not carry floors: remove them or enable the field",
            ),
            (false, None) => None,
            (true, None) => problem(
                "x-anomaly-direction",
                "missing: an enabled field needs higher-is-better, lower-is-better, deviation \
                 or dominance",
            ),
            (true, Some(Direction::Dominance)) if self.has_floors() => problem(
                "x-anomaly-min-absolute-delta",
                "dominance compares values, not sizes: remove the floors",
            ),
            (true, Some(Direction::Dominance)) => None,
            (true, Some(_)) if field_type != FieldType::Number => problem(
                "x-anomaly-direction",
                "a numeric direction needs type number: use dominance for strings and booleans",
            ),
            (true, Some(_)) => None,
        }
    }
}

/// The result fields of one collector, in schema order.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorSchema {
    /// Qualified collector id, for example `healthcheck-http.request`.
    pub id: String,
    pub fields: Vec<SchemaField>,
    /// Field name to the note explaining an unverified or chosen value.
    pub notes: BTreeMap<String, String>,
}

impl CollectorSchema {
    /// Looks up one field by name.
    pub fn field(&self, name: &str) -> Option<&SchemaField> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Returns the note kept beside a field's annotations, if any.
    pub fn note(&self, name: &str) -> Option<&str> {
        self.notes.get(name).map(String::as_str)
    }
}

/// Built-in and user-declared collector schemas, keyed by qualified collector id.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    collectors: BTreeMap<String, CollectorSchema>,
}

#[derive(Deserialize)]
struct CatalogueFile {
    collectors: Vec<CollectorEntry>,
}

#[derive(Deserialize)]
struct CollectorEntry {
    id: String,
    fields: Vec<FieldEntry>,
}

#[derive(Deserialize)]
struct FieldEntry {
    name: String,
    #[serde(flatten)]
    annotations: FieldAnnotations,
}

/// Errors of loading a catalogue document.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("invalid catalogue document: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("invalid annotations in collector {collector}: {problems:?}")]
    Annotations {
        collector: String,
        problems: Vec<SettingsError>,
    },
}

impl Catalogue {
    /// The built-in collectors of the Checkstack plugins.
    pub fn builtin() -> &'static Catalogue {
        static BUILTIN: OnceLock<Catalogue> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            Catalogue::from_json(BUILTIN_JSON).expect("the embedded catalogue.json is valid")
        })
    }

    /// Parses a catalogue document `{"collectors": [{"id", "fields": [{"name", ...}]}]}`.
    pub fn from_json(text: &str) -> Result<Catalogue, CatalogueError> {
        let file: CatalogueFile = serde_json::from_str(text)?;
        let mut catalogue = Catalogue::default();
        for entry in file.collectors {
            catalogue.insert(collector_from_entry(entry)?);
        }
        Ok(catalogue)
    }

    /// Adds a collector, replacing and returning any collector with the same id.
    pub fn insert(&mut self, collector: CollectorSchema) -> Option<CollectorSchema> {
        self.collectors.insert(collector.id.clone(), collector)
    }

    /// Looks up one field of one collector.
    pub fn field(&self, collector_id: &str, field: &str) -> Option<&SchemaField> {
        self.collector(collector_id)?.field(field)
    }

    /// Looks up one collector by qualified id.
    pub fn collector(&self, collector_id: &str) -> Option<&CollectorSchema> {
        self.collectors.get(collector_id)
    }

    /// Every collector, ordered by id.
    pub fn collectors(&self) -> impl Iterator<Item = &CollectorSchema> {
        self.collectors.values()
    }
}

fn collector_from_entry(entry: CollectorEntry) -> Result<CollectorSchema, CatalogueError> {
    let mut fields = Vec::with_capacity(entry.fields.len());
    let mut notes = BTreeMap::new();
    let mut problems = Vec::new();
    for field in entry.fields {
        match field.annotations.to_schema_field(&field.name) {
            Ok(schema) => fields.push(schema),
            Err(found) => problems.extend(found),
        }
        if let Some(note) = field.annotations.note {
            notes.insert(field.name, note);
        }
    }
    if !problems.is_empty() {
        return Err(CatalogueError::Annotations {
            collector: entry.id,
            problems,
        });
    }
    Ok(CollectorSchema {
        id: entry.id,
        fields,
        notes,
    })
}
