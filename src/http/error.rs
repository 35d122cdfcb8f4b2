//! The one place where errors become HTTP responses, all in the shape
//! `{"error": {"code": "...", "message": "...", "details": [...]}}`.

use http::{HeaderValue, StatusCode, header};
use serde_json::{Value as Json, json};

use super::{Response, json_response};
use crate::ingest::IngestError;
use crate::store::StoreError;
use crate::writer::WriteError;

/// An error returned to the client.
#[derive(Debug)]
pub enum ApiError {
    BadRequest {
        code: &'static str,
        message: String,
        details: Vec<Json>,
    },
    /// A body over the route's size limit, in bytes.
    PayloadTooLarge {
        limit: usize,
    },
    /// A body that did not arrive within the server's time limit. The connection is closed.
    RequestTimeout {
        timeout: std::time::Duration,
    },
    NotFound(String),
    /// A known path with a method it does not serve. `allow` is the `Allow` header value.
    MethodNotAllowed {
        allow: &'static str,
    },
    Conflict(String),
    /// A body in a `Content-Encoding` this server does not decode; the value is the encoding.
    UnsupportedEncoding(String),
    /// A well-formed request that cannot be carried out as sent.
    Unprocessable {
        code: &'static str,
        message: String,
    },
    /// A write without the configured bearer token, or with another one. The message says
    /// which and never contains the token sent.
    Unauthorized(String),
    /// A write from another site.
    Forbidden(String),
    Unavailable(String),
    /// Logged with its cause; the client sees a generic message.
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    pub fn into_response(self) -> Response {
        let allow = match &self {
            Self::MethodNotAllowed { allow } => Some(*allow),
            _ => None,
        };
        let close = matches!(self, Self::RequestTimeout { .. });
        let (status, code, message, details) = match self {
            Self::BadRequest {
                code,
                message,
                details,
            } => (StatusCode::BAD_REQUEST, code, message, details),
            Self::PayloadTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                format!(
                    "request body exceeds the limit of {limit} bytes ({} KiB); send less per request",
                    limit / 1024
                ),
                Vec::new(),
            ),
            Self::RequestTimeout { timeout } => (
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                format!(
                    "request body was not received within {timeout:?}; send the whole body \
                     without pausing"
                ),
                Vec::new(),
            ),
            Self::NotFound(message) => (StatusCode::NOT_FOUND, "not-found", message, Vec::new()),
            Self::MethodNotAllowed { allow } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                format!("this path accepts only {allow}"),
                Vec::new(),
            ),
            Self::Conflict(message) => (StatusCode::CONFLICT, "conflict", message, Vec::new()),
            Self::UnsupportedEncoding(encoding) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-encoding",
                format!(
                    "Content-Encoding {encoding:?} is not supported; send the body uncompressed"
                ),
                Vec::new(),
            ),
            Self::Unprocessable { code, message } => {
                (StatusCode::UNPROCESSABLE_ENTITY, code, message, Vec::new())
            }
            Self::Unauthorized(message) => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                message,
                Vec::new(),
            ),
            Self::Forbidden(message) => (StatusCode::FORBIDDEN, "forbidden", message, Vec::new()),
            Self::Unavailable(message) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                message,
                Vec::new(),
            ),
            Self::Internal(cause) => {
                tracing::error!(error = %cause, "request failed");
                let message = "internal error; see the service log".to_owned();
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    message,
                    Vec::new(),
                )
            }
        };
        let body = json!({"error": {"code": code, "message": message, "details": details}});
        let mut response = json_response(status, &body);
        if let Some(allow) = allow {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        // The rest of a timed-out body may still arrive, so the connection cannot be reused.
        if close {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        let message = e.to_string();
        match e {
            IngestError::Syntax(_) | IngestError::LineSyntax { .. } => {
                Self::bad_request("malformed-json", message)
            }
            IngestError::NotResults | IngestError::Empty => {
                Self::bad_request("invalid-results", message)
            }
            IngestError::TooManyResults => Self::bad_request("too-many-results", message),
            IngestError::Invalid { problems, .. } => Self::BadRequest {
                code: "invalid-results",
                message,
                details: problems.iter().map(|p| json!(p)).collect(),
            },
        }
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Busy | WriteError::Closed => Self::Unavailable(e.to_string()),
            WriteError::UnknownAnomaly { .. } => Self::NotFound(e.to_string()),
            WriteError::NotConfirmed { .. } => Self::Conflict(e.to_string()),
            WriteError::KeyReused { .. } => Self::Unprocessable {
                code: "idempotency-key-reused",
                message: e.to_string(),
            },
            WriteError::Store(_) | WriteError::Panicked(_) | WriteError::GroupFailed(_) => {
                Self::Internal(e.to_string())
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}
