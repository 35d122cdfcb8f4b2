//! The binary as systemd runs it: READY, watchdog pings and STOPPING over `NOTIFY_SOCKET`,
//! log formats, `/metrics` and `/healthz` on the real listener, and the unit file passing
//! `systemd-analyze verify`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/gitops");
const SECRET: &str = "https://hooks.invalid/secret-token-4f1c";

/// A running `anomalyd serve` whose log lines arrive on a channel.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Server {
    fn start(data: &Path, envs: &[(&str, &str)], args: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_anomalyd"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .env_remove("INVOCATION_ID")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .envs(envs.iter().copied())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start anomalyd");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// Reads log lines until one contains `needle`, and returns it.
    fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "no log line with {needle:?} within {WAIT:?}; log: {:#?}",
                    self.log
                )
            });
            self.log.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// Reads the listening address from the "listening" line.
    fn addr(&mut self) -> SocketAddr {
        let line = self.wait_for_line("listening");
        let start = line.find("127.0.0.1:").expect("the line names the address");
        let text: String = line[start..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
            .collect();
        text.parse().expect("a socket address")
    }

    /// Sends SIGTERM, waits for the exit and collects the rest of the log.
    fn terminate(mut self) -> (ExitStatus, Vec<String>) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.expect("run kill").success());
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for anomalyd") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "anomalyd did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        self.log.extend(self.lines.try_iter());
        // The reader thread may still hold the last lines; it ends with the pipe.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.log.push(line);
        }
        (status, std::mem::take(&mut self.log))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn get(addr: SocketAddr, path: &str) -> (String, String) {
    request(addr, &format!("GET {path} HTTP/1.1\r\n"), "")
}

/// Sends `start` (the request line) with `body` and returns the reply's head and body.
fn request(addr: SocketAddr, start: &str, body: &str) -> (String, String) {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("set timeout");
    write!(
        stream,
        "{start}Host: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send request");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read reply");
    let (head, body) = reply.split_once("\r\n\r\n").expect("a head and a body");
    (head.to_owned(), body.to_owned())
}

/// Receives notification datagrams until one contains `needle`; returns every one received.
fn receive_until(socket: &UnixDatagram, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while Instant::now() < deadline {
        let Ok(len) = socket.recv(&mut buffer) else {
            continue;
        };
        let message = String::from_utf8_lossy(&buffer[..len]).into_owned();
        let found = message.lines().any(|l| l == needle);
        seen.push(message);
        if found {
            return seen;
        }
    }
    panic!("no {needle} within {WAIT:?}; received {seen:#?}");
}

#[test]
fn notifies_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("set timeout");
    let socket_text = socket_path.to_str().expect("a UTF-8 temp path");
    let server = Server::start(
        &dir.path().join("data"),
        &[("NOTIFY_SOCKET", socket_text), ("WATCHDOG_USEC", "400000")],
        &["--config-dir", EXAMPLES],
    );

    let first = receive_until(&socket, "READY=1");
    let ready = first.last().expect("the READY message");
    assert!(
        ready.contains("STATUS=0 series, 0 open anomalies"),
        "{ready}"
    );
    let started = Instant::now();
    receive_until(&socket, "WATCHDOG=1");
    receive_until(&socket, "WATCHDOG=1");
    // Pings come every 200 ms; two of them cannot take near the 20 s wait.
    assert!(started.elapsed() < Duration::from_secs(5));

    let (status, log) = server.terminate();
    receive_until(&socket, "STOPPING=1");
    assert!(status.success(), "exit {status:?}; log: {log:#?}");
}

