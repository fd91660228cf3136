//! A parked call as reviewers see it, in the API and `airlock pending --json`: what was asked, under
//! which rule, the votes so far, and how it ended. A result is never part of it (only its size and
//! digest): `export_session` returns a credential.

use serde::Serialize;
use serde_json::Value;

use super::RuleSnapshot;
use crate::domain::{CallId, CallStatus};
use crate::store::{ApprovalRow, CallRow, EventRow};

#[derive(Debug, Serialize)]
pub struct CallView {
    pub id: CallId,
    pub status: CallStatus,
    pub upstream: String,
    pub tool: String,
    pub agent: String,
    /// A digest of the agent's session id: calls from one session share it.
    pub agent_session: String,
    pub created_at: String,
    pub expires_at: String,
    /// SHA-256 of the canonical arguments: what an approval binds to.
    pub args_digest: String,
    /// The arguments with secret-looking fields masked (see `crate::redact`).
    pub arguments: Value,
    pub rule: Option<RuleSnapshot>,
    pub approvals_needed: i64,
    pub approvals: Vec<ApprovalRow>,
    pub decided_at: Option<String>,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    pub finished_at: Option<String>,
    /// Approved: when it ends `unclaimed` unless its agent calls for it; refused: until when
    /// the agent's next call with the same arguments is told why.
    pub pickup_by: Option<String>,
    /// Requests of the agent waiting for the call on this instance right now (unknown where the
    /// view is made outside the server, as by `airlock pending`). With none, the agent gets
    /// the result when it calls again with the same arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_waiting: Option<usize>,
    pub result: Option<ResultView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventRow>>,
}

#[derive(Debug, Serialize)]
pub struct ResultView {
    pub bytes: i64,
    pub sha256: Option<String>,
    pub is_error: Option<bool>,
}

impl CallView {
    pub fn new(row: CallRow, approvals: Vec<ApprovalRow>, events: Option<Vec<EventRow>>) -> Self {
        // Shown to people: secret-looking fields masked (the digest still covers the real ones).
        let arguments = row.shown_arguments();
        let rule = RuleSnapshot::read(&row.rule_json);
        Self {
            status: row.status,
            id: row.id,
            upstream: row.upstream.into_string(),
            tool: row.tool.into_string(),
            agent: row.agent.into_string(),
            agent_session: row.agent_session,
            created_at: row.created_at.text(),
            expires_at: row.expires_at.text(),
            args_digest: row.args_sha256.as_str().to_owned(),
            arguments,
            rule,
            approvals_needed: row.approvals_needed,
            approvals,
            decided_at: row.decided_at.map(|at| at.text()),
            decided_by: row.decided_by,
            reason: row.reason,
            finished_at: row.finished_at.map(|at| at.text()),
            pickup_by: row.pickup_by.map(|at| at.text()),
            requests_waiting: None,
            result: row.result_bytes.map(|bytes| ResultView {
                bytes,
                sha256: row.result_sha256,
                is_error: row.result_is_error.map(|flag| flag != 0),
            }),
            events,
        }
    }

    /// The view, saying how many requests of the agent wait for the call on this instance.
    pub fn waited_on_by(mut self, requests: usize) -> Self {
        self.requests_waiting = Some(requests);
        self
    }
}
