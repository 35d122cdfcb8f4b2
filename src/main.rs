//! The `anomalyd` binary: parses flags, sets up logging and hands over to the library.

use clap::{Parser, Subcommand};

/// Learns per-field baselines of health-check results and reports anomalies.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {}
}
