//! Command-line output and start-up checks as a user meets them: output into a pipe whose reader
//! has gone, flags rejected before anything is written to disk, and messages that name the fix.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const EC2: &str = "tests/data/nab/realKnownCause/ec2_request_latency_system_failure.csv";

fn anomalyd() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_anomalyd"));
    command
        .env_remove("RUST_LOG")
        .env_remove("ANOMALYD_LISTEN")
        .env_remove("ANOMALYD_LOG_FORMAT")
        .env_remove("ANOMALYD_CONFIG_DIR")
        .env_remove("ANOMALYD_TOKEN")
        .env_remove("ANOMALYD_TOKEN_FILE")
        .env_remove("ANOMALYD_PUBLIC_URL")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null());
    command
}

/// Returns the write end of a pipe whose read end is already closed, so every write to it fails
/// with a broken pipe, as when `head` has exited.
fn closed_pipe() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().expect("create a pipe");
    drop(reader);
    writer
}

fn run(mut command: Command) -> Output {
    command.output().expect("run anomalyd")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn nab_input() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(EC2)
}

#[test]
fn schema_into_closed_pipe_exits_quietly() {
    let mut command = anomalyd();
    command.arg("schema").stdout(closed_pipe());
    let output = run(command);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert_eq!(text, "");
}

#[test]
fn replay_into_closed_pipe_exits_quietly() {
    let mut command = anomalyd();
    command.arg("replay").arg(nab_input()).stdout(closed_pipe());
    let output = run(command);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    assert!(!text.contains("error"), "{text}");
}

#[test]
fn replay_with_both_streams_closed_exits_quietly() {
    let pipe = closed_pipe();
    let mut command = anomalyd();
    command
        .arg("replay")
        .arg(nab_input())
        .stderr(pipe.try_clone().expect("clone the pipe"))
        .stdout(pipe);
    let output = run(command);
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn check_into_closed_pipe_keeps_exit_code() {
    let folder = tempfile::tempdir().expect("temp dir");
    let broken = "apiVersion: checkstack.io/v1alpha1\nkind: System\nmetadata:\n  name: Shop\n\
                  spec: {}\n";
    fs::write(folder.path().join("shop.yaml"), broken).expect("write yaml");
    let mut command = anomalyd();
    command
        .arg("check")
        .arg(folder.path())
        .stdout(closed_pipe());
    let output = run(command);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

fn serve_command(data: &Path) -> Command {
    let mut command = anomalyd();
    command.arg("serve").arg("--data-dir").arg(data);
    command
}

#[test]
fn invalid_public_url_rejected_before_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    for url in [
        "notaurl",
        "ftp://x y",
        "ftp://example.com/",
        "http://",
        "/relative",
    ] {
        let mut command = serve_command(&data);
        command.args(["--listen", "127.0.0.1:0", "--public-url", url]);
        let output = run(command);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{url}: {text}");
        assert!(text.contains("invalid --public-url"), "{url}: {text}");
        assert!(text.contains("ANOMALYD_PUBLIC_URL"), "{url}: {text}");
        assert!(text.contains("http or https URL"), "{url}: {text}");
        assert!(!data.exists(), "{url}: the data folder was created");
    }
}

#[test]
fn token_refusal_leaves_data_dir_absent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut command = serve_command(&data);
    command.args(["--listen", "0.0.0.0:0"]);
    let output = run(command);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("without an API token"), "{text}");
    assert!(
        !data.exists(),
        "the refused start created {}",
        data.display()
    );
}

#[test]
fn replay_input_with_byte_order_mark_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in [
        (
            "bom.csv",
            "\u{FEFF}timestamp,value\n2014-02-14 14:30:00,1\n",
        ),
        ("bom.ndjson", "\u{FEFF}{}\n"),
    ] {
        let input = dir.path().join(name);
        fs::write(&input, text).expect("write input");
        let mut command = anomalyd();
        command.arg("replay").arg(&input);
        let output = run(command);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{name}: {text}");
        assert!(
            text.contains("starts with a UTF-8 byte order mark; save it without one"),
            "{name}: {text}"
        );
    }
}

#[test]
fn replay_rejects_names_serve_rejects() {
    let mut command = anomalyd();
    command
        .arg("replay")
        .arg(nab_input())
        .args(["--system", "Bad"]);
    let output = run(command);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("invalid --system"), "{text}");
    assert!(text.contains("lowercase"), "{text}");
}

#[test]
fn confirmation_window_error_names_range() {
    let folder = tempfile::tempdir().expect("temp dir");
    let yaml = "apiVersion: checkstack.io/v1alpha1\nkind: Healthcheck\nmetadata:\n  name: web\n\
                spec:\n  strategy: push.results\n  intervalSeconds: 60\n  config: {}\n  \
                anomaly:\n    fieldOverrides:\n      \"collectors.a.b.c\":\n        \
                confirmationWindow: 100000000000\n";
    fs::write(folder.path().join("web.yaml"), yaml).expect("write yaml");
    let mut command = anomalyd();
    command.arg("check").arg(folder.path());
    let output = run(command);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("expected an integer from 1 to 100, found `100000000000`"),
        "{stdout}"
    );
}
