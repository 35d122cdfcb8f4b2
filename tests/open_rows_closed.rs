//! Open anomaly rows that no sample or baseline would move again, closed by the analyzer run
//! through the writer. The cases are a field disabled after its row opened and a series that
//! went silent. A suspicious row is cleared, and a confirmed one recovers without a
//! notification.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use anomalyd::config::{
    ConfigSnapshot, Notifier, NotifierFilters, NotifierFormat, Secret, Source, System,
};
use anomalyd::engine::{AssignmentSettings, FieldOverride, State, Timestamp};
use anomalyd::events::EventHub;
use anomalyd::ingest::{self, Framing};
use anomalyd::notify::{self, DeliveryFilter};
use anomalyd::store::{Store, read};
use anomalyd::writer::{self, WriterHandle, WriterThread};
use serde_json::Value as Json;
use support::{LATENCY_FIELD, latency, within};
use tokio::sync::watch;

/// 2026-01-02T00:00:00Z, the time of minute 0 in `support::latency`.
const START_MS: i64 = 1_767_312_000_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Builds a configuration with one notifier for every kind. No delivery worker runs in these
/// tests, so its url is never requested.
fn notifying_config() -> ConfigSnapshot {
    let notifier = Notifier {
        name: "hook".to_owned(),
        url: Secret::new("http://127.0.0.1:9/unused"),
        headers: BTreeMap::new(),
        timeout_secs: 10,
        format: NotifierFormat::Json,
        filters: NotifierFilters::default(),
        source: Source::Api,
    };
    let mut config = ConfigSnapshot::default();
    config.notifiers.insert(notifier.name.clone(), notifier);
    config
}

/// Adds a system `shop` whose assignment of healthcheck `web` disables the latency field, as
/// the settings API or a GitOps override does.
fn with_latency_disabled(mut config: ConfigSnapshot) -> ConfigSnapshot {
    let disabled = FieldOverride {
        enabled: Some(false),
        ..FieldOverride::default()
    };
    let settings = AssignmentSettings {
        field_overrides: BTreeMap::from([(LATENCY_FIELD.to_owned(), disabled)]),
        ..AssignmentSettings::default()
    };
    let system = System {
        name: "shop".to_owned(),
        title: None,
        description: None,
        healthchecks: vec!["web".to_owned()],
        anomaly: BTreeMap::from([("web".to_owned(), settings)]),
        healthcheck_options: BTreeMap::new(),
        source: Source::Api,
    };
    config.systems.insert(system.name.clone(), system);
    config
}

async fn ingest_latencies(handle: &WriterHandle, values: &[(u32, f64)]) {
    let lines: Vec<String> = values
        .iter()
        .map(|&(minute, ms)| latency("shop", minute, ms))
        .collect();
    let results = ingest::parse(lines.join("\n").as_bytes(), Framing::Ndjson).expect("parse");
    within(handle.ingest(results)).await.expect("ingest");
}

/// Learns a baseline around 100 ms from minutes 0 to 29, then sends `spikes` results at 1000 ms
/// from minute 30 on. The default confirmation window is 3.
async fn open_spike(handle: &WriterHandle, spikes: u32) {
    let learning: Vec<(u32, f64)> = (0..30).map(|i| (i, 100.0 + f64::from(i % 4))).collect();
    ingest_latencies(handle, &learning).await;
    let spiking: Vec<(u32, f64)> = (30..30 + spikes).map(|i| (i, 1000.0)).collect();
    ingest_latencies(handle, &spiking).await;
}

/// Returns the one open spike row of `shop`.
fn open_row(store: &Store) -> anomalyd::engine::Anomaly {
    let snapshot = read::snapshot(store.database()).expect("snapshot");
    assert_eq!(snapshot.open_rows.len(), 1, "{:?}", snapshot.open_rows);
    snapshot.open_rows[0].1.clone()
}

fn outbox_transitions(store: &Store) -> Vec<String> {
    let filter = DeliveryFilter {
        limit: 100,
        ..DeliveryFilter::default()
    };
    notify::list(store.database(), &filter)
        .expect("outbox")
        .into_iter()
        .map(|(_, record)| {
            let body: Json = serde_json::from_str(&record.payload).expect("payload");
            body["transition"].as_str().expect("transition").to_owned()
        })
        .collect()
}

/// Returns the `change` of every state-changed event about anomaly `id`, in order.
fn state_changes(events: &EventHub, id: u64) -> Vec<String> {
    events
        .since(0)
        .iter()
        .filter(|event| event.name == "state-changed")
        .map(|event| serde_json::from_str::<Json>(&event.data).expect("event data"))
        .filter(|data| data["anomaly"]["id"] == id)
        .map(|data| data["change"].as_str().expect("change").to_owned())
        .collect()
}

/// A writer on a fresh data file, with a configuration the test can replace.
struct Service {
    store: Arc<Store>,
    config: watch::Sender<Arc<ConfigSnapshot>>,
    events: Arc<EventHub>,
    handle: WriterHandle,
    writer: WriterThread,
    _dir: tempfile::TempDir,
}

