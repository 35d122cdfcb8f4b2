//! Retention of a raw-sample backlog through the writer thread: an analyzer run's retention pass
//! deletes at most `WriterOptions::raw_samples_per_run` expired samples, and the writer runs
//! further passes while idle. This measures the passes, the time to delete the whole backlog
//! and how long a queued job waits meanwhile.
//!
//! Run with `cargo bench --bench retention`.

use std::sync::Arc;
use std::time::Instant;

use anomalyd::config::ConfigSnapshot;
use anomalyd::engine::Timestamp;
use anomalyd::events::EventHub;
use anomalyd::series::SeriesKey;
use anomalyd::store::{SampleRecord, Store, ValueRecord, WriteTables, read};
use anomalyd::writer;
use tokio::sync::watch;

/// Backlog shapes as (series, expired samples per series): a few long backlogs, and many short
/// ones spread over more of the file.
const SHAPES: [(usize, i64); 2] = [(1_000, 1_000), (20_000, 60)];
const RECENT_PER_SERIES: i64 = 10;
const SERIES_PER_COMMIT: usize = 500;
const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;
/// 2026-01-02T00:00:00Z, when the first pass runs.
const NOW_MS: i64 = 1_767_312_000_000;
/// Start of the expired samples, 30 days before the first pass.
const OLD_MS: i64 = NOW_MS - 30 * DAY_MS;
/// Start of the recent samples, one day before the first pass.
const RECENT_MS: i64 = NOW_MS - DAY_MS;

fn key(series: usize) -> SeriesKey {
    SeriesKey {
        system: format!("system-{}", series / 10),
        healthcheck: "web".into(),
        environment: None,
        field_path: format!("collectors.healthcheck-http.request.f{}", series % 10),
    }
}

fn put_samples(tables: &mut WriteTables<'_>, id: u64, first_ms: i64, count: i64) {
    let record = SampleRecord {
        value: ValueRecord::Number(100.0),
        valid: true,
        healthy: true,
    };
    for minute in 0..count {
        let at = Timestamp::from_millis(first_ms + minute * MINUTE_MS);
        tables.insert_sample(id, at, &record).expect("sample");
    }
}

/// Writes the expired and recent samples of every series straight into the store and returns
/// the series ids.
fn populate(store: &Store, series_count: usize, expired_per_series: i64) -> Vec<u64> {
    let mut ids = Vec::with_capacity(series_count);
    for first in (0..series_count).step_by(SERIES_PER_COMMIT) {
        let tx = store.database().begin_write().expect("begin");
        {
            let mut tables = WriteTables::open(&tx).expect("tables");
            for series in first..first + SERIES_PER_COMMIT {
                let id = tables.series_id(&key(series)).expect("series");
                put_samples(&mut tables, id, OLD_MS, expired_per_series);
                put_samples(&mut tables, id, RECENT_MS, RECENT_PER_SERIES);
                ids.push(id);
            }
            tables.finish().expect("finish");
        }
        tx.commit().expect("commit");
    }
    ids
}

/// Counts the samples of every series taken in `[from, to]`.
fn count(store: &Store, ids: &[u64], from_ms: i64, to_ms: i64) -> usize {
    let (from, to) = (
        Timestamp::from_millis(from_ms),
        Timestamp::from_millis(to_ms),
    );
    ids.iter()
        .map(|&id| {
            read::samples(store.database(), id, from, to, usize::MAX)
                .expect("samples")
                .len()
        })
        .sum()
}

fn main() {
    for (series_count, expired_per_series) in SHAPES {
        run_shape(series_count, expired_per_series);
    }
}

fn run_shape(series_count: usize, expired_per_series: i64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(Store::open(dir.path()).expect("store"));
    let started = Instant::now();
    let ids = populate(&store, series_count, expired_per_series);
    let expired_total = series_count as i64 * expired_per_series;
    let file_mb = std::fs::metadata(store.path()).expect("file").len() as f64 / 1e6;
    println!(
        "stored {series_count} series x ({expired_per_series} expired + {RECENT_PER_SERIES} \
         recent) samples in {:.1} s ({file_mb:.0} MB file)",
        started.elapsed().as_secs_f64()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (_sender, config) = watch::channel(Arc::new(ConfigSnapshot::default()));
        let options = writer::WriterOptions::default();
        println!(
            "  {expired_total} expired samples, at most {} deleted per pass",
            options.raw_samples_per_run
        );
        let writer = writer::start(
            store.clone(),
            config,
            Arc::new(EventHub::default()),
            options,
        )
        .expect("writer");
        let handle = writer.handle();
        let started = Instant::now();
        handle
            .analyze(Timestamp::from_millis(NOW_MS))
            .await
            .expect("analyze");
        let first_pass = started.elapsed().as_secs_f64();
        // Heartbeats wait in the queue behind at most one follow-up pass.
        let mut slowest_ping = 0.0_f64;
        while count(&store, &ids, OLD_MS, RECENT_MS - 1) > 0 {
            let sent = Instant::now();
            handle.ping().await.expect("ping");
            slowest_ping = slowest_ping.max(sent.elapsed().as_secs_f64());
        }
        let drained = started.elapsed().as_secs_f64();
        handle.ping().await.expect("ping");
        let follow_ups = handle.stats().snapshot().retention_follow_ups;
        println!(
            "  analyzer run with the first pass: {first_pass:.3} s; {follow_ups} follow-up \
             passes; all deleted after {drained:.3} s ({:.0} samples/s, {:.3} s per pass)",
            expired_total as f64 / drained,
            drained / (follow_ups + 1) as f64
        );
        println!("  slowest heartbeat while draining: {slowest_ping:.3} s");
        let started = Instant::now();
        let at = Timestamp::from_millis(NOW_MS + 3_600_000);
        handle.analyze(at).await.expect("analyze");
        println!(
            "  next analyzer run, nothing expired: {:.3} s",
            started.elapsed().as_secs_f64()
        );
        let recent = count(&store, &ids, RECENT_MS, NOW_MS + DAY_MS);
        let expected = series_count * RECENT_PER_SERIES as usize;
        assert_eq!(recent, expected, "recent samples kept");
        drop(handle);
        tokio::task::spawn_blocking(move || writer.stop().join())
            .await
            .expect("join")
            .expect("writer");
    });
}
