//! The settings page in headless Chromium, driven over WebDriver against a real server with
//! learned baselines, a confirmed anomaly and a config folder with one managed healthcheck.
//! Screenshots of every view go to `target/ui-screenshots/`.

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{LATENCY_FIELD, TestServer, latency, minute_time, within};
use thirtyfour::prelude::*;
use thirtyfour::stringmatch::StringMatch;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

const MANAGED_YAML: &str = r#"apiVersion: checkstack.io/v1alpha1
kind: Healthcheck
metadata:
  name: api
spec:
  strategy: healthcheck-http.http
  intervalSeconds: 60
  config: {}
  collectors:
    - collectorId: healthcheck-http.request
      config: { url: "http://127.0.0.1:9/", method: GET }
  anomaly:
    enabled: true
    baselineWindow: 7d
    notify: true
    fieldOverrides:
      "collectors.healthcheck-http.request.responseTimeMs":
        sensitivity: 2
---
apiVersion: checkstack.io/v1alpha1
kind: System
metadata:
  name: billing
spec:
  healthchecks:
    - ref: { kind: Healthcheck, name: api }
"#;

/// A notifier whose URL is filled in with the address of `start_receiver`.
const NOTIFIER_YAML: &str = r#"apiVersion: anomalyd.dev/v1
kind: Notifier
metadata:
  name: hook
spec:
  url: "RECEIVER_URL"
"#;

