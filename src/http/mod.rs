//! The HTTP API: routing, the results endpoint, the read API, suppression and the event stream.

mod error;
mod guard;
mod inventory;
mod notify;
mod page;
mod query;
mod reads;
mod results;
mod settings;
mod sse;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited, combinators::BoxBody};
use hyper::body::Incoming;
use tokio::sync::{Semaphore, watch};

pub use error::ApiError;
pub use results::result_body_budget;

use crate::api_settings::Overlay;
use crate::config::Secret;
use crate::events::EventHub;
use crate::gitops::Reconciler;
use crate::store::Store;
use crate::writer::{ConfigFeed, WriterHandle};

/// Response body of every route: a full buffer or the event stream.
pub type Body = BoxBody<Bytes, Infallible>;
pub type Response = http::Response<Body>;

/// Shared state of every request handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub writer: WriterHandle,
    pub events: Arc<EventHub>,
    /// The merged configuration: the folder's, with API-made settings.
    pub config: ConfigFeed,
    /// API-made settings and the configuration without them.
    pub overlay: Arc<Overlay>,
    /// The GitOps folder's reconciler, when serving from a config folder.
    pub gitops: Option<Arc<Reconciler>>,
    /// Bearer token that writes must carry, when one is configured.
    pub token: Option<Arc<Secret>>,
    /// Counters of the notification delivery worker.
    pub deliveries: Arc<crate::notify::DeliveryMetrics>,
    /// Turns true when the server shuts down, so open event streams end.
    pub stopping: watch::Receiver<bool>,
    /// Maximum time a handler waits for the rest of a request body.
    pub body_read_timeout: Duration,
    /// Memory budget of the result bodies being parsed, in KiB.
    pub result_bodies: Arc<Semaphore>,
}

/// Handles one request. Every error is turned into a response here.
pub async fn handle(req: http::Request<Incoming>, state: AppState) -> Result<Response, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let checked =
        guard::check_write(&req, state.token.as_deref()).and_then(|()| check_encoding(&req));
    let mut response = match checked {
        Ok(()) => route(req, &state).await,
        Err(rejected) => Err(rejected),
    }
    .unwrap_or_else(ApiError::into_response);
    page::secure(&mut response);
    tracing::debug!(%method, path, status = response.status().as_u16(), "request");
    Ok(response)
}

/// Rejects a compressed request body, which no route decodes, so that it fails with a clear
/// error rather than as malformed JSON or, for a body a route ignores, not at all.
fn check_encoding(req: &http::Request<Incoming>) -> Result<(), ApiError> {
    let encodings = req.headers().get_all(header::CONTENT_ENCODING).iter();
    for value in encodings {
        let text = String::from_utf8_lossy(value.as_bytes());
        let mut used = text.split(',').map(str::trim).filter(|e| !e.is_empty());
        if let Some(encoding) = used.find(|e| !e.eq_ignore_ascii_case("identity")) {
            return Err(ApiError::UnsupportedEncoding(encoding.to_owned()));
        }
    }
    Ok(())
}

