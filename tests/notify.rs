//! Notifications end to end: the real server from `run()` on 127.0.0.1:0 with a temporary data
//! directory delivers to a webhook receiver the test starts on 127.0.0.1:0.

mod support;

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anomalyd::config::{
    ConfigSnapshot, Notifier, NotifierFilters, NotifierFormat, Secret, Source, System,
};
use anomalyd::engine::AssignmentSettings;
use anomalyd::server::ServeOptions;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value as Json;
use support::{LATENCY_FIELD, TestServer, latency, within};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// Body of the receiver's error responses, on two lines so the excerpt must join them.
const ERROR_BODY: &str = "disk full\nretry later";

/// One request the receiver got.
#[derive(Debug)]
struct Received {
    arrived: Instant,
    idempotency_key: String,
    authorization: Option<String>,
    body: Json,
}

/// A webhook receiver that responds with queued statuses (200 once the queue is empty) after
/// an optional delay, and reports each request when it arrives.
struct Receiver {
    addr: SocketAddr,
    statuses: Arc<Mutex<VecDeque<u16>>>,
    /// Statuses for one transition (such as `confirmed`), used before `statuses`.
    transition_statuses: Arc<Mutex<BTreeMap<String, VecDeque<u16>>>>,
    requests: mpsc::UnboundedReceiver<Received>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::serve(listener, delay)
    }

    fn serve(listener: TcpListener, delay: Duration) -> Self {
        let addr = listener.local_addr().expect("local addr");
        let statuses = Arc::new(Mutex::new(VecDeque::new()));
        let transition_statuses = Arc::new(Mutex::new(BTreeMap::new()));
        let (sender, requests) = mpsc::unbounded_channel();
        let queued = statuses.clone();
        let per_transition = transition_statuses.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (queued, sender) = (queued.clone(), sender.clone());
                let per_transition = per_transition.clone();
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (queued, sender) = (queued.clone(), sender.clone());
                    let per_transition = per_transition.clone();
                    async move {
                        let key = header(&req, "idempotency-key").unwrap_or_default();
                        let authorization = header(&req, "authorization");
                        let body = req.into_body().collect().await.expect("body").to_bytes();
                        let body: Json = serde_json::from_slice(&body).expect("JSON body");
                        let transition = body["transition"].as_str().unwrap_or_default();
                        let for_transition = per_transition
                            .lock()
                            .expect("lock")
                            .get_mut(transition)
                            .and_then(VecDeque::pop_front);
                        let _ = sender.send(Received {
                            arrived: Instant::now(),
                            idempotency_key: key,
                            authorization,
                            body,
                        });
                        tokio::time::sleep(delay).await;
                        let status = for_transition
                            .or_else(|| queued.lock().expect("lock").pop_front())
                            .unwrap_or(200);
                        let body = if status >= 400 {
                            Bytes::from_static(ERROR_BODY.as_bytes())
                        } else {
                            Bytes::new()
                        };
                        let mut response = http::Response::new(Full::new(body));
                        *response.status_mut() =
                            http::StatusCode::from_u16(status).expect("status");
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Self {
            addr,
            statuses,
            transition_statuses,
            requests,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    async fn next(&mut self) -> Received {
        within(self.requests.recv()).await.expect("receiver open")
    }

    fn stop(self) {
        self.task.abort();
    }
}

fn header(req: &http::Request<hyper::body::Incoming>, name: &str) -> Option<String> {
    let value = req.headers().get(name)?.to_str().ok()?;
    Some(value.to_owned())
}

fn notifier(name: &str, url: &str, format: NotifierFormat) -> Notifier {
    let mut headers = BTreeMap::new();
    headers.insert("Authorization".to_owned(), Secret::new("Bearer test-token"));
    Notifier {
        name: name.to_owned(),
        url: Secret::new(url),
        headers,
        timeout_secs: 30,
        format,
        filters: NotifierFilters::default(),
        source: Source::Api,
    }
}

fn config_with(notifiers: Vec<Notifier>) -> ConfigSnapshot {
    let mut config = ConfigSnapshot::default();
    for n in notifiers {
        config.notifiers.insert(n.name.clone(), n);
    }
    config
}

/// Adds a system whose assignment of healthcheck `web` sets `notify: false`.
fn with_notify_off(mut config: ConfigSnapshot, system: &str) -> ConfigSnapshot {
    let mut anomaly = BTreeMap::new();
    let settings = AssignmentSettings {
        notify: Some(false),
        ..Default::default()
    };
    anomaly.insert("web".to_owned(), settings);
    let system = System {
        name: system.to_owned(),
        title: None,
        description: None,
        healthchecks: vec!["web".to_owned()],
        anomaly,
        healthcheck_options: BTreeMap::new(),
        source: Source::Api,
    };
    config.systems.insert(system.name.clone(), system);
    config
}

fn fast_retries(options: &mut ServeOptions, config: &ConfigSnapshot) {
    let (sender, receiver) = watch::channel(Arc::new(config.clone()));
    // The receiver keeps the last value once the sender is gone.
    drop(sender);
    options.config = Some(receiver);
    options.probes = false;
    options.delivery.backoff_base = Duration::from_millis(50);
    options.delivery.backoff_max = Duration::from_millis(200);
    options.delivery.public_url = "http://anomalyd.test".to_owned();
}

async fn start(dir: std::path::PathBuf, config: &ConfigSnapshot) -> TestServer {
    TestServer::start_with(dir, |options| fast_retries(options, config)).await
}

async fn post(server: &TestServer, body: &str) {
    let reply = server.post_ndjson(body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// Learns a baseline around 103 ms for `system`, then confirms a spike (window 3).
async fn confirm_spike(server: &TestServer, system: &str) {
    let baseline: Vec<String> = (0..24)
        .map(|i| latency(system, i, 100.0 + f64::from(i % 5) * 2.0))
        .collect();
    post(server, &baseline.join("\n")).await;
    for minute in 30..33 {
        post(server, &latency(system, minute, 1000.0)).await;
    }
}

async fn recover(server: &TestServer, system: &str) {
    post(server, &latency(system, 33, 104.0)).await;
}

async fn deliveries(server: &TestServer, query: &str) -> Vec<Json> {
    let reply = server.get(&format!("/api/v1/deliveries{query}")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["deliveries"]
        .as_array()
        .expect("deliveries array")
        .clone()
}

/// Polls the deliveries API until `count` rows are delivered.
async fn wait_delivered(server: &TestServer, count: usize) -> Vec<Json> {
    within(async {
        loop {
            let rows = deliveries(server, "?state=delivered").await;
            if rows.len() >= count {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test]
async fn confirmed_and_recovered_deliver_once_each() {
    let mut receiver = Receiver::start(Duration::ZERO).await;
    let config = config_with(vec![notifier("ops", &receiver.url(), NotifierFormat::Json)]);
    let temp = tempfile::tempdir().expect("temp dir");
    let server = start(temp.path().to_path_buf(), &config).await;

    confirm_spike(&server, "shop").await;
    let confirmed = receiver.next().await;
    let body = &confirmed.body;
    assert_eq!(body["transition"], "confirmed");
    assert_eq!(body["importance"], "warning");
    assert_eq!(body["system"], "shop");
    assert_eq!(body["healthcheck"], "web");
    assert_eq!(body["environment"], Json::Null);
    assert_eq!(body["field"], LATENCY_FIELD);
    assert_eq!(body["kind"], "spike");
    assert_eq!(body["state"], "anomaly");
    assert_eq!(body["direction"], "above");
    assert_eq!(body["observedValue"], "1000");
    assert!(
        body["baseline"]["mean"]
            .as_f64()
            .is_some_and(|m| (m - 104.0).abs() < 2.0)
    );
    assert!(
        body["baseline"]["stdDev"]
            .as_f64()
            .is_some_and(|sd| sd > 0.0)
    );
    assert!(body["deviation"].as_f64().is_some_and(|d| d > 3.0));
    assert_eq!(body["deviationUnbounded"], false);
    assert!(
        body["band"]["upper"]
            .as_f64()
            .is_some_and(|u| u > 104.0 && u < 1000.0)
    );
    assert_eq!(body["rule"]["confirmationWindow"], 3);
    let (mean, sd) = (
        body["baseline"]["mean"].as_f64(),
        body["baseline"]["stdDev"].as_f64(),
    );
    let (mean, sd) = mean.zip(sd).expect("baseline mean and standard deviation");
    let rule = &body["rule"];
    let sensitivity = rule["sensitivity"].as_f64().expect("sensitivity");
    let min_absolute = rule["minAbsoluteDelta"].as_f64().expect("absolute floor");
    let min_relative = rule["minRelativeDelta"].as_f64().expect("relative floor");
    // The catalogue floors of response times (50 ms, 50 % of the mean) are wider than the 3σ
    // band of this steady baseline, so the band the detector judged against ends at the floor.
    let sigma_upper = mean + 3.0 * sd * sensitivity;
    let floor_upper = mean + min_absolute.max(min_relative * mean.abs());
    assert!(floor_upper > sigma_upper, "{floor_upper} <= {sigma_upper}");
    let upper = body["band"]["upper"].as_f64().expect("upper trigger");
    assert!(
        (upper - floor_upper).abs() < 1e-9,
        "{upper} != {floor_upper}"
    );
    assert_eq!(body["band"]["lower"], Json::Null, "lower-is-better");
    assert_eq!(body["rule"]["direction"], "lower-is-better");
    assert!(body["startedAt"].is_string());
    assert!(body["confirmedAt"].is_string());
    assert_eq!(body["recoveredAt"], Json::Null);
    let link = format!(
        "http://anomalyd.test/#/field?system=shop&healthcheck=web&field={}",
        LATENCY_FIELD
    );
    assert_eq!(body["link"], link.as_str());
    let id = body["anomalyId"].as_u64().expect("anomaly id");
    let key = format!("anomalyd-{id}-confirmed");
    assert_eq!(body["idempotencyKey"], key.as_str());
    assert_eq!(confirmed.idempotency_key, key);
    assert_eq!(
        confirmed.authorization.as_deref(),
        Some("Bearer test-token")
    );

    recover(&server, "shop").await;
    let recovered = receiver.next().await;
    assert_eq!(recovered.body["transition"], "recovered");
    assert_eq!(recovered.body["importance"], "info");
    assert_eq!(recovered.body["state"], "recovered");
    assert!(recovered.body["recoveredAt"].is_string());
    // The recovering value (104, the baseline mean) is described, not the 1000 ms spike.
    assert_eq!(recovered.body["observedValue"], "104");
    let deviation = recovered.body["deviation"].as_f64().expect("deviation");
    assert!(deviation < 1.0, "recovering value is {deviation}σ away");
    let anomaly_deviation = recovered.body["anomalyDeviation"].as_f64();
    let anomaly_deviation = anomaly_deviation.expect("anomaly deviation");
    assert!(anomaly_deviation > 100.0, "{anomaly_deviation}");
    assert_eq!(recovered.body["selfResolved"], false);
    let summary = recovered.body["summary"].as_str().expect("summary");
    assert!(summary.contains("104 is back within the band"), "{summary}");
    assert!(!summary.contains("above"), "{summary}");
    assert_eq!(
        recovered.idempotency_key,
        format!("anomalyd-{id}-recovered")
    );

    let delivered = wait_delivered(&server, 2).await;
    assert_eq!(delivered.len(), 2);
    for row in &delivered {
        assert_eq!(row["attempts"], 1);
        assert_eq!(row["notifier"], "ops");
    }
    // Newest first.
    assert_eq!(delivered[0]["transition"], "recovered");
    assert_eq!(delivered[1]["transition"], "confirmed");
    assert!(
        receiver.requests.try_recv().is_err(),
        "a notification was sent twice"
    );
    server.stop().await;
    receiver.stop();
}

/// Posts one body whose results confirm a spike (window 3) and then recover it, after a
/// baseline learnt in an earlier request.
async fn confirm_and_recover_in_one_request(server: &TestServer) {
    let baseline: Vec<String> = (0..24)
        .map(|i| latency("shop", i, 100.0 + f64::from(i % 5) * 2.0))
        .collect();
    post(server, &baseline.join("\n")).await;
    let mut results: Vec<String> = (30..33).map(|m| latency("shop", m, 1000.0)).collect();
    results.push(latency("shop", 33, 101.0));
    post(server, &results.join("\n")).await;
}

/// Returns the transitions of the next `count` requests, in the order they arrived.
async fn arrival_order(receiver: &mut Receiver, count: usize) -> Vec<String> {
    let mut order = Vec::new();
    for _ in 0..count {
        let received = receiver.next().await;
        let transition = received.body["transition"].as_str().unwrap_or_default();
        order.push(transition.to_owned());
    }
    order
}

#[tokio::test]
async fn one_anomaly_delivers_in_order() {
    // The receiver responds to each request after this delay. A recovered row sent before the
    // confirmed one got its response would arrive well within it.
    let answer_delay = Duration::from_millis(300);
    let mut receiver = Receiver::start(answer_delay).await;
    let config = config_with(vec![notifier("ops", &receiver.url(), NotifierFormat::Json)]);
    let temp = tempfile::tempdir().expect("temp dir");
    let server = start(temp.path().to_path_buf(), &config).await;

    confirm_and_recover_in_one_request(&server).await;
    let first = receiver.next().await;
    let second = receiver.next().await;
    assert_eq!(first.body["transition"], "confirmed");
    assert_eq!(second.body["transition"], "recovered");
    let gap = second.arrived.duration_since(first.arrived);
    assert!(
        gap >= answer_delay,
        "recovered sent {gap:?} after confirmed"
    );
    let delivered = wait_delivered(&server, 2).await;
    assert_eq!(delivered.len(), 2);
    server.stop().await;
    receiver.stop();
}

#[tokio::test]
async fn recovered_waits_for_confirmed_retry() {
    let mut receiver = Receiver::start(Duration::ZERO).await;
    receiver
        .transition_statuses
        .lock()
        .expect("lock")
        .insert("confirmed".to_owned(), VecDeque::from([500]));
    let config = config_with(vec![notifier("ops", &receiver.url(), NotifierFormat::Json)]);
    let temp = tempfile::tempdir().expect("temp dir");
    let server = start(temp.path().to_path_buf(), &config).await;

    confirm_and_recover_in_one_request(&server).await;
    let order = arrival_order(&mut receiver, 3).await;
    assert_eq!(order, ["confirmed", "confirmed", "recovered"]);
    let delivered = wait_delivered(&server, 2).await;
    let attempts: Vec<&Json> = delivered.iter().map(|row| &row["attempts"]).collect();
    // Newest first: the recovered row, then the confirmed row that needed a retry.
    assert_eq!(attempts, [1, 2]);
    server.stop().await;
    receiver.stop();
}

#[tokio::test]
async fn receiver_errors_are_retried() {
    let mut receiver = Receiver::start(Duration::ZERO).await;
    receiver.statuses.lock().expect("lock").extend([500, 500]);
    let config = config_with(vec![notifier("ops", &receiver.url(), NotifierFormat::Json)]);
    let temp = tempfile::tempdir().expect("temp dir");
    let server = start(temp.path().to_path_buf(), &config).await;

    confirm_spike(&server, "shop").await;
    let mut keys = Vec::new();
    for _ in 0..3 {
        keys.push(receiver.next().await.idempotency_key);
    }
    let delivered = wait_delivered(&server, 1).await;
    assert_eq!(delivered[0]["attempts"], 3);
    assert_eq!(delivered[0]["state"], "delivered");
    assert_eq!(delivered[0]["lastError"], Json::Null);
    assert_eq!(
        delivered[0]["errorBeforeDelivery"],
        "receiver responded with HTTP 500: disk full retry later"
    );
    assert!(keys.iter().all(|k| *k == keys[0]), "keys differ: {keys:?}");
    assert!(receiver.requests.try_recv().is_err(), "sent after delivery");
    let metrics = server.get("/metrics").await.text();
    assert!(metrics.contains("anomalyd_outbox_depth 0\n"), "{metrics}");
    assert!(
        metrics.contains("anomalyd_delivery_failures_total 2\n"),
        "{metrics}"
    );
    server.stop().await;
    receiver.stop();
}

/// Log output captured from the test's thread, where the delivery worker task runs.
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
}

/// Polls the deliveries API until a pending row has a `lastError`, and returns that row.
async fn wait_failed_attempt(server: &TestServer) -> Json {
    within(async {
        loop {
            let rows = deliveries(server, "?state=pending").await;
            if let Some(row) = rows.into_iter().find(|row| row["lastError"].is_string()) {
                return row;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test]
async fn refused_connection_error_names_cause() {
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
    let url = format!("http://{addr}/hook/url-secret-token");
    let config = config_with(vec![notifier("ops", &url, NotifierFormat::Json)]);
    let temp = tempfile::tempdir().expect("temp dir");
    let server = start(temp.path().to_path_buf(), &config).await;

    confirm_spike(&server, "shop").await;
    let row = wait_failed_attempt(&server).await;
    let error = row["lastError"].as_str().expect("last error");
    assert!(error.to_lowercase().contains("refused"), "{error}");
    assert!(!error.contains("url-secret-token"), "{error}");
    assert_eq!(row["errorBeforeDelivery"], Json::Null);
    let anomaly_id = row["anomalyId"].as_u64().expect("anomaly id");
    // The worker stores the failed attempt before it logs it, so the line may come a moment
    // after the row.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !logs.text().contains("notification delivery failed")
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;

    let text = logs.text();
    let line = text
        .lines()
        .find(|line| line.contains("notification delivery failed"))
        .expect("a log line for the failed attempt");
    assert!(line.contains("notifier=\"ops\""), "{line}");
    assert!(line.contains(&format!("anomaly_id={anomaly_id}")), "{line}");
    assert!(line.to_lowercase().contains("refused"), "{line}");
    assert!(
        !text.contains("url-secret-token"),
        "the log contains the URL"
    );
    assert!(!text.contains("test-token"), "the log contains a header");
}

#[tokio::test]
async fn slow_receiver_error_says_timed_out() {
    let receiver = Receiver::start(Duration::from_secs(5)).await;
    let mut slow = notifier("slow", &receiver.url(), NotifierFormat::Json);
    slow.timeout_secs = 1;
    let config = config_with(vec![slow]);
    let temp = tempfile::tempdir().expect("temp dir");
    let server = start(temp.path().to_path_buf(), &config).await;

    confirm_spike(&server, "shop").await;
    let row = wait_failed_attempt(&server).await;
    let error = row["lastError"].as_str().expect("last error");
    assert!(error.contains("timed out"), "{error}");
    server.stop().await;
    receiver.stop();
}

#[tokio::test]
async fn pending_survives_restart_while_receiver_down() {
    // Reserve an address, then close it so every attempt is refused.
    let placeholder = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = placeholder.local_addr().expect("local addr");
    drop(placeholder);
    let url = format!("http://{addr}/hook");
    let config = config_with(vec![notifier("ops", &url, NotifierFormat::Json)]);
    let temp = tempfile::tempdir().expect("temp dir");
    let server = start(temp.path().to_path_buf(), &config).await;

    confirm_spike(&server, "shop").await;
    let failed_once = within(async {
        loop {
            let rows = deliveries(&server, "?state=pending").await;
            if rows
                .first()
                .is_some_and(|r| r["attempts"].as_u64() >= Some(1))
            {
                return rows[0].clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(failed_once["lastError"].is_string());
    server.stop().await;

    let server = start(temp.path().to_path_buf(), &config).await;
    let listener = TcpListener::bind(addr)
        .await
        .expect("rebind the receiver address");
    let mut receiver = Receiver::serve(listener, Duration::ZERO);
    let received = receiver.next().await;
    assert_eq!(received.idempotency_key, failed_once["idempotencyKey"]);
    let delivered = wait_delivered(&server, 1).await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        delivered[0]["idempotencyKey"],
        failed_once["idempotencyKey"]
    );
    assert!(delivered[0]["attempts"].as_u64() >= Some(2));
    assert!(receiver.requests.try_recv().is_err(), "sent after delivery");
    server.stop().await;
    receiver.stop();
}

#[tokio::test]
async fn slow_receiver_does_not_hold_ingest() {
    let mut receiver = Receiver::start(Duration::from_secs(10)).await;
    let config = config_with(vec![notifier("ops", &receiver.url(), NotifierFormat::Json)]);
    let temp = tempfile::tempdir().expect("temp dir");
    let server = start(temp.path().to_path_buf(), &config).await;

    confirm_spike(&server, "shop").await;
    // The receiver keeps this request open for 10 s.
    receiver.next().await;
    let started = Instant::now();
    for minute in 40..60 {
        post(&server, &latency("other", minute, 100.0)).await;
    }
    let ingest = started.elapsed();
    let pending = deliveries(&server, "?state=pending").await;
    assert_eq!(
        pending.len(),
        1,
        "the slow delivery should still be in flight"
    );
    assert!(
        ingest < Duration::from_secs(5),
        "20 ingest requests took {ingest:?} while a delivery was in flight"
    );
    server.stop().await;
    receiver.stop();
}

#[tokio::test]
async fn mutes_and_notify_off_deliver_nothing() {
    let mut receiver = Receiver::start(Duration::ZERO).await;
    let config = config_with(vec![notifier("ops", &receiver.url(), NotifierFormat::Json)]);
    let config = with_notify_off(config, "quiet");
    let temp = tempfile::tempdir().expect("temp dir");
    let server = start(temp.path().to_path_buf(), &config).await;

    let field_mute = format!(r#"{{"system":"shop","field":"{LATENCY_FIELD}"}}"#);
    assert_eq!(server.post("/api/v1/mutes", &field_mute).await.status, 200);
    assert_eq!(
        server
            .post("/api/v1/mutes", r#"{"system":"shed"}"#)
            .await
            .status,
        200
    );
    let mutes = server.get("/api/v1/mutes").await.json();
    assert_eq!(mutes["mutes"].as_array().map(Vec::len), Some(2));

    for system in ["shop", "shed", "quiet"] {
        confirm_spike(&server, system).await;
        recover(&server, system).await;
    }
    // Outbox rows are written with the state change, so the ingest replies settle this.
    assert!(deliveries(&server, "").await.is_empty());
    let anomalies = server.get("/api/v1/anomalies?state=recovered").await.json();
    assert_eq!(anomalies["anomalies"].as_array().map(Vec::len), Some(3));

    // A system that is not muted still notifies, and it is the only request.
    confirm_spike(&server, "open").await;
    assert_eq!(receiver.next().await.body["system"], "open");
    wait_delivered(&server, 1).await;
    assert!(receiver.requests.try_recv().is_err());

    // Lifting the mute by query restores delivery for the field.
    let path = format!("/api/v1/mutes?system=shop&field={LATENCY_FIELD}");
    let reply = within(support::request(server.addr, "DELETE", &path, &[], b""))
        .await
        .expect("DELETE");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["removed"], true);
    let mutes = server.get("/api/v1/mutes").await.json();
    assert_eq!(mutes["mutes"][0]["system"], "shed");
    server.stop().await;
    receiver.stop();
}

#[tokio::test]
async fn slack_format_sends_text() {
    let mut receiver = Receiver::start(Duration::ZERO).await;
    let config = config_with(vec![notifier(
        "chat",
        &receiver.url(),
        NotifierFormat::Slack,
    )]);
    let temp = tempfile::tempdir().expect("temp dir");
    let server = start(temp.path().to_path_buf(), &config).await;

    confirm_spike(&server, "shop").await;
    let received = receiver.next().await;
    let text = received.body["text"].as_str().expect("text").to_owned();
    assert!(text.starts_with("[warning] shop/web "), "{text}");
    assert!(
        text.contains("spike confirmed: 1000 above baseline"),
        "{text}"
    );
    assert!(
        text.contains("<http://anomalyd.test/#/field?system=shop"),
        "{text}"
    );
    assert_eq!(received.body.as_object().map(|o| o.len()), Some(1));
    server.stop().await;
    receiver.stop();
}

#[tokio::test]
async fn invalid_queries_and_mutes_rejected() {
    let server = TestServer::start().await;
    let reply = server.get("/api/v1/deliveries?state=lost").await;
    assert_eq!(reply.status, 400);
    assert!(reply.text().contains("pending, delivered or failed"));
    let reply = server.post("/api/v1/mutes", r#"{"field":"x"}"#).await;
    assert_eq!(reply.status, 400);
    let bare = r#"{"system":"shop","field":"responseTimeMs"}"#;
    let reply = server.post("/api/v1/mutes", bare).await;
    assert_eq!(reply.status, 400);
    assert!(reply.text().contains("collectors.<collector id>.<field>"));
    server.stop().await;
}

#[tokio::test]
async fn slow_notifier_does_not_block_others() {
    let mut slow = Receiver::start(Duration::from_secs(60)).await;
    let mut fast = Receiver::start(Duration::ZERO).await;
    let config = config_with(vec![
        notifier("slow", &slow.url(), NotifierFormat::Json),
        notifier("fast", &fast.url(), NotifierFormat::Json),
    ]);
    let temp = tempfile::tempdir().expect("temp dir");
    let server = start(temp.path().to_path_buf(), &config).await;

    let systems = ["s1", "s2", "s3", "s4", "s5", "s6"];
    for system in systems {
        confirm_spike(&server, system).await;
    }
    let mut delivered_to_fast = Vec::new();
    for _ in systems {
        let received = fast.next().await;
        delivered_to_fast.push(received.body["system"].as_str().map(str::to_owned));
    }
    assert_eq!(delivered_to_fast.len(), systems.len());
    // The slow receiver gets at most 4 requests at once; the rest wait in the outbox.
    for _ in 0..4 {
        slow.next().await;
    }
    let rows = wait_delivered(&server, systems.len()).await;
    assert!(rows.iter().all(|r| r["notifier"] == "fast"));
    let pending = deliveries(&server, "?state=pending&notifier=slow").await;
    assert_eq!(pending.len(), systems.len());
    assert!(
        slow.requests.try_recv().is_err(),
        "more than 4 requests to one notifier"
    );
    server.stop().await;
    slow.stop();
    fast.stop();
}

#[tokio::test]
async fn yaml_notifier_delivers_with_secrets() {
    let mut receiver = Receiver::start(Duration::ZERO).await;
    let folder = tempfile::tempdir().expect("config dir");
    let secrets = tempfile::tempdir().expect("secrets dir");
    std::fs::write(secrets.path().join("HOOK_URL"), receiver.url()).expect("write secret");
    std::fs::write(secrets.path().join("HOOK_TOKEN"), "Bearer from-secret\n").expect("write");
    let yaml = concat!(
        "apiVersion: anomalyd.dev/v1\n",
        "kind: Notifier\n",
        "metadata:\n",
        "  name: ops\n",
        "spec:\n",
        "  url: \"${{ secrets.HOOK_URL }}\"\n",
        "  headers:\n",
        "    Authorization: \"${{ secrets.HOOK_TOKEN }}\"\n",
        "  format: slack\n",
        "  filters:\n",
        "    kinds: [spike]\n",
        "    minImportance: warning\n",
    );
    std::fs::write(folder.path().join("notifier.yaml"), yaml).expect("write yaml");
    let data = tempfile::tempdir().expect("data dir");
    let (config_dir, secrets_dir) = (folder.path().to_path_buf(), secrets.path().to_path_buf());
    let server = TestServer::start_with(data.path().to_path_buf(), |options| {
        options.config_dir = Some(config_dir);
        options.secrets_dir = Some(secrets_dir);
        options.probes = false;
    })
    .await;

    confirm_spike(&server, "shop").await;
    let received = receiver.next().await;
    assert_eq!(
        received.authorization.as_deref(),
        Some("Bearer from-secret")
    );
    let text = received.body["text"].as_str().expect("slack text");
    assert!(text.starts_with("[warning] shop/web"), "{text}");

    // minImportance warning leaves the recovery out, so no row is written for it.
    recover(&server, "shop").await;
    let rows = deliveries(&server, "").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["notifier"], "ops");
    server.stop().await;
    receiver.stop();
}

#[tokio::test]
async fn gives_up_after_max_age() {
    let mut receiver = Receiver::start(Duration::ZERO).await;
    receiver.statuses.lock().expect("lock").extend([503; 1000]);
    let config = config_with(vec![notifier("ops", &receiver.url(), NotifierFormat::Json)]);
    let temp = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start_with(temp.path().to_path_buf(), |options| {
        fast_retries(options, &config);
        options.delivery.max_age = Duration::from_millis(300);
    })
    .await;

    confirm_spike(&server, "shop").await;
    receiver.next().await;
    let failed = within(async {
        loop {
            let rows = deliveries(&server, "?state=failed").await;
            if let Some(row) = rows.first() {
                return row.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(failed["attempts"].as_u64() >= Some(2), "{failed}");
    assert_eq!(
        failed["lastError"],
        "receiver responded with HTTP 503: disk full retry later"
    );
    assert_eq!(failed["errorBeforeDelivery"], Json::Null);
    assert_eq!(failed["nextAttemptAt"], Json::Null);
    assert!(failed["finishedAt"].is_string());
    assert!(deliveries(&server, "?state=pending").await.is_empty());
    server.stop().await;
    receiver.stop();
}

fn yaml_notifier(name: &str, url: &str) -> String {
    format!(
        "apiVersion: anomalyd.dev/v1\nkind: Notifier\nmetadata:\n  name: {name}\nspec:\n  url: \
         \"{url}\"\n"
    )
}

/// Starts the server on a watched config folder with fast retries and the given grace period
/// for removed notifiers.
async fn start_watching(
    data: &tempfile::TempDir,
    folder: &tempfile::TempDir,
    grace: Duration,
) -> TestServer {
    let config_dir = folder.path().to_path_buf();
    TestServer::start_with(data.path().to_path_buf(), |options| {
        options.config_dir = Some(config_dir);
        options.probes = false;
        options.delivery.backoff_base = Duration::from_millis(50);
        options.delivery.backoff_max = Duration::from_millis(200);
        options.delivery.removed_notifier_grace = grace;
    })
    .await
}

/// Polls the deliveries API until a row matches `query` and `accept`.
async fn wait_row(server: &TestServer, query: &str, accept: impl Fn(&Json) -> bool) -> Json {
    within(async {
        loop {
            if let Some(row) = deliveries(server, query).await.into_iter().find(&accept) {
                return row;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

fn delivery_failures(metrics: &str) -> u64 {
    let line = metrics
        .lines()
        .find(|l| l.starts_with("anomalyd_delivery_failures_total "))
        .expect("failures counter");
    line.split_whitespace()
        .nth(1)
        .expect("value")
        .parse()
        .expect("integer")
}

#[tokio::test]
async fn removed_notifier_rows_fail() {
    let mut receiver = Receiver::start(Duration::ZERO).await;
    receiver.statuses.lock().expect("lock").extend([503; 1000]);
    let folder = tempfile::tempdir().expect("config dir");
    let file = folder.path().join("bad-two.yaml");
    std::fs::write(&file, yaml_notifier("bad-two", &receiver.url())).expect("write");
    let data = tempfile::tempdir().expect("data dir");
    let server = start_watching(&data, &folder, Duration::from_millis(500)).await;

    confirm_spike(&server, "shop").await;
    receiver.next().await;
    std::fs::remove_file(&file).expect("remove notifier file");
    let removed = Instant::now();

    let failed = wait_row(&server, "?state=failed", |_| true).await;
    assert!(
        removed.elapsed() >= Duration::from_millis(500),
        "failed before the grace period"
    );
    assert_eq!(failed["notifier"], "bad-two");
    assert_eq!(
        failed["lastError"],
        "notifier \"bad-two\" is no longer configured"
    );
    assert_eq!(failed["nextAttemptAt"], Json::Null);
    assert!(failed["finishedAt"].is_string());
    assert!(deliveries(&server, "?state=pending").await.is_empty());
    let metrics = server.get("/metrics").await.text();
    let attempts = failed["attempts"].as_u64().expect("attempts");
    assert_eq!(delivery_failures(&metrics), attempts, "{metrics}");
    server.stop().await;
    receiver.stop();
}

#[tokio::test]
async fn briefly_missing_notifier_still_delivers() {
    let mut receiver = Receiver::start(Duration::ZERO).await;
    receiver.statuses.lock().expect("lock").extend([503; 1000]);
    let folder = tempfile::tempdir().expect("config dir");
    let file = folder.path().join("ops.yaml");
    let yaml = yaml_notifier("ops", &receiver.url());
    std::fs::write(&file, &yaml).expect("write");
    let data = tempfile::tempdir().expect("data dir");
    let server = start_watching(&data, &folder, Duration::from_secs(30)).await;

    // The receiver fails every request until the notifier is gone.
    confirm_spike(&server, "shop").await;
    receiver.next().await;
    std::fs::remove_file(&file).expect("remove notifier file");
    let missing = "notifier \"ops\" is no longer configured";
    wait_row(&server, "?state=pending", |row| row["lastError"] == missing).await;

    // A rewrite that brings it back within the grace period lets the row through.
    receiver.statuses.lock().expect("lock").clear();
    std::fs::write(&file, &yaml).expect("rewrite");
    let delivered = wait_delivered(&server, 1).await;
    assert_eq!(delivered[0]["notifier"], "ops");
    assert!(deliveries(&server, "?state=failed").await.is_empty());
    server.stop().await;
    receiver.stop();
}

/// A notifier kept from its last good definition whose secret went missing across a restart
/// still gets rows for new anomalies. They stay pending past the removed-notifier grace period
/// and are delivered once the secret is back.
#[tokio::test]
async fn notifier_without_secret_waits() {
    let mut receiver = Receiver::start(Duration::ZERO).await;
    let folder = tempfile::tempdir().expect("config dir");
    let secrets = tempfile::tempdir().expect("secrets dir");
    let secret = secrets.path().join("OPS_HOOK");
    std::fs::write(&secret, receiver.url()).expect("write secret");
    let file = folder.path().join("ops.yaml");
    let yaml = yaml_notifier("ops", "${{ secrets.OPS_HOOK }}");
    std::fs::write(&file, &yaml).expect("write notifier");
    let data = tempfile::tempdir().expect("data dir");
    let start = || {
        let (config_dir, secrets_dir) = (folder.path().to_owned(), secrets.path().to_owned());
        TestServer::start_with(data.path().to_path_buf(), move |options| {
            options.config_dir = Some(config_dir);
            options.secrets_dir = Some(secrets_dir);
            options.probes = false;
            options.delivery.backoff_base = Duration::from_millis(50);
            options.delivery.backoff_max = Duration::from_millis(200);
            options.delivery.removed_notifier_grace = Duration::from_millis(100);
        })
    };
    // The first run stores the notifier as its last good definition.
    start().await.stop().await;
    std::fs::remove_file(&secret).expect("remove secret");

    let server = start().await;
    confirm_spike(&server, "shop").await;
    let waiting = |row: &Json| {
        row["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("cannot be used") && e.contains("OPS_HOOK"))
    };
    let row = wait_row(&server, "?state=pending", waiting).await;
    assert_eq!(row["notifier"], "ops");
    // Several grace periods later the row is still waiting, not failed.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(deliveries(&server, "?state=failed").await.is_empty());

    // The secret comes back; a change in the folder makes the next rescan read it.
    std::fs::write(&secret, receiver.url()).expect("restore secret");
    std::fs::write(&file, format!("{yaml}\n")).expect("touch notifier");
    let delivered = wait_delivered(&server, 1).await;
    assert_eq!(delivered[0]["notifier"], "ops");
    let received = receiver.next().await;
    assert_eq!(received.body["transition"], "confirmed");
    server.stop().await;
    receiver.stop();
}
