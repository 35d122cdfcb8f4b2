//! Rescan cost of a large config folder and the time from a file save to the new configuration.
//!
//! Run with `cargo bench --bench gitops_rescan`. Prints one line per measurement.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anomalyd::gitops::{Limits, Reconciler, ReconcilerOptions, SecretSource, check_folder};

/// Number of files in the folder: the default file limit.
const FILES: usize = 1000;

/// Rescans measured per figure.
const ROUNDS: usize = 10;

fn healthcheck(i: usize, interval_secs: u32) -> String {
    format!(
        "apiVersion: checkstack.io/v1alpha1
kind: Healthcheck
metadata:
  name: check-{i}
spec:
  strategy: healthcheck-http.http
  intervalSeconds: {interval_secs}
  config:
    timeout: 5000
  collectors:
    - collectorId: healthcheck-http.request
      config:
        url: http://127.0.0.1:8080/healthz
      assertions:
        - field: statusCode
          operator: equals
          value: 200
  anomaly:
    baselineWindow: 7d
    fieldOverrides:
      \"collectors.healthcheck-http.request.responseTimeMs\":
        sensitivity: 2
        minAbsoluteDelta: 20
---
apiVersion: checkstack.io/v1alpha1
kind: System
metadata:
  name: system-{i}
spec:
  healthchecks:
    - ref: {{ kind: Healthcheck, name: check-{i} }}
  anomaly:
    - healthcheckRef: {{ kind: Healthcheck, name: check-{i} }}
      notify: false
"
    )
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time_rounds(mut run: impl FnMut(usize)) -> Duration {
    let samples = (0..ROUNDS).map(|round| {
        let start = Instant::now();
        run(round);
        start.elapsed()
    });
    median(samples.collect())
}

fn main() {
    let config = tempfile::tempdir().expect("temp config dir");
    let state = tempfile::tempdir().expect("temp state dir");
    for i in 0..FILES {
        let path = config.path().join(format!("check-{i:04}.yaml"));
        std::fs::write(path, healthcheck(i, 30)).expect("write file");
    }
    let db = Arc::new(redb::Database::create(state.path().join("bench.redb")).expect("create db"));
    let options = ReconcilerOptions::new(config.path());
    let reconciler = Arc::new(Reconciler::open(options, db.clone()).expect("open reconciler"));

    let start = Instant::now();
    reconciler.rescan().expect("first rescan");
    println!(
        "first rescan, {FILES} files, {} entities: {:?}",
        FILES * 2,
        start.elapsed()
    );

    let unchanged = time_rounds(|_| {
        reconciler.rescan().expect("rescan");
    });
    println!("rescan without changes (median of {ROUNDS}): {unchanged:?}");

    let edited = time_rounds(|round| {
        let path = config.path().join("check-0000.yaml");
        std::fs::write(path, healthcheck(0, 31 + round as u32)).expect("edit file");
        reconciler.rescan().expect("rescan");
    });
    println!("rescan after editing one file (median of {ROUNDS}): {edited:?}");

    let secrets = SecretSource::default();
    let checked = time_rounds(|_| {
        check_folder(config.path(), &secrets, &Limits::default()).expect("check");
    });
    println!("anomalyd check of the folder (median of {ROUNDS}): {checked:?}");

    measure_save_to_apply(&reconciler, config.path());
}

/// Times a save until the watcher publishes the new configuration.
fn measure_save_to_apply(reconciler: &Arc<Reconciler>, dir: &std::path::Path) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let mut changes = reconciler.subscribe();
        let _watching = reconciler.clone().spawn().expect("start watcher");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut samples = Vec::new();
        for round in 0..ROUNDS {
            // Let the events of the previous save settle, so no rescan is already on its way.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let interval_secs = 100 + round as u32;
            let start = Instant::now();
            std::fs::write(dir.join("check-0500.yaml"), healthcheck(500, interval_secs))
                .expect("edit file");
            let applied = changes.wait_for(|s| {
                s.healthchecks.get("check-500").map(|h| h.interval_secs) == Some(interval_secs)
            });
            tokio::time::timeout(Duration::from_secs(10), applied)
                .await
                .expect("applied within 10 s")
                .expect("channel open");
            samples.push(start.elapsed());
        }
        let worst = samples.iter().max().copied().unwrap_or_default();
        println!(
            "save to applied through the watcher, {FILES} files (median of {ROUNDS}): {:?}, max {worst:?}",
            median(samples)
        );
    });
}
