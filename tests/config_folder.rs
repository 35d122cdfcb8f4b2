//! `serve` with a GitOps folder: results of configured systems are managed, others are not, and
//! the folder's status is served.

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use support::{LATENCY_FIELD, TestServer, within};

fn copy_examples(to: &Path) {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gitops");
    for file in [
        "healthchecks/anomalyd-healthz.yaml",
        "systems/anomalyd.yaml",
    ] {
        let name = Path::new(file).file_name().expect("file name");
        std::fs::copy(examples.join(file), to.join(name)).expect("copy example");
    }
}

fn result(system: &str, healthcheck: &str) -> String {
    format!(
        r#"{{"system":"{system}","healthcheck":"{healthcheck}","status":"healthy","timestamp":"2026-01-02T00:00:00Z","collectors":{{"healthcheck-http.request":{{"responseTimeMs":5}}}}}}"#
    )
}

#[tokio::test]
async fn configured_systems_are_managed() {
    let data = tempfile::tempdir().expect("data dir");
    let config = tempfile::tempdir().expect("config dir");
    copy_examples(config.path());
    let config_dir = config.path().to_path_buf();
    let server = TestServer::start_with(data.path().to_path_buf(), |options| {
        options.config_dir = Some(config_dir);
    })
    .await;

    // The first rescan runs on the watcher's thread; wait until it applied the folder.
    within(async {
        while !server
            .get("/api/v1/gitops")
            .await
            .text()
            .contains("anomalyd-healthz")
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let body = format!(
        "[{},{}]",
        result("anomalyd", "anomalyd-healthz"),
        result("shop", "web")
    );
    assert_eq!(server.post("/api/v1/results", &body).await.status, 200);

    let series = server
        .get(&format!("/api/v1/series?field={LATENCY_FIELD}"))
        .await
        .json();
    let managed: Vec<(String, bool)> = series["series"]
        .as_array()
        .expect("series")
        .iter()
        .map(|s| {
            (
                s["system"].as_str().expect("system").to_owned(),
                s["managed"] == true,
            )
        })
        .collect();
    assert!(managed.contains(&("anomalyd".into(), true)), "{managed:?}");
    assert!(managed.contains(&("shop".into(), false)), "{managed:?}");
    server.stop().await;
}

#[tokio::test]
async fn gitops_status_needs_a_folder() {
    let server = TestServer::start().await;
    let reply = server.get("/api/v1/gitops").await;
    assert_eq!(reply.status, 404);
    assert!(reply.text().contains("--config-dir"), "{}", reply.text());
    server.stop().await;
}

/// Builds a healthcheck document named `name`, without collectors.
fn healthcheck(name: &str) -> String {
    format!(
        "apiVersion: checkstack.io/v1alpha1\nkind: Healthcheck\nmetadata:\n  name: {name}\n\
         spec:\n  strategy: healthcheck-http.http\n  intervalSeconds: 30\n  config:\n    \
         url: http://127.0.0.1:9/health\n"
    )
}

/// Fetches `path`, failing the test unless the reply arrives within `limit`. The request runs
/// on a thread and runtime of its own, because a handler that blocks a server worker can also
/// stall the timers of the server's runtime.
async fn get_within(addr: SocketAddr, path: &'static str, limit: Duration) -> support::Reply {
    let (sent, reply) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("client runtime");
        let answered = runtime.block_on(support::request(addr, "GET", path, &[], b""));
        sent.send(answered).ok();
    });
    let waited = tokio::task::spawn_blocking(move || reply.recv_timeout(limit)).await;
    let answered = waited.expect("wait task");
    let answered = answered.unwrap_or_else(|_| panic!("GET {path} timed out after {limit:?}"));
    answered.unwrap_or_else(|e| panic!("GET {path} failed: {e}"))
}

