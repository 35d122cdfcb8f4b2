//! Notifiers: defaults, filters, secrets resolved only in url and header values, missing
//! secrets reported by name, and secret values kept out of status, reports and JSON.

mod gitops_support;

use anomalyd::config::{Importance, NotifierFormat};
use anomalyd::engine::Kind;
use anomalyd::gitops::{DocumentState, ReconcilerOptions, SecretSource};
use gitops_support::{Folder, errors, find, write_baseline};

const SECRET_VALUE: &str = "https://hooks.example.invalid/T000/very-secret-path";

fn notifier(url: &str, extra: &str) -> String {
    format!(
        "\
apiVersion: anomalyd.dev/v1
kind: Notifier
metadata:
  name: ops
spec:
  url: \"{url}\"
{extra}"
    )
}

fn folder_with_secrets() -> (Folder, tempfile::TempDir) {
    let folder = Folder::new();
    write_baseline(&folder);
    let secrets = tempfile::tempdir().expect("secrets dir");
    std::fs::write(secrets.path().join("OPS_HOOK"), format!("{SECRET_VALUE}\n")).expect("write");
    std::fs::write(secrets.path().join("OPS_TOKEN"), "token-123").expect("write");
    (folder, secrets)
}

fn options(folder: &Folder, secrets: &tempfile::TempDir) -> ReconcilerOptions {
    let mut options = folder.options();
    options.secrets = SecretSource {
        dir: Some(secrets.path().to_owned()),
    };
    options
}

#[test]
fn notifier_defaults_apply() {
    let folder = Folder::new();
    folder.write(
        "notify.yaml",
        &notifier("https://hooks.example.invalid/x", ""),
    );
    let reconciler = folder.reconciler();
    let report = reconciler.rescan().expect("rescan");
    assert!(errors(&report).is_empty(), "{:#?}", report.problems);
    let notifier = &reconciler.snapshot().notifiers["ops"];
    assert_eq!(notifier.timeout_secs, 10);
    assert_eq!(notifier.format, NotifierFormat::Json);
    assert!(notifier.filters.systems.is_empty());
    assert!(notifier.filters.kinds.is_empty());
    assert_eq!(notifier.filters.min_importance, Importance::Info);
}

#[test]
fn notifier_filters_and_format_apply() {
    let folder = Folder::new();
    write_baseline(&folder);
    let extra = concat!(
        "  timeoutSeconds: 3\n",
        "  format: slack\n",
        "  filters:\n",
        "    systems: [shop]\n",
        "    kinds: [drift]\n",
        "    minImportance: warning\n",
    );
    folder.write(
        "notify.yaml",
        &notifier("https://hooks.example.invalid/x", extra),
    );
    let reconciler = folder.reconciler();
    let report = reconciler.rescan().expect("rescan");
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    let notifier = &reconciler.snapshot().notifiers["ops"];
    assert_eq!(notifier.timeout_secs, 3);
    assert_eq!(notifier.format, NotifierFormat::Slack);
    assert_eq!(notifier.filters.systems, ["shop"]);
    assert_eq!(notifier.filters.kinds, [Kind::Drift]);
    assert_eq!(notifier.filters.min_importance, Importance::Warning);
}

#[test]
fn secrets_resolve_in_url_and_headers() {
    let (folder, secrets) = folder_with_secrets();
    let extra = "  headers:\n    Authorization: \"Bearer ${{ secrets.OPS_TOKEN }}\"\n";
    folder.write("notify.yaml", &notifier("${{ secrets.OPS_HOOK }}", extra));
    let reconciler =
        anomalyd::gitops::Reconciler::open(options(&folder, &secrets), folder.db.clone())
            .expect("open");
    let report = reconciler.rescan().expect("rescan");
    assert!(errors(&report).is_empty(), "{:#?}", report.problems);
    let snapshot = reconciler.snapshot();
    let notifier = &snapshot.notifiers["ops"];
    assert_eq!(notifier.url.expose(), SECRET_VALUE);
    assert_eq!(
        notifier.headers["Authorization"].expose(),
        "Bearer token-123"
    );

    let json = serde_json::to_string(&*snapshot).expect("serialize snapshot");
    assert!(!json.contains("very-secret-path"), "{json}");
    assert!(!json.contains("token-123"), "{json}");
    assert!(!format!("{snapshot:?}").contains("very-secret-path"));
    assert!(!reconciler.status_json().contains("very-secret-path"));
    assert!(!format!("{report:?}").contains("very-secret-path"));
}

#[test]
fn secret_values_are_not_stored() {
    let (folder, secrets) = folder_with_secrets();
    folder.write("notify.yaml", &notifier("${{ secrets.OPS_HOOK }}", ""));
    let reconciler =
        anomalyd::gitops::Reconciler::open(options(&folder, &secrets), folder.db.clone())
            .expect("open");
    reconciler.rescan().expect("rescan");
    drop(reconciler);
    let db_path = folder.state.path().join("anomalyd.redb");
    drop(folder.db);
    let bytes = std::fs::read(db_path).expect("read redb file");
    let needle = b"very-secret-path";
    assert!(
        !bytes.windows(needle.len()).any(|w| w == needle),
        "secret found in the store"
    );
}

