//! Built-in probes against servers and programs the tests start themselves on 127.0.0.1.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value as Json, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, timeout};

use anomalyd::config::{Assertion, CollectorInstance, ConfigSnapshot, Healthcheck, Source, System};
use anomalyd::detector::Detector;
use anomalyd::engine::{StateChange, Value};
use anomalyd::probes::{self, ProbeOptions, Probes};
use anomalyd::series::{CheckResult, Status};

const SYSTEM: &str = "shop";
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

fn healthcheck(name: &str, strategy: &str, interval_secs: u32, config: Json) -> Healthcheck {
    Healthcheck {
        name: name.to_owned(),
        title: None,
        strategy: strategy.to_owned(),
        interval_secs,
        config,
        collectors: Vec::new(),
        anomaly: None,
        source: Source::Api,
    }
}

fn with_assertions(
    mut check: Healthcheck,
    collector_id: &str,
    assertions: Vec<Assertion>,
) -> Healthcheck {
    check.collectors.push(CollectorInstance {
        collector_id: collector_id.to_owned(),
        config: Json::Null,
        assertions,
    });
    check
}

fn assertion(
    field: &str,
    json_path: Option<&str>,
    operator: &str,
    value: Option<Json>,
) -> Assertion {
    Assertion {
        field: field.to_owned(),
        json_path: json_path.map(str::to_owned),
        operator: operator.to_owned(),
        value,
    }
}

/// Builds a snapshot with `checks`, all assigned to one system.
fn snapshot(checks: Vec<Healthcheck>) -> ConfigSnapshot {
    let system = System {
        name: SYSTEM.to_owned(),
        title: None,
        description: None,
        healthchecks: checks.iter().map(|check| check.name.clone()).collect(),
        anomaly: BTreeMap::new(),
        healthcheck_options: BTreeMap::new(),
        source: Source::Api,
    };
    ConfigSnapshot {
        healthchecks: checks
            .into_iter()
            .map(|check| (check.name.clone(), check))
            .collect(),
        systems: BTreeMap::from([(SYSTEM.to_owned(), system)]),
        ..ConfigSnapshot::default()
    }
}

fn field<'a>(result: &'a CheckResult, name: &str) -> Option<&'a Value> {
    result
        .fields
        .iter()
        .find(|field| field.field == name)
        .map(|field| &field.value)
}

async fn run_once(check: &Healthcheck) -> CheckResult {
    let client = probes::client().expect("the probe client builds");
    let systems = [SYSTEM.to_owned()];
    let mut results = timeout(TEST_TIMEOUT, probes::run_once(check, &systems, &client))
        .await
        .expect("the run finishes")
        .expect("the probe config is valid");
    assert_eq!(results.len(), 1);
    results.remove(0)
}

/// An HTTP/1.1 server that responds to every request after `latency_ms` with `status` and `body`.
struct HttpServer {
    url: String,
    latency_ms: Arc<AtomicU64>,
}

async fn http_server(status: &'static str, body: &'static str, latency_ms: u64) -> HttpServer {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let url = format!(
        "http://{}/health",
        listener.local_addr().expect("a local address")
    );
    let latency = Arc::new(AtomicU64::new(latency_ms));
    let shared = latency.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let latency = Duration::from_millis(shared.load(Ordering::SeqCst));
            tokio::spawn(answer(stream, latency, status, body));
        }
    });
    HttpServer {
        url,
        latency_ms: latency,
    }
}

async fn answer(mut stream: TcpStream, latency: Duration, status: &str, body: &str) {
    let mut request = Vec::new();
    let mut chunk = [0_u8; 1024];
    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(read) => request.extend_from_slice(&chunk[..read]),
        }
    }
    tokio::time::sleep(latency).await;
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn http_check(url: &str, interval_secs: u32) -> Healthcheck {
    healthcheck(
        "api",
        "healthcheck-http.http",
        interval_secs,
        json!({ "url": url }),
    )
}

