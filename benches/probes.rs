//! Probe throughput: many checks on a one-second interval against a local server, counting the
//! runs completed per second and the latency the probes measured.
//!
//! Run with `cargo bench --bench probes`. Every server is started here on 127.0.0.1.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use anomalyd::config::{ConfigSnapshot, Healthcheck, Source, System};
use anomalyd::engine::Value;
use anomalyd::probes::{ProbeOptions, Probes};
use anomalyd::series::CheckResult;

/// Time the probes run before counting starts, so every first run has happened.
const WARM_UP: Duration = Duration::from_secs(2);
const MEASURED: Duration = Duration::from_secs(10);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the benchmark runtime starts");
    runtime.block_on(async {
        let http_url = http_server().await;
        let tcp_port = tcp_server().await;
        println!(
            "probes: {} s per scenario, 2 worker threads",
            MEASURED.as_secs()
        );
        for checks in [100, 400, 1600] {
            let config = json!({ "url": http_url });
            scenario("http", "healthcheck-http.http", config, checks).await;
        }
        for checks in [100, 400, 1600] {
            let config = json!({ "host": "127.0.0.1", "port": tcp_port });
            scenario("tcp", "healthcheck-tcp.tcp", config, checks).await;
        }
        let config = json!({ "command": "true" });
        scenario("command", "healthcheck-script.execute", config, 50).await;
    });
}

/// Runs `checks` copies of one check every second and prints the measured figures.
async fn scenario(label: &str, strategy: &str, config: serde_json::Value, checks: usize) {
    let snapshot = snapshot(strategy, &config, checks);
    let (_config_tx, config_rx) = watch::channel(Arc::new(snapshot));
    let (sink, mut results) = mpsc::channel(1024);
    let probes = Probes::start(config_rx, sink, ProbeOptions::default()).expect("probes start");

    collect(&mut results, WARM_UP).await;
    let started = Instant::now();
    let cpu_before = process_cpu_seconds();
    let measured = collect(&mut results, MEASURED).await;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_share = (process_cpu_seconds() - cpu_before) / seconds;
    probes.stop().await;

    let mut latencies: Vec<f64> = measured.iter().filter_map(latency_ms).collect();
    latencies.sort_by(f64::total_cmp);
    println!(
        "{label:>8} {checks:>4} checks: {:>7.1} runs/s (expected {checks}), latency p50 {:.2} ms, \
         p99 {:.2} ms, unhealthy {}, CPU {:.0} % of one core (server included)",
        measured.len() as f64 / seconds,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        measured
            .iter()
            .filter(|result| result.status != anomalyd::series::Status::Healthy)
            .count(),
        cpu_share * 100.0,
    );
}

fn snapshot(strategy: &str, config: &serde_json::Value, checks: usize) -> ConfigSnapshot {
    let healthchecks: BTreeMap<String, Healthcheck> = (0..checks)
        .map(|index| {
            let check = Healthcheck {
                name: format!("check-{index}"),
                title: None,
                strategy: strategy.to_owned(),
                interval_secs: 1,
                config: config.clone(),
                collectors: Vec::new(),
                anomaly: None,
                source: Source::Api,
            };
            (check.name.clone(), check)
        })
        .collect();
    let system = System {
        name: "bench".to_owned(),
        title: None,
        description: None,
        healthchecks: healthchecks.keys().cloned().collect(),
        anomaly: BTreeMap::new(),
        healthcheck_options: BTreeMap::new(),
        source: Source::Api,
    };
    ConfigSnapshot {
        healthchecks,
        systems: BTreeMap::from([(system.name.clone(), system)]),
        ..ConfigSnapshot::default()
    }
}

async fn collect(results: &mut mpsc::Receiver<CheckResult>, window: Duration) -> Vec<CheckResult> {
    let deadline = tokio::time::Instant::now() + window;
    let mut collected = Vec::new();
    while let Ok(Some(result)) = tokio::time::timeout_at(deadline, results.recv()).await {
        collected.push(result);
    }
    collected
}

/// Returns the strategy's own latency field of a result.
fn latency_ms(result: &CheckResult) -> Option<f64> {
    let names = ["responseTimeMs", "readTimeMs", "executionTimeMs"];
    result
        .fields
        .iter()
        .find(|field| names.contains(&field.field.as_str()))
        .and_then(|field| match field.value {
            Value::Number(ms) => Some(ms),
            _ => None,
        })
}

/// Returns the user and system CPU time of this process so far, from `/proc/self/stat`.
fn process_cpu_seconds() -> f64 {
    // Linux reports these times in clock ticks of 1/100 s on every common architecture.
    const TICKS_PER_SECOND: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat is readable");
    // The command name may contain spaces, so fields are counted after its closing parenthesis.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|field| field.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line. The first field after the name is
    // field 3, so they sit at indexes 11 and 12 here.
    (ticks(11) + ticks(12)) / TICKS_PER_SECOND
}

fn percentile(sorted: &[f64], share: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * share).round() as usize;
    sorted[index]
}

/// Starts an HTTP/1.1 server on 127.0.0.1 that responds to every request at once.
async fn http_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let url = format!(
        "http://{}/health",
        listener.local_addr().expect("a local address")
    );
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(respond(stream));
        }
    });
    url
}

async fn respond(mut stream: TcpStream) {
    let mut request = Vec::new();
    let mut chunk = [0_u8; 1024];
    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(read) => request.extend_from_slice(&chunk[..read]),
        }
    }
    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    let _ = stream.write_all(response).await;
    let _ = stream.shutdown().await;
}

/// Starts a TCP server on 127.0.0.1 that accepts and closes every connection.
async fn tcp_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("a local address").port();
    tokio::spawn(async move { while listener.accept().await.is_ok() {} });
    port
}
