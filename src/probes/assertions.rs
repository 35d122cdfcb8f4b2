//! Assertions on probe result fields: compiled once when a probe starts and evaluated after every
//! run. A failed assertion makes the run unhealthy.

use regex::Regex;
use serde_json::Value as Json;

use super::ProbeConfigError;
use crate::config::Assertion;
use crate::engine::Value;

/// The values one run produced, as assertions read them.
pub(crate) struct Observation<'a> {
    pub fields: &'a [(&'static str, Value)],
    /// The response body, read by assertions on `body` but never stored.
    pub body: Option<&'a str>,
}

impl Observation<'_> {
    /// Returns the value of `field`, or the part of it at `path` when the field contains JSON text.
    fn lookup(&self, field: &str, path: Option<&JsonPath>) -> Option<Json> {
        let value = match (field, self.body) {
            ("body", Some(body)) => Json::String(body.to_owned()),
            _ => self
                .fields
                .iter()
                .find(|(name, _)| *name == field)
                .map(|(_, value)| to_json(value))?,
        };
        match path {
            None => Some(value),
            Some(path) => path.select(&serde_json::from_str(value.as_str()?).ok()?),
        }
    }
}

/// The check an operator performs.
#[derive(Debug)]
enum Check {
    Equals(Json),
    NotEquals(Json),
    Contains(String),
    StartsWith(String),
    EndsWith(String),
    Matches(Regex),
    Exists,
    NotExists,
    LessThan(f64),
    LessThanOrEqual(f64),
    GreaterThan(f64),
    GreaterThanOrEqual(f64),
    IsEmpty,
    IsTrue,
    IsFalse,
}

/// One assertion, ready to evaluate.
#[derive(Debug)]
pub(crate) struct CompiledAssertion {
    field: String,
    path: Option<JsonPath>,
    check: Check,
    /// The assertion as written, for example `statusCode equals 200`.
    label: String,
}

/// The position of an assertion in its healthcheck, for error messages.
pub(crate) struct AssertionSite<'a> {
    pub healthcheck: &'a str,
    pub collector_index: usize,
    pub assertion_index: usize,
}

impl AssertionSite<'_> {
    fn error(&self, key: &str, reason: impl Into<String>) -> ProbeConfigError {
        let path = format!(
            "collectors[{}].assertions[{}].{key}",
            self.collector_index, self.assertion_index
        );
        ProbeConfigError::new(self.healthcheck, path, reason)
    }
}

/// Compiles an assertion on one of `fields`, the result fields the probe produces.
pub(crate) fn compile(
    assertion: &Assertion,
    fields: &[&str],
    site: &AssertionSite<'_>,
) -> Result<CompiledAssertion, ProbeConfigError> {
    if !fields.contains(&assertion.field.as_str()) {
        let reason = format!(
            "names an unknown field; known fields: {}",
            fields.join(", ")
        );
        return Err(site.error("field", reason));
    }
    let path = match &assertion.json_path {
        Some(text) => Some(JsonPath::parse(text).map_err(|reason| site.error("jsonPath", reason))?),
        None => None,
    };
    let check = compile_check(&assertion.operator, assertion.value.as_ref(), site)?;
    Ok(CompiledAssertion {
        field: assertion.field.clone(),
        path,
        check,
        label: label(assertion),
    })
}

