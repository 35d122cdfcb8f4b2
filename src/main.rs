//! The `anomalyd` binary: parses flags, sets up logging and hands over to the library.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anomalyd::config::Secret;
use anomalyd::gitops::{self, Limits, SecretSource, Severity};
use anomalyd::server::{self, ServeOptions};
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{Format, FormatEvent, FormatFields, Full, Writer};
use tracing_subscriber::registry::LookupSpan;

/// Learns per-field baselines of health-check results and reports anomalies.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Log line format on stderr. `text` leaves out timestamps when run by systemd, whose
    /// journal adds its own.
    #[arg(long, global = true, env = "ANOMALYD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the service: results API, detection, hourly analyzer and event stream.
    Serve {
        /// Directory of the data file `anomalyd.redb`; created when missing.
        #[arg(long, env = "ANOMALYD_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// Address to listen on, as IP:PORT or HOST:PORT. A host name is resolved, and the
        /// first of its addresses that can be bound is used.
        #[arg(long, env = "ANOMALYD_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Folder of GitOps YAML files to load and watch; without it the configuration is empty.
        #[arg(long, env = "ANOMALYD_CONFIG_DIR")]
        config_dir: Option<PathBuf>,
        /// Folder with one file per secret, named after the secret.
        #[arg(long, env = "ANOMALYD_SECRETS_DIR")]
        secrets_dir: Option<PathBuf>,
        /// File holding the API token every write must carry as `Authorization: Bearer`;
        /// required to listen on a non-loopback address. Without it the token is read from
        /// `ANOMALYD_TOKEN`, if set.
        #[arg(long, env = "ANOMALYD_TOKEN_FILE")]
        token_file: Option<PathBuf>,
        /// Base URL of the settings page used in notification links; defaults to
        /// `http://<listen address>`.
        #[arg(long, env = "ANOMALYD_PUBLIC_URL")]
        public_url: Option<String>,
        /// Age after which an undelivered notification is given up, such as `24h`, `90m` or `2d`.
        #[arg(long, env = "ANOMALYD_DELIVERY_MAX_AGE", default_value = "24h", value_parser = anomalyd::notify::parse_duration)]
        delivery_max_age: std::time::Duration,
        /// Days a recovered anomaly is kept before it is deleted, from 1 to 3650.
        #[arg(long, env = "ANOMALYD_RETENTION_DAYS", default_value_t = 30,
              value_parser = clap::value_parser!(u32).range(1..=3650))]
        retention_days: u32,
    },
    /// Checks a config folder and prints every problem as `file:line:col: severity: message`.
    /// Exits with 1 when any document has an error.
    Check {
        /// The folder of YAML files to check.
        dir: PathBuf,
        /// Folder with one file per secret, named after the secret.
        #[arg(long, env = "ANOMALYD_SECRETS_DIR")]
        secrets_dir: Option<PathBuf>,
    },
    /// Prints the JSON Schema (draft 2020-12) of the config file format, for editors.
    Schema,
    /// Replays a recorded series (NAB CSV or NDJSON results) through the detector and analyzer
    /// in event time. Writes events as NDJSON and a summary to stderr.
    Replay(Box<anomalyd::replay::ReplayArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = cli.log_format;
    match run(cli) {
        Ok(code) => code,
        // The reader stopped reading on purpose (`anomalyd schema | head -c1`), so the output
        // ends quietly with exit code 0. Rust ignores SIGPIPE, and restoring the conventional
        // 141 would need unsafe code; 0 also keeps `set -o pipefail` scripts from failing
        // because their reader had enough.
        Err(error) if is_closed_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            report_fatal(log_format, &error_chain(&error));
            ExitCode::FAILURE
        }
    }
}

/// Prints the error that ends the process as an `error: ...` line on stderr. In json mode it
/// is first logged as one JSON line at level ERROR, so log collectors record why it stopped.
fn report_fatal(format: LogFormat, message: &str) {
    if format == LogFormat::Json {
        init_logging(format, "error");
        tracing::error!(error = message, "anomalyd stopped on a fatal error");
    }
    print_stderr(&format!("error: {message}\n"));
}

