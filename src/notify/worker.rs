//! The delivery worker: a tokio task that sends due outbox rows, each in its own request, and
//! reports every attempt to the writer thread. It keeps no transaction open while a request is in flight.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::DeliveryMetrics;
use super::outbox::{self, Attempt, DeliveryState, OutboxRecord};
use super::payload::{Notification, field_link};
use crate::clock::{Clock, SystemClock};
use crate::config::{Notifier, NotifierFormat};
use crate::http_client;
use crate::store::Store;
use crate::writer::{ConfigFeed, WriterHandle};

/// Maximum sleep between outbox scans, so a missed wake delays delivery by at most this.
const IDLE_POLL: Duration = Duration::from_secs(30);

/// Settings of the delivery worker.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// Base of the page links in notifications, such as `http://127.0.0.1:8080`.
    pub public_url: String,
    /// Wait before the second attempt; it doubles with each failure up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Age after which a row that still fails is given up and marked failed.
    pub max_age: Duration,
    /// How long delivered and failed rows stay visible in the API.
    pub keep_finished: Duration,
    /// Requests in flight at once, over all notifiers.
    pub max_in_flight: usize,
    /// Requests in flight at once to one notifier, so a slow receiver cannot take every slot.
    pub max_in_flight_per_notifier: usize,
    /// How long a notifier must stay missing from the configuration before its pending rows
    /// are marked failed at once, without waiting for `max_age`.
    ///
    /// The GitOps layer keeps the previous definition of a file that fails to parse or a
    /// document that fails validation, so a notifier leaves the configuration only when no
    /// file defines it. That also happens for a moment when an editor saves by writing a new
    /// file and renaming it over the old one, or when a file is moved. A grace period measured
    /// from when the worker first finds the notifier missing covers those cases whatever the
    /// backoff, which "fail when two retries find it missing" would not, because the retry
    /// after the first failure comes about a second later.
    pub removed_notifier_grace: Duration,
}

impl DeliveryOptions {
    pub fn new(public_url: impl Into<String>) -> Self {
        Self {
            public_url: public_url.into(),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            max_age: Duration::from_secs(24 * 3600),
            keep_finished: Duration::from_secs(7 * 24 * 3600),
            max_in_flight: 16,
            max_in_flight_per_notifier: 4,
            removed_notifier_grace: Duration::from_secs(60),
        }
    }

    /// Returns the wait after the `attempts`-th failed attempt: the base doubled per earlier
    /// failure, capped, then scaled by a random factor in [0.5, 1] so receivers that come back
    /// are not hit by every sender at once.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let doubling = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
        let wait = self
            .backoff_base
            .saturating_mul(doubling)
            .min(self.backoff_max);
        wait.mul_f64(0.5 + 0.5 * random_unit())
    }
}

/// The running worker.
#[derive(Debug)]
pub struct DeliveryWorker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Wait before a row whose attempt could not be recorded is sent again.
const RECORD_RETRY: Duration = Duration::from_secs(5);

/// The result of one task in the worker's set.
enum Finished {
    Request(Sent),
    /// The cool-down after a failed record is over, so the row may be sent again.
    Cooldown(u64),
}

/// A finished request.
struct Sent {
    id: u64,
    notifier: String,
    anomaly_id: u64,
    created_at_ms: i64,
    /// Attempts recorded before this one.
    earlier_attempts: u32,
    error: Option<String>,
    /// How long the notifier had been missing from the configuration when the row was due, or
    /// `None` when it is configured.
    missing_for: Option<Duration>,
}

struct Worker {
    store: Arc<Store>,
    writer: WriterHandle,
    config: ConfigFeed,
    options: DeliveryOptions,
    metrics: Arc<DeliveryMetrics>,
    clients: HashMap<u32, reqwest::Client>,
    /// Rows being sent, with their notifier.
    in_flight: HashMap<u64, String>,
    requests: JoinSet<Finished>,
    /// Notifiers that pending rows name but the configuration lacks, with when the worker first
    /// found each one missing. A name leaves the map as soon as a configuration has it again.
    missing_since: HashMap<String, Instant>,
}

