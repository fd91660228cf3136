//! What Airlock does to a `tools/list` answer on its way to the agent: notes every tool for the
//! risk classifier (the gate reads its verdict on each call), removes the tools that changed since
//! they were accepted (`pinning`) and those the policy hides,
//! and, for clients offered MCP tasks, marks the tools that may wait for a human as runnable as
//! tasks.

use std::sync::Arc;

use serde_json::Value;

use crate::pinning::Pins;
use crate::policy::{Policy, Sensitivity, risk};
use crate::upstream::catalogue::ToolCatalogue;

pub struct ToolList {
    pub policy: Arc<Policy>,
    pub sensitive: Sensitivity,
    pub catalogue: Arc<ToolCatalogue>,
    pub pins: Arc<Pins>,
    /// The client was offered MCP tasks.
    pub offer_tasks: bool,
}

impl ToolList {
    /// Rewrites `upstream`'s `tools/list` response in place.
    pub fn apply(&self, upstream: &str, response: &mut Value) {
        let Some(Value::Array(tools)) = response.pointer_mut("/result/tools") else {
            return;
        };
        self.catalogue.observe(upstream, tools);
        self.pins.screen(upstream, tools);
        tools.retain(|tool| {
            !tool
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|name| self.policy.hides(name))
        });
        if self.offer_tasks {
            for tool in tools.iter_mut() {
                let Some(name) = tool.get("name").and_then(Value::as_str) else {
                    continue;
                };
                if self
                    .policy
                    .may_park(name, &risk::classify(tool), self.sensitive)
                {
                    super::tasks::offer_on_tool(tool);
                }
            }
        }
    }
}