#[tokio::test]
async fn http_latency_step_is_confirmed_and_recovers() {
    let server = http_server("200 OK", "ok", 20).await;
    let config = snapshot(vec![http_check(&server.url, 1)]);
    let (_config_tx, config_rx) = watch::channel(Arc::new(config.clone()));
    let (sink, mut results) = mpsc::channel(16);
    let options = ProbeOptions {
        interval_unit: Duration::from_millis(100),
        ..ProbeOptions::default()
    };
    let probes = Probes::start(config_rx, sink, options).expect("the probes start");
    let mut detector = Detector::new();
    let mut next_id = 0;
    let mut ids = move || {
        next_id += 1;
        next_id
    };
    let path = "collectors.healthcheck-http.request.responseTimeMs";

    let steps = async {
        // Learn the baseline at about 20 ms.
        loop {
            let result = results.recv().await.expect("the probes keep sending");
            let updates = detector.process(&result, &config, &mut ids);
            if updates
                .iter()
                .any(|update| update.key.field_path == path && update.baseline.is_some())
            {
                break;
            }
        }
        server.latency_ms.store(400, Ordering::SeqCst);
        let mut anomalous_values = Vec::new();
        loop {
            let result = results.recv().await.expect("the probes keep sending");
            let updates = detector.process(&result, &config, &mut ids);
            let update = updates
                .into_iter()
                .find(|update| update.key.field_path == path)
                .expect("every healthy run has a response time");
            if update.anomaly().is_some() {
                anomalous_values.push(update.value.clone());
            }
            if update
                .transition()
                .and_then(|transition| transition.state_change)
                == Some(StateChange::Anomaly)
            {
                break;
            }
        }
        server.latency_ms.store(20, Ordering::SeqCst);
        loop {
            let result = results.recv().await.expect("the probes keep sending");
            let updates = detector.process(&result, &config, &mut ids);
            let update = updates
                .into_iter()
                .find(|update| update.key.field_path == path)
                .expect("every healthy run has a response time");
            if update
                .transition()
                .and_then(|transition| transition.state_change)
                == Some(StateChange::Recovered)
            {
                return (anomalous_values, update);
            }
        }
    };
    let (anomalous_values, recovery) = timeout(TEST_TIMEOUT, steps)
        .await
        .expect("the step is confirmed and recovers");
    probes.stop().await;

    assert_eq!(
        anomalous_values.len(),
        3,
        "window 3 confirms on the third slow run: {anomalous_values:?}"
    );
    for value in &anomalous_values {
        let Value::Number(ms) = value else {
            panic!("responseTimeMs is a number, got {value:?}");
        };
        assert!(*ms >= 400.0, "a slow run took {ms} ms");
    }
    let Value::Number(recovered_ms) = recovery.value else {
        panic!("responseTimeMs is a number");
    };
    assert!(
        recovered_ms < 200.0,
        "recovered on a fast run, took {recovered_ms} ms"
    );
    let row = recovery.anomaly().expect("the recovered row is returned");
    assert!(
        !row.self_resolved,
        "recovered by a normal value, not by settling"
    );
}

#[tokio::test]
async fn http_fields_and_body_assertion() {
    let server = http_server("503 Service Unavailable", r#"{"status":"down"}"#, 0).await;
    let check = http_check(&server.url, 30);

    let plain = run_once(&check).await;
    assert_eq!(
        plain.status,
        Status::Healthy,
        "a 503 alone does not fail the run"
    );
    assert_eq!(field(&plain, "statusCode"), Some(&Value::Number(503.0)));
    assert_eq!(
        field(&plain, "statusText"),
        Some(&Value::Text("Service Unavailable".to_owned()))
    );
    assert_eq!(field(&plain, "bodyLength"), Some(&Value::Number(17.0)));
    assert_eq!(field(&plain, "success"), Some(&Value::Bool(false)));
    assert!(
        field(&plain, "body").is_none(),
        "the body is never reported"
    );
    assert!(matches!(field(&plain, "responseTimeMs"), Some(Value::Number(ms)) if *ms >= 0.0));
    assert!(
        plain
            .fields
            .iter()
            .all(|field| field.collector_id == "healthcheck-http.request")
    );

    let body_check = assertion("body", Some("$.status"), "equals", Some(json!("ok")));
    let asserted = with_assertions(check.clone(), "healthcheck-http.request", vec![body_check]);
    assert_eq!(run_once(&asserted).await.status, Status::Unhealthy);

    let mut expected = check.clone();
    expected.config["expectedStatus"] = json!(503);
    assert_eq!(
        field(&run_once(&expected).await, "success"),
        Some(&Value::Bool(true))
    );
}

#[tokio::test]
async fn http_refused_and_slow_are_unhealthy() {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let refused_url = format!(
        "http://{}/",
        listener.local_addr().expect("a local address")
    );
    drop(listener);
    let slow = http_server("200 OK", "ok", 5000).await;
    let mut slow_check = http_check(&slow.url, 30);
    slow_check.config["timeout"] = json!(200);

    let refused = run_once(&http_check(&refused_url, 30)).await;
    assert_eq!(refused.status, Status::Unhealthy);
    assert_eq!(field(&refused, "success"), Some(&Value::Bool(false)));
    assert!(field(&refused, "responseTimeMs").is_none());

    let started = Instant::now();
    let timed_out = run_once(&slow_check).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the run ended at its timeout"
    );
    assert_eq!(timed_out.status, Status::Unhealthy);
    assert_eq!(field(&timed_out, "success"), Some(&Value::Bool(false)));
}

