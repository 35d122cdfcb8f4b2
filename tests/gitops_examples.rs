//! The three example files of Checkstack's GitOps format (two healthchecks and a system with an
//! ignored Group) load unchanged, and the settings in effect per field are the ones Checkstack's
//! precedence rules give.

mod gitops_support;

use std::path::Path;

use anomalyd::config::ConfigSnapshot;
use anomalyd::engine::{BaselineWindow, Direction, EffectiveSettings, Layer, resolve};
use gitops_support::{Folder, errors};

fn load_examples() -> (Folder, std::sync::Arc<ConfigSnapshot>) {
    let folder = Folder::new();
    folder.copy_from(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gitops"));
    let reconciler = folder.reconciler();
    let report = reconciler.rescan().expect("rescan");
    assert!(errors(&report).is_empty(), "{:#?}", report.problems);
    (folder, reconciler.snapshot())
}

fn effective(
    snapshot: &ConfigSnapshot,
    system: &str,
    check: &str,
    path: &str,
) -> EffectiveSettings {
    let (collector, field) = split_path(snapshot, check, path);
    resolve(
        path,
        snapshot.template(check),
        snapshot.assignment(system, check),
        snapshot.schema_field(&collector, &field),
    )
}

/// Splits `collectors.<id>.<field>` using the healthcheck's own collector ids.
fn split_path(snapshot: &ConfigSnapshot, check: &str, path: &str) -> (String, String) {
    let rest = path.strip_prefix("collectors.").expect("canonical path");
    let collectors = &snapshot.healthchecks[check].collectors;
    let id = collectors
        .iter()
        .map(|c| c.collector_id.as_str())
        .find(|id| rest.starts_with(&format!("{id}.")))
        .expect("collector of the healthcheck");
    (id.to_owned(), rest[id.len() + 1..].to_owned())
}

#[test]
fn examples_apply_every_entity() {
    let (_folder, snapshot) = load_examples();
    let checks: Vec<&str> = snapshot.healthchecks.keys().map(String::as_str).collect();
    assert_eq!(checks, ["payments-api-http", "payments-db-host-ssh"]);
    let system = &snapshot.systems["payments-api"];
    assert_eq!(
        system.healthchecks,
        ["payments-api-http", "payments-db-host-ssh"]
    );
    let options = &system.healthcheck_options["payments-api-http"];
    assert_eq!(options.degraded_threshold, Some(2));
    assert_eq!(options.unhealthy_threshold, Some(4));
    assert_eq!(system.title.as_deref(), Some("Payments API"));
    let http = &snapshot.healthchecks["payments-api-http"];
    assert_eq!(http.strategy, "healthcheck-http.http");
    assert_eq!(http.interval_secs, 30);
    assert_eq!(http.collectors[0].assertions.len(), 3);
    let ssh = &snapshot.healthchecks["payments-db-host-ssh"];
    assert_eq!(
        ssh.config["password"], "${{ secrets.PAYMENTS_DB_HOST_SSH_PASSWORD }}",
        "secrets outside secret fields stay as written"
    );
}

#[test]
fn assignment_entry_replaces_template_entry() {
    let (_folder, snapshot) = load_examples();
    let path = "collectors.healthcheck-http.request.responseTimeMs";
    let settings = effective(&snapshot, "payments-api", "payments-api-http", path);
    assert_eq!(settings.sensitivity.value, 2.0);
    assert_eq!(settings.sensitivity.layer, Layer::AssignmentFieldOverride);
    assert_eq!(settings.confirmation_window.value, 4);
    assert_eq!(settings.min_absolute_delta.value, 250.0);
    assert_eq!(settings.direction.value, Some(Direction::LowerIsBetter));
    // The template's driftThreshold 3 and minRelativeDelta are not merged in.
    assert_eq!(settings.drift_threshold.value, 2.0);
    assert_eq!(settings.drift_threshold.layer, Layer::EngineDefault);
    assert_eq!(settings.min_relative_delta.value, 0.5);
    assert_eq!(settings.min_relative_delta.layer, Layer::SchemaAnnotation);
    assert_eq!(
        settings.baseline_window.value,
        BaselineWindow::parse("30d").expect("30d")
    );
    assert_eq!(settings.baseline_window.layer, Layer::Assignment);
    assert!(settings.notify.value);
    assert_eq!(settings.notify.layer, Layer::Assignment);
}

#[test]
fn template_entries_apply_without_assignment_entry() {
    let (_folder, snapshot) = load_examples();
    let success = "collectors.healthcheck-http.request.success";
    let settings = effective(&snapshot, "payments-api", "payments-api-http", success);
    assert_eq!(settings.direction.value, Some(Direction::Dominance));
    assert_eq!(settings.direction.layer, Layer::TemplateFieldOverride);
    assert_eq!(settings.confirmation_window.value, 2);
    let body = "collectors.healthcheck-http.request.bodyLength";
    let settings = effective(&snapshot, "payments-api", "payments-api-http", body);
    assert!(!settings.enabled.value);
    assert_eq!(settings.enabled.layer, Layer::TemplateFieldOverride);
    assert!(settings.rule().is_none());
}

#[test]
fn disabled_assignment_turns_off_every_field() {
    let (_folder, snapshot) = load_examples();
    let cpu = "collectors.collector-hardware.cpu.usagePercent";
    let settings = effective(&snapshot, "payments-api", "payments-db-host-ssh", cpu);
    assert_eq!(settings.sensitivity.value, 1.2);
    assert_eq!(settings.sensitivity.layer, Layer::TemplateFieldOverride);
    assert_eq!(settings.min_absolute_delta.value, 10.0);
    assert!(!settings.enabled.value);
    assert_eq!(settings.enabled.layer, Layer::Assignment);
    assert!(!settings.notify.value);
    assert_eq!(settings.notify.layer, Layer::Template);
    assert_eq!(
        settings.baseline_window.value,
        BaselineWindow::parse("7d").expect("7d")
    );
    let load = "collectors.collector-hardware.cpu.loadAvg1m";
    let settings = effective(&snapshot, "payments-api", "payments-db-host-ssh", load);
    assert_eq!(settings.drift_threshold.value, 2.5);
    assert_eq!(settings.direction.value, Some(Direction::LowerIsBetter));
}

#[test]
fn example_warnings_are_reported() {
    let folder = Folder::new();
    folder.copy_from(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gitops"));
    let report = folder.reconciler().rescan().expect("rescan");
    let messages: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "healthchecks/payments-db-host-ssh.yaml:13:15: warning: spec.config.password: secret \
             PAYMENTS_DB_HOST_SSH_PASSWORD is only resolved in a Notifier's url and headers; \
             here the template stays as text",
            "systems/payments-api.yaml:2:7: warning: kind: kind Group is not used by anomalyd; \
             the document is ignored",
            "systems/payments-api.yaml:18:3: warning: spec.groups: `groups` is a Checkstack \
             catalog key that anomalyd does not use; ignored",
        ]
    );
}

