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
    /// Explanation of a value chosen where the source plugin left it open, kept for reviewers.
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

    /// Iterates over every collector, ordered by id.
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

#[cfg(test)]
mod tests {
    use super::*;

    const EXPECTED_COLLECTORS: &[&str] = &[
        "healthcheck-http.request",
        "healthcheck-dns.lookup",
        "healthcheck-tcp.banner",
        "healthcheck-ping.ping",
        "healthcheck-tls.certificate",
        "healthcheck-ssh.command",
        "collector-hardware.cpu",
        "collector-hardware.memory",
        "collector-hardware.disk",
        "healthcheck-postgres.query",
        "healthcheck-mysql.query",
        "healthcheck-redis.command",
        "healthcheck-grpc.health",
        "healthcheck-script.execute",
        "healthcheck-script.inline-script",
        "healthcheck-rcon.command",
        "healthcheck-rcon.minecraft-players",
        "healthcheck-rcon.minecraft-server",
        "healthcheck-rcon.source-players",
        "healthcheck-rcon.source-status",
        "healthcheck-jenkins.job-status",
        "healthcheck-jenkins.build-history",
        "healthcheck-jenkins.node-health",
        "healthcheck-jenkins.queue-info",
        "healthcheck-jenkins.server-info",
        "healthcheck-container.container-status",
        "healthcheck-container.container-stats",
        "healthcheck-snmp.snmp",
    ];

    #[test]
    fn builtin_lists_every_collector() {
        let catalogue = Catalogue::builtin();
        for id in EXPECTED_COLLECTORS {
            assert!(catalogue.collector(id).is_some(), "{id} is missing");
        }
        assert_eq!(catalogue.collectors().count(), EXPECTED_COLLECTORS.len());
    }

    #[test]
    fn builtin_field_cases() {
        use Direction::{Deviation, Dominance, HigherIsBetter, LowerIsBetter};
        // (collector, field, direction, sensitivity, window, abs floor, rel floor)
        let cases = [
            (
                "healthcheck-http.request",
                "responseTimeMs",
                Some(LowerIsBetter),
                Some(2.0),
                Some(3),
                Some(50.0),
                Some(0.5),
            ),
            (
                "healthcheck-http.request",
                "success",
                Some(Dominance),
                None,
                None,
                None,
                None,
            ),
            (
                "healthcheck-http.request",
                "statusCode",
                None,
                None,
                None,
                None,
                None,
            ),
            (
                "healthcheck-ping.ping",
                "packetLoss",
                Some(LowerIsBetter),
                Some(1.5),
                Some(3),
                Some(5.0),
                None,
            ),
            (
                "healthcheck-tls.certificate",
                "valid",
                Some(Dominance),
                None,
                Some(3),
                None,
                None,
            ),
            (
                "healthcheck-tls.certificate",
                "daysRemaining",
                None,
                None,
                None,
                None,
                None,
            ),
            (
                "collector-hardware.cpu",
                "usagePercent",
                Some(LowerIsBetter),
                Some(2.0),
                Some(3),
                Some(10.0),
                Some(0.25),
            ),
            (
                "collector-hardware.cpu",
                "loadAvg15m",
                Some(LowerIsBetter),
                Some(2.0),
                Some(3),
                Some(1.0),
                Some(0.5),
            ),
            (
                "healthcheck-mysql.query",
                "executionTimeMs",
                Some(LowerIsBetter),
                Some(2.5),
                Some(3),
                Some(50.0),
                Some(0.5),
            ),
            (
                "healthcheck-jenkins.build-history",
                "successRate",
                Some(HigherIsBetter),
                Some(1.5),
                Some(3),
                Some(10.0),
                None,
            ),
            (
                "healthcheck-jenkins.queue-info",
                "queueLength",
                Some(LowerIsBetter),
                Some(2.0),
                Some(4),
                Some(1.0),
                Some(0.25),
            ),
            (
                "healthcheck-container.container-stats",
                "cpuPercent",
                Some(LowerIsBetter),
                None,
                Some(3),
                None,
                None,
            ),
            (
                "healthcheck-snmp.snmp",
                "value",
                Some(Deviation),
                Some(2.0),
                Some(3),
                None,
                None,
            ),
            (
                "healthcheck-rcon.minecraft-server",
                "tps",
                Some(HigherIsBetter),
                None,
                None,
                Some(1.0),
                Some(0.05),
            ),
        ];
        for (collector, name, direction, sensitivity, window, abs, rel) in cases {
            let field = Catalogue::builtin()
                .field(collector, name)
                .unwrap_or_else(|| panic!("{collector}.{name} is missing"));
            let case = format!("{collector}.{name}");
            assert_eq!(field.enabled, direction.is_some(), "{case}");
            assert_eq!(field.direction, direction, "{case}");
            assert_eq!(field.sensitivity, sensitivity, "{case}");
            assert_eq!(field.confirmation_window, window, "{case}");
            assert_eq!(field.min_absolute_delta, abs, "{case}");
            assert_eq!(field.min_relative_delta, rel, "{case}");
            assert_eq!(field.drift_enabled, None, "{case}");
            assert_eq!(field.drift_threshold, None, "{case}");
        }
    }