/// Writes command output to stdout. A reader that closed the pipe makes this fail with
/// `BrokenPipe`, which `main` turns into a quiet exit (see [`is_closed_pipe`]).
fn print_stdout(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Writes a message to stderr. A failed write is dropped, because there is nowhere left to
/// report it.
fn print_stderr(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Returns whether an error comes from writing to a pipe whose reader has closed it.
fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io_error| io_error.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Joins an error and its causes on one line, leaving out a cause whose text the message
/// already contains (many messages name their cause themselves).
fn error_chain(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let log_format = cli.log_format;
    match cli.command {
        Command::Serve {
            data_dir,
            listen,
            config_dir,
            secrets_dir,
            token_file,
            public_url,
            delivery_max_age,
            retention_days,
        } => {
            init_logging(log_format, "info,tokio_cron_scheduler=warn");
            tracing::info!(version = env!("CARGO_PKG_VERSION"), "anomalyd starting");
            let mut options = ServeOptions::new(data_dir);
            options.config_dir = config_dir;
            options.secrets_dir = secrets_dir;
            options.token = api_token(token_file.as_deref())?;
            if let Some(url) = &public_url {
                check_public_url(url)?;
            }
            options.delivery.public_url = public_url.unwrap_or_default();
            options.delivery.max_age = delivery_max_age;
            options.writer.retention_days = retention_days;
            serve(options, &listen)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { dir, secrets_dir } => check(&dir, secrets_dir),
        Command::Schema => {
            print_stdout(&format!("{:#}\n", gitops::schema::json_schema()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay(args) => {
            init_logging(log_format, "warn");
            anomalyd::replay::run(&args, &mut std::io::stderr().lock())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads the API token from `--token-file`, else from `ANOMALYD_TOKEN`. Surrounding whitespace
/// is dropped; an empty token is an error rather than no token.
fn api_token(file: Option<&std::path::Path>) -> anyhow::Result<Option<Secret>> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?,
        None => match std::env::var("ANOMALYD_TOKEN") {
            Ok(text) => text,
            Err(_) => return Ok(None),
        },
    };
    let token = text.trim();
    anyhow::ensure!(
        !token.is_empty(),
        "the API token is empty; put the token in the file or in ANOMALYD_TOKEN"
    );
    Ok(Some(Secret::new(token)))
}

/// Rejects a `--public-url` that would break every link in the notifications: it must be an
/// absolute http or https URL with a host.
fn check_public_url(text: &str) -> anyhow::Result<()> {
    let problem = match reqwest::Url::parse(text) {
        Err(error) => Some(error.to_string()),
        Ok(url) if !matches!(url.scheme(), "http" | "https") => {
            Some(format!("the scheme {} is not http or https", url.scheme()))
        }
        Ok(url) if url.host_str().is_none_or(str::is_empty) => Some("it has no host".to_owned()),
        Ok(_) => None,
    };
    match problem {
        None => Ok(()),
        Some(problem) => anyhow::bail!(
            "invalid --public-url (ANOMALYD_PUBLIC_URL) {text:?}: {problem}; give the absolute \
             http or https URL the settings page is reached at, such as \
             https://anomalyd.example.com"
        ),
    }
}

fn serve(options: ServeOptions, listen: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = bind(listen).await?;
        let stop = shutdown_signal(options.config_dir.is_some())?;
        server::run(listener, options, stop).await?;
        Ok(())
    })
}

/// Resolves the `--listen` value and binds the first resolved address that accepts.
async fn bind(listen: &str) -> anyhow::Result<TcpListener> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(listen)
        .await
        .map_err(|error| {
            anyhow::anyhow!(
                "cannot resolve --listen value {listen:?} ({error}); write HOST:PORT, such as \
                 127.0.0.1:8080 or localhost:8080"
            )
        })?
        .collect();
    let mut failure = None;
    for addr in &addrs {
        match TcpListener::bind(addr).await {
            Ok(listener) => {
                // With port 0 the kernel picks the port, so log the address actually bound.
                let bound = listener.local_addr().unwrap_or(*addr);
                let candidates = addrs.len();
                tracing::info!(listen, addr = %bound, candidates, "bound the --listen address");
                return Ok(listener);
            }
            Err(error) => {
                tracing::warn!(listen, %addr, %error, "binding a resolved address failed; trying the next");
                failure = Some(format!(
                    "cannot listen on {addr} (from --listen {listen:?}): {error}"
                ));
            }
        }
    }
    let message = failure.unwrap_or_else(|| {
        format!(
            "--listen value {listen:?} resolves to no address; write HOST:PORT with an IP address"
        )
    });
    Err(anyhow::anyhow!(message))
}

/// Completes on SIGTERM (how systemd stops a service) or ctrl-c. The handlers are registered
/// before serving starts, so an early signal is not lost. SIGHUP never stops the service: the
/// config folder watcher rescans on it, and without a folder it is only logged.
fn shutdown_signal(has_config_dir: bool) -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    Ok(async move {
        loop {
            tokio::select! {
                _ = terminate.recv() => {
                    tracing::info!("SIGTERM received");
                    return;
                }
                _ = tokio::signal::ctrl_c() => {
                    tracing::info!("interrupt received");
                    return;
                }
                _ = hangup.recv() => {
                    if !has_config_dir {
                        tracing::info!("SIGHUP received; there is no config folder to rescan");
                    }
                }
            }
        }
    })
}

fn check(dir: &std::path::Path, secrets_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    if !dir.exists() {
        anyhow::bail!(
            "config folder {} does not exist: create it, or give anomalyd check the folder of \
             YAML files",
            dir.display()
        );
    }
    if !dir.is_dir() {
        anyhow::bail!(
            "config folder {} is not a folder: give anomalyd check the folder of YAML files",
            dir.display()
        );
    }
    let secrets = SecretSource { dir: secrets_dir };
    let problems = gitops::check_folder(dir, &secrets, &Limits::default())
        .map_err(|e| anyhow::anyhow!("cannot read the config folder {}: {e}", dir.display()))?;
    for problem in &problems {
        // A reader that stopped early (`| head`) ends the listing, but the exit code still
        // reports whether the folder has errors.
        match print_stdout(&format!("{problem}\n")) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(error) => return Err(error).context("cannot write the problems to stdout"),
        }
    }
    let errors = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    let warnings = problems.len() - errors;
    // The summary goes to stderr so the problem lines on stdout stay easy to parse.
    print_stderr(&format!(
        "{}: {}, {}\n",
        dir.display(),
        counted(errors, "error"),
        counted(warnings, "warning")
    ));
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Formats a count with its noun, for example `1 error` or `2 warnings`.
fn counted(count: usize, noun: &str) -> String {
    match count {
        1 => format!("1 {noun}"),
        _ => format!("{count} {noun}s"),
    }
}

/// Logs to stderr; `RUST_LOG` overrides `default_filter`. Under systemd (`JOURNAL_STREAM` or
/// `INVOCATION_ID` set) text lines carry no timestamp, since the journal records one. A second
/// call keeps the logger of the first.
fn init_logging(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let under_systemd =
        std::env::var_os("JOURNAL_STREAM").is_some() || std::env::var_os("INVOCATION_ID").is_some();
    // An error means a logger is already installed, which is the one to keep.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text if under_systemd => builder
            .event_format(JournalFormat(
                tracing_subscriber::fmt::format()
                    .without_time()
                    .with_level(false),
            ))
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Text lines for the systemd journal: no timestamp, because the journal adds its own, and the
/// level first without the padding `fmt` puts before `INFO` and `WARN`.
struct JournalFormat(Format<Full, ()>);

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "{} ", event.metadata().level())?;
        self.0.format_event(ctx, writer, event)
    }
}