impl Service {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(Store::open(dir.path()).expect("store"));
        let (config, feed) = watch::channel(Arc::new(notifying_config()));
        let events = Arc::new(EventHub::default());
        let options = writer::WriterOptions::default();
        let writer = writer::start(store.clone(), feed, events.clone(), options).expect("writer");
        Self {
            store,
            config,
            events,
            handle: writer.handle(),
            writer,
            _dir: dir,
        }
    }

    async fn analyze(&self, at: Timestamp) {
        within(self.handle.analyze(at)).await.expect("analyze");
    }

    async fn stop(self) {
        drop(self.handle);
        let writer = self.writer;
        within(tokio::task::spawn_blocking(move || writer.stop().join()))
            .await
            .expect("join")
            .expect("writer thread");
    }
}

#[tokio::test]
async fn disabled_field_recovers_confirmed_silently() {
    let service = Service::start();

    open_spike(&service.handle, 3).await;
    let row = open_row(&service.store);
    assert_eq!(row.state, State::Anomaly);
    assert_eq!(outbox_transitions(&service.store), ["confirmed"]);

    service
        .config
        .send_replace(Arc::new(with_latency_disabled(notifying_config())));
    let at = Timestamp::from_millis(START_MS + HOUR_MS);
    service.analyze(at).await;

    let closed = read::anomaly(service.store.database(), row.id)
        .expect("read")
        .expect("the recovered row is kept");
    assert_eq!(closed.row.state, State::Recovered);
    assert_eq!(closed.row.recovered_at, Some(at));
    assert!(!closed.row.self_resolved);
    let snapshot = read::snapshot(service.store.database()).expect("snapshot");
    assert!(snapshot.open_rows.is_empty(), "{:?}", snapshot.open_rows);
    assert_eq!(
        outbox_transitions(&service.store),
        ["confirmed"],
        "closing a disabled field's anomaly must not notify"
    );
    assert_eq!(
        state_changes(&service.events, row.id),
        ["suspicious", "anomaly", "recovered"]
    );

    // A later run finds nothing left to close.
    let later = Timestamp::from_millis(at.as_millis() + HOUR_MS);
    service.analyze(later).await;
    assert_eq!(state_changes(&service.events, row.id).len(), 3);

    service.stop().await;
}

#[tokio::test]
async fn disabled_field_clears_suspicious() {
    let service = Service::start();

    open_spike(&service.handle, 1).await;
    let row = open_row(&service.store);
    assert_eq!(row.state, State::Suspicious);

    service
        .config
        .send_replace(Arc::new(with_latency_disabled(notifying_config())));
    let at = Timestamp::from_millis(START_MS + HOUR_MS);
    service.analyze(at).await;

    assert!(
        read::anomaly(service.store.database(), row.id)
            .expect("read")
            .is_none(),
        "a cleared row is deleted"
    );
    let snapshot = read::snapshot(service.store.database()).expect("snapshot");
    assert!(snapshot.open_rows.is_empty(), "{:?}", snapshot.open_rows);
    assert!(outbox_transitions(&service.store).is_empty());
    assert_eq!(
        state_changes(&service.events, row.id),
        ["suspicious", "cleared"]
    );

    service.stop().await;
}

#[tokio::test]
async fn silent_series_recovers_then_forgotten() {
    let service = Service::start();
    let listed = || {
        let filter = read::SeriesFilter {
            system: Some("shop".into()),
            ..Default::default()
        };
        read::series(service.store.database(), &filter).expect("series")
    };

    open_spike(&service.handle, 3).await;
    let row = open_row(&service.store);
    assert_eq!(row.state, State::Anomaly);
    let series_id = listed()[0].id;

    // The default window is 7 days, and the series reported during the first hour only. On
    // day 14 it was last seen a little less than twice its window ago, so it is not stale yet.
    let day_14 = Timestamp::from_millis(START_MS + 14 * DAY_MS);
    service.analyze(day_14).await;
    assert_eq!(open_row(&service.store).state, State::Anomaly);
    assert_eq!(listed().len(), 1, "a series with an open row is kept");

    let day_15 = Timestamp::from_millis(START_MS + 15 * DAY_MS);
    service.analyze(day_15).await;
    let closed = read::anomaly(service.store.database(), row.id)
        .expect("read")
        .expect("the recovered row is kept");
    assert_eq!(closed.row.state, State::Recovered);
    assert_eq!(closed.row.recovered_at, Some(day_15));
    assert_eq!(outbox_transitions(&service.store), ["confirmed"]);
    assert_eq!(
        state_changes(&service.events, row.id),
        ["suspicious", "anomaly", "recovered"]
    );
    // The run's retention pass comes after the close and finds no open row, so it deletes the
    // series' learned data. Its registry entry stays, so the recovered row still names it.
    assert!(listed().is_empty(), "stale series still listed");
    let snapshot = read::snapshot(service.store.database()).expect("snapshot");
    assert!(
        !snapshot.baselines.contains_key(&series_id),
        "stale baseline kept"
    );
    assert_eq!(closed.series.system, "shop");

    // A later run changes nothing more.
    let day_16 = Timestamp::from_millis(START_MS + 16 * DAY_MS);
    service.analyze(day_16).await;
    assert_eq!(state_changes(&service.events, row.id).len(), 3);
    let recovered = read::anomaly(service.store.database(), row.id).expect("read");
    assert!(recovered.is_some(), "the recovered row is kept");

    service.stop().await;
}
