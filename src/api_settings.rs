//! Anomaly settings made through the API for entities the config folder does not define: their
//! redb table, the validation of a request body, and the overlay that merges them into the
//! configuration snapshot the detector and analyzer see. YAML-defined entities always win.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};
use serde_json::Value as Json;
use tokio::sync::watch;

use crate::config::{ConfigSnapshot, Healthcheck, Source, System};
use crate::engine::{
    AssignmentSettings, BaselineWindow, FieldOverride, SettingsError, TemplateSettings,
};
use crate::writer::ConfigFeed;

/// API-made settings.
///
/// Key: (scope, system, healthcheck) where scope is `template` (system is "") or `assignment`.
/// Value: JSON of `TemplateSettings` or `AssignmentSettings`. JSON so the stored form is the
/// one the API reads and writes, and a new optional key keeps old rows readable.
const API_SETTINGS: TableDefinition<(&str, &str, &str), &[u8]> =
    TableDefinition::new("api_settings_v1");

const TEMPLATE: &str = "template";
const ASSIGNMENT: &str = "assignment";

/// Keys a field override object accepts.
const OVERRIDE_KEYS: [&str; 8] = [
    "enabled",
    "direction",
    "sensitivity",
    "confirmationWindow",
    "driftEnabled",
    "driftThreshold",
    "minAbsoluteDelta",
    "minRelativeDelta",
];

/// Errors of the settings table and of request bodies.
#[derive(Debug, thiserror::Error)]
pub enum ApiSettingsError {
    #[error("database error in table api_settings_v1: {0}")]
    Database(#[from] redb::Error),
    #[error("stored settings for {name} do not decode: {source}")]
    Corrupt {
        name: String,
        source: serde_json::Error,
    },
    /// The body is not acceptable; every problem names its key.
    #[error("{}", join(.0))]
    Invalid(Vec<SettingsError>),
}

fn join(problems: &[SettingsError]) -> String {
    let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
    texts.join("; ")
}

fn db<E: Into<redb::Error>>(e: E) -> ApiSettingsError {
    ApiSettingsError::Database(e.into())
}

fn invalid(key: &str, message: impl Into<String>) -> ApiSettingsError {
    ApiSettingsError::Invalid(vec![SettingsError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }])
}

/// Every API-made settings object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiSettings {
    /// Keyed by healthcheck name.
    pub templates: BTreeMap<String, TemplateSettings>,
    /// Keyed by (system, healthcheck).
    pub assignments: BTreeMap<(String, String), AssignmentSettings>,
}

impl ApiSettings {
    /// Loads every row; a missing table means nothing was stored yet.
    pub fn load(database: &Database) -> Result<Self, ApiSettingsError> {
        let mut settings = Self::default();
        let read = database.begin_read().map_err(db)?;
        let table = match read.open_table(API_SETTINGS) {
            Ok(table) => table,
            Err(TableError::TableDoesNotExist(_)) => return Ok(settings),
            Err(e) => return Err(db(e)),
        };
        for row in table.iter().map_err(db)? {
            let (key, value) = row.map_err(db)?;
            let (scope, system, healthcheck) = key.value();
            let corrupt = |source| ApiSettingsError::Corrupt {
                name: format!("{scope} {system}/{healthcheck}"),
                source,
            };
            if scope == TEMPLATE {
                let parsed = serde_json::from_slice(value.value()).map_err(corrupt)?;
                settings.templates.insert(healthcheck.to_owned(), parsed);
            } else {
                let parsed = serde_json::from_slice(value.value()).map_err(corrupt)?;
                let key = (system.to_owned(), healthcheck.to_owned());
                settings.assignments.insert(key, parsed);
            }
        }
        Ok(settings)
    }
}

fn store_row(
    database: &Database,
    key: (&str, &str, &str),
    json: &[u8],
) -> Result<(), ApiSettingsError> {
    let tx = database.begin_write().map_err(db)?;
    {
        let mut table = tx.open_table(API_SETTINGS).map_err(db)?;
        table.insert(key, json).map_err(db)?;
    }
    tx.commit().map_err(db)
}

/// Parses and validates a template settings body. Absent keys take the engine defaults.
pub fn parse_template(body: &Json) -> Result<TemplateSettings, ApiSettingsError> {
    let input = parse_input(body)?;
    let defaults = TemplateSettings::default();
    let settings = TemplateSettings {
        enabled: input.enabled.unwrap_or(defaults.enabled),
        baseline_window: input.baseline_window.unwrap_or(defaults.baseline_window),
        notify: input.notify.unwrap_or(defaults.notify),
        field_overrides: input.field_overrides,
    };
    settings.validate().map_err(ApiSettingsError::Invalid)?;
    Ok(settings)
}

/// Parses and validates an assignment settings body. Absent keys inherit from the template.
pub fn parse_assignment(body: &Json) -> Result<AssignmentSettings, ApiSettingsError> {
    let input = parse_input(body)?;
    let settings = AssignmentSettings {
        enabled: input.enabled,
        baseline_window: input.baseline_window,
        notify: input.notify,
        field_overrides: input.field_overrides,
    };
    settings.validate().map_err(ApiSettingsError::Invalid)?;
    Ok(settings)
}

