//! SIGHUP forces a rescan. Alone in its own test binary because the signal goes to the whole
//! process.

mod gitops_support;

use std::sync::Arc;
use std::time::Duration;

use gitops_support::{Folder, write_baseline};

#[tokio::test]
async fn sighup_forces_a_rescan() {
    let folder = Folder::new();
    write_baseline(&folder);
    let reconciler = Arc::new(folder.reconciler());
    let mut reports = reconciler.subscribe_reports();
    let _watching = reconciler.clone().spawn().expect("start watcher");
    let first = tokio::time::timeout(Duration::from_secs(2), reports.wait_for(Option::is_some));
    first
        .await
        .expect("initial rescan in time")
        .expect("reports open");
    reports.mark_unchanged();

    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let rescanned = tokio::time::timeout(Duration::from_secs(2), reports.changed()).await;
    rescanned
        .expect("rescan after SIGHUP in time")
        .expect("reports open");
}
