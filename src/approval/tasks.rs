//! MCP tasks for parked calls (2025-11-25): a task-augmented `tools/call` that parks is answered
//! at once with a task instead of a held request. The task is a handle on the call: its status
//! is the call's, read from the store (so any instance answers for it), and the call's fate is
//! reached the same way as for any request that joins it ([`ApprovalQueue::join_call`]).
//!
//! A task id (`task_…`) is made from the agent's token and the call ([`TaskKey`]): unguessable
//! without the token, the same for every task-augmented call that joins the call, and made again
//! for `tasks/list` on any instance. The store keeps its SHA-256 and the SHA-256 of the agent
//! token, so another agent, or a guessed id, finds nothing, and a reader of the database cannot
//! make one.

use std::sync::Arc;

use super::{ApprovalQueue, Parked};
use crate::domain::{Actor, CallId, CallStatus, SessionKey, Timestamp};
use crate::secrets::TaskKey;
use crate::store::{CallRow, StoreError, TaskRow};

/// A task and the call it stands for.
pub struct TaskCall {
    pub task: TaskRow,
    pub call: CallRow,
}

impl ApprovalQueue {
    /// The task of the agent token `token_sha256` (whose ids `key` makes) for the parked call
    /// `call`: its id and row, made now unless the token has one for the call already. It lives
    /// as long as the call can still be decided and picked up.
    pub async fn create_task(
        &self,
        call: &CallRow,
        token_sha256: &str,
        key: &TaskKey,
    ) -> Result<(String, TaskRow), StoreError> {
        let id = key.task_id(call.id.as_str());
        let lifetime = Timestamp::now().seconds_until(call.expires_at).max(0.0)
            + self.config.approval.pickup as f64;
        let ttl_ms = (lifetime * 1000.0) as i64;
        let row = self
            .store
            .insert_task(&task_digest(&id), &call.id, token_sha256, ttl_ms)
            .await?;
        Ok((id, row))
    }

    /// The live task `id` of `token_sha256`, with its call; `None` for an unknown, expired or
    /// foreign task.
    pub async fn task(&self, id: &str, token_sha256: &str) -> Result<Option<TaskCall>, StoreError> {
        let Some(task) = self.store.task(&task_digest(id), token_sha256).await? else {
            return Ok(None);
        };
        if task.is_expired(Timestamp::now()) {
            return Ok(None);
        }
        Ok(self
            .store
            .call(&task.call_id)
            .await?
            .map(|call| TaskCall { task, call }))
    }

    /// The live tasks of `token_sha256`, newest first, after `before` (where a page ended), from
    /// a page of `limit` stored ones; and where the next page starts when there may be more.
    pub async fn tasks(
        &self,
        token_sha256: &str,
        before: Option<(Timestamp, &str)>,
        limit: u32,
    ) -> Result<(Vec<TaskCall>, Option<(Timestamp, String)>), StoreError> {
        let now = Timestamp::now();
        let page = self.store.tasks_of(token_sha256, before, limit).await?;
        // Counted before expired tasks are left out, so they cannot end the listing early.
        let next = (page.len() == limit as usize)
            .then(|| page.last().map(|t| (t.created_at, t.id_sha256.clone())))
            .flatten();
        let mut out = Vec::new();
        for task in page {
            if task.is_expired(now) {
                continue;
            }
            if let Some(call) = self.store.call(&task.call_id).await? {
                out.push(TaskCall { task, call });
            }
        }
        Ok((out, next))
    }

    /// Waits for `call` as one more request would (for `tasks/result`, or `tasks/get` of an
    /// approved call): without a hold when `hold` is false, since the answer is the result.
    pub fn join_call(
        self: &Arc<Self>,
        call: &CallRow,
        session: &SessionKey,
        request_key: String,
        hold: bool,
    ) -> Parked {
        let parked = self.join(call, session, request_key);
        if hold {
            parked
        } else {
            parked.holding_until_decided()
        }
    }

    /// `tasks/cancel`: withdraws the call if it is still pending, or approved and not yet sent;
    /// true if this did.
    pub async fn withdraw(&self, id: &CallId, agent: &Actor) -> Result<bool, StoreError> {
        let why = "the agent cancelled its task";
        for from in [CallStatus::Pending, CallStatus::Approved] {
            if self
                .step(id, from, CallStatus::Withdrawn, agent, Some(why))
                .await?
            {
                self.metrics
                    .approval_decision(CallStatus::Withdrawn.as_str(), None);
                self.wake(id);
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// What the store keeps of a task id.
fn task_digest(id: &str) -> String {
    crate::secrets::sha256_hex(id.as_bytes())
}
