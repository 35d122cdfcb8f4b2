//! Notifications: which transitions notify whom, the durable outbox written in the same
//! transaction as the state change, mutes, and the worker that delivers the outbox.

mod outbox;
mod payload;
mod worker;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::{ConfigSnapshot, Notifier, NotifierFilters};
use crate::detector;
use crate::engine::{Anomaly, NotificationKind};
use crate::series::SeriesKey;
use crate::store::Result;

pub use outbox::{
    Attempt, DeliveryFilter, DeliveryState, DueRows, MAX_OUTBOX_ROWS, Mute, OutboxRecord,
    OutboxTables, due, list, mutes, pending_count,
};
pub use payload::{Band, BaselineSummary, Notification, RuleSummary, field_link, idempotency_key};
pub use worker::{DeliveryOptions, DeliveryWorker};

/// A transition that may notify, collected while the writer applies a group.
#[derive(Debug, Clone)]
pub struct Transitioned {
    pub key: SeriesKey,
    pub row: Anomaly,
    pub kind: NotificationKind,
}

/// Counters of the delivery worker, for `/metrics`. The outbox depth is read from the file
/// with [`pending_count`].
#[derive(Debug, Default)]
pub struct DeliveryMetrics {
    /// Requests sent, successful or not.
    pub attempts: AtomicU64,
    pub delivered: AtomicU64,
    /// Rows given up after the maximum age.
    pub failed: AtomicU64,
}

