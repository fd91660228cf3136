//! A request's reply stream: what the upstream sends back about one request (related
//! notifications and server requests, then the response), bounded so a slow client loses surplus
//! notifications but never its answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use tokio::sync::mpsc;

use super::UpstreamError;

/// What a request's reply stream carries.
#[derive(Debug)]
pub enum Inbound {
    /// A message for the downstream client: a related notification or server request, or (last)
    /// the response itself, with the downstream's ids restored.
    Message(Value),
    /// The connection failed before the response arrived. `may_have_run` is false when the request
    /// surely never reached the upstream (it was refused or unreachable), so it can be retried and
    /// gives its rate-limit slot back.
    Failed {
        error: UpstreamError,
        may_have_run: bool,
    },
}

/// Notifications one call may have waiting for a slow client; past this, more are dropped (with a
/// warning) rather than held in memory. Responses and server requests are never dropped.
pub(super) const MAX_QUEUED_NOTIFICATIONS: usize = 1024;

/// The sending end of a request's reply stream.
#[derive(Clone)]
pub(super) struct ReplyTx {
    tx: mpsc::UnboundedSender<Inbound>,
    queued: Arc<AtomicUsize>,
}

/// The receiving end of a request's reply stream.
pub struct ReplyRx {
    rx: mpsc::UnboundedReceiver<Inbound>,
    queued: Arc<AtomicUsize>,
}

pub(super) fn reply_channel() -> (ReplyTx, ReplyRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        ReplyTx {
            tx,
            queued: queued.clone(),
        },
        ReplyRx { rx, queued },
    )
}

fn is_notification(item: &Inbound) -> bool {
    matches!(item, Inbound::Message(m) if m.get("id").is_none())
}

impl ReplyTx {
    /// Sends a message; a notification is dropped when too many wait unread. False if the
    /// receiver is gone.
    pub(super) fn send(&self, item: Inbound) -> bool {
        if is_notification(&item) {
            if self.queued.load(Ordering::Relaxed) >= MAX_QUEUED_NOTIFICATIONS {
                tracing::warn!("a client reads too slowly; dropping a notification for its call");
                return !self.tx.is_closed();
            }
            self.queued.fetch_add(1, Ordering::Relaxed);
        }
        self.tx.send(item).is_ok()
    }
}

impl ReplyRx {
    pub async fn recv(&mut self) -> Option<Inbound> {
        let item = self.rx.recv().await?;
        if is_notification(&item) {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn a_slow_client_loses_surplus_notifications_but_never_its_answer() {
        let (tx, mut rx) = reply_channel();
        let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {}});
        for _ in 0..MAX_QUEUED_NOTIFICATIONS + 10 {
            assert!(tx.send(Inbound::Message(progress.clone())));
        }
        assert!(tx.send(Inbound::Message(
            json!({"jsonrpc": "2.0", "id": 1, "result": {}})
        )));
        drop(tx);
        let mut notifications = 0;
        let mut answers = 0;
        while let Some(item) = rx.recv().await {
            match item {
                Inbound::Message(m) if m.get("id").is_some() => answers += 1,
                _ => notifications += 1,
            }
        }
        assert_eq!(notifications, MAX_QUEUED_NOTIFICATIONS);
        assert_eq!(answers, 1);
    }
}