impl DeliveryWorker {
    /// Starts the worker; `wake` is signalled by the writer after it commits new rows.
    pub fn start(
        store: Arc<Store>,
        writer: WriterHandle,
        config: ConfigFeed,
        wake: Arc<Notify>,
        options: DeliveryOptions,
        metrics: Arc<DeliveryMetrics>,
    ) -> Self {
        let (stop, stopping) = watch::channel(false);
        let worker = Worker {
            store,
            writer,
            config,
            options,
            metrics,
            clients: HashMap::new(),
            in_flight: HashMap::new(),
            requests: JoinSet::new(),
            missing_since: HashMap::new(),
        };
        let task = tokio::spawn(worker.run(wake, stopping));
        Self { stop, task }
    }

    /// Stops the worker. Requests in flight are dropped; their rows stay pending and are sent
    /// again, with the same idempotency key, after the next start.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "delivery worker ended abnormally");
        }
    }
}

impl Worker {
    async fn run(mut self, wake: Arc<Notify>, mut stopping: watch::Receiver<bool>) {
        tracing::info!("delivery worker started");
        loop {
            let wait = self.send_due().await;
            tokio::select! {
                _ = stopping.changed() => break,
                () = wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                // The pattern disables this branch once the sender is gone.
                Ok(()) = self.config.changed() => self.forget_configured(),
                Some(joined) = self.requests.join_next() => match joined {
                    Ok(Finished::Request(sent)) => self.record(sent).await,
                    Ok(Finished::Cooldown(id)) => {
                        self.in_flight.remove(&id);
                    }
                    // NOTE: a panicked request keeps its row marked in flight until the next
                    // start, because the join error does not carry the row id.
                    Err(error) => tracing::error!(%error, "delivery request task failed"),
                },
            }
        }
        self.requests.abort_all();
        tracing::info!("delivery worker stopped");
    }

    /// Starts a request for each due row; returns how long to sleep until the next is due.
    async fn send_due(&mut self) -> Duration {
        let room = self
            .options
            .max_in_flight
            .saturating_sub(self.in_flight.len());
        let now = now_ms();
        let store = self.store.clone();
        let mut choose = self.chooser();
        let found = tokio::task::spawn_blocking(move || {
            outbox::due(store.database(), now, room, &mut choose)
        })
        .await;
        let due = match found {
            Ok(Ok(due)) => due,
            Ok(Err(error)) => {
                tracing::error!(%error, "reading the outbox failed");
                return IDLE_POLL;
            }
            Err(error) => {
                tracing::error!(%error, "reading the outbox failed");
                return IDLE_POLL;
            }
        };
        for (id, record) in due.rows {
            self.spawn_request(id, record);
        }
        due.next_due_ms.map_or(IDLE_POLL, |next| {
            let ms = u64::try_from(next - now).unwrap_or(0);
            Duration::from_millis(ms).min(IDLE_POLL)
        })
    }

