//! Delivery status (`GET /api/v1/deliveries`) and mutes (`GET`, `POST`, `DELETE /api/v1/mutes`).

use http::StatusCode;
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use super::query::Query;
use super::{AppState, Response, blocking, json_response, read_body};
use crate::http::ApiError;
use crate::notify::{self, DeliveryFilter, DeliveryState, Mute, OutboxRecord};
use crate::views::rfc3339;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// Largest accepted mute body; a mute is two short names.
const MAX_MUTE_BODY_BYTES: usize = 64 * 1024;

/// One outbox row as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryView {
    id: u64,
    notifier: String,
    anomaly_id: u64,
    /// `confirmed`, `recovered`, `drift-confirmed` or `drift-recovered`, read from the stored
    /// payload; `None` when the payload does not decode.
    transition: Option<String>,
    idempotency_key: String,
    state: DeliveryState,
    attempts: u32,
    created_at: String,
    next_attempt_at: Option<String>,
    last_attempt_at: Option<String>,
    finished_at: Option<String>,
    /// Error of the latest failed attempt of a pending or failed row: the current problem.
    last_error: Option<String>,
    /// Error of the last failed attempt before a delivered row succeeded, which explains its
    /// retries. It is not a current problem.
    error_before_delivery: Option<String>,
}

impl DeliveryView {
    fn new(id: u64, r: OutboxRecord) -> Self {
        let time = |ms: i64| rfc3339(crate::engine::Timestamp::from_millis(ms));
        let pending = r.state == DeliveryState::Pending;
        let (last_error, error_before_delivery) = match r.state {
            DeliveryState::Delivered => (None, r.last_error),
            DeliveryState::Pending | DeliveryState::Failed => (r.last_error, None),
        };
        Self {
            id,
            notifier: r.notifier,
            anomaly_id: r.anomaly_id,
            transition: transition(&r.payload),
            idempotency_key: r.idempotency_key,
            state: r.state,
            attempts: r.attempts,
            created_at: time(r.created_at_ms),
            next_attempt_at: pending.then(|| time(r.next_attempt_at_ms)),
            last_attempt_at: r.last_attempt_at_ms.map(time),
            finished_at: r.finished_at_ms.map(time),
            last_error,
            error_before_delivery,
        }
    }
}

/// Reads the transition name from a stored notification payload.
fn transition(payload: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Transition {
        transition: String,
    }
    let decoded: Transition = serde_json::from_str(payload).ok()?;
    Some(decoded.transition)
}

pub async fn deliveries(
    req: http::Request<Incoming>,
    state: &AppState,
) -> Result<Response, ApiError> {
    let q = Query::parse_allowed(req.uri().query(), &["state", "notifier", "limit"])?;
    let filter = DeliveryFilter {
        state: delivery_state(&q)?,
        notifier: q.text("notifier"),
        limit: q.count("limit", DEFAULT_LIMIT, MAX_LIMIT)?,
    };
    let store = state.store.clone();
    let rows = blocking(move || Ok(notify::list(store.database(), &filter)?)).await?;
    let views: Vec<DeliveryView> = rows
        .into_iter()
        .map(|(id, r)| DeliveryView::new(id, r))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "deliveries": views }),
    ))
}

fn delivery_state(q: &Query) -> Result<Option<DeliveryState>, ApiError> {
    match q.text("state").as_deref() {
        None => Ok(None),
        Some("pending") => Ok(Some(DeliveryState::Pending)),
        Some("delivered") => Ok(Some(DeliveryState::Delivered)),
        Some("failed") => Ok(Some(DeliveryState::Failed)),
        Some(other) => Err(ApiError::bad_request(
            "invalid-parameter",
            format!("invalid query parameter state={other:?}: use pending, delivered or failed"),
        )),
    }
}

/// A mute as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MuteView {
    system: String,
    /// `None` mutes the whole system.
    field: Option<String>,
    muted_at: String,
}

pub async fn list_mutes(state: &AppState) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let mutes = blocking(move || Ok(notify::mutes(store.database())?)).await?;
    let views: Vec<MuteView> = mutes
        .into_iter()
        .map(|(m, at)| MuteView {
            system: m.system,
            field: m.field,
            muted_at: rfc3339(crate::engine::Timestamp::from_millis(at)),
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "mutes": views }),
    ))
}

pub async fn mute(req: http::Request<Incoming>, state: &AppState) -> Result<Response, ApiError> {
    let mute = read_mute(req, state).await?;
    state.writer.mute(mute.clone()).await?;
    tracing::info!(system = %mute.system, field = mute.field.as_deref(), "notifications muted");
    Ok(json_response(StatusCode::OK, &mute))
}

pub async fn unmute(req: http::Request<Incoming>, state: &AppState) -> Result<Response, ApiError> {
    let mute = read_mute(req, state).await?;
    let existed = state.writer.unmute(mute.clone()).await?;
    tracing::info!(system = %mute.system, field = mute.field.as_deref(), existed, "notifications unmuted");
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "system": mute.system, "field": mute.field, "removed": existed }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MuteBody {
    system: String,
    #[serde(default)]
    field: Option<String>,
}

/// Reads a mute from the JSON body, or from the `system` and `field` query parameters when the
/// body is empty. Every invalid value is listed in one 400 reply, and nothing is stored.
async fn read_mute(req: http::Request<Incoming>, state: &AppState) -> Result<Mute, ApiError> {
    let q = Query::parse_allowed(req.uri().query(), &["system", "field"])?;
    let method = req.method().clone();
    let body = read_body(req.into_body(), MAX_MUTE_BODY_BYTES, state).await?;
    let (system, field) = if !body.iter().all(u8::is_ascii_whitespace) {
        let parsed: MuteBody = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                "invalid-mute",
                format!(
                    "request body is not a valid mute: {e}; send {MUTE_SHAPE} with field optional"
                ),
            )
        })?;
        (parsed.system, parsed.field.filter(|f| !f.is_empty()))
    } else if let Some(system) = q.text("system") {
        (system, q.text("field"))
    } else {
        let message = if method == http::Method::DELETE {
            format!(
                "request has no mute: send {MUTE_SHAPE} as the body, or \
                 ?system=<name>&field=<path> in the query"
            )
        } else {
            format!("request body is missing: send {MUTE_SHAPE} with field optional")
        };
        return Err(ApiError::bad_request("invalid-mute", message));
    };
    check_mute(&system, field.as_deref())?;
    Ok(Mute { system, field })
}

/// The JSON shape of a mute, for error messages.
const MUTE_SHAPE: &str = r#"{"system": "<name>", "field": "collectors.<collector id>.<field>"}"#;

/// Checks a mute's names with the rules of the results API. A bare field name would never match
/// a series, so only the canonical path is accepted.
fn check_mute(system: &str, field: Option<&str>) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    if let Err(reason) = crate::ingest::check_name(system) {
        problems.push(("system", format!("system {reason}")));
    }
    if let Some(field) = field
        && let Err(reason) = crate::series::check_field_path(field)
    {
        problems.push(("field", reason));
    }
    if problems.is_empty() {
        return Ok(());
    }
    let message = problems
        .iter()
        .map(|(_, reason)| reason.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    Err(ApiError::BadRequest {
        code: "invalid-mute",
        message: format!("invalid mute, nothing was stored: {message}"),
        details: problems
            .iter()
            .map(|(key, reason)| serde_json::json!({"field": key, "reason": reason}))
            .collect(),
    })
}
