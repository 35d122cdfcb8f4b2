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

    /// Parses a query string and rejects, with 400, any parameter not in `allowed`, so a
    /// misspelt filter fails instead of being ignored. The error lists the allowed names.
    pub fn parse_allowed(raw: Option<&str>, allowed: &[&str]) -> Result<Self, ApiError> {
        let query = Self::parse(raw);
        let mut unknown: Vec<&str> = query
            .0
            .keys()
            .map(String::as_str)
            .filter(|name| !allowed.contains(name))
            .collect();
        if unknown.is_empty() {
            return Ok(query);
        }
        unknown.sort_unstable();
        let noun = if unknown.len() == 1 {
            "parameter"
        } else {
            "parameters"
        };
        let accepted = if allowed.is_empty() {
            "this endpoint takes no query parameters".to_owned()
        } else {
            format!("this endpoint accepts {}", allowed.join(", "))
        };
        Err(ApiError::bad_request(
            "unknown-parameter",
            format!("unknown query {noun} {}: {accepted}", unknown.join(", ")),
        ))
    }

    /// Returns a system, healthcheck or environment name, checked with the rules of the results
    /// API, so a filter that could never match is a 400 rather than an empty list.
    pub fn name(&self, name: &str) -> Result<Option<String>, ApiError> {
        let Some(text) = self.text(name) else {
            return Ok(None);
        };
        crate::ingest::check_name(&text).map_err(|reason| invalid(name, &reason))?;
        Ok(Some(text))
    }

    /// Returns a canonical field path `collectors.<collector id>.<field>`, checked with the
    /// rules of the results API.
    pub fn field_path(&self, name: &str) -> Result<Option<String>, ApiError> {
        let Some(text) = self.text(name) else {
            return Ok(None);
        };
        crate::series::check_field_path(&text).map_err(|reason| invalid(name, &reason))?;
        Ok(Some(text))
    }

    /// Like [`Query::name`], for a parameter that must be present.
    pub fn required_name(&self, name: &str) -> Result<String, ApiError> {
        self.name(name)?.ok_or_else(|| missing(name))
    }

    /// Like [`Query::field_path`], for a parameter that must be present.
    pub fn required_field_path(&self, name: &str) -> Result<String, ApiError> {
        self.field_path(name)?.ok_or_else(|| missing(name))
    }

    pub fn text(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.is_empty()).cloned()
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

fn missing(name: &str) -> ApiError {
    ApiError::bad_request(
        "missing-parameter",
        format!("missing query parameter {name}: add {name}=<value> to the query"),
    )
}

fn invalid(name: &str, reason: &str) -> ApiError {
    ApiError::bad_request(
        "invalid-parameter",
        format!("invalid query parameter {name}: {reason}"),
    )
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
    fn unknown_parameters_rejected() {
        let allowed = ["system", "limit"];
        let ok = Query::parse_allowed(Some("system=shop&limit=3"), &allowed);
        assert!(ok.is_ok());
        let typo =
            message(Query::parse_allowed(Some("sytem=shop&zz=1"), &allowed).expect_err("typo"));
        assert!(
            typo.contains("unknown query parameters sytem, zz"),
            "{typo}"
        );
        assert!(typo.contains("accepts system, limit"), "{typo}");
        let none = message(Query::parse_allowed(Some("x=1"), &[]).expect_err("none"));
        assert!(none.contains("takes no query parameters"), "{none}");
    }

    #[test]
    fn names_are_checked() {
        let q = Query::parse(Some(
            "system=Bad!&healthcheck=web&field=collectors.a.b&bare=b",
        ));
        let bad = message(q.name("system").expect_err("Bad!"));
        assert!(bad.contains("invalid query parameter system"), "{bad}");
        assert_eq!(
            q.name("healthcheck").expect("valid").as_deref(),
            Some("web")
        );
        assert_eq!(q.name("absent").expect("absent"), None);
        assert!(q.field_path("field").is_ok());
        assert!(q.field_path("bare").is_err());
        assert!(q.required_name("absent").is_err());
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
