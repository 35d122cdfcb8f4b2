//! The hourly analyzer through the writer. It reads the stored hourly summaries, and its
//! baselines and last-run time are stored in one transaction, expired data is pruned, and a
//! missed hour runs at start.

mod support;

use std::sync::Arc;
use std::time::Duration;

use anomalyd::config::ConfigSnapshot;
use anomalyd::engine::{Anomaly, Kind, RowDirection, State, Timestamp};
use anomalyd::events::EventHub;
use anomalyd::ingest::{self, Framing};
use anomalyd::server::{ServeOptions, run};
use anomalyd::store::{Store, WriteTables, read};
use anomalyd::writer;
use support::{latency, within};
use tokio::sync::watch;

fn learn_body(system: &str, count: u32) -> String {
    (0..count)
        .map(|i| latency(system, i, 100.0 + f64::from(i % 4)))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn analyzer_run_stores_baselines_and_last_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(Store::open(dir.path()).expect("store"));
    let (_config_sender, config) = watch::channel(Arc::new(ConfigSnapshot::default()));
    let events = Arc::new(EventHub::default());
    let writer = writer::start(
        store.clone(),
        config,
        events.clone(),
        writer::WriterOptions::default(),
    )
    .expect("writer");
    let handle = writer.handle();

    // 20 samples: too few for the inline baseline, so only the analyzer can make one from
    // 20 + 10 samples across two hours.
    let first = ingest::parse(learn_body("shop", 20).as_bytes(), Framing::Ndjson).expect("parse");
    within(handle.ingest(first)).await.expect("ingest");
    let later: Vec<String> = (0..10).map(|i| latency("shop", 60 + i, 101.0)).collect();
    let later = ingest::parse(later.join("\n").as_bytes(), Framing::Ndjson).expect("parse");
    within(handle.ingest(later)).await.expect("ingest");
    assert!(
        read::series(store.database(), &Default::default()).expect("series")[0]
            .baseline
            .is_some()
    );

    let at = Timestamp::from_millis(1_767_322_800_000); // 2026-01-02T03:00:00Z
    within(handle.analyze(at)).await.expect("analyze");
    let snapshot = read::snapshot(store.database()).expect("snapshot");
    assert_eq!(snapshot.analyzer_last_run, Some(at));
    let baseline = snapshot.baselines.values().next().expect("baseline");
    assert_eq!(baseline.computed_at, at);
    assert_eq!(baseline.sample_count, 30);
    let names: Vec<&str> = events.since(0).iter().map(|e| e.name).collect();
    assert_eq!(
        names.iter().filter(|n| **n == "baseline-updated").count(),
        2,
        "{names:?}"
    );

    drop(handle);
    within(tokio::task::spawn_blocking(move || writer.stop().join()))
        .await
        .expect("join")
        .expect("writer thread");
}

#[tokio::test]
async fn missed_hour_runs_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let long_ago = Timestamp::from_millis(1_767_312_000_000); // 2026-01-02T00:00:00Z
    {
        let store = Store::open(dir.path()).expect("store");
        let tx = store.database().begin_write().expect("begin");
        let mut tables = WriteTables::open(&tx).expect("tables");
        tables.set_analyzer_last_run(long_ago).expect("last run");
        tables.finish().expect("finish");
        tx.commit().expect("commit");
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut options = ServeOptions::new(dir.path());
    options.shutdown_timeout = Duration::from_secs(5);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, options, async {
        let _ = stopped.await;
    }));
    // The catch-up run is queued at start; give it a moment, then stop, which commits the queue.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = stop.send(());
    within(server)
        .await
        .expect("server task")
        .expect("server run");

    let store = Store::open(dir.path()).expect("reopen");
    let last_run = read::snapshot(store.database())
        .expect("snapshot")
        .analyzer_last_run;
    assert!(last_run.is_some_and(|at| at > long_ago), "{last_run:?}");
}

fn row(id: u64, state: State, recovered_at: Option<Timestamp>) -> Anomaly {
    Anomaly {
        id,
        kind: Kind::Spike,
        state,
        direction: RowDirection::Above,
        baseline_mean: Some(100.0),
        baseline_std_dev: Some(1.0),
        observed_value: "200".into(),
        deviation: 100.0,
        suspicious_run_count: 3,
        confirmation_threshold: 3,
        started_at: Timestamp::from_millis(1_767_312_000_000),
        confirmed_at: None,
        recovered_at,
        recent_samples: Vec::new(),
        stable_drift_run_count: 0,
        self_resolved: false,
        suppression: None,
    }
}

