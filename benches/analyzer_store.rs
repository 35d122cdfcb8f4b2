//! One analyzer run over hourly summaries stored in redb, through the writer thread: reading and
//! decoding every summary in each series' window, merging, storing the baselines and pruning.
//!
//! Run with `cargo bench --bench analyzer_store`.

use std::sync::Arc;
use std::time::Instant;

use anomalyd::config::ConfigSnapshot;
use anomalyd::engine::{Sample, Summary, Timestamp};
use anomalyd::events::EventHub;
use anomalyd::series::SeriesKey;
use anomalyd::store::{Store, WriteTables};
use anomalyd::writer;
use tokio::sync::watch;

const SERIES: usize = 10_000;
const HOURS: i64 = 168;
const HOUR_MS: i64 = 3_600_000;
/// 2026-01-02T00:00:00Z, the first stored hour.
const START_MS: i64 = 1_767_312_000_000;
const SERIES_PER_COMMIT: usize = 100;

/// Builds an hour of 60 integer latencies around 100 ms; eight patterns are shared by all series.
fn hour_summary(pattern: usize, hour: i64) -> Summary {
    let samples: Vec<Sample> = (0..60)
        .map(|minute| Sample::Number((95 + (minute + hour as usize + pattern) % 21) as f64))
        .collect();
    Summary::of(&samples)
}

fn key(series: usize) -> SeriesKey {
    SeriesKey {
        system: format!("system-{}", series / 10),
        healthcheck: "web".into(),
        environment: None,
        field_path: format!("collectors.healthcheck-http.request.f{}", series % 10),
    }
}

/// Writes `SERIES` × `HOURS` hourly summaries straight into the store.
fn populate(store: &Store) {
    let patterns: Vec<Vec<Summary>> = (0..8)
        .map(|p| (0..HOURS).map(|h| hour_summary(p, h)).collect())
        .collect();
    for first in (0..SERIES).step_by(SERIES_PER_COMMIT) {
        let tx = store.database().begin_write().expect("begin");
        {
            let mut tables = WriteTables::open(&tx).expect("tables");
            for series in first..first + SERIES_PER_COMMIT {
                let id = tables.series_id(&key(series)).expect("series");
                for (hour, summary) in patterns[series % 8].iter().enumerate() {
                    let start = Timestamp::from_millis(START_MS + hour as i64 * HOUR_MS);
                    tables.put_summary(id, start, summary).expect("summary");
                }
            }
            tables.finish().expect("finish");
        }
        tx.commit().expect("commit");
    }
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(Store::open(dir.path()).expect("store"));
    let started = Instant::now();
    populate(&store);
    let file_mb = std::fs::metadata(store.path()).expect("file").len() as f64 / 1e6;
    println!(
        "stored {SERIES} series x {HOURS} hourly summaries in {:.1} s ({file_mb:.0} MB file)",
        started.elapsed().as_secs_f64()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (_sender, config) = watch::channel(Arc::new(ConfigSnapshot::default()));
        let started = Instant::now();
        let writer = writer::start(
            store.clone(),
            config,
            Arc::new(EventHub::default()),
            writer::WriterOptions::default(),
        )
        .expect("writer");
        println!(
            "  writer start (detector restore): {:.2} s",
            started.elapsed().as_secs_f64()
        );

        let at = Timestamp::from_millis(START_MS + HOURS * HOUR_MS);
        let started = Instant::now();
        writer.handle().analyze(at).await.expect("analyze");
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "  analyzer run through the writer: {elapsed:.2} s, {:.0} µs per series",
            elapsed * 1e6 / SERIES as f64
        );
        tokio::task::spawn_blocking(move || writer.stop().join())
            .await
            .expect("join")
            .expect("writer");
    });
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let peak = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("VmHWM: unknown");
    println!(
        "  peak resident memory {}",
        peak.trim_start_matches("VmHWM:").trim()
    );
}
