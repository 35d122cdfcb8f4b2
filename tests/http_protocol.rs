//! HTTP behaviour below the API's JSON: the `Allow` header of 405 replies, the time limit on
//! reading a request body, and slow uploads that must not hold up other requests, checked over
//! raw TCP against a server on 127.0.0.1:0.

mod support;

use std::net::SocketAddr;

use serde_json::Value as Json;
use support::{TestServer, request, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A reply read until the server closed the connection.
struct RawReply {
    status: u16,
    /// Header lines with lowercase names.
    headers: Vec<(String, String)>,
    body: String,
}

impl RawReply {
    fn parse(text: &str) -> Self {
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {text:?}"));
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.to_lowercase(), value.trim().to_owned()))
            .collect();
        Self {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Json {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// Sends a body-less request with `connection: close` and reads the whole reply.
async fn raw_request(addr: SocketAddr, method: &str, path: &str) -> RawReply {
    within(async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.expect("send");
        let mut text = String::new();
        stream.read_to_string(&mut text).await.expect("read");
        RawReply::parse(&text)
    })
    .await
}

/// Splits an `Allow` value into its methods.
fn methods(allow: &str) -> Vec<String> {
    allow.split(',').map(|m| m.trim().to_owned()).collect()
}

#[tokio::test]
async fn method_not_allowed_names_allowed_methods() {
    let server = TestServer::start().await;
    let cases = [
        ("POST", "/api/v1/healthchecks/web/settings", "GET, PUT"),
        ("GET", "/api/v1/results", "POST"),
        ("PATCH", "/api/v1/mutes", "GET, POST, DELETE"),
        ("DELETE", "/api/v1/anomalies/7", "GET"),
        ("GET", "/api/v1/anomalies/7/suppress", "POST"),
        ("POST", "/", "GET"),
    ];
    for (method, path, expected) in cases {
        let reply = raw_request(server.addr, method, path).await;
        assert_eq!(reply.status, 405, "{method} {path}: {}", reply.body);
        assert_eq!(reply.header("allow"), Some(expected), "{method} {path}");
        let error = &reply.json()["error"];
        assert_eq!(error["code"], "method-not-allowed", "{method} {path}");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{method} {path}: {message}");
    }
    server.stop().await;
}

#[tokio::test]
async fn allowed_methods_are_routed() {
    let server = TestServer::start().await;
    // Every route but the event stream, whose GET never ends.
    let paths = [
        "/",
        "/app.js",
        "/style.css",
        "/healthz",
        "/metrics",
        "/api/v1/results",
        "/api/v1/anomalies",
        "/api/v1/anomalies/7",
        "/api/v1/anomalies/7/suppress",
        "/api/v1/anomalies/7/unsuppress",
        "/api/v1/baselines",
        "/api/v1/series",
        "/api/v1/series/samples",
        "/api/v1/systems",
        "/api/v1/systems/shop",
        "/api/v1/healthchecks",
        "/api/v1/catalogue",
        "/api/v1/fields/effective",
        "/api/v1/healthchecks/web/settings",
        "/api/v1/systems/shop/healthchecks/web/settings",
        "/api/v1/gitops",
        "/api/v1/deliveries",
        "/api/v1/mutes",
    ];
    for path in paths {
        let probe = raw_request(server.addr, "OPTIONS", path).await;
        assert_eq!(probe.status, 405, "OPTIONS {path}");
        let allow = probe.header("allow").expect("405 carries Allow").to_owned();
        for method in methods(&allow) {
            let reply = within(request(server.addr, &method, path, &[], b""))
                .await
                .expect("request");
            assert_ne!(reply.status, 405, "{method} {path} is listed in Allow");
        }
    }
    let unknown = raw_request(server.addr, "POST", "/api/v1/nothing").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.header("allow"), None);
    server.stop().await;
}

/// Sends the head of a request whose body is `length` bytes, then only `partial` of it, and
/// reads until the server closes the connection.
async fn stalled_body(addr: SocketAddr, method: &str, path: &str, partial: &str) -> RawReply {
    let mut stream = within(TcpStream::connect(addr)).await.expect("connect");
    let length = partial.len() + 100;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
         content-length: {length}\r\n\r\n{partial}"
    );
    within(stream.write_all(head.as_bytes()))
        .await
        .expect("send");
    let mut text = String::new();
    within(stream.read_to_string(&mut text))
        .await
        .expect("the server closes the connection");
    RawReply::parse(&text)
}

#[tokio::test]
async fn stalled_body_gets_408_and_close() {
    let temp = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start_with(temp.path().to_path_buf(), |options| {
        options.body_read_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    let cases = [
        ("POST", "/api/v1/results", r#"{"system":"shop","#),
        ("PUT", "/api/v1/healthchecks/web/settings", r#"{"notify":"#),
        ("POST", "/api/v1/mutes", r#"{"system":"#),
    ];
    for (method, path, partial) in cases {
        let started = std::time::Instant::now();
        let reply = stalled_body(server.addr, method, path, partial).await;
        assert_eq!(reply.status, 408, "{method} {path}: {}", reply.body);
        assert_eq!(reply.header("connection"), Some("close"), "{path}");
        let error = &reply.json()["error"];
        assert_eq!(error["code"], "request-timeout", "{path}");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains("1s"), "{path}: {message}");
        assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    }
    let reply = server.get("/healthz").await;
    assert_eq!(reply.status, 200, "the server still answers");
    server.stop().await;
}

/// Opens a chunked result upload that sends its first chunk and then nothing more.
async fn slow_upload(addr: SocketAddr) -> TcpStream {
    let mut stream = within(TcpStream::connect(addr)).await.expect("connect");
    let head = "POST /api/v1/results HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
                transfer-encoding: chunked\r\n\r\n1\r\n[\r\n";
    within(stream.write_all(head.as_bytes()))
        .await
        .expect("send");
    stream
}

#[tokio::test]
async fn slow_uploads_leave_ingest_free() {
    let temp = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start_with(temp.path().to_path_buf(), |options| {
        options.body_read_timeout = std::time::Duration::from_secs(30);
    })
    .await;
    let mut uploads = Vec::new();
    for _ in 0..6 {
        uploads.push(slow_upload(server.addr).await);
    }
    // Let the server read the heads of the stalled uploads before the quick request.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let started = std::time::Instant::now();
    let body = support::latency("shop", 0, 120.0);
    let reply = server.post("/api/v1/results", &body).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let waited = started.elapsed();
    assert!(
        waited < std::time::Duration::from_secs(10),
        "a small request waited {waited:?} behind stalled uploads"
    );
    drop(uploads);
    server.stop().await;
}

#[tokio::test]
async fn bad_chunked_body_names_the_cause() {
    let server = TestServer::start().await;
    let reply = within(async {
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        let request = "POST /api/v1/results HTTP/1.1\r\nhost: test\r\n\
                       transfer-encoding: chunked\r\nconnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n";
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text).await;
        text
    })
    .await;
    let reply = RawReply::parse(&reply);
    assert_eq!(reply.status, 400, "{}", reply.body);
    let error = &reply.json()["error"];
    assert_eq!(error["code"], "unreadable-body");
    let message = error["message"].as_str().expect("message");
    assert!(message.contains("chunk"), "{message}");
    assert!(message.contains("send the request again"), "{message}");
    server.stop().await;
}
