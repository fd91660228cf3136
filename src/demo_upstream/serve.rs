//! The demo upstream's transports: stdio (as an MCP client starts it) and Streamable HTTP.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt;
use rmcp::ServiceExt;
use rmcp::transport::{
    StreamableHttpServerConfig, StreamableHttpService,
    streamable_http_server::session::local::LocalSessionManager,
};

use super::{DemoError, DemoOptions, DemoServer};

/// Serves the demo upstream on stdin/stdout until stdin closes. Only JSON-RPC goes to stdout;
/// logs go wherever the `tracing` subscriber sends them (stderr in the CLI).
pub async fn serve_stdio(opts: DemoOptions) -> Result<(), DemoError> {
    let server = DemoServer::new(opts)?;
    tracing::info!(pid = std::process::id(), "demo upstream serving on stdio");
    // `stdio_pipes` reads through the IO reactor when stdin is a pipe (as under an MCP client),
    // so shutting down never waits on a blocking stdin read.
    let running = server
        .serve(rmcp::transport::stdio_pipes())
        .await
        .map_err(|error| DemoError::Handshake(Box::new(error)))?;
    running.waiting().await.map_err(DemoError::Service)?;
    Ok(())
}

/// Serves the demo upstream over MCP Streamable HTTP at `/mcp` on `listener` until ctrl-c, or
/// until the future is dropped (an aborted task stops accepting and ends every session).
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    opts: DemoOptions,
) -> Result<(), DemoError> {
    serve_http_until(listener, opts, async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for ctrl-c; stop the demo upstream another way");
            std::future::pending::<()>().await;
        }
    })
    .await
}

/// Like [`serve_http`], but stops gracefully when `shutdown` completes instead of on ctrl-c:
/// open sessions and their event streams are ended, then in-flight responses are let finish.
pub async fn serve_http_until(
    listener: tokio::net::TcpListener,
    opts: DemoOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DemoError> {
    let server = DemoServer::new(opts)?;
    let local = listener.local_addr().map_err(DemoError::LocalAddr)?;
    let config = http_config(local);
    let sessions_end = config.cancellation_token.clone();
    // Dropping this (the caller aborting us) tells every session task to end, not just ctrl-c.
    let _end_sessions_on_drop = sessions_end.clone().drop_guard();
    let service: StreamableHttpService<DemoServer, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(server.clone()), Arc::default(), config);
    let router = axum::Router::new().nest_service("/mcp", service);
    tracing::info!(
        pid = std::process::id(),
        "demo upstream serving on http://{local}/mcp"
    );
    axum::serve(listener.tap_io(no_delay), router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Event streams never end on their own; without this the graceful shutdown would
            // wait for every connected client to hang up.
            sessions_end.cancel();
        })
        .await
        .map_err(DemoError::Http)
}

/// Turns Nagle's algorithm off on an accepted connection. rmcp answers a POST with an SSE
/// priming event and then, once the tool ran, the response: two small writes. With Nagle on, the
/// second waits for the client to acknowledge the first, and a client that keeps its connection
/// alive (as Airlock does) delays that acknowledgement by up to 40 ms: `benches/proxy.rs` measured
/// +43 ms on every call through Airlock until this was set.
fn no_delay(tcp: &mut tokio::net::TcpStream) {
    if let Err(error) = tcp.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY; replies may be delayed");
    }
}

fn http_config(local: SocketAddr) -> StreamableHttpServerConfig {
    let config = StreamableHttpServerConfig::default();
    if local.ip().is_loopback() {
        config
    } else {
        // rmcp only accepts loopback `Host` headers by default (against DNS rebinding). Bound
        // beyond loopback, e.g. in a container, the gateway reaches us by a name no fixed list
        // predicts, and the server only holds fake data.
        config.disable_allowed_hosts()
    }
}
