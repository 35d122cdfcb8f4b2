//! The validated configuration model: the systems, healthchecks, collectors and notifiers that
//! the YAML folder (or the settings API, for unmanaged entities) defines.
//!
//! Raw YAML structs stay inside `gitops`; everything else uses only these resolved values.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::engine::{AssignmentSettings, Catalogue, Kind, SchemaField, TemplateSettings};

/// Origin of an entity's definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Source {
    /// A document of a file in the config folder; such entities are read-only through the API.
    Yaml { file: PathBuf, document: usize },
    /// Created or edited through the settings API.
    Api,
}

/// A `Healthcheck`: a check template with its strategy and anomaly template settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Healthcheck {
    pub name: String,
    pub title: Option<String>,
    /// Fully qualified strategy id, for example `healthcheck-http.http`.
    pub strategy: String,
    pub interval_secs: u32,
    /// Strategy configuration; `${{ secrets.NAME }}` references are kept unresolved.
    pub config: serde_json::Value,
    pub collectors: Vec<CollectorInstance>,
    /// Template anomaly settings; `None` means the defaults.
    pub anomaly: Option<TemplateSettings>,
    pub source: Source,
}

/// One collector of a healthcheck.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectorInstance {
    /// Qualified collector id, for example `healthcheck-http.request`.
    pub collector_id: String,
    pub config: serde_json::Value,
    pub assertions: Vec<Assertion>,
}

/// A check on one result field; a failed assertion makes the run unhealthy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assertion {
    pub field: String,
    pub json_path: Option<String>,
    pub operator: String,
    pub value: Option<serde_json::Value>,
}

/// A `System` with the healthchecks assigned to it and its per-assignment anomaly exceptions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct System {
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    /// Names of the healthchecks assigned through `spec.healthchecks[].ref`.
    pub healthchecks: Vec<String>,
    /// Assignment settings keyed by healthcheck name, from `spec.anomaly[]`.
    pub anomaly: BTreeMap<String, AssignmentSettings>,
    /// The other keys of each `spec.healthchecks[]` entry, keyed by healthcheck name.
    #[serde(default)]
    pub healthcheck_options: BTreeMap<String, AssignmentOptions>,
    pub source: Source,
}

/// How a system runs one assigned healthcheck: the keys Checkstack accepts beside `ref`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentOptions {
    /// Consecutive failed runs before the assignment counts as degraded.
    pub degraded_threshold: Option<u32>,
    /// Consecutive failed runs before the assignment counts as unhealthy.
    pub unhealthy_threshold: Option<u32>,
    pub satellite_ids: Vec<String>,
    pub include_local: Option<bool>,
    /// Checkstack's partial notification policy, kept as written.
    pub notification_policy: Option<serde_json::Value>,
}

/// A user-declared collector (`anomalyd.dev/v1` kind `Collector`) and its result fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectorDefinition {
    /// Qualified collector id the results use.
    pub id: String,
    pub fields: Vec<SchemaField>,
    pub source: Source,
}

/// A text whose value must never reach a log or an API response.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

/// Payload format of a notifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotifierFormat {
    #[default]
    Json,
    Slack,
}

/// Importance of a notification: confirmations are warnings, recoveries are info.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Importance {
    #[default]
    Info,
    Warning,
}

/// Filter on the notifications a notifier receives.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifierFilters {
    /// System names; empty means every system.
    pub systems: Vec<String>,
    /// Kinds to send; empty means both.
    pub kinds: Vec<Kind>,
    pub min_importance: Importance,
}

/// A `Notifier` (`anomalyd.dev/v1`): a webhook that receives notifications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notifier {
    pub name: String,
    /// Resolved webhook URL; may come from a secret.
    pub url: Secret,
    /// Extra request headers; values may come from secrets.
    pub headers: BTreeMap<String, Secret>,
    pub timeout_secs: u32,
    pub format: NotifierFormat,
    pub filters: NotifierFilters,
    pub source: Source,
}

/// Everything that is configured at one moment, swapped whole when the folder changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigSnapshot {
    pub healthchecks: BTreeMap<String, Healthcheck>,
    pub systems: BTreeMap<String, System>,
    pub collectors: BTreeMap<String, CollectorDefinition>,
    pub notifiers: BTreeMap<String, Notifier>,
    /// Notifiers kept from their last good definition that cannot be used now, by name. Their
    /// notifications are still queued, and their deliveries wait and retry.
    #[serde(default)]
    pub unusable_notifiers: BTreeMap<String, UnusableNotifier>,
}

/// A notifier whose definition is in effect but whose secret no longer resolves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnusableNotifier {
    pub filters: NotifierFilters,
    /// Reason it cannot be used, such as the missing secret.
    pub reason: String,
}

impl ConfigSnapshot {
    /// Returns the template settings of a healthcheck, if it is configured.
    pub fn template(&self, healthcheck: &str) -> Option<&TemplateSettings> {
        self.healthchecks.get(healthcheck)?.anomaly.as_ref()
    }

    /// Returns the assignment settings of a system for one healthcheck, if any.
    pub fn assignment(&self, system: &str, healthcheck: &str) -> Option<&AssignmentSettings> {
        self.systems.get(system)?.anomaly.get(healthcheck)
    }

    /// Looks up the schema of a result field: user-declared collectors first, then the built-in
    /// catalogue.
    pub fn schema_field(&self, collector_id: &str, field: &str) -> Option<&SchemaField> {
        if let Some(collector) = self.collectors.get(collector_id) {
            return collector.fields.iter().find(|f| f.name == field);
        }
        Catalogue::builtin().field(collector_id, field)
    }
}
