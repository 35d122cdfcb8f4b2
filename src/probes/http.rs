//! The `healthcheck-http.http` strategy: one HTTP request per run, reported as the fields of the
//! `healthcheck-http.request` collector.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};

use super::reader::ConfigReader;
use super::{Measurement, ProbeConfigError};
use crate::engine::Value;
use crate::http_client;

pub(crate) const STRATEGY: &str = "healthcheck-http.http";
pub(crate) const COLLECTOR: &str = "healthcheck-http.request";

/// Fields assertions may name; `body` is read by assertions but never reported.
pub(crate) const FIELDS: &[&str] = &[
    "statusCode",
    "statusText",
    "responseTimeMs",
    "bodyLength",
    "success",
    "body",
];

pub(crate) const CONFIG_KEYS: &[&str] = &[
    "url",
    "method",
    "headers",
    "body",
    "timeout",
    "expectedStatus",
];

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of the response body kept for assertions; `bodyLength` still counts every byte.
const MAX_KEPT_BODY_BYTES: usize = 1024 * 1024;

/// A validated HTTP probe.
#[derive(Debug)]
pub(crate) struct HttpProbe {
    url: Url,
    method: Method,
    headers: HeaderMap,
    body: Option<String>,
    pub(crate) timeout: Duration,
    /// When set, only this status counts as success; otherwise any 2xx or 3xx does.
    expected_status: Option<u16>,
}

impl HttpProbe {
    pub(crate) fn from_config(reader: &ConfigReader<'_>) -> Result<Self, ProbeConfigError> {
        let url = parse_url(reader)?;
        let method = match reader.string("method")? {
            Some(name) => Method::from_bytes(name.to_ascii_uppercase().as_bytes())
                .map_err(|_| reader.error("method", format!("`{name}` is not an HTTP method")))?,
            None => Method::GET,
        };
        let expected_status = reader
            .integer("expectedStatus", 100..=599)?
            .map(|status| u16::try_from(status).expect("the range check keeps statuses below 600"));
        Ok(Self {
            url,
            method,
            headers: parse_headers(reader)?,
            body: reader.string("body")?,
            timeout: reader.timeout("timeout", DEFAULT_TIMEOUT)?,
            expected_status,
        })
    }

    /// Sends the request and reads the whole body; the timeout covers both.
    pub(crate) async fn run(&self, client: &reqwest::Client) -> Measurement {
        let started = Instant::now();
        let response = tokio::time::timeout(self.timeout, self.exchange(client)).await;
        let elapsed = started.elapsed();
        match response {
            Ok(Ok((status, body_length, body))) => {
                self.measurement(status, body_length, body, elapsed)
            }
            Ok(Err(error)) => {
                let reason = http_client::error_chain(&error.without_url());
                let url = loggable_url(&self.url);
                failure(format!("request to {url} failed: {reason}"), elapsed)
            }
            Err(_) => failure(
                format!(
                    "request to {} timed out after {} ms",
                    loggable_url(&self.url),
                    self.timeout.as_millis()
                ),
                elapsed,
            ),
        }
    }

    async fn exchange(
        &self,
        client: &reqwest::Client,
    ) -> Result<(reqwest::StatusCode, usize, String), reqwest::Error> {
        let mut request = client
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone())
            .timeout(self.timeout);
        if let Some(body) = &self.body {
            request = request.body(body.clone());
        }
        let mut response = request.send().await?;
        let status = response.status();
        let mut kept_body = Vec::new();
        let mut body_length = 0;
        while let Some(chunk) = response.chunk().await? {
            body_length += chunk.len();
            let room = MAX_KEPT_BODY_BYTES.saturating_sub(kept_body.len());
            kept_body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        Ok((
            status,
            body_length,
            String::from_utf8_lossy(&kept_body).into_owned(),
        ))
    }

    fn measurement(
        &self,
        status: reqwest::StatusCode,
        body_length: usize,
        body: String,
        elapsed: Duration,
    ) -> Measurement {
        let success = match self.expected_status {
            Some(expected) => status.as_u16() == expected,
            None => status.is_success() || status.is_redirection(),
        };
        let fields = vec![
            ("statusCode", Value::Number(f64::from(status.as_u16()))),
            (
                "statusText",
                Value::Text(status.canonical_reason().unwrap_or("").to_owned()),
            ),
            (
                "responseTimeMs",
                Value::Number(elapsed.as_secs_f64() * 1000.0),
            ),
            ("bodyLength", Value::Number(body_length as f64)),
            ("success", Value::Bool(success)),
        ];
        Measurement {
            fields,
            body: Some(body),
            failure: None,
            elapsed,
        }
    }
}

fn failure(reason: String, elapsed: Duration) -> Measurement {
    Measurement {
        fields: vec![("success", Value::Bool(false))],
        body: None,
        failure: Some(reason),
        elapsed,
    }
}

/// Formats a URL as `scheme://host:port/path` for logs and failure reasons. The user name,
/// password, query and fragment are left out, since they may carry credentials.
fn loggable_url(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port_or_known_default() {
        Some(port) => format!("{}://{host}:{port}{}", url.scheme(), url.path()),
        None => format!("{}://{host}{}", url.scheme(), url.path()),
    }
}

fn parse_url(reader: &ConfigReader<'_>) -> Result<Url, ProbeConfigError> {
    let text = reader.required_string("url")?;
    let url = Url::parse(&text)
        .map_err(|error| reader.error("url", format!("is not a valid URL: {error}")))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        scheme => Err(reader.error("url", format!("has scheme `{scheme}`; use http or https"))),
    }
}

fn parse_headers(reader: &ConfigReader<'_>) -> Result<HeaderMap, ProbeConfigError> {
    let mut headers = HeaderMap::new();
    for (name, value) in reader.pairs("headers")? {
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| reader.error("headers", format!("`{name}` is not a valid header name")))?;
        let header_value = HeaderValue::from_str(&value).map_err(|_| {
            reader.error(
                "headers",
                format!("the value of `{name}` is not a valid header value"),
            )
        })?;
        headers.append(header_name, header_value);
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loggable_url_drops_credentials_and_query() {
        let cases = [
            (
                "https://user:pass@example.test/health?token=abc#top",
                "https://example.test:443/health",
            ),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/"),
            ("http://[::1]:9000/status", "http://[::1]:9000/status"),
        ];
        for (url, expected) in cases {
            let url = Url::parse(url).expect("a valid URL");
            assert_eq!(loggable_url(&url), expected);
        }
    }
}
