//! The `healthcheck-script.execute` strategy: runs a program directly, without a shell, and
//! reports the fields of the `healthcheck-script.execute` collector.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::reader::ConfigReader;
use super::{Measurement, ProbeConfigError};
use crate::engine::Value;

pub(crate) const STRATEGY: &str = "healthcheck-script.execute";
pub(crate) const COLLECTOR: &str = "healthcheck-script.execute";
pub(crate) const FIELDS: &[&str] = &[
    "exitCode",
    "executionTimeMs",
    "success",
    "timedOut",
    "stdout",
    "stderr",
];
pub(crate) const CONFIG_KEYS: &[&str] = &["command", "args", "timeout", "cwd", "env"];

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes of stdout and of stderr captured per run. The rest is read and dropped, so a program that
/// writes a lot does not block on a full pipe.
pub(crate) const MAX_OUTPUT_BYTES: usize = 4096;

/// A validated command probe.
#[derive(Debug)]
pub(crate) struct ScriptProbe {
    command: String,
    args: Vec<String>,
    pub(crate) timeout: Duration,
    cwd: Option<String>,
    env: Vec<(String, String)>,
}

/// The exit code and captured output of a finished or killed program.
struct Exit {
    code: Option<i32>,
    timed_out: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl ScriptProbe {
    pub(crate) fn from_config(reader: &ConfigReader<'_>) -> Result<Self, ProbeConfigError> {
        let command = reader.required_string("command")?;
        if command.trim().is_empty() {
            return Err(reader.error("command", "is empty"));
        }
        Ok(Self {
            command,
            args: reader.strings("args")?,
            timeout: reader.timeout("timeout", DEFAULT_TIMEOUT)?,
            cwd: reader.string("cwd")?,
            env: reader.pairs("env")?,
        })
    }

    /// Runs the program; on timeout it is killed and the run reports `timedOut`.
    pub(crate) async fn run(&self) -> Measurement {
        let started = Instant::now();
        let exit = self.execute().await;
        let elapsed = started.elapsed();
        match exit {
            Ok(exit) => self.measurement(exit, elapsed),
            Err(error) => Measurement {
                fields: vec![
                    ("success", Value::Bool(false)),
                    ("timedOut", Value::Bool(false)),
                ],
                body: None,
                failure: Some(format!("failed to run `{}`: {error}", self.command)),
                elapsed,
            },
        }
    }

    // NOTE: only the started program is killed on timeout. A child it started keeps running,
    // and while that child keeps stdout or stderr open the run waits until the timeout.
    async fn execute(&self) -> std::io::Result<Exit> {
        let mut child = self.command().spawn()?;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut exit_status = None;
        let stdout_pipe = child.stdout.take();
        let stderr_pipe = child.stderr.take();
        let capture = async {
            tokio::join!(
                read_capped(stdout_pipe, &mut stdout),
                read_capped(stderr_pipe, &mut stderr),
                async { exit_status = Some(child.wait().await) },
            )
        };
        // The output read so far stays in the buffers when the timeout ends the capture.
        let _ = tokio::time::timeout(self.timeout, capture).await;

        let timed_out = exit_status.is_none();
        let code = match exit_status {
            Some(status) => status?.code(),
            None => {
                child.kill().await?;
                None
            }
        };
        Ok(Exit {
            code,
            timed_out,
            stdout,
            stderr,
        })
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.command);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Only the service itself talks to systemd; a script must not send it READY or
            // watchdog pings.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID");
        // The service's own settings include the API token and notifier secrets, which a
        // probed program has no use for.
        for (name, _) in std::env::vars_os() {
            if name.as_encoded_bytes().starts_with(b"ANOMALYD_") {
                command.env_remove(name);
            }
        }
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        command.envs(self.env.iter().map(|(name, value)| (name, value)));
        command
    }

    fn measurement(&self, exit: Exit, elapsed: Duration) -> Measurement {
        let mut fields = Vec::with_capacity(6);
        // A program ended by a signal has no exit code.
        if let Some(code) = exit.code {
            fields.push(("exitCode", Value::Number(f64::from(code))));
        }
        fields.extend([
            (
                "executionTimeMs",
                Value::Number(elapsed.as_secs_f64() * 1000.0),
            ),
            ("success", Value::Bool(exit.code == Some(0))),
            ("timedOut", Value::Bool(exit.timed_out)),
            (
                "stdout",
                Value::Text(String::from_utf8_lossy(&exit.stdout).into_owned()),
            ),
            (
                "stderr",
                Value::Text(String::from_utf8_lossy(&exit.stderr).into_owned()),
            ),
        ]);
        let failure = exit.timed_out.then(|| {
            format!(
                "`{}` timed out after {} ms and was killed",
                self.command,
                self.timeout.as_millis()
            )
        });
        Measurement {
            fields,
            body: None,
            failure,
            elapsed,
        }
    }
}

/// Reads a pipe to its end, keeping the first [`MAX_OUTPUT_BYTES`] bytes in `captured`.
async fn read_capped(pipe: Option<impl AsyncRead + Unpin>, captured: &mut Vec<u8>) {
    let Some(mut pipe) = pipe else {
        return;
    };
    let mut chunk = [0_u8; 4096];
    // A read error ends the capture early; the exit status still decides the run.
    while let Ok(read) = pipe.read(&mut chunk).await {
        if read == 0 {
            break;
        }
        let room = MAX_OUTPUT_BYTES.saturating_sub(captured.len());
        captured.extend_from_slice(&chunk[..read.min(room)]);
    }
}
