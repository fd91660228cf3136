//! Parking a call: joined if a call with its key is already there (no new row, no new email),
//! otherwise checked against the queue's limits, committed as `pending` with its notifications
//! in one transaction, and only then waited on.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::parked::{Parked, Wait};
use super::queue::Waiter;
use super::{ApprovalQueue, RuleSnapshot};
use crate::domain::{
    AgentName, ArgsDigest, AttachKey, CallId, SessionKey, Timestamp, ToolName, UpstreamName,
};
use crate::policy::ApprovalRule;
use crate::store::{CallRow, NewCall, NewMail, Parking, QueueLimits, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ParkError {
    #[error("the approval queue cannot record the call")]
    Store(#[from] StoreError),
    /// The call with the same key that a racing request parked is gone (never expected).
    #[error("the parked call {0} to join is gone")]
    Vanished(CallId),
    #[error("the call's arguments cannot be stored")]
    Encode(#[source] serde_json::Error),
    /// Over `[approval] max_args_bytes`.
    #[error("its arguments are too large to wait for approval ({bytes} bytes, limit {limit})")]
    TooLarge { bytes: usize, limit: usize },
    /// Over `[approval] max_pending_per_agent`.
    #[error("agent {agent} already has {open} calls waiting for a decision")]
    AgentFull { agent: AgentName, open: i64 },
    /// Over `[approval] max_pending`.
    #[error("Airlock already has {open} calls waiting for a decision")]
    QueueFull { open: i64 },
}

impl ParkError {
    /// A limit refused the call (the agent is told which), rather than the store failing.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            Self::TooLarge { .. } | Self::AgentFull { .. } | Self::QueueFull { .. }
        )
    }
}

/// A call about to be parked, as its notifications describe it.
pub struct Announcement<'a> {
    pub call: &'a CallId,
    pub agent: &'a AgentName,
    pub upstream: &'a UpstreamName,
    pub tool: &'a ToolName,
    /// The arguments as people may see them (redaction rules applied).
    pub arguments: &'a Value,
    pub digest: &'a ArgsDigest,
    pub rule: &'a RuleSnapshot,
    pub expires_at: Timestamp,
}

/// Who is told of a parked call. `notify` implements it (email); the queue calls it while parking,
/// so the messages are committed with the call, and says when they are.
pub trait Announce: Send + Sync {
    /// The messages announcing `call`.
    fn compose<'a>(
        &'a self,
        call: &'a Announcement<'a>,
    ) -> BoxFuture<'a, Result<Vec<NewMail>, StoreError>>;

    /// Messages were just queued.
    fn queued(&self);
}

/// A `tools/call` to park.
pub struct ParkRequest<'a> {
    pub upstream: &'a UpstreamName,
    pub tool: &'a ToolName,
    pub agent: &'a AgentName,
    /// The SHA-256 of the bearer token the agent called with: part of the call's key.
    pub token_sha256: &'a str,
    /// The downstream session (or stateless request key) the call came on.
    pub session: &'a SessionKey,
    /// The JSON-RPC id of the agent's request, as `jsonrpc::id_key` spells it.
    pub request_key: String,
    /// The arguments, owned: once stored they are dropped, and a release reads them back from
    /// the store, so a waiting call holds no copy of them in memory.
    pub arguments: Value,
    pub rule: &'a ApprovalRule,
}

/// The arguments as they will be stored: their text, the digest of that text read back (exactly
/// as the release will read it), and the masked copy people see.
struct StoredArgs {
    json: String,
    digest: ArgsDigest,
    shown: Value,
    shown_json: String,
}

impl ApprovalQueue {
    /// Joins the call with this request's key if there is one; otherwise commits the call as
    /// `pending`, then starts waiting for it. Nothing about a new call is told to anyone before
    /// the commit.
    #[tracing::instrument(name = "park", skip_all, fields(upstream = %request.upstream, tool = %request.tool, agent = %request.agent, call))]
    pub async fn park(self: &Arc<Self>, mut request: ParkRequest<'_>) -> Result<Parked, ParkError> {
        let args = self.stored_args(std::mem::take(&mut request.arguments))?;
        let key = AttachKey::new(
            request.agent,
            request.token_sha256,
            request.upstream,
            request.tool,
            &args.digest,
        );
        if let Some(row) = self.store.joinable(&key, Timestamp::now()).await? {
            return Ok(self.join(&row, request.session, request.request_key));
        }
        let limits = self.limits();
        // A look before the work of parking (emails, the tool's description), so an agent at its
        // limit costs a count, not a locked transaction; the insert counts again, locked.
        if let Some(refused) = self.store.queue_refusal(request.agent, &limits).await?
            && let Some(e) = refusal(request.agent, refused)
        {
            return Err(e);
        }
        self.park_new(request, args, &key, &limits).await
    }

