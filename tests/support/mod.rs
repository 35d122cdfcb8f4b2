//! Test helpers: a server on 127.0.0.1:0 with a temporary data directory, a small HTTP/1.1
//! client over a raw TCP stream, and a Server-Sent Events reader.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anomalyd::server::{ServeOptions, run};
use serde_json::Value as Json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// Every network step of a test must finish within this.
pub const STEP: Duration = Duration::from_secs(20);

/// Awaits `fut`, failing the test when it takes longer than `STEP`.
pub async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STEP, fut)
        .await
        .expect("step timed out")
}

/// A running server with its own data directory.
pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _temp: Option<tempfile::TempDir>,
}

impl TestServer {
    pub async fn start() -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_path_buf();
        let mut server = Self::start_in(dir).await;
        server._temp = Some(temp);
        server
    }

    /// Starts a server on an existing data directory (for restart tests).
    pub async fn start_in(dir: PathBuf) -> Self {
        Self::start_with(dir, |_| {}).await
    }

    /// Starts a server on `dir` after `configure` adjusted its options.
    pub async fn start_with(dir: PathBuf, configure: impl FnOnce(&mut ServeOptions)) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let mut options = ServeOptions::new(&dir);
        options.hourly_analyzer = false;
        // Longer than `STEP`, so a connection that keeps shutdown waiting fails the test.
        options.shutdown_timeout = Duration::from_secs(30);
        configure(&mut options);
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            run(listener, options, shutdown).await.expect("server run");
        });
        let server = Self {
            addr,
            dir,
            stop: Some(stop),
            task: Some(task),
            _temp: None,
        };
        within(server.wait_ready()).await;
        server
    }

    async fn wait_ready(&self) {
        loop {
            if let Ok(r) = request(self.addr, "GET", "/healthz", &[], b"").await
                && r.status == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Shuts the server down and waits until the data file is closed.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            within(task).await.expect("server task");
        }
        self._temp.take()
    }

    pub async fn get(&self, path: &str) -> Reply {
        within(request(self.addr, "GET", path, &[], b""))
            .await
            .expect("GET")
    }

    pub async fn post(&self, path: &str, body: &str) -> Reply {
        let headers = [("content-type", "application/json")];
        within(request(self.addr, "POST", path, &headers, body.as_bytes()))
            .await
            .expect("POST")
    }

    /// Sends one request with `headers` on a fresh connection.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        within(request(self.addr, method, path, headers, body))
            .await
            .expect("request")
    }

    pub async fn post_ndjson(&self, body: &str) -> Reply {
        let headers = [("content-type", "application/x-ndjson")];
        within(request(
            self.addr,
            "POST",
            "/api/v1/results",
            &headers,
            body.as_bytes(),
        ))
        .await
        .expect("POST")
    }
}

/// A reply: status, headers and body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// Returns the value of the first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> Json {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "reply is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request on a fresh connection.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    let stream = TcpStream::connect(addr).await?;
    let mut conn = Conn {
        reader: BufReader::new(stream),
    };
    conn.send(method, path, headers, body).await
}

/// A keep-alive HTTP/1.1 connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::new(stream),
        })
    }

    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Reply> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        let (status, headers) = read_head(&mut self.reader).await?;
        let length = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .and_then(|(_, value)| value.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).await?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

/// Reads a status line and headers; returns the status and the headers, names in lower case.
async fn read_head(
    reader: &mut BufReader<TcpStream>,
) -> std::io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    Ok((status, headers))
}

/// One received Server-Sent Event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: u64,
    pub name: String,
    pub data: Json,
}

/// Reads events from `GET /api/v1/events`.
pub struct SseReader {
    reader: BufReader<TcpStream>,
}

impl SseReader {
    pub async fn connect(addr: SocketAddr, last_event_id: Option<u64>) -> Self {
        let mut stream = within(TcpStream::connect(addr)).await.expect("connect");
        let mut head = "GET /api/v1/events HTTP/1.1\r\nhost: test\r\n".to_owned();
        if let Some(id) = last_event_id {
            head.push_str(&format!("last-event-id: {id}\r\n"));
        }
        head.push_str("\r\n");
        within(stream.write_all(head.as_bytes()))
            .await
            .expect("write");
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        loop {
            line.clear();
            within(reader.read_line(&mut line))
                .await
                .expect("read head");
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        Self { reader }
    }

    /// Returns the next event, skipping comments and chunk framing.
    pub async fn next(&mut self) -> SseEvent {
        within(self.next_inner()).await
    }

    async fn next_inner(&mut self) -> SseEvent {
        let (mut id, mut name, mut data) = (None, None, None);
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.reader.read_line(&mut line).await.expect("read event");
            assert!(n > 0, "event stream ended");
            let text = line.trim_end_matches(['\r', '\n']);
            if let Some(v) = text.strip_prefix("id: ") {
                id = v.parse().ok();
            } else if let Some(v) = text.strip_prefix("event: ") {
                name = Some(v.to_owned());
            } else if let Some(v) = text.strip_prefix("data: ") {
                data = serde_json::from_str(v).ok();
            } else if text.is_empty() && id.is_some() {
                break;
            }
        }
        SseEvent {
            id: id.expect("id"),
            name: name.expect("event name"),
            data: data.expect("data"),
        }
    }
}

/// Installs, once per test binary, a global subscriber that writes nothing, for tests that capture
/// log lines with a thread-local subscriber. tracing decides once per log statement whether any
/// subscriber wants it, at the first thread that reaches it. While the capturing subscriber is the
/// only one, a test thread without a subscriber that gets there first caches "no" for the whole
/// process and the capturing test misses the line. The global subscriber wants every line, so
/// "no" is never cached.
pub fn keep_log_lines_enabled() {
    // Only the first call installs it; later calls find it set, which is the goal.
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
}

/// Formats the RFC 3339 time `minute` minutes after 2026-01-02T00:00:00Z.
pub fn minute_time(minute: u32) -> String {
    let base: jiff::Timestamp = "2026-01-02T00:00:00Z".parse().expect("base time");
    (base + jiff::SignedDuration::from_mins(i64::from(minute))).to_string()
}

/// Builds one result in the anomalyd shape at `minute_time(minute)`.
pub fn result(system: &str, minute: u32, field_json: &str) -> String {
    format!(
        r#"{{"system":"{system}","healthcheck":"web","status":"healthy","timestamp":"{}","collectors":{{"healthcheck-http.request":{{{field_json}}}}}}}"#,
        minute_time(minute)
    )
}

/// Builds a result with only a latency field.
pub fn latency(system: &str, minute: u32, ms: f64) -> String {
    result(system, minute, &format!(r#""responseTimeMs":{ms}"#))
}

pub const LATENCY_FIELD: &str = "collectors.healthcheck-http.request.responseTimeMs";