impl DeliveryMetrics {
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

/// Writes one outbox row per matching notifier for a transition; returns how many. Nothing is
/// written when the field's effective `notify` is off, the row is suppressed, or a mute covers
/// the field or its system.
pub fn enqueue(
    tables: &mut OutboxTables<'_>,
    transitioned: &Transitioned,
    config: &ConfigSnapshot,
    now_ms: i64,
) -> Result<usize> {
    let Transitioned { key, row, kind } = transitioned;
    let settings = detector::effective_settings(config, key);
    let skip_reason = if !settings.notify.value {
        Some("notify is off")
    } else if row.is_suppressed() {
        Some("the anomaly is suppressed")
    } else if tables.is_muted(&key.system, &key.field_path)? {
        Some("muted")
    } else {
        None
    };
    if let Some(reason) = skip_reason {
        tracing::debug!(anomaly_id = row.id, system = %key.system, field = %key.field_path, reason, "notification not sent");
        return Ok(0);
    }
    let notification = Notification::new(key, row, *kind, &settings);
    let body = serde_json::to_string(&notification).expect("a notification serializes to JSON");
    let mut written = 0;
    // An unusable notifier still gets its rows, which wait until its secret is set again.
    let usable = config.notifiers.iter().map(|(name, n)| (name, &n.filters));
    let unusable = config
        .unusable_notifiers
        .iter()
        .map(|(name, n)| (name, &n.filters));
    for (name, _) in usable
        .chain(unusable)
        .filter(|(_, filters)| passes(filters, &notification))
    {
        let record = OutboxRecord {
            notifier: name.clone(),
            anomaly_id: row.id,
            idempotency_key: notification.idempotency_key.clone(),
            payload: body.clone(),
            state: DeliveryState::Pending,
            attempts: 0,
            created_at_ms: now_ms,
            next_attempt_at_ms: now_ms,
            last_attempt_at_ms: None,
            finished_at_ms: None,
            last_error: None,
        };
        tables.enqueue(&record)?;
        written += 1;
    }
    Ok(written)
}

/// Returns whether a notifier's filters let a notification through.
pub fn accepts(notifier: &Notifier, notification: &Notification) -> bool {
    passes(&notifier.filters, notification)
}

fn passes(filters: &NotifierFilters, notification: &Notification) -> bool {
    let system = filters.systems.is_empty() || filters.systems.contains(&notification.system);
    let kind = filters.kinds.is_empty() || filters.kinds.contains(&notification.kind);
    system && kind && notification.importance >= filters.min_importance
}

/// Parses a duration written as a whole number with a unit: `s`, `m`, `h` or `d`.
pub fn parse_duration(text: &str) -> std::result::Result<std::time::Duration, String> {
    let invalid = || {
        format!("invalid duration {text:?}; write a number and a unit, such as 90s, 30m, 24h or 2d")
    };
    let unit_at = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(invalid)?;
    let (number, unit) = text.split_at(unit_at);
    let count: u64 = number.parse().map_err(|_| invalid())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(invalid()),
    };
    if count == 0 {
        return Err(format!("duration {text:?} must be greater than zero"));
    }
    Ok(std::time::Duration::from_secs(count.saturating_mul(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parse_duration_cases() {
        let cases = [
            ("90s", Some(90)),
            ("30m", Some(1800)),
            ("24h", Some(86_400)),
            ("2d", Some(172_800)),
            ("0h", None),
            ("h", None),
            ("24", None),
            ("24x", None),
            ("", None),
        ];
        for (text, expected) in cases {
            let parsed = parse_duration(text).ok();
            assert_eq!(parsed, expected.map(Duration::from_secs), "{text}");
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let mut options = DeliveryOptions::new("http://127.0.0.1");
        options.backoff_base = Duration::from_secs(1);
        options.backoff_max = Duration::from_secs(300);
        for (attempts, full) in [(1, 1), (2, 2), (3, 4), (9, 256), (10, 300), (40, 300)] {
            let wait = options.backoff(attempts);
            let full = Duration::from_secs(full);
            assert!(wait <= full, "attempt {attempts}: {wait:?} > {full:?}");
            assert!(
                wait >= full / 2,
                "attempt {attempts}: {wait:?} < half of {full:?}"
            );
        }
    }

    #[test]
    fn idempotency_key_per_transition() {
        let confirmed = idempotency_key(7, NotificationKind::Confirmed);
        let recovered = idempotency_key(7, NotificationKind::Recovered);
        assert_eq!(confirmed, "anomalyd-7-confirmed");
        assert_eq!(recovered, "anomalyd-7-recovered");
        assert_ne!(idempotency_key(8, NotificationKind::Confirmed), confirmed);
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;
    use crate::config::{Importance, NotifierFilters, NotifierFormat, Secret, Source};
    use crate::engine::Kind;

    fn notification(system: &str, kind: Kind, importance: Importance) -> Notification {
        let json = serde_json::json!({
            "idempotencyKey": "k", "transition": "confirmed", "importance": importance,
            "anomalyId": 1, "system": system, "healthcheck": "web", "environment": null,
            "field": "f", "kind": kind, "state": "anomaly", "direction": "above",
            "observedValue": "1", "baseline": {"mean": null, "stdDev": null},
            "deviation": null, "deviationUnbounded": false,
            "band": {"lower": null, "upper": null},
            "rule": {"direction": null, "sensitivity": 1.0, "confirmationWindow": 3,
                     "driftThreshold": 2.0, "minAbsoluteDelta": 0.0, "minRelativeDelta": 0.0},
            "startedAt": "t", "confirmedAt": null, "recoveredAt": null, "summary": ""
        });
        serde_json::from_value(json).expect("notification")
    }

    fn notifier(filters: NotifierFilters) -> Notifier {
        Notifier {
            name: "n".to_owned(),
            url: Secret::new("http://127.0.0.1:1"),
            headers: Default::default(),
            timeout_secs: 10,
            format: NotifierFormat::Json,
            filters,
            source: Source::Api,
        }
    }

    #[test]
    fn filters_cases() {
        let all = notifier(NotifierFilters::default());
        let shop_drift_warning = notifier(NotifierFilters {
            systems: vec!["shop".to_owned()],
            kinds: vec![Kind::Drift],
            min_importance: Importance::Warning,
        });
        let cases = [
            (&all, "shop", Kind::Spike, Importance::Info, true),
            (
                &shop_drift_warning,
                "shop",
                Kind::Drift,
                Importance::Warning,
                true,
            ),
            (
                &shop_drift_warning,
                "shed",
                Kind::Drift,
                Importance::Warning,
                false,
            ),
            (
                &shop_drift_warning,
                "shop",
                Kind::Spike,
                Importance::Warning,
                false,
            ),
            (
                &shop_drift_warning,
                "shop",
                Kind::Drift,
                Importance::Info,
                false,
            ),
        ];
        for (notifier, system, kind, importance, expected) in cases {
            let n = notification(system, kind, importance);
            assert_eq!(
                accepts(notifier, &n),
                expected,
                "{system} {kind:?} {importance:?}"
            );
        }
    }
}
