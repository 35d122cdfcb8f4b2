//! The `anomalyd` binary: parses flags, sets up logging and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anomalyd::gitops::{self, Limits, SecretSource, Severity};
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Learns per-field baselines of health-check results and reports anomalies.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { dir, secrets_dir } => check(&dir, secrets_dir),
        Command::Schema => {
            println!("{:#}", gitops::schema::json_schema());
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay(args) => {
            init_logging("warn");
            anomalyd::replay::run(&args, &mut std::io::stderr().lock())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check(dir: &std::path::Path, secrets_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let secrets = SecretSource { dir: secrets_dir };
    let problems = gitops::check_folder(dir, &secrets, &Limits::default())
        .map_err(|e| anyhow::anyhow!("cannot read the config folder {}: {e}", dir.display()))?;
    for problem in &problems {
        println!("{problem}");
    }
    let failed = problems.iter().any(|p| p.severity == Severity::Error);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Logs to stderr; `RUST_LOG` overrides `default_filter`.
fn init_logging(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