/// The keys both settings bodies share, each checked for its type.
struct Input {
    enabled: Option<bool>,
    baseline_window: Option<BaselineWindow>,
    notify: Option<bool>,
    field_overrides: BTreeMap<String, FieldOverride>,
}

fn parse_input(body: &Json) -> Result<Input, ApiSettingsError> {
    let object = body
        .as_object()
        .ok_or_else(|| invalid("body", "must be a JSON object of settings"))?;
    let allowed = ["enabled", "baselineWindow", "notify", "fieldOverrides"];
    if let Some(key) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(invalid(
            key,
            format!("unknown key; settings accept {}", allowed.join(", ")),
        ));
    }
    let baseline_window = match object.get("baselineWindow") {
        None | Some(Json::Null) => None,
        Some(Json::String(text)) => {
            Some(BaselineWindow::parse(text).map_err(|e| ApiSettingsError::Invalid(vec![e]))?)
        }
        Some(_) => return Err(invalid("baselineWindow", "must be a string such as \"7d\"")),
    };
    Ok(Input {
        enabled: optional_bool(object.get("enabled"), "enabled")?,
        baseline_window,
        notify: optional_bool(object.get("notify"), "notify")?,
        field_overrides: parse_overrides(object.get("fieldOverrides"))?,
    })
}

fn optional_bool(value: Option<&Json>, key: &str) -> Result<Option<bool>, ApiSettingsError> {
    match value {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(invalid(key, "must be true or false")),
    }
}

fn parse_overrides(
    value: Option<&Json>,
) -> Result<BTreeMap<String, FieldOverride>, ApiSettingsError> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(BTreeMap::new());
    };
    let object = value
        .as_object()
        .ok_or_else(|| invalid("fieldOverrides", "must be an object keyed by field path"))?;
    let mut overrides = BTreeMap::new();
    for (path, entry) in object {
        overrides.insert(path.clone(), parse_override(path, entry)?);
    }
    Ok(overrides)
}

fn parse_override(path: &str, entry: &Json) -> Result<FieldOverride, ApiSettingsError> {
    let prefix = format!("fieldOverrides.{path}");
    if crate::detector::split_field_path(path).is_none() {
        return Err(invalid(
            &prefix,
            "field path must read collectors.<collector id>.<field>",
        ));
    }
    let object = entry
        .as_object()
        .ok_or_else(|| invalid(&prefix, "must be an object of settings"))?;
    if let Some(key) = object.keys().find(|k| !OVERRIDE_KEYS.contains(&k.as_str())) {
        return Err(invalid(
            &format!("{prefix}.{key}"),
            format!(
                "unknown key; a field override accepts {}",
                OVERRIDE_KEYS.join(", ")
            ),
        ));
    }
    // Nulls mean "inherit", like an absent key.
    let present: serde_json::Map<String, Json> = object
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    serde_json::from_value(Json::Object(present)).map_err(|e| invalid(&prefix, e.to_string()))
}

/// The configuration the detector and analyzer see: the base snapshot (the config folder, or
/// the one given to `serve`) with the API-made settings merged in.
#[derive(Debug)]
pub struct Overlay {
    base: ConfigFeed,
    api: Mutex<ApiSettings>,
    merged: watch::Sender<Arc<ConfigSnapshot>>,
}

impl Overlay {
    pub fn new(base: ConfigFeed, api: ApiSettings) -> Arc<Self> {
        let merged = merge(&base.borrow(), &api);
        let (sender, _) = watch::channel(Arc::new(merged));
        Arc::new(Self {
            base,
            api: Mutex::new(api),
            merged: sender,
        })
    }

    /// The merged configuration, updated whenever the base or an API setting changes.
    pub fn subscribe(&self) -> ConfigFeed {
        self.merged.subscribe()
    }

    /// The configuration without API-made settings.
    pub fn base(&self) -> Arc<ConfigSnapshot> {
        self.base.borrow().clone()
    }

    pub fn api(&self) -> ApiSettings {
        self.api
            .lock()
            .expect("the settings lock is never poisoned")
            .clone()
    }

    /// Stores a healthcheck's template settings and applies them.
    pub fn set_template(
        &self,
        database: &Database,
        healthcheck: &str,
        settings: TemplateSettings,
    ) -> Result<(), ApiSettingsError> {
        let json = serde_json::to_vec(&settings).expect("settings serialize to JSON");
        let mut api = self
            .api
            .lock()
            .expect("the settings lock is never poisoned");
        store_row(database, (TEMPLATE, "", healthcheck), &json)?;
        api.templates.insert(healthcheck.to_owned(), settings);
        self.publish(&api);
        Ok(())
    }

