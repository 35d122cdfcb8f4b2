//! The notification body: the JSON document a webhook receives, and its one-line Slack form.

use serde::{Deserialize, Serialize};

use crate::config::Importance;
use crate::engine::{
    Anomaly, Direction, EffectiveSettings, Kind, NotificationKind, RowDirection, Rule, State,
    drift_band, spike_band,
};
use crate::series::SeriesKey;
use crate::views::rfc3339;

/// One notification as sent to a JSON webhook. It is stored in the outbox when the state
/// change commits, so a retry after a restart sends the same body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Stable per anomaly and transition; also sent as the `Idempotency-Key` header.
    pub idempotency_key: String,
    /// `confirmed`, `recovered`, `drift-confirmed` or `drift-recovered`.
    pub transition: String,
    pub importance: Importance,
    pub anomaly_id: u64,
    pub system: String,
    pub healthcheck: String,
    pub environment: Option<String>,
    pub field: String,
    pub kind: Kind,
    pub state: State,
    pub direction: RowDirection,
    /// Latest observed value (spike) or window mean (drift), as stored. On a recovery it is the
    /// value that recovered the anomaly.
    pub observed_value: String,
    pub baseline: BaselineSummary,
    /// Distance of `observed_value` from the baseline in standard deviations; `None` when
    /// unbounded. A recovery of drift or of a categorical field has `None` too, because drift
    /// deviation measures the trend rather than the window mean.
    pub deviation: Option<f64>,
    pub deviation_unbounded: bool,
    /// The deviation stored on the anomaly: of its last anomalous value (spike) or its last
    /// trend reading (drift). It equals `deviation` for a confirmation and keeps the anomaly's
    /// size on a recovery. `None` when unbounded. The peak deviation is not stored.
    #[serde(default)]
    pub anomaly_deviation: Option<f64>,
    #[serde(default)]
    pub anomaly_deviation_unbounded: bool,
    /// True when the anomaly recovered by settling at a new level rather than by returning into
    /// the band.
    #[serde(default)]
    pub self_resolved: bool,
    pub band: Band,
    pub rule: RuleSummary,
    pub started_at: String,
    pub confirmed_at: Option<String>,
    pub recovered_at: Option<String>,
    /// The field on the settings page; filled in by the delivery worker from `--public-url`.
    #[serde(default)]
    pub link: Option<String>,
    /// A readable one-line summary, the same text the Slack format sends.
    pub summary: String,
}

/// Mean and standard deviation of the baseline the anomaly was measured against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BaselineSummary {
    pub mean: Option<f64>,
    pub std_dev: Option<f64>,
}

/// The band the detector judged against, on the side(s) the direction watches. For a spike it
/// is the σ band widened to the practical-significance floors (the engine's `spike_band`). For
/// drift it is the baseline mean ± the change across the window that counts as drift
/// (`drift_band`). Both are `None` for categorical fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Band {
    pub lower: Option<f64>,
    pub upper: Option<f64>,
}

/// The effective rule of the field when the transition happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleSummary {
    pub direction: Option<Direction>,
    pub sensitivity: f64,
    pub confirmation_window: u32,
    pub drift_threshold: f64,
    pub min_absolute_delta: f64,
    pub min_relative_delta: f64,
}

/// Returns the transition's name as used in payloads and idempotency keys.
pub fn transition_name(kind: NotificationKind) -> &'static str {
    match kind {
        NotificationKind::Confirmed => "confirmed",
        NotificationKind::Recovered => "recovered",
        NotificationKind::DriftConfirmed => "drift-confirmed",
        NotificationKind::DriftRecovered => "drift-recovered",
    }
}

/// Returns the importance of a transition: confirmations warn, recoveries inform.
pub fn importance(kind: NotificationKind) -> Importance {
    match kind {
        NotificationKind::Confirmed | NotificationKind::DriftConfirmed => Importance::Warning,
        NotificationKind::Recovered | NotificationKind::DriftRecovered => Importance::Info,
    }
}

