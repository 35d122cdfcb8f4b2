use super::*;

const GOOD: &str = r#"{"system":"shop","healthcheck":"web","status":"healthy",
  "timestamp":"2026-01-02T03:04:05Z","latencyMs":12,
  "collectors":{"healthcheck-http.request":{"responseTimeMs":120,"success":true,"statusText":"OK"}}}"#;

fn problems(body: &str) -> Vec<Problem> {
    match parse(body.as_bytes(), Framing::Json) {
        Err(IngestError::Invalid { problems, .. }) => problems,
        other => panic!("expected invalid results, got {other:?}"),
    }
}

#[test]
fn parses_the_anomalyd_shape() {
    let results = parse(GOOD.as_bytes(), Framing::Json).unwrap();
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!((r.system.as_str(), r.healthcheck.as_str()), ("shop", "web"));
    assert_eq!(r.timestamp, Timestamp::from_millis(1_767_323_045_000));
    assert_eq!(r.fields.len(), 3);
    assert_eq!(
        r.fields[0].path(),
        "collectors.healthcheck-http.request.responseTimeMs"
    );
}

#[test]
fn parses_arrays_and_ndjson() {
    let array = format!("[{GOOD},{GOOD}]");
    assert_eq!(parse(array.as_bytes(), Framing::Json).unwrap().len(), 2);
    let lines = format!("{}\n\n{}\n", GOOD.replace('\n', ""), GOOD.replace('\n', ""));
    assert_eq!(parse(lines.as_bytes(), Framing::Ndjson).unwrap().len(), 2);
}

#[test]
fn parses_checkstack_shape() {
    let body = r#"{"systemId":"shop","configurationId":"0b6f5d1e-7c1a-4d2b-9e55-3f1f2a7c9d10",
      "status":"unhealthy","timestamp":"2026-01-02T03:04:05+01:00","environmentId":null,
      "result":{"e1":{"_collectorId":"healthcheck-http.request","_assertionFailed":false,
        "responseTimeMs":80,"headers":{"a":"b"},"tags":[1]}}}"#;
    let r = &parse(body.as_bytes(), Framing::Json).unwrap()[0];
    assert_eq!(r.status, Status::Unhealthy);
    assert_eq!(r.environment, None);
    assert_eq!(r.fields.len(), 1);
    assert_eq!(r.fields[0].field, "responseTimeMs");
}

#[test]
fn keeps_string_in_numeric_field() {
    let body = GOOD.replace("120", "\"NaN\"");
    let r = &parse(body.as_bytes(), Framing::Json).unwrap()[0];
    assert_eq!(r.fields[0].value, Value::Text("NaN".into()));
}