/// Starts a webhook receiver on 127.0.0.1:0 that accepts every request with 200 OK. Returns
/// its URL and the task to abort at the end.
async fn start_receiver() -> (String, tokio::task::JoinHandle<()>) {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the receiver");
    let addr = listener.local_addr().expect("receiver addr");
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(|_request: http::Request<hyper::body::Incoming>| async {
                let empty = http_body_util::Full::new(bytes::Bytes::new());
                Ok::<_, std::convert::Infallible>(http::Response::new(empty))
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    (format!("http://{addr}/hook"), task)
}

/// The chromedriver process this test started; killed on drop, by its own handle.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// Returns whether the browser is installed. On CI its absence fails the test.
fn browser_available() -> bool {
    if Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists() {
        return true;
    }
    let hint = "install it with: apt-get update && apt-get install -y chromium chromium-driver";
    assert!(
        std::env::var_os("CI").is_none(),
        "{CHROMEDRIVER} or {CHROMIUM} is missing; {hint}"
    );
    eprintln!("skipping the browser test: {CHROMEDRIVER} is missing; {hint}");
    false
}

async fn start_chromedriver() -> (Driver, u16) {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver(child);
    within(async {
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    (driver, port)
}

async fn browser(port: u16, profile: &Path) -> WebDriver {
    // The WebDriver client shares the crate's reqwest build, which has no TLS provider of its
    // own; it only speaks plain HTTP to chromedriver on 127.0.0.1.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut caps = DesiredCapabilities::chrome();
    caps.set_binary(CHROMIUM).expect("binary");
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1000",
    ] {
        caps.add_arg(arg).expect("chromium flag");
    }
    caps.add_arg(&format!("--user-data-dir={}", profile.display()))
        .expect("profile flag");
    within(WebDriver::new(format!("http://127.0.0.1:{port}"), caps))
        .await
        .expect("start a browser session")
}

fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

async fn shoot(driver: &WebDriver, name: &str) {
    let path = screenshot_dir().join(format!("{name}.png"));
    within(driver.screenshot(&path)).await.expect("screenshot");
}

async fn wait_for(driver: &WebDriver, css: &str) -> WebElement {
    within(driver.query(By::Css(css)).first())
        .await
        .unwrap_or_else(|e| panic!("element {css} did not appear: {e}"))
}

async fn wait_text(driver: &WebDriver, css: &str, text: &str) -> WebElement {
    // A live update may replace the view while the query reads it, so a stale element is
    // retried until the step's time is up.
    let started = std::time::Instant::now();
    loop {
        let found = driver
            .query(By::Css(css))
            .with_text(StringMatch::new(text).partial())
            .wait(Duration::from_secs(2), Duration::from_millis(100))
            .first()
            .await;
        match found {
            Ok(element) => return element,
            Err(e) if started.elapsed() > support::STEP => {
                panic!("{css} never showed {text:?}: {e}")
            }
            Err(_) => continue,
        }
    }
}

/// Polls `GET /api/v1/gitops` until its `folderError` is set (`expected` true) or cleared.
async fn wait_folder_error(addr: std::net::SocketAddr, expected: bool) {
    within(async {
        loop {
            let reply = support::request(addr, "GET", "/api/v1/gitops", &[], b"").await;
            let status = reply.expect("GET /api/v1/gitops").json();
            if status["folderError"].is_null() != expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// Shop/web learns a baseline near 100 ms, then three runs at 1000 ms confirm an anomaly;
/// billing/api (managed) gets a few samples.
async fn seed(server: &TestServer) {
    let baseline: Vec<String> = (0..24)
        .map(|i| latency("shop", i, 100.0 + f64::from(i % 5) * 2.0))
        .collect();
    let reply = server.post_ndjson(&baseline.join("\n")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    for minute in 30..33 {
        let reply = server
            .post("/api/v1/results", &latency("shop", minute, 1000.0))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    // Out of range, so stored as invalid: the chart must leave it out of its scale.
    let reply = server
        .post("/api/v1/results", &latency("shop", 33, 1e200))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let managed: Vec<String> = (0..5)
        .map(|i| {
            format!(
                r#"{{"system":"billing","healthcheck":"api","status":"healthy","timestamp":"{}","collectors":{{"healthcheck-http.request":{{"responseTimeMs":{}}}}}}}"#,
                minute_time(i),
                40 + i
            )
        })
        .collect();
    let reply = server.post_ndjson(&managed.join("\n")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let open = server.get("/api/v1/anomalies?state=anomaly").await.json();
    assert_eq!(
        open["anomalies"].as_array().map(Vec::len),
        Some(1),
        "{open}"
    );
}

fn field_url(base: &str, system: &str, healthcheck: &str) -> String {
    format!("{base}/#/field?system={system}&healthcheck={healthcheck}&field={LATENCY_FIELD}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_shows_learned_state_and_edits_settings() {
    if !browser_available() {
        return;
    }
    let temp = tempfile::tempdir().expect("temp dir");
    let config_dir = temp.path().join("config");
    std::fs::create_dir_all(&config_dir).expect("config dir");
    std::fs::write(config_dir.join("billing.yaml"), MANAGED_YAML).expect("yaml");
    let (receiver_url, receiver) = start_receiver().await;
    let notifier = NOTIFIER_YAML.replace("RECEIVER_URL", &receiver_url);
    std::fs::write(config_dir.join("hook.yaml"), notifier).expect("yaml");
    let server = TestServer::start_with(temp.path().join("data"), |options| {
        options.config_dir = Some(config_dir.clone());
        options.probes = false;
    })
    .await;
    seed(&server).await;

    let (_chromedriver, port) = start_chromedriver().await;
    let driver = browser(port, &temp.path().join("profile")).await;
    let base = format!("http://{}", server.addr);
    let walk = walk_through(driver.clone(), base, server.addr, config_dir);
    let outcome = tokio::spawn(walk).await;
    if outcome.is_err() {
        shoot(&driver, "failure").await;
    }
    let _ = within(driver.quit()).await;
    outcome.expect("the walk-through passes");
    server.stop().await;
    receiver.abort();
}

async fn walk_through(
    driver: WebDriver,
    base: String,
    addr: std::net::SocketAddr,
    config_dir: PathBuf,
) {
    within(driver.goto(format!("{base}/#/")))
        .await
        .expect("open overview");
    let card = wait_for(&driver, ".system-card[data-system=shop]").await;
    let text = within(card.text()).await.expect("card text");
    assert!(text.contains("anomaly"), "shop card: {text}");
    wait_for(&driver, ".system-card[data-system=billing]").await;
    shoot(&driver, "overview").await;

    // A baseline learned now reaches the open page through the event stream, without a reload.
    let learned: Vec<String> = (0..24).map(|i| latency("late", i, 50.0)).collect();
    let body = learned.join("\n");
    let headers = [("content-type", "application/x-ndjson")];
    let reply = support::request(addr, "POST", "/api/v1/results", &headers, body.as_bytes())
        .await
        .expect("POST results");
    assert_eq!(reply.status, 200, "{}", reply.text());
    wait_for(&driver, ".system-card[data-system=late]").await;

    within(driver.goto(format!("{base}/#/system?name=shop")))
        .await
        .expect("open system");
    wait_for(&driver, "section.healthcheck[data-healthcheck=web] table").await;
    wait_text(&driver, "section.healthcheck", "24 samples").await;
    shoot(&driver, "system").await;

    within(driver.goto(field_url(&base, "shop", "web")))
        .await
        .expect("open field");
    wait_for(&driver, "svg.chart rect.band").await;
    wait_for(&driver, "svg.chart rect.episode").await;
    let dots = within(driver.find_all(By::Css("svg.chart circle.dot")))
        .await
        .expect("chart dots");
    assert_eq!(
        dots.len(),
        27,
        "24 baseline samples and 3 spikes, not the invalid one"
    );
    let top = within(driver.find(By::Css("svg.chart text.tick")))
        .await
        .expect("a y-axis label");
    let label = within(top.text()).await.expect("label text");
    assert!(
        !label.contains('e'),
        "the y axis spans valid samples only: {label}"
    );
    wait_text(
        &driver,
        "#rule-summary",
        "Alerts when the value rises above",
    )
    .await;
    wait_text(
        &driver,
        "tr[data-setting=direction] .layer",
        "schema annotation",
    )
    .await;
    wait_text(&driver, "tr[data-setting=enabled] .layer", "engine default").await;
    shoot(&driver, "field").await;

    // Change the sensitivity override of the unmanaged healthcheck.
    // A bad value shows the engine's message beside the control and stores nothing.
    let input = wait_for(&driver, "#override-form input[name=sensitivity]").await;
    within(input.send_keys("-1")).await.expect("type");
    let save = wait_for(&driver, "#override-form button.primary").await;
    within(save.click()).await.expect("save");
    wait_text(
        &driver,
        ".field-error[data-key=sensitivity]",
        "invalid value -1",
    )
    .await;
    shoot(&driver, "field-invalid").await;

    within(input.clear()).await.expect("clear");
    within(input.send_keys("3")).await.expect("type");
    within(save.click()).await.expect("save");
    wait_text(&driver, "#override-notice", "Saved").await;
    let query =
        format!("/api/v1/fields/effective?system=shop&healthcheck=web&field={LATENCY_FIELD}");
    let reply = support::request(addr, "GET", &query, &[], b"")
        .await
        .expect("GET effective");
    let effective = reply.json();
    assert_eq!(
        effective["settings"]["sensitivity"]["value"], 3.0,
        "{effective}"
    );
    assert_eq!(
        effective["settings"]["sensitivity"]["layer"],
        "assignment-field-override"
    );
    wait_text(
        &driver,
        "tr[data-setting=sensitivity] .layer",
        "system field override",
    )
    .await;
    shoot(&driver, "field-edited").await;

    // The managed healthcheck cannot be edited, and the page names its file.
    within(driver.goto(field_url(&base, "billing", "api")))
        .await
        .expect("open managed");
    wait_text(&driver, ".owner", "billing.yaml").await;
    let managed = wait_for(&driver, "#override-form input[name=sensitivity]").await;
    assert!(!within(managed.is_enabled()).await.expect("enabled state"));
    let button = wait_for(&driver, "#override-form button.primary").await;
    assert!(!within(button.is_enabled()).await.expect("enabled state"));
    wait_text(
        &driver,
        "tr[data-setting=sensitivity] .layer",
        "healthcheck field override",
    )
    .await;
    shoot(&driver, "field-managed").await;

    within(driver.goto(format!("{base}/#/system?name=billing")))
        .await
        .expect("open managed system");
    wait_text(&driver, "section.healthcheck .owner", "billing.yaml").await;
    let enabled = wait_for(&driver, "form.scope select[name=enabled]").await;
    assert!(!within(enabled.is_enabled()).await.expect("enabled state"));
    shoot(&driver, "system-managed").await;

    within(driver.goto(format!("{base}/#/anomalies")))
        .await
        .expect("open feed");
    wait_for(&driver, "table.anomalies tr[data-anomaly]").await;
    wait_text(&driver, "table.anomalies", "Suppress").await;
    let mute = wait_text(&driver, "table.anomalies button", "Mute").await;
    within(mute.click()).await.expect("mute");
    wait_text(&driver, "#mutes", "shop / collectors").await;
    let suppress = wait_text(&driver, "table.anomalies button", "Suppress").await;
    within(suppress.click()).await.expect("suppress");
    wait_text(&driver, "table.anomalies", "suppressed").await;
    shoot(&driver, "anomalies").await;

    within(driver.goto(format!("{base}/#/config")))
        .await
        .expect("open config");
    wait_text(&driver, "td.mono", "billing.yaml").await;
    // The confirmed spike of shop/web was delivered to the notifier, and the row names the
    // transition, not only the anomaly.
    let delivery = wait_text(&driver, "table.deliveries tr[data-delivery]", "delivered").await;
    let transition = within(delivery.find(By::Css("td.transition")))
        .await
        .expect("transition cell");
    assert_eq!(within(transition.text()).await.expect("text"), "confirmed");
    shoot(&driver, "config").await;

    // A config folder moved away shows its error above the documents it last applied.
    let moved_dir = config_dir.with_extension("moved");
    std::fs::rename(&config_dir, &moved_dir).expect("move the config folder away");
    wait_folder_error(addr, true).await;
    within(driver.refresh()).await.expect("reload config");
    wait_text(&driver, "#folder-error", "cannot read the config folder").await;
    wait_text(&driver, "td.mono", "billing.yaml").await;
    shoot(&driver, "config-folder-error").await;
    std::fs::rename(&moved_dir, &config_dir).expect("move the config folder back");
    wait_folder_error(addr, false).await;

    // The dark palette, for review.
    let dark = serde_json::json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]});
    within(driver.cdp().send_raw("Emulation.setEmulatedMedia", dark))
        .await
        .expect("emulate a dark colour scheme");
    within(driver.goto(field_url(&base, "shop", "web")))
        .await
        .expect("open field");
    wait_for(&driver, "svg.chart rect.band").await;
    shoot(&driver, "field-dark").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_asks_for_the_token_once() {
    if !browser_available() {
        return;
    }
    let temp = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start_with(temp.path().join("data"), |options| {
        options.token = Some(anomalyd::config::Secret::new("open-sesame"));
        options.probes = false;
    })
    .await;
    let headers = [
        ("content-type", "application/json"),
        ("authorization", "Bearer open-sesame"),
    ];
    let body = latency("shop", 0, 100.0);
    let reply = support::request(
        server.addr,
        "POST",
        "/api/v1/results",
        &headers,
        body.as_bytes(),
    )
    .await
    .expect("POST results");
    assert_eq!(reply.status, 200, "{}", reply.text());

    let (_chromedriver, port) = start_chromedriver().await;
    let driver = browser(port, &temp.path().join("profile")).await;
    let base = format!("http://{}", server.addr);
    let outcome = tokio::spawn(enter_token(driver.clone(), base)).await;
    if outcome.is_err() {
        shoot(&driver, "token-failure").await;
    }
    let _ = within(driver.quit()).await;
    outcome.expect("the token walk-through passes");
    let effective = server
        .get(&format!(
            "/api/v1/fields/effective?system=shop&healthcheck=web&field={LATENCY_FIELD}"
        ))
        .await
        .json();
    assert_eq!(
        effective["settings"]["sensitivity"]["value"], 4.0,
        "{effective}"
    );
    server.stop().await;
}

async fn enter_token(driver: WebDriver, base: String) {
    within(driver.goto(field_url(&base, "shop", "web")))
        .await
        .expect("open field");
    let input = wait_for(&driver, "#override-form input[name=sensitivity]").await;
    within(input.send_keys("4")).await.expect("type");
    let save = wait_for(&driver, "#override-form button.primary").await;
    within(save.click()).await.expect("save");

    let token = wait_for(&driver, "#token-dialog[open] #token-input").await;
    shoot(&driver, "token-dialog").await;
    within(token.send_keys("open-sesame"))
        .await
        .expect("type token");
    let use_token = wait_for(&driver, "#token-dialog button.primary").await;
    within(use_token.click()).await.expect("use token");
    wait_text(&driver, "#override-notice", "Saved").await;

    let kept = within(driver.execute("return sessionStorage.getItem('anomalyd-token');", vec![]))
        .await
        .expect("read sessionStorage");
    assert_eq!(kept.json(), &serde_json::json!("open-sesame"));
}
