//! The rule a call was parked under, stored with it: later policy edits do not change how a
//! waiting call is decided.

use crate::domain::{ToolName, UpstreamName};
use crate::policy::ApprovalRule;
use crate::store::CallRow;

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

    /// The rule `call` was parked under; when its stored text does not read, what the row
    /// itself says (its quorum and timeout; nobody named).
    pub fn of_call(call: &CallRow) -> Self {
        Self::read(&call.rule_json).unwrap_or_else(|| Self {
            rule: format!("{}.{}", call.upstream, call.tool),
            approvals: u32::try_from(call.approvals_needed).unwrap_or(1),
            timeout_secs: call.created_at.seconds_until(call.expires_at).max(0.0) as u64,
            reviewers: Vec::new(),
            notify: Vec::new(),
            reason: None,
        })
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
