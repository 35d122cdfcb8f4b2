//! `Idempotency-Key` on `POST /api/v1/results`. A retried request is stored once, after a
//! restart too. A key reused for other results and a malformed key are rejected and store
//! nothing.

mod support;

use std::net::SocketAddr;

use serde_json::Value as Json;
use support::{LATENCY_FIELD, Reply, TestServer, latency, request, within};

const SAMPLES: &str = "/api/v1/series/samples?system=shop&healthcheck=web&field=";

async fn post_keyed(server: &TestServer, key: &str, body: &str) -> Reply {
    post_keyed_to(server.addr, key, body).await
}

async fn post_keyed_to(addr: SocketAddr, key: &str, body: &str) -> Reply {
    let headers = [
        ("content-type", "application/json"),
        ("idempotency-key", key),
    ];
    within(request(
        addr,
        "POST",
        "/api/v1/results",
        &headers,
        body.as_bytes(),
    ))
    .await
    .expect("POST")
}

/// Returns the stored latency samples of system `shop`.
async fn stored_samples(server: &TestServer) -> Vec<Json> {
    let reply = server.get(&format!("{SAMPLES}{LATENCY_FIELD}")).await;
    if reply.status == 404 {
        return Vec::new();
    }
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["samples"]
        .as_array()
        .unwrap_or_else(|| panic!("no samples list: {}", reply.text()))
        .clone()
}

fn two_results() -> String {
    format!(
        "[{},{}]",
        latency("shop", 1, 120.0),
        latency("shop", 2, 125.0)
    )
}

#[tokio::test]
async fn results_retry_stored_once() {
    let server = TestServer::start().await;
    let body = two_results();

    let first = post_keyed(&server, "batch-7f3a", &body).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("idempotent-replayed"), None);
    assert_eq!(first.json()["results"], 2);

    let retry = post_keyed(&server, "batch-7f3a", &body).await;
    assert_eq!(retry.status, 200, "{}", retry.text());
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.json(), first.json());
    assert_eq!(stored_samples(&server).await.len(), 2);

    // The key is kept in the data file, so a retry after a restart is recognised as well.
    let dir = server.dir.clone();
    let temp = server.stop().await;
    let server = TestServer::start_in(dir).await;
    let after_restart = post_keyed(&server, "batch-7f3a", &body).await;
    assert_eq!(after_restart.status, 200, "{}", after_restart.text());
    assert_eq!(after_restart.header("idempotent-replayed"), Some("true"));
    assert_eq!(stored_samples(&server).await.len(), 2);

    // Without a key, the same body is stored again: the key is what names a request.
    let unkeyed = server.post("/api/v1/results", &body).await;
    assert_eq!(unkeyed.status, 200, "{}", unkeyed.text());
    assert_eq!(stored_samples(&server).await.len(), 4);
    server.stop().await;
    drop(temp);
}

#[tokio::test]
async fn results_concurrent_copies_stored_once() {
    let server = TestServer::start().await;
    let mut copies = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let addr = server.addr;
        copies.spawn(async move { post_keyed_to(addr, "same-request", &two_results()).await });
    }
    let replies = copies.join_all().await;
    let replayed = replies
        .iter()
        .inspect(|r| assert_eq!(r.status, 200, "{}", r.text()))
        .filter(|r| r.header("idempotent-replayed") == Some("true"))
        .count();
    assert_eq!(replayed, 7, "exactly one copy is stored");
    assert_eq!(stored_samples(&server).await.len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn results_reused_key_rejected() {
    let server = TestServer::start().await;
    let first = post_keyed(&server, "k-1", &latency("shop", 1, 120.0)).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let before = stored_samples(&server).await;

    let other = post_keyed(&server, "k-1", &latency("shop", 2, 900.0)).await;
    assert_eq!(other.status, 422, "{}", other.text());
    let error = &other.json()["error"];
    assert_eq!(error["code"], "idempotency-key-reused");
    let message = error["message"].as_str().expect("message");
    assert!(
        message.contains("\"k-1\"") && message.contains("new key"),
        "{message}"
    );
    assert_eq!(stored_samples(&server).await, before);
    server.stop().await;
}

#[tokio::test]
async fn results_repeated_key_header_rejected() {
    let server = TestServer::start().await;
    let headers = [
        ("content-type", "application/json"),
        ("idempotency-key", "r1"),
        ("idempotency-key", "r2"),
    ];
    let body = latency("shop", 1, 120.0);
    let reply = server
        .send("POST", "/api/v1/results", &headers, body.as_bytes())
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.json()["error"]["code"], "bad-idempotency-key");
    assert!(stored_samples(&server).await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn results_malformed_key_rejected() {
    let server = TestServer::start().await;
    let long = "k".repeat(256);
    let cases = [
        ("two words", "visible ASCII characters, without spaces"),
        (long.as_str(), "has 256 bytes; at most 255"),
    ];
    for (key, expected) in cases {
        let reply = post_keyed(&server, key, &latency("shop", 1, 120.0)).await;
        assert_eq!(reply.status, 400, "{key}: {}", reply.text());
        let error = &reply.json()["error"];
        assert_eq!(error["code"], "bad-idempotency-key");
        let message = error["message"].as_str().expect("message");
        assert!(message.contains(expected), "{message}");
    }
    assert!(stored_samples(&server).await.is_empty());
    server.stop().await;
}
