//! Query-string parsing for the read API.

use std::collections::HashMap;

use super::error::ApiError;
use crate::engine::Timestamp;

/// Decoded query parameters; a repeated name keeps its last value.
#[derive(Debug, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(name), decode(value))
            });
        Self(pairs.collect())
    }

    pub fn text(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.is_empty()).cloned()
    }

    pub fn required(&self, name: &str) -> Result<String, ApiError> {
        self.text(name).ok_or_else(|| {
            ApiError::bad_request(
                "missing-parameter",
                format!("missing query parameter {name}: add {name}=<value> to the query"),
            )
        })
    }

    /// Parses a whole number from 1 to `max`, or returns `default` when the parameter is
    /// absent. The error names the parameter, the value and the range.
    pub fn count(&self, name: &str, default: usize, max: usize) -> Result<usize, ApiError> {
        let Some(text) = self.text(name) else {
            return Ok(default);
        };
        match text.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(
                "invalid-parameter",
                format!(
                    "invalid query parameter {name}={text:?}: use a whole number from 1 to {max}"
                ),
            )),
        }
    }

    /// Parses an RFC 3339 time with a zone.
    pub fn time(&self, name: &str) -> Result<Option<Timestamp>, ApiError> {
        let Some(text) = self.text(name) else {
            return Ok(None);
        };
        let ts: jiff::Timestamp = text.parse().map_err(|e| {
            ApiError::bad_request(
                "invalid-parameter",
                format!(
                    "invalid query parameter {name}={text:?}: use an RFC 3339 time with a zone \
                     such as 2026-01-31T08:00:00Z ({e})"
                ),
            )
        })?;
        Ok(Some(Timestamp::from_millis(ts.as_millisecond())))
    }

    /// Parses a kebab-case enum value the way the API writes it. `allowed` lists the names
    /// the type accepts, for the error message.
    pub fn enumerated<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        allowed: &[&str],
    ) -> Result<Option<T>, ApiError> {
        let Some(text) = self.text(name) else {
            return Ok(None);
        };
        serde_json::from_value(serde_json::Value::String(text.clone()))
            .map(Some)
            .map_err(|_| {
                ApiError::bad_request(
                    "invalid-parameter",
                    format!(
                        "invalid query parameter {name}={text:?}: use one of {}",
                        allowed.join(", ")
                    ),
                )
            })
    }
}

/// Percent-decodes one query component; `+` is a space.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_components() {
        let q = Query::parse(Some("field=collectors.a.b%2Ec&x=a+b&bad=%zz&end=%4"));
        assert_eq!(q.text("field").as_deref(), Some("collectors.a.b.c"));
        assert_eq!(q.text("x").as_deref(), Some("a b"));
        assert_eq!(q.text("bad").as_deref(), Some("%zz"));
        assert_eq!(q.text("end").as_deref(), Some("%4"));
        assert_eq!(q.text("missing"), None);
    }

    fn message(error: ApiError) -> String {
        match error {
            ApiError::BadRequest { message, .. } => message,
            other => panic!("expected 400, got {other:?}"),
        }
    }

    #[test]
    fn count_names_the_range() {
        let q = Query::parse(Some("limit=abc&zero=0&big=1001&ok=7"));
        let abc = message(q.count("limit", 50, 1000).expect_err("abc"));
        assert!(abc.contains("use a whole number from 1 to 1000"), "{abc}");
        assert!(abc.contains("\"abc\""), "{abc}");
        assert!(q.count("zero", 50, 1000).is_err());
        assert!(q.count("big", 50, 1000).is_err());
        assert_eq!(q.count("ok", 50, 1000).expect("7"), 7);
        assert_eq!(q.count("absent", 50, 1000).expect("default"), 50);
    }
}
