use super::*;
use crate::engine::{Anomaly, Kind, RowDirection, State, Timestamp};
use crate::series::SeriesKey;

fn key() -> SeriesKey {
    SeriesKey {
        system: "shop".into(),
        healthcheck: "web".into(),
        environment: None,
        field_path: "collectors.healthcheck-http.request.responseTimeMs".into(),
    }
}

fn row(id: u64, started_ms: i64) -> Anomaly {
    Anomaly {
        id,
        kind: Kind::Spike,
        state: State::Suspicious,
        direction: RowDirection::Above,
        baseline_mean: Some(100.0),
        baseline_std_dev: Some(10.0),
        observed_value: "200".into(),
        deviation: 10.0,
        suspicious_run_count: 1,
        confirmation_threshold: 3,
        started_at: Timestamp::from_millis(started_ms),
        confirmed_at: None,
        recovered_at: None,
        recent_samples: Vec::new(),
        stable_drift_run_count: 0,
        self_resolved: false,
        suppression: None,
    }
}

fn set_stored_version(store: &Store, version: u64) {
    let tx = store.database().begin_write().unwrap();
    set_version(&tx, version).unwrap();
    tx.commit().unwrap();
}

#[test]
fn refuses_a_newer_file_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    set_stored_version(&store, SCHEMA_VERSION + 7);
    drop(store);

    let err = Store::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains(&format!("schema version {}", SCHEMA_VERSION + 7)),
        "{err}"
    );
    assert!(
        err.contains(&format!("version {SCHEMA_VERSION} this binary")),
        "{err}"
    );
}

#[test]
fn migrates_a_version_1_file_by_indexing_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    {
        let tx = store.database().begin_write().unwrap();
        let mut w = WriteTables::open(&tx).unwrap();
        let series_id = w.series_id(&key()).unwrap();
        w.put_anomaly(series_id, &row(1, 5_000)).unwrap();
        w.finish().unwrap();
        // A version 1 file has rows but no feed index.
        tx.delete_table(tables::ANOMALIES_BY_START).unwrap();
        set_version(&tx, 1).unwrap();
        tx.commit().unwrap();
    }
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    let query = read::AnomalyQuery {
        limit: 10,
        ..Default::default()
    };
    let page = read::anomalies(store.database(), &query).unwrap();
    assert_eq!(page.rows.len(), 1);
    assert_eq!(page.rows[0].row.id, 1);
    let tx = store.database().begin_write().unwrap();
    assert_eq!(stored_version(&tx).unwrap(), Some(SCHEMA_VERSION));
}

#[test]
fn feed_pages_newest_first_and_tracks_open_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tx = store.database().begin_write().unwrap();
    let mut w = WriteTables::open(&tx).unwrap();
    let series_id = w.series_id(&key()).unwrap();
    for id in 1..=5 {
        w.put_anomaly(series_id, &row(id, id as i64 * 1000))
            .unwrap();
    }
    let mut recovered = row(5, 5000);
    recovered.state = State::Recovered;
    w.put_anomaly(series_id, &recovered).unwrap();
    w.delete_anomaly(series_id, &row(4, 4000)).unwrap();
    w.finish().unwrap();
    tx.commit().unwrap();

    let mut query = read::AnomalyQuery {
        limit: 2,
        ..Default::default()
    };
    let first = read::anomalies(store.database(), &query).unwrap();
    let ids: Vec<u64> = first.rows.iter().map(|e| e.row.id).collect();
    assert_eq!(ids, vec![5, 3]);
    query.before = first.next;
    let second = read::anomalies(store.database(), &query).unwrap();
    let ids: Vec<u64> = second.rows.iter().map(|e| e.row.id).collect();
    assert_eq!(ids, vec![2, 1]);

    let snap = read::snapshot(store.database()).unwrap();
    // All rows share one (series, kind) slot; the last one written recovered and left it.
    assert!(snap.open_rows.is_empty());
}

#[test]
fn reopening_keeps_series_ids_and_counters() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tx = store.database().begin_write().unwrap();
    let mut w = WriteTables::open(&tx).unwrap();
    let id = w.series_id(&key()).unwrap();
    let anomaly_id = w.next_anomaly_id();
    w.finish().unwrap();
    tx.commit().unwrap();
    store.close().unwrap();

    let store = Store::open(dir.path()).unwrap();
    let tx = store.database().begin_write().unwrap();
    let mut w = WriteTables::open(&tx).unwrap();
    assert_eq!(w.series_id(&key()).unwrap(), id);
    assert_eq!(w.next_anomaly_id(), anomaly_id + 1);
}
