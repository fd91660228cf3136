//! Airlock's integration tests, in one binary (one link on a 2-core machine instead of one per
//! file): each module drives the real app or the real `airlock` binary over real sockets, with
//! the harness in [`common`]. `cargo nextest run` runs them all; `-E 'test(/^approval::/)'` one
//! module.

mod common;

mod agent_sdks;
mod approval;
mod approval_restart;
mod audit;
mod cli;
mod conformance;
mod dashboard;
mod dashboard_browser;
mod demo_upstream;
mod endpoint_errors;
mod everything;
mod notify;
mod pickup;
mod pinning;
mod policy_depth;
mod policy_enforcement;
mod proxy_passthrough;
mod resumption;
mod scale_out;
mod security;
mod tasks;
mod third_party_clients;
mod upstream_revisions;
