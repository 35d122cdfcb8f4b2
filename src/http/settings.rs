//! The settings API: template and assignment settings (read, and written for entities the
//! config folder does not define) and the effective settings of one field with their layers.

use http::StatusCode;
use hyper::body::Incoming;
use serde_json::{Value as Json, json};

use super::query::Query;
use super::{AppState, Response, blocking, json_response, read_body};
use crate::api_settings::{self, ApiSettingsError};
use crate::config::{ConfigSnapshot, Source};
use crate::detector::{effective_settings, schema_field, split_field_path};
use crate::gitops::ensure_writable;
use crate::http::ApiError;
use crate::series::SeriesKey;
use crate::store::read::{self, SeriesFilter};

/// Settings bodies are small; this is plenty.
const MAX_SETTINGS_BYTES: usize = 256 << 10;

/// Longest accepted system or healthcheck name.
const MAX_NAME_LEN: usize = 63;

impl From<ApiSettingsError> for ApiError {
    fn from(e: ApiSettingsError) -> Self {
        match e {
            ApiSettingsError::Invalid(problems) => Self::BadRequest {
                code: "invalid-settings",
                message: ApiSettingsError::Invalid(problems.clone()).to_string(),
                details: problems
                    .iter()
                    .map(|p| {
                        let crate::engine::SettingsError::Invalid { key, message } = p;
                        json!({"key": key, "message": message})
                    })
                    .collect(),
            },
            other => Self::Internal(other.to_string()),
        }
    }
}

/// Rejects a name the results API would not accept either.
fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    let mut chars = name.chars();
    let first = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if first && rest && name.len() <= MAX_NAME_LEN {
        return Ok(());
    }
    Err(ApiError::bad_request(
        "invalid-name",
        format!(
            "{what} name {name:?} is not valid: use lowercase letters, digits and hyphens, \
             at most {MAX_NAME_LEN} characters"
        ),
    ))
}

/// Returns the source as JSON, and the file that owns the entity when it is YAML-defined.
fn ownership(source: Option<&Source>) -> (Json, bool, Option<String>) {
    match source {
        None => (Json::Null, true, None),
        Some(Source::Api) => (json!({"type": "api"}), true, None),
        Some(Source::Yaml { file, document }) => (
            json!({"type": "yaml", "file": file, "document": document}),
            false,
            Some(file.display().to_string()),
        ),
    }
}

/// Returns whether results were ever stored for the filter.
async fn seen(state: &AppState, filter: SeriesFilter) -> Result<bool, ApiError> {
    let store = state.store.clone();
    blocking(move || Ok(!read::series(store.database(), &filter)?.is_empty())).await
}

async fn read_json(req: http::Request<Incoming>, state: &AppState) -> Result<Json, ApiError> {
    let body = read_body(req.into_body(), MAX_SETTINGS_BYTES, state).await?;
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("malformed-json", format!("settings body is not JSON: {e}"))
    })
}

fn template_view(config: &ConfigSnapshot, name: &str) -> Json {
    let healthcheck = config.healthchecks.get(name);
    let (source, editable, file) = ownership(healthcheck.map(|h| &h.source));
    let settings = healthcheck
        .and_then(|h| h.anomaly.clone())
        .unwrap_or_default();
    json!({
        "healthcheck": name,
        "source": source,
        "editable": editable,
        "file": file,
        "settings": settings,
    })
}

fn assignment_view(config: &ConfigSnapshot, system: &str, healthcheck: &str) -> Json {
    let owner = config.systems.get(system);
    let (source, editable, file) = ownership(owner.map(|s| &s.source));
    let settings = config
        .assignment(system, healthcheck)
        .cloned()
        .unwrap_or_default();
    json!({
        "system": system,
        "healthcheck": healthcheck,
        "source": source,
        "editable": editable,
        "file": file,
        "settings": settings,
    })
}

/// Returns whether a healthcheck is configured (in the folder or through the API) or named by
/// a stored result.
async fn healthcheck_known(state: &AppState, name: &str) -> Result<bool, ApiError> {
    if state.config.borrow().healthchecks.contains_key(name) {
        return Ok(true);
    }
    let filter = SeriesFilter {
        healthcheck: Some(name.to_owned()),
        ..SeriesFilter::default()
    };
    seen(state, filter).await
}

/// `GET /api/v1/healthchecks/{name}/settings`
pub async fn get_template(name: &str, state: &AppState) -> Result<Response, ApiError> {
    if !healthcheck_known(state, name).await? {
        return Err(ApiError::NotFound(format!(
            "healthcheck {name} is neither configured nor seen in results"
        )));
    }
    let config = state.config.borrow().clone();
    Ok(json_response(StatusCode::OK, &template_view(&config, name)))
}

