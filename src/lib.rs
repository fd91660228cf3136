//! Airlock: an MCP gateway that stands between AI agents and their MCP servers and lets a human
//! decide on the dangerous tool calls. See `README.md` for the tour and `DESIGN.md` for the contract.

pub mod demo_upstream;
pub mod policy;
