//! `GET /api/v1/events`: Server-Sent Events.
//!
//! A client that sends `Last-Event-ID` first gets the newer events that the replay buffer still
//! contains, then live ones. A client without it gets only events published after it connected.
//! A keep-alive comment goes out every 15 seconds.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{StatusCode, header};
use http_body_util::{BodyExt, channel::Channel};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use super::{AppState, Response};
use crate::events::{Event, EventHub};

const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Frames buffered per client before sending waits for it.
const CLIENT_FRAMES: usize = 64;

pub fn stream<B>(req: &http::Request<B>, state: &AppState) -> Response {
    let last_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        // A new client starts with what happens from now on; only a reconnecting one, which
        // names the last event it saw, gets buffered events.
        .unwrap_or_else(|| state.events.latest_id());
    let (sender, body) = Channel::<Bytes>::new(CLIENT_FRAMES);
    tokio::spawn(feed(
        sender,
        state.events.clone(),
        state.stopping.clone(),
        last_id,
    ));
    http::Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body.boxed())
        .expect("a response with a valid status and headers builds")
}

type Sender = http_body_util::channel::Sender<Bytes>;

/// Writes events to one client until it disconnects or the server stops.
async fn feed(
    mut sender: Sender,
    events: Arc<EventHub>,
    mut stopping: watch::Receiver<bool>,
    mut last_id: u64,
) {
    let mut live = events.subscribe();
    if send_all(&mut sender, events.since(last_id), &mut last_id)
        .await
        .is_err()
    {
        return;
    }
    let mut keep_alive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    loop {
        let sent = tokio::select! {
            event = live.recv() => match event {
                Ok(event) => send_all(&mut sender, vec![event], &mut last_id).await,
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "event client lagged, replaying from the buffer");
                    send_all(&mut sender, events.since(last_id), &mut last_id).await
                }
                Err(RecvError::Closed) => return,
            },
            _ = keep_alive.tick() => sender.send_data(Bytes::from_static(b": keep-alive\n\n")).await.map_err(drop),
            _ = stopping.changed() => return,
        };
        if sent.is_err() {
            return;
        }
    }
}

async fn send_all(
    sender: &mut Sender,
    events: Vec<Arc<Event>>,
    last_id: &mut u64,
) -> Result<(), ()> {
    for event in events {
        if event.id <= *last_id {
            continue;
        }
        sender
            .send_data(Bytes::from(event.frame()))
            .await
            .map_err(drop)?;
        *last_id = event.id;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::BodyExt;

    use super::*;
    use crate::events::REPLAY_EVENTS;

    fn event(id: u64) -> Event {
        Event {
            id,
            name: "baseline-updated",
            data: "{}".into(),
        }
    }

    /// Returns the id of an SSE frame.
    fn frame_id(frame: &[u8]) -> Option<u64> {
        let text = std::str::from_utf8(frame).ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix("id: ")?.parse().ok())
    }

    #[tokio::test]
    async fn lagging_client_gets_the_buffer() {
        let hub = Arc::new(EventHub::default());
        let (_stop, stopping) = watch::channel(false);
        // Room for one frame: the client reads nothing while the events are published.
        let (sender, mut body) = Channel::<Bytes>::new(1);
        tokio::spawn(feed(sender, hub.clone(), stopping, 0));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let total = 3 * REPLAY_EVENTS as u64;
        hub.publish((1..=total).map(event).collect());

        let mut ids = Vec::new();
        while ids.last() != Some(&total) {
            let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
                .await
                .expect("frame in time")
                .expect("stream open")
                .expect("frame");
            ids.extend(frame.data_ref().and_then(|data| frame_id(data)));
        }
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids not rising: {ids:?}"
        );
        let first_buffered = total - REPLAY_EVENTS as u64 + 1;
        for id in first_buffered..=total {
            assert!(ids.contains(&id), "event {id} of the buffer is missing");
        }
    }
}
