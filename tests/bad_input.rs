//! Bad input gets the documented status and message, and never changes what is stored: each case
//! compares a snapshot of the read API before and after.

mod support;

use serde_json::Value as Json;
use support::{LATENCY_FIELD, TestServer, latency, minute_time, result, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn snapshot(server: &TestServer) -> Vec<Json> {
    let mut out = Vec::new();
    for path in [
        "/api/v1/series".to_owned(),
        "/api/v1/baselines".to_owned(),
        "/api/v1/anomalies?suppression=all".to_owned(),
        format!("/api/v1/series/samples?system=shop&healthcheck=web&field={LATENCY_FIELD}"),
    ] {
        out.push(server.get(&path).await.json());
    }
    out
}

struct Case {
    name: &'static str,
    body: String,
    ndjson: bool,
    status: u16,
    code: &'static str,
    /// Text the message or one of the details must contain.
    mentions: &'static str,
}

fn case(
    name: &'static str,
    body: String,
    status: u16,
    code: &'static str,
    mentions: &'static str,
) -> Case {
    Case {
        name,
        body,
        ndjson: false,
        status,
        code,
        mentions,
    }
}

fn cases() -> Vec<Case> {
    let good = latency("shop", 50, 101.0);
    let fields: Vec<String> = (0..1001).map(|i| format!(r#""f{i}":1"#)).collect();
    vec![
        case(
            "malformed json",
            format!("[{good},"),
            400,
            "malformed-json",
            "not valid JSON",
        ),
        case(
            "not an object",
            "42".into(),
            400,
            "invalid-results",
            "result object",
        ),
        case(
            "wrong type",
            latency("shop", 51, 1.0).replace(r#""healthy""#, "5"),
            400,
            "invalid-results",
            "status",
        ),
        case(
            "count agrees in number",
            latency("shop", 51, 1.0).replace(r#""healthy""#, "5"),
            400,
            "invalid-results",
            "1 of 1 result is invalid; nothing was stored",
        ),
        case(
            "missing system",
            good.replace(r#""system":"shop","#, ""),
            400,
            "invalid-results",
            "system is required",
        ),
        case(
            "no zone",
            good.replace(":00Z", ":00"),
            400,
            "invalid-results",
            "RFC 3339 with a zone",
        ),
        case(
            "bad name",
            good.replace("\"shop\"", "\"Shop_1\""),
            400,
            "invalid-results",
            "lowercase",
        ),
        case(
            "object value",
            result("shop", 52, r#""responseTimeMs":{"v":1}"#),
            400,
            "invalid-results",
            "number, string, boolean or null",
        ),
        case(
            "too many fields",
            result("shop", 53, &fields.join(",")),
            400,
            "invalid-results",
            "at most 1000",
        ),
        case(
            "one bad in a batch",
            format!("[{good},{}]", good.replace("\"web\"", "\"\"")),
            400,
            "invalid-results",
            "healthcheck",
        ),
        case(
            "too many results",
            format!("[{}{{}}]", "{},".repeat(100_000)),
            400,
            "too-many-results",
            "at most 100000",
        ),
        case(
            "timestamp ahead of the clock",
            format!("[{good},{}]", stamped(&good, from_now(24 * 60))),
            400,
            "invalid-results",
            "minutes ahead of this server's clock",
        ),
        case(
            "empty body",
            " \n".into(),
            400,
            "invalid-results",
            "request body is empty",
        ),
        case(
            "misspelt collectors",
            good.replace("\"collectors\"", "\"colectors\""),
            400,
            "invalid-results",
            "unknown key \\\"colectors\\\"",
        ),
        case(
            "misspelt environment",
            good.replace("\"healthcheck\"", "\"enviroment\":\"prod\",\"healthcheck\""),
            400,
            "invalid-results",
            "unknown key \\\"enviroment\\\"; a result has the keys system, healthcheck",
        ),
        case(
            "checkstack shape with an anomalyd key",
            format!(
                r#"{{"systemId":"shop","configurationId":"web","environment":"prod","status":"healthy","timestamp":"{}","result":{{}}}}"#,
                minute_time(50)
            ),
            400,
            "invalid-results",
            "mixes keys of the anomalyd shape [\\\"environment\\\"]",
        ),
        case(
            "checkstack entry without collector id",
            format!(
                r#"{{"systemId":"shop","configurationId":"web","status":"healthy","timestamp":"{}","result":{{"request-1":{{"responseTimeMs":120}}}}}}"#,
                minute_time(50)
            ),
            400,
            "invalid-results",
            "_collectorId is missing",
        ),
        case(
            "both shapes mixed",
            good.replace(
                "\"system\":\"shop\"",
                "\"system\":\"shop\",\"systemId\":\"shop\"",
            ),
            400,
            "invalid-results",
            "send system, healthcheck, environment and collectors, or systemId",
        ),
        case(
            "number beyond a float",
            result("shop", 52, r#""responseTimeMs":1e400"#),
            400,
            "malformed-json",
            "number out of range",
        ),
        Case {
            ndjson: true,
            ..case(
                "bad ndjson line",
                format!("{good}\n{{\n"),
                400,
                "malformed-json",
                "line 2, column 1 of the NDJSON body is not valid JSON (EOF while parsing",
            )
        },
    ]
}

#[tokio::test]
async fn bad_input_is_rejected_and_changes_nothing() {
    let server = TestServer::start().await;
    let learn: Vec<String> = (0..24)
        .map(|i| latency("shop", i, 100.0 + f64::from(i % 3)))
        .collect();
    assert_eq!(server.post_ndjson(&learn.join("\n")).await.status, 200);
    let before = snapshot(&server).await;

    for case in cases() {
        let reply = if case.ndjson {
            server.post_ndjson(&case.body).await
        } else {
            server.post("/api/v1/results", &case.body).await
        };
        assert_eq!(reply.status, case.status, "{}: {}", case.name, reply.text());
        let error = &reply.json()["error"];
        assert_eq!(error["code"], case.code, "{}: {error}", case.name);
        assert!(
            error.to_string().contains(case.mentions),
            "{}: {error} lacks {:?}",
            case.name,
            case.mentions
        );
        assert_eq!(
            snapshot(&server).await,
            before,
            "{} changed stored data",
            case.name
        );
    }
    server.stop().await;
}

/// Returns the time `minutes` from now in RFC 3339.
fn from_now(minutes: i64) -> String {
    (jiff::Timestamp::now() + jiff::SignedDuration::from_mins(minutes)).to_string()
}

/// Moves a result built for minute 50 to `at`.
fn stamped(result: &str, at: String) -> String {
    result.replace(&minute_time(50), &at)
}

#[tokio::test]
async fn compressed_body_is_rejected() {
    let server = TestServer::start().await;
    let before = snapshot(&server).await;
    let headers = [
        ("content-type", "application/json"),
        ("content-encoding", "gzip"),
    ];
    let body = latency("shop", 50, 100.0);
    let reply = server
        .send("POST", "/api/v1/results", &headers, body.as_bytes())
        .await;
    assert_eq!(reply.status, 415, "{}", reply.text());
    let error = &reply.json()["error"];
    assert_eq!(error["code"], "unsupported-encoding");
    let message = error["message"].as_str().expect("message");
    assert!(
        message.contains("\"gzip\"") && message.contains("uncompressed"),
        "{message}"
    );

    // Every route with a body rejects it, also those whose JSON is small.
    let mutes_before = server.get("/api/v1/mutes").await.json();
    let writes = [
        ("POST", "/api/v1/mutes", r#"{"system":"shop"}"#),
        (
            "PUT",
            "/api/v1/healthchecks/web/settings",
            r#"{"baselineWindow":"3d"}"#,
        ),
    ];
    for (method, path, body) in writes {
        let reply = server.send(method, path, &headers, body.as_bytes()).await;
        assert_eq!(reply.status, 415, "{method} {path}: {}", reply.text());
    }
    assert_eq!(server.get("/api/v1/mutes").await.json(), mutes_before);
    assert_eq!(snapshot(&server).await, before);
    server.stop().await;
}

#[tokio::test]
async fn samples_not_found_hints_environment() {
    let server = TestServer::start().await;
    let body = latency("shop", 50, 100.0).replace(
        "\"healthcheck\"",
        "\"environment\":\"prod\",\"healthcheck\"",
    );
    assert_eq!(server.post("/api/v1/results", &body).await.status, 200);
    let path = format!("/api/v1/series/samples?system=shop&healthcheck=web&field={LATENCY_FIELD}");
    let reply = server.get(&path).await;
    assert_eq!(reply.status, 404, "{}", reply.text());
    let message = reply.json()["error"]["message"].to_string();
    assert!(message.contains("environment=NAME"), "{message}");
    let reply = server.get(&format!("{path}&environment=prod")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    server.stop().await;
}

#[tokio::test]
async fn small_clock_skew_is_accepted() {
    let server = TestServer::start().await;
    let ahead = stamped(&latency("shop", 50, 100.0), from_now(1));
    let reply = server.post("/api/v1/results", &ahead).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["fieldEvaluations"], 1);
    let backlog = latency("shop", 50, 100.0);
    let reply = server.post("/api/v1/results", &backlog).await;
    assert_eq!(
        reply.status,
        200,
        "results from the past are a backlog: {}",
        reply.text()
    );
    server.stop().await;
}

#[tokio::test]
async fn invalid_details_name_index_and_field() {
    let server = TestServer::start().await;
    let good = latency("shop", 1, 100.0);
    let bad = good.replace("2026-01-02T00:01:00Z", "yesterday");
    let reply = server
        .post("/api/v1/results", &format!("[{good},{bad}]"))
        .await;
    assert_eq!(reply.status, 400);
    let details = reply.json()["error"]["details"].clone();
    assert_eq!(details[0]["index"], 1);
    assert_eq!(details[0]["field"], "timestamp");
    server.stop().await;
}

#[tokio::test]
async fn oversized_body_gets_413_naming_the_limit() {
    let server = TestServer::start().await;
    let before = snapshot(&server).await;
    let mut stream = within(tokio::net::TcpStream::connect(server.addr))
        .await
        .expect("connect");
    let length = 8 * 1024 * 1024 + 1;
    let head = format!(
        "POST /api/v1/results HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n"
    );
    within(stream.write_all(head.as_bytes()))
        .await
        .expect("write head");
    // The server replies from the declared length without reading the body.
    let mut reply = Vec::new();
    let _ = within(stream.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("8388608 bytes"), "{reply}");
    assert_eq!(snapshot(&server).await, before);
    server.stop().await;
}

#[tokio::test]
async fn nan_string_counted_invalid() {
    let server = TestServer::start().await;
    let learn: Vec<String> = (0..24)
        .map(|i| latency("shop", i, 100.0 + f64::from(i % 3)))
        .collect();
    server.post_ndjson(&learn.join("\n")).await;
    let baseline_before = server.get("/api/v1/baselines").await.json();

    let reply = server
        .post(
            "/api/v1/results",
            &result("shop", 30, r#""responseTimeMs":"NaN""#),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let counts = reply.json();
    assert_eq!(
        (
            counts["results"].clone(),
            counts["invalidSamples"].clone(),
            counts["stateChanges"].clone()
        ),
        (1.into(), 1.into(), 0.into())
    );
    let invalid = counts["invalid"].as_array().expect("invalid list").clone();
    assert_eq!(invalid.len(), 1, "{counts}");
    assert_eq!(invalid[0]["index"], 0);
    assert_eq!(invalid[0]["field"], LATENCY_FIELD);
    let reason = invalid[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("numeric but the value is a string"),
        "{reason}"
    );

    let series = server.get("/api/v1/series?system=shop").await.json();
    assert_eq!(series["series"][0]["invalidCount"], 1);
    assert_eq!(
        server.get("/api/v1/baselines").await.json(),
        baseline_before
    );
    let samples = server
        .get(&format!("/api/v1/series/samples?system=shop&healthcheck=web&field={LATENCY_FIELD}&from=2026-01-02T00:30:00Z"))
        .await
        .json();
    assert_eq!(samples["samples"][0]["valid"], false);
    assert_eq!(samples["samples"][0]["value"], "NaN");
    assert!(
        server.get("/api/v1/anomalies").await.json()["anomalies"]
            .as_array()
            .expect("list")
            .is_empty()
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_query_parameters_name_allowed_values() {
    let server = TestServer::start().await;
    let samples =
        format!("/api/v1/series/samples?system=shop&healthcheck=web&field={LATENCY_FIELD}");
    let cases = [
        (
            "/api/v1/anomalies?limit=abc".to_owned(),
            "use a whole number from 1 to 1000",
        ),
        (
            "/api/v1/anomalies?limit=0".to_owned(),
            "use a whole number from 1 to 1000",
        ),
        (
            format!("{samples}&limit=-3"),
            "use a whole number from 1 to 100000",
        ),
        (
            "/api/v1/anomalies?state=bogus".to_owned(),
            "use one of suspicious, anomaly, recovered",
        ),
        (
            "/api/v1/anomalies?kind=bogus".to_owned(),
            "use one of spike, drift",
        ),
        (
            "/api/v1/anomalies?suppression=bogus".to_owned(),
            "use one of active, suppressed, all",
        ),
        ("/api/v1/anomalies?cursor=bogus".to_owned(), "nextCursor"),
        (
            format!("{samples}&from=yesterday"),
            "RFC 3339 time with a zone",
        ),
        (
            "/api/v1/series/samples?system=shop&healthcheck=web".to_owned(),
            "missing query parameter field",
        ),
        (
            "/api/v1/deliveries?state=bogus".to_owned(),
            "use pending, delivered or failed",
        ),
        (
            "/api/v1/deliveries?limit=x".to_owned(),
            "use a whole number from 1 to",
        ),
    ];
    for (path, expected) in cases {
        let reply = server.get(&path).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.text());
        let message = reply.json()["error"]["message"].to_string();
        assert!(
            message.contains(expected),
            "{path}: {message} lacks {expected:?}"
        );
    }
    server.stop().await;
}
