//! Crash safety: a child `anomalyd serve` is killed with SIGKILL while clients post results.
//! After a restart every acknowledged result is present, open anomalies and baselines are
//! intact, and the file opens without error.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value as Json;
use support::{Conn, LATENCY_FIELD, latency, minute_time, request, within};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const CLIENTS: usize = 4;

/// Starts `anomalyd serve` on 127.0.0.1:0 and reads the bound address from its log.
async fn spawn_server(dir: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_anomalyd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start anomalyd");
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    let addr = within(async {
        loop {
            let line = lines
                .next_line()
                .await
                .expect("read log")
                .expect("server exited early");
            if let Some(rest) = line.split(" addr=").nth(1) {
                let addr = rest.split_whitespace().next().expect("address");
                return addr.parse().expect("socket address");
            }
        }
    })
    .await;
    // Keep draining the log so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

async fn get(addr: SocketAddr, path: &str) -> Json {
    let reply = within(request(addr, "GET", path, &[], b""))
        .await
        .expect("GET");
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

async fn post(addr: SocketAddr, body: &str) -> u16 {
    let headers = [("content-type", "application/x-ndjson")];
    let reply = within(request(
        addr,
        "POST",
        "/api/v1/results",
        &headers,
        body.as_bytes(),
    ))
    .await;
    reply.expect("POST").status
}

/// Posts one result per request for its own system until `stop` is set, and returns the minutes
/// whose results were acknowledged.
async fn client(addr: SocketAddr, system: String, stop: Arc<AtomicBool>) -> Vec<u32> {
    let mut acked = Vec::new();
    let Ok(mut conn) = Conn::open(addr).await else {
        return acked;
    };
    for minute in 0u32.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let body = latency(&system, minute, 100.0 + f64::from(minute % 7));
        let sent = tokio::time::timeout(
            Duration::from_secs(5),
            conn.send("POST", "/api/v1/results", &[], body.as_bytes()),
        )
        .await;
        match sent {
            Ok(Ok(reply)) if reply.status == 200 => acked.push(minute),
            _ => break,
        }
    }
    acked
}

async fn samples_of(addr: SocketAddr, system: &str) -> Vec<String> {
    let path = format!(
        "/api/v1/series/samples?system={system}&healthcheck=web&field={LATENCY_FIELD}&limit=100000"
    );
    let reply = within(request(addr, "GET", &path, &[], b""))
        .await
        .expect("GET");
    if reply.status == 404 {
        return Vec::new();
    }
    let samples = reply.json()["samples"].as_array().expect("samples").clone();
    samples
        .iter()
        .map(|s| s["at"].as_str().expect("time").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_results_survive_sigkill() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (mut child, addr) = spawn_server(temp.path()).await;

    // A learned baseline and a confirmed anomaly that must survive.
    let learn: Vec<String> = (0..24)
        .map(|i| latency("shop", i, 100.0 + f64::from(i % 5)))
        .collect();
    assert_eq!(post(addr, &learn.join("\n")).await, 200);
    for minute in 30..33 {
        assert_eq!(post(addr, &latency("shop", minute, 1000.0)).await, 200);
    }
    let anomalies_before = get(addr, "/api/v1/anomalies").await;
    assert_eq!(anomalies_before["anomalies"][0]["state"], "anomaly");
    let baselines_before = get(addr, "/api/v1/baselines?system=shop").await;

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(client(addr, format!("client-{i}"), stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    child.start_kill().expect("SIGKILL the server");
    within(child.wait()).await.expect("server exit");
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for client in clients {
        acked.push(within(client).await.expect("client task"));
    }
    let total: usize = acked.iter().map(Vec::len).sum();
    assert!(
        total > CLIENTS * 5,
        "only {total} results were acknowledged before the kill"
    );
    eprintln!("{total} results acknowledged before SIGKILL");

    let (_child, addr) = spawn_server(temp.path()).await;
    for (i, minutes) in acked.iter().enumerate() {
        let stored = samples_of(addr, &format!("client-{i}")).await;
        assert!(
            stored.len() >= minutes.len(),
            "client {i}: {} stored < {} acknowledged",
            stored.len(),
            minutes.len()
        );
        for minute in minutes {
            let at = minute_time(*minute);
            assert!(
                stored.contains(&at),
                "client {i}: acknowledged result at {at} is missing"
            );
        }
    }
    assert_eq!(get(addr, "/api/v1/anomalies").await, anomalies_before);
    assert_eq!(
        get(addr, "/api/v1/baselines?system=shop").await,
        baselines_before
    );
}
