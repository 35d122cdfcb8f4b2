//! Parsing and validation of `POST /api/v1/results` bodies: one result object, a JSON array or
//! NDJSON, in the anomalyd shape or the Checkstack check-completed shape. A body is accepted
//! whole or rejected with every problem listed by index and field.

use serde::Serialize;
use serde::de::{Deserializer as _, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value as Json};

use crate::engine::{Timestamp, Value};
use crate::series::{CheckResult, FieldValue, MAX_FIELD_LEN, Status, is_field_name};

/// Maximum request body size, in bytes.
pub const MAX_BODY_BYTES: usize = 8 << 20;
/// Maximum number of fields in one result.
pub const MAX_FIELDS_PER_RESULT: usize = 1000;
/// Maximum number of results in one request.
pub const MAX_RESULTS_PER_REQUEST: usize = 100_000;
/// Maximum size of one result's JSON text. As an estimate, a result with the maximum number of
/// fields takes about 100 KiB. The limit bounds the memory that parsing one result can take.
pub const MAX_RESULT_BYTES: usize = 512 << 10;
/// Maximum length of a text field value, in bytes: the output the script probe keeps.
pub const MAX_TEXT_BYTES: usize = 4096;
/// Maximum length of a system, healthcheck or environment name.
const MAX_NAME_LEN: usize = 63;
/// Maximum number of problems listed in one reply. The message still counts every invalid result.
const MAX_PROBLEMS: usize = 100;

/// Framing of a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One JSON value: a result object or an array of them.
    Json,
    /// One result object per line (`application/x-ndjson`).
    Ndjson,
}

/// One problem with one result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// Position of the result in the body (array index or NDJSON line, from 0).
    pub index: usize,
    /// JSON path of the offending value inside the result, empty for the whole result.
    pub field: String,
    pub reason: String,
}

/// Reason a whole body was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IngestError {
    #[error("request body is not valid JSON: {0}")]
    Syntax(String),
    #[error("request body must be a result object or an array of result objects")]
    NotResults,
    #[error(
        "request body is empty; send a result object, an array of them, or one result per \
         line as NDJSON"
    )]
    Empty,
    #[error(
        "request carries more than {MAX_RESULTS_PER_REQUEST} results; at most \
         {MAX_RESULTS_PER_REQUEST} are accepted per request, so send them in several requests"
    )]
    TooManyResults,
    #[error(
        "line {line}, column {column} of the NDJSON body is not valid JSON ({reason}); nothing \
         was stored"
    )]
    LineSyntax {
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("{}; nothing was stored", count_invalid(*.invalid, *.total))]
    Invalid {
        /// Number of invalid results.
        invalid: usize,
        /// Number of results in the body.
        total: usize,
        problems: Vec<Problem>,
    },
}

/// Words the count of invalid results with the right number agreement.
fn count_invalid(invalid: usize, total: usize) -> String {
    let verb = if invalid == 1 { "is" } else { "are" };
    let noun = if total == 1 { "result" } else { "results" };
    format!("{invalid} of {total} {noun} {verb} invalid")
}

/// Parses a whole body into validated results.
///
/// Results are read one at a time, so the parsed JSON of at most one result is in memory
/// besides the body and the results validated so far.
pub fn parse(body: &[u8], framing: Framing) -> Result<Vec<CheckResult>, IngestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(IngestError::Empty);
    }
    let mut gathered = Gathered::default();
    match framing {
        Framing::Json => read_json(body, &mut gathered)?,
        Framing::Ndjson => read_ndjson(body, &mut gathered)?,
    }
    gathered.finish()
}

/// Results and problems collected while a body is read.
#[derive(Default)]
struct Gathered {
    results: Vec<CheckResult>,
    problems: Vec<Problem>,
    invalid: usize,
    total: usize,
}

