//! Notifications: ingest latency while deliveries hang on a receiver that never responds,
//! delivery throughput to a receiver that accepts at once, and the outbox scan the delivery
//! worker makes on every wake.
//!
//! Run with `cargo bench --bench notify`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anomalyd::config::{ConfigSnapshot, Notifier, NotifierFilters, NotifierFormat, Secret, Source};
use anomalyd::notify::{self, DeliveryState, OutboxRecord, OutboxTables};
use anomalyd::server::ServeOptions;
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use support::{TestServer, latency};
use tokio::net::TcpListener;
use tokio::sync::watch;

const SYSTEMS: usize = 200;
const INGEST_REQUESTS: usize = 300;
const SCAN_ROWS: u64 = 10_000;

fn config(url: Option<String>) -> ConfigSnapshot {
    let mut config = ConfigSnapshot::default();
    if let Some(url) = url {
        let notifier = Notifier {
            name: "bench".to_owned(),
            url: Secret::new(url),
            headers: BTreeMap::new(),
            timeout_secs: 300,
            format: NotifierFormat::Json,
            filters: NotifierFilters::default(),
            source: Source::Api,
        };
        config.notifiers.insert(notifier.name.clone(), notifier);
    }
    config
}

async fn start(config: ConfigSnapshot) -> (TestServer, tempfile::TempDir) {
    let temp = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start_with(temp.path().to_path_buf(), |options: &mut ServeOptions| {
        let (sender, receiver) = watch::channel(Arc::new(config));
        drop(sender);
        options.config = Some(receiver);
        options.probes = false;
    })
    .await;
    (server, temp)
}

/// Starts a receiver that accepts connections and never responds.
async fn hanging_receiver() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
        }
    });
    (addr, task)
}

/// Starts a receiver that responds with 200 at once.
async fn accepting_receiver() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(|_req| async {
                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    (addr, task)
}

/// Learns a baseline for every system and confirms one spike in each: `SYSTEMS` notifications.
async fn confirm_all(server: &TestServer) {
    let mut baseline = Vec::new();
    for s in 0..SYSTEMS {
        for minute in 0..24 {
            baseline.push(latency(
                &format!("s{s}"),
                minute,
                100.0 + f64::from(minute % 5) * 2.0,
            ));
        }
    }
    assert_eq!(server.post_ndjson(&baseline.join("\n")).await.status, 200);
    for minute in 30..33 {
        let spikes: Vec<String> = (0..SYSTEMS)
            .map(|s| latency(&format!("s{s}"), minute, 1000.0))
            .collect();
        assert_eq!(server.post_ndjson(&spikes.join("\n")).await.status, 200);
    }
}

/// Posts one result per request, one after another; returns the sorted request times.
async fn ingest_times(server: &TestServer) -> Vec<Duration> {
    let mut times = Vec::with_capacity(INGEST_REQUESTS);
    for i in 0..INGEST_REQUESTS {
        let body = latency("load", 40 + (i as u32) % 1000, 100.0);
        let started = Instant::now();
        let reply = server.post("/api/v1/results", &body).await;
        times.push(started.elapsed());
        assert_eq!(reply.status, 200);
    }
    times.sort();
    times
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn report(label: &str, times: &[Duration]) {
    println!(
        "{label:<44} p50 {:>8.2?}  p99 {:>8.2?}  max {:>8.2?}",
        percentile(times, 0.5),
        percentile(times, 0.99),
        times[times.len() - 1]
    );
}

async fn ingest_with_hanging_deliveries() {
    let (server, _temp) = start(config(None)).await;
    confirm_all(&server).await;
    report("ingest, no notifier", &ingest_times(&server).await);
    server.stop().await;

    let (addr, receiver) = hanging_receiver().await;
    let (server, _temp) = start(config(Some(format!("http://{addr}/")))).await;
    confirm_all(&server).await;
    report("ingest, 4 deliveries hanging", &ingest_times(&server).await);
    server.stop().await;
    receiver.abort();
}

async fn delivery_throughput() {
    let (addr, receiver) = accepting_receiver().await;
    let (server, _temp) = start(config(Some(format!("http://{addr}/")))).await;
    confirm_all(&server).await;
    let started = Instant::now();
    loop {
        let pending = server
            .get("/api/v1/deliveries?state=pending&limit=1")
            .await
            .json();
        if pending["deliveries"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    println!(
        "delivered {SYSTEMS} notifications in {elapsed:.2?} after the last confirm: {:.0}/s",
        SYSTEMS as f64 / elapsed.as_secs_f64()
    );
    server.stop().await;
    receiver.abort();
}

fn outbox_scan() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = redb::Database::create(dir.path().join("scan.redb")).expect("create");
    let tx = database.begin_write().expect("begin");
    {
        let mut tables = OutboxTables::open(&tx).expect("open");
        for i in 0..SCAN_ROWS {
            let record = OutboxRecord {
                notifier: "bench".to_owned(),
                anomaly_id: i,
                idempotency_key: format!("anomalyd-{i}-confirmed"),
                payload: "{}".to_owned(),
                state: DeliveryState::Pending,
                attempts: 1,
                created_at_ms: 0,
                next_attempt_at_ms: 1_000_000,
                last_attempt_at_ms: None,
                finished_at_ms: None,
                last_error: None,
            };
            tables.enqueue(&record).expect("enqueue");
        }
    }
    tx.commit().expect("commit");
    let runs = 20;
    let started = Instant::now();
    for _ in 0..runs {
        let due = notify::due(&database, 0, 16, &mut |_, _| true).expect("scan");
        assert!(due.rows.is_empty());
    }
    println!(
        "outbox scan, {SCAN_ROWS} pending rows none due: {:.2?} per scan",
        started.elapsed() / runs
    );

    // A due row after all the others makes the scan read the notifier and anomaly of every
    // earlier row, to keep each anomaly's rows in order.
    let tx = database.begin_write().expect("begin");
    {
        let mut tables = OutboxTables::open(&tx).expect("open");
        let record = OutboxRecord {
            notifier: "bench".to_owned(),
            anomaly_id: SCAN_ROWS,
            idempotency_key: format!("anomalyd-{SCAN_ROWS}-confirmed"),
            payload: "{}".to_owned(),
            state: DeliveryState::Pending,
            attempts: 0,
            created_at_ms: 0,
            next_attempt_at_ms: 0,
            last_attempt_at_ms: None,
            finished_at_ms: None,
            last_error: None,
        };
        tables.enqueue(&record).expect("enqueue");
    }
    tx.commit().expect("commit");
    let started = Instant::now();
    for _ in 0..runs {
        let due = notify::due(&database, 0, 16, &mut |_, _| true).expect("scan");
        assert_eq!(due.rows.len(), 1);
    }
    println!(
        "outbox scan, {SCAN_ROWS} pending rows, the last one due: {:.2?} per scan",
        started.elapsed() / runs
    );
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(ingest_with_hanging_deliveries());
    runtime.block_on(delivery_throughput());
    outbox_scan();
}