/// A rescan that reads a named pipe waits until a writer sends the file, so this test keeps a
/// rescan in progress for as long as it needs. The runtime has two workers like the binary's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_served_during_rescan() {
    const ANSWER_WITHIN: Duration = Duration::from_secs(2);
    let data = tempfile::tempdir().expect("data dir");
    let config = tempfile::tempdir().expect("config dir");
    std::fs::write(config.path().join("web.yaml"), healthcheck("web")).expect("write web.yaml");
    let config_dir = config.path().to_path_buf();
    let server = TestServer::start_with(data.path().to_path_buf(), |options| {
        options.config_dir = Some(config_dir);
        options.probes = false;
    })
    .await;

    let pipe = config.path().join("api.yaml");
    let created = std::process::Command::new("mkfifo").arg(&pipe).status();
    assert!(created.expect("run mkfifo").success(), "mkfifo failed");
    let (attached, rescan_reading) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let staged = config.path().join(".api.yaml.next");
    let writer = std::thread::spawn(move || {
        // Opening the write end blocks until the rescan opens the read end.
        let opened = std::fs::OpenOptions::new().write(true).open(&pipe);
        let mut file = opened.expect("open the pipe for writing");
        attached.send(()).ok();
        // An error means the test failed and dropped `release`, and closing the pipe ends the
        // rescan with an empty file.
        if released.recv().is_err() {
            return;
        }
        let text = healthcheck("api");
        std::fs::write(&staged, &text).expect("write the staged file");
        // A regular file replaces the pipe before the writer closes it, so the next rescan reads
        // a file and does not wait for a writer.
        std::fs::rename(&staged, &pipe).expect("replace the pipe");
        file.write_all(text.as_bytes()).expect("write to the pipe");
    });
    let reading = tokio::task::spawn_blocking(move || rescan_reading.recv_timeout(ANSWER_WITHIN));
    let reading = reading.await.expect("wait task");
    reading.expect("the watcher started a rescan that reads the pipe");

    let status = get_within(server.addr, "/api/v1/gitops", ANSWER_WITHIN).await;
    assert_eq!(status.status, 200);
    let text = status.text();
    assert!(text.contains("web.yaml"), "{text}");
    assert!(!text.contains("api.yaml"), "{text}");
    let metrics = get_within(server.addr, "/metrics", ANSWER_WITHIN).await;
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    assert!(
        text.contains("anomalyd_gitops_documents_in_error 0\n"),
        "{text}"
    );
    let health = get_within(server.addr, "/healthz", ANSWER_WITHIN).await;
    assert_eq!(health.status, 200);

    release.send(()).expect("pipe writer thread is running");
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .expect("join task")
        .expect("writer thread");
    within(async {
        while !server
            .get("/api/v1/gitops")
            .await
            .text()
            .contains("api.yaml")
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    server.stop().await;
}

/// Polls `GET /api/v1/gitops` until `done` accepts its body, and returns that body.
async fn wait_status(
    server: &TestServer,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    within(async {
        loop {
            let status = server.get("/api/v1/gitops").await.json();
            if done(&status) {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// Moving the folder away shows a folder error and keeps the configuration, and moving it back
/// clears the error. The watcher gets an event for each rename of the watched folder and
/// rescans.
#[tokio::test]
async fn moved_folder_shows_error_until_restored() {
    let data = tempfile::tempdir().expect("data dir");
    let parent = tempfile::tempdir().expect("parent of the config dir");
    let config_dir = parent.path().join("config");
    let moved_dir = parent.path().join("config.moved");
    std::fs::create_dir(&config_dir).expect("create config dir");
    copy_examples(&config_dir);
    let served_dir = config_dir.clone();
    let server = TestServer::start_with(data.path().to_path_buf(), |options| {
        options.config_dir = Some(served_dir);
        options.probes = false;
    })
    .await;
    let applied = wait_status(&server, |s| s.to_string().contains("anomalyd-healthz")).await;
    assert_eq!(applied["folderError"], serde_json::Value::Null, "{applied}");

    std::fs::rename(&config_dir, &moved_dir).expect("move the folder away");
    let failed = wait_status(&server, |s| !s["folderError"].is_null()).await;
    let message = failed["folderError"]["message"].as_str().expect("message");
    assert!(
        message.contains("cannot read the config folder"),
        "{message}"
    );
    let dir = config_dir.display().to_string();
    assert!(message.contains(&dir), "{message}");
    assert!(failed["folderError"]["since"].is_string(), "{failed}");
    let documents = failed["documents"].as_array().expect("documents");
    assert!(!documents.is_empty(), "{failed}");
    assert!(documents.iter().all(|d| d["state"] == "synced"), "{failed}");
    let healthchecks = server.get("/api/v1/healthchecks").await.text();
    assert!(healthchecks.contains("anomalyd-healthz"), "{healthchecks}");
    let metrics = server.get("/metrics").await.text();
    assert!(
        metrics.contains("anomalyd_gitops_folder_unreadable 1\n"),
        "{metrics}"
    );

    std::fs::rename(&moved_dir, &config_dir).expect("move the folder back");
    let restored = wait_status(&server, |s| s["folderError"].is_null()).await;
    assert!(
        restored.to_string().contains("anomalyd-healthz"),
        "{restored}"
    );
    let metrics = server.get("/metrics").await.text();
    assert!(
        metrics.contains("anomalyd_gitops_folder_unreadable 0\n"),
        "{metrics}"
    );
    server.stop().await;
}
