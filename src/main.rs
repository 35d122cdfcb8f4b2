//! The `anomalyd` binary: parses flags, sets up logging and hands over to the library.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use anomalyd::server::{self, ServeOptions};

/// Learns per-field baselines of health-check results and reports anomalies.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the service: results API, detection, hourly analyzer and event stream.
    Serve {
        /// Directory of the data file `anomalyd.redb`; created when missing.
        #[arg(long, env = "ANOMALYD_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// Address to listen on.
        #[arg(long, env = "ANOMALYD_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Serve { data_dir, listen } => serve(data_dir, listen),
    }
}

fn init_logging() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tokio_cron_scheduler=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn serve(data_dir: PathBuf, listen: SocketAddr) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let stop = shutdown_signal()?;
        server::run(listener, ServeOptions::new(data_dir), stop).await?;
        Ok(())
    })
}

/// Completes on SIGTERM (how systemd stops a service) or ctrl-c. The handlers are registered
/// before serving starts, so an early signal is not lost.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received"),
        }
    })
}