#[tokio::test]
async fn http_request_settings_are_sent() {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let url = format!(
        "http://{}/submit",
        listener.local_addr().expect("a local address")
    );
    let received = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("the probe connects");
        let mut request = Vec::new();
        let mut chunk = [0_u8; 1024];
        while !String::from_utf8_lossy(&request).ends_with("hello") {
            let read = stream.read(&mut chunk).await.expect("the request arrives");
            assert!(
                read > 0,
                "the request ended early: {}",
                String::from_utf8_lossy(&request)
            );
            request.extend_from_slice(&chunk[..read]);
        }
        let _ = stream
            .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            .await;
        String::from_utf8_lossy(&request).into_owned()
    });
    let mut check = http_check("http://unused.invalid/", 30);
    check.collectors.push(CollectorInstance {
        collector_id: "healthcheck-http.request".to_owned(),
        config: json!({
            "url": url,
            "method": "post",
            "headers": [{"name": "X-Probe", "value": "yes"}],
            "body": "hello",
        }),
        assertions: Vec::new(),
    });

    let result = run_once(&check).await;
    let request = timeout(TEST_TIMEOUT, received)
        .await
        .expect("the server finishes")
        .expect("the server task ends");
    assert!(request.starts_with("POST /submit HTTP/1.1"), "{request}");
    assert!(
        request.to_ascii_lowercase().contains("x-probe: yes"),
        "{request}"
    );
    assert!(
        request.contains(&format!("anomalyd/{}", env!("CARGO_PKG_VERSION"))),
        "{request}"
    );
    assert_eq!(field(&result, "statusCode"), Some(&Value::Number(204.0)));
    assert_eq!(result.status, Status::Healthy);
}

#[tokio::test]
async fn tcp_refused_connection_is_unhealthy() {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("a local address").port();
    drop(listener);
    let check = healthcheck(
        "db",
        "healthcheck-tcp.tcp",
        30,
        json!({"host": "127.0.0.1", "port": port}),
    );

    let result = run_once(&check).await;
    assert_eq!(result.status, Status::Unhealthy);
    assert_eq!(field(&result, "hasBanner"), Some(&Value::Bool(false)));
    assert!(
        field(&result, "readTimeMs").is_none(),
        "no read time without a connection"
    );
}

#[tokio::test]
async fn tcp_banner_is_read_when_configured() {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("a local address").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(b"SSH-2.0-test\r\nmore").await;
        }
    });
    let config = json!({"host": "127.0.0.1", "port": port, "readBanner": true, "timeout": 5000});
    let check = healthcheck("ssh", "healthcheck-tcp.tcp", 30, config);

    let result = run_once(&check).await;
    assert_eq!(result.status, Status::Healthy);
    assert_eq!(field(&result, "hasBanner"), Some(&Value::Bool(true)));
    assert_eq!(
        field(&result, "banner"),
        Some(&Value::Text("SSH-2.0-test".to_owned()))
    );
    assert!(matches!(field(&result, "readTimeMs"), Some(Value::Number(ms)) if *ms >= 0.0));

    let mut without_banner = check.clone();
    without_banner.config["readBanner"] = json!(false);
    let result = run_once(&without_banner).await;
    assert_eq!(field(&result, "hasBanner"), Some(&Value::Bool(false)));
    assert!(field(&result, "banner").is_none());
}

fn script_check(args: Json, timeout_ms: u64) -> Healthcheck {
    let config = json!({"command": "sh", "args": args, "timeout": timeout_ms});
    healthcheck("job", "healthcheck-script.execute", 30, config)
}

