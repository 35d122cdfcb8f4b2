//! Query-string parsing for the read API.

use std::collections::HashMap;
use std::str::FromStr;

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
                format!("query parameter {name} is required"),
            )
        })
    }

    /// Parses a parameter with `FromStr`, naming it and the value when that fails.
    pub fn parsed<T: FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        let Some(text) = self.text(name) else {
            return Ok(None);
        };
        text.parse().map(Some).map_err(|_| {
            ApiError::bad_request(
                "invalid-parameter",
                format!("query parameter {name}={text:?} is not valid"),
            )
        })
    }

    /// Parses an RFC 3339 time with a zone.
    pub fn time(&self, name: &str) -> Result<Option<Timestamp>, ApiError> {
        let Some(text) = self.text(name) else {
            return Ok(None);
        };
        let ts: jiff::Timestamp = text.parse().map_err(|e| {
            ApiError::bad_request(
                "invalid-parameter",
                format!("query parameter {name}={text:?} is not an RFC 3339 time with a zone: {e}"),
            )
        })?;
        Ok(Some(Timestamp::from_millis(ts.as_millisecond())))
    }

    /// Parses a kebab-case enum value the way the API writes it.
    pub fn enumerated<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, ApiError> {
        let Some(text) = self.text(name) else {
            return Ok(None);
        };
        serde_json::from_value(serde_json::Value::String(text.clone()))
            .map(Some)
            .map_err(|_| {
                ApiError::bad_request(
                    "invalid-parameter",
                    format!("query parameter {name}={text:?} is not a known value"),
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
}