#[test]
fn missing_secret_is_an_error_naming_it() {
    let folder = Folder::new();
    write_baseline(&folder);
    folder.write(
        "notify.yaml",
        &notifier("${{ secrets.GITOPS_TEST_MISSING_HOOK }}", ""),
    );
    let reconciler = folder.reconciler();
    let report = reconciler.rescan().expect("rescan");
    let error = find(&report, "secret GITOPS_TEST_MISSING_HOOK is not set");
    assert_eq!(error.line, 6);
    assert_eq!(error.path, "spec.url");
    let snapshot = reconciler.snapshot();
    assert!(snapshot.notifiers.is_empty());
    assert!(
        snapshot.systems.contains_key("shop"),
        "the rest still applies"
    );
}

#[test]
fn secret_outside_secret_fields_stays_text() {
    let folder = Folder::new();
    let extra = "  filters:\n    systems: [\"${{ secrets.OPS_HOOK }}\"]\n";
    folder.write(
        "notify.yaml",
        &notifier("https://hooks.example.invalid/x", extra),
    );
    let reconciler = folder.reconciler();
    let report = reconciler.rescan().expect("rescan");
    let warning = find(
        &report,
        "secret OPS_HOOK is only resolved in a Notifier's url and headers",
    );
    assert_eq!(warning.path, "spec.filters.systems[0]");
    let snapshot = reconciler.snapshot();
    assert_eq!(
        snapshot.notifiers["ops"].filters.systems,
        ["${{ secrets.OPS_HOOK }}"]
    );
}

#[test]
fn url_must_be_http() {
    let folder = Folder::new();
    folder.write("notify.yaml", &notifier("ftp://example.invalid/x", ""));
    let report = folder.reconciler().rescan().expect("rescan");
    let error = find(&report, "must start with http:// or https://");
    assert_eq!(error.line, 6);
}

#[test]
fn bad_filter_values_name_the_allowed_ones() {
    let folder = Folder::new();
    let extra = "  format: xml\n  filters:\n    kinds: [spike, flip]\n    minImportance: error\n";
    folder.write(
        "notify.yaml",
        &notifier("https://hooks.example.invalid/x", extra),
    );
    let report = folder.reconciler().rescan().expect("rescan");
    assert_eq!(find(&report, "allowed: json, slack").line, 7);
    assert_eq!(find(&report, "allowed: spike, drift").line, 9);
    assert_eq!(find(&report, "allowed: info, warning").line, 10);
    let row = &report.documents[0];
    assert_eq!(row.state, DocumentState::Error);
}

#[test]
fn invalid_headers_keep_stored_notifier() {
    let (folder, secrets) = folder_with_secrets();
    std::fs::write(secrets.path().join("SPLIT_TOKEN"), "first\r\nX-Injected: 1").expect("write");
    let good = "  headers:\n    Authorization: \"Bearer ${{ secrets.OPS_TOKEN }}\"\n";
    folder.write("notify.yaml", &notifier("http://127.0.0.1:9/hook", good));
    let open = || {
        anomalyd::gitops::Reconciler::open(options(&folder, &secrets), folder.db.clone())
            .expect("open")
    };
    let reconciler = open();
    let report = reconciler.rescan().expect("rescan");
    assert!(errors(&report).is_empty(), "{:#?}", report.problems);
    let before = reconciler.snapshot();

    let bad = concat!(
        "  headers:\n",
        "    Bad Header: x\n",
        "    X-B: \"line\\nbreak\"\n",
        "    X-Split: \"${{ secrets.SPLIT_TOKEN }}\"\n",
    );
    folder.write("notify.yaml", &notifier("http://127.0.0.1:9/hook", bad));
    let report = reconciler.rescan().expect("rescan");
    let name = find(&report, "invalid HTTP header name \"Bad Header\"");
    assert_eq!((name.line, name.column), (8, 5));
    assert_eq!(name.path, "spec.headers.Bad Header");
    let value = find(&report, "the value contains the control character '\\n'");
    assert_eq!((value.line, value.column), (9, 10));
    assert_eq!(value.path, "spec.headers.X-B");
    let secret = find(&report, "the value with its secrets resolved contains");
    assert_eq!(secret.line, 10);
    assert!(
        !format!("{report:?}").contains("X-Injected"),
        "the secret value stays out of the report"
    );
    assert_eq!(errors(&report).len(), 3, "{:#?}", report.problems);
    assert!(!report.changed, "nothing is stored for a rejected document");
    let row = report
        .documents
        .iter()
        .find(|d| d.file.to_str() == Some("notify.yaml"))
        .expect("status row of notify.yaml");
    assert_eq!(row.state, DocumentState::Error);
    assert!(row.kept_previous);
    assert_eq!(reconciler.snapshot(), before);
    drop(reconciler);

    let restarted = open();
    assert_eq!(restarted.snapshot(), before, "stored state after restart");
    assert_eq!(
        restarted.snapshot().notifiers["ops"].headers["Authorization"].expose(),
        "Bearer token-123"
    );
}
