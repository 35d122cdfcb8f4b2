//! `anomalyd check` and `anomalyd schema` as a CI job and an editor would run them.

use std::path::Path;
use std::process::Command;

fn anomalyd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_anomalyd"))
}

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn check_exits_zero_with_only_warnings() {
    let output = anomalyd()
        .arg("check")
        .arg(repo("tests/data/gitops"))
        .env_remove("ANOMALYD_SECRETS_DIR")
        .output()
        .expect("run anomalyd check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.lines().all(|l| l.contains(": warning: ")),
        "{stdout}"
    );
    assert!(
        stdout.contains("systems/payments-api.yaml:2:7: warning: "),
        "{stdout}"
    );
}

#[test]
fn check_exits_one_on_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text =
        "apiVersion: checkstack.io/v1alpha1\nkind: System\nmetadata:\n  name: Bad Name\nspec: {}\n";
    std::fs::write(dir.path().join("bad.yaml"), text).expect("write");
    let output = anomalyd()
        .arg("check")
        .arg(dir.path())
        .output()
        .expect("run anomalyd check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.starts_with("bad.yaml:4:9: error: metadata.name: invalid name \"Bad Name\""),
        "{stdout}"
    );
}

#[test]
fn check_fails_on_missing_folder() {
    let output = anomalyd()
        .args(["check", "/nonexistent/anomalyd-config"])
        .output()
        .expect("run anomalyd check");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/anomalyd-config"), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(stderr.contains("create it"), "{stderr}");
}

#[test]
fn schema_is_draft_2020_12_json() {
    let output = anomalyd()
        .arg("schema")
        .output()
        .expect("run anomalyd schema");
    assert!(output.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON output");
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let defs = schema["$defs"].as_object().expect("$defs");
    for name in [
        "healthcheckSpec",
        "systemSpec",
        "collectorSpec",
        "notifierSpec",
    ] {
        assert!(defs.contains_key(name), "missing {name}");
    }
    assert_eq!(defs["name"]["pattern"], "^[a-z0-9][a-z0-9-]*$");
}

#[test]
fn check_places_non_utf8_byte() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("latin1.yaml"), b"kind: Sys\xe9m\n").expect("write");
    let output = anomalyd()
        .arg("check")
        .arg(dir.path())
        .output()
        .expect("run anomalyd check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.starts_with("latin1.yaml:1:10: error: file is not valid UTF-8"),
        "{stdout}"
    );
    assert!(!stdout.contains(":0:0"), "{stdout}");
}

#[test]
fn check_rejects_invalid_notifier_headers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = concat!(
        "apiVersion: anomalyd.dev/v1\n",
        "kind: Notifier\n",
        "metadata:\n",
        "  name: ops\n",
        "spec:\n",
        "  url: http://127.0.0.1:9/hook\n",
        "  headers:\n",
        "    Bad Header: x\n",
        "    X-B: \"line\\nbreak\"\n",
        "    content-type: text/plain\n",
        "    Idempotency-Key: fixed\n",
        "    X-Token: a\n",
        "    x-token: b\n",
        "    Host: hooks.internal\n",
    );
    std::fs::write(dir.path().join("notify.yaml"), text).expect("write");
    let output = anomalyd()
        .arg("check")
        .arg(dir.path())
        .env_remove("ANOMALYD_SECRETS_DIR")
        .output()
        .expect("run anomalyd check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let expected = [
        "notify.yaml:8:5: error: spec.headers.Bad Header: invalid HTTP header name \"Bad Header\"",
        "notify.yaml:9:10: error: spec.headers.X-B: invalid HTTP header value: the value \
         contains the control character '\\n'",
        "notify.yaml:10:5: error: spec.headers.content-type: header content-type is set by \
         anomalyd",
        "notify.yaml:11:5: error: spec.headers.Idempotency-Key: header Idempotency-Key is set \
         by anomalyd",
        "notify.yaml:13:5: error: spec.headers.x-token: header x-token repeats X-Token",
    ];
    for line in expected {
        assert!(
            stdout.lines().any(|l| l.starts_with(line)),
            "missing {line:?} in:\n{stdout}"
        );
    }
    let errors = stdout.lines().filter(|l| l.contains(": error: ")).count();
    assert_eq!(errors, expected.len(), "{stdout}");
}
