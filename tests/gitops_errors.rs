//! Bad files: each one is reported with its line and the right message, and nothing that was
//! applied before changes, in memory or in the store.

mod gitops_support;

use anomalyd::gitops::DocumentState;
use gitops_support::{Folder, HEALTHCHECK, SYSTEM, errors, find, write_baseline};

/// One bad edit: the file written, its text, the message expected and the line it points at.
struct Case {
    name: &'static str,
    file: &'static str,
    text: String,
    message: &'static str,
    line: u32,
}

fn cases() -> Vec<Case> {
    let huge = format!(
        "{HEALTHCHECK}{}",
        "# padding to pass the size limit\n".repeat(40_000)
    );
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    vec![
        Case {
            name: "syntax error",
            file: "checks/web.yaml",
            text: HEALTHCHECK.replace("intervalSeconds: 30", "intervalSeconds: 30: 40"),
            message: "invalid YAML",
            line: 7,
        },
        Case {
            name: "wrong type",
            file: "checks/web.yaml",
            text: HEALTHCHECK.replace("intervalSeconds: 30", "intervalSeconds: thirty"),
            message: "expected an integer of at least 1, found the string \"thirty\"",
            line: 7,
        },
        Case {
            name: "interval below one",
            file: "checks/web.yaml",
            text: HEALTHCHECK.replace("intervalSeconds: 30", "intervalSeconds: 0"),
            message: "expected an integer of at least 1, found `0`",
            line: 7,
        },
        Case {
            name: "unknown kind",
            file: "extra.yaml",
            text: "apiVersion: checkstack.io/v1alpha1\nkind: Monitor\nmetadata:\n  name: m\nspec: {}\n"
                .into(),
            message: "unknown kind Monitor",
            line: 2,
        },
        Case {
            name: "bad name",
            file: "checks/web.yaml",
            text: HEALTHCHECK.replace("name: web", "name: Web_Check"),
            message: "invalid name \"Web_Check\"",
            line: 4,
        },
        Case {
            name: "unresolvable reference",
            file: "systems/shop.yaml",
            text: SYSTEM.replace(
                "- ref: { kind: Healthcheck, name: web }",
                "- ref: { kind: Healthcheck, name: api }",
            ),
            message: "healthcheck \"api\" is not defined",
            line: 7,
        },
        Case {
            name: "duplicate name across files",
            file: "more/web-again.yaml",
            text: HEALTHCHECK.replace("intervalSeconds: 30", "intervalSeconds: 60"),
            message: "Healthcheck web is also defined in checks/web.yaml",
            line: 4,
        },
        Case {
            name: "legacy global sensitivity",
            file: "checks/web.yaml",
            text: HEALTHCHECK.replace("    baselineWindow: 14d", "    baselineWindow: 14d\n    sensitivity: 2"),
            message: "move it under fieldOverrides",
            line: 14,
        },
        Case {
            name: "bare ambiguous override key",
            file: "checks/web.yaml",
            text: HEALTHCHECK.replace("\"collectors.acme.queue-a.durationMs\"", "durationMs"),
            message: "ambiguous field `durationMs`",
            line: 15,
        },
        Case {
            name: "baseline window out of range",
            file: "checks/web.yaml",
            text: HEALTHCHECK.replace("baselineWindow: 14d", "baselineWindow: 120d"),
            message: "between 1h and 90d",
            line: 13,
        },
        Case {
            name: "sensitivity out of range",
            file: "checks/web.yaml",
            text: HEALTHCHECK.replace("sensitivity: 2", "sensitivity: -1"),
            message: "invalid value -1: use a finite number greater than 0",
            line: 16,
        },
        Case {
            name: "huge file",
            file: "checks/web.yaml",
            text: huge,
            message: "larger than the limit of 1048576 bytes",
            line: 0,
        },
        Case {
            name: "alias bomb",
            file: "checks/web.yaml",
            text: format!("{HEALTHCHECK}{bomb}"),
            message: "aliases expand to more than",
            // The fourth anchor is the first whose expansion passes 10 000 nodes.
            line: 20,
        },
    ]
}

#[test]
fn bad_edits_are_reported_and_change_nothing() {
    for case in cases() {
        let folder = Folder::new();
        write_baseline(&folder);
        let reconciler = folder.reconciler();
        let first = reconciler.rescan().expect("first rescan");
        assert!(
            errors(&first).is_empty(),
            "{}: baseline has errors: {:#?}",
            case.name,
            first.problems
        );
        let before = reconciler.snapshot();

        folder.write(case.file, &case.text);
        let report = reconciler.rescan().expect("rescan after the bad edit");
        let problem = find(&report, case.message);
        assert_eq!(
            problem.file.to_str(),
            Some(case.file),
            "{}: {problem}",
            case.name
        );
        assert_eq!(problem.line, case.line, "{}: {problem}", case.name);
        assert_eq!(
            reconciler.snapshot(),
            before,
            "{}: snapshot changed",
            case.name
        );
        assert!(!report.changed, "{}: report says changed", case.name);
        let row = report
            .documents
            .iter()
            .find(|d| d.file.to_str() == Some(case.file));
        let row = row.expect("status row for the bad file");
        assert_eq!(row.state, DocumentState::Error, "{}", case.name);

        let reopened = folder.reconciler();
        assert_eq!(
            reopened.snapshot(),
            before,
            "{}: stored state changed",
            case.name
        );
    }
}

