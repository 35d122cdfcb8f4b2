//! Reading replay input: NAB-style CSV (`timestamp,value`) or NDJSON check results, validated as
//! the results API validates them.

use crate::engine::{Timestamp, Value};
use crate::ingest::{self, Framing, IngestError};
use crate::series::{CheckResult, FieldValue, Status};

use super::ReplayError;

/// One input row and the check result it became.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRow {
    /// 1-based line number in the input file.
    pub line: usize,
    /// The timestamp text as written, echoed into the scores file (CSV only; empty for NDJSON).
    pub timestamp_text: String,
    /// The value text as written (CSV only; empty for NDJSON).
    pub value_text: String,
    pub result: CheckResult,
}

/// Series identity given to the values of a CSV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvSeries {
    pub system: String,
    pub healthcheck: String,
    pub collector_id: String,
    pub field: String,
}

/// Parses a CSV file with an optional `timestamp,value` header. Timestamps are
/// `YYYY-MM-DD HH:MM:SS` in UTC; an empty value is a null (an invalid sample) and `NaN` a
/// non-finite number (also invalid).
pub fn parse_csv(text: &str, series: &CsvSeries) -> Result<Vec<InputRow>, ReplayError> {
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || (number == 1 && is_csv_header(line)) {
            continue;
        }
        rows.push(parse_csv_row(number, line, series)?);
    }
    Ok(rows)
}

fn is_csv_header(line: &str) -> bool {
    line.split(',')
        .next()
        .is_some_and(|first| first.trim().eq_ignore_ascii_case("timestamp"))
}

fn parse_csv_row(line: usize, text: &str, series: &CsvSeries) -> Result<InputRow, ReplayError> {
    let bad_row = |reason: String| ReplayError::CsvRow { line, reason };
    let columns: Vec<&str> = text.split(',').map(str::trim).collect();
    let [timestamp_text, value_text] = columns[..] else {
        return Err(bad_row(format!(
            "expected 2 columns `timestamp,value`, found {}",
            columns.len()
        )));
    };
    let timestamp = parse_civil_utc(timestamp_text).map_err(bad_row)?;
    let value = parse_csv_value(value_text).map_err(bad_row)?;
    let result = CheckResult {
        system: series.system.clone(),
        healthcheck: series.healthcheck.clone(),
        environment: None,
        status: Status::Healthy,
        timestamp,
        latency_ms: None,
        fields: vec![FieldValue {
            collector_id: series.collector_id.clone(),
            field: series.field.clone(),
            value,
        }],
    };
    Ok(InputRow {
        line,
        timestamp_text: timestamp_text.to_owned(),
        value_text: value_text.to_owned(),
        result,
    })
}

/// Parses `YYYY-MM-DD HH:MM:SS` (fractional seconds allowed) as a UTC time.
fn parse_civil_utc(text: &str) -> Result<Timestamp, String> {
    let civil: jiff::civil::DateTime = text.parse().map_err(|_| {
        // An RFC 3339 time with a zone parses as an instant but not as a civil time, and the
        // library's message for that case only suits programmers.
        if text.parse::<jiff::Timestamp>().is_ok() {
            format!(
                "timestamp `{text}` has a UTC offset or zone; write it in UTC without one, as \
                 YYYY-MM-DD HH:MM:SS, such as 2014-02-14 14:30:00"
            )
        } else {
            format!(
                "invalid timestamp `{text}`: expected YYYY-MM-DD HH:MM:SS in UTC, such as \
                 2014-02-14 14:30:00"
            )
        }
    })?;
    let instant = jiff::tz::TimeZone::UTC
        .to_timestamp(civil)
        .map_err(|error| format!("timestamp `{text}` is out of range: {error}"))?;
    Ok(Timestamp::from_millis(instant.as_millisecond()))
}

fn parse_csv_value(text: &str) -> Result<Value, String> {
    if text.is_empty() {
        return Ok(Value::Null);
    }
    text.parse::<f64>()
        .map(Value::Number)
        .map_err(|_| format!("value `{text}` is not a number"))
}

/// Parses NDJSON check results, one JSON object a line, with the results API's own validation;
/// blank lines are skipped.
pub fn parse_ndjson(text: &str) -> Result<Vec<InputRow>, ReplayError> {
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad_line = |reason: String| ReplayError::NdjsonLine {
            line: index + 1,
            reason,
        };
        let mut results = ingest::parse(line.as_bytes(), Framing::Json)
            .map_err(|error| bad_line(ingest_reason(error)))?;
        let Some(result) = results.pop().filter(|_| results.is_empty()) else {
            return Err(bad_line("expected one result object per line".into()));
        };
        rows.push(InputRow {
            line: index + 1,
            timestamp_text: String::new(),
            value_text: String::new(),
            result,
        });
    }
    Ok(rows)
}

