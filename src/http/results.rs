//! `POST /api/v1/results`: parse, validate, then store through the writer; the reply comes
//! after the commit.

use http::{HeaderName, HeaderValue, StatusCode, header};
use hyper::body::Incoming;
use tokio::sync::Semaphore;

use super::{AppState, Response, blocking, json_response, read_body};
use crate::clock::{Clock, SystemClock};
use crate::http::ApiError;
use crate::ingest::{self, Framing, IngestError, MAX_BODY_BYTES};
use crate::series::CheckResult;
use crate::writer::{Ingested, RequestKey};

/// Result bodies that may be parsed at once, in KiB: four of the maximum size. A body past the
/// budget waits until one ahead of it is parsed, so many large concurrent requests cannot
/// multiply the memory that parsing takes. The budget is taken once the body has arrived,
/// so a slow sender takes none of it.
const RESULT_BODY_BUDGET_KIB: usize = 4 * MAX_BODY_BYTES / 1024;

/// Returns the semaphore that [`post`] draws on, with [`RESULT_BODY_BUDGET_KIB`] permits.
pub fn result_body_budget() -> Semaphore {
    Semaphore::new(RESULT_BODY_BUDGET_KIB)
}

pub async fn post(req: http::Request<Incoming>, state: &AppState) -> Result<Response, ApiError> {
    let framing = framing(&req);
    let key_header = idempotency_key(&req)?;
    if declared_length(&req).is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let body = read_body(req.into_body(), MAX_BODY_BYTES, state).await?;
    let kib = u32::try_from(body.len().div_ceil(1024).max(1)).expect("the body limit fits in u32");
    let _budget = state
        .result_bodies
        .acquire_many(kib)
        .await
        .map_err(|_| ApiError::Internal("result body budget closed".into()))?;
    if body.starts_with(UTF8_BOM) {
        return Err(ApiError::bad_request(
            "malformed-json",
            "request body starts with a UTF-8 byte order mark; save it without one",
        ));
    }
    let (results, key) = blocking(move || {
        let key = key_header
            .map(|value| RequestKey::new(value.as_bytes(), &body))
            .transpose()
            .map_err(|e| ApiError::bad_request("bad-idempotency-key", e.to_string()))?;
        Ok::<_, ApiError>((parse(&body, framing)?, key))
    })
    .await?;
    ingest::check_not_ahead(&results, SystemClock.now())?;
    let Some(key) = key else {
        let counts = state.writer.ingest(results).await?;
        return Ok(json_response(StatusCode::OK, &counts));
    };
    Ok(match state.writer.ingest_once(results, key).await? {
        Ingested::Stored(counts) => json_response(StatusCode::OK, &counts),
        Ingested::Replayed(counts) => {
            let mut response = json_response(StatusCode::OK, &counts);
            response
                .headers_mut()
                .insert(REPLAYED, HeaderValue::from_static("true"));
            response
        }
    })
}

/// Request header naming a request, so a retry of it is not stored twice.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Reply header set when the reply is that of an earlier request with the same key.
const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The UTF-8 encoding of U+FEFF, which some editors write at the start of a file.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Parses a body. A JSON body with more after its first value is often NDJSON sent with the
/// wrong content type, so that syntax error gets a hint.
fn parse(body: &[u8], framing: Framing) -> Result<Vec<CheckResult>, ApiError> {
    match ingest::parse(body, framing) {
        Err(IngestError::Syntax(reason)) if reason.starts_with("trailing characters") => {
            let error = IngestError::Syntax(reason);
            Err(ApiError::bad_request(
                "malformed-json",
                format!(
                    "{error}; to send one result per line, send Content-Type: \
                     application/x-ndjson"
                ),
            ))
        }
        other => Ok(other?),
    }
}

/// Returns the `Idempotency-Key` header value, rejecting a request that sends several.
fn idempotency_key(req: &http::Request<Incoming>) -> Result<Option<HeaderValue>, ApiError> {
    let mut values = req.headers().get_all(IDEMPOTENCY_KEY).iter();
    let first = values.next().cloned();
    if values.next().is_some() {
        return Err(ApiError::bad_request(
            "bad-idempotency-key",
            "request carries several Idempotency-Key headers; send exactly one",
        ));
    }
    Ok(first)
}

fn framing(req: &http::Request<Incoming>) -> Framing {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    match content_type {
        Some(t) if t.starts_with("application/x-ndjson") => Framing::Ndjson,
        _ => Framing::Json,
    }
}

fn declared_length(req: &http::Request<Incoming>) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}
