//! Watching the folder: every debounced file event, SIGHUP and a periodic timer trigger a full
//! rescan on one worker thread, so rescans never overlap and never block the async runtime.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use thiserror::Error;

use super::reconcile::Reconciler;

/// Quiet time after the last file event before a rescan starts. Editors write a file in several
/// steps within a few milliseconds, and this delay groups them into one rescan.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// Interval of the safety-net rescan. inotify can miss events (queue overflow, network file
/// systems, a replaced folder), so the folder is rescanned this often even without events.
const PERIODIC_RESCAN: Duration = Duration::from_secs(300);

/// Errors of starting the watcher.
#[derive(Debug, Error)]
pub enum WatchError {
    #[error(
        "cannot watch the config folder {dir}: {source}; check that it exists, and raise \
         fs.inotify.max_user_watches if the limit is reached"
    )]
    Watch {
        dir: std::path::PathBuf,
        source: notify::Error,
    },
    #[error("cannot start the gitops worker thread: {0}")]
    Thread(std::io::Error),
    #[error("cannot listen for SIGHUP: {0}")]
    Signal(std::io::Error),
}

enum Trigger {
    Rescan,
    Stop,
}

/// A running watcher. Dropping it stops the watcher and waits for the worker thread.
pub struct Watching {
    reconciler: Arc<Reconciler>,
    trigger: mpsc::Sender<Trigger>,
    debouncer: Option<Debouncer<notify::RecommendedWatcher, RecommendedCache>>,
    worker: Option<JoinHandle<()>>,
    sighup: Option<tokio::task::JoinHandle<()>>,
}

impl Reconciler {
    /// Starts watching the folder: one rescan at once, then one after every change, on SIGHUP
    /// (when called inside a tokio runtime) and every five minutes.
    pub fn spawn(self: Arc<Self>) -> Result<Watching, WatchError> {
        let (trigger, triggers) = mpsc::channel();
        let debouncer = watch_folder(&self, trigger.clone())?;
        let worker_reconciler = self.clone();
        let worker = std::thread::Builder::new()
            .name("gitops".into())
            .spawn(move || run_worker(&worker_reconciler, &triggers))
            .map_err(WatchError::Thread)?;
        let sighup = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => Some(forward_sighup(&runtime, trigger.clone())?),
            Err(_) => None,
        };
        trigger.send(Trigger::Rescan).ok();
        tracing::info!(dir = %self.dir().display(), "watching config folder");
        Ok(Watching {
            reconciler: self,
            trigger,
            debouncer: Some(debouncer),
            worker: Some(worker),
            sighup,
        })
    }
}

impl Watching {
    pub fn reconciler(&self) -> &Arc<Reconciler> {
        &self.reconciler
    }

    /// Requests a rescan without waiting for it. The reports channel shows its outcome.
    pub fn request_rescan(&self) {
        self.trigger.send(Trigger::Rescan).ok();
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        if let Some(task) = self.sighup.take() {
            task.abort();
        }
        if let Some(debouncer) = self.debouncer.take() {
            debouncer.stop_nonblocking();
        }
        self.trigger.send(Trigger::Stop).ok();
        if let Some(worker) = self.worker.take()
            && worker.join().is_err()
        {
            tracing::error!("gitops worker thread panicked");
        }
    }
}

fn watch_folder(
    reconciler: &Reconciler,
    trigger: mpsc::Sender<Trigger>,
) -> Result<Debouncer<notify::RecommendedWatcher, RecommendedCache>, WatchError> {
    let dir = reconciler.dir().to_owned();
    let to_error = |source| WatchError::Watch {
        dir: dir.clone(),
        source,
    };
    let handler = move |result: DebounceEventResult| {
        if let Err(errors) = &result {
            for error in errors {
                tracing::warn!(%error, "config folder watch reported an error; rescanning");
            }
        }
        trigger.send(Trigger::Rescan).ok();
    };
    let mut debouncer = new_debouncer(DEBOUNCE, None, handler).map_err(to_error)?;
    debouncer
        .watch(&dir, RecursiveMode::Recursive)
        .map_err(to_error)?;
    Ok(debouncer)
}

/// Runs rescans until a stop trigger arrives, folding queued triggers into one rescan.
fn run_worker(reconciler: &Reconciler, triggers: &mpsc::Receiver<Trigger>) {
    loop {
        match triggers.recv_timeout(PERIODIC_RESCAN) {
            Ok(Trigger::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Ok(Trigger::Rescan) | Err(RecvTimeoutError::Timeout) => {}
        }
        if triggers.try_iter().any(|t| matches!(t, Trigger::Stop)) {
            return;
        }
        if let Err(error) = reconciler.rescan() {
            tracing::error!(%error, "config rescan failed; the configuration in effect is unchanged");
        }
    }
}

fn forward_sighup(
    runtime: &tokio::runtime::Handle,
    trigger: mpsc::Sender<Trigger>,
) -> Result<tokio::task::JoinHandle<()>, WatchError> {
    use tokio::signal::unix::{SignalKind, signal};
    let _entered = runtime.enter();
    let mut hangups = signal(SignalKind::hangup()).map_err(WatchError::Signal)?;
    Ok(runtime.spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP received; rescanning the config folder");
            if trigger.send(Trigger::Rescan).is_err() {
                return;
            }
        }
    }))
}