/// Describes why the results API would reject a line, naming each invalid field.
fn ingest_reason(error: IngestError) -> String {
    let IngestError::Invalid { problems, .. } = error else {
        return error.to_string();
    };
    let reasons: Vec<String> = problems
        .into_iter()
        .map(|problem| match problem.field.as_str() {
            "" => problem.reason,
            field => format!("{field}: {}", problem.reason),
        })
        .collect();
    reasons.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv_series() -> CsvSeries {
        CsvSeries {
            system: "replay".into(),
            healthcheck: "replay".into(),
            collector_id: "replay.csv".into(),
            field: "value".into(),
        }
    }

    #[test]
    fn csv_reads_nab_rows() {
        let text = "timestamp,value\n2014-02-14 14:30:00,45.5\n2014-02-14 14:35:00,\n";
        let rows = parse_csv(text, &csv_series()).expect("valid csv");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].result.timestamp, Timestamp(1_392_388_200_000));
        assert_eq!(rows[0].result.fields[0].value, Value::Number(45.5));
        assert_eq!(
            rows[0].result.fields[0].path(),
            "collectors.replay.csv.value"
        );
        assert_eq!(rows[1].result.fields[0].value, Value::Null);
    }

    #[test]
    fn csv_errors_name_line_and_reason() {
        let cases = [
            (
                "timestamp,value\n2014-02-14 14:30:00,1\nnot a time,2\n",
                3,
                "invalid timestamp",
            ),
            ("2014-02-14 14:30:00,abc\n", 1, "is not a number"),
            (
                "timestamp,value\n2014-02-14 14:30:00,1,2\n",
                2,
                "expected 2 columns",
            ),
            (
                "2014-02-14T14:30:00Z,1\n",
                1,
                "has a UTC offset or zone; write it in UTC without one, as YYYY-MM-DD HH:MM:SS, \
                 such as 2014-02-14 14:30:00",
            ),
            (
                "2014-02-14 25:30:00,1\n",
                1,
                "expected YYYY-MM-DD HH:MM:SS in UTC, such as 2014-02-14 14:30:00",
            ),
        ];
        for (text, line, reason) in cases {
            let error = parse_csv(text, &csv_series()).expect_err(text);
            let ReplayError::CsvRow {
                line: got,
                reason: message,
            } = &error
            else {
                panic!("unexpected error {error:?}");
            };
            assert_eq!(*got, line, "{text}");
            assert!(message.contains(reason), "{message}");
            assert!(!message.contains("jiff"), "{message}");
            assert!(
                error.to_string().contains(&format!("line {line}")),
                "{error}"
            );
        }
    }

    #[test]
    fn ndjson_reads_results_api_shape() {
        let text = concat!(
            r#"{"system":"web","healthcheck":"http","status":"healthy","#,
            r#""timestamp":"2026-01-01T00:00:00Z","collectors":{"healthcheck-http.request":"#,
            r#"{"responseTimeMs":120,"success":true}}}"#,
            "\n\n",
            r#"{"system":"web","healthcheck":"http","environment":"prod","status":"unhealthy","#,
            r#""timestamp":"2026-01-01T00:01:00+01:00","collectors":{}}"#,
        );
        let rows = parse_ndjson(text).expect("valid ndjson");
        assert_eq!(rows.len(), 2);
        let first = &rows[0].result;
        assert_eq!(first.timestamp, Timestamp(1_767_225_600_000));
        let paths: Vec<String> = first.fields.iter().map(FieldValue::path).collect();
        assert_eq!(
            paths,
            [
                "collectors.healthcheck-http.request.responseTimeMs",
                "collectors.healthcheck-http.request.success"
            ]
        );
        assert_eq!(rows[1].line, 3);
        assert_eq!(rows[1].result.status, Status::Unhealthy);
        assert_eq!(rows[1].result.environment.as_deref(), Some("prod"));
        assert_eq!(rows[1].result.timestamp, Timestamp(1_767_222_060_000));
    }

    #[test]
    fn ndjson_errors_name_line() {
        let text = "{\"system\":\"a\"}\n";
        let error = parse_ndjson(text).expect_err("missing keys");
        assert!(
            matches!(error, ReplayError::NdjsonLine { line: 1, .. }),
            "{error:?}"
        );
        let text = concat!(
            r#"{"system":"a","healthcheck":"b","status":"healthy","#,
            r#""timestamp":"yesterday","collectors":{}}"#
        );
        let error = parse_ndjson(text).expect_err("bad timestamp");
        assert!(
            matches!(error, ReplayError::NdjsonLine { line: 1, .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("timestamp"), "{error}");
        let text = concat!(
            "\n",
            r#"{"system":"a","healthcheck":"b","status":"healthy","#,
            r#""timestamp":"2026-01-01T00:00:00Z","collectors":{"c.d":{"list":[1]}}}"#
        );
        let error = parse_ndjson(text).expect_err("array field");
        assert!(
            matches!(error, ReplayError::NdjsonLine { line: 2, .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("collectors.c.d.list"), "{error}");
    }
}
