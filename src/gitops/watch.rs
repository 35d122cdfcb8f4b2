//! Watching the folder: every debounced file event, SIGHUP and a periodic timer trigger a full
//! rescan on one worker thread, so rescans never overlap and never block the async runtime.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use thiserror::Error;

use super::reconcile::Reconciler;

/// Quiet time after the last file event before a rescan starts. Editors write a file in several
/// steps within a few milliseconds, and this delay groups them into one rescan.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// Interval of the safety-net rescan. inotify can miss events (queue overflow, network file
/// systems), so the folder is rescanned this often even without events.
const PERIODIC_RESCAN: Duration = Duration::from_secs(300);

/// How often the worker checks whether another folder took the watched one's path. inotify
/// follows the moved-away folder, so without the check edits in the new one would wait for the
/// periodic rescan.
const REPLACEMENT_CHECK: Duration = Duration::from_secs(1);

type FolderDebouncer = Debouncer<notify::RecommendedWatcher, RecommendedCache>;

/// The debouncer, shared by the watcher's owner, which stops it, and the worker, which moves
/// it to a folder that replaced the watched one.
type SharedDebouncer = Arc<Mutex<Option<FolderDebouncer>>>;

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
    debouncer: SharedDebouncer,
    worker: Option<JoinHandle<()>>,
    sighup: Option<tokio::task::JoinHandle<()>>,
}

impl Reconciler {
    /// Starts watching the folder: one rescan at once, then one after every change, on SIGHUP
    /// (when called inside a tokio runtime) and every five minutes.
    pub fn spawn(self: Arc<Self>) -> Result<Watching, WatchError> {
        let (trigger, triggers) = mpsc::channel();
        let watched = folder_identity(self.dir());
        let debouncer = Arc::new(Mutex::new(Some(watch_folder(&self, trigger.clone())?)));
        let worker = Worker {
            reconciler: self.clone(),
            debouncer: debouncer.clone(),
            watched,
        };
        let worker = std::thread::Builder::new()
            .name("gitops".into())
            .spawn(move || worker.run(&triggers))
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
            debouncer,
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
        let debouncer = self
            .debouncer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(debouncer) = debouncer {
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
) -> Result<FolderDebouncer, WatchError> {
    let dir = reconciler.dir().to_owned();
    let to_error = |source| WatchError::Watch {
        dir: dir.clone(),
        source,
    };
    let handler = move |result: DebounceEventResult| {
        let changed = match &result {
            // A rescan opens every file, and notify reports those opens too, so counting them
            // as changes would rescan the folder again after every rescan.
            Ok(events) => events.iter().any(|event| !event.kind.is_access()),
            Err(errors) => {
                for error in errors {
                    tracing::warn!(%error, "config folder watch reported an error; rescanning");
                }
                true
            }
        };
        if changed {
            trigger.send(Trigger::Rescan).ok();
        }
    };
    let mut debouncer = new_debouncer(DEBOUNCE, None, handler).map_err(to_error)?;
    debouncer
        .watch(&dir, RecursiveMode::Recursive)
        .map_err(to_error)?;
    Ok(debouncer)
}

/// Identifies the folder at `dir` by device and inode, following a symbolic link as rescans
/// do. `None` while nothing is there.
fn folder_identity(dir: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

/// The rescan thread.
struct Worker {
    reconciler: Arc<Reconciler>,
    debouncer: SharedDebouncer,
    /// Identity of the folder the debouncer watches.
    watched: Option<(u64, u64)>,
}

impl Worker {
    /// Runs rescans until a stop trigger arrives, folding queued triggers into one rescan.
    fn run(mut self, triggers: &mpsc::Receiver<Trigger>) {
        let mut last_rescan = Instant::now();
        loop {
            let requested = match triggers.recv_timeout(REPLACEMENT_CHECK) {
                Ok(Trigger::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(Trigger::Rescan) => true,
                Err(RecvTimeoutError::Timeout) => last_rescan.elapsed() >= PERIODIC_RESCAN,
            };
            if triggers.try_iter().any(|t| matches!(t, Trigger::Stop)) {
                return;
            }
            let replaced = self.follow_replacement();
            if !requested && !replaced {
                continue;
            }
            last_rescan = Instant::now();
            if let Err(error) = self.reconciler.rescan() {
                tracing::error!(%error, "config rescan failed; the configuration in effect is unchanged");
            }
        }
    }

    /// Moves the watch to the folder now at the configured path when it is another folder than
    /// the watched one, as after `mv new-config config`. Returns whether it found one.
    fn follow_replacement(&mut self) -> bool {
        let dir = self.reconciler.dir();
        let current = folder_identity(dir);
        if current.is_none() || current == self.watched {
            return false;
        }
        self.watched = current;
        let mut debouncer = self
            .debouncer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(debouncer) = debouncer.as_mut() else {
            return false;
        };
        // The old folder's watch may be gone already, so a failed unwatch is expected.
        let _ = debouncer.unwatch(dir);
        match debouncer.watch(dir, RecursiveMode::Recursive) {
            Ok(()) => tracing::info!(
                dir = %dir.display(),
                "config folder was replaced; watching the new one"
            ),
            Err(error) => tracing::warn!(
                dir = %dir.display(),
                %error,
                "config folder was replaced and cannot be watched; it is rescanned every five minutes"
            ),
        }
        true
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
