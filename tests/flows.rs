//! Spike flows end to end over HTTP. A series learns a baseline from 24 healthy results, then
//! goes through a suspicious run, confirmation, recovery and a cleared episode, checked through
//! the read API and the event stream. Suppression, paging and a restart are covered too.

mod support;

use serde_json::Value as Json;
use support::{LATENCY_FIELD, SseEvent, SseReader, TestServer, latency};

/// Baseline values around 100 ms: mean 103, σ about 2.8.
fn baseline_body() -> String {
    (0..24)
        .map(|i| latency("shop", i, 100.0 + f64::from(i % 5) * 2.0))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn next_state_change(sse: &mut SseReader) -> SseEvent {
    loop {
        let event = sse.next().await;
        if event.name == "state-changed" {
            return event;
        }
    }
}

fn anomalies(server_reply: Json) -> Vec<Json> {
    server_reply["anomalies"]
        .as_array()
        .expect("anomalies array")
        .clone()
}

async fn post_latency(server: &TestServer, minute: u32, ms: f64) -> Json {
    let reply = server
        .post("/api/v1/results", &latency("shop", minute, ms))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

#[tokio::test]
async fn spike_learns_confirms_recovers_and_clears() {
    let server = TestServer::start().await;
    let mut sse = SseReader::connect(server.addr, None).await;

    let reply = server.post_ndjson(&baseline_body()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["results"], 24);
    let learned = sse.next().await;
    assert_eq!(learned.name, "baseline-updated");
    assert_eq!(learned.data["baseline"]["field"], LATENCY_FIELD);
    assert_eq!(learned.data["baseline"]["sampleCount"], 24);

    let series = server.get("/api/v1/series?system=shop").await.json();
    assert_eq!(series["series"][0]["learning"], Json::Null);
    assert_eq!(series["series"][0]["managed"], false);

    // Three runs at 1000 ms: suspicious, still suspicious, confirmed (window 3).
    assert_eq!(post_latency(&server, 30, 1000.0).await["stateChanges"], 1);
    let event = next_state_change(&mut sse).await;
    assert_eq!(event.data["change"], "suspicious");
    let id = event.data["anomaly"]["id"].as_u64().expect("anomaly id");
    assert_eq!(post_latency(&server, 31, 1000.0).await["stateChanges"], 0);
    let suspicious = server.get(&format!("/api/v1/anomalies/{id}")).await.json();
    assert_eq!(suspicious["state"], "suspicious");
    assert_eq!(suspicious["suspiciousRunCount"], 2);

    post_latency(&server, 32, 1000.0).await;
    let event = next_state_change(&mut sse).await;
    assert_eq!(
        (
            event.data["change"].clone(),
            event.data["anomaly"]["state"].clone()
        ),
        ("anomaly".into(), "anomaly".into())
    );
    let confirmed = server.get(&format!("/api/v1/anomalies/{id}")).await.json();
    assert_eq!(confirmed["direction"], "above");
    assert_eq!(confirmed["observedValue"], "1000");
    assert!(confirmed["confirmedAt"].is_string());
    let series = server.get("/api/v1/series?system=shop").await.json();
    assert_eq!(series["series"][0]["spikeState"], "anomaly");

    post_latency(&server, 33, 104.0).await;
    let event = next_state_change(&mut sse).await;
    assert_eq!(event.data["change"], "recovered");
    let recovered = server.get(&format!("/api/v1/anomalies/{id}")).await.json();
    assert_eq!(recovered["state"], "recovered");

    // A single anomalous run followed by a normal one: suspicious, then cleared (row deleted).
    post_latency(&server, 34, 1000.0).await;
    let event = next_state_change(&mut sse).await;
    assert_eq!(event.data["change"], "suspicious");
    let cleared_id = event.data["anomaly"]["id"].as_u64().expect("id");
    assert_ne!(cleared_id, id);
    post_latency(&server, 35, 102.0).await;
    let event = next_state_change(&mut sse).await;
    assert_eq!(event.data["change"], "cleared");
    assert_eq!(event.data["anomaly"]["id"], cleared_id);
    assert_eq!(
        server
            .get(&format!("/api/v1/anomalies/{cleared_id}"))
            .await
            .status,
        404
    );

    let feed = anomalies(server.get("/api/v1/anomalies").await.json());
    assert_eq!(feed.len(), 1);
    assert_eq!(feed[0]["id"], id);
    let samples = server
        .get(&format!("/api/v1/series/samples?system=shop&healthcheck=web&field={LATENCY_FIELD}&from=2026-01-02T00:30:00Z"))
        .await
        .json();
    assert_eq!(samples["samples"].as_array().expect("samples").len(), 6);
    assert_eq!(samples["more"], false);
    let cut = server
        .get(&format!("/api/v1/series/samples?system=shop&healthcheck=web&field={LATENCY_FIELD}&from=2026-01-02T00:30:00Z&limit=4"))
        .await
        .json();
    assert_eq!(cut["samples"].as_array().expect("samples").len(), 4);
    assert_eq!(cut["more"], true);
    assert_eq!(cut["samples"][3], samples["samples"][3]);

    // A client reconnecting with Last-Event-ID gets exactly the events after it.
    let mut again = SseReader::connect(server.addr, Some(event.id - 2)).await;
    assert_eq!(again.next().await.id, event.id - 1);
    assert_eq!(again.next().await.id, event.id);
    drop(again);
    drop(sse);
    server.stop().await;
}

#[tokio::test]
async fn suppression_needs_confirmed_anomaly() {
    let server = TestServer::start().await;
    server.post_ndjson(&baseline_body()).await;
    post_latency(&server, 30, 1000.0).await;
    let id = anomalies(server.get("/api/v1/anomalies").await.json())[0]["id"]
        .as_u64()
        .expect("id");

    let early = server
        .post(&format!("/api/v1/anomalies/{id}/suppress"), "")
        .await;
    assert_eq!(early.status, 409, "{}", early.text());
    assert_eq!(early.json()["error"]["code"], "conflict");
    assert_eq!(
        server
            .post("/api/v1/anomalies/999/suppress", "")
            .await
            .status,
        404
    );

    post_latency(&server, 31, 1000.0).await;
    post_latency(&server, 32, 1000.0).await;
    let suppressed = server
        .post(&format!("/api/v1/anomalies/{id}/suppress"), "")
        .await;
    assert_eq!(suppressed.status, 200, "{}", suppressed.text());
    let suppressed = suppressed.json();
    assert_eq!(suppressed["suppression"]["value"], 1000.0);
    assert!(
        (suppressed["suppression"]["baseline"]
            .as_f64()
            .expect("baseline")
            - 103.0)
            .abs()
            < 1.0
    );

    assert!(anomalies(server.get("/api/v1/anomalies").await.json()).is_empty());
    assert_eq!(
        anomalies(
            server
                .get("/api/v1/anomalies?suppression=suppressed")
                .await
                .json()
        )
        .len(),
        1
    );
    assert_eq!(
        anomalies(server.get("/api/v1/anomalies?suppression=all").await.json()).len(),
        1
    );

    // Still anomalous at the suppressed value: the suppression holds.
    post_latency(&server, 33, 1000.0).await;
    let row = server.get(&format!("/api/v1/anomalies/{id}")).await.json();
    assert_eq!(row["suppressed"], true);

    let lifted = server
        .post(&format!("/api/v1/anomalies/{id}/unsuppress"), "")
        .await
        .json();
    assert_eq!(lifted["suppressed"], false);
    assert_eq!(
        anomalies(server.get("/api/v1/anomalies").await.json()).len(),
        1
    );
    server.stop().await;
}

#[tokio::test]
async fn restart_restores_baselines_and_open_rows() {
    let server = TestServer::start().await;
    // An open event stream must not hold shutdown open.
    let _stream = SseReader::connect(server.addr, None).await;
    server.post_ndjson(&baseline_body()).await;
    post_latency(&server, 30, 1000.0).await;
    post_latency(&server, 31, 1000.0).await;
    let dir = server.dir.clone();
    let before = server.get("/api/v1/anomalies").await.json();
    let temp = server.stop().await;

    let server = TestServer::start_in(dir).await;
    assert_eq!(server.get("/api/v1/anomalies").await.json(), before);
    // The third anomalous run confirms the row opened before the restart.
    post_latency(&server, 32, 1000.0).await;
    let feed = anomalies(server.get("/api/v1/anomalies").await.json());
    assert_eq!(feed.len(), 1);
    assert_eq!(feed[0]["state"], "anomaly");
    server.stop().await;
    drop(temp);
}

#[tokio::test]
async fn paging_and_filters_of_the_feed() {
    let server = TestServer::start().await;
    for system in ["alpha", "beta", "gamma"] {
        let body: Vec<String> = (0..24)
            .map(|i| latency(system, i, 100.0 + f64::from(i % 5) * 2.0))
            .collect();
        server.post_ndjson(&body.join("\n")).await;
        server
            .post("/api/v1/results", &latency(system, 40, 1000.0))
            .await;
    }
    let first = server.get("/api/v1/anomalies?limit=2").await.json();
    assert_eq!(anomalies(first.clone()).len(), 2);
    let cursor = first["nextCursor"].as_str().expect("cursor").to_owned();
    let second = server
        .get(&format!("/api/v1/anomalies?limit=2&cursor={cursor}"))
        .await
        .json();
    assert_eq!(anomalies(second.clone()).len(), 1);
    assert_eq!(second["nextCursor"], Json::Null);

    let beta = anomalies(
        server
            .get("/api/v1/anomalies?system=beta&state=suspicious&kind=spike")
            .await
            .json(),
    );
    assert_eq!(beta.len(), 1);
    assert_eq!(beta[0]["system"], "beta");
    assert!(anomalies(server.get("/api/v1/anomalies?state=recovered").await.json()).is_empty());
    assert_eq!(server.get("/api/v1/anomalies?limit=1001").await.status, 400);
    assert_eq!(
        server.get("/api/v1/anomalies?state=bogus").await.status,
        400
    );
    server.stop().await;
}

#[tokio::test]
async fn new_event_client_gets_only_later_events() {
    let server = TestServer::start().await;
    let reply = server.post_ndjson(&baseline_body()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    // The baseline-updated event above is buffered, but a client without Last-Event-ID starts
    // at the present, so the first event it receives is the suspicious run posted after it.
    let mut sse = SseReader::connect(server.addr, None).await;
    assert_eq!(post_latency(&server, 30, 1000.0).await["stateChanges"], 1);
    let first = sse.next().await;
    assert_ne!(
        first.name, "baseline-updated",
        "old event replayed: {first:?}"
    );
    assert_eq!(first.data["change"], "suspicious", "{first:?}");
    drop(sse);
    server.stop().await;
}
