//! The `serve` command as a library call: open the store, start the writer, the hourly analyzer,
//! the built-in probes and the HTTP server on a given listener, and shut all of it down in order
//! when asked.

mod probes;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::analyzer;
use crate::api_settings::{ApiSettings, Overlay};
use crate::clock::{Clock, SystemClock};
use crate::config::{ConfigSnapshot, Secret};
use crate::events::EventHub;
use crate::gitops;
use crate::http::{AppState, handle};
use crate::notify::{DeliveryMetrics, DeliveryOptions, DeliveryWorker};
use crate::store::{Store, StoreError};
use crate::writer::{self, ConfigFeed, WriterHandle};

use probes::RunningProbes;

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time limit on reading a request body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Maximum wait for the first rescan of the config folder before reporting ready anyway.
const FIRST_RESCAN_TIMEOUT: Duration = Duration::from_secs(60);

/// Settings of one server run.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Directory of the data file; created when missing.
    pub data_dir: PathBuf,
    /// GitOps folder to load and watch; it takes precedence over `config`.
    pub config_dir: Option<PathBuf>,
    /// Folder with one file per secret that the YAML files reference.
    pub secrets_dir: Option<PathBuf>,
    /// Configuration to evaluate with when there is no `config_dir`; `None` runs with an empty
    /// configuration.
    pub config: Option<ConfigFeed>,
    /// Maximum wait for open connections, and then for the writer, at shutdown.
    pub shutdown_timeout: Duration,
    /// Maximum time a handler waits for a request body, counted from when it starts reading.
    /// A slower client gets 408 and its connection is closed.
    pub body_read_timeout: Duration,
    /// Run the analyzer at the top of every hour (and once at start when an hour was missed).
    pub hourly_analyzer: bool,
    /// Run the built-in probes of the healthchecks whose strategy anomalyd implements.
    pub probes: bool,
    /// Bearer token every write must carry; required to listen on a non-loopback address.
    pub token: Option<Secret>,
    /// Notification delivery; an empty `public_url` means `http://<listen address>`.
    pub delivery: DeliveryOptions,
    /// Settings of the writer thread, such as how long recovered anomalies are kept.
    pub writer: writer::WriterOptions,
}

impl ServeOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            config_dir: None,
            secrets_dir: None,
            config: None,
            shutdown_timeout: Duration::from_secs(10),
            body_read_timeout: BODY_READ_TIMEOUT,
            hourly_analyzer: true,
            probes: true,
            token: None,
            delivery: DeliveryOptions::new(""),
            writer: writer::WriterOptions::default(),
        }
    }
}

