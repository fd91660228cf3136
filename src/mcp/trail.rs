//! The audit trail of a call the policy decided on its own (allowed, denied, rate-limited): the
//! verdict, and for an allowed call how it ended. Parked calls are audited by the approval queue,
//! in the transactions that change them; these events go through the batched [`AuditWriter`], off
//! the proxy path.

use std::time::Instant;

use serde_json::Value;

use crate::audit::{AuditWriter, Entry, NotRecorded};
use crate::domain::{Actor, AgentName, Timestamp};
use crate::store::ResultSummary;

/// One call's events, sharing its id, agent, tool and argument digest.
pub struct Trail {
    writer: AuditWriter,
    /// The configured masking rules, for upstream error messages.
    redactor: std::sync::Arc<crate::redact::Redactor>,
    template: Entry,
    started: Instant,
    /// Set once the call's outcome is recorded; a trail dropped before that records that the
    /// outcome is unknown.
    ended: bool,
}

impl Trail {
    /// The trail of a `tools/call` request `msg` by `agent` to `upstream`'s `tool`.
    pub fn new(
        app: &crate::app::AppState,
        upstream: &str,
        tool: &str,
        agent: &AgentName,
        msg: &Value,
    ) -> Self {
        // With `[audit] record_policy_decisions = false` the trail records nothing: it starts
        // ended (and spends nothing on what it would have written).
        let recorded = app.config.audit.record_policy_decisions;
        let template = if recorded {
            let digest = super::continuations::digest_of(msg);
            let actor = Actor::agent(agent);
            Entry {
                actor: actor.name().to_owned(),
                via: actor.via().as_str().to_owned(),
                upstream: Some(upstream.to_owned()),
                tool: Some(tool.to_owned()),
                call_id: Some(uuid::Uuid::now_v7().to_string()),
                args_digest: Some(digest.as_str().to_owned()),
                ..Entry::default()
            }
        } else {
            Entry::default()
        };
        Self {
            writer: app.audit.clone(),
            redactor: app.redactor.clone(),
            template,
            started: Instant::now(),
            ended: !recorded,
        }
    }

    /// Records that the policy refused the call (`denied` or `rate_limited`), with the message
    /// the agent gets.
    pub fn refused(mut self, kind: &str, message: &str) {
        if !std::mem::replace(&mut self.ended, true) {
            self.writer.record(self.entry(kind, false, message));
        }
    }

    /// Records that the policy let the call through; waits for room in the writer's queue, and
    /// fails when there is none, so a call that cannot be recorded is not forwarded.
    pub async fn allowed(&mut self, detail: &str) -> Result<(), NotRecorded> {
        self.started = Instant::now();
        if self.ended {
            return Ok(());
        }
        let entry = self.entry("allowed", false, detail);
        let admitted = self.writer.admit(entry).await;
        // A call refused here has no outcome to wait for.
        self.ended = admitted.is_err();
        admitted
    }

    /// Records the upstream's final answer to the call.
    pub fn answered(&mut self, response: &Value) {
        if self.ended {
            return;
        }
        let elapsed = self.started.elapsed().as_millis();
        match response.get("error") {
            Some(error) => {
                let detail = upstream_error(error, &self.redactor);
                self.end("failed", &detail);
            }
            None => {
                let summary = ResultSummary::of(response.get("result").unwrap_or(&Value::Null));
                self.end(
                    "completed",
                    &format!("{}, {elapsed} ms", summary.describe()),
                );
            }
        }
    }

    /// Records that the call did not get an answer: `may_have_run` says the upstream may have
    /// carried it out.
    pub fn failed(&mut self, cause: &str, may_have_run: bool) {
        let kind = if may_have_run {
            "outcome_unknown"
        } else {
            "failed"
        };
        self.end(kind, cause);
    }

    fn end(&mut self, kind: &str, detail: &str) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        self.writer.record(self.entry(kind, true, detail));
    }

    /// An event of this call, by the agent, or by `system` for how it ended.
    fn entry(&self, kind: &str, by_system: bool, detail: &str) -> Entry {
        let mut entry = self.template.clone();
        entry.at = Timestamp::now().text();
        kind.clone_into(&mut entry.kind);
        if by_system {
            Actor::SYSTEM.name().clone_into(&mut entry.actor);
            Actor::SYSTEM.via().as_str().clone_into(&mut entry.via);
        }
        entry.detail = Some(detail.to_owned());
        entry
    }
}

impl Drop for Trail {
    fn drop(&mut self) {
        self.end(
            "outcome_unknown",
            "the agent's request ended before the upstream answered",
        );
    }
}

/// What the audit log keeps of an upstream's JSON-RPC error: its code and message, secret-looking
/// words masked (by the configured rules) and the message capped; never its `data`, where servers
/// echo arguments.
pub fn upstream_error(error: &Value, redactor: &crate::redact::Redactor) -> String {
    const MAX: usize = 300;
    let code = error.get("code").map_or_else(String::new, Value::to_string);
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut message = redactor.redact_text(message);
    if message.chars().count() > MAX {
        message = message.chars().take(MAX).collect::<String>() + "…";
    }
    format!("the upstream answered with error {code}: {message}")
}