#[test]
fn serves_health_and_metrics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(&dir.path().join("data"), &[], &["--config-dir", EXAMPLES]);
    let addr = server.addr();
    let (head, body) = get(addr, "/healthz");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "ok\n");

    let result = r#"{"system": "shop", "healthcheck": "web", "environment": "prod",
        "status": "healthy", "timestamp": "2026-01-02T03:04:05Z",
        "collectors": {"custom.metrics": {"latency": 120, "ok": true}}}"#;
    let (head, _) = request(addr, "POST /api/v1/results HTTP/1.1\r\n", result);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    let (head, body) = get(addr, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    for name in [
        "anomalyd_results_total ",
        "anomalyd_open_anomalies{kind=\"spike\",state=\"anomaly\"} 0",
        "anomalyd_analyzer_runs_total ",
        // The example notifier needs a secret that is not set here.
        "anomalyd_gitops_documents_in_error 1",
        "anomalyd_outbox_depth 0",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_start_time_seconds ",
    ] {
        assert!(body.contains(name), "{name} missing from:\n{body}");
    }
    // The example probe targets port 8080, not this server. Its failed results may add to the
    // totals, so these are lower bounds.
    assert!(metric_value(&body, "anomalyd_results_total") >= 1, "{body}");
    assert!(
        metric_value(&body, "anomalyd_field_evaluations_total") >= 2,
        "{body}"
    );
    assert!(metric_value(&body, "anomalyd_series") >= 2, "{body}");
    let (status, _) = server.terminate();
    assert!(status.success());
}

/// Reads the value of an unlabelled metric.
fn metric_value(exposition: &str, name: &str) -> u64 {
    let line = exposition
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("{name} missing"));
    let value = line.split_whitespace().nth(1).expect("a value");
    value.parse().expect("an integer value")
}

#[test]
fn journal_logs_omit_time_and_secrets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(
        &dir.path().join("data"),
        &[
            ("JOURNAL_STREAM", "8:12345"),
            ("ANOMALYD_SECRET_WEBHOOK_URL", SECRET),
            ("RUST_LOG", "debug"),
        ],
        &["--config-dir", EXAMPLES],
    );
    let starting = server.wait_for_line("anomalyd starting");
    assert!(starting.starts_with("INFO "), "{starting}");
    let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(starting.contains(&version), "{starting}");
    server.addr();
    let (status, log) = server.terminate();
    assert!(status.success());
    for line in &log {
        assert!(!line.contains("secret-token"), "secret logged: {line}");
        assert!(!line.starts_with("20"), "timestamp under systemd: {line}");
        let level = line.split(' ').next().unwrap_or_default();
        assert!(
            ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level),
            "line does not start with a level: {line:?}"
        );
    }
}

#[test]
fn logs_json_lines_when_asked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(
        &dir.path().join("data"),
        &[("ANOMALYD_LOG_FORMAT", "json")],
        &[],
    );
    let line = server.wait_for_line("anomalyd starting");
    let value: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(value["level"], "INFO");
    assert_eq!(value["fields"]["version"], env!("CARGO_PKG_VERSION"));
    // SIGTERM before the handlers are installed would end the process by the default action.
    server.addr();
    let (status, log) = server.terminate();
    assert!(status.success(), "exit {status:?}; log: {log:#?}");
}

/// `systemd-analyze verify` checks that the binary exists, so a copy names the built one.
#[test]
fn unit_file_passes_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is missing in CI; .ci/run installs the systemd package"
        );
        eprintln!("skipped: systemd-analyze is not installed (apt-get install systemd)");
        return;
    }
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/anomalyd.service"
    ))
    .expect("read the unit");
    assert!(unit.contains("ExecStart=/usr/bin/anomalyd "), "{unit}");
    let unit = unit.replace(
        "ExecStart=/usr/bin/anomalyd ",
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_anomalyd")),
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("anomalyd.service");
    std::fs::write(&path, unit).expect("write the unit copy");
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run systemd-analyze");

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "verify failed: {stderr}");
    // verify also reports problems as warnings without failing; none are expected.
    let own: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("anomalyd.service"))
        .collect();
    assert!(own.is_empty(), "verify warnings: {own:#?}");
}

#[test]
fn sighup_without_config_folder_keeps_serving() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(&dir.path().join("data"), &[], &[]);
    let addr = server.addr();
    let pid = server.child.id().to_string();
    let sent = Command::new("kill").args(["-HUP", &pid]).status();
    assert!(sent.expect("run kill").success());
    server.wait_for_line("SIGHUP received");
    let (head, _) = get(addr, "/healthz");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (status, _) = server.terminate();
    assert!(
        status.success(),
        "exit status after SIGHUP and SIGTERM: {status}"
    );
}