    /// Stores a system's assignment settings for one healthcheck and applies them.
    pub fn set_assignment(
        &self,
        database: &Database,
        system: &str,
        healthcheck: &str,
        settings: AssignmentSettings,
    ) -> Result<(), ApiSettingsError> {
        let json = serde_json::to_vec(&settings).expect("settings serialize to JSON");
        let mut api = self
            .api
            .lock()
            .expect("the settings lock is never poisoned");
        store_row(database, (ASSIGNMENT, system, healthcheck), &json)?;
        let key = (system.to_owned(), healthcheck.to_owned());
        api.assignments.insert(key, settings);
        self.publish(&api);
        Ok(())
    }

    fn publish(&self, api: &ApiSettings) {
        let merged = merge(&self.base.borrow(), api);
        self.merged.send_replace(Arc::new(merged));
    }

    /// Re-merges whenever the base configuration changes, until its sender goes away.
    pub async fn follow(self: Arc<Self>) {
        let mut base = self.base.clone();
        while base.changed().await.is_ok() {
            let api = self
                .api
                .lock()
                .expect("the settings lock is never poisoned");
            self.publish(&api);
        }
    }
}

/// Merges API-made settings into `base`. A YAML-defined healthcheck or system keeps its own
/// settings; an entity the base lacks is added with `Source::Api`.
pub fn merge(base: &ConfigSnapshot, api: &ApiSettings) -> ConfigSnapshot {
    let mut merged = base.clone();
    for (name, settings) in &api.templates {
        let entry = merged
            .healthchecks
            .entry(name.clone())
            .or_insert_with(|| api_healthcheck(name));
        if entry.source == Source::Api {
            entry.anomaly = Some(settings.clone());
        }
    }
    for ((system, healthcheck), settings) in &api.assignments {
        let entry = merged
            .systems
            .entry(system.clone())
            .or_insert_with(|| api_system(system));
        // Only the settings are added: listing the healthcheck as assigned would make the
        // probes run it for this system.
        if entry.source == Source::Api {
            entry.anomaly.insert(healthcheck.clone(), settings.clone());
        }
    }
    merged
}

/// A healthcheck known only from pushed results: no strategy anomalyd runs itself.
fn api_healthcheck(name: &str) -> Healthcheck {
    Healthcheck {
        name: name.to_owned(),
        title: None,
        strategy: "external".to_owned(),
        interval_secs: 60,
        config: Json::Null,
        collectors: Vec::new(),
        anomaly: None,
        source: Source::Api,
    }
}

fn api_system(name: &str) -> System {
    System {
        name: name.to_owned(),
        title: None,
        description: None,
        healthchecks: Vec::new(),
        anomaly: BTreeMap::new(),
        healthcheck_options: BTreeMap::new(),
        source: Source::Api,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn yaml() -> Source {
        Source::Yaml {
            file: PathBuf::from("checks.yaml"),
            document: 0,
        }
    }

    #[test]
    fn yaml_entities_win_and_api_entities_are_added() {
        let mut base = ConfigSnapshot::default();
        let mut managed = api_healthcheck("web");
        managed.source = yaml();
        base.healthchecks.insert("web".into(), managed);
        let mut api = ApiSettings::default();
        let template = TemplateSettings {
            notify: false,
            ..TemplateSettings::default()
        };
        api.templates.insert("web".into(), template.clone());
        api.templates.insert("db".into(), template);
        let merged = merge(&base, &api);
        assert_eq!(merged.healthchecks["web"].anomaly, None);
        assert_eq!(merged.healthchecks["db"].source, Source::Api);
        assert_eq!(merged.template("db").map(|t| t.notify), Some(false));
    }

    #[test]
    fn bad_values_name_their_key() {
        let body = serde_json::json!({"fieldOverrides": {"collectors.a.b": {"sensitivity": -1}}});
        let err = parse_assignment(&body).expect_err("negative sensitivity");
        assert!(err.to_string().contains("sensitivity"), "{err}");
        let err = parse_template(&serde_json::json!({"baselineWindow": "3w"})).expect_err("3w");
        assert!(err.to_string().starts_with("baselineWindow"), "{err}");
        let err = parse_template(&serde_json::json!({"colour": 1})).expect_err("unknown");
        assert!(err.to_string().starts_with("colour"), "{err}");
    }

    #[test]
    fn stored_rows_load_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = Database::create(dir.path().join("s.redb")).expect("database");
        let (_sender, base) = watch::channel(Arc::new(ConfigSnapshot::default()));
        let overlay = Overlay::new(base, ApiSettings::default());
        let body = serde_json::json!({"notify": false});
        let settings = parse_assignment(&body).expect("valid");
        overlay
            .set_assignment(&database, "shop", "web", settings)
            .expect("stored");
        let loaded = ApiSettings::load(&database).expect("loads");
        assert_eq!(loaded, overlay.api());
        assert_eq!(
            overlay
                .subscribe()
                .borrow()
                .assignment("shop", "web")
                .and_then(|a| a.notify),
            Some(false)
        );
    }
}
