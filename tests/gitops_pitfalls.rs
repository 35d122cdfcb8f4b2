//! The defects of Checkstack's GitOps sync, each shown not to happen here: duplicates after a
//! failed reference, hashes misaligned by comments, broken files treated as deletions, bare
//! override keys that never match, the singular `healthcheck` namespace, and empty lists that
//! clear nothing.

mod gitops_support;

use anomalyd::gitops::DocumentState;
use gitops_support::{Folder, HEALTHCHECK, SYSTEM, errors, find, warnings, write_baseline};

#[test]
fn failed_reference_creates_no_partial_system() {
    let folder = Folder::new();
    write_baseline(&folder);
    folder.remove("checks/web.yaml");
    let reconciler = folder.reconciler();
    for _ in 0..3 {
        let report = reconciler.rescan().expect("rescan");
        find(&report, "healthcheck \"web\" is not defined");
        assert!(reconciler.snapshot().systems.is_empty());
    }
    folder.write("checks/web.yaml", HEALTHCHECK);
    let report = reconciler.rescan().expect("rescan");
    assert!(errors(&report).is_empty(), "{:#?}", report.problems);
    let snapshot = reconciler.snapshot();
    assert_eq!(snapshot.systems.len(), 1);
    assert_eq!(snapshot.systems["shop"].healthchecks, ["web"]);
}

#[test]
fn comment_before_leading_separator_keeps_edits() {
    let folder = Folder::new();
    write_baseline(&folder);
    let commented = format!("# owned by the web team\n---\n{HEALTHCHECK}--- # trailing note\n");
    folder.write("checks/web.yaml", &commented);
    let reconciler = folder.reconciler();
    reconciler.rescan().expect("rescan");
    assert_eq!(reconciler.snapshot().healthchecks["web"].interval_secs, 30);

    folder.write(
        "checks/web.yaml",
        &commented.replace("intervalSeconds: 30", "intervalSeconds: 45"),
    );
    let report = reconciler.rescan().expect("rescan");
    assert!(report.changed);
    assert_eq!(reconciler.snapshot().healthchecks["web"].interval_secs, 45);
}

#[test]
fn unparseable_file_keeps_its_entities_across_restart() {
    let folder = Folder::new();
    write_baseline(&folder);
    let reconciler = folder.reconciler();
    reconciler.rescan().expect("rescan");
    let before = reconciler.snapshot();

    folder.write("checks/web.yaml", "apiVersion: [\n");
    let report = reconciler.rescan().expect("rescan");
    find(&report, "invalid YAML");
    assert_eq!(reconciler.snapshot(), before);
    let row = report
        .documents
        .iter()
        .find(|d| d.file.to_str() == Some("checks/web.yaml"));
    let row = row.expect("whole-file status row");
    assert_eq!(row.state, DocumentState::Error);
    assert!(row.kept_previous);
    drop(reconciler);

    let restarted = folder.reconciler();
    assert_eq!(restarted.snapshot(), before, "state loaded at start");
    let stored = restarted.status();
    assert!(
        stored.iter().any(|r| r.state == DocumentState::Error),
        "status loaded at start"
    );
    restarted.rescan().expect("rescan after restart");
    assert_eq!(restarted.snapshot(), before, "state after the first rescan");
    let rows = restarted.status();
    assert!(rows.iter().any(|r| r.state == DocumentState::Error));
}

#[test]
fn unreadable_file_keeps_its_entities() {
    let folder = Folder::new();
    write_baseline(&folder);
    let reconciler = folder.reconciler();
    reconciler.rescan().expect("rescan");
    let before = reconciler.snapshot();
    folder.write("checks/web.yaml", &format!("{HEALTHCHECK}\u{0}"));
    std::fs::write(folder.path("checks/web.yaml"), [0xff, 0xfe, 0x00]).expect("write bytes");
    let report = reconciler.rescan().expect("rescan");
    find(&report, "not valid UTF-8");
    assert_eq!(reconciler.snapshot(), before);
}

#[test]
fn removed_entity_loses_its_configuration() {
    let folder = Folder::new();
    write_baseline(&folder);
    let reconciler = folder.reconciler();
    reconciler.rescan().expect("rescan");
    folder.remove("systems/shop.yaml");
    let report = reconciler.rescan().expect("rescan");
    assert!(report.changed);
    assert!(reconciler.snapshot().systems.is_empty());
    assert!(
        folder.reconciler().snapshot().systems.is_empty(),
        "removed from the store"
    );
}

#[test]
fn bare_override_key_maps_to_canonical_path() {
    let folder = Folder::new();
    write_baseline(&folder);
    let bare = HEALTHCHECK.replace("\"collectors.acme.queue-a.durationMs\"", "depth");
    folder.write("checks/web.yaml", &bare);
    let reconciler = folder.reconciler();
    let report = reconciler.rescan().expect("rescan");
    let warning = find(
        &report,
        "bare field name mapped to collectors.acme.queue-b.depth",
    );
    assert_eq!(warning.line, 15);
    let snapshot = reconciler.snapshot();
    let template = snapshot.template("web").expect("template settings");
    let keys: Vec<&str> = template
        .field_overrides
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["collectors.acme.queue-b.depth"]);
}

