//! `POST /api/v1/results`: parse, validate, then store through the writer; the reply comes
//! after the commit.

use http::{StatusCode, header};
use hyper::body::Incoming;

use super::{AppState, Response, blocking, json_response, read_body};
use crate::clock::{Clock, SystemClock};
use crate::http::ApiError;
use crate::ingest::{self, Framing, MAX_BODY_BYTES};

pub async fn post(req: http::Request<Incoming>, state: &AppState) -> Result<Response, ApiError> {
    let framing = framing(&req);
    if declared_length(&req).is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let body = read_body(req.into_body(), MAX_BODY_BYTES, state).await?;
    let results = blocking(move || Ok(ingest::parse(&body, framing)?)).await?;
    ingest::check_not_ahead(&results, SystemClock.now())?;
    let counts = state.writer.ingest(results).await?;
    Ok(json_response(StatusCode::OK, &counts))
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
