//! The upstream the proxy bench measures against: an rmcp server with one tool, `echo
//! {message}`, served over Streamable HTTP (with `TCP_NODELAY` on accepted sockets, as Go, Node
//! and most servers do, or without it, as axum serves by default) or over stdio. It runs in a
//! process of its own: the bench binary started again with `--role`.

use std::sync::Arc;

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::{
    StreamableHttpService, session::local::LocalSessionManager,
};
use rmcp::{ServerHandler, ServiceExt, tool, tool_handler, tool_router};

/// The server, as `../shared/benchkit`'s echo-upstream writes it (the figures were
/// measured against that one).
#[derive(Clone)]
struct Echo;

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    message: String,
}

#[tool_router]
impl Echo {
    #[tool(description = "Echo the message back")]
    async fn echo(&self, Parameters(EchoArgs { message }): Parameters<EchoArgs>) -> String {
        message
    }
}

#[tool_handler]
impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// Serves the echo tool at `http://ADDR/mcp` until killed; prints the address once listening.
pub async fn serve_http(addr: &str, nodelay: bool) -> Result<(), Box<dyn std::error::Error>> {
    let service: StreamableHttpService<Echo, LocalSessionManager> =
        StreamableHttpService::new(|| Ok(Echo), Arc::default(), Default::default());
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("{}", listener.local_addr()?);
    if nodelay {
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, router).await?;
    } else {
        axum::serve(listener, router).await?;
    }
    Ok(())
}

/// Serves the echo tool on stdin and stdout until the other side closes.
pub async fn serve_stdio() -> Result<(), Box<dyn std::error::Error>> {
    Echo.serve(rmcp::transport::stdio())
        .await?
        .waiting()
        .await?;
    Ok(())
}