#[test]
fn bare_override_key_uses_builtin_catalogue() {
    let folder = Folder::new();
    let check = "\
apiVersion: checkstack.io/v1alpha1
kind: Healthcheck
metadata:
  name: api
spec:
  strategy: healthcheck-http.http
  intervalSeconds: 10
  config:
    url: http://127.0.0.1:9/health
  collectors:
    - collectorId: healthcheck-http.request
  anomaly:
    fieldOverrides:
      responseTimeMs:
        sensitivity: 3
";
    folder.write("api.yaml", check);
    let reconciler = folder.reconciler();
    let report = reconciler.rescan().expect("rescan");
    find(
        &report,
        "mapped to collectors.healthcheck-http.request.responseTimeMs",
    );
    let snapshot = reconciler.snapshot();
    let template = snapshot.template("api").expect("template settings");
    let key = "collectors.healthcheck-http.request.responseTimeMs";
    assert_eq!(template.field_overrides[key].sensitivity, Some(3.0));
}

#[test]
fn unknown_bare_override_key_lists_candidates() {
    let folder = Folder::new();
    write_baseline(&folder);
    let unknown = HEALTHCHECK.replace("\"collectors.acme.queue-a.durationMs\"", "latency");
    folder.write("checks/web.yaml", &unknown);
    let report = folder.reconciler().rescan().expect("rescan");
    let error = find(&report, "unknown field `latency`");
    assert!(
        error.message.contains("collectors.acme.queue-b.depth"),
        "{error}"
    );
}

#[test]
fn singular_healthcheck_namespace_is_an_error() {
    let folder = Folder::new();
    write_baseline(&folder);
    folder.write(
        "systems/shop.yaml",
        &SYSTEM.replace("  healthchecks:", "  healthcheck:"),
    );
    let reconciler = folder.reconciler();
    let report = reconciler.rescan().expect("rescan");
    let error = find(&report, "unknown namespace `healthcheck`");
    assert!(error.message.contains("`healthchecks`"), "{error}");
    assert_eq!(error.line, 6);
    assert!(
        reconciler.snapshot().systems.is_empty(),
        "never reported as synced"
    );
}

#[test]
fn empty_healthchecks_list_clears_assignments() {
    let folder = Folder::new();
    write_baseline(&folder);
    let reconciler = folder.reconciler();
    reconciler.rescan().expect("rescan");
    let cleared = "\
apiVersion: checkstack.io/v1alpha1
kind: System
metadata:
  name: shop
spec:
  healthchecks: []
  anomaly: []
";
    folder.write("systems/shop.yaml", cleared);
    let report = reconciler.rescan().expect("rescan");
    assert!(report.changed);
    let snapshot = reconciler.snapshot();
    assert!(snapshot.systems["shop"].healthchecks.is_empty());
    assert!(snapshot.systems["shop"].anomaly.is_empty());
}

#[test]
fn removing_template_anomaly_resets_settings() {
    let folder = Folder::new();
    write_baseline(&folder);
    let reconciler = folder.reconciler();
    reconciler.rescan().expect("rescan");
    assert!(reconciler.snapshot().template("web").is_some());
    let end = HEALTHCHECK.find("  anomaly:").expect("anomaly block");
    folder.write("checks/web.yaml", &HEALTHCHECK[..end]);
    reconciler.rescan().expect("rescan");
    assert!(reconciler.snapshot().template("web").is_none());
}

#[test]
fn secret_in_metadata_is_an_error() {
    let folder = Folder::new();
    write_baseline(&folder);
    let text = HEALTHCHECK.replace(
        "  name: web",
        "  name: web\n  title: \"${{ secrets.TITLE }}\"",
    );
    folder.write("checks/web.yaml", &text);
    let report = folder.reconciler().rescan().expect("rescan");
    let error = find(&report, "secret TITLE is referenced in metadata");
    assert_eq!(error.line, 5);
    assert!(warnings(&report).is_empty(), "{:#?}", report.problems);
}

#[test]
fn kept_system_drops_removed_healthcheck() {
    let folder = Folder::new();
    write_baseline(&folder);
    let reconciler = folder.reconciler();
    reconciler.rescan().expect("rescan");
    folder.remove("checks/web.yaml");
    let report = reconciler.rescan().expect("rescan");
    find(&report, "healthcheck \"web\" is not defined");
    let snapshot = reconciler.snapshot();
    let shop = &snapshot.systems["shop"];
    assert!(shop.healthchecks.is_empty(), "{shop:?}");
    assert!(shop.anomaly.is_empty(), "{shop:?}");
    assert!(!snapshot.healthchecks.contains_key("web"));
}