#[tokio::test]
async fn script_exit_one_is_not_success() {
    let check = script_check(json!(["-c", "echo out; echo err >&2; exit 1"]), 5000);

    let result = run_once(&check).await;
    assert_eq!(field(&result, "success"), Some(&Value::Bool(false)));
    assert_eq!(field(&result, "exitCode"), Some(&Value::Number(1.0)));
    assert_eq!(field(&result, "timedOut"), Some(&Value::Bool(false)));
    assert_eq!(
        field(&result, "stdout"),
        Some(&Value::Text("out\n".to_owned()))
    );
    assert_eq!(
        field(&result, "stderr"),
        Some(&Value::Text("err\n".to_owned()))
    );
    assert_eq!(
        result.status,
        Status::Healthy,
        "an exit code alone does not fail the run"
    );

    let exit_zero = assertion("exitCode", None, "equals", Some(json!(0)));
    let asserted = with_assertions(check, "healthcheck-script.execute", vec![exit_zero]);
    assert_eq!(run_once(&asserted).await.status, Status::Unhealthy);
}

#[tokio::test]
async fn script_output_is_truncated() {
    let check = script_check(json!(["-c", "head -c 100000 /dev/zero | tr '\\0' a"]), 5000);

    let result = run_once(&check).await;
    let Some(Value::Text(stdout)) = field(&result, "stdout") else {
        panic!("stdout is text");
    };
    assert_eq!(stdout.len(), 4096);
    assert_eq!(field(&result, "success"), Some(&Value::Bool(true)));
}

#[tokio::test]
async fn script_timeout_kills_the_program() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let pid_file = dir.path().join("pid");
    let script = format!("echo $$ > '{}'; exec sleep 30", pid_file.display());
    let check = script_check(json!(["-c", script]), 300);

    let started = Instant::now();
    let result = run_once(&check).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the run ended at its timeout"
    );
    assert_eq!(field(&result, "timedOut"), Some(&Value::Bool(true)));
    assert_eq!(field(&result, "success"), Some(&Value::Bool(false)));
    assert!(
        field(&result, "exitCode").is_none(),
        "a killed program has no exit code"
    );
    assert_eq!(result.status, Status::Unhealthy);

    let pid = std::fs::read_to_string(&pid_file).expect("the script wrote its pid");
    let proc_entry = format!("/proc/{}", pid.trim());
    assert!(
        !std::path::Path::new(&proc_entry).exists(),
        "process {} still exists",
        pid.trim()
    );
}

#[tokio::test]
async fn script_background_child_keeps_exit_code() {
    // The background `sleep` keeps stdout open after `sh` exits, so capture ends at the timeout.
    let check = script_check(json!(["-c", "sleep 2 & echo done"]), 300);

    let result = run_once(&check).await;
    assert_eq!(field(&result, "exitCode"), Some(&Value::Number(0.0)));
    assert_eq!(field(&result, "timedOut"), Some(&Value::Bool(false)));
    assert_eq!(
        field(&result, "stdout"),
        Some(&Value::Text("done\n".to_owned()))
    );
    assert_eq!(result.status, Status::Healthy);
}

#[tokio::test]
async fn script_missing_program_is_unhealthy() {
    let config = json!({"command": "/nonexistent/anomalyd-probe-test"});
    let check = healthcheck("job", "healthcheck-script.execute", 30, config);

    let result = run_once(&check).await;
    assert_eq!(result.status, Status::Unhealthy);
    assert_eq!(field(&result, "success"), Some(&Value::Bool(false)));
}

/// Counts results that arrive within `window`.
async fn count_results(results: &mut mpsc::Receiver<CheckResult>, window: Duration) -> usize {
    let deadline = Instant::now() + window;
    let mut count = 0;
    while let Ok(Some(_)) = tokio::time::timeout_at(deadline, results.recv()).await {
        count += 1;
    }
    count
}

/// Receives results until none arrives for `quiet`.
async fn drain(results: &mut mpsc::Receiver<CheckResult>, quiet: Duration) {
    while let Ok(Some(_)) = timeout(quiet, results.recv()).await {}
}

