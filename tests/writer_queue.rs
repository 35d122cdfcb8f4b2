//! Backpressure of the write queue. While the writer is blocked, the bounded queue fills and
//! further requests are rejected as busy instead of waiting. Once the writer moves again, every
//! queued job commits.

mod support;

use std::sync::Arc;
use std::time::Duration;

use anomalyd::config::ConfigSnapshot;
use anomalyd::events::EventHub;
use anomalyd::store::Store;
use anomalyd::writer::{self, QUEUE_JOBS, WriteError};
use support::within;
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_rejects_as_busy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(Store::open(dir.path()).expect("store"));
    let (_config_sender, config) = watch::channel(Arc::new(ConfigSnapshot::default()));
    let writer = writer::start(
        store.clone(),
        config,
        Arc::new(EventHub::default()),
        writer::WriterOptions::default(),
    )
    .expect("writer");
    let handle = writer.handle();

    // An open write transaction makes the writer wait in begin_write with its first job. The
    // first job goes alone, so the writer cannot gather queued jobs into its group before it
    // blocks; the queue then holds exactly QUEUE_JOBS more.
    let blocker = store
        .database()
        .begin_write()
        .expect("blocking transaction");
    let first = {
        let handle = handle.clone();
        tokio::spawn(async move { handle.ingest(Vec::new()).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut jobs = vec![first];
    jobs.extend((0..QUEUE_JOBS + 50).map(|_| {
        let handle = handle.clone();
        tokio::spawn(async move { handle.ingest(Vec::new()).await })
    }));
    // Give every task the chance to enqueue or be rejected before the writer moves again.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    blocker.abort().expect("abort");

    let (mut busy, mut done) = (0, 0);
    for job in jobs {
        match within(job).await.expect("task") {
            Ok(_) => done += 1,
            Err(WriteError::Busy) => busy += 1,
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(busy, 50, "jobs rejected as busy");
    assert!(done >= QUEUE_JOBS, "{done} committed");

    drop(handle);
    within(tokio::task::spawn_blocking(move || writer.stop().join()))
        .await
        .expect("join")
        .expect("writer thread");
}

/// The watchdog pings systemd only while the writer looks alive: a writer stuck in a write
/// transaction neither replies to heartbeats nor counts as alive, and recovers once unblocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_writer_stops_looking_alive() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(Store::open(dir.path()).expect("store"));
    let (_config_sender, config) = watch::channel(Arc::new(ConfigSnapshot::default()));
    let writer = writer::start(
        store.clone(),
        config,
        Arc::new(EventHub::default()),
        writer::WriterOptions::default(),
    )
    .expect("writer");
    let handle = writer.handle();
    within(handle.ping()).await.expect("first heartbeat");
    assert!(handle.stats().since_alive() < Duration::from_secs(1));

    let blocker = store
        .database()
        .begin_write()
        .expect("blocking transaction");
    let stuck = {
        let handle = handle.clone();
        tokio::spawn(async move { handle.ingest(Vec::new()).await })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let heartbeat = tokio::time::timeout(Duration::from_millis(200), handle.ping()).await;
    assert!(
        heartbeat.is_err(),
        "a blocked writer replied to a heartbeat"
    );
    assert!(handle.stats().since_alive() >= Duration::from_millis(500));

    blocker.abort().expect("abort");
    within(stuck).await.expect("task").expect("ingest");
    within(handle.ping())
        .await
        .expect("heartbeat after unblocking");
    assert!(handle.stats().since_alive() < Duration::from_millis(300));

    drop(handle);
    within(tokio::task::spawn_blocking(move || writer.stop().join()))
        .await
        .expect("join")
        .expect("writer thread");
}
