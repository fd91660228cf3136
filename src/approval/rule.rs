//! The rule a call was parked under, stored with it: later policy edits do not change how a
//! waiting call is decided.

use crate::domain::{ToolName, UpstreamName};
use crate::policy::ApprovalRule;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RuleSnapshot {
    /// `upstream.tool`, as messages name rules.
    pub rule: String,
    pub approvals: u32,
    pub timeout_secs: u64,
    pub reviewers: Vec<String>,
    pub notify: Vec<String>,
    pub reason: Option<String>,
}

impl RuleSnapshot {
    pub fn new(upstream: &UpstreamName, tool: &ToolName, rule: &ApprovalRule) -> Self {
        Self {
            rule: format!("{upstream}.{tool}"),
            approvals: rule.approvals(),
            timeout_secs: rule.timeout().as_secs(),
            reviewers: rule.reviewers().to_vec(),
            notify: rule.notify().to_vec(),
            reason: rule.reason().map(str::to_owned),
        }
    }

    /// The rule as a call row stores it (`rule_json`); `None` when the text does not read.
    pub fn read(stored: &str) -> Option<Self> {
        serde_json::from_str(stored).ok()
    }

    /// Who decides, for a sentence: the rule's reviewers, or "a reviewer".
    pub fn deciders(&self) -> String {
        if self.reviewers.is_empty() {
            "a reviewer".to_owned()
        } else {
            self.reviewers.join(", ")
        }
    }
}
