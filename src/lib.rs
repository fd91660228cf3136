//! Airlock: an MCP gateway that stands between AI agents and their MCP servers and lets a human
//! decide on the dangerous tool calls. See `README.md` for the tour and the module docs for the
//! invariants each part keeps.

pub mod app;
pub mod approval;
pub mod audit;
pub mod commands;
pub mod config;
pub mod demo_upstream;
pub mod domain;
pub mod http_guard;
pub mod ip_range;
pub mod jsonrpc;
pub mod mcp;
pub mod memory;
pub mod metrics;
pub mod notify;
pub mod ops;
pub mod pinning;
pub mod policy;
pub mod protocol;
pub mod redact;
pub mod secrets;
pub mod serve;
pub mod store;
pub mod telemetry;
pub mod upstream;
pub mod visible;
pub mod web;
pub mod workers;