/// Error that stops the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read the listening address: {0}")]
    Listener(std::io::Error),
    #[error(transparent)]
    Schedule(#[from] analyzer::ScheduleError),
    #[error(transparent)]
    Gitops(#[from] gitops::ReconcileError),
    #[error(transparent)]
    Watch(#[from] gitops::WatchError),
    #[error(
        "config folder {} does not exist: create it, or point --config-dir at the folder of \
         YAML files",
        .0.display()
    )]
    ConfigDirMissing(PathBuf),
    #[error(
        "config folder {} is not a folder: point --config-dir at the folder of YAML files",
        .0.display()
    )]
    ConfigDirNotFolder(PathBuf),
    #[error("cannot read the config folder {}: {source}", path.display())]
    ConfigDirUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set up the probes' HTTP client: {0}")]
    Probes(#[from] crate::http_client::ClientError),
    #[error(
        "will not listen on {0} without an API token: set --token-file or ANOMALYD_TOKEN, \
         or listen on a loopback address such as 127.0.0.1"
    )]
    TokenRequired(std::net::SocketAddr),
    #[error("cannot load the API-made settings: {0}")]
    ApiSettings(#[from] crate::api_settings::ApiSettingsError),
    #[error("a start-up task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Serves until `shutdown` completes, then stops accepting, finishes in-flight requests,
/// commits what is queued and closes the data file.
pub async fn run(
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    crate::metrics::note_start();
    let addr = listener.local_addr().map_err(ServeError::Listener)?;
    // Options are checked before the data file is opened, so a rejected start leaves nothing
    // behind on disk.
    if options.token.is_none() && !addr.ip().is_loopback() {
        return Err(ServeError::TokenRequired(addr));
    }
    if let Some(dir) = &options.config_dir {
        check_config_dir(dir)?;
    }
    let dir = options.data_dir.clone();
    let store = Arc::new(tokio::task::spawn_blocking(move || Store::open(&dir)).await??);
    let events = Arc::new(EventHub::default());
    let (watching, base) = open_config(&options, &store).await?;
    let database_store = store.clone();
    let api =
        tokio::task::spawn_blocking(move || ApiSettings::load(database_store.database())).await??;
    let overlay = Overlay::new(base, api);
    let following = tokio::spawn(overlay.clone().follow());
    let config = overlay.subscribe();
    let (store_for_writer, config_for_writer, events_for_writer) =
        (store.clone(), config.clone(), events.clone());
    let writer_options = options.writer;
    let writer = tokio::task::spawn_blocking(move || {
        writer::start(
            store_for_writer,
            config_for_writer,
            events_for_writer,
            writer_options,
        )
    })
    .await??;
    let scheduler = if options.hourly_analyzer {
        Some(start_analyzer(writer.handle(), writer.analyzer_last_run).await?)
    } else {
        None
    };

    let mut probes = if options.probes {
        Some(RunningProbes::start(config.clone(), writer.handle())?)
    } else {
        None
    };

    let deliveries = Arc::new(DeliveryMetrics::default());
    let mut delivery = options.delivery.clone();
    if delivery.public_url.is_empty() {
        delivery.public_url = format!("http://{addr}");
    }
    let worker = DeliveryWorker::start(
        store.clone(),
        writer.handle(),
        config.clone(),
        writer.outbox_wake.clone(),
        delivery,
        deliveries.clone(),
    );

    let (stop, stopping) = watch::channel(false);
    let gitops = watching.as_ref().map(|w| w.reconciler().clone());
    if let Some(watching) = &watching {
        first_rescan(watching).await;
    }
    let supervisor = crate::systemd::supervise(writer.handle(), store.clone());
    let state = AppState {
        store,
        writer: writer.handle(),
        events,
        config,
        overlay,
        gitops,
        token: options.token.clone().map(Arc::new),
        deliveries,
        stopping,
        body_read_timeout: options.body_read_timeout,
        result_bodies: Arc::new(crate::http::result_body_budget()),
    };
    tracing::info!(
        %addr,
        data_dir = %options.data_dir.display(),
        config_dir = options.config_dir.as_ref().map(|d| d.display().to_string()),
        "listening"
    );
    crate::systemd::ready(&crate::systemd::status_line(&state.store));
    let shutdown = async {
        shutdown.await;
        crate::systemd::stopping();
        // Probes stop while the listener is still open, so a probe of anomalyd's own address
        // does not record the shutdown as a failed run.
        if let Some(probes) = probes.take() {
            probes.stop().await;
        }
    };
    serve(
        listener,
        state.clone(),
        shutdown,
        &stop,
        options.shutdown_timeout,
    )
    .await;
    if let Some(supervisor) = supervisor {
        supervisor.abort();
    }

    if let Some(probes) = probes {
        probes.stop().await;
    }
    worker.stop().await;
    stop_background(scheduler, watching).await;
    following.abort();
    finish(writer, state, options.shutdown_timeout).await;
    Ok(())
}

/// Checks that the config folder exists before anything is opened, because the file watcher
/// reports a missing folder only as "No path was found".
fn check_config_dir(dir: &std::path::Path) -> Result<(), ServeError> {
    match std::fs::metadata(dir) {
        Ok(metadata) if metadata.is_dir() => Ok(()),
        Ok(_) => Err(ServeError::ConfigDirNotFolder(dir.to_owned())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Err(ServeError::ConfigDirMissing(dir.to_owned()))
        }
        Err(source) => Err(ServeError::ConfigDirUnreadable {
            path: dir.to_owned(),
            source,
        }),
    }
}

/// Starts watching the config folder, if there is one, and returns where the configuration
/// comes from.
async fn open_config(
    options: &ServeOptions,
    store: &Arc<Store>,
) -> Result<(Option<gitops::Watching>, ConfigFeed), ServeError> {
    let Some(dir) = &options.config_dir else {
        let config = options.config.clone().unwrap_or_else(empty_config);
        return Ok((None, config));
    };
    let watching = watch_config(dir, options.secrets_dir.clone(), store.clone()).await?;
    let config = watching.reconciler().subscribe();
    Ok((Some(watching), config))
}

/// Waits until the folder has been scanned once, so READY means the configuration is in effect.
async fn first_rescan(watching: &gitops::Watching) {
    let mut reports = watching.reconciler().subscribe_reports();
    let scanned = tokio::time::timeout(FIRST_RESCAN_TIMEOUT, reports.wait_for(Option::is_some));
    if scanned.await.is_err() {
        tracing::warn!(
            timeout = ?FIRST_RESCAN_TIMEOUT,
            "first config rescan has not finished; serving with the last good configuration"
        );
    }
}

/// Stops the hourly schedule and the folder watcher before the writer goes.
async fn stop_background(
    scheduler: Option<tokio_cron_scheduler::JobScheduler>,
    watching: Option<gitops::Watching>,
) {
    if let Some(mut scheduler) = scheduler
        && let Err(error) = scheduler.shutdown().await
    {
        tracing::warn!(%error, "stopping the hourly analyzer failed");
    }
    if let Some(watching) = watching {
        // Dropping the watcher joins its thread, which may be mid-rescan.
        let _ = tokio::task::spawn_blocking(move || drop(watching)).await;
    }
}

fn empty_config() -> ConfigFeed {
    let (sender, receiver) = watch::channel(Arc::new(ConfigSnapshot::default()));
    // No sender remains, so the receiver keeps the empty configuration.
    drop(sender);
    receiver
}

/// Loads the last good configuration from the data file and starts watching the folder.
async fn watch_config(
    dir: &std::path::Path,
    secrets_dir: Option<PathBuf>,
    store: Arc<Store>,
) -> Result<gitops::Watching, ServeError> {
    let mut options = gitops::ReconcilerOptions::new(dir);
    options.secrets = gitops::SecretSource { dir: secrets_dir };
    let reconciler =
        tokio::task::spawn_blocking(move || gitops::Reconciler::open(options, store)).await??;
    Ok(Arc::new(reconciler).spawn()?)
}

/// Accepts connections until `shutdown`, then drains them within `timeout`.
async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()>,
    stop: &watch::Sender<bool>,
    timeout: Duration,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Finished connections are collected as they end, so the set stays small.
        while connections.try_join_next().is_some() {}
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        continue;
                    }
                };
                let state = state.clone();
                let service = service_fn(move |req| handle(req, state.clone()));
                let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                connections.spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: no new connections, finishing open requests");
    // Event streams never end on their own; tell them to.
    let _ = stop.send(true);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(timeout) => {
            tracing::warn!(
                ?timeout,
                connections = connections.len(),
                "connections still open after the shutdown timeout; closing them"
            );
        }
    }
    // A connection still open keeps the data file in use, and the file must close before exit,
    // so the rest are dropped. Their replies are lost, but the writer commits their queued writes.
    connections.shutdown().await;
}

