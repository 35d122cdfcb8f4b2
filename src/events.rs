//! Events published after each commit (anomaly state changes, baseline updates, confirmed
//! drift), with a bounded replay buffer so a reconnecting Server-Sent Events client that sends
//! `Last-Event-ID` misses nothing recent.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::engine::StateChange;
use crate::views::{AnomalyView, BaselineView};

/// Events kept for clients that reconnect.
pub const REPLAY_EVENTS: usize = 1024;

/// Event data as clients receive it.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Payload {
    StateChanged {
        change: StateChange,
        anomaly: AnomalyView,
    },
    BaselineUpdated {
        baseline: BaselineView,
    },
    DriftConfirmed {
        anomaly: AnomalyView,
    },
}

impl Payload {
    /// Returns the SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::StateChanged { .. } => "state-changed",
            Self::BaselineUpdated { .. } => "baseline-updated",
            Self::DriftConfirmed { .. } => "drift-confirmed",
        }
    }
}

/// One published event, already encoded for the wire.
#[derive(Debug, Clone)]
pub struct Event {
    /// Rises by one per event, across restarts.
    pub id: u64,
    pub name: &'static str,
    pub data: String,
}

impl Event {
    pub fn new(id: u64, payload: &Payload) -> Self {
        let data = serde_json::to_string(payload).expect("event payloads are plain JSON data");
        Self {
            id,
            name: payload.name(),
            data,
        }
    }

    /// Formats the event as an SSE frame.
    pub fn frame(&self) -> String {
        format!(
            "id: {}\nevent: {}\ndata: {}\n\n",
            self.id, self.name, self.data
        )
    }
}

/// Fans events out to every connected client and remembers the latest ones.
#[derive(Debug)]
pub struct EventHub {
    sender: broadcast::Sender<Arc<Event>>,
    recent: Mutex<VecDeque<Arc<Event>>>,
}

impl Default for EventHub {
    fn default() -> Self {
        let (sender, _) = broadcast::channel(REPLAY_EVENTS);
        Self {
            sender,
            recent: Mutex::new(VecDeque::with_capacity(REPLAY_EVENTS)),
        }
    }
}

impl EventHub {
    /// Publishes events in id order; call only after the data they describe is committed.
    pub fn publish(&self, events: Vec<Event>) {
        // A std mutex: held only to push and send, never across an await.
        let mut recent = self
            .recent
            .lock()
            .expect("event buffer lock is never poisoned");
        for event in events {
            let event = Arc::new(event);
            if recent.len() == REPLAY_EVENTS {
                recent.pop_front();
            }
            recent.push_back(event.clone());
            // An error here only means no client is connected, which is fine.
            let _ = self.sender.send(event);
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }

    /// Returns the id of the newest remembered event, or 0 when none was published yet.
    pub fn latest_id(&self) -> u64 {
        let recent = self
            .recent
            .lock()
            .expect("event buffer lock is never poisoned");
        recent.back().map_or(0, |event| event.id)
    }

    /// Returns the remembered events with an id above `after`, oldest first.
    pub fn since(&self, after: u64) -> Vec<Arc<Event>> {
        let recent = self
            .recent
            .lock()
            .expect("event buffer lock is never poisoned");
        recent.iter().filter(|e| e.id > after).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: u64) -> Event {
        Event {
            id,
            name: "baseline-updated",
            data: "{}".into(),
        }
    }

    #[test]
    fn replays_only_newer_events_and_forgets_the_oldest() {
        let hub = EventHub::default();
        hub.publish((1..=REPLAY_EVENTS as u64 + 10).map(event).collect());
        let since = hub.since(REPLAY_EVENTS as u64);
        assert_eq!(
            since.iter().map(|e| e.id).collect::<Vec<_>>(),
            (1025..=1034).collect::<Vec<_>>()
        );
        assert_eq!(hub.since(0).len(), REPLAY_EVENTS);
        assert_eq!(hub.since(0)[0].id, 11);
    }

    #[test]
    fn frames_follow_the_sse_format() {
        assert_eq!(
            event(7).frame(),
            "id: 7\nevent: baseline-updated\ndata: {}\n\n"
        );
    }
}