#[test]
fn duplicate_name_is_reported_on_both_documents() {
    let folder = Folder::new();
    write_baseline(&folder);
    folder.write("more/web-again.yaml", HEALTHCHECK);
    let report = folder.reconciler().rescan().expect("rescan");
    let files: Vec<&str> = errors(&report)
        .iter()
        .filter(|p| p.message.contains("is also defined in"))
        .filter_map(|p| p.file.to_str())
        .collect();
    assert_eq!(files, ["checks/web.yaml", "more/web-again.yaml"]);
}

#[test]
fn errors_name_file_line_and_key_path() {
    let folder = Folder::new();
    write_baseline(&folder);
    folder.write(
        "checks/web.yaml",
        &HEALTHCHECK.replace("intervalSeconds: 30", "intervalSeconds: 1.5"),
    );
    let report = folder.reconciler().rescan().expect("rescan");
    let problem = find(&report, "expected an integer");
    assert_eq!(
        problem.to_string(),
        "checks/web.yaml:7:20: error: spec.intervalSeconds: expected an integer of at least 1, \
         found `1.5`"
    );
}

#[test]
fn unknown_keys_are_warnings_with_their_path() {
    let folder = Folder::new();
    write_baseline(&folder);
    folder.write(
        "checks/web.yaml",
        &HEALTHCHECK.replace(
            "  intervalSeconds: 30",
            "  intervalSeconds: 30\n  timeoutMs: 5",
        ),
    );
    let reconciler = folder.reconciler();
    let report = reconciler.rescan().expect("rescan");
    let problem = find(&report, "unknown key");
    assert_eq!(problem.path, "spec.timeoutMs");
    assert_eq!(problem.line, 8);
    assert!(errors(&report).is_empty(), "{:#?}", report.problems);
    assert!(reconciler.snapshot().healthchecks.contains_key("web"));
}

#[test]
fn ignored_kind_is_a_warning() {
    let folder = Folder::new();
    write_baseline(&folder);
    folder.write(
        "groups.yaml",
        "apiVersion: checkstack.io/v1alpha1\nkind: Group\nmetadata:\n  name: g\nspec: {}\n",
    );
    let report = folder.reconciler().rescan().expect("rescan");
    let problem = find(&report, "kind Group is not used by anomalyd");
    assert_eq!(problem.severity, anomalyd::gitops::Severity::Warning);
    let row = report
        .documents
        .iter()
        .find(|d| d.file.to_str() == Some("groups.yaml"));
    assert_eq!(row.map(|r| r.state), Some(DocumentState::Warning));
}

#[cfg(unix)]
#[test]
fn symlink_leaving_the_folder_is_refused() {
    let folder = Folder::new();
    write_baseline(&folder);
    let outside = tempfile::tempdir().expect("outside dir");
    let target = outside.path().join("secret.yaml");
    std::fs::write(&target, HEALTHCHECK.replace("name: web", "name: sneaky")).expect("write");
    std::os::unix::fs::symlink(&target, folder.path("sneaky.yaml")).expect("symlink");
    let reconciler = folder.reconciler();
    let report = reconciler.rescan().expect("rescan");
    let problem = find(&report, "symlink leads outside the folder");
    assert_eq!(problem.file.to_str(), Some("sneaky.yaml"));
    assert!(!reconciler.snapshot().healthchecks.contains_key("sneaky"));
}

#[test]
fn too_many_files_are_not_read() {
    let folder = Folder::new();
    write_baseline(&folder);
    let mut options = folder.options();
    options.limits.files = 2;
    let reconciler = anomalyd::gitops::Reconciler::open(options, folder.db.clone()).expect("open");
    let report = reconciler.rescan().expect("rescan");
    let problem = find(&report, "too many files");
    assert_eq!(problem.file.to_str(), Some("systems/shop.yaml"));
}

#[test]
fn undeclared_collector_is_a_warning() {
    let folder = Folder::new();
    write_baseline(&folder);
    let text = HEALTHCHECK.replace("collectorId: acme.queue-b", "collectorId: acme.unknown");
    folder.write("checks/web.yaml", &text);
    let reconciler = folder.reconciler();
    let report = reconciler.rescan().expect("rescan");
    let warning = find(
        &report,
        "collector acme.unknown is neither built in nor declared",
    );
    assert_eq!(warning.path, "spec.collectors[1]");
    assert_eq!(warning.line, 11);
    assert!(errors(&report).is_empty(), "{:#?}", report.problems);
}

#[test]
fn missing_spec_is_an_error() {
    let folder = Folder::new();
    let text = "apiVersion: checkstack.io/v1alpha1\nkind: System\nmetadata:\n  name: bare\n";
    folder.write("bare.yaml", text);
    let reconciler = folder.reconciler();
    let report = reconciler.rescan().expect("rescan");
    let error = find(&report, "missing required key `spec`");
    assert_eq!(error.line, 4);
    assert!(reconciler.snapshot().systems.is_empty());
}

