//! `anomalyd serve` start-up as a user runs it: a host name in `--listen`, a missing config
//! folder, and fatal errors in both log formats. Every server listens on loopback only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

fn anomalyd() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_anomalyd"));
    command
        .env_remove("RUST_LOG")
        .env_remove("ANOMALYD_LISTEN")
        .env_remove("ANOMALYD_LOG_FORMAT")
        .env_remove("ANOMALYD_CONFIG_DIR")
        .env_remove("JOURNAL_STREAM")
        .env_remove("INVOCATION_ID")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null());
    command
}

/// Runs a command that is expected to exit on its own, killing it after `WAIT`.
fn run_to_exit(mut command: Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start anomalyd");
    let deadline = Instant::now() + WAIT;
    while child.try_wait().expect("wait for anomalyd").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("anomalyd did not exit within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect output")
}

/// A running `anomalyd serve` whose stderr lines arrive on a channel.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Server {
    fn start(mut command: Command) -> Self {
        let mut child = command.stderr(Stdio::piped()).spawn().expect("start");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// Reads stderr until a line contains `needle`, and returns that line.
    fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                panic!("no line with {needle:?} within {WAIT:?}; stderr: {seen:#?}");
            };
            if line.contains(needle) {
                return line;
            }
            seen.push(line);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Returns the `addr` field of a text-format "listening" line.
fn listening_addr(line: &str) -> SocketAddr {
    let start = line.find("addr=").expect("the line names the address") + "addr=".len();
    let text: String = line[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    text.parse().expect("a socket address")
}

fn get_healthz(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("set timeout");
    let head = "GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read");
    reply
}

fn serve_command(data: &Path) -> Command {
    let mut command = anomalyd();
    command.arg("serve").arg("--data-dir").arg(data);
    command
}

#[test]
fn listen_accepts_localhost() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = serve_command(&dir.path().join("data"));
    command.args(["--listen", "localhost:0"]);
    let mut server = Server::start(command);
    let bound = server.wait_for_line("bound");
    assert!(bound.contains("localhost:0"), "{bound}");
    let line = server.wait_for_line("listening");
    let addr = listening_addr(&line);
    assert!(addr.ip().is_loopback(), "{line}");
    assert_ne!(addr.port(), 0, "{line}");
    assert!(bound.contains(&addr.to_string()), "{bound}");
    let reply = get_healthz(addr);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

#[test]
fn listen_variable_accepts_localhost() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = serve_command(&dir.path().join("data"));
    command.env("ANOMALYD_LISTEN", "localhost:0");
    let mut server = Server::start(command);
    let bound = server.wait_for_line("bound");
    assert!(bound.contains("localhost:0"), "{bound}");
    let addr = listening_addr(&server.wait_for_line("listening"));
    let reply = get_healthz(addr);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

#[test]
fn listen_rejects_value_without_port() {
    let dir = tempfile::tempdir().expect("temp dir");
    for value in ["localhost", "localhost:http-port"] {
        let mut command = serve_command(&dir.path().join("data"));
        command.args(["--listen", value]);
        let output = run_to_exit(command);
        assert!(!output.status.success(), "{value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(error.len(), 1, "{value}: {stderr}");
        assert!(error[0].contains(&format!("{value:?}")), "{stderr}");
        assert!(error[0].contains("HOST:PORT"), "{stderr}");
    }
}

#[test]
fn missing_config_dir_names_path_and_fix() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("no-such-config");
    let mut command = serve_command(&dir.path().join("data"));
    command.args(["--listen", "127.0.0.1:0", "--config-dir"]);
    command.arg(&missing);
    let output = run_to_exit(command);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("No path was found"), "{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(error.contains(&missing.display().to_string()), "{error}");
    assert!(error.contains("does not exist"), "{error}");
    assert!(error.contains("create it"), "{error}");
    assert!(error.contains("--config-dir"), "{error}");
}

#[test]
fn config_dir_that_is_a_file_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("checks.yaml");
    std::fs::write(&file, "").expect("write file");
    let mut command = serve_command(&dir.path().join("data"));
    command.args(["--listen", "127.0.0.1:0", "--config-dir"]);
    command.arg(&file);
    let output = run_to_exit(command);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not a folder"), "{stderr}");
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
}

/// Returns the JSON lines of `stderr` whose level is ERROR.
fn json_errors(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|value| value["level"] == "ERROR")
        .collect()
}

/// Returns a data folder that cannot be created, because a file sits where its parent goes.
fn blocked_data_dir(dir: &Path) -> std::path::PathBuf {
    let blocker = dir.join("blocker");
    std::fs::write(&blocker, "").expect("write file");
    blocker.join("data")
}

#[test]
fn fatal_error_logged_as_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = blocked_data_dir(dir.path());
    let mut command = anomalyd();
    command.args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"]);
    command.arg("--data-dir").arg(&data);
    let output = run_to_exit(command);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors = json_errors(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    let error = errors[0]["fields"]["error"].as_str().unwrap_or_default();
    assert!(error.contains(&data.display().to_string()), "{stderr}");

    let mut command = anomalyd();
    command.env("ANOMALYD_LOG_FORMAT", "json");
    command.args(["serve", "--listen", "localhost"]);
    command.arg("--data-dir").arg(dir.path().join("data"));
    let output = run_to_exit(command);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors = json_errors(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    let error = errors[0]["fields"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("\"localhost\""), "{stderr}");
}

#[test]
fn fatal_error_stays_plain_in_text_mode() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = blocked_data_dir(dir.path());
    let mut command = anomalyd();
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data);
    let output = run_to_exit(command);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(json_errors(&stderr).is_empty(), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: "), "{stderr}");
    assert!(last.contains(&data.display().to_string()), "{stderr}");
}

