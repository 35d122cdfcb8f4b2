//! Drift notifications through the writer: the analyzer run that confirms a drift writes its
//! outbox row in the same transaction, with the drift transition and importance.

mod common;
mod support;

use std::sync::Arc;

use anomalyd::config::{Notifier, NotifierFilters, NotifierFormat, Secret, Source};
use anomalyd::engine::{Direction, FieldOverride, Kind, Timestamp, Value};
use anomalyd::events::EventHub;
use anomalyd::notify::{self, DeliveryFilter, Notification};
use anomalyd::series::Status;
use anomalyd::store::Store;
use anomalyd::writer;
use common::{HOUR_MS, config, ramp, result};
use support::within;
use tokio::sync::watch;

/// Builds a notifier that receives drift only. No delivery worker runs here, so its url is never
/// requested.
fn drift_only_notifier() -> Notifier {
    Notifier {
        name: "drift".to_owned(),
        url: Secret::new("http://127.0.0.1:9/unused"),
        headers: Default::default(),
        timeout_secs: 10,
        format: NotifierFormat::Json,
        filters: NotifierFilters {
            kinds: vec![Kind::Drift],
            ..NotifierFilters::default()
        },
        source: Source::Api,
    }
}

#[tokio::test]
async fn confirmed_drift_writes_outbox_row() {
    let mut config = config(
        "1h",
        FieldOverride {
            direction: Some(Direction::Deviation),
            ..FieldOverride::default()
        },
    );
    let notifier = drift_only_notifier();
    config.notifiers.insert(notifier.name.clone(), notifier);
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(Store::open(dir.path()).expect("store"));
    let (_config_sender, feed) = watch::channel(Arc::new(config));
    let writer = writer::start(
        store.clone(),
        feed,
        Arc::new(EventHub::default()),
        writer::WriterOptions::default(),
    )
    .expect("writer");
    let handle = writer.handle();

    // Each hour contains a steep ramp. With a one-hour window the run after it sees it as drift.
    for hour in 0..2 {
        let results = ramp(100, 100.0, 1.5)
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let at_ms = hour * HOUR_MS + i as i64 * 30_000;
                result("shop", at_ms, Status::Healthy, Value::Number(v))
            })
            .collect();
        within(handle.ingest(results)).await.expect("ingest");
        let at = Timestamp::from_millis((hour + 1) * HOUR_MS);
        within(handle.analyze(at)).await.expect("analyze");
    }

    let filter = DeliveryFilter {
        limit: 10,
        ..DeliveryFilter::default()
    };
    let rows = notify::list(store.database(), &filter).expect("list");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let record = &rows[0].1;
    assert_eq!(record.notifier, "drift");
    let body: Notification = serde_json::from_str(&record.payload).expect("payload");
    assert_eq!(body.transition, "drift-confirmed");
    assert_eq!(body.kind, Kind::Drift);
    assert_eq!(record.idempotency_key, body.idempotency_key);
    assert!(body.band.upper.is_some());

    drop(handle);
    within(tokio::task::spawn_blocking(move || writer.stop().join()))
        .await
        .expect("join")
        .expect("writer thread");
}