#[tokio::test]
async fn analyzer_run_prunes_expired_data() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(Store::open(dir.path()).expect("store"));
    let (_config_sender, config) = watch::channel(Arc::new(ConfigSnapshot::default()));
    let events = Arc::new(EventHub::default());

    let start = Timestamp::from_millis(1_767_312_000_000); // 2026-01-02T00:00:00Z
    {
        let tx = store.database().begin_write().expect("begin");
        let mut tables = WriteTables::open(&tx).expect("tables");
        let key = anomalyd::series::SeriesKey {
            system: "shop".into(),
            healthcheck: "web".into(),
            environment: None,
            field_path: "collectors.healthcheck-http.request.responseTimeMs".into(),
        };
        let id = tables.series_id(&key).expect("series");
        let (recovered_id, open_id) = (tables.next_anomaly_id(), tables.next_anomaly_id());
        assert_eq!((recovered_id, open_id), (1, 2));
        let recovered = row(recovered_id, State::Recovered, Some(start));
        tables.put_anomaly(id, &recovered).expect("recovered row");
        // An open row of a series that gets no samples, so it stays open.
        let quiet = anomalyd::series::SeriesKey {
            system: "quiet".into(),
            ..key
        };
        let quiet_id = tables.series_id(&quiet).expect("series");
        let open = row(open_id, State::Anomaly, None);
        tables.put_anomaly(quiet_id, &open).expect("open row");
        tables.finish().expect("finish");
        tx.commit().expect("commit");
    }
    let writer = writer::start(
        store.clone(),
        config,
        events,
        writer::WriterOptions::default(),
    )
    .expect("writer");
    let handle = writer.handle();
    let old = ingest::parse(learn_body("shop", 30).as_bytes(), Framing::Ndjson).expect("parse");
    within(handle.ingest(old)).await.expect("ingest");
    let shop = read::SeriesFilter {
        system: Some("shop".into()),
        ..Default::default()
    };
    let series_id = read::series(store.database(), &shop).expect("series")[0].id;

    // 40 days later: the samples and summaries are past every window and the chart range, and
    // the recovered row is past the 30 days of anomaly retention.
    let later = Timestamp::from_millis(start.as_millis() + 40 * 24 * 3_600_000);
    within(handle.analyze(later)).await.expect("analyze");

    let samples = read::samples(store.database(), series_id, start, later, 1000).expect("samples");
    assert!(samples.is_empty(), "{} samples left", samples.len());
    assert!(
        read::snapshot(store.database())
            .expect("snapshot")
            .current_hours
            .is_empty()
    );
    assert!(read::anomaly(store.database(), 1).expect("read").is_none());
    assert!(read::anomaly(store.database(), 2).expect("read").is_some());

    drop(handle);
    within(tokio::task::spawn_blocking(move || writer.stop().join()))
        .await
        .expect("join")
        .expect("writer thread");
}

/// Ingests 30 latency results for `system` starting at `minute`.
async fn learn(handle: &writer::WriterHandle, system: &str, minute: u32) {
    let lines: Vec<String> = (0..30)
        .map(|i| latency(system, minute + i, 100.0 + f64::from(i % 4)))
        .collect();
    let results = ingest::parse(lines.join("\n").as_bytes(), Framing::Ndjson).expect("parse");
    within(handle.ingest(results)).await.expect("ingest");
}

#[tokio::test]
async fn stale_series_forgotten_fresh_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(Store::open(dir.path()).expect("store"));
    let (_config_sender, config) = watch::channel(Arc::new(ConfigSnapshot::default()));
    let options = writer::WriterOptions::default();
    let writer = writer::start(
        store.clone(),
        config,
        Arc::new(EventHub::default()),
        options,
    )
    .expect("writer");
    let handle = writer.handle();

    // "gone" reports on day 0 only; "alive" also on day 15. The default window is 7 days, so
    // on day 15 "gone" has not been seen for more than twice its window.
    let day = 24 * 60;
    learn(&handle, "gone", 0).await;
    learn(&handle, "alive", 0).await;
    learn(&handle, "alive", 15 * day).await;
    let listed = |system: &str| {
        let filter = read::SeriesFilter {
            system: Some(system.into()),
            ..Default::default()
        };
        read::series(store.database(), &filter).expect("series")
    };
    let gone_id = listed("gone")[0].id;
    let day_15 = Timestamp::from_millis(1_767_312_000_000 + 15 * 86_400_000 + 3_600_000);
    within(handle.analyze(day_15)).await.expect("analyze");

    assert!(listed("gone").is_empty(), "stale series still listed");
    let snapshot = read::snapshot(store.database()).expect("snapshot");
    assert!(
        !snapshot.baselines.contains_key(&gone_id),
        "stale baseline kept"
    );
    let alive = listed("alive");
    assert_eq!(alive.len(), 1);
    assert!(
        alive[0].baseline.is_some(),
        "fresh series lost its baseline"
    );

    // The series learns afresh when it reports again.
    learn(&handle, "gone", 15 * day + 60).await;
    assert!(listed("gone")[0].baseline.is_some());

    drop(handle);
    within(tokio::task::spawn_blocking(move || writer.stop().join()))
        .await
        .expect("join")
        .expect("writer thread");
}