    /// Returns a filter that leaves out rows in flight and rows whose notifier has all its
    /// request slots taken.
    fn chooser(&self) -> impl FnMut(u64, &OutboxRecord) -> bool + Send + 'static {
        let in_flight = self.in_flight.clone();
        let per_notifier = self.options.max_in_flight_per_notifier;
        let mut counts: HashMap<String, usize> = HashMap::new();
        for notifier in in_flight.values() {
            *counts.entry(notifier.clone()).or_default() += 1;
        }
        move |id, record| {
            if in_flight.contains_key(&id) {
                return false;
            }
            let count = counts.entry(record.notifier.clone()).or_default();
            if *count >= per_notifier {
                return false;
            }
            *count += 1;
            true
        }
    }

    /// Drops the notifiers that the latest configuration has again from `missing_since`, so a
    /// notifier that returns and is removed once more gets a full grace period.
    fn forget_configured(&mut self) {
        let config = self.config.borrow_and_update();
        self.missing_since
            .retain(|name, _| !config.notifiers.contains_key(name));
    }

    fn spawn_request(&mut self, id: u64, record: OutboxRecord) {
        self.in_flight.insert(id, record.notifier.clone());
        let (notifier, unusable) = {
            let config = self.config.borrow();
            let name = &record.notifier;
            let unusable = config
                .unusable_notifiers
                .get(name)
                .map(|n| n.reason.clone());
            (config.notifiers.get(name).cloned(), unusable)
        };
        // A notifier that is still defined but cannot be used fails its attempts like an
        // unreachable receiver: with backoff, up to the maximum age.
        let missing_for = match (&notifier, &unusable) {
            (Some(_), _) | (None, Some(_)) => {
                self.missing_since.remove(&record.notifier);
                None
            }
            (None, None) => {
                let since = self
                    .missing_since
                    .entry(record.notifier.clone())
                    .or_insert_with(Instant::now);
                Some(since.elapsed())
            }
        };
        let client = notifier.as_ref().map(|n| self.client(n.timeout_secs));
        let public_url = self.options.public_url.clone();
        self.requests.spawn(async move {
            let result = match (notifier, client) {
                (Some(notifier), Some(Ok(client))) => {
                    send(&client, &notifier, &record, &public_url).await
                }
                (Some(_), Some(Err(error))) => Err(error.to_string()),
                _ => Err(match unusable {
                    Some(reason) => {
                        format!("notifier {:?} cannot be used: {reason}", record.notifier)
                    }
                    None => format!("notifier {:?} is no longer configured", record.notifier),
                }),
            };
            Finished::Request(Sent {
                id,
                notifier: record.notifier,
                anomaly_id: record.anomaly_id,
                created_at_ms: record.created_at_ms,
                earlier_attempts: record.attempts,
                error: result.err(),
                missing_for,
            })
        });
    }

    fn client(&mut self, timeout_secs: u32) -> Result<reqwest::Client, http_client::ClientError> {
        if let Some(client) = self.clients.get(&timeout_secs) {
            return Ok(client.clone());
        }
        let client = http_client::client(Duration::from_secs(u64::from(timeout_secs)))?;
        self.clients.insert(timeout_secs, client.clone());
        Ok(client)
    }

    /// Reports a finished request to the writer, deciding between retry and giving up.
    async fn record(&mut self, sent: Sent) {
        self.metrics.attempts.fetch_add(1, Ordering::Relaxed);
        let Sent {
            id,
            notifier,
            anomaly_id,
            error,
            ..
        } = sent;
        let at_ms = now_ms();
        let grace = self.options.removed_notifier_grace;
        let removed = sent.missing_for.is_some_and(|missing| missing >= grace);
        let retry_at_ms = match sent.missing_for {
            _ if error.is_none() || removed => None,
            // A notifier missing for less than the grace period is tried again no later than
            // the end of that period, which then either finds it back or fails the row.
            Some(missing) => self
                .retry_at(sent.created_at_ms, sent.earlier_attempts + 1, at_ms)
                .map(|retry| retry.min(at_ms + millis(grace.saturating_sub(missing)))),
            None => self.retry_at(sent.created_at_ms, sent.earlier_attempts + 1, at_ms),
        };
        let attempt = Attempt {
            id,
            at_ms,
            error,
            retry_at_ms,
        };
        let prune_before_ms = at_ms - millis(self.options.keep_finished);
        match self
            .writer
            .record_delivery(attempt.clone(), prune_before_ms)
            .await
        {
            Ok(Some(DeliveryState::Failed)) if removed => {
                self.metrics.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    outbox_id = id,
                    notifier,
                    anomaly_id,
                    error = attempt.error.as_deref().unwrap_or(""),
                    "notification failed because its notifier was removed"
                );
            }
            Ok(Some(state)) => self.count(&attempt, state, &notifier, anomaly_id),
            Ok(None) => {}
            Err(error) => {
                // The row stays pending as it was and is sent again, with the same key, after a
                // cool-down so a failing writer is not met with a stream of requests.
                tracing::error!(
                    outbox_id = id,
                    notifier,
                    anomaly_id,
                    %error,
                    "recording a delivery attempt failed"
                );
                self.requests.spawn(async move {
                    tokio::time::sleep(RECORD_RETRY).await;
                    Finished::Cooldown(id)
                });
                return;
            }
        }
        self.in_flight.remove(&id);
    }

    /// Returns when to try again after `attempts` failures, or `None` once the row is older
    /// than the maximum age.
    fn retry_at(&self, created_at_ms: i64, attempts: u32, now_ms: i64) -> Option<i64> {
        if now_ms - created_at_ms >= millis(self.options.max_age) {
            return None;
        }
        Some(now_ms + millis(self.options.backoff(attempts)))
    }

    /// Counts and logs a recorded attempt. The log names the notifier and the anomaly but never
    /// the URL or headers, which may contain secrets.
    fn count(&self, attempt: &Attempt, state: DeliveryState, notifier: &str, anomaly_id: u64) {
        let error = attempt.error.as_deref().unwrap_or("");
        match state {
            DeliveryState::Delivered => {
                self.metrics.delivered.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    outbox_id = attempt.id,
                    notifier,
                    anomaly_id,
                    "notification delivered"
                );
            }
            DeliveryState::Failed => {
                self.metrics.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    outbox_id = attempt.id,
                    notifier,
                    anomaly_id,
                    error,
                    "notification given up after the maximum age"
                );
            }
            DeliveryState::Pending => {
                tracing::warn!(
                    outbox_id = attempt.id,
                    notifier,
                    anomaly_id,
                    error,
                    "notification delivery failed; will retry"
                );
            }
        }
    }
}