async fn route(req: http::Request<Incoming>, state: &AppState) -> Result<Response, ApiError> {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    if method == Method::GET
        && let Some(asset) = page::asset(&path)
    {
        return Ok(asset);
    }
    match (&method, segments.as_slice()) {
        (&Method::GET, ["api", "v1", "systems"]) => inventory::systems(state).await,
        (&Method::GET, ["api", "v1", "systems", name]) => inventory::system(name, state).await,
        (&Method::GET, ["api", "v1", "healthchecks"]) => inventory::healthchecks(state).await,
        (&Method::GET, ["api", "v1", "catalogue"]) => inventory::catalogue(state),
        (&Method::GET, ["api", "v1", "fields", "effective"]) => {
            settings::effective(req, state).await
        }
        (&Method::GET, ["api", "v1", "healthchecks", name, "settings"]) => {
            settings::get_template(name, state).await
        }
        (&Method::PUT, ["api", "v1", "healthchecks", name, "settings"]) => {
            settings::put_template((*name).to_owned(), req, state).await
        }
        (
            &Method::GET,
            [
                "api",
                "v1",
                "systems",
                system,
                "healthchecks",
                hc,
                "settings",
            ],
        ) => settings::get_assignment(system, hc, state).await,
        (
            &Method::PUT,
            [
                "api",
                "v1",
                "systems",
                system,
                "healthchecks",
                hc,
                "settings",
            ],
        ) => {
            let (system, hc) = ((*system).to_owned(), (*hc).to_owned());
            settings::put_assignment(system, hc, req, state).await
        }
        (&Method::GET, ["healthz"]) => Ok(healthz(state.writer.stats().storage_failure())),
        (&Method::GET, ["metrics"]) => metrics(state).await,
        (&Method::POST, ["api", "v1", "results"]) => results::post(req, state).await,
        (&Method::GET, ["api", "v1", "anomalies"]) => reads::anomalies(req, state).await,
        (&Method::GET, ["api", "v1", "anomalies", id]) => {
            reads::anomaly(parse_id(id)?, state).await
        }
        (&Method::POST, ["api", "v1", "anomalies", id, "suppress"]) => {
            reads::suppress(parse_id(id)?, true, state).await
        }
        (&Method::POST, ["api", "v1", "anomalies", id, "unsuppress"]) => {
            reads::suppress(parse_id(id)?, false, state).await
        }
        (&Method::GET, ["api", "v1", "baselines"]) => reads::baselines(req, state).await,
        (&Method::GET, ["api", "v1", "series"]) => reads::series(req, state).await,
        (&Method::GET, ["api", "v1", "series", "samples"]) => reads::samples(req, state).await,
        (&Method::GET, ["api", "v1", "events"]) => Ok(sse::stream(&req, state)),
        (&Method::GET, ["api", "v1", "gitops"]) => gitops_status(state),
        (&Method::GET, ["api", "v1", "deliveries"]) => notify::deliveries(req, state).await,
        (&Method::GET, ["api", "v1", "mutes"]) => notify::list_mutes(state).await,
        (&Method::POST, ["api", "v1", "mutes"]) => notify::mute(req, state).await,
        (&Method::DELETE, ["api", "v1", "mutes"]) => notify::unmute(req, state).await,
        _ => Err(match allowed_methods(&path, segments.as_slice()) {
            Some(allow) => ApiError::MethodNotAllowed { allow },
            None => ApiError::NotFound(format!("no route for {method} {path}")),
        }),
    }
}

/// Returns the `Allow` value of a path that `route` serves, or `None` for an unknown path.
/// Every arm of `route` must be listed here, so a wrong method gets 405 and not 404.
fn allowed_methods(path: &str, segments: &[&str]) -> Option<&'static str> {
    if page::asset(path).is_some() {
        return Some("GET");
    }
    let allow = match segments {
        ["healthz"] | ["metrics"] => "GET",
        ["api", "v1", "results"] => "POST",
        ["api", "v1", "mutes"] => "GET, POST, DELETE",
        ["api", "v1", "anomalies", _, "suppress" | "unsuppress"] => "POST",
        ["api", "v1", "healthchecks", _, "settings"]
        | ["api", "v1", "systems", _, "healthchecks", _, "settings"] => "GET, PUT",
        [
            "api",
            "v1",
            "anomalies" | "baselines" | "series" | "events" | "systems" | "healthchecks"
            | "catalogue" | "gitops" | "deliveries",
        ]
        | ["api", "v1", "anomalies" | "systems", _]
        | ["api", "v1", "series", "samples"]
        | ["api", "v1", "fields", "effective"] => "GET",
        _ => return None,
    };
    Some(allow)
}