/// Returns the idempotency key of one transition of one anomaly. The engine's state machine
/// moves a row through confirmed and recovered once each, so a key names one notification.
pub fn idempotency_key(anomaly_id: u64, kind: NotificationKind) -> String {
    format!("anomalyd-{anomaly_id}-{}", transition_name(kind))
}

impl Notification {
    /// Builds the notification of one transition from the row and the field's settings.
    pub fn new(
        key: &SeriesKey,
        row: &Anomaly,
        kind: NotificationKind,
        settings: &EffectiveSettings,
    ) -> Self {
        let unbounded = row.deviation == f64::INFINITY;
        let anomaly_deviation = (!unbounded && row.deviation.is_finite()).then_some(row.deviation);
        let recovery = matches!(
            kind,
            NotificationKind::Recovered | NotificationKind::DriftRecovered
        );
        let (deviation, deviation_unbounded) = if recovery {
            (recovered_deviation(row), false)
        } else {
            (anomaly_deviation, unbounded)
        };
        let mut notification = Self {
            idempotency_key: idempotency_key(row.id, kind),
            transition: transition_name(kind).to_owned(),
            importance: importance(kind),
            anomaly_id: row.id,
            system: key.system.clone(),
            healthcheck: key.healthcheck.clone(),
            environment: key.environment.clone(),
            field: key.field_path.clone(),
            kind: row.kind,
            state: row.state,
            direction: row.direction,
            observed_value: row.observed_value.clone(),
            baseline: BaselineSummary {
                mean: row.baseline_mean,
                std_dev: row.baseline_std_dev,
            },
            deviation,
            deviation_unbounded,
            anomaly_deviation,
            anomaly_deviation_unbounded: unbounded,
            self_resolved: row.self_resolved,
            band: band(row, settings),
            rule: RuleSummary {
                direction: settings.direction.value,
                sensitivity: settings.sensitivity.value,
                confirmation_window: settings.confirmation_window.value,
                drift_threshold: settings.drift_threshold.value,
                min_absolute_delta: settings.min_absolute_delta.value,
                min_relative_delta: settings.min_relative_delta.value,
            },
            started_at: rfc3339(row.started_at),
            confirmed_at: row.confirmed_at.map(rfc3339),
            recovered_at: row.recovered_at.map(rfc3339),
            link: None,
            summary: String::new(),
        };
        notification.summary = notification.summary_line();
        notification
    }

    /// Returns a readable line such as
    /// `[warning] shop/http latency spike confirmed: 1000 above baseline 103 ± 2.8 (320.1σ)` or
    /// `[info] shop/http latency spike recovered: 104 is back within the band, 0.4σ from
    /// baseline 103 ± 2.8 (last anomalous value 320.1σ)`.
    pub fn summary_line(&self) -> String {
        let environment = self
            .environment
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        let kind = match self.kind {
            Kind::Spike => "spike",
            Kind::Drift => "drift",
        };
        let importance = match self.importance {
            Importance::Warning => "warning",
            Importance::Info => "info",
        };
        let detail = if self.state == State::Recovered {
            self.recovery_detail()
        } else {
            self.confirmation_detail()
        };
        format!(
            "[{importance}] {}/{}{environment} {} {kind} {detail}",
            self.system, self.healthcheck, self.field
        )
    }

    /// Describes a confirmation: the anomalous value, its side of the baseline and its distance.
    fn confirmation_detail(&self) -> String {
        let direction = match self.direction {
            RowDirection::Above => "above",
            RowDirection::Below => "below",
            RowDirection::Changed => "changed from",
        };
        let distance = match self.deviation {
            Some(d) => format!(" ({}σ)", round(d)),
            None if self.deviation_unbounded => " (unbounded σ)".to_owned(),
            None => String::new(),
        };
        format!(
            "confirmed: {} {direction} {}{distance}",
            self.observed_value,
            self.baseline_text()
        )
    }