fn compile_check(
    operator: &str,
    value: Option<&Json>,
    site: &AssertionSite<'_>,
) -> Result<Check, ProbeConfigError> {
    let value_required = || site.error("value", format!("is missing; `{operator}` needs one"));
    let expected = || value.cloned().ok_or_else(value_required);
    let text = || match value {
        Some(value) => text_of(value).ok_or_else(|| site.error("value", "must be text")),
        None => Err(value_required()),
    };
    let number = || match value {
        Some(value) => number_of(value).ok_or_else(|| site.error("value", "must be a number")),
        None => Err(value_required()),
    };
    let check = match operator {
        "equals" => Check::Equals(expected()?),
        "notEquals" => Check::NotEquals(expected()?),
        "contains" => Check::Contains(text()?),
        "startsWith" => Check::StartsWith(text()?),
        "endsWith" => Check::EndsWith(text()?),
        "matches" => Check::Matches(Regex::new(&text()?).map_err(|error| {
            site.error(
                "value",
                format!("is not a valid regex: {}", regex_reason(&error)),
            )
        })?),
        "exists" => Check::Exists,
        "notExists" => Check::NotExists,
        "lessThan" => Check::LessThan(number()?),
        "lessThanOrEqual" => Check::LessThanOrEqual(number()?),
        "greaterThan" => Check::GreaterThan(number()?),
        "greaterThanOrEqual" => Check::GreaterThanOrEqual(number()?),
        "isEmpty" => Check::IsEmpty,
        "isTrue" => Check::IsTrue,
        "isFalse" => Check::IsFalse,
        _ => return Err(site.error("operator", format!("`{operator}` is not a known operator"))),
    };
    Ok(check)
}

impl CompiledAssertion {
    /// Evaluates the assertion; the error describes the failure and the actual value.
    pub(crate) fn evaluate(&self, observation: &Observation<'_>) -> Result<(), String> {
        let actual = observation.lookup(&self.field, self.path.as_ref());
        if self.check.passes(actual.as_ref()) {
            return Ok(());
        }
        let actual = actual.map_or_else(|| "missing".to_owned(), |value| value.to_string());
        let actual = shorten(actual);
        Err(format!(
            "assertion `{}` failed: actual value {actual}",
            self.label
        ))
    }
}

/// Characters of an actual value kept in a failure message. A response body or a program's
/// output can be long, and the message goes to the log.
const MAX_SHOWN_CHARS: usize = 120;

/// Cuts `text` to [`MAX_SHOWN_CHARS`] characters, saying how long it was.
fn shorten(text: String) -> String {
    match text.char_indices().nth(MAX_SHOWN_CHARS) {
        Some((end, _)) => format!("{}… ({} bytes in all)", &text[..end], text.len()),
        None => text,
    }
}

impl Check {
    fn passes(&self, actual: Option<&Json>) -> bool {
        let present = actual.filter(|value| !value.is_null());
        let text = || present.and_then(text_of);
        let number = || present.and_then(number_of);
        match self {
            Check::Equals(expected) => present.is_some_and(|value| loosely_equal(value, expected)),
            Check::NotEquals(expected) => {
                !present.is_some_and(|value| loosely_equal(value, expected))
            }
            Check::Contains(part) => text().is_some_and(|text| text.contains(part.as_str())),
            Check::StartsWith(part) => text().is_some_and(|text| text.starts_with(part.as_str())),
            Check::EndsWith(part) => text().is_some_and(|text| text.ends_with(part.as_str())),
            Check::Matches(regex) => text().is_some_and(|text| regex.is_match(&text)),
            Check::Exists => present.is_some(),
            Check::NotExists => present.is_none(),
            Check::LessThan(limit) => number().is_some_and(|number| number < *limit),
            Check::LessThanOrEqual(limit) => number().is_some_and(|number| number <= *limit),
            Check::GreaterThan(limit) => number().is_some_and(|number| number > *limit),
            Check::GreaterThanOrEqual(limit) => number().is_some_and(|number| number >= *limit),
            Check::IsEmpty => present.is_none_or(is_empty),
            Check::IsTrue => present == Some(&Json::Bool(true)),
            Check::IsFalse => present == Some(&Json::Bool(false)),
        }
    }
}

/// Compares two values, treating a number and its text form as equal, so that `value: "200"`
/// matches a status code of 200.
fn loosely_equal(actual: &Json, expected: &Json) -> bool {
    match (number_of(actual), number_of(expected)) {
        (Some(actual), Some(expected)) => actual == expected,
        _ => text_of(actual).is_some() && text_of(actual) == text_of(expected),
    }
}