/// Returns the status of every document of the config folder.
fn gitops_status(state: &AppState) -> Result<Response, ApiError> {
    let reconciler = state.gitops.as_ref().ok_or_else(|| {
        ApiError::NotFound("no config folder is served; start with --config-dir".into())
    })?;
    let body = reconciler.status_json();
    Ok(http::Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)).boxed())
        .expect("a response with a valid status and header builds"))
}

/// Serves the Prometheus exposition.
async fn metrics(state: &AppState) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let (totals, outbox_depth) = blocking(move || {
        let totals = crate::store::read::totals(store.database())?;
        let depth = crate::notify::pending_count(store.database())?;
        Ok((totals, depth))
    })
    .await?;
    let gitops_errors = state.gitops.as_ref().map(|reconciler| {
        let documents = reconciler.status();
        documents
            .iter()
            .filter(|d| d.state == crate::gitops::DocumentState::Error)
            .count() as u64
    });
    let gitops_folder_unreadable = state
        .gitops
        .as_ref()
        .is_some_and(|reconciler| reconciler.folder_error().is_some());
    let scrape = crate::metrics::Scrape {
        writer: state.writer.stats().snapshot(),
        totals,
        gitops_errors,
        gitops_folder_unreadable,
        outbox: crate::metrics::outbox(outbox_depth, &state.deliveries),
        process: crate::metrics::Process::read(),
    };
    Ok(http::Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)
        .body(Full::new(Bytes::from(crate::metrics::render(&scrape))).boxed())
        .expect("a response with a valid status and header builds"))
}

/// Parses the anomaly id of a path. An id that is not a whole number is a malformed request
/// (400), not a missing anomaly (404).
fn parse_id(text: &str) -> Result<u64, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid-id",
            format!(
                "invalid anomaly id {text:?}: use the whole number in the id of an anomaly from \
                 GET /api/v1/anomalies"
            ),
        )
    })
}

/// Builds a JSON response.
pub fn json_response<T: serde::Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    let body = serde_json::to_vec(value).expect("API values serialize to JSON");
    http::Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)).boxed())
        .expect("a response with a valid status and header builds")
}

/// Builds the reply to `GET /healthz`: `ok`, or 503 once a storage error stopped all writes.
fn healthz(storage_failure: Option<&str>) -> Response {
    let Some(error) = storage_failure else {
        return text_response(StatusCode::OK, "ok\n");
    };
    let text = format!("the data file cannot be written until anomalyd restarts: {error}\n");
    http::Response::builder()
        .status(StatusCode::SERVICE_UNAVAILABLE)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(text)).boxed())
        .expect("a response with a valid status and header builds")
}

fn text_response(status: StatusCode, text: &'static str) -> Response {
    http::Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(text.as_bytes())).boxed())
        .expect("a response with a valid status and header builds")
}

/// Collects a request body of at most `limit` bytes. A body still incomplete after
/// `state.body_read_timeout` fails with 408, so a stalled client cannot hold its connection and
/// buffer.
async fn read_body(body: Incoming, limit: usize, state: &AppState) -> Result<Bytes, ApiError> {
    let timeout = state.body_read_timeout;
    let collected = tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await;
    let Ok(collected) = collected else {
        tracing::debug!(?timeout, "request body timed out");
        return Err(ApiError::RequestTimeout { timeout });
    };
    let collected = collected.map_err(|e| {
        if e.downcast_ref::<LengthLimitError>().is_some() {
            ApiError::PayloadTooLarge { limit }
        } else {
            let cause =
                std::error::Error::source(&*e).map_or_else(String::new, |s| format!(" ({s})"));
            ApiError::bad_request(
                "unreadable-body",
                format!(
                    "request body could not be read: {e}{cause}; the connection closed early \
                     or the body did not match its Content-Length or chunked framing, so \
                     send the request again"
                ),
            )
        }
    })?;
    Ok(collected.to_bytes())
}

/// Runs blocking store work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(format!("blocking task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthz_reports_storage_failure() {
        assert_eq!(healthz(None).status(), StatusCode::OK);
        let failed = healthz(Some("No space left on device (os error 28)"));
        assert_eq!(failed.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