impl Gathered {
    /// Validates the next result of the body. `size` is the length of its JSON text, and
    /// `decode` parses that text, which happens only when the size is within the limit.
    fn add(
        &mut self,
        size: usize,
        decode: impl FnOnce() -> Result<Json, IngestError>,
    ) -> Result<(), IngestError> {
        let index = self.total;
        self.total += 1;
        if self.total > MAX_RESULTS_PER_REQUEST {
            return Err(IngestError::TooManyResults);
        }
        let outcome = if size > MAX_RESULT_BYTES {
            let reason = format!(
                "result is {size} bytes of JSON; at most {MAX_RESULT_BYTES} are accepted per \
                 result"
            );
            Err(vec![(String::new(), reason)])
        } else {
            parse_result(&decode()?)
        };
        match outcome {
            Ok(result) => self.results.push(result),
            Err(found) => {
                self.invalid += 1;
                let room = MAX_PROBLEMS.saturating_sub(self.problems.len());
                let listed = found.into_iter().take(room);
                self.problems.extend(listed.map(|(field, reason)| Problem {
                    index,
                    field,
                    reason,
                }));
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<Vec<CheckResult>, IngestError> {
        if self.invalid > 0 {
            return Err(IngestError::Invalid {
                invalid: self.invalid,
                total: self.total,
                problems: self.problems,
            });
        }
        Ok(self.results)
    }
}

/// Reads a JSON body: one result object, or an array read element by element.
fn read_json(body: &[u8], gathered: &mut Gathered) -> Result<(), IngestError> {
    let syntax = |e: serde_json::Error| IngestError::Syntax(e.to_string());
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => {
            let mut deserializer = serde_json::Deserializer::from_slice(body);
            let mut stopped = None;
            let elements = Elements {
                gathered,
                stopped: &mut stopped,
            };
            let read = deserializer.deserialize_seq(elements);
            if let Some(error) = stopped {
                return Err(error);
            }
            read.and_then(|()| deserializer.end()).map_err(syntax)
        }
        Some(b'{') => {
            let raw: &RawValue = serde_json::from_slice(body).map_err(syntax)?;
            gathered.add(raw.get().len(), || {
                serde_json::from_str(raw.get()).map_err(syntax)
            })
        }
        _ => {
            serde_json::from_slice::<IgnoredAny>(body).map_err(syntax)?;
            Err(IngestError::NotResults)
        }
    }
}

/// Visits the elements of a JSON array, handing each one's text to [`Gathered::add`]. An error
/// of `add` ends the visit and is kept in `stopped`, because serde's error type cannot carry it.
struct Elements<'a> {
    gathered: &'a mut Gathered,
    stopped: &'a mut Option<IngestError>,
}

impl<'de> Visitor<'de> for Elements<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an array of result objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            let added = self.gathered.add(raw.get().len(), || {
                serde_json::from_str(raw.get()).map_err(|e| IngestError::Syntax(e.to_string()))
            });
            if let Err(error) = added {
                *self.stopped = Some(error);
                return Err(serde::de::Error::custom("reading stopped"));
            }
        }
        Ok(())
    }
}

/// Reads an NDJSON body line by line; blank lines are skipped.
fn read_ndjson(body: &[u8], gathered: &mut Gathered) -> Result<(), IngestError> {
    for (number, line) in body.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        gathered.add(line.len(), || {
            serde_json::from_slice(line).map_err(|e| line_syntax(number + 1, &e))
        })?;
    }
    Ok(())
}

/// Places a syntax error of one NDJSON line at its line of the body. serde_json counts lines
/// within the parsed slice, which is always line 1 here, so only its column is kept.
fn line_syntax(line: usize, error: &serde_json::Error) -> IngestError {
    let text = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    let reason = text.strip_suffix(&position).unwrap_or(&text).to_owned();
    IngestError::LineSyntax {
        line,
        column: error.column(),
        reason,
    }
}

type Problems = Vec<(String, String)>;

/// Keys that name the system, healthcheck and environment in one of the two shapes.
struct ShapeKeys {
    system: &'static str,
    healthcheck: &'static str,
    environment: &'static str,
    fields: &'static str,
}

const ANOMALYD_KEYS: ShapeKeys = ShapeKeys {
    system: "system",
    healthcheck: "healthcheck",
    environment: "environment",
    fields: "collectors",
};

/// The Checkstack check-completed shape: a configuration id stands for the healthcheck.
const CHECKSTACK_KEYS: ShapeKeys = ShapeKeys {
    system: "systemId",
    healthcheck: "configurationId",
    environment: "environmentId",
    fields: "result",
};