/// Writes `count` raw samples of series `id`, one a minute from `first`.
fn put_samples(tables: &mut WriteTables<'_>, id: u64, first: Timestamp, count: i64) {
    let record = anomalyd::store::SampleRecord {
        value: anomalyd::store::ValueRecord::Number(100.0),
        valid: true,
        healthy: true,
    };
    for minute in 0..count {
        let at = Timestamp::from_millis(first.as_millis() + minute * 60_000);
        tables.insert_sample(id, at, &record).expect("sample");
    }
}

fn count_samples(store: &Store, id: u64, from: Timestamp, to: Timestamp) -> usize {
    read::samples(store.database(), id, from, to, usize::MAX)
        .expect("samples")
        .len()
}

#[tokio::test]
async fn raw_sample_backlog_pruned_in_bounded_passes() {
    const DAY_MS: i64 = 24 * 3_600_000;
    const LIMIT: usize = 1_000;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(Store::open(dir.path()).expect("store"));
    let (_config_sender, config) = watch::channel(Arc::new(ConfigSnapshot::default()));

    // Without configuration every window is 7 days, so samples older than 7 days expire.
    let now = Timestamp::from_millis(1_767_312_000_000); // 2026-01-02T00:00:00Z
    let old = Timestamp::from_millis(now.as_millis() - 30 * DAY_MS);
    let recent = Timestamp::from_millis(now.as_millis() - 6 * DAY_MS);
    let keys = ["shop", "blog"].map(|system| anomalyd::series::SeriesKey {
        system: system.into(),
        healthcheck: "web".into(),
        environment: None,
        field_path: "collectors.healthcheck-http.request.responseTimeMs".into(),
    });
    let ids = {
        let tx = store.database().begin_write().expect("begin");
        let mut tables = WriteTables::open(&tx).expect("tables");
        let ids = keys
            .each_ref()
            .map(|key| tables.series_id(key).expect("series"));
        put_samples(&mut tables, ids[0], old, 1_700);
        put_samples(&mut tables, ids[1], old, 900);
        for id in ids {
            put_samples(&mut tables, id, recent, 50);
        }
        tables.finish().expect("finish");
        tx.commit().expect("commit");
        ids
    };
    let options = writer::WriterOptions {
        raw_samples_per_run: LIMIT,
        ..writer::WriterOptions::default()
    };
    let writer = writer::start(
        store.clone(),
        config,
        Arc::new(EventHub::default()),
        options,
    )
    .expect("writer");
    let handle = writer.handle();
    let expired_left = || {
        ids.iter()
            .map(|&id| {
                count_samples(
                    &store,
                    id,
                    old,
                    Timestamp::from_millis(recent.as_millis() - 1),
                )
            })
            .sum::<usize>()
    };

    // 2 600 expired samples: the analyzer run's pass deletes 1 000, and the writer follows up
    // with two more passes, 1 000 and 600, while its queue is empty.
    let at = Timestamp::from_millis(now.as_millis() + 3_600_000);
    within(handle.analyze(at)).await.expect("analyze");
    within(async {
        while expired_left() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // A follow-up pass is counted after its commit, shortly after the samples are gone.
    within(async {
        while handle.stats().snapshot().retention_follow_ups < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    within(handle.ping()).await.expect("ping");
    assert_eq!(handle.stats().snapshot().retention_follow_ups, 2);
    for id in ids {
        let unexpired = count_samples(&store, id, recent, Timestamp::from_millis(i64::MAX));
        assert_eq!(unexpired, 50, "series {id} lost unexpired samples");
    }

    drop(handle);
    within(tokio::task::spawn_blocking(move || writer.stop().join()))
        .await
        .expect("join")
        .expect("writer thread");
}

#[tokio::test]
async fn stale_series_forgotten_within_sample_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(Store::open(dir.path()).expect("store"));
    let (_config_sender, config) = watch::channel(Arc::new(ConfigSnapshot::default()));
    let options = writer::WriterOptions {
        raw_samples_per_run: 12,
        ..writer::WriterOptions::default()
    };
    let writer = writer::start(
        store.clone(),
        config,
        Arc::new(EventHub::default()),
        options,
    )
    .expect("writer");
    let handle = writer.handle();

    // 30 samples on day 0, then an analyzer run on day 15, when the series is stale. A pass
    // deletes at most 12 samples, and the series is forgotten only in a pass its samples fit in.
    learn(&handle, "gone", 0).await;
    let listed = || {
        let filter = read::SeriesFilter {
            system: Some("gone".into()),
            ..Default::default()
        };
        read::series(store.database(), &filter)
            .expect("series")
            .len()
    };
    let at = 1_767_312_000_000 + 15 * 86_400_000;
    within(handle.analyze(Timestamp::from_millis(at)))
        .await
        .expect("analyze");
    // Passes of 12, 12 and 6 samples. The third has room left, so it forgets the series.
    within(async {
        while listed() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    within(handle.ping()).await.expect("ping");
    assert_eq!(handle.stats().snapshot().retention_follow_ups, 2);

    drop(handle);
    within(tokio::task::spawn_blocking(move || writer.stop().join()))
        .await
        .expect("join")
        .expect("writer thread");
}
