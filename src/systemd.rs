//! Talking to systemd: READY and STOPPING, the status line, and watchdog pings that are sent
//! only while the writer thread is healthy. Every call is a no-op without `NOTIFY_SOCKET`.

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::task::JoinHandle;

use crate::store::{Store, read};
use crate::writer::WriterHandle;

/// How often the status line is refreshed when there is no watchdog.
const STATUS_PERIOD: Duration = Duration::from_secs(60);

/// True when started by a service manager that listens for notifications.
pub fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Tells systemd the service is ready, with a first status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells systemd the service is shutting down.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("shutting down")]);
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!(%error, "cannot notify systemd");
    }
}

/// Builds the status line, such as "12 series, 1 open anomaly".
pub fn status_line(store: &Store) -> String {
    match read::totals(store.database()) {
        Ok(totals) => {
            let open = totals.open_total();
            format!(
                "{} series, {open} open {}",
                totals.series,
                if open == 1 { "anomaly" } else { "anomalies" }
            )
        }
        Err(error) => {
            tracing::warn!(%error, "reading the totals for the status line failed");
            format!("reading the data file failed: {error}")
        }
    }
}

/// Starts the task that refreshes the status line and, when systemd asked for a watchdog,
/// pings it at half its interval while the writer thread responds. `None` without systemd.
pub fn supervise(writer: WriterHandle, store: Arc<Store>) -> Option<JoinHandle<()>> {
    if !enabled() {
        return None;
    }
    let watchdog = sd_notify::watchdog_enabled();
    if let Some(interval) = watchdog {
        tracing::info!(?interval, "systemd watchdog enabled");
    }
    let period = watchdog.map_or(STATUS_PERIOD, |interval| interval / 2);
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Some(interval) = watchdog {
                check_and_ping(&writer, interval, period).await;
            }
            let status = {
                let store = store.clone();
                tokio::task::spawn_blocking(move || status_line(&store)).await
            };
            if let Ok(status) = status {
                send(&[NotifyState::Status(&status)]);
            }
        }
    }))
}

/// Sends a watchdog ping when the writer thread committed or replied to a heartbeat within the
/// watchdog interval, so systemd restarts the service when the writer hangs.
async fn check_and_ping(writer: &WriterHandle, interval: Duration, wait: Duration) {
    // A busy writer replies after its current group, and its commits mark it alive meanwhile.
    let _ = tokio::time::timeout(wait, writer.ping()).await;
    // Without pings systemd restarts the service, which is the only way to write again.
    if let Some(error) = writer.stats().storage_failure() {
        tracing::warn!(%error, "the data file failed; withholding the watchdog ping");
        return;
    }
    let since = writer.stats().since_alive();
    if since < interval {
        send(&[NotifyState::Watchdog]);
    } else {
        tracing::warn!(
            ?since,
            "writer thread has not answered; withholding the watchdog ping"
        );
    }
}