/// Validates one result object in either shape.
fn parse_result(item: &Json) -> Result<CheckResult, Problems> {
    let Json::Object(obj) = item else {
        return Err(vec![(
            String::new(),
            "a result must be a JSON object".into(),
        )]);
    };
    let anomalyd_only = present(obj, &ANOMALYD_ONLY_KEYS);
    let checkstack_only = present(obj, &CHECKSTACK_ONLY_KEYS);
    if !anomalyd_only.is_empty() && !checkstack_only.is_empty() {
        let reason = format!(
            "the result mixes keys of the anomalyd shape {anomalyd_only:?} and of the \
             Checkstack shape {checkstack_only:?}; send system, healthcheck, environment and \
             collectors, or systemId, configurationId, environmentId and result"
        );
        return Err(vec![(String::new(), reason)]);
    }
    let checkstack = !checkstack_only.is_empty();
    let keys = if checkstack {
        &CHECKSTACK_KEYS
    } else {
        &ANOMALYD_KEYS
    };
    let mut problems = Problems::new();
    // The Checkstack event may gain keys in later versions, so only the anomalyd shape, which
    // this API defines, rejects a key it does not know, such as a misspelt `environment`.
    if !checkstack {
        for key in obj
            .keys()
            .filter(|k| !ANOMALYD_RESULT_KEYS.contains(&k.as_str()))
        {
            let reason = format!(
                "unknown key {key:?}; a result has the keys {}",
                ANOMALYD_RESULT_KEYS.join(", ")
            );
            problems.push((key.clone(), reason));
        }
    }

    let system = required_name(obj, keys.system, &mut problems);
    let healthcheck = required_name(obj, keys.healthcheck, &mut problems);
    let environment = optional_name(obj, keys.environment, &mut problems);
    let status = status(obj, &mut problems);
    let timestamp = timestamp(obj, &mut problems);
    let latency_ms = latency(obj, &mut problems);

    let fields = if checkstack {
        checkstack_fields(obj, &mut problems)
    } else {
        collector_fields(obj, &mut problems)
    };
    if fields.len() > MAX_FIELDS_PER_RESULT {
        let reason = format!(
            "result carries {} fields; at most {MAX_FIELDS_PER_RESULT} are accepted per result",
            fields.len()
        );
        problems.push((keys.fields.into(), reason));
    }

    match (system, healthcheck, status, timestamp) {
        (Some(system), Some(healthcheck), Some(status), Some(timestamp)) if problems.is_empty() => {
            Ok(CheckResult {
                system,
                healthcheck,
                environment,
                status,
                timestamp,
                latency_ms,
                fields,
            })
        }
        _ => Err(problems),
    }
}

/// How far ahead of this server's clock a result may be stamped. Host clocks usually differ by
/// seconds, but a result stamped an hour ahead opens an hour the analyzer has not reached, and
/// every result after it then counts as a late arrival.
pub const MAX_AHEAD_OF_CLOCK_MS: i64 = 5 * 60 * 1000;

/// Rejects the whole batch when any result is stamped more than [`MAX_AHEAD_OF_CLOCK_MS`] after
/// `now`. Results from the past are accepted, so a collector can send a backlog.
pub fn check_not_ahead(results: &[CheckResult], now: Timestamp) -> Result<(), IngestError> {
    let ahead: Vec<Problem> = results
        .iter()
        .enumerate()
        .filter(|(_, result)| result.timestamp.0 - now.0 > MAX_AHEAD_OF_CLOCK_MS)
        .map(|(index, result)| Problem {
            index,
            field: "timestamp".into(),
            reason: ahead_reason(result.timestamp, now),
        })
        .collect();
    if ahead.is_empty() {
        return Ok(());
    }
    Err(IngestError::Invalid {
        invalid: ahead.len(),
        total: results.len(),
        problems: ahead.into_iter().take(MAX_PROBLEMS).collect(),
    })
}

fn ahead_reason(at: Timestamp, now: Timestamp) -> String {
    let minutes = (at.0 - now.0) / 60_000;
    let at = jiff::Timestamp::from_millisecond(at.0)
        .map_or_else(|_| at.0.to_string(), |t| t.to_string());
    format!(
        "timestamp {at} is {minutes} minutes ahead of this server's clock; at most {} minutes \
         ahead is accepted, so check the clock of the host that sent it",
        MAX_AHEAD_OF_CLOCK_MS / 60_000
    )
}

