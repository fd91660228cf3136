//! The conformance fixture (`tests/it/conformance/fixture.rs`: what the official MCP conformance
//! suite's server scenarios call, on both protocol revisions) as a program of its own: on stdio
//! by default, as the tests run it behind Airlock as a stdio upstream; on Streamable HTTP at
//! `http://ADDR/mcp` with `--listen ADDR`, to run the suite against it by hand:
//!
//! ```text
//! cargo run --example conformance_fixture -- --listen 127.0.0.1:3001
//! node node_modules/@modelcontextprotocol/conformance/dist/index.js server \
//!     --url http://127.0.0.1:3001/mcp --suite all
//! ```
//!
//! `--handshake-only` makes it speak no revision after 2025-11-25, as servers built before
//! 2026-07-28 do.

#[path = "../tests/it/conformance/fixture.rs"]
mod fixture;
#[path = "../tests/it/conformance/fixture_mrtr.rs"]
mod fixture_mrtr;
#[path = "../tests/it/conformance/fixture_tools.rs"]
mod fixture_tools;

use fixture::Fixture;
use rmcp::ServiceExt;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let handshake_only = args.iter().any(|a| a == "--handshake-only");
    let listen = args
        .iter()
        .position(|a| a == "--listen")
        .and_then(|at| args.get(at + 1));
    let fixture = Fixture::speaking(handshake_only);
    let served = match listen {
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                eprintln!("conformance fixture: http://{addr}/mcp");
                fixture::serve(listener, fixture).await;
                Ok(())
            }
            Err(e) => Err(format!("cannot listen on {addr}: {e}")),
        },
        None => match fixture.serve(rmcp::transport::stdio()).await {
            Ok(running) => running
                .waiting()
                .await
                .map(|_| ())
                .map_err(|e| format!("the stdio service failed: {e}")),
            Err(e) => Err(format!("the stdio handshake failed: {e}")),
        },
    };
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("conformance fixture: {why}");
            std::process::ExitCode::FAILURE
        }
    }
}
