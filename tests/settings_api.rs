//! The settings and inventory API over HTTP: reads, writes for unmanaged entities, 400, 404,
//! 409, 401 and 403 answers, the page's headers, and API-made settings after a restart.

mod support;

use std::net::SocketAddr;
use std::path::Path;

use anomalyd::config::Secret;
use anomalyd::server::{ServeError, ServeOptions, run};
use serde_json::{Value as Json, json};
use support::{LATENCY_FIELD, Reply, TestServer, latency, request, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
---
apiVersion: checkstack.io/v1alpha1
kind: System
metadata:
  name: billing
spec:
  healthchecks:
    - ref: { kind: Healthcheck, name: api }
"#;

async fn put(addr: SocketAddr, path: &str, body: &Json, headers: &[(&str, &str)]) -> Reply {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    let body = body.to_string();
    within(request(addr, "PUT", path, &all, body.as_bytes()))
        .await
        .expect("PUT")
}

async fn managed_server(temp: &Path) -> TestServer {
    let config_dir = temp.join("config");
    std::fs::create_dir_all(&config_dir).expect("config dir");
    std::fs::write(config_dir.join("billing.yaml"), MANAGED_YAML).expect("yaml");
    let server = TestServer::start_with(temp.join("data"), |options| {
        options.config_dir = Some(config_dir.clone());
        options.probes = false;
    })
    .await;
    wait_for_folder(&server).await;
    server
}

/// Waits until the folder's first scan is applied.
pub async fn wait_for_folder(server: &TestServer) {
    within(async {
        loop {
            let systems = server.get("/api/v1/systems").await.json();
            if systems["systems"][0]["name"] == "billing" {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Starts a server on `data` and stores one result of healthcheck `web` on system `shop`.
async fn server_with_shop_result(data: std::path::PathBuf) -> TestServer {
    let server = TestServer::start_in(data).await;
    let reply = server
        .post("/api/v1/results", &latency("shop", 0, 100.0))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    server
}

fn assignment_path(system: &str, healthcheck: &str) -> String {
    format!("/api/v1/systems/{system}/healthchecks/{healthcheck}/settings")
}

fn effective_path(system: &str) -> String {
    format!("/api/v1/fields/effective?system={system}&healthcheck=web&field={LATENCY_FIELD}")
}

#[tokio::test]
async fn inventory_lists_configured_and_seen_entities() {
    let temp = tempfile::tempdir().expect("temp dir");
    let server = managed_server(temp.path()).await;
    let reply = server
        .post("/api/v1/results", &latency("shop", 0, 100.0))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    let systems = server.get("/api/v1/systems").await.json();
    let names: Vec<&str> = systems["systems"]
        .as_array()
        .expect("systems")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["billing", "shop"]);
    assert_eq!(systems["systems"][0]["source"]["type"], "yaml");
    assert_eq!(systems["systems"][1]["badge"], "learning");

    let shop = server.get("/api/v1/systems/shop").await.json();
    assert_eq!(shop["healthchecks"][0]["name"], "web");
    assert_eq!(
        shop["healthchecks"][0]["series"][0]["learning"]["samples"],
        1
    );
    let missing = server.get("/api/v1/systems/nowhere").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["code"], "not-found");

    let healthchecks = server.get("/api/v1/healthchecks").await.json();
    assert_eq!(healthchecks["healthchecks"][0]["name"], "api");
    assert_eq!(
        healthchecks["healthchecks"][0]["systems"],
        json!(["billing"])
    );
    assert_eq!(healthchecks["healthchecks"][1]["systems"], json!(["shop"]));

    let catalogue = server.get("/api/v1/catalogue").await.json();
    let http = catalogue["collectors"]
        .as_array()
        .expect("collectors")
        .iter()
        .find(|c| c["id"] == "healthcheck-http.request")
        .expect("built-in http collector");
    assert!(http["fields"].as_array().is_some_and(|f| !f.is_empty()));
    server.stop().await;
}

#[tokio::test]
async fn unmanaged_settings_are_stored_applied_and_kept() {
    let temp = tempfile::tempdir().expect("temp dir");
    let data = temp.path().join("data");
    let server = server_with_shop_result(data.clone()).await;

    let before = server.get(&effective_path("shop")).await.json();
    assert_eq!(
        before["settings"]["sensitivity"]["layer"],
        "schema-annotation"
    );

    let body = json!({"notify": false, "fieldOverrides": {LATENCY_FIELD: {"sensitivity": 3}}});
    let reply = put(server.addr, &assignment_path("shop", "web"), &body, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["editable"], true);
    let template = json!({"baselineWindow": "3d"});
    let reply = put(
        server.addr,
        "/api/v1/healthchecks/web/settings",
        &template,
        &[],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    let after = server.get(&effective_path("shop")).await.json();
    assert_eq!(after["settings"]["sensitivity"]["value"], 3.0);
    assert_eq!(
        after["settings"]["sensitivity"]["layer"],
        "assignment-field-override"
    );
    assert_eq!(after["settings"]["notify"]["layer"], "assignment");
    assert_eq!(after["settings"]["baselineWindow"]["value"], "3d");
    server.stop().await;

    let restarted = TestServer::start_in(data).await;
    let kept = restarted.get(&assignment_path("shop", "web")).await.json();
    assert_eq!(kept["settings"]["notify"], false);
    let template = restarted
        .get("/api/v1/healthchecks/web/settings")
        .await
        .json();
    assert_eq!(template["settings"]["baselineWindow"], "3d");
    restarted.stop().await;
}

#[tokio::test]
async fn bad_values_get_400_and_change_nothing() {
    let temp = tempfile::tempdir().expect("temp dir");
    let server = server_with_shop_result(temp.path().join("data")).await;
    let good = json!({"fieldOverrides": {LATENCY_FIELD: {"sensitivity": 2}}});
    let reply = put(server.addr, &assignment_path("shop", "web"), &good, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    let cases = [
        json!({"fieldOverrides": {LATENCY_FIELD: {"sensitivity": -1}}}),
        json!({"fieldOverrides": {LATENCY_FIELD: {"confirmationWindow": 0}}}),
        json!({"fieldOverrides": {LATENCY_FIELD: {"colour": "red"}}}),
        json!({"fieldOverrides": {"latencyMs": {"sensitivity": 2}}}),
        json!({"baselineWindow": "3w"}),
        json!({"notify": "yes"}),
        json!([1, 2]),
    ];
    for body in &cases {
        let reply = put(server.addr, &assignment_path("shop", "web"), body, &[]).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text());
        let error = &reply.json()["error"];
        assert_eq!(error["code"], "invalid-settings", "{body}");
        assert!(error["details"][0]["key"].is_string(), "{error}");
    }
    let reply = put(server.addr, &assignment_path("shop", "web"), &cases[0], &[]).await;
    let message = reply.json()["error"]["message"].to_string();
    assert!(message.contains("sensitivity"), "{message}");

    let stored = server.get(&assignment_path("shop", "web")).await.json();
    assert_eq!(
        stored["settings"]["fieldOverrides"][LATENCY_FIELD]["sensitivity"],
        2.0
    );
    let bad_name = put(server.addr, &assignment_path("Shop!", "web"), &good, &[]).await;
    assert_eq!(bad_name.status, 400);
    let not_json = within(request(
        server.addr,
        "PUT",
        "/api/v1/healthchecks/web/settings",
        &[],
        b"{",
    ))
    .await
    .expect("PUT");
    assert_eq!(not_json.status, 400);
    let missing = server.get("/api/v1/fields/effective?system=shop").await;
    assert_eq!(missing.status, 400);
    server.stop().await;
}

#[tokio::test]
async fn every_problem_listed_with_full_key() {
    let temp = tempfile::tempdir().expect("temp dir");
    let server = server_with_shop_result(temp.path().join("data")).await;
    let good = json!({"notify": false});
    let reply = put(server.addr, "/api/v1/healthchecks/web/settings", &good, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let before = server.get("/api/v1/healthchecks/web/settings").await.json();

    let body = json!({
        "baselineWindow": "100d",
        "notify": "yes",
        "fieldOverrides": {LATENCY_FIELD: {"direction": "up", "sensitivity": "high"}},
    });
    let reply = put(server.addr, "/api/v1/healthchecks/web/settings", &body, &[]).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    let error = reply.json()["error"].clone();
    assert_eq!(error["code"], "invalid-settings");
    let details = error["details"].as_array().expect("details list").clone();
    let message_of = |key: &str| {
        let found = details.iter().find(|d| d["key"] == key);
        found.map(|d| d["message"].to_string()).unwrap_or_default()
    };
    assert_eq!(details.len(), 4, "{error}");
    assert!(
        message_of("baselineWindow").contains("between 1h and 90d"),
        "{error}"
    );
    assert!(message_of("notify").contains("true or false"), "{error}");
    let direction = message_of(&format!("fieldOverrides.{LATENCY_FIELD}.direction"));
    assert!(direction.contains("lower-is-better"), "{error}");
    assert!(!direction.contains("unknown variant"), "{error}");
    let sensitivity = message_of(&format!("fieldOverrides.{LATENCY_FIELD}.sensitivity"));
    assert!(sensitivity.contains("greater than 0"), "{error}");

    let after = server.get("/api/v1/healthchecks/web/settings").await.json();
    assert_eq!(after, before);
    server.stop().await;
}

#[tokio::test]
async fn unknown_settings_get_404_and_wrong_methods_405() {
    let server = TestServer::start().await;
    let reply = server.get("/api/v1/healthchecks/nothing/settings").await;
    assert_eq!(reply.status, 404);
    let reply = server.get(&assignment_path("shop", "nothing")).await;
    assert_eq!(reply.status, 404);
    let reply = server.post("/api/v1/healthchecks/web/settings", "{}").await;
    assert_eq!(reply.status, 405);
    server.stop().await;
}

/// Returns what the settings and inventory API show, to compare before and after a write.
async fn settings_snapshot(server: &TestServer) -> Vec<(u16, Json)> {
    let mut snapshot = Vec::new();
    for path in [
        "/api/v1/healthchecks",
        "/api/v1/systems",
        "/api/v1/healthchecks/web/settings",
        "/api/v1/healthchecks/wbe/settings",
    ] {
        let reply = server.get(path).await;
        snapshot.push((reply.status, reply.json()));
    }
    snapshot
}

#[tokio::test]
async fn template_put_for_unknown_healthcheck_is_404() {
    let temp = tempfile::tempdir().expect("temp dir");
    let data = temp.path().join("data");
    let server = server_with_shop_result(data.clone()).await;
    let before = settings_snapshot(&server).await;

    let body = json!({"notify": false});
    let reply = put(server.addr, "/api/v1/healthchecks/wbe/settings", &body, &[]).await;
    assert_eq!(reply.status, 404, "{}", reply.text());
    let error = &reply.json()["error"];
    assert_eq!(error["code"], "not-found");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("wbe"), "{message}");
    assert!(message.contains("result"), "{message}");
    assert!(message.contains("YAML"), "{message}");
    assert_eq!(settings_snapshot(&server).await, before);

    let reply = put(server.addr, "/api/v1/healthchecks/web/settings", &body, &[]).await;
    assert_eq!(
        reply.status, 200,
        "a healthcheck named by a result is editable"
    );
    server.stop().await;

    let restarted = TestServer::start_in(data).await;
    let typo = restarted.get("/api/v1/healthchecks/wbe/settings").await;
    assert_eq!(typo.status, 404, "nothing was stored for the typo");
    restarted.stop().await;
}

#[tokio::test]
async fn assignment_put_for_unknown_pair_is_404() {
    let temp = tempfile::tempdir().expect("temp dir");
    let data = temp.path().join("data");
    let server = server_with_shop_result(data.clone()).await;
    let before = settings_snapshot(&server).await;

    let body = json!({"notify": false});
    for (system, healthcheck) in [("shpo", "web"), ("shop", "wbe")] {
        let path = assignment_path(system, healthcheck);
        let reply = put(server.addr, &path, &body, &[]).await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.text());
        let error = &reply.json()["error"];
        assert_eq!(error["code"], "not-found");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains(system), "{message}");
        assert!(message.contains(healthcheck), "{message}");
    }
    assert_eq!(settings_snapshot(&server).await, before);

    let reply = put(server.addr, &assignment_path("shop", "web"), &body, &[]).await;
    assert_eq!(reply.status, 200, "a pair named by a result is editable");
    server.stop().await;

    let restarted = TestServer::start_in(data).await;
    let systems = restarted.get("/api/v1/systems").await.json();
    let names: Vec<&str> = systems["systems"]
        .as_array()
        .expect("systems list")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["shop"], "nothing was stored for the typo");
    restarted.stop().await;
}

#[tokio::test]
async fn yaml_defined_entities_answer_409_naming_the_file() {
    let temp = tempfile::tempdir().expect("temp dir");
    let server = managed_server(temp.path()).await;
    let body = json!({"notify": false});
    for path in [
        "/api/v1/healthchecks/api/settings".to_owned(),
        assignment_path("billing", "api"),
    ] {
        let reply = put(server.addr, &path, &body, &[]).await;
        assert_eq!(reply.status, 409, "{path}: {}", reply.text());
        let message = reply.json()["error"]["message"].to_string();
        assert!(message.contains("billing.yaml"), "{message}");
    }
    let view = server.get(&assignment_path("billing", "api")).await.json();
    assert_eq!(view["editable"], false);
    assert_eq!(view["file"], "billing.yaml");
    server.stop().await;
}

#[tokio::test]
async fn writes_need_the_token_and_the_same_origin() {
    let temp = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start_with(temp.path().to_path_buf(), |options| {
        options.token = Some(Secret::new("letmein"));
    })
    .await;
    let body = json!({"notify": false});
    let path = assignment_path("shop", "web");
    let missing = put(server.addr, &path, &body, &[]).await;
    assert_eq!(missing.status, 401);
    let message = missing.json()["error"]["message"].to_string();
    assert!(message.contains("no Authorization header"), "{message}");
    let wrong = [("authorization", "Bearer letmeout")];
    let mismatch = put(server.addr, &path, &body, &wrong).await;
    assert_eq!(mismatch.status, 401);
    let message = mismatch.json()["error"]["message"].to_string();
    assert!(message.contains("does not match"), "{message}");
    assert!(!message.contains("letmeout"), "{message}");
    let results = server
        .post("/api/v1/results", &latency("shop", 0, 100.0))
        .await;
    assert_eq!(results.status, 401);
    assert_eq!(results.json()["error"]["code"], "unauthorized");

    let right = [("authorization", "Bearer letmein")];
    let seeded = within(request(
        server.addr,
        "POST",
        "/api/v1/results",
        &right,
        latency("shop", 0, 100.0).as_bytes(),
    ))
    .await
    .expect("POST");
    assert_eq!(seeded.status, 200, "{}", seeded.text());
    assert_eq!(put(server.addr, &path, &body, &right).await.status, 200);
    assert_eq!(server.get(&path).await.status, 200, "reads need no token");

    let cross = [
        ("authorization", "Bearer letmein"),
        ("origin", "http://elsewhere.test"),
    ];
    assert_eq!(put(server.addr, &path, &body, &cross).await.status, 403);
    let site = [
        ("authorization", "Bearer letmein"),
        ("sec-fetch-site", "cross-site"),
    ];
    assert_eq!(put(server.addr, &path, &body, &site).await.status, 403);
    server.stop().await;
}

#[tokio::test]
async fn non_loopback_listening_needs_a_token() {
    let temp = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("bind");
    let data_dir = temp.path().join("data");
    let options = ServeOptions::new(&data_dir);
    let outcome = within(run(listener, options, std::future::pending())).await;
    let error = outcome.expect_err("refused without a token");
    assert!(matches!(error, ServeError::TokenRequired(_)), "{error}");
    assert!(error.to_string().contains("ANOMALYD_TOKEN"), "{error}");
    assert!(
        !data_dir.exists(),
        "the refused start created {}",
        data_dir.display()
    );
}

/// Sends a GET and returns the raw head and body.
async fn raw_get(addr: SocketAddr, path: &str) -> String {
    within(async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let head = format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.expect("send");
        let mut text = String::new();
        stream.read_to_string(&mut text).await.expect("read");
        text
    })
    .await
}

#[tokio::test]
async fn page_is_served_with_security_headers() {
    let server = TestServer::start().await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/style.css", "text/css"),
    ] {
        let reply = raw_get(server.addr, path).await.to_lowercase();
        assert!(reply.starts_with("http/1.1 200"), "{path}: {reply}");
        assert!(reply.contains(&format!("content-type: {kind}")), "{path}");
        assert!(
            reply.contains("content-security-policy: default-src 'self'"),
            "{path}"
        );
        assert!(!reply.contains("unsafe-inline"), "{path}");
        assert!(reply.contains("x-content-type-options: nosniff"), "{path}");
        assert!(reply.contains("referrer-policy: same-origin"), "{path}");
    }
    let page = raw_get(server.addr, "/").await;
    assert!(page.contains(r#"<script type="module" src="/app.js">"#));
    assert!(!page.contains("<style"), "no inline styles");
    // An empty data URL icon stops browsers from requesting /favicon.ico, which would be a 404.
    assert!(page.contains(r#"<link rel="icon" href="data:,">"#));
    assert!(
        page.contains("img-src 'self' data:"),
        "CSP allows the data URL icon"
    );
    server.stop().await;
}