    #[test]
    fn builtin_keeps_field_order_and_units() {
        let http = Catalogue::builtin()
            .collector("healthcheck-http.request")
            .expect("the HTTP collector is built in");
        let names: Vec<&str> = http.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "statusCode",
                "statusText",
                "traceId",
                "responseTimeMs",
                "body",
                "bodyLength",
                "success"
            ]
        );
        assert_eq!(
            http.field("responseTimeMs").and_then(|f| f.unit.as_deref()),
            Some("ms")
        );
        assert!(http.note("statusCode").is_some());
        assert_eq!(http.note("responseTimeMs"), None);
    }

    #[test]
    fn unverified_fields_carry_a_note() {
        let catalogue = Catalogue::builtin();
        let unverified = [
            ("healthcheck-script.inline-script", "timedOut"),
            ("healthcheck-rcon.minecraft-players", "onlinePlayers"),
            ("healthcheck-rcon.minecraft-server", "tps"),
            ("healthcheck-jenkins.server-info", "uptime"),
            ("healthcheck-postgres.query", "executionTimeMs"),
        ];
        for (collector, field) in unverified {
            let schema = catalogue
                .collector(collector)
                .expect("collector is built in");
            assert!(
                schema.note(field).is_some(),
                "{collector}.{field} has no note"
            );
        }
        let players = catalogue.field("healthcheck-rcon.minecraft-players", "onlinePlayers");
        assert_eq!(players.map(|f| f.enabled), Some(false));
    }

    #[test]
    fn unknown_lookups_return_none() {
        let catalogue = Catalogue::builtin();
        assert!(catalogue.collector("healthcheck-http.nope").is_none());
        assert!(
            catalogue
                .field("healthcheck-http.request", "nope")
                .is_none()
        );
        assert!(catalogue.field("nope", "success").is_none());
    }

    #[test]
    fn catalogue_json_uses_only_known_keys() {
        let known = [
            "name",
            "type",
            "x-anomaly-enabled",
            "x-anomaly-direction",
            "x-anomaly-sensitivity",
            "x-anomaly-confirmation-window",
            "x-anomaly-drift-enabled",
            "x-anomaly-drift-threshold",
            "x-anomaly-min-absolute-delta",
            "x-anomaly-min-relative-delta",
            "x-chart-unit",
            "x-chart-label",
            "note",
        ];
        let document: serde_json::Value =
            serde_json::from_str(BUILTIN_JSON).expect("catalogue.json is JSON");
        let collectors = document["collectors"]
            .as_array()
            .expect("collectors is a list");
        for collector in collectors {
            let fields = collector["fields"].as_array().expect("fields is a list");
            for field in fields {
                let keys = field.as_object().expect("a field is an object").keys();
                for key in keys {
                    assert!(
                        known.contains(&key.as_str()),
                        "unknown key {key} in {field}"
                    );
                }
            }
        }
    }

    fn annotations(json: &str) -> FieldAnnotations {
        serde_json::from_str(json).expect("annotation JSON parses")
    }

    #[test]
    fn annotation_validation_cases() {
        // (annotations, reported keys)
        let cases: &[(&str, &[&str])] = &[
            (
                r#"{"type": "number", "x-anomaly-direction": "lower-is-better"}"#,
                &[],
            ),
            (r#"{"type": "number"}"#, &[]),
            (
                r#"{"type": "boolean", "x-anomaly-enabled": true, "x-anomaly-direction": "dominance"}"#,
                &[],
            ),
            (
                r#"{"type": "number", "x-anomaly-enabled": false, "x-anomaly-direction": "deviation"}"#,
                &["f.x-anomaly-direction"],
            ),
            (
                r#"{"type": "number", "x-anomaly-enabled": false, "x-anomaly-min-absolute-delta": 5}"#,
                &["f.x-anomaly-min-absolute-delta"],
            ),
            (
                r#"{"type": "number", "x-anomaly-enabled": true}"#,
                &["f.x-anomaly-direction"],
            ),
            (
                r#"{"type": "string", "x-anomaly-direction": "dominance", "x-anomaly-min-relative-delta": 0.1}"#,
                &["f.x-anomaly-min-absolute-delta"],
            ),
            (
                r#"{"type": "string", "x-anomaly-direction": "deviation"}"#,
                &["f.x-anomaly-direction"],
            ),
            (r#"{"x-anomaly-direction": "deviation"}"#, &["f.type"]),
            (
                r#"{"type": "number", "x-anomaly-direction": "deviation", "x-anomaly-sensitivity": 0, "x-anomaly-confirmation-window": 0}"#,
                &["f.x-anomaly-sensitivity", "f.x-anomaly-confirmation-window"],
            ),
        ];
        for (json, keys) in cases {
            let found: Vec<String> = match annotations(json).to_schema_field("f") {
                Ok(_) => vec![],
                Err(problems) => problems.iter().map(|p| p.key().to_owned()).collect(),
            };
            assert_eq!(found, *keys, "{json}");
        }
    }

    #[test]
    fn annotations_convert_to_schema_field() {
        let json = r#"{"type": "number", "x-anomaly-direction": "higher-is-better",
            "x-anomaly-drift-enabled": false, "x-anomaly-drift-threshold": 3,
            "x-chart-unit": "%", "x-chart-label": "Hit rate", "x-chart-type": "line"}"#;
        let field = annotations(json)
            .to_schema_field("hitRate")
            .expect("valid annotations");
        assert_eq!(field.name, "hitRate");
        assert_eq!(field.field_type, FieldType::Number);
        assert!(field.enabled);
        assert_eq!(field.direction, Some(Direction::HigherIsBetter));
        assert_eq!(field.drift_enabled, Some(false));
        assert_eq!(field.drift_threshold, Some(3.0));
        assert_eq!(field.unit.as_deref(), Some("%"));
        assert_eq!(field.label.as_deref(), Some("Hit rate"));
    }

    #[test]
    fn invalid_catalogue_document_is_rejected() {
        let bad = r#"{"collectors": [{"id": "x.y", "fields": [
            {"name": "a", "type": "number", "x-anomaly-enabled": false, "x-anomaly-direction": "deviation"}]}]}"#;
        let error = Catalogue::from_json(bad).expect_err("a disabled field with a direction");
        assert!(error.to_string().contains("x.y"), "{error}");
        assert!(Catalogue::from_json("{").is_err());
    }

    #[test]
    fn insert_replaces_collector() {
        let mut catalogue = Catalogue::default();
        let schema = CollectorSchema {
            id: "custom.probe".to_owned(),
            fields: vec![],
            notes: BTreeMap::new(),
        };
        assert!(catalogue.insert(schema.clone()).is_none());
        assert_eq!(catalogue.insert(schema.clone()), Some(schema));
        assert_eq!(catalogue.collectors().count(), 1);
    }
}