#[tokio::test]
async fn schedule_follows_config_changes() {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("a local address").port();
    tokio::spawn(async move { while listener.accept().await.is_ok() {} });
    let tcp = |interval_secs| {
        healthcheck(
            "db",
            "healthcheck-tcp.tcp",
            interval_secs,
            json!({"host": "127.0.0.1", "port": port}),
        )
    };
    let (config_tx, config_rx) = watch::channel(Arc::new(snapshot(vec![tcp(1)])));
    let (sink, mut results) = mpsc::channel(64);
    let options = ProbeOptions {
        interval_unit: Duration::from_millis(50),
        ..ProbeOptions::default()
    };
    let probes = Probes::start(config_rx, sink, options).expect("the probes start");

    let steps = async {
        drain_first(&mut results).await;
        let fast = count_results(&mut results, Duration::from_millis(1000)).await;
        config_tx.send_replace(Arc::new(snapshot(vec![tcp(8)])));
        // The restart spreads the first run over one new interval of 400 ms.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let slow = count_results(&mut results, Duration::from_millis(1200)).await;
        config_tx.send_replace(Arc::new(snapshot(Vec::new())));
        drain(&mut results, Duration::from_millis(600)).await;
        let after_removal = count_results(&mut results, Duration::from_millis(800)).await;
        (fast, slow, after_removal)
    };
    let (fast, slow, after_removal) = timeout(TEST_TIMEOUT, steps)
        .await
        .expect("the steps finish");
    probes.stop().await;

    assert!(fast >= 12, "{fast} runs in 1 s at a 50 ms interval");
    assert!(
        (1..=5).contains(&slow),
        "{slow} runs in 1.2 s at a 400 ms interval"
    );
    assert_eq!(
        after_removal, 0,
        "runs continued after the check was removed"
    );
}

/// Waits for the first result, so counting starts after the random first offset.
async fn drain_first(results: &mut mpsc::Receiver<CheckResult>) {
    results.recv().await.expect("the first run arrives");
}

#[tokio::test]
async fn one_result_per_assigned_system() {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("a local address").port();
    tokio::spawn(async move { while listener.accept().await.is_ok() {} });
    let check = healthcheck(
        "db",
        "healthcheck-tcp.tcp",
        1,
        json!({"host": "127.0.0.1", "port": port}),
    );
    let mut config = snapshot(vec![check]);
    let mut second = config.systems[SYSTEM].clone();
    second.name = "billing".to_owned();
    config.systems.insert(second.name.clone(), second);
    let (_config_tx, config_rx) = watch::channel(Arc::new(config));
    let (sink, mut results) = mpsc::channel(8);
    let options = ProbeOptions {
        interval_unit: Duration::from_millis(100),
        ..ProbeOptions::default()
    };
    let probes = Probes::start(config_rx, sink, options).expect("the probes start");

    let pair = async {
        let first = results.recv().await.expect("a result");
        let second = results.recv().await.expect("a result");
        (first, second)
    };
    let (first, second) = timeout(TEST_TIMEOUT, pair)
        .await
        .expect("two results arrive");
    probes.stop().await;

    let mut systems = [first.system.clone(), second.system.clone()];
    systems.sort();
    assert_eq!(systems, ["billing".to_owned(), SYSTEM.to_owned()]);
    assert_eq!(
        first.timestamp, second.timestamp,
        "both come from the same run"
    );
    assert_eq!(first.fields, second.fields);
    assert_eq!(first.environment, None);
}

#[tokio::test]
async fn unassigned_and_pushed_checks_do_not_run() {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("a local address").port();
    let tcp = healthcheck(
        "db",
        "healthcheck-tcp.tcp",
        1,
        json!({"host": "127.0.0.1", "port": port}),
    );
    let pushed = healthcheck("cpu", "collector-hardware.cpu", 1, Json::Null);
    let mut config = snapshot(vec![pushed]);
    config.healthchecks.insert(tcp.name.clone(), tcp);
    let (_config_tx, config_rx) = watch::channel(Arc::new(config));
    let (sink, mut results) = mpsc::channel(8);
    let options = ProbeOptions {
        interval_unit: Duration::from_millis(20),
        ..ProbeOptions::default()
    };
    let probes = Probes::start(config_rx, sink, options).expect("the probes start");

    let count = timeout(
        TEST_TIMEOUT,
        count_results(&mut results, Duration::from_millis(300)),
    )
    .await
    .expect("counting ends");
    probes.stop().await;
    assert_eq!(count, 0);
}

