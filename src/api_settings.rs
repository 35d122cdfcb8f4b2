//! Anomaly settings made through the API for entities the config folder does not define: their
//! redb table, the validation of a request body, and the overlay that merges them into the
//! configuration snapshot the detector and analyzer see. YAML-defined entities always win.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};
use serde_json::Value as Json;
use tokio::sync::watch;

use crate::config::{ConfigSnapshot, Healthcheck, Source, System};
use crate::engine::{
    AssignmentSettings, BaselineWindow, Direction, FieldOverride, SettingsError, TemplateSettings,
    defaults,
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
/// Every problem of the body is listed, each under its full key.
pub fn parse_template(body: &Json) -> Result<TemplateSettings, ApiSettingsError> {
    let mut problems = Vec::new();
    let input = parse_input(body, &mut problems)?;
    let defaults = TemplateSettings::default();
    let settings = TemplateSettings {
        enabled: input.enabled.unwrap_or(defaults.enabled),
        baseline_window: input.baseline_window.unwrap_or(defaults.baseline_window),
        notify: input.notify.unwrap_or(defaults.notify),
        field_overrides: input.field_overrides,
    };
    problems.extend(settings.validate().err().unwrap_or_default());
    finish(settings, problems)
}

/// Parses and validates an assignment settings body. Absent keys inherit from the template.
/// Every problem of the body is listed, each under its full key.
pub fn parse_assignment(body: &Json) -> Result<AssignmentSettings, ApiSettingsError> {
    let mut problems = Vec::new();
    let input = parse_input(body, &mut problems)?;
    let settings = AssignmentSettings {
        enabled: input.enabled,
        baseline_window: input.baseline_window,
        notify: input.notify,
        field_overrides: input.field_overrides,
    };
    problems.extend(settings.validate().err().unwrap_or_default());
    finish(settings, problems)
}

fn finish<T>(settings: T, problems: Vec<SettingsError>) -> Result<T, ApiSettingsError> {
    if problems.is_empty() {
        Ok(settings)
    } else {
        Err(ApiSettingsError::Invalid(problems))
    }
}

/// The keys both settings bodies share. A key with a problem is left out and the problem is
/// recorded, so the range checks that follow still see every other key.
struct Input {
    enabled: Option<bool>,
    baseline_window: Option<BaselineWindow>,
    notify: Option<bool>,
    field_overrides: BTreeMap<String, FieldOverride>,
}

/// Keys a settings body accepts.
const SETTINGS_KEYS: [&str; 4] = ["enabled", "baselineWindow", "notify", "fieldOverrides"];

/// Reads the shared keys. Only a body that is not an object ends the reading early, because
/// none of its keys can be checked.
fn parse_input(body: &Json, problems: &mut Vec<SettingsError>) -> Result<Input, ApiSettingsError> {
    let Some(object) = body.as_object() else {
        let message = format!(
            "expected a JSON object of settings, found {}",
            json_type(body)
        );
        return Err(invalid("body", message));
    };
    for key in object.keys() {
        if !SETTINGS_KEYS.contains(&key.as_str()) {
            let message = format!("unknown key; settings accept {}", SETTINGS_KEYS.join(", "));
            problems.push(problem(key, message));
        }
    }
    Ok(Input {
        enabled: read_bool(object.get("enabled"), "enabled", problems),
        baseline_window: read_window(object.get("baselineWindow"), problems),
        notify: read_bool(object.get("notify"), "notify", problems),
        field_overrides: read_overrides(object.get("fieldOverrides"), problems),
    })
}

fn problem(key: &str, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// Names a JSON type for messages such as "expected an object, found a string".
fn json_type(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Returns a present, non-null value. Null means "inherit", like an absent key.
fn present(value: Option<&Json>) -> Option<&Json> {
    value.filter(|v| !v.is_null())
}

fn read_bool(value: Option<&Json>, key: &str, problems: &mut Vec<SettingsError>) -> Option<bool> {
    let value = present(value)?;
    if let Some(b) = value.as_bool() {
        return Some(b);
    }
    problems.push(problem(
        key,
        format!("invalid value {value}: use true or false"),
    ));
    None
}

fn read_window(value: Option<&Json>, problems: &mut Vec<SettingsError>) -> Option<BaselineWindow> {
    let value = present(value)?;
    let Some(text) = value.as_str() else {
        let message = format!(
            "invalid value {value}: write the window as a string of whole hours or days such \
             as \"36h\" or \"7d\", between 1h and 90d"
        );
        problems.push(problem("baselineWindow", message));
        return None;
    };
    BaselineWindow::parse(text)
        .map_err(|e| problems.push(e))
        .ok()
}

fn read_overrides(
    value: Option<&Json>,
    problems: &mut Vec<SettingsError>,
) -> BTreeMap<String, FieldOverride> {
    let mut overrides = BTreeMap::new();
    let Some(value) = present(value) else {
        return overrides;
    };
    let Some(object) = value.as_object() else {
        let message = format!(
            "expected an object keyed by field path, found {}",
            json_type(value)
        );
        problems.push(problem("fieldOverrides", message));
        return overrides;
    };
    for (path, entry) in object {
        if let Some(field) = read_override(path, entry, problems) {
            overrides.insert(path.clone(), field);
        }
    }
    overrides
}

/// Reads one field override. Keys with a wrong type are recorded and left unset, so the
/// engine's range checks still run on the others.
fn read_override(
    path: &str,
    entry: &Json,
    problems: &mut Vec<SettingsError>,
) -> Option<FieldOverride> {
    let prefix = format!("fieldOverrides.{path}");
    // The rules of the results API, so a stored override can match a series.
    if let Err(reason) = crate::series::check_field_path(path) {
        problems.push(problem(&prefix, reason));
        return None;
    }
    let Some(object) = entry.as_object() else {
        let message = format!("expected an object of settings, found {}", json_type(entry));
        problems.push(problem(&prefix, message));
        return None;
    };
    let mut local = Vec::new();
    for key in object.keys() {
        if !OVERRIDE_KEYS.contains(&key.as_str()) {
            let message = format!(
                "unknown key; a field override accepts {}",
                OVERRIDE_KEYS.join(", ")
            );
            local.push(problem(key, message));
        }
    }
    let field = FieldOverride {
        enabled: read_bool(object.get("enabled"), "enabled", &mut local),
        direction: read_direction(object.get("direction"), &mut local),
        sensitivity: read_number(
            object.get("sensitivity"),
            "sensitivity",
            POSITIVE,
            &mut local,
        ),
        confirmation_window: read_window_count(object.get("confirmationWindow"), &mut local),
        drift_enabled: read_bool(object.get("driftEnabled"), "driftEnabled", &mut local),
        drift_threshold: read_number(
            object.get("driftThreshold"),
            "driftThreshold",
            POSITIVE,
            &mut local,
        ),
        min_absolute_delta: read_number(
            object.get("minAbsoluteDelta"),
            "minAbsoluteDelta",
            NOT_NEGATIVE,
            &mut local,
        ),
        min_relative_delta: read_number(
            object.get("minRelativeDelta"),
            "minRelativeDelta",
            NOT_NEGATIVE,
            &mut local,
        ),
    };
    problems.extend(local.into_iter().map(|p| p.within(&prefix)));
    Some(field)
}

fn read_direction(value: Option<&Json>, problems: &mut Vec<SettingsError>) -> Option<Direction> {
    let value = present(value)?;
    let parsed = match value.as_str() {
        Some(text) => Direction::parse(text),
        None => Err(problem(
            "direction",
            format!(
                "invalid value {value}: use one of {}",
                Direction::NAMES.join(", ")
            ),
        )),
    };
    parsed.map_err(|e| problems.push(e)).ok()
}

/// Range of `sensitivity` and `driftThreshold`, for the message about a value of another type.
const POSITIVE: &str = "a finite number greater than 0";
/// Range of the minimum deltas, for the message about a value of another type.
const NOT_NEGATIVE: &str = "a finite number of 0 or more";

/// Reads a number. The engine's validation checks its range afterwards, so `range` only words
/// the message for a value of another type.
fn read_number(
    value: Option<&Json>,
    key: &str,
    range: &str,
    problems: &mut Vec<SettingsError>,
) -> Option<f64> {
    let value = present(value)?;
    if let Some(n) = value.as_f64() {
        return Some(n);
    }
    problems.push(problem(key, format!("invalid value {value}: use {range}")));
    None
}

/// Reads `confirmationWindow`: a whole number whose range (1 to 100) the engine checks.
fn read_window_count(value: Option<&Json>, problems: &mut Vec<SettingsError>) -> Option<u32> {
    let value = present(value)?;
    if let Some(n) = value.as_u64().and_then(|n| u32::try_from(n).ok()) {
        return Some(n);
    }
    let message = format!(
        "invalid value {value}: use a whole number from 1 to {}",
        defaults::MAX_CONFIRMATION_WINDOW
    );
    problems.push(problem("confirmationWindow", message));
    None
}

/// The configuration the detector and analyzer see: the base snapshot (the config folder, or
/// the one given to `serve`) with the API-made settings merged in.
#[derive(Debug)]
pub struct Overlay {
    base: ConfigFeed,
    /// Held by a settings write across its redb commit, so the stored rows and `api` change in
    /// the same order. Only blocking code takes it. It guards no data, so a poisoned lock is
    /// taken anyway.
    writing: Mutex<()>,
    /// The API-made settings in effect. `follow` takes this lock on an async worker, so it is
    /// held only to read or change the settings and publish them, never across I/O.
    api: Mutex<ApiSettings>,
    merged: watch::Sender<Arc<ConfigSnapshot>>,
}

impl Overlay {
    pub fn new(base: ConfigFeed, api: ApiSettings) -> Arc<Self> {
        let merged = merge(&base.borrow(), &api);
        let (sender, _) = watch::channel(Arc::new(merged));
        Arc::new(Self {
            base,
            writing: Mutex::new(()),
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

    /// Stores a healthcheck's template settings and applies them. Blocking: it waits for a
    /// redb write transaction.
    pub fn set_template(
        &self,
        database: &Database,
        healthcheck: &str,
        settings: TemplateSettings,
    ) -> Result<(), ApiSettingsError> {
        let json = serde_json::to_vec(&settings).expect("settings serialize to JSON");
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        store_row(database, (TEMPLATE, "", healthcheck), &json)?;
        self.update(|api| {
            api.templates.insert(healthcheck.to_owned(), settings);
        });
        Ok(())
    }

    /// Stores a system's assignment settings for one healthcheck and applies them. Blocking: it
    /// waits for a redb write transaction.
    pub fn set_assignment(
        &self,
        database: &Database,
        system: &str,
        healthcheck: &str,
        settings: AssignmentSettings,
    ) -> Result<(), ApiSettingsError> {
        let json = serde_json::to_vec(&settings).expect("settings serialize to JSON");
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        store_row(database, (ASSIGNMENT, system, healthcheck), &json)?;
        let key = (system.to_owned(), healthcheck.to_owned());
        self.update(|api| {
            api.assignments.insert(key, settings);
        });
        Ok(())
    }

    /// Changes the settings in memory and publishes the merge while holding `api`, so a merge
    /// of older settings cannot be sent after it.
    fn update(&self, change: impl FnOnce(&mut ApiSettings)) {
        let mut api = self
            .api
            .lock()
            .expect("the settings lock is never poisoned");
        change(&mut api);
        self.publish(&api);
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
    fn override_paths_follow_results_rules() {
        for path in ["collectors.x.y.z w", "collectors.a.b ", "collectors.A!.b"] {
            let body = serde_json::json!({"fieldOverrides": {path: {"sensitivity": 2}}});
            let err = parse_assignment(&body).expect_err(path);
            assert!(err.to_string().contains("invalid"), "{path}: {err}");
        }
        let body = serde_json::json!({"fieldOverrides": {"collectors.acme.queue.depth-1": {}}});
        assert!(parse_assignment(&body).is_ok());
    }

    fn problem_keys(error: ApiSettingsError) -> Vec<(String, String)> {
        let ApiSettingsError::Invalid(problems) = error else {
            panic!("expected invalid settings, got {error}");
        };
        let pairs = problems
            .into_iter()
            .map(|SettingsError::Invalid { key, message }| (key, message));
        pairs.collect()
    }

    #[test]
    fn every_problem_is_listed_with_its_key() {
        let body = serde_json::json!({
            "baselineWindow": "100d",
            "notify": "yes",
            "fieldOverrides": {"collectors.a.b": {
                "direction": "up",
                "sensitivity": "high",
                "confirmationWindow": 0,
                "colour": 1,
            }},
        });
        let problems = problem_keys(parse_template(&body).expect_err("invalid"));
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "baselineWindow",
                "notify",
                "fieldOverrides.collectors.a.b.colour",
                "fieldOverrides.collectors.a.b.direction",
                "fieldOverrides.collectors.a.b.sensitivity",
                "fieldOverrides.collectors.a.b.confirmationWindow",
            ]
        );
        let message = |key: &str| {
            let found = problems.iter().find(|(k, _)| k.ends_with(key));
            found.map(|(_, m)| m.clone()).expect("problem listed")
        };
        assert!(message("direction").contains("higher-is-better, lower-is-better"));
        assert!(!message("direction").contains("unknown variant"));
        assert!(message("sensitivity").contains("greater than 0"));
        assert!(message("confirmationWindow").contains("from 1 to 100"));
        assert!(message("baselineWindow").contains("between 1h and 90d"));
        assert!(message("notify").contains("true or false"));
    }

    /// Waits until `done` holds, failing the test after 2 s.
    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while !done() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out after 2 s waiting until {what}"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// `follow` runs on a runtime and thread of its own, so a `follow` blocked on a lock fails
    /// the test's deadline and does not stall the test.
    #[test]
    fn base_change_merged_during_write() {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = Arc::new(Database::create(dir.path().join("s.redb")).expect("database"));
        let (base_sender, base) = watch::channel(Arc::new(ConfigSnapshot::default()));
        let overlay = Overlay::new(base, ApiSettings::default());
        let following = {
            let overlay = overlay.clone();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            std::thread::spawn(move || runtime.block_on(overlay.follow()))
        };

        // The settings commit waits behind this transaction, as it would behind the writer.
        let blocking_write = database.begin_write().expect("begin the blocking write");
        let writing = {
            let (overlay, database) = (overlay.clone(), database.clone());
            let settings = TemplateSettings {
                notify: false,
                ..TemplateSettings::default()
            };
            std::thread::spawn(move || overlay.set_template(&database, "web", settings))
        };
        wait_until("the settings write starts", || {
            overlay.writing.try_lock().is_err()
        });

        let merged = overlay.subscribe();
        let mut changed = ConfigSnapshot::default();
        let mut db = api_healthcheck("db");
        db.source = yaml();
        changed.healthchecks.insert("db".into(), db);
        base_sender.send_replace(Arc::new(changed));
        wait_until("the base change is merged", || {
            merged.borrow().healthchecks.contains_key("db")
        });
        assert_eq!(overlay.api(), ApiSettings::default());

        blocking_write.abort().expect("abort the blocking write");
        let stored = writing.join().expect("settings write thread");
        stored.expect("settings stored");
        let snapshot = merged.borrow().clone();
        assert!(snapshot.healthchecks.contains_key("db"));
        assert_eq!(snapshot.template("web").map(|t| t.notify), Some(false));
        drop(base_sender);
        following.join().expect("follow thread");
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