fn text_of(value: &Json) -> Option<String> {
    match value {
        Json::String(text) => Some(text.clone()),
        Json::Number(number) => Some(number.to_string()),
        Json::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn number_of(value: &Json) -> Option<f64> {
    match value {
        Json::Number(number) => number.as_f64(),
        Json::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

fn is_empty(value: &Json) -> bool {
    match value {
        Json::String(text) => text.is_empty(),
        Json::Array(items) => items.is_empty(),
        Json::Object(map) => map.is_empty(),
        _ => false,
    }
}

fn to_json(value: &Value) -> Json {
    match value {
        Value::Number(number) => {
            serde_json::Number::from_f64(*number).map_or(Json::Null, Json::Number)
        }
        Value::Text(text) => Json::String(text.clone()),
        Value::Bool(flag) => Json::Bool(*flag),
        Value::Null => Json::Null,
    }
}

fn label(assertion: &Assertion) -> String {
    let mut label = assertion.field.clone();
    if let Some(path) = &assertion.json_path {
        label = format!("{label} {path}");
    }
    label = format!("{label} {}", assertion.operator);
    if let Some(value) = &assertion.value {
        label = format!("{label} {value}");
    }
    label
}

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// A JSON path in the subset assertions support: an optional `$` root followed by `.key`,
/// `['key']` or `["key"]` and `[index]` steps, for example `$.checks[0].status`. Wildcards,
/// filters and slices are not supported.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JsonPath(Vec<Step>);

impl JsonPath {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let rest = text.trim().strip_prefix('$').unwrap_or(text.trim());
        let mut steps = Vec::new();
        let mut rest = rest;
        while !rest.is_empty() {
            let (step, remaining) = parse_step(rest, steps.is_empty()).ok_or_else(|| {
                format!("`{text}` is not a supported JSON path; use `$.key[0].key`")
            })?;
            steps.push(step);
            rest = remaining;
        }
        Ok(Self(steps))
    }

    fn select(&self, root: &Json) -> Option<Json> {
        let mut current = root;
        for step in &self.0 {
            current = match step {
                Step::Key(key) => current.get(key)?,
                Step::Index(index) => current.get(index)?,
            };
        }
        Some(current.clone())
    }
}

/// Parses one step; the first step of a path without `$` may omit its leading dot.
fn parse_step(text: &str, first: bool) -> Option<(Step, &str)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, rest) = rest.split_once(']')?;
        let quoted = inside
            .strip_prefix('\'')
            .and_then(|key| key.strip_suffix('\''))
            .or_else(|| {
                inside
                    .strip_prefix('"')
                    .and_then(|key| key.strip_suffix('"'))
            });
        let step = match quoted {
            Some(key) => Step::Key(key.to_owned()),
            None => Step::Index(inside.trim().parse().ok()?),
        };
        return Some((step, rest));
    }
    let rest = match text.strip_prefix('.') {
        Some(rest) => rest,
        None if first => text,
        None => return None,
    };
    let end = rest.find(['.', '[']).unwrap_or(rest.len());
    let key = &rest[..end];
    if key.is_empty() || key == "*" {
        return None;
    }
    Some((Step::Key(key.to_owned()), &rest[end..]))
}

/// Returns the reason of a regex error on one line. The regex crate renders a syntax error on
/// several lines, with the pattern and a caret under the error, which would break the
/// one-finding-per-line output of `anomalyd check`.
fn regex_reason(error: &regex::Error) -> String {
    let text = error.to_string();
    let last = text.lines().rev().find(|line| !line.trim().is_empty());
    let reason = last.unwrap_or(&text).trim();
    reason.strip_prefix("error: ").unwrap_or(reason).to_owned()
}

#[cfg(test)]
mod tests;