#[test]
fn hidden_and_editor_files_are_skipped() {
    let folder = Folder::new();
    write_baseline(&folder);
    for name in [
        ".web.yaml.swp",
        ".hidden.yaml",
        "web.yaml~",
        "#web.yaml#",
        "notes.txt",
    ] {
        folder.write(name, "not: [valid\n");
    }
    folder.write(".git/config.yaml", "not: [valid\n");
    let report = folder.reconciler().rescan().expect("rescan");
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    assert_eq!(report.documents.len(), 4);
}

/// Builds a healthcheck document that anomalyd probes itself, with `config` as its settings.
fn probed_check(config: &str) -> String {
    format!(
        "apiVersion: checkstack.io/v1alpha1\nkind: Healthcheck\nmetadata:\n  name: web\nspec:\n  \
         strategy: healthcheck-http.http\n  intervalSeconds: 30\n  config:\n{config}"
    )
}

#[test]
fn bad_probe_setting_keeps_previous() {
    let folder = Folder::new();
    write_baseline(&folder);
    folder.write(
        "checks/web.yaml",
        &probed_check("    url: http://127.0.0.1:9/health\n"),
    );
    let reconciler = folder.reconciler();
    let report = reconciler.rescan().expect("rescan");
    assert!(errors(&report).is_empty(), "{:#?}", report.problems);

    folder.write(
        "checks/web.yaml",
        &probed_check("    url: not a url\n    method: GET\n"),
    );
    let report = reconciler.rescan().expect("rescan");
    let problem = find(&report, "not a valid URL");
    assert_eq!(problem.path, "spec.config.url");
    assert_eq!((problem.line, problem.column), (9, 10));
    let in_effect = &reconciler.snapshot().healthchecks["web"];
    assert_eq!(in_effect.config["url"], "http://127.0.0.1:9/health");
}

#[test]
fn ignored_probe_setting_is_a_warning() {
    let folder = Folder::new();
    write_baseline(&folder);
    folder.write(
        "checks/web.yaml",
        &probed_check("    url: http://127.0.0.1:9/health\n    timeot: 5\n"),
    );
    let reconciler = folder.reconciler();
    let report = reconciler.rescan().expect("rescan");
    assert!(errors(&report).is_empty(), "{:#?}", report.problems);
    let problem = find(&report, "`config.timeot` is not a setting");
    assert_eq!(problem.severity, anomalyd::gitops::Severity::Warning);
    assert_eq!(problem.path, "spec.config.timeot");
    assert_eq!(problem.line, 10);
    assert!(
        problem.message.ends_with("did you mean `timeout`?"),
        "{}",
        problem.message
    );
    assert_eq!(
        reconciler.snapshot().healthchecks["web"].config["timeot"],
        5
    );
}

#[test]
fn unknown_operator_reported_once() {
    let folder = Folder::new();
    write_baseline(&folder);
    let assertion = "  collectors:\n    - collectorId: healthcheck-http.request\n      \
                     assertions:\n        - { field: statusCode, operator: eq, value: 200 }\n";
    let probed = probed_check(&format!("    url: http://127.0.0.1:9/health\n{assertion}"));
    folder.write("checks/web.yaml", &probed);
    let report = folder.reconciler().rescan().expect("rescan");
    let about_operator: Vec<_> = report
        .problems
        .iter()
        .filter(|p| p.path.ends_with("operator"))
        .collect();
    assert_eq!(about_operator.len(), 1, "{about_operator:#?}");
    assert_eq!(
        about_operator[0].severity,
        anomalyd::gitops::Severity::Error
    );

    // A strategy anomalyd does not run keeps the operator with a warning.
    folder.write(
        "checks/web.yaml",
        &probed.replace("healthcheck-http.http", "acme.runner"),
    );
    let report = folder.reconciler().rescan().expect("rescan");
    let problem = find(&report, "unknown operator \"eq\", kept as written");
    assert_eq!(problem.severity, anomalyd::gitops::Severity::Warning);
    assert_eq!(problem.path, "spec.collectors[0].assertions[0].operator");
    assert_eq!(problem.line, 13);
    assert!(errors(&report).is_empty(), "{:#?}", report.problems);
}

#[test]
fn misspelt_builtin_strategy_is_a_warning() {
    let folder = Folder::new();
    write_baseline(&folder);
    let probed = probed_check("    url: http://127.0.0.1:9/health\n");
    folder.write(
        "checks/web.yaml",
        &probed.replace("healthcheck-http.http", "healthcheck-htpp.http"),
    );
    let report = folder.reconciler().rescan().expect("rescan");
    let problem = find(&report, "did you mean healthcheck-http.http?");
    assert_eq!(problem.severity, anomalyd::gitops::Severity::Warning);
    assert_eq!((problem.line, problem.column), (6, 13));
    assert!(errors(&report).is_empty(), "{:#?}", report.problems);
}
