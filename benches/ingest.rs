//! Durable ingest through HTTP with concurrent clients on 127.0.0.1, the time from POST to the
//! matching event on the stream, and the ceiling of writing the same records straight into redb
//! with the same batch sizes.
//!
//! Run with `cargo bench --bench ingest`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anomalyd::engine::{Timestamp, Value};
use anomalyd::server::{ServeOptions, run};
use anomalyd::store::{SampleRecord, Store, WriteTables};
use support::{Conn, SseReader, minute_time};
use tokio::sync::{Mutex, oneshot};

const CLIENTS: usize = 8;
const REQUESTS_PER_CLIENT: usize = 150;
const RESULTS_PER_REQUEST: usize = 50;
const FIELDS_PER_RESULT: usize = 10;
const SYSTEMS_PER_CLIENT: usize = 25;
const PROBES: usize = 100;

/// Builds one result with ten fields: four HTTP fields and six of a custom collector.
fn result(system: &str, minute: u32, seed: u32) -> String {
    let v = f64::from(seed % 17);
    format!(
        concat!(
            r#"{{"system":"{s}","healthcheck":"web","status":"healthy","timestamp":"{t}","collectors":{{"#,
            r#""healthcheck-http.request":{{"responseTimeMs":{a},"success":true,"statusCode":200,"bodyLength":512}},"#,
            r#""bench.probe":{{"f0":{v},"f1":{v},"f2":{v},"f3":{v},"f4":{v},"f5":{v}}}}}}}"#
        ),
        s = system,
        t = minute_time(minute),
        a = 100.0 + v,
        v = v,
    )
}

fn request_body(client: usize, request: usize) -> String {
    let mut lines = Vec::with_capacity(RESULTS_PER_REQUEST);
    for i in 0..RESULTS_PER_REQUEST {
        let n = request * RESULTS_PER_REQUEST + i;
        let system = format!("c{client}-s{}", n % SYSTEMS_PER_CLIENT);
        let minute = (n / SYSTEMS_PER_CLIENT) as u32;
        lines.push(result(&system, minute, n as u32));
    }
    lines.join("\n")
}

/// Posts prepared bodies one after another on one connection; returns each request's time.
/// With `keys`, each request carries an `Idempotency-Key` named after the client and request.
async fn load_client(
    addr: SocketAddr,
    client: usize,
    bodies: Vec<String>,
    keys: bool,
) -> Vec<Duration> {
    let mut conn = Conn::open(addr).await.expect("connect");
    let mut times = Vec::with_capacity(bodies.len());
    for (request, body) in bodies.into_iter().enumerate() {
        let key = format!("bench-c{client}-r{request}");
        let mut headers = vec![("content-type", "application/x-ndjson")];
        if keys {
            headers.push(("idempotency-key", key.as_str()));
        }
        let started = Instant::now();
        let reply = conn
            .send("POST", "/api/v1/results", &headers, body.as_bytes())
            .await
            .expect("POST");
        assert_eq!(reply.status, 200, "{}", reply.text());
        times.push(started.elapsed());
    }
    times
}

/// Measures event latency: each probe teaches a fresh series 23 samples, then times the 24th
/// result's POST until its baseline-updated event arrives.
async fn probes(addr: SocketAddr, sse: Arc<Mutex<SseReader>>) -> Vec<Duration> {
    let mut conn = Conn::open(addr).await.expect("connect");
    let headers = [("content-type", "application/x-ndjson")];
    let mut times = Vec::with_capacity(PROBES);
    for probe in 0..PROBES {
        let system = format!("probe-{probe}");
        let learn: Vec<String> = (0..23)
            .map(|m| support::latency(&system, m, 100.0 + f64::from(m % 3)))
            .collect();
        conn.send(
            "POST",
            "/api/v1/results",
            &headers,
            learn.join("\n").as_bytes(),
        )
        .await
        .expect("POST");
        let last = support::latency(&system, 23, 101.0);
        let started = Instant::now();
        conn.send("POST", "/api/v1/results", &headers, last.as_bytes())
            .await
            .expect("POST");
        let mut sse = sse.lock().await;
        loop {
            let event = sse.next().await;
            if event.name == "baseline-updated"
                && event.data["baseline"]["system"] == system.as_str()
            {
                break;
            }
        }
        times.push(started.elapsed());
    }
    times
}

fn percentile(times: &mut [Duration], p: f64) -> Duration {
    times.sort();
    times[((times.len() as f64 - 1.0) * p).round() as usize]
}