/// Checks a system, healthcheck or environment name.
pub fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "name {name:?} is longer than {MAX_NAME_LEN} characters"
        ));
    }
    if !first_ok || !rest_ok {
        return Err(format!(
            "name {name:?} must start with a lowercase letter or digit and contain only \
             lowercase letters, digits and '-'"
        ));
    }
    Ok(())
}

fn required_name(obj: &Map<String, Json>, key: &str, problems: &mut Problems) -> Option<String> {
    match obj.get(key) {
        None | Some(Json::Null) => {
            problems.push((key.into(), format!("{key} is required")));
            None
        }
        Some(value) => name_value(key, value, problems),
    }
}

fn optional_name(obj: &Map<String, Json>, key: &str, problems: &mut Problems) -> Option<String> {
    match obj.get(key) {
        None | Some(Json::Null) => None,
        Some(value) => name_value(key, value, problems),
    }
}

fn name_value(key: &str, value: &Json, problems: &mut Problems) -> Option<String> {
    let Json::String(name) = value else {
        problems.push((key.into(), format!("{key} must be a string")));
        return None;
    };
    match check_name(name) {
        Ok(()) => Some(name.clone()),
        Err(reason) => {
            problems.push((key.into(), reason));
            None
        }
    }
}

fn status(obj: &Map<String, Json>, problems: &mut Problems) -> Option<Status> {
    match obj.get("status").and_then(Json::as_str) {
        Some("healthy") => Some(Status::Healthy),
        Some("unhealthy") => Some(Status::Unhealthy),
        _ => {
            problems.push((
                "status".into(),
                "status must be \"healthy\" or \"unhealthy\"".into(),
            ));
            None
        }
    }
}

fn timestamp(obj: &Map<String, Json>, problems: &mut Problems) -> Option<Timestamp> {
    let Some(text) = obj.get("timestamp").and_then(Json::as_str) else {
        problems.push((
            "timestamp".into(),
            "timestamp is required as an RFC 3339 string".into(),
        ));
        return None;
    };
    match text.parse::<jiff::Timestamp>() {
        Ok(ts) if ts.as_millisecond() < 0 => {
            let reason = format!(
                "timestamp {text:?} is before 1970-01-01T00:00:00Z; send the time the check ran"
            );
            problems.push(("timestamp".into(), reason));
            None
        }
        Ok(ts) => Some(Timestamp::from_millis(ts.as_millisecond())),
        Err(e) => {
            let reason = format!(
                "timestamp {text:?} is not RFC 3339 with a zone (for example \
                 2026-01-02T03:04:05Z): {e}"
            );
            problems.push(("timestamp".into(), reason));
            None
        }
    }
}

fn latency(obj: &Map<String, Json>, problems: &mut Problems) -> Option<f64> {
    match obj.get("latencyMs") {
        None | Some(Json::Null) => None,
        Some(Json::Number(n)) => n.as_f64(),
        Some(_) => {
            problems.push(("latencyMs".into(), "latencyMs must be a number".into()));
            None
        }
    }
}

/// Keys that only a result of the anomalyd shape carries.
const ANOMALYD_ONLY_KEYS: [&str; 4] = ["system", "healthcheck", "environment", "collectors"];

/// Keys that only a result of the Checkstack shape carries.
const CHECKSTACK_ONLY_KEYS: [&str; 4] = ["systemId", "configurationId", "environmentId", "result"];

