//! Runs the built-in probes inside `serve` and feeds their results into the writer, the same
//! path results posted to the API take.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::ConfigSnapshot;
use crate::http_client::ClientError;
use crate::probes::{ProbeOptions, Probes};
use crate::series::CheckResult;
use crate::writer::WriterHandle;

/// Results the probes may have waiting before a probe's send waits for the writer.
const PENDING_RESULTS: usize = 1024;

/// Most results handed to the writer in one request.
const RESULTS_PER_WRITE: usize = 256;

/// The probes and the task that forwards their results.
pub(super) struct RunningProbes {
    probes: Probes,
    forwarder: JoinHandle<()>,
}

impl RunningProbes {
    /// Starts the probes of every runnable healthcheck in `config`.
    pub(super) fn start(
        config: watch::Receiver<Arc<ConfigSnapshot>>,
        writer: WriterHandle,
    ) -> Result<Self, ClientError> {
        let (sink, results) = mpsc::channel(PENDING_RESULTS);
        let probes = Probes::start(config, sink, ProbeOptions::default())?;
        let forwarder = tokio::spawn(forward(results, writer));
        Ok(Self { probes, forwarder })
    }

    /// Stops every probe, then waits until their last results reached the writer.
    pub(super) async fn stop(self) {
        self.probes.stop().await;
        if let Err(error) = self.forwarder.await {
            tracing::error!(%error, "probe result forwarder ended abnormally");
        }
    }
}

/// Hands results to the writer in groups until every probe has stopped.
async fn forward(mut results: mpsc::Receiver<CheckResult>, writer: WriterHandle) {
    let mut batch = Vec::with_capacity(RESULTS_PER_WRITE);
    while results.recv_many(&mut batch, RESULTS_PER_WRITE).await > 0 {
        let count = batch.len();
        if let Err(error) = writer.ingest(std::mem::take(&mut batch)).await {
            tracing::warn!(%error, results = count, "storing probe results failed; they are lost");
        }
    }
}