#[test]
fn second_serve_names_the_busy_data_folder() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut first_command = serve_command(&data);
    first_command.args(["--listen", "127.0.0.1:0"]);
    let mut first = Server::start(first_command);
    first.wait_for_line("listening");

    let mut second = serve_command(&data);
    second.args(["--listen", "127.0.0.1:0"]);
    let output = run_to_exit(second);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!(
        "data folder {} is in use by another anomalyd process",
        data.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains("anomalyd.redb"), "{stderr}");
    assert!(stderr.contains("--data-dir"), "{stderr}");
    assert!(!stderr.contains("Cannot acquire lock"), "{stderr}");
}

#[test]
fn rejected_new_document_logged_as_not_in_effect() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    let text =
        "apiVersion: checkstack.io/v1alpha1\nkind: Gizmo\nmetadata:\n  name: one\nspec: {}\n";
    std::fs::write(config.join("gizmo.yaml"), text).expect("write");
    let mut command = serve_command(&dir.path().join("data"));
    command
        .args(["--listen", "127.0.0.1:0", "--config-dir"])
        .arg(&config);
    let mut server = Server::start(command);
    let line = server.wait_for_line("config document rejected");
    assert!(
        line.contains("nothing from it is in effect until it is fixed"),
        "{line}"
    );
    assert!(!line.contains("last good state is kept"), "{line}");
    assert!(line.contains("gizmo.yaml"), "{line}");
}

#[test]
fn lost_secret_is_logged_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    let notifier = "apiVersion: anomalyd.dev/v1\nkind: Notifier\nmetadata:\n  name: ops\n\
                    spec:\n  url: \"${{ secrets.TEST_HOOK }}\"\n";
    std::fs::write(config.join("ops.yaml"), notifier).expect("write notifier");
    let start = |secret: Option<&str>| {
        let mut command = serve_command(&dir.path().join("data"));
        command
            .args(["--listen", "127.0.0.1:0", "--config-dir"])
            .arg(&config);
        command.env_remove("ANOMALYD_SECRET_TEST_HOOK");
        if let Some(url) = secret {
            command.env("ANOMALYD_SECRET_TEST_HOOK", url);
        }
        Server::start(command)
    };
    // The first run stores the notifier as its last good state.
    let mut first = start(Some("http://127.0.0.1:9/hook"));
    first.wait_for_line("listening");
    drop(first);

    let mut server = start(None);
    let warning = server.wait_for_line("notifier cannot be used");
    assert!(warning.contains("notifier=ops"), "{warning}");
    server.wait_for_line("listening");
    // Several debounce intervals pass, and rescans must not repeat the warning.
    std::thread::sleep(Duration::from_millis(1500));
    let later: Vec<String> = server.lines.try_iter().collect();
    let repeated = later
        .iter()
        .filter(|l| l.contains("notifier cannot be used"));
    assert_eq!(repeated.count(), 0, "warned again: {later:#?}");
}

/// Fetches `path` and returns the body.
fn get_body(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("set timeout");
    let head = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read");
    reply
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

#[test]
fn script_probe_gets_no_service_variables() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config");
    std::fs::create_dir(&config).expect("config dir");
    let documents = "\
apiVersion: checkstack.io/v1alpha1
kind: Healthcheck
metadata:
  name: envdump
spec:
  strategy: healthcheck-script.execute
  intervalSeconds: 1
  config:
    command: /bin/sh
    args: [\"-c\", \"env | grep -E '^(ANOMALYD_|PROBE_OWN)' | sort; echo checked\"]
    env: { PROBE_OWN: \"1\" }
---
apiVersion: checkstack.io/v1alpha1
kind: System
metadata:
  name: host
spec:
  healthchecks:
    - ref: { kind: Healthcheck, name: envdump }
";
    std::fs::write(config.join("envdump.yaml"), documents).expect("write config");
    let mut command = serve_command(&dir.path().join("data"));
    command
        .args(["--listen", "127.0.0.1:0", "--config-dir"])
        .arg(&config);
    command.env("ANOMALYD_SECRET_PROBE_TEST", "secret-value-7");
    command.env("ANOMALYD_TOKEN", "token-value-8");
    let mut server = Server::start(command);
    let addr = listening_addr(&server.wait_for_line("listening"));

    let path = "/api/v1/series/samples?system=host&healthcheck=envdump\
                &field=collectors.healthcheck-script.execute.stdout";
    let deadline = Instant::now() + WAIT;
    let body = loop {
        let body = get_body(addr, path);
        if body.contains("checked") {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "no probe output within {WAIT:?}: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let samples: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let stdout = samples["samples"][0]["value"]
        .as_str()
        .expect("stdout text");
    assert_eq!(stdout, "PROBE_OWN=1\nchecked\n", "{body}");
}