    /// Parks a call no open call has the key of: composes its notifications, starts waiting,
    /// and commits it (or joins the call a racing request committed first).
    async fn park_new(
        self: &Arc<Self>,
        request: ParkRequest<'_>,
        args: StoredArgs,
        key: &AttachKey,
        limits: &QueueLimits,
    ) -> Result<Parked, ParkError> {
        let id = CallId::generate();
        tracing::Span::current().record("call", tracing::field::display(&id));
        let rule = RuleSnapshot::new(request.upstream, request.tool, request.rule);
        let rule_json = serde_json::to_string(&rule).map_err(ParkError::Encode)?;
        let created_at = Timestamp::now();
        let expires_at = created_at
            + time::Duration::try_from(request.rule.timeout()).unwrap_or(time::Duration::MAX);
        let mails = self
            .compose(&Announcement {
                call: &id,
                agent: request.agent,
                upstream: request.upstream,
                tool: request.tool,
                arguments: &args.shown,
                digest: &args.digest,
                rule: &rule,
                expires_at,
            })
            .await?;
        // Waiting starts before the commit, so a decision made right after it cannot be missed.
        let parked = self.wait_for(
            request.session,
            request.request_key.clone(),
            Wait {
                id: id.clone(),
                tool: request.tool.clone(),
                digest: args.digest.clone(),
                rule,
                expires_at,
                joined: false,
                n: self.waiter_number(),
                wake: Arc::new(Notify::new()),
                end: CancellationToken::new(),
            },
        );
        let session_label = crate::secrets::sha256_hex(request.session.as_bytes());
        let call = NewCall {
            id: &id,
            upstream: request.upstream,
            tool: request.tool,
            agent: request.agent,
            agent_session: &session_label[..16],
            instance_id: &self.instance_id,
            args_json: &args.json,
            args_shown: &args.shown_json,
            args_sha256: &args.digest,
            attach_key: key,
            rule_json: &rule_json,
            approvals_needed: request.rule.approvals(),
            created_at,
            expires_at,
        };
        let parking = self.store.insert_call(&call, &mails, Some(limits)).await?;
        self.settle(parked, parking, &request, !mails.is_empty())
            .await
    }

    /// What became of a new call offered to the store: parked (its wait is `parked`), joined to
    /// the call a racing request committed first, or refused by the queue's limits.
    async fn settle(
        self: &Arc<Self>,
        parked: Parked,
        parking: Parking,
        request: &ParkRequest<'_>,
        mailed: bool,
    ) -> Result<Parked, ParkError> {
        match parking {
            Parking::Parked { .. } => {
                if let Some(announcer) = self.announcer.as_ref().filter(|_| mailed) {
                    announcer.queued();
                }
                self.changed.notify_one();
                Ok(parked)
            }
            Parking::Joined(open) => {
                drop(parked);
                let row = self
                    .store
                    .call(&open)
                    .await?
                    .ok_or(ParkError::Vanished(open))?;
                Ok(self.join(&row, request.session, request.request_key.clone()))
            }
            Parking::AgentFull(open) => Err(ParkError::AgentFull {
                agent: request.agent.clone(),
                open,
            }),
            Parking::QueueFull(open) => Err(ParkError::QueueFull { open }),
        }
    }

    /// Waits for `row`, a call another request parked with this request's key, as `session`'s
    /// request `request_key`.
    pub(super) fn join(
        self: &Arc<Self>,
        row: &CallRow,
        session: &SessionKey,
        request_key: String,
    ) -> Parked {
        tracing::Span::current().record("call", tracing::field::display(&row.id));
        tracing::info!(call = %row.id, status = %row.status, "joined a parked call with the same key");
        let wake = Arc::new(Notify::new());
        // Look at the call at once: it may be decided already.
        wake.notify_one();
        self.wait_for(
            session,
            request_key,
            Wait {
                id: row.id.clone(),
                tool: row.tool.clone(),
                digest: row.args_sha256.clone(),
                rule: RuleSnapshot::of_call(row),
                expires_at: row.expires_at,
                joined: true,
                n: self.waiter_number(),
                wake,
                end: CancellationToken::new(),
            },
        )
    }

    /// The messages announcing a call about to be parked (none without an announcer).
    async fn compose(&self, announcement: &Announcement<'_>) -> Result<Vec<NewMail>, StoreError> {
        match &self.announcer {
            Some(announcer) => announcer.compose(announcement).await,
            None => Ok(Vec::new()),
        }
    }

    /// The arguments' stored forms, within `[approval] max_args_bytes`.
    fn stored_args(&self, arguments: Value) -> Result<StoredArgs, ParkError> {
        let json = serde_json::to_string(&arguments).map_err(ParkError::Encode)?;
        drop(arguments);
        let limit = self.config.approval.max_args_bytes;
        if json.len() > limit {
            return Err(ParkError::TooLarge {
                bytes: json.len(),
                limit,
            });
        }
        let stored: Value = serde_json::from_str(&json).map_err(ParkError::Encode)?;
        let shown = self.redactor.redact(&stored);
        let shown_json = serde_json::to_string(&shown).map_err(ParkError::Encode)?;
        Ok(StoredArgs {
            digest: ArgsDigest::of(&stored),
            json,
            shown,
            shown_json,
        })
    }

    fn limits(&self) -> QueueLimits {
        QueueLimits {
            per_agent: self.config.approval.max_pending_per_agent,
            total: self.config.approval.max_pending,
            notify_every: time::Duration::seconds(
                self.config
                    .email
                    .as_ref()
                    .map_or(0, |e| i64::try_from(e.notify_every).unwrap_or(i64::MAX)),
            ),
        }
    }

    /// Registers one request's wait for a call in this process.
    fn wait_for(self: &Arc<Self>, session: &SessionKey, request_key: String, wait: Wait) -> Parked {
        self.add_waiter(
            wait.id.clone(),
            Waiter {
                n: wait.n,
                wake: wait.wake.clone(),
                end: wait.end.clone(),
                session: session.clone(),
                request_key,
            },
        );
        Parked::new(wait, self.clone())
    }
}

/// The error of a call the queue's limits refused (`None` when it was parked).
fn refusal(agent: &AgentName, parking: Parking) -> Option<ParkError> {
    match parking {
        Parking::Parked { .. } | Parking::Joined(_) => None,
        Parking::AgentFull(open) => Some(ParkError::AgentFull {
            agent: agent.clone(),
            open,
        }),
        Parking::QueueFull(open) => Some(ParkError::QueueFull { open }),
    }
}