/// Sends one row to its notifier; any status outside 2xx is a failure.
async fn send(
    client: &reqwest::Client,
    notifier: &Notifier,
    record: &OutboxRecord,
    public_url: &str,
) -> Result<(), String> {
    let mut notification: Notification = serde_json::from_str(&record.payload)
        .map_err(|e| format!("stored notification does not decode: {e}"))?;
    notification.link = Some(field_link(public_url, &notification));
    let body = match notifier.format {
        NotifierFormat::Json => serde_json::to_vec(&notification),
        NotifierFormat::Slack => serde_json::to_vec(&notification.slack_body()),
    }
    .expect("a notification serializes to JSON");
    let mut request = client
        .post(notifier.url.expose())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", &record.idempotency_key);
    for (name, value) in &notifier.headers {
        request = request.header(name, value.expose());
    }
    // The URL may embed a token, so it is left out of the error. The causes stay, because
    // "error sending request" alone does not tell a refused connection from a timeout.
    let response = request
        .body(body)
        .send()
        .await
        .map_err(|e| http_client::error_chain(&e.without_url()))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let mut error = format!("receiver responded with HTTP {}", status.as_u16());
    let excerpt = body_excerpt(response).await;
    if !excerpt.is_empty() {
        error.push_str(": ");
        error.push_str(&excerpt);
    }
    Err(error)
}

/// Characters of an error response's body kept in the delivery error.
const BODY_EXCERPT_CHARS: usize = 200;

/// Reads the start of an error response's body and returns its excerpt. A body that fails to
/// read partway gives what was read before the failure.
async fn body_excerpt(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < EXCERPT_BYTE_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    excerpt(&bytes)
}

/// Bytes of a body read for its excerpt: four per character, the UTF-8 maximum.
const EXCERPT_BYTE_LIMIT: usize = BODY_EXCERPT_CHARS * 4;

/// Returns the start of a body as one line of at most `BODY_EXCERPT_CHARS` characters, with
/// whitespace runs and control characters collapsed to one space and `…` after a cut.
fn excerpt(body: &[u8]) -> String {
    let head = &body[..body.len().min(EXCERPT_BYTE_LIMIT)];
    let text = String::from_utf8_lossy(head);
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .collect();
    let line = words.join(" ");
    match line.char_indices().nth(BODY_EXCERPT_CHARS) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line,
    }
}

fn now_ms() -> i64 {
    SystemClock.now().as_millis()
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Returns a random number in [0, 1) from the standard library's per-process hash keys.
fn random_unit() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(now_ms() as u64);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_cases() {
        let long = "é".repeat(BODY_EXCERPT_CHARS + 10);
        let cut = format!("{}…", "é".repeat(BODY_EXCERPT_CHARS));
        let cases = [
            ("", ""),
            ("disk full\r\n\tretry later\n", "disk full retry later"),
            ("a\u{0}b", "a b"),
            (long.as_str(), cut.as_str()),
        ];
        for (body, expected) in cases {
            assert_eq!(excerpt(body.as_bytes()), expected, "{body:?}");
        }
    }
}
