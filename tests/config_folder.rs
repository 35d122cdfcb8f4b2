//! `serve` with a GitOps folder: results of configured systems are managed, others are not, and
//! the folder's status is served.

mod support;

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
