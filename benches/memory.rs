//! Resident memory of `anomalyd serve`: idle with the example folder, then with 10 000 series
//! seeded through the results API. Reads VmRSS of the server process from /proc.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SYSTEMS: usize = 1_000;
const FIELDS: usize = 10;
const ROUNDS: usize = 5;
const WAIT: Duration = Duration::from_secs(60);

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (child, addr) = start(dir.path());
    let pid = child.id();

    std::thread::sleep(Duration::from_secs(3));
    let idle = vm_rss_kib(pid);
    println!(
        "idle with examples/gitops: VmRSS {} KiB ({:.1} MB)",
        idle,
        mb(idle)
    );

    let started = Instant::now();
    for round in 0..ROUNDS {
        post(addr, &batch(round));
    }
    println!(
        "seeded {} series ({SYSTEMS} results x {FIELDS} fields, {ROUNDS} rounds) in {:.1} s",
        SYSTEMS * FIELDS,
        started.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(2));
    let loaded = vm_rss_kib(pid);
    let peak = vm_hwm_kib(pid);
    println!(
        "with 10 000 series: VmRSS {} KiB ({:.1} MB)",
        loaded,
        mb(loaded)
    );
    println!(
        "peak during seeding: VmHWM {} KiB ({:.1} MB)",
        peak,
        mb(peak)
    );

    stop(child);

    // A restart holds only what was restored from the file, without the request buffers.
    let (child, _) = start(dir.path());
    std::thread::sleep(Duration::from_secs(3));
    let restored = vm_rss_kib(child.id());
    println!(
        "restarted with 10 000 series: VmRSS {} KiB ({:.1} MB)",
        restored,
        mb(restored)
    );
    stop(child);
}

/// Starts `anomalyd serve` on the example folder with its data in `data`.
fn start(data: &std::path::Path) -> (Child, SocketAddr) {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/gitops");
    let mut child = Command::new(env!("CARGO_BIN_EXE_anomalyd"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config-dir",
            examples,
            "--data-dir",
        ])
        .arg(data)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start anomalyd");
    let addr = listening_address(&mut child);
    (child, addr)
}

/// Sends SIGTERM and checks that the server exits with status 0.
fn stop(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(status.expect("run kill").success());
    let exit = child.wait().expect("wait for anomalyd");
    assert!(exit.success(), "anomalyd exited with {exit:?}");
}

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1_000_000.0
}

/// Reads the address from the "listening" log line, then keeps draining the log.
fn listening_address(child: &mut Child) -> SocketAddr {
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + WAIT;
    let addr = loop {
        assert!(
            Instant::now() < deadline,
            "anomalyd did not start listening"
        );
        let line = lines
            .next()
            .expect("anomalyd exited early")
            .expect("read the log");
        if let Some(rest) = line.split(" addr=").nth(1) {
            let text = rest.split_whitespace().next().expect("an address");
            break text.parse().expect("a socket address");
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    addr
}

/// Builds one result per system with `FIELDS` numeric fields, as NDJSON.
fn batch(round: usize) -> String {
    let mut body = String::new();
    for system in 0..SYSTEMS {
        let fields: Vec<String> = (0..FIELDS)
            .map(|f| format!("\"m{f}\": {}", 100 + (system + f + round) % 7))
            .collect();
        body.push_str(&format!(
            "{{\"system\": \"sys-{system}\", \"healthcheck\": \"web\", \"environment\": \"prod\", \
             \"status\": \"healthy\", \"timestamp\": \"2026-01-02T03:{round:02}:00Z\", \
             \"collectors\": {{\"custom.metrics\": {{{}}}}}}}\n",
            fields.join(", ")
        ));
    }
    body
}

fn post(addr: SocketAddr, body: &str) {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("set timeout");
    write!(
        stream,
        "POST /api/v1/results HTTP/1.1\r\nHost: bench\r\nContent-Type: application/x-ndjson\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send results");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read reply");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

fn proc_status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .expect("the status has the key");
    line.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a number of KiB")
}

fn vm_rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmRSS:")
}

fn vm_hwm_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmHWM:")
}
