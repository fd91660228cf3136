//! The HTTP listener: what `axum::serve` does, plus the limits a server on a network needs
//! against clients that hold connections open (slowloris):
//!
//! - at most `[server] max_connections` connections at once; past that, new ones wait in the
//!   kernel's backlog until one closes (they are not accepted, so they cost nothing here); and at
//!   most `max_connections_per_client` from one address (a `trusted_proxies` peer excepted), so
//!   one client cannot take them all: its next ones are closed at once;
//! - a request's headers must arrive within `[server] header_timeout` seconds, or the connection
//!   is closed (hyper's header read timeout, which needs the timer this module gives it). Hyper
//!   starts that clock when it waits for a request, so a kept-alive connection idle that long is
//!   closed too: the default (60 s, as nginx's) stays above what clients' pools commonly keep;
//!   a much lower one makes clients that reuse an idle connection race its closing;
//! - a request's body must arrive within `[server] body_timeout` seconds of the handler starting
//!   to read it ([`body_deadline`]), or reading it fails (the handler answers 400/413 as for a
//!   broken body).
//!
//! Every connection gets `TCP_NODELAY` (see [`no_delay`]) and its peer's address as
//! [`ConnectInfo`] (sign-in throttling). On shutdown the listener stops accepting, every
//! connection is asked to finish its requests and close, and [`serve`] returns once all have.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// The most a connection's read buffer grows to. Bodies stream through it, so any size passes;
/// without a bound hyper keeps a buffer as large as the largest read for the connection's whole
/// life, and a parked call's connection lives for minutes (100 parked 200 KiB calls held 80 MB).
/// Request heads must fit in it.
const READ_BUFFER: usize = 64 * 1024;

/// The listener's limits (`[server]`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    /// Peers not held to the per-client limit (reverse proxies: every client comes through them).
    pub trusted_proxies: Vec<String>,
    pub header_timeout: Duration,
}

/// Open connections per peer address.
#[derive(Default)]
struct PerClient(std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>);

impl PerClient {
    fn counts(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<std::net::IpAddr, usize>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a connection from `ip`, unless it already has `max`.
    fn enter(self: &Arc<Self>, ip: std::net::IpAddr, max: usize) -> Option<ClientSlot> {
        let mut counts = self.counts();
        let count = counts.entry(ip).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            ip,
            counts: self.clone(),
        })
    }
}

/// One counted connection; it leaves the count when dropped.
struct ClientSlot {
    ip: std::net::IpAddr,
    counts: Arc<PerClient>,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.counts();
        if let Some(count) = counts.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Serves `app` on `listener` until `stop`, then lets open connections finish.
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, stop: CancellationToken) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let per_client = Arc::new(PerClient::default());
    let closing = CancellationToken::new();
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = stop.cancelled() => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let exempt = limits
            .trusted_proxies
            .iter()
            .any(|range| crate::ip_range::in_range(peer.ip(), range));
        let client_slot = if exempt {
            None
        } else {
            match per_client.enter(peer.ip(), limits.max_connections_per_client) {
                Some(slot) => Some(slot),
                None => {
                    tracing::debug!(peer = %peer.ip(), "too many connections from one client; closed");
                    continue;
                }
            }
        };
        no_delay(&tcp);
        let connection = connection(
            tcp,
            peer,
            app.clone(),
            limits.header_timeout,
            closing.clone(),
        );
        tokio::spawn(async move {
            connection.await;
            drop(client_slot);
            drop(permit);
        });
    }
    drop(listener);
    closing.cancel();
    // Every connection holds a permit until it ends: having them all back means all ended.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
}

/// Serves one connection until it ends, or (once `closing`) until its requests in flight are done.
async fn connection(
    tcp: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    app: Router,
    header_timeout: Duration,
    closing: CancellationToken,
) {
    let service = tower::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request.map(Body::new))
    });
    // hyper's HTTP/1 connection itself, not the auto-detecting one: every open connection's
    // task is sized for the largest protocol it could speak (HTTP/2 made it several kilobytes).
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(READ_BUFFER)
        .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service))
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::trace!(%error, "connection ended with an error");
            }
        }
        () = closing.cancelled() => {
            connection.as_mut().graceful_shutdown();
            if let Err(error) = connection.await {
                tracing::trace!(%error, "connection ended with an error");
            }
        }
    }
}

/// Turns Nagle's algorithm off on an accepted connection. Replies stream as SSE, one small write
/// per event (progress, related requests, then the response); with Nagle on, each write after the
/// first waits for the agent to acknowledge the previous one, which an agent keeping its connection
/// alive delays by up to 40 ms (`benches/proxy.rs` measured +43 ms a call on a server without it).
fn no_delay(tcp: &tokio::net::TcpStream) {
    if let Err(error) = tcp.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY; replies may be delayed");
    }
}

/// Middleware: the request's body fails (as a broken body does) if it has not fully arrived
/// `timeout` after the handler began to read it, so a client trickling a body cannot hold a
/// handler (and its connection) for ever.
pub async fn body_deadline(timeout: Duration, request: Request, next: Next) -> Response {
    let request = request.map(|body| Body::new(Deadline::new(body, timeout)));
    next.run(request).await
}

/// A body with a deadline, which starts with its first poll.
struct Deadline {
    inner: Body,
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Deadline {
    fn new(inner: Body, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            sleep: None,
        }
    }
}

/// The error of a body that did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
struct TooSlow(Duration);

impl HttpBody for Deadline {
    type Data = bytes::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let timeout = self.timeout;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(TooSlow(timeout)))));
        }
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map(|frame| frame.map(|frame| frame.map_err(axum::BoxError::from)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
