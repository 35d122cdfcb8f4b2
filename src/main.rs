//! The `anomalyd` binary: parses flags, sets up logging and hands over to the library.

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
    /// Replay a recorded series (NAB CSV or NDJSON results) through the detector and analyzer
    /// in event time; writes events as NDJSON and a summary to stderr.
    Replay(anomalyd::replay::ReplayArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Replay(args) => {
            init_logging("warn");
            anomalyd::replay::run(&args, &mut std::io::stderr().lock())?;
        }
    }
    Ok(())
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
