use serde_json::json;

use super::*;

const FIELDS: &[&str] = &[
    "statusCode",
    "statusText",
    "responseTimeMs",
    "success",
    "body",
];

fn site() -> AssertionSite<'static> {
    AssertionSite {
        healthcheck: "api",
        collector_index: 0,
        assertion_index: 2,
    }
}

fn assertion(field: &str, path: Option<&str>, operator: &str, value: Option<Json>) -> Assertion {
    Assertion {
        field: field.to_owned(),
        json_path: path.map(str::to_owned),
        operator: operator.to_owned(),
        value,
    }
}

fn observation_fields() -> Vec<(&'static str, Value)> {
    vec![
        ("statusCode", Value::Number(200.0)),
        ("statusText", Value::Text("OK".to_owned())),
        ("responseTimeMs", Value::Number(42.5)),
        ("success", Value::Bool(true)),
    ]
}

const BODY: &str = r#"{"status":"ok","checks":[{"name":"db","up":true}],"empty":""}"#;

fn passes(field: &str, path: Option<&str>, operator: &str, value: Option<Json>) -> bool {
    let compiled = compile(&assertion(field, path, operator, value), FIELDS, &site())
        .expect("the assertion compiles");
    let fields = observation_fields();
    let observation = Observation {
        fields: &fields,
        body: Some(BODY),
    };
    compiled.evaluate(&observation).is_ok()
}

/// One table row: field, JSON path, operator, value and whether the assertion passes.
type Case = (
    &'static str,
    Option<&'static str>,
    &'static str,
    Option<Json>,
    bool,
);

#[test]
fn operators_by_table() {
    let cases: &[Case] = &[
        ("statusCode", None, "equals", Some(json!(200)), true),
        ("statusCode", None, "equals", Some(json!("200")), true),
        ("statusCode", None, "equals", Some(json!(201)), false),
        ("statusCode", None, "notEquals", Some(json!(500)), true),
        ("statusCode", None, "notEquals", Some(json!(200)), false),
        ("statusText", None, "equals", Some(json!("OK")), true),
        ("statusText", None, "contains", Some(json!("K")), true),
        ("statusText", None, "contains", Some(json!("x")), false),
        ("statusText", None, "startsWith", Some(json!("O")), true),
        ("statusText", None, "endsWith", Some(json!("O")), false),
        ("statusText", None, "matches", Some(json!("^O.$")), true),
        ("statusText", None, "matches", Some(json!("^o")), false),
        ("statusText", None, "exists", None, true),
        ("statusText", None, "notExists", None, false),
        ("body", Some("$.missing"), "exists", None, false),
        ("body", Some("$.missing"), "notExists", None, true),
        ("responseTimeMs", None, "lessThan", Some(json!(50)), true),
        ("responseTimeMs", None, "lessThan", Some(json!(42.5)), false),
        (
            "responseTimeMs",
            None,
            "lessThanOrEqual",
            Some(json!(42.5)),
            true,
        ),
        (
            "responseTimeMs",
            None,
            "greaterThan",
            Some(json!("40")),
            true,
        ),
        (
            "responseTimeMs",
            None,
            "greaterThanOrEqual",
            Some(json!(43)),
            false,
        ),
        ("body", Some("$.empty"), "isEmpty", None, true),
        ("statusText", None, "isEmpty", None, false),
        ("success", None, "isTrue", None, true),
        ("success", None, "isFalse", None, false),
        ("body", Some("$.status"), "equals", Some(json!("ok")), true),
        (
            "body",
            Some("$.checks[0].name"),
            "equals",
            Some(json!("db")),
            true,
        ),
        ("body", Some("$.checks[0]['up']"), "isTrue", None, true),
        ("body", Some("checks[0].up"), "isTrue", None, true),
        ("body", Some("$.checks[5].up"), "isTrue", None, false),
        ("body", None, "contains", Some(json!("\"db\"")), true),
    ];
    for (field, path, operator, value, expected) in cases {
        let actual = passes(field, *path, operator, value.clone());
        assert_eq!(actual, *expected, "{field} {path:?} {operator} {value:?}");
    }
}

#[test]
fn failure_message_shows_actual_value() {
    let compiled = compile(
        &assertion("statusCode", None, "equals", Some(json!(204))),
        FIELDS,
        &site(),
    )
    .expect("the assertion compiles");
    let fields = observation_fields();
    let observation = Observation {
        fields: &fields,
        body: None,
    };
    let message = compiled.evaluate(&observation).expect_err("200 is not 204");
    assert!(message.contains("statusCode equals 204"), "{message}");
    assert!(message.contains("200"), "{message}");
}

#[test]
fn missing_field_fails_comparisons() {
    let compiled = compile(
        &assertion("statusCode", None, "lessThan", Some(json!(500))),
        FIELDS,
        &site(),
    )
    .expect("the assertion compiles");
    let observation = Observation {
        fields: &[],
        body: None,
    };
    let message = compiled
        .evaluate(&observation)
        .expect_err("no value to compare");
    assert!(message.contains("missing"), "{message}");
}

#[test]
fn invalid_assertions_name_their_key() {
    let cases: &[(Assertion, &str)] = &[
        (
            assertion("latency", None, "exists", None),
            "collectors[0].assertions[2].field",
        ),
        (
            assertion("statusCode", None, "below", Some(json!(1))),
            "collectors[0].assertions[2].operator",
        ),
        (
            assertion("statusCode", None, "lessThan", None),
            "collectors[0].assertions[2].value",
        ),
        (
            assertion("statusCode", None, "lessThan", Some(json!("many"))),
            "collectors[0].assertions[2].value",
        ),
        (
            assertion("statusText", None, "matches", Some(json!("("))),
            "collectors[0].assertions[2].value",
        ),
        (
            assertion("body", Some("$..deep"), "exists", None),
            "collectors[0].assertions[2].jsonPath",
        ),
        (
            assertion("body", Some("$.items[*]"), "exists", None),
            "collectors[0].assertions[2].jsonPath",
        ),
    ];
    for (assertion, key) in cases {
        let error = compile(assertion, FIELDS, &site()).expect_err("the assertion is invalid");
        let message = error.to_string();
        assert!(message.contains(key), "{message} should name {key}");
        assert!(
            message.contains("`api`"),
            "{message} should name the healthcheck"
        );
    }
}

#[test]
fn failure_message_shortens_long_actual_value() {
    let compiled = compile(
        &assertion("body", None, "contains", Some(json!("ready"))),
        FIELDS,
        &site(),
    )
    .expect("the assertion compiles");
    let body = "é".repeat(5000);
    let observation = Observation {
        fields: &[],
        body: Some(&body),
    };
    let message = compiled
        .evaluate(&observation)
        .expect_err("no `ready` in the body");
    assert!(message.len() < 500, "{message}");
    assert!(message.contains("(10002 bytes in all)"), "{message}");
}

#[test]
fn regex_error_fits_one_line() {
    let error = compile(
        &assertion("statusText", None, "matches", Some(json!("(unclosed"))),
        FIELDS,
        &site(),
    )
    .expect_err("an unclosed group is not a regex");
    assert!(!error.reason.contains('\n'), "{}", error.reason);
    assert!(error.reason.contains("unclosed group"), "{}", error.reason);
}