/// Stops the writer after it committed the queue, then closes the data file.
async fn finish(writer: writer::WriterThread, state: AppState, timeout: Duration) {
    let thread = writer.stop();
    let joined =
        tokio::time::timeout(timeout, tokio::task::spawn_blocking(move || thread.join())).await;
    if joined.is_err() {
        tracing::error!(
            ?timeout,
            "writer did not stop in time; queued writes may be lost"
        );
        return;
    }
    // The reconciler holds the store too; release everything but the store before closing it.
    let AppState { store, gitops, .. } = state;
    drop(gitops);
    match Arc::try_unwrap(store) {
        Ok(store) => match tokio::task::spawn_blocking(move || store.close()).await {
            Ok(Ok(())) => tracing::info!("data file closed"),
            Ok(Err(error)) => tracing::error!(%error, "closing the data file failed"),
            Err(error) => tracing::error!(%error, "closing the data file failed"),
        },
        // A connection that outlived the timeout still uses it, and it closes when that ends.
        Err(_) => tracing::warn!("data file still in use at shutdown; it closes when released"),
    }
}

/// Runs a missed analyzer hour now and schedules the hourly runs.
async fn start_analyzer(
    writer: WriterHandle,
    last_run: Option<crate::engine::Timestamp>,
) -> Result<tokio_cron_scheduler::JobScheduler, ServeError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now();
    if analyzer::catch_up_due(last_run, now) {
        let catch_up = writer.clone();
        tokio::spawn(async move {
            tracing::info!("an analyzer hour was missed while stopped; running it now");
            if let Err(error) = catch_up.analyze(now).await {
                tracing::error!(%error, "catch-up analyzer run failed");
            }
        });
    }
    let scheduler = analyzer::start_hourly(clock, move |at| {
        let writer = writer.clone();
        async move {
            if let Err(error) = writer.analyze(at).await {
                tracing::error!(%error, "hourly analyzer run failed");
            }
        }
    })
    .await?;
    Ok(scheduler)
}