    /// Describes a recovery: the recovering value and its own distance from the baseline, how
    /// it recovered, and the size of the anomaly before it.
    fn recovery_detail(&self) -> String {
        let value = &self.observed_value;
        let outcome = match (self.kind, self.self_resolved) {
            (_, true) => "settled at a new level",
            (Kind::Spike, false) if self.deviation.is_some() => "is back within the band",
            (Kind::Spike, false) => "is no longer anomalous",
            (Kind::Drift, false) => "the trend is back within the drift band",
        };
        let state = match (self.kind, self.deviation) {
            (Kind::Spike, Some(d)) => {
                format!(
                    "{value} {outcome}, {}σ from {}",
                    round(d),
                    self.baseline_text()
                )
            }
            (Kind::Spike, None) => format!("{value} {outcome}"),
            (Kind::Drift, _) => format!(
                "{outcome}, window mean {value} against {}",
                self.baseline_text()
            ),
        };
        let before = match self.kind {
            Kind::Spike => "last anomalous value",
            Kind::Drift => "last trend reading",
        };
        let anomaly = match self.anomaly_deviation {
            Some(d) => format!(" ({before} {}σ)", round(d)),
            None if self.anomaly_deviation_unbounded => format!(" ({before} unbounded σ)"),
            None => String::new(),
        };
        format!("recovered: {state}{anomaly}")
    }

    fn baseline_text(&self) -> String {
        match (self.baseline.mean, self.baseline.std_dev) {
            (Some(mean), Some(sd)) => format!("baseline {} ± {}", round(mean), round(sd)),
            _ => "baseline".to_owned(),
        }
    }

    /// Returns the Slack incoming-webhook body: `{"text": <summary and link>}`.
    pub fn slack_body(&self) -> serde_json::Value {
        let text = match &self.link {
            Some(link) => format!("{} <{link}|open>", self.summary),
            None => self.summary.clone(),
        };
        serde_json::json!({ "text": text })
    }
}

/// Builds the page link of a field: `/#/field?system=..&healthcheck=..&field=..[&environment=..]`.
pub fn field_link(public_url: &str, n: &Notification) -> String {
    let mut link = format!(
        "{}/#/field?system={}&healthcheck={}&field={}",
        public_url.trim_end_matches('/'),
        encode(&n.system),
        encode(&n.healthcheck),
        encode(&n.field)
    );
    if let Some(environment) = &n.environment {
        link.push_str("&environment=");
        link.push_str(&encode(environment));
    }
    link
}

fn band(row: &Anomaly, settings: &EffectiveSettings) -> Band {
    let (Some(mean), Some(std_dev), Some(direction)) = (
        row.baseline_mean,
        row.baseline_std_dev,
        settings.direction.value,
    ) else {
        return Band {
            lower: None,
            upper: None,
        };
    };
    // Built here instead of with `EffectiveSettings::rule`, which returns `None` for a disabled
    // field, so a recovery after the field was disabled still carries its band.
    let rule = Rule {
        direction,
        sensitivity: settings.sensitivity.value,
        confirmation_window: settings.confirmation_window.value,
        drift_enabled: settings.drift_enabled.value,
        drift_threshold: settings.drift_threshold.value,
        min_absolute_delta: settings.min_absolute_delta.value,
        min_relative_delta: settings.min_relative_delta.value,
    };
    let triggers = match row.kind {
        Kind::Spike => spike_band(mean, std_dev, &rule),
        Kind::Drift => drift_band(mean, std_dev, &rule),
    };
    Band {
        lower: triggers.lower,
        upper: triggers.upper,
    }
}

