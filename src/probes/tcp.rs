//! The `healthcheck-tcp.tcp` strategy: one TCP connection per run, optionally reading the
//! server's banner, reported as the fields of the `healthcheck-tcp.banner` collector.

use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::reader::ConfigReader;
use super::{Measurement, ProbeConfigError};
use crate::engine::Value;

pub(crate) const STRATEGY: &str = "healthcheck-tcp.tcp";
pub(crate) const COLLECTOR: &str = "healthcheck-tcp.banner";
pub(crate) const FIELDS: &[&str] = &["readTimeMs", "hasBanner", "banner"];
pub(crate) const CONFIG_KEYS: &[&str] = &["host", "port", "timeout", "readBanner"];

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Maximum banner length kept, in bytes. Reading stops at the first line break or here.
const MAX_BANNER_BYTES: usize = 1024;

/// A validated TCP probe.
#[derive(Debug)]
pub(crate) struct TcpProbe {
    host: String,
    port: u16,
    pub(crate) timeout: Duration,
    read_banner: bool,
}

impl TcpProbe {
    pub(crate) fn from_config(reader: &ConfigReader<'_>) -> Result<Self, ProbeConfigError> {
        let host = reader.required_string("host")?;
        if host.trim().is_empty() {
            return Err(reader.error("host", "is empty"));
        }
        let port = reader
            .integer("port", 1..=65_535)?
            .ok_or_else(|| reader.error("port", "is missing"))?;
        Ok(Self {
            host,
            port: u16::try_from(port).expect("the range check keeps ports below 65536"),
            timeout: reader.timeout("timeout", DEFAULT_TIMEOUT)?,
            read_banner: reader.boolean("readBanner", false)?,
        })
    }

    /// Connects and, when configured, reads the banner. `readTimeMs` is the time from the start
    /// of the connection to the end of the banner, or to the open connection without one.
    pub(crate) async fn run(&self) -> Measurement {
        let started = Instant::now();
        let outcome = tokio::time::timeout(self.timeout, self.exchange()).await;
        let elapsed = started.elapsed();
        match outcome {
            Ok(Ok(banner)) => measured(banner, elapsed),
            Ok(Err(error)) => failed(error, elapsed),
            Err(_) => failed(self.timeout_reason(), elapsed),
        }
    }

    async fn exchange(&self) -> Result<Option<String>, String> {
        let mut stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|error| {
                format!("connection to {}:{} failed: {error}", self.host, self.port)
            })?;
        if !self.read_banner {
            return Ok(None);
        }
        read_banner(&mut stream).await.map_err(|error| {
            format!(
                "reading the banner of {}:{} failed: {error}",
                self.host, self.port
            )
        })
    }

    fn timeout_reason(&self) -> String {
        let step = if self.read_banner {
            "connecting or reading the banner"
        } else {
            "connecting"
        };
        format!(
            "{step} to {}:{} timed out after {} ms",
            self.host,
            self.port,
            self.timeout.as_millis()
        )
    }
}

fn measured(banner: Option<String>, elapsed: Duration) -> Measurement {
    let mut fields = vec![
        ("readTimeMs", Value::Number(elapsed.as_secs_f64() * 1000.0)),
        ("hasBanner", Value::Bool(banner.is_some())),
    ];
    if let Some(banner) = banner {
        fields.push(("banner", Value::Text(banner)));
    }
    Measurement {
        fields,
        body: None,
        failure: None,
        elapsed,
    }
}

/// Builds the measurement of a failed run, which has no read time to report.
fn failed(reason: String, elapsed: Duration) -> Measurement {
    Measurement {
        fields: vec![("hasBanner", Value::Bool(false))],
        body: None,
        failure: Some(reason),
        elapsed,
    }
}

/// Reads up to the first line break; `None` when the server closes without sending anything.
async fn read_banner(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut banner = Vec::new();
    let mut chunk = [0_u8; 256];
    while banner.len() < MAX_BANNER_BYTES && !banner.contains(&b'\n') {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        banner.extend_from_slice(&chunk[..read]);
    }
    let line = banner
        .split(|byte| *byte == b'\n')
        .next()
        .unwrap_or_default();
    let line = &line[..line.len().min(MAX_BANNER_BYTES)];
    let text = String::from_utf8_lossy(line).trim_end().to_owned();
    Ok((!banner.is_empty()).then_some(text))
}
