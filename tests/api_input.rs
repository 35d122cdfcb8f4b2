//! Requests a new user gets slightly wrong: the auth scheme in lower case, a non-numeric anomaly
//! id, invalid mutes, misspelt query parameters and result bodies with a byte order mark or in
//! the wrong framing. Each runs against a real server on 127.0.0.1:0.

mod support;

use anomalyd::config::Secret;
use support::{LATENCY_FIELD, Reply, TestServer, latency, request, within};

async fn send(
    server: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    within(request(server.addr, method, path, headers, body.as_bytes()))
        .await
        .expect("request")
}

fn message(reply: &Reply) -> String {
    reply.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let temp = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start_with(temp.path().to_path_buf(), |options| {
        options.token = Some(Secret::new("letmein"));
    })
    .await;
    for (minute, value) in [
        (0, "bearer letmein"),
        (1, "BEARER letmein"),
        (2, "Bearer letmein"),
    ] {
        let headers = [
            ("content-type", "application/json"),
            ("authorization", value),
        ];
        let body = latency("shop", minute, 100.0);
        let reply = send(&server, "POST", "/api/v1/results", &headers, &body).await;
        assert_eq!(reply.status, 200, "{value}: {}", reply.text());
    }
    for value in ["Basic letmein", "Bearerletmein", "bearer wrong"] {
        let headers = [
            ("content-type", "application/json"),
            ("authorization", value),
        ];
        let body = latency("shop", 3, 100.0);
        let reply = send(&server, "POST", "/api/v1/results", &headers, &body).await;
        assert_eq!(reply.status, 401, "{value}: {}", reply.text());
    }
    server.stop().await;
}

#[tokio::test]
async fn non_numeric_anomaly_id_is_bad_request() {
    let server = TestServer::start().await;
    let reply = server.get("/api/v1/anomalies/abc").await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.json()["error"]["code"], "invalid-id");
    assert!(message(&reply).contains("\"abc\""), "{}", reply.text());
    assert!(!message(&reply).contains("  "), "{}", reply.text());
    let reply = send(&server, "POST", "/api/v1/anomalies/x1/suppress", &[], "").await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    let reply = server.get("/api/v1/anomalies/12345").await;
    assert_eq!(reply.status, 404, "a numeric id that does not exist");
    server.stop().await;
}

#[tokio::test]
async fn invalid_mutes_store_nothing() {
    let server = TestServer::start().await;
    let cases = [
        (r#"{"system":"Bad!"}"#, "system name \"Bad!\""),
        (r#"{"system":""}"#, "system name \"\""),
        (
            r#"{"system":"shop","field":"collectors.Bad!.x"}"#,
            "invalid collector id",
        ),
        (
            r#"{"system":"Shop","field":"collectors.a.b c"}"#,
            "invalid field name",
        ),
        ("", "request body is missing"),
        ("{", "request body is not a valid mute"),
    ];
    for (body, expected) in cases {
        let reply = server.post("/api/v1/mutes", body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text());
        assert_eq!(reply.json()["error"]["code"], "invalid-mute", "{body}");
        let text = message(&reply);
        assert!(text.contains(expected), "{body}: {text}");
        assert!(!text.contains("query parameter"), "{body}: {text}");
    }
    let both = server
        .post("/api/v1/mutes", r#"{"system":"Shop","field":"x"}"#)
        .await;
    let details = both.json()["error"]["details"].clone();
    assert_eq!(details.as_array().map(Vec::len), Some(2), "{details}");
    let mutes = server.get("/api/v1/mutes").await.json();
    assert_eq!(mutes["mutes"], serde_json::json!([]), "{mutes}");

    let valid = format!(r#"{{"system":"shop","field":"{LATENCY_FIELD}"}}"#);
    assert_eq!(server.post("/api/v1/mutes", &valid).await.status, 200);
    let unmute = send(&server, "DELETE", "/api/v1/mutes", &[], "").await;
    assert_eq!(unmute.status, 400);
    assert!(
        message(&unmute).contains("?system=<name>"),
        "{}",
        unmute.text()
    );
    server.stop().await;
}

#[tokio::test]
async fn unknown_query_parameters_rejected() {
    let server = TestServer::start().await;
    let samples = format!("system=shop&healthcheck=web&field={LATENCY_FIELD}");
    let cases = [
        ("/api/v1/anomalies?sytem=shop".to_owned(), "sytem"),
        (
            "/api/v1/baselines?system=shop&colour=red".to_owned(),
            "colour",
        ),
        ("/api/v1/series?fields=x".to_owned(), "fields"),
        (format!("/api/v1/series/samples?{samples}&after=1"), "after"),
        (
            format!("/api/v1/fields/effective?{samples}&limit=3"),
            "limit",
        ),
        ("/api/v1/deliveries?status=failed".to_owned(), "status"),
    ];
    for (path, unknown) in cases {
        let reply = server.get(&path).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.text());
        assert_eq!(reply.json()["error"]["code"], "unknown-parameter", "{path}");
        let text = message(&reply);
        assert!(
            text.contains(&format!("unknown query parameter {unknown}")),
            "{path}: {text}"
        );
        assert!(text.contains("this endpoint accepts"), "{path}: {text}");
    }
    let text = message(&server.get("/api/v1/anomalies?sytem=shop").await);
    assert!(
        text.contains("system, healthcheck, environment, field"),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn invalid_name_filters_rejected() {
    let server = TestServer::start().await;
    let cases = [
        "/api/v1/anomalies?system=Bad!",
        "/api/v1/series?healthcheck=Web",
        "/api/v1/baselines?environment=a%20b",
        "/api/v1/anomalies?field=responseTimeMs",
        "/api/v1/series/samples?system=Bad!&healthcheck=web&field=collectors.a.b",
    ];
    for path in cases {
        let reply = server.get(path).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.text());
        assert_eq!(reply.json()["error"]["code"], "invalid-parameter", "{path}");
    }
    let page = format!(
        "/api/v1/anomalies?system=shop&healthcheck=web&field={LATENCY_FIELD}&suppression=all&limit=100"
    );
    assert_eq!(server.get(&page).await.status, 200, "the page's own query");
    server.stop().await;
}

#[tokio::test]
async fn byte_order_mark_body_named() {
    let server = TestServer::start().await;
    let body = format!("\u{FEFF}{}", latency("shop", 0, 100.0));
    for reply in [
        server.post("/api/v1/results", &body).await,
        server.post_ndjson(&body).await,
    ] {
        assert_eq!(reply.status, 400, "{}", reply.text());
        assert_eq!(
            message(&reply),
            "request body starts with a UTF-8 byte order mark; save it without one"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn ndjson_as_json_gets_content_type_hint() {
    let server = TestServer::start().await;
    let body = format!(
        "{}\n{}\n",
        latency("shop", 0, 100.0),
        latency("shop", 1, 100.0)
    );
    let reply = server.post("/api/v1/results", &body).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    let text = message(&reply);
    assert!(text.contains("trailing characters"), "{text}");
    assert!(
        text.contains("send Content-Type: application/x-ndjson"),
        "{text}"
    );
    let other = server.post("/api/v1/results", "{\"system\": ").await;
    assert!(
        !message(&other).contains("x-ndjson"),
        "only trailing characters get the hint: {}",
        other.text()
    );
    assert_eq!(server.post_ndjson(&body).await.status, 200);
    server.stop().await;
}