/// Returns which of `keys` the object has.
fn present(obj: &Map<String, Json>, keys: &[&'static str]) -> Vec<&'static str> {
    keys.iter()
        .copied()
        .filter(|k| obj.contains_key(*k))
        .collect()
}

/// Keys a result of the anomalyd shape may carry.
const ANOMALYD_RESULT_KEYS: [&str; 7] = [
    "system",
    "healthcheck",
    "environment",
    "status",
    "timestamp",
    "latencyMs",
    "collectors",
];

/// Reads `collectors: {collector id: {field: value}}` of the anomalyd shape.
fn collector_fields(obj: &Map<String, Json>, problems: &mut Problems) -> Vec<FieldValue> {
    let Some(Json::Object(collectors)) = obj.get("collectors") else {
        let mut reason = match obj.get("collectors") {
            None => "collectors is missing".to_owned(),
            Some(_) => "collectors must be an object".to_owned(),
        };
        reason.push_str(": send the fields as {collector id: {field: value}}");
        problems.push(("collectors".into(), reason));
        return Vec::new();
    };
    let mut fields = Vec::new();
    for (collector_id, entry) in collectors {
        let path = format!("collectors.{collector_id}");
        if let Err(reason) = check_collector_id(collector_id) {
            problems.push((path.clone(), reason));
        }
        let Json::Object(entry) = entry else {
            problems.push((path, "a collector entry must be an object of fields".into()));
            continue;
        };
        for (field, value) in entry {
            let path = format!("{path}.{field}");
            match field_value(field, value) {
                Ok(value) => fields.push(FieldValue {
                    collector_id: collector_id.clone(),
                    field: field.clone(),
                    value,
                }),
                Err(reason) => problems.push((path, reason)),
            }
        }
    }
    fields
}

/// Reads `result: {entry: {_collectorId, field: value}}` of the Checkstack shape: keys starting
/// with `_` are metadata, arrays and objects are not result fields. Unlike Checkstack, an entry
/// without `_collectorId` is an error rather than skipped, because its fields would be lost.
fn checkstack_fields(obj: &Map<String, Json>, problems: &mut Problems) -> Vec<FieldValue> {
    let Some(Json::Object(entries)) = obj.get("result") else {
        let mut reason = match obj.get("result") {
            None => "result is missing".to_owned(),
            Some(_) => "result must be an object".to_owned(),
        };
        reason.push_str(
            ": a result with systemId is read in the Checkstack shape, whose fields are in \
             result as {entry id: {_collectorId, field: value}}",
        );
        problems.push(("result".into(), reason));
        return Vec::new();
    };
    let mut fields = Vec::new();
    for (entry_id, entry) in entries {
        let path = format!("result.{entry_id}");
        let Json::Object(entry) = entry else {
            problems.push((path, "a collector entry must be an object".into()));
            continue;
        };
        let Some(collector_id) = entry.get("_collectorId").and_then(Json::as_str) else {
            let reason = "_collectorId is missing or not a string: each collector entry names \
                          its collector, for example \"healthcheck-http.request\"";
            problems.push((format!("{path}._collectorId"), reason.into()));
            continue;
        };
        if let Err(reason) = check_collector_id(collector_id) {
            problems.push((format!("{path}._collectorId"), reason));
            continue;
        }
        for (field, value) in entry {
            if field.starts_with('_') || value.is_array() || value.is_object() {
                continue;
            }
            match field_value(field, value) {
                Ok(value) => fields.push(FieldValue {
                    collector_id: collector_id.to_owned(),
                    field: field.clone(),
                    value,
                }),
                Err(reason) => problems.push((format!("{path}.{field}"), reason)),
            }
        }
    }
    fields
}

/// Checks a qualified collector id: dot-separated names, for example `healthcheck-http.request`.
fn check_collector_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 2 * MAX_NAME_LEN + 1 {
        return Err(format!(
            "collector id {id:?} must have 1 to {} characters",
            2 * MAX_NAME_LEN + 1
        ));
    }
    id.split('.')
        .try_for_each(check_name)
        .map_err(|reason| format!("collector id {id:?}: {reason}"))
}

fn field_value(field: &str, value: &Json) -> Result<Value, String> {
    if !is_field_name(field) {
        return Err(format!(
            "field name {field:?} must have 1 to {MAX_FIELD_LEN} letters, digits, '_' or '-'"
        ));
    }
    match value {
        Json::Number(n) => n
            .as_f64()
            .map(Value::Number)
            .ok_or_else(|| "number out of range".into()),
        Json::String(s) if s.len() > MAX_TEXT_BYTES => Err(format!(
            "text value is {} bytes; at most {MAX_TEXT_BYTES} bytes are accepted per value",
            s.len()
        )),
        Json::String(s) => Ok(Value::Text(s.clone())),
        Json::Bool(b) => Ok(Value::Bool(*b)),
        Json::Null => Ok(Value::Null),
        Json::Array(_) | Json::Object(_) => {
            Err("a field value must be a number, string, boolean or null".into())
        }
    }
}

#[cfg(test)]
mod tests;