#[tokio::test]
async fn stop_kills_a_running_program() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let pid_file = dir.path().join("pid");
    let script = format!(
        "echo $$ > '{}.tmp' && mv '{0}.tmp' '{0}'; exec sleep 30",
        pid_file.display()
    );
    let config = snapshot(vec![script_check(json!(["-c", script]), 60_000)]);
    let (_config_tx, config_rx) = watch::channel(Arc::new(config));
    let (sink, _results) = mpsc::channel(8);
    let options = ProbeOptions {
        interval_unit: Duration::from_millis(10),
        ..ProbeOptions::default()
    };
    let probes = Probes::start(config_rx, sink, options).expect("the probes start");

    let wait_for_pid = async {
        loop {
            if let Ok(pid) = std::fs::read_to_string(&pid_file) {
                return pid.trim().to_owned();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let pid = timeout(TEST_TIMEOUT, wait_for_pid)
        .await
        .expect("the program starts");
    timeout(TEST_TIMEOUT, probes.stop())
        .await
        .expect("the probes stop");

    let gone = async {
        while is_running(&pid) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    timeout(Duration::from_secs(5), gone)
        .await
        .expect("the program was killed");
}

/// Returns whether a process exists and is not a zombie waiting to be reaped.
fn is_running(pid: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.trim_start().chars().next());
    state != Some(Some('Z'))
}

#[tokio::test]
async fn invalid_check_leaves_others_running() {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("a local address").port();
    tokio::spawn(async move { while listener.accept().await.is_ok() {} });
    let valid = healthcheck(
        "db",
        "healthcheck-tcp.tcp",
        1,
        json!({"host": "127.0.0.1", "port": port}),
    );
    let invalid = healthcheck(
        "web",
        "healthcheck-http.http",
        1,
        json!({"url": "not a url"}),
    );
    let (_config_tx, config_rx) = watch::channel(Arc::new(snapshot(vec![valid, invalid])));
    let (sink, mut results) = mpsc::channel(64);
    let options = ProbeOptions {
        interval_unit: Duration::from_millis(50),
        ..ProbeOptions::default()
    };
    let probes = Probes::start(config_rx, sink, options).expect("the probes start");

    let received = async {
        let mut checks = Vec::new();
        for _ in 0..5 {
            checks.push(results.recv().await.expect("a result").healthcheck);
        }
        checks
    };
    let checks = timeout(TEST_TIMEOUT, received)
        .await
        .expect("results arrive");
    probes.stop().await;
    assert_eq!(checks, vec!["db"; 5]);
}

#[tokio::test]
async fn https_handshake_failure_is_unhealthy() {
    // A server that closes every connection at once: the TLS handshake fails without a panic,
    // which needs the crypto provider installed.
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let url = format!(
        "https://{}/",
        listener.local_addr().expect("a local address")
    );
    tokio::spawn(async move { while listener.accept().await.is_ok() {} });

    let result = run_once(&http_check(&url, 30)).await;
    assert_eq!(result.status, Status::Unhealthy);
    assert_eq!(field(&result, "success"), Some(&Value::Bool(false)));
}

#[test]
fn supported_strategies() {
    assert!(probes::is_supported("healthcheck-http.http"));
    assert!(probes::is_supported("healthcheck-tcp.tcp"));
    assert!(probes::is_supported("healthcheck-script.execute"));
    assert!(!probes::is_supported("healthcheck-ssh.ssh"));
    assert!(!probes::is_supported("http"));
}

#[test]
fn invalid_config_names_check_and_key() {
    let cases = [
        (
            healthcheck("api", "healthcheck-http.http", 30, json!({})),
            "config.url",
        ),
        (
            healthcheck(
                "api",
                "healthcheck-http.http",
                30,
                json!({"url": "ftp://x"}),
            ),
            "config.url",
        ),
        (
            healthcheck(
                "api",
                "healthcheck-http.http",
                30,
                json!({"url": "http://x", "timeout": -1}),
            ),
            "config.timeout",
        ),
        (
            healthcheck(
                "api",
                "healthcheck-http.http",
                30,
                json!({"url": "http://x", "method": "GE T"}),
            ),
            "config.method",
        ),
        (
            healthcheck(
                "db",
                "healthcheck-tcp.tcp",
                30,
                json!({"host": "h", "port": 70000}),
            ),
            "config.port",
        ),
        (
            healthcheck("db", "healthcheck-tcp.tcp", 30, json!({"host": "h"})),
            "config.port",
        ),
        (
            healthcheck(
                "db",
                "healthcheck-tcp.tcp",
                30,
                json!({"host": "h", "port": 1, "readBanner": "yes"}),
            ),
            "config.readBanner",
        ),
        (
            healthcheck(
                "job",
                "healthcheck-script.execute",
                30,
                json!({"args": ["x"]}),
            ),
            "config.command",
        ),
        (
            healthcheck(
                "job",
                "healthcheck-script.execute",
                30,
                json!({"command": "x", "args": "x"}),
            ),
            "config.args",
        ),
    ];
    for (check, key) in cases {
        let error = probes::validate(&check).expect_err("the config is invalid");
        assert_eq!(error.healthcheck, check.name);
        assert_eq!(error.key, key, "{error}");
        let message = error.to_string();
        assert!(message.contains(&format!("`{}`", check.name)), "{message}");
    }
}

/// Log output captured from the test's thread, where the server and its probe tasks run.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }

    fn lines_with(&self, text: &str) -> Vec<String> {
        let lines = self.text();
        let matching = lines.lines().filter(|line| line.contains(text));
        matching.map(str::to_owned).collect()
    }

    /// Waits until a line contains `text`.
    async fn wait_for(&self, text: &str) {
        let waited = timeout(TEST_TIMEOUT, async {
            while self.lines_with(text).is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        waited
            .await
            .unwrap_or_else(|_| panic!("no log line with {text:?}:\n{}", self.text()));
    }
}

const UNHEALTHY_LINE: &str = "probe run unhealthy";
const HEALTHY_LINE: &str = "probe run healthy again";

/// The real server probes a port nothing listens on, then a server started on that port: it
/// logs one warning for the failing runs and one info line for the recovery, without the URL's
/// credentials, query or the request headers.
#[tokio::test]
async fn server_logs_probe_health_changes_once() {
    support::keep_log_lines_enabled();
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    // Nothing listens on a port freed just now, unless another process took it meanwhile.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = closed.local_addr().expect("local addr");
    drop(closed);
    let url = format!("http://probe-user:userinfo-secret@{addr}/health?token=query-secret");
    let mut check = http_check(&url, 1);
    check.config["headers"] = json!({ "Authorization": "Bearer header-secret" });
    let (_config, feed) = watch::channel(Arc::new(snapshot(vec![check])));
    let data = tempfile::tempdir().expect("data dir");
    let server = support::TestServer::start_with(data.path().to_path_buf(), |options| {
        options.config = Some(feed);
    })
    .await;

    logs.wait_for(UNHEALTHY_LINE).await;
    // With a 1 s interval, the probe fails at least twice more in this time.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let warnings = logs.lines_with(UNHEALTHY_LINE);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let warning = &warnings[0];
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("systems=\"shop\""), "{warning}");
    assert!(warning.contains("healthcheck=api"), "{warning}");
    assert!(
        warning.contains("strategy=\"healthcheck-http.http\""),
        "{warning}"
    );
    assert!(
        warning.contains(&format!("http://{addr}/health")),
        "{warning}"
    );
    assert!(warning.to_lowercase().contains("refused"), "{warning}");

    let listener = TcpListener::bind(addr).await.expect("bind the freed port");
    let target = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream, Duration::ZERO, "200 OK", "ok"));
        }
    });
    logs.wait_for(HEALTHY_LINE).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.stop().await;
    target.abort();

    let recoveries = logs.lines_with(HEALTHY_LINE);
    assert_eq!(recoveries.len(), 1, "{recoveries:#?}");
    assert!(recoveries[0].contains("INFO"), "{}", recoveries[0]);
    assert!(
        recoveries[0].contains("healthcheck=api"),
        "{}",
        recoveries[0]
    );
    assert_eq!(logs.lines_with(UNHEALTHY_LINE).len(), 1);
    let text = logs.text();
    for secret in [
        "userinfo-secret",
        "query-secret",
        "header-secret",
        "probe-user",
    ] {
        assert!(!text.contains(secret), "the log contains {secret}:\n{text}");
    }
}