#[test]
fn rejects_bad_results_with_index_and_field() {
    let cases: &[(&str, &str, &str)] = &[
        (r#""system":"shop""#, r#""healthcheck":"web""#, "system"),
        (r#""system":"shop""#, r#""system":"Shop""#, "system"),
        (r#""system":"shop""#, r#""system":7"#, "system"),
        (r#""status":"healthy""#, r#""status":"ok""#, "status"),
        ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05", "timestamp"),
        ("\"latencyMs\":12", "\"latencyMs\":\"12\"", "latencyMs"),
        (
            "\"success\":true",
            "\"success\":[true]",
            "collectors.healthcheck-http.request.success",
        ),
        (
            "healthcheck-http.request",
            "Http.request",
            "collectors.Http.request",
        ),
    ];
    for (from, to, field) in cases {
        let body = format!("[{GOOD},{}]", GOOD.replacen(from, to, 1));
        let found = problems(&body);
        assert!(
            found.iter().any(|p| p.index == 1 && p.field == *field),
            "{to}: expected a problem at index 1 field {field}, got {found:?}"
        );
    }
}

#[test]
fn rejects_a_missing_system() {
    let body = GOOD.replace(r#""system":"shop","#, "");
    let found = problems(&body);
    assert_eq!(found[0].field, "system");
    assert_eq!(found[0].reason, "system is required");
}

#[test]
fn rejects_too_many_fields() {
    let fields: Vec<String> = (0..=MAX_FIELDS_PER_RESULT)
        .map(|i| format!("\"f{i}\":1"))
        .collect();
    let body = format!(
        r#"{{"system":"a","healthcheck":"b","status":"healthy","timestamp":"2026-01-02T00:00:00Z",
        "collectors":{{"c.d":{{{}}}}}}}"#,
        fields.join(",")
    );
    let found = problems(&body);
    assert!(found[0].reason.contains("at most 1000"), "{found:?}");
}

#[test]
fn rejects_malformed_json_and_non_objects() {
    let err = parse(b"{\"system\":", Framing::Json).unwrap_err();
    assert!(matches!(err, IngestError::Syntax(_)), "{err:?}");
    assert_eq!(
        parse(b"42", Framing::Json).unwrap_err(),
        IngestError::NotResults
    );
    let err = parse(b"{}\nnot json\n", Framing::Ndjson).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("line 2, column 2 of the NDJSON body"),
        "{message}"
    );
    assert!(!message.contains("at line 1"), "{message}");
}

#[test]
fn invalid_count_agrees_in_number() {
    let bad = r#"{"system":"a"}"#;
    let cases = [
        (
            format!("[{bad}]"),
            "1 of 1 result is invalid; nothing was stored",
        ),
        (
            format!("[{bad},{GOOD}]"),
            "1 of 2 results is invalid; nothing was stored",
        ),
        (
            format!("[{bad},{bad}]"),
            "2 of 2 results are invalid; nothing was stored",
        ),
    ];
    for (body, expected) in cases {
        let err = parse(body.as_bytes(), Framing::Json).unwrap_err();
        assert_eq!(err.to_string(), expected);
    }
}

#[test]
fn names_follow_the_pattern() {
    assert!(check_name("web-1").is_ok());
    assert!(check_name("0abc").is_ok());
    for bad in ["", "-web", "Web", "web_1", "web.1", &"a".repeat(64)] {
        assert!(check_name(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn rejects_oversized_result_unparsed() {
    let padding = " ".repeat(MAX_RESULT_BYTES);
    let big = GOOD.replacen('{', &format!("{{{padding}"), 1);
    let body = format!("[{GOOD},{big}]");
    let found = problems(&body);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].index, 1);
    assert!(found[0].reason.contains("bytes of JSON"), "{found:?}");
}

#[test]
fn rejects_long_text_values() {
    let long = "x".repeat(MAX_TEXT_BYTES + 1);
    let body = GOOD.replace("\"OK\"", &format!("\"{long}\""));
    let found = problems(&body);
    assert_eq!(
        found[0].field,
        "collectors.healthcheck-http.request.statusText"
    );
    assert!(found[0].reason.contains("at most 4096 bytes"), "{found:?}");

    let fits = GOOD.replace("\"OK\"", &format!("\"{}\"", &long[1..]));
    assert!(parse(fits.as_bytes(), Framing::Json).is_ok());
}

#[test]
fn rejects_timestamps_before_1970() {
    let body = GOOD.replace("2026-01-02T03:04:05Z", "0001-01-01T00:00:00Z");
    let found = problems(&body);
    assert_eq!(found[0].field, "timestamp");
    assert!(found[0].reason.contains("before 1970"), "{found:?}");
}

#[test]
fn stops_reading_past_the_result_limit() {
    let body = format!("[{}0]", "0,".repeat(MAX_RESULTS_PER_REQUEST));
    assert_eq!(
        parse(body.as_bytes(), Framing::Json).unwrap_err(),
        IngestError::TooManyResults
    );
    let lines = "{}\n".repeat(MAX_RESULTS_PER_REQUEST + 1);
    assert_eq!(
        parse(lines.as_bytes(), Framing::Ndjson).unwrap_err(),
        IngestError::TooManyResults
    );
}

#[test]
fn rejects_text_after_the_array() {
    let body = format!("[{GOOD}] [{GOOD}]");
    let err = parse(body.as_bytes(), Framing::Json).unwrap_err();
    assert!(matches!(err, IngestError::Syntax(_)), "{err:?}");
    assert!(err.to_string().contains("trailing characters"), "{err}");

    let err = parse(b"[1, 2", Framing::Json).unwrap_err();
    assert!(matches!(err, IngestError::Syntax(_)), "{err:?}");
}