#[test]
fn shipped_example_applies_without_webhook_secret() {
    let folder = Folder::new();
    folder.copy_from(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gitops"));
    let reconciler = folder.reconciler();
    let report = reconciler.rescan().expect("rescan");
    let errors = errors(&report);
    assert_eq!(errors.len(), 1, "{:#?}", report.problems);
    assert_eq!(errors[0].file.to_str(), Some("notifiers/ops-webhook.yaml"));
    assert!(
        errors[0].message.contains("secret WEBHOOK_URL is not set"),
        "{}",
        errors[0]
    );
    let snapshot = reconciler.snapshot();
    assert!(snapshot.notifiers.is_empty());
    let check = &snapshot.healthchecks["anomalyd-healthz"];
    assert_eq!(check.interval_secs, 10);
    let path = "collectors.healthcheck-http.request.responseTimeMs";
    let settings = effective(&snapshot, "anomalyd", "anomalyd-healthz", path);
    assert_eq!(settings.sensitivity.value, 2.5);
    assert_eq!(
        settings.baseline_window.value,
        BaselineWindow::parse("3d").expect("3d")
    );
}

#[test]
fn shipped_example_applies_notifier_with_secret() {
    let folder = Folder::new();
    folder.copy_from(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gitops"));
    let secrets = tempfile::tempdir().expect("secrets dir");
    std::fs::write(
        secrets.path().join("WEBHOOK_URL"),
        "https://hooks.example.invalid/a\n",
    )
    .expect("write secret");
    let mut options = folder.options();
    options.secrets.dir = Some(secrets.path().to_owned());
    let reconciler = anomalyd::gitops::Reconciler::open(options, folder.db.clone()).expect("open");
    let report = reconciler.rescan().expect("rescan");
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    let snapshot = reconciler.snapshot();
    let notifier = &snapshot.notifiers["ops-webhook"];
    assert_eq!(notifier.url.expose(), "https://hooks.example.invalid/a");
}

#[test]
fn status_body_lists_every_document() {
    let folder = Folder::new();
    folder.copy_from(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gitops"));
    let reconciler = folder.reconciler();
    reconciler.rescan().expect("rescan");
    let body: serde_json::Value =
        serde_json::from_str(&reconciler.status_json()).expect("status body is JSON");
    let documents = body["documents"].as_array().expect("documents array");
    assert_eq!(documents.len(), 3);
    let notifier = &documents[1];
    assert_eq!(notifier["file"], "notifiers/ops-webhook.yaml");
    assert_eq!(notifier["document"], 0);
    assert_eq!(notifier["kind"], "Notifier");
    assert_eq!(notifier["name"], "ops-webhook");
    assert_eq!(notifier["state"], "error");
    assert_eq!(notifier["messages"][0]["line"], 12);
    assert_eq!(notifier["lastApplied"], serde_json::Value::Null);
    let check = &documents[0];
    assert_eq!(check["state"], "synced");
    assert!(check["lastApplied"].is_string(), "{check}");
}

#[test]
fn last_applied_stays_while_unchanged() {
    let folder = Folder::new();
    folder.copy_from(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gitops"));
    let reconciler = folder.reconciler();
    reconciler.rescan().expect("rescan");
    let first = reconciler.status()[0].last_applied;
    assert!(first.is_some());
    std::thread::sleep(std::time::Duration::from_millis(5));
    reconciler.rescan().expect("rescan");
    assert_eq!(reconciler.status()[0].last_applied, first);
}

#[test]
fn load_snapshot_needs_no_store() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gitops");
    let secrets = anomalyd::gitops::SecretSource::default();
    let limits = anomalyd::gitops::Limits::default();
    let (snapshot, problems) =
        anomalyd::gitops::load_snapshot(&dir, &secrets, &limits).expect("load folder");
    assert_eq!(snapshot.healthchecks.len(), 2);
    assert_eq!(snapshot.systems.len(), 1);
    assert_eq!(problems.len(), 3, "{problems:#?}");
}

/// Stands in for the store, which owns the redb file and lends it out.
struct Owner {
    db: redb::Database,
}

impl anomalyd::gitops::DatabaseHandle for Owner {
    fn database(&self) -> &redb::Database {
        &self.db
    }
}

#[test]
fn reconciler_shares_a_database_owner() {
    let folder = Folder::new();
    folder.copy_from(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gitops"));
    let state = tempfile::tempdir().expect("state dir");
    let db = redb::Database::create(state.path().join("owned.redb")).expect("create redb");
    let owner = std::sync::Arc::new(Owner { db });
    let reconciler =
        anomalyd::gitops::Reconciler::open(folder.options(), owner.clone()).expect("open");
    reconciler.rescan().expect("rescan");
    assert_eq!(reconciler.snapshot().healthchecks.len(), 2);
    let reopened = anomalyd::gitops::Reconciler::open(folder.options(), owner).expect("reopen");
    assert_eq!(reopened.snapshot().healthchecks.len(), 2);
}