/// A config change that points a failing check at a working target restarts its probe, and the
/// restarted probe still logs the recovery.
#[tokio::test]
async fn config_fix_logs_probe_recovery() {
    support::keep_log_lines_enabled();
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let refused_port = closed.local_addr().expect("local addr").port();
    drop(closed);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let open_port = listener.local_addr().expect("local addr").port();
    tokio::spawn(async move { while listener.accept().await.is_ok() {} });
    let tcp = |port: u16| {
        let config = json!({"host": "127.0.0.1", "port": port});
        healthcheck("db", "healthcheck-tcp.tcp", 1, config)
    };
    let (config_tx, config_rx) = watch::channel(Arc::new(snapshot(vec![tcp(refused_port)])));
    let (sink, mut results) = mpsc::channel(64);
    tokio::spawn(async move { while results.recv().await.is_some() {} });
    let options = ProbeOptions {
        interval_unit: Duration::from_millis(50),
        ..ProbeOptions::default()
    };
    let probes = Probes::start(config_rx, sink, options).expect("the probes start");

    logs.wait_for(UNHEALTHY_LINE).await;
    config_tx.send_replace(Arc::new(snapshot(vec![tcp(open_port)])));
    logs.wait_for(HEALTHY_LINE).await;
    probes.stop().await;

    let warnings = logs.lines_with(UNHEALTHY_LINE);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains(&format!("127.0.0.1:{refused_port}")),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[0].contains("strategy=\"healthcheck-tcp.tcp\""),
        "{}",
        warnings[0]
    );
    assert_eq!(logs.lines_with(HEALTHY_LINE).len(), 1);
    assert_eq!(logs.lines_with("probe running").len(), 2, "{}", logs.text());
}