fn bench_http(keys: bool) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = server_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let mut options = ServeOptions::new(dir.path());
    options.hourly_analyzer = false;
    let server = server_rt.spawn(async move {
        run(listener, options, async {
            let _ = stopped.await;
        })
        .await
        .expect("server");
    });

    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Bodies are built before the clock starts, so the clients' formatting is not measured.
    let bodies: Vec<Vec<String>> = (0..CLIENTS)
        .map(|c| {
            (0..REQUESTS_PER_CLIENT)
                .map(|r| request_body(c, r))
                .collect()
        })
        .collect();
    let (elapsed, mut latencies, mut events) = client_rt.block_on(async move {
        let sse = Arc::new(Mutex::new(SseReader::connect(addr, None).await));
        let started = Instant::now();
        let probe = tokio::spawn(probes(addr, sse));
        let loads: Vec<_> = bodies
            .into_iter()
            .enumerate()
            .map(|(client, b)| tokio::spawn(load_client(addr, client, b, keys)))
            .collect();
        let mut latencies = Vec::new();
        for load in loads {
            latencies.extend(load.await.expect("client"));
        }
        let elapsed = started.elapsed();
        (elapsed, latencies, probe.await.expect("probes"))
    });
    let _ = stop.send(());
    server_rt.block_on(server).expect("server stopped");

    let results = (CLIENTS * REQUESTS_PER_CLIENT * RESULTS_PER_REQUEST) as f64;
    let results_per_sec = results / elapsed.as_secs_f64();
    let fields_per_sec = results_per_sec * FIELDS_PER_RESULT as f64;
    let with = if keys {
        ", each with an Idempotency-Key"
    } else {
        ""
    };
    println!(
        "ingest over HTTP: {CLIENTS} clients, {RESULTS_PER_REQUEST} results x {FIELDS_PER_RESULT} fields per request{with}"
    );
    println!("  {results} results in {:.2} s", elapsed.as_secs_f64());
    println!("  {results_per_sec:.0} results/s, {fields_per_sec:.0} durable field evaluations/s");
    println!(
        "  request time p50 {:.1} ms, p99 {:.1} ms",
        ms(percentile(&mut latencies, 0.5)),
        ms(percentile(&mut latencies, 0.99))
    );
    println!(
        "  POST to SSE event under load ({PROBES} probes): p50 {:.1} ms, p99 {:.1} ms",
        ms(percentile(&mut events, 0.5)),
        ms(percentile(&mut events, 0.99))
    );
    (results_per_sec, fields_per_sec)
}

/// Writes the same number of samples straight into redb, one commit per request-sized batch.
fn bench_redb() -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("store");
    let batches = CLIENTS * REQUESTS_PER_CLIENT;
    let started = Instant::now();
    for batch in 0..batches {
        let tx = store.database().begin_write().expect("begin");
        {
            let mut w = WriteTables::open(&tx).expect("tables");
            for i in 0..RESULTS_PER_REQUEST {
                let n = batch * RESULTS_PER_REQUEST + i;
                let at = Timestamp::from_millis(1_767_312_000_000 + n as i64 * 60_000);
                for field in 0..FIELDS_PER_RESULT {
                    let key = anomalyd::series::SeriesKey {
                        system: format!("c{}-s{}", batch % CLIENTS, n % SYSTEMS_PER_CLIENT),
                        healthcheck: "web".into(),
                        environment: None,
                        field_path: format!("collectors.bench.probe.f{field}"),
                    };
                    let id = w.series_id(&key).expect("series");
                    let sample = SampleRecord {
                        value: (&Value::Number(n as f64)).into(),
                        valid: true,
                        healthy: true,
                    };
                    w.insert_sample(id, at, &sample).expect("insert");
                }
            }
            w.finish().expect("finish");
        }
        tx.commit().expect("commit");
    }
    let elapsed = started.elapsed();
    let fields = (batches * RESULTS_PER_REQUEST * FIELDS_PER_RESULT) as f64;
    let per_sec = fields / elapsed.as_secs_f64();
    println!(
        "redb ceiling: {batches} commits of {} samples",
        RESULTS_PER_REQUEST * FIELDS_PER_RESULT
    );
    println!(
        "  {fields} samples in {:.2} s: {per_sec:.0} samples/s",
        elapsed.as_secs_f64()
    );
    per_sec
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let (_, fields_per_sec) = bench_http(false);
    bench_http(true);
    let ceiling = bench_redb();
    println!(
        "HTTP ingest reaches {:.0} % of the redb ceiling",
        100.0 * fields_per_sec / ceiling
    );
}