/// `PUT /api/v1/healthchecks/{name}/settings`
pub async fn put_template(
    name: String,
    req: http::Request<Incoming>,
    state: &AppState,
) -> Result<Response, ApiError> {
    check_name("healthcheck", &name)?;
    if let Some(h) = state.overlay.base().healthchecks.get(&name) {
        ensure_writable("Healthcheck", &name, &h.source)
            .map_err(|e| ApiError::Conflict(e.to_string()))?;
    }
    let settings = api_settings::parse_template(&read_json(req, state).await?)?;
    // Storing settings for an unknown name creates an API entity, so a misspelt name would
    // leave a healthcheck behind that nothing reports to.
    if !healthcheck_known(state, &name).await? {
        return Err(ApiError::NotFound(format!(
            "healthcheck {name} not found: it appears once a result names it or a YAML file \
             declares it. Check the spelling, or send a result first"
        )));
    }
    let (overlay, store, key) = (state.overlay.clone(), state.store.clone(), name.clone());
    blocking(move || Ok(overlay.set_template(store.database(), &key, settings)?)).await?;
    tracing::info!(
        healthcheck = name,
        "template settings changed through the API"
    );
    let config = state.config.borrow().clone();
    Ok(json_response(
        StatusCode::OK,
        &template_view(&config, &name),
    ))
}

/// `GET /api/v1/systems/{system}/healthchecks/{healthcheck}/settings`
pub async fn get_assignment(
    system: &str,
    healthcheck: &str,
    state: &AppState,
) -> Result<Response, ApiError> {
    ensure_assignment_known(state, system, healthcheck).await?;
    let config = state.config.borrow().clone();
    let view = assignment_view(&config, system, healthcheck);
    Ok(json_response(StatusCode::OK, &view))
}

/// Rejects a system and healthcheck pair that no configuration assigns and no result names, so
/// a misspelt name never becomes an API system that nothing reports to.
async fn ensure_assignment_known(
    state: &AppState,
    system: &str,
    healthcheck: &str,
) -> Result<(), ApiError> {
    let configured = state.config.borrow().systems.get(system).is_some_and(|s| {
        s.healthchecks.iter().any(|h| h == healthcheck) || s.anomaly.contains_key(healthcheck)
    });
    let filter = SeriesFilter {
        system: Some(system.to_owned()),
        healthcheck: Some(healthcheck.to_owned()),
        ..SeriesFilter::default()
    };
    if configured || seen(state, filter).await? {
        return Ok(());
    }
    Err(ApiError::NotFound(format!(
        "system {system} has no healthcheck {healthcheck} in the configuration or in results: \
         the pair appears once a result names both or a YAML file assigns it. Check the spelling, \
         or send a result first"
    )))
}

/// `PUT /api/v1/systems/{system}/healthchecks/{healthcheck}/settings`
pub async fn put_assignment(
    system: String,
    healthcheck: String,
    req: http::Request<Incoming>,
    state: &AppState,
) -> Result<Response, ApiError> {
    check_name("system", &system)?;
    check_name("healthcheck", &healthcheck)?;
    if let Some(s) = state.overlay.base().systems.get(&system) {
        ensure_writable("System", &system, &s.source)
            .map_err(|e| ApiError::Conflict(e.to_string()))?;
    }
    let settings = api_settings::parse_assignment(&read_json(req, state).await?)?;
    ensure_assignment_known(state, &system, &healthcheck).await?;
    let (overlay, store) = (state.overlay.clone(), state.store.clone());
    let (s, h) = (system.clone(), healthcheck.clone());
    blocking(move || Ok(overlay.set_assignment(store.database(), &s, &h, settings)?)).await?;
    tracing::info!(
        system,
        healthcheck,
        "assignment settings changed through the API"
    );
    let config = state.config.borrow().clone();
    let view = assignment_view(&config, &system, &healthcheck);
    Ok(json_response(StatusCode::OK, &view))
}

/// `GET /api/v1/fields/effective?system=..&healthcheck=..&field=..`
pub async fn effective(
    req: http::Request<Incoming>,
    state: &AppState,
) -> Result<Response, ApiError> {
    let q = Query::parse_allowed(
        req.uri().query(),
        &["system", "healthcheck", "environment", "field"],
    )?;
    let key = SeriesKey {
        system: q.required_name("system")?,
        healthcheck: q.required_name("healthcheck")?,
        environment: q.name("environment")?,
        field_path: q.required_field_path("field")?,
    };
    let Some((collector, field)) = split_field_path(&key.field_path) else {
        return Err(ApiError::bad_request(
            "invalid-parameter",
            format!(
                "field {:?} must read collectors.<collector id>.<field>",
                key.field_path
            ),
        ));
    };
    let config = state.config.borrow().clone();
    let effective = effective_settings(&config, &key);
    let schema = schema_field(&config, &key);
    let template = template_view(&config, &key.healthcheck);
    let assignment = assignment_view(&config, &key.system, &key.healthcheck);
    let body = json!({
        "system": key.system,
        "healthcheck": key.healthcheck,
        "environment": key.environment,
        "field": key.field_path,
        "collector": collector,
        "fieldName": field,
        "schema": schema,
        "settings": effective,
        "rule": effective.rule(),
        "template": template,
        "assignment": assignment,
    });
    Ok(json_response(StatusCode::OK, &body))
}