/// A probe of the server's own `/healthz`, running while a stalled upload keeps the shutdown
/// open, stores no failed run: the probes stop before the listener closes. The stalled
/// connection is dropped at the shutdown timeout, so the data file is closed on exit.
#[tokio::test]
async fn self_probe_stops_before_listener() {
    let (config, feed) = watch::channel(Arc::new(ConfigSnapshot::default()));
    let data = tempfile::tempdir().expect("data dir");
    let server = support::TestServer::start_with(data.path().to_path_buf(), |options| {
        options.config = Some(feed);
        options.shutdown_timeout = Duration::from_secs(3);
    })
    .await;
    let url = format!("http://{}/healthz", server.addr);
    config.send_replace(Arc::new(snapshot(vec![http_check(&url, 1)])));
    let samples = "/api/v1/series/samples?system=shop&healthcheck=api\
                   &field=collectors.healthcheck-http.request.success";
    let probed = timeout(TEST_TIMEOUT, async {
        while server.get(samples).await.status != 200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    probed.await.expect("the probe stores a run");

    // An upload that never finishes keeps the shutdown draining for its whole timeout, long
    // enough for several more probe intervals.
    // A first request on the same connection makes sure the server has accepted it.
    let mut stalled = TcpStream::connect(server.addr).await.expect("connect");
    let probe = "GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n";
    stalled.write_all(probe.as_bytes()).await.expect("send");
    let mut reply = Vec::new();
    while !reply.ends_with(b"\r\n\r\nok\n") {
        let mut chunk = [0; 512];
        let read = stalled.read(&mut chunk).await.expect("read");
        assert!(
            read > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&reply)
        );
        reply.extend_from_slice(&chunk[..read]);
    }
    let head = "POST /api/v1/results HTTP/1.1\r\nhost: test\r\ncontent-length: 100\r\n\r\n[";
    stalled.write_all(head.as_bytes()).await.expect("send");
    // Time for the server to read the head, so the request is in progress at shutdown.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopping = Instant::now();
    server.stop().await;
    assert!(
        stopping.elapsed() >= Duration::from_millis(2500),
        "the shutdown did not wait for the upload, so no probe ran meanwhile"
    );
    // The server dropped the stalled connection at the shutdown timeout and closed the data
    // file, so it opens at once while the client still has its end open.
    let reopened = anomalyd::store::Store::open(data.path()).expect("the data file is closed");
    reopened.close().expect("close");
    drop(stalled);

    let server = support::TestServer::start_in(data.path().to_path_buf()).await;
    let stored = server.get(samples).await.json();
    let runs = stored["samples"].as_array().expect("samples");
    assert!(!runs.is_empty(), "{stored}");
    for run in runs {
        assert_eq!(run["value"], true, "a failed run was stored: {stored}");
        assert_eq!(
            run["healthy"], true,
            "an unhealthy run was stored: {stored}"
        );
    }
    server.stop().await;
}