/// Returns the distance of a recovering spike's value from its baseline in standard deviations,
/// as the detector measures it (0 when σ is 0). `None` for drift and for categorical values.
fn recovered_deviation(row: &Anomaly) -> Option<f64> {
    if row.kind != Kind::Spike {
        return None;
    }
    let x: f64 = row.observed_value.parse().ok()?;
    let (mean, std_dev) = row.baseline_mean.zip(row.baseline_std_dev)?;
    if std_dev > 0.0 {
        Some((x - mean).abs() / std_dev)
    } else {
        Some(0.0)
    }
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Percent-encodes a query value: unreserved characters stay, every other byte is escaped.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Timestamp, resolve};

    fn key(environment: Option<&str>) -> SeriesKey {
        SeriesKey {
            system: "shop".to_owned(),
            healthcheck: "web".to_owned(),
            environment: environment.map(str::to_owned),
            field_path: "collectors.c.latency ms".to_owned(),
        }
    }

    fn row(kind: Kind, deviation: f64) -> Anomaly {
        Anomaly {
            id: 9,
            kind,
            state: State::Anomaly,
            direction: RowDirection::Above,
            baseline_mean: Some(100.0),
            baseline_std_dev: Some(2.0),
            observed_value: "200".to_owned(),
            deviation,
            suspicious_run_count: 3,
            confirmation_threshold: 3,
            started_at: Timestamp::from_millis(0),
            confirmed_at: Some(Timestamp::from_millis(120_000)),
            recovered_at: None,
            recent_samples: Vec::new(),
            stable_drift_run_count: 0,
            self_resolved: false,
            suppression: None,
        }
    }

    fn settings() -> EffectiveSettings {
        let mut settings = resolve("collectors.c.latency ms", None, None, None);
        settings.direction.value = Some(Direction::Deviation);
        settings
    }

    #[test]
    fn spike_band_and_summary() {
        let n = Notification::new(
            &key(None),
            &row(Kind::Spike, 50.0),
            NotificationKind::Confirmed,
            &settings(),
        );
        let margin = 3.0 * 2.0 * n.rule.sensitivity;
        assert_eq!(n.band.lower, Some(100.0 - margin));
        assert_eq!(n.band.upper, Some(100.0 + margin));
        assert_eq!(n.deviation, Some(50.0));
        assert_eq!(n.anomaly_deviation, Some(50.0));
        assert!(!n.deviation_unbounded);
        assert_eq!(n.confirmed_at.as_deref(), Some("1970-01-01T00:02:00Z"));
        assert_eq!(
            n.summary,
            "[warning] shop/web collectors.c.latency ms spike confirmed: 200 above baseline 100 ± 2 (50σ)"
        );
    }

    #[test]
    fn spike_band_applies_floors() {
        // σ = 2 gives a 3σ band of ±6, narrower than both floors.
        let cases = [
            (Direction::Deviation, 30.0, 0.0, Some(70.0), Some(130.0)),
            (Direction::Deviation, 30.0, 0.5, Some(50.0), Some(150.0)),
            (Direction::LowerIsBetter, 30.0, 0.0, None, Some(130.0)),
            (Direction::HigherIsBetter, 0.0, 0.0, Some(94.0), None),
        ];
        for (direction, min_absolute_delta, min_relative_delta, lower, upper) in cases {
            let mut settings = settings();
            settings.direction.value = Some(direction);
            settings.min_absolute_delta.value = min_absolute_delta;
            settings.min_relative_delta.value = min_relative_delta;
            let n = Notification::new(
                &key(None),
                &row(Kind::Spike, 50.0),
                NotificationKind::Confirmed,
                &settings,
            );
            assert_eq!(n.band.lower, lower, "{direction:?} {min_absolute_delta}");
            assert_eq!(n.band.upper, upper, "{direction:?} {min_absolute_delta}");
        }
    }

    fn recovered_row(kind: Kind, observed_value: &str, self_resolved: bool) -> Anomaly {
        let mut row = row(kind, 323.8);
        row.state = State::Recovered;
        row.observed_value = observed_value.to_owned();
        row.recovered_at = Some(Timestamp::from_millis(180_000));
        row.self_resolved = self_resolved;
        row
    }

    #[test]
    fn spike_recovery_describes_recovering_value() {
        let n = Notification::new(
            &key(None),
            &recovered_row(Kind::Spike, "101", false),
            NotificationKind::Recovered,
            &settings(),
        );
        assert_eq!(
            n.summary,
            "[info] shop/web collectors.c.latency ms spike recovered: 101 is back within the band, \
             0.5σ from baseline 100 ± 2 (last anomalous value 323.8σ)"
        );
        let json = serde_json::to_value(&n).expect("JSON");
        assert_eq!(json["observedValue"], "101");
        assert_eq!(json["deviation"], 0.5);
        assert_eq!(json["deviationUnbounded"], false);
        assert_eq!(json["anomalyDeviation"], 323.8);
        assert_eq!(json["anomalyDeviationUnbounded"], false);
        assert_eq!(json["selfResolved"], false);
        assert_eq!(json["state"], "recovered");
        assert_eq!(json["recoveredAt"], "1970-01-01T00:03:00Z");
    }

    #[test]
    fn spike_self_resolution_says_new_level() {
        let n = Notification::new(
            &key(None),
            &recovered_row(Kind::Spike, "500", true),
            NotificationKind::Recovered,
            &settings(),
        );
        assert_eq!(
            n.summary,
            "[info] shop/web collectors.c.latency ms spike recovered: 500 settled at a new level, \
             200σ from baseline 100 ± 2 (last anomalous value 323.8σ)"
        );
        assert_eq!(n.deviation, Some(200.0));
        assert!(n.self_resolved);
    }

    #[test]
    fn drift_recovery_leaves_value_deviation_unknown() {
        let mut row = recovered_row(Kind::Drift, "130", false);
        row.deviation = f64::INFINITY;
        let n = Notification::new(
            &key(None),
            &row,
            NotificationKind::DriftRecovered,
            &settings(),
        );
        assert_eq!(
            n.summary,
            "[info] shop/web collectors.c.latency ms drift recovered: the trend is back within \
             the drift band, window mean 130 against baseline 100 ± 2 (last trend reading unbounded σ)"
        );
        let json = serde_json::to_value(&n).expect("JSON");
        assert_eq!(json["deviation"], serde_json::Value::Null);
        assert_eq!(json["deviationUnbounded"], false);
        assert_eq!(json["anomalyDeviation"], serde_json::Value::Null);
        assert_eq!(json["anomalyDeviationUnbounded"], true);
    }

    #[test]
    fn payload_without_recovery_fields_decodes() {
        let n = Notification::new(
            &key(None),
            &row(Kind::Spike, 50.0),
            NotificationKind::Confirmed,
            &settings(),
        );
        let mut json = serde_json::to_value(&n).expect("JSON");
        let object = json.as_object_mut().expect("object");
        for field in [
            "anomalyDeviation",
            "anomalyDeviationUnbounded",
            "selfResolved",
        ] {
            object.remove(field);
        }
        let decoded: Notification = serde_json::from_value(json).expect("decode");
        assert_eq!(decoded.anomaly_deviation, None);
        assert!(!decoded.self_resolved);
    }

    #[test]
    fn drift_unbounded_deviation_is_null() {
        let n = Notification::new(
            &key(None),
            &row(Kind::Drift, f64::INFINITY),
            NotificationKind::DriftConfirmed,
            &settings(),
        );
        assert_eq!(n.deviation, None);
        assert!(n.deviation_unbounded);
        let margin = 2.0 * n.rule.drift_threshold;
        assert_eq!(n.band.upper, Some(100.0 + margin));
        let json = serde_json::to_value(&n).expect("JSON");
        assert_eq!(json["deviation"], serde_json::Value::Null);
        assert_eq!(json["deviationUnbounded"], true);
        assert_eq!(json["transition"], "drift-confirmed");
    }

    #[test]
    fn link_encodes_and_adds_environment() {
        let n = Notification::new(
            &key(Some("eu/1")),
            &row(Kind::Spike, 5.0),
            NotificationKind::Recovered,
            &settings(),
        );
        assert_eq!(
            field_link("http://host:8080/", &n),
            "http://host:8080/#/field?system=shop&healthcheck=web&field=collectors.c.latency%20ms&environment=eu%2F1"
        );
        assert_eq!(n.importance, Importance::Info);
    }

    #[test]
    fn slack_body_is_text_only() {
        let mut n = Notification::new(
            &key(None),
            &row(Kind::Spike, 5.0),
            NotificationKind::Confirmed,
            &settings(),
        );
        n.link = Some("http://host/#/field".to_owned());
        let body = n.slack_body();
        let text = body["text"].as_str().expect("text");
        assert!(text.ends_with(" <http://host/#/field|open>"), "{text}");
        assert_eq!(body.as_object().map(|o| o.len()), Some(1));
    }
}
