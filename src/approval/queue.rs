//! Parked calls of this process: parking, waking, withdrawing, expiring, releasing, and the sweeps
//! that keep the store honest (decisions made elsewhere, calls left behind by a crash).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::CallStatus;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::policy::ApprovalRule;
use crate::store::{
    Actor, CallRow, NewCall, Parking, QueueLimits, ResultSummary, Store, StoreError,
};
use crate::upstream::SessionKey;

pub(super) const SYSTEM: Actor<'static> = Actor {
    name: "system",
    via: "system",
};

#[derive(Debug, thiserror::Error)]
pub enum ParkError {
    #[error("the approval queue cannot record the call")]
    Store(#[from] StoreError),
    #[error("the call's arguments cannot be stored")]
    Encode(#[source] serde_json::Error),
    /// Over `[approval] max_args_bytes`.
    #[error("its arguments are too large to wait for approval ({bytes} bytes, limit {limit})")]
    TooLarge { bytes: usize, limit: usize },
    /// Over `[approval] max_pending_per_agent`.
    #[error("agent {agent} already has {open} calls waiting for a decision")]
    AgentFull { agent: String, open: i64 },
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

/// The rule a call was parked under, stored with it: later policy edits do not change how a
/// waiting call is decided.
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
    pub fn new(upstream: &str, tool: &str, rule: &ApprovalRule) -> Self {
        Self {
            rule: format!("{upstream}.{tool}"),
            approvals: rule.approvals(),
            timeout_secs: rule.timeout().as_secs(),
            reviewers: rule.reviewers().to_vec(),
            notify: rule.notify().to_vec(),
            reason: rule.reason().map(str::to_owned),
        }
    }
}

/// A `tools/call` to park.
pub struct ParkRequest<'a> {
    pub upstream: &'a str,
    pub tool: &'a str,
    pub agent: &'a str,
    /// The downstream session (or stateless request key) the call came on.
    pub session: &'a SessionKey,
    /// The JSON-RPC id of the agent's request, as `jsonrpc::id_key` spells it.
    pub request_key: String,
    /// The arguments, owned: once stored they are dropped, and a release reads them back from
    /// the store, so a waiting call holds no copy of them in memory.
    pub arguments: Value,
    pub rule: &'a ApprovalRule,
}

struct Waiter {
    wake: Arc<Notify>,
    withdraw: CancellationToken,
    session: SessionKey,
    request_key: String,
}

/// The calls parked in this process, and the handle on the store they live in.
pub struct ApprovalQueue {
    pub(super) store: Store,
    /// Names this instance in `tool_calls.instance_id`; stable across restarts (see `recovery`).
    pub(super) instance_id: String,
    /// How long an instance may go without a heartbeat before its calls count as orphaned.
    pub(super) instance_timeout: Duration,
    /// Random, per process: tells this process from another one holding the same instance id.
    pub(super) process_token: String,
    metrics: Arc<Metrics>,
    /// Who is told of a parked call, and the links they get.
    config: Arc<Config>,
    /// Wakes the outbox worker when a parked call queued emails.
    pub mail_queued: Arc<Notify>,
    /// Where emails find what a tool does.
    catalogue: Arc<crate::upstream::catalogue::ToolCatalogue>,
    /// The masking rules applied to a call's arguments when it is parked.
    pub(super) redactor: crate::redact::Redactor,
    /// Told when a call of this process is parked or changes, so the dashboard's live feed looks
    /// at once instead of at its next poll.
    pub changed: Arc<Notify>,
    waiters: Mutex<HashMap<String, Waiter>>,
}

/// One parked call, held by the agent's open request. Dropping it stops waiting for the call (the
/// store keeps its row and history).
pub struct Parked {
    pub id: String,
    pub digest: String,
    pub rule: RuleSnapshot,
    /// When the call expires (the rule's timeout after it was parked).
    pub deadline: Instant,
    wake: Arc<Notify>,
    withdraw: CancellationToken,
    queue: Arc<ApprovalQueue>,
}

impl Drop for Parked {
    fn drop(&mut self) {
        self.queue.waiters().remove(&self.id);
    }
}

impl Parked {
    /// Resolves when the call may have been decided (by this process or, via the poll, another).
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Resolves when the agent withdrew the call (cancel, or its session ended).
    pub async fn withdrawn(&self) {
        self.withdraw.cancelled().await;
    }

    pub fn is_withdrawn(&self) -> bool {
        self.withdraw.is_cancelled()
    }
}

impl ApprovalQueue {
    pub fn new(
        store: Store,
        metrics: Arc<Metrics>,
        config: Arc<Config>,
        catalogue: Arc<crate::upstream::catalogue::ToolCatalogue>,
    ) -> Self {
        let instance_id = config
            .server
            .instance_id
            .clone()
            .unwrap_or_else(|| super::default_instance_id(config.server.listen));
        Self {
            redactor: crate::redact::Redactor::new(&config.redaction),
            store,
            instance_id,
            instance_timeout: Duration::from_secs(config.server.instance_timeout),
            process_token: uuid::Uuid::new_v4().to_string(),
            metrics,
            config,
            mail_queued: Arc::new(Notify::new()),
            changed: Arc::new(Notify::new()),
            catalogue,
            waiters: Mutex::new(HashMap::new()),
        }
    }

    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// Unique to this process (the outbox worker claims messages with it).
    pub fn process_token(&self) -> &str {
        &self.process_token
    }

    fn waiters(&self) -> MutexGuard<'_, HashMap<String, Waiter>> {
        self.waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The ids of the calls parked in this process.
    pub(super) fn waiting_ids(&self) -> Vec<String> {
        self.waiters().keys().cloned().collect()
    }

    pub(super) fn is_waiting(&self, id: &str) -> bool {
        self.waiters().contains_key(id)
    }

    /// Calls parked in this process right now.
    pub fn waiting(&self) -> usize {
        self.waiters().len()
    }

    /// Commits the call as `pending`, then starts waiting for it. Nothing about the call is told
    /// to anyone before the commit.
    pub async fn park(self: &Arc<Self>, request: ParkRequest<'_>) -> Result<Parked, ParkError> {
        let id = uuid::Uuid::now_v7().to_string();
        let args_json = serde_json::to_string(&request.arguments).map_err(ParkError::Encode)?;
        drop(request.arguments);
        let limit = self.config.approval.max_args_bytes;
        if args_json.len() > limit {
            return Err(ParkError::TooLarge {
                bytes: args_json.len(),
                limit,
            });
        }
        let limits = QueueLimits {
            per_agent: self.config.approval.max_pending_per_agent,
            total: self.config.approval.max_pending,
            notify_every: time::Duration::seconds(
                self.config
                    .email
                    .as_ref()
                    .map_or(0, |e| i64::try_from(e.notify_every).unwrap_or(i64::MAX)),
            ),
        };
        // A look before the work of parking (emails, the tool's description), so an agent at its
        // limit costs a count, not a locked transaction; the insert counts again, locked.
        if let Some(refused) = self.store.queue_refusal(request.agent, &limits).await?
            && let Some(e) = refusal(request.agent, refused)
        {
            return Err(e);
        }
        // The digest is taken over the stored text, read back, exactly as the release will.
        let stored: Value = serde_json::from_str(&args_json).map_err(ParkError::Encode)?;
        let digest = super::args_digest(&stored);
        let shown = self.redactor.redact(&stored);
        let args_shown = serde_json::to_string(&shown).map_err(ParkError::Encode)?;
        let rule = RuleSnapshot::new(request.upstream, request.tool, request.rule);
        let rule_json = serde_json::to_string(&rule).map_err(ParkError::Encode)?;
        let timeout = request.rule.timeout();
        let created_at = time::OffsetDateTime::now_utc();
        let deadline = Instant::now() + timeout;
        let session_label = crate::secrets::sha256_hex(request.session.as_bytes());
        let wake = Arc::new(Notify::new());
        let withdraw = CancellationToken::new();
        // Waiting starts before the commit, so a decision made right after it cannot be missed.
        self.waiters().insert(
            id.clone(),
            Waiter {
                wake: wake.clone(),
                withdraw: withdraw.clone(),
                session: request.session.clone(),
                request_key: request.request_key,
            },
        );
        let parked = Parked {
            id,
            digest,
            rule,
            deadline,
            wake,
            withdraw,
            queue: self.clone(),
        };
        let expires_at = created_at + timeout;
        let description = self.description(request.upstream, request.tool).await;
        let notice = crate::notify::CallNotice {
            kind: crate::notify::MailKind::Parked,
            description: description.as_deref(),
            outcome: None,
            call_id: &parked.id,
            agent: request.agent,
            upstream: request.upstream,
            tool: request.tool,
            arguments: &shown,
            args_digest: &parked.digest,
            rule: &parked.rule,
            expires_at,
            public_url: &self.config.server.public_url,
        };
        let recipients = crate::notify::recipients(&parked.rule, &self.config);
        let deciders = self.deciders(&recipients, &parked.rule).await?;
        let mails = notice.mails(&recipients, &deciders);
        let parking = self
            .store
            .insert_call(
                &NewCall {
                    id: &parked.id,
                    upstream: request.upstream,
                    tool: request.tool,
                    agent: request.agent,
                    agent_session: &session_label[..16],
                    instance_id: &self.instance_id,
                    args_json: &args_json,
                    args_shown: &args_shown,
                    args_sha256: &parked.digest,
                    rule_json: &rule_json,
                    approvals_needed: request.rule.approvals(),
                    created_at,
                    expires_at,
                },
                &mails,
                Some(&limits),
            )
            .await?;
        if let Some(e) = refusal(request.agent, parking) {
            return Err(e);
        }
        if !mails.is_empty() {
            self.mail_queued.notify_one();
        }
        self.changed.notify_one();
        Ok(parked)
    }

    /// What `tool` does, as its upstream says, for emails; waits at most `DESCRIPTION_WAIT` (the
    /// list is cached; a slow upstream costs a parked call's email its description, not more).
    async fn description(&self, upstream: &str, tool: &str) -> Option<String> {
        // Without email nothing shows it: do not ask the upstream.
        self.config.email.as_ref()?;
        tokio::time::timeout(DESCRIPTION_WAIT, self.catalogue.description(upstream, tool))
            .await
            .ok()
            .flatten()
    }

    /// The recipients who may decide a call under `rule` (enabled admins and approvers the rule
    /// admits): they get Approve and Reject links.
    pub(crate) async fn deciders(
        &self,
        recipients: &[String],
        rule: &RuleSnapshot,
    ) -> Result<Vec<String>, StoreError> {
        let mut deciders = Vec::new();
        for email in recipients {
            if let Some(user) = self.store.user_by_email(email).await?
                && super::decide::may_decide(
                    super::Reviewer::User(&user),
                    rule,
                    &self.config.groups,
                )
                .is_ok()
            {
                deciders.push(email.clone());
            }
        }
        Ok(deciders)
    }

    /// Queues the reminders of pending calls about to expire and the outcome emails of calls
    /// that ended, as `[email]` asks. Each call's are marked and queued in one transaction, once,
    /// by whichever instance gets there first. A call whose whole life is shorter than
    /// `remind_before` gets no reminder (its first email said as much).
    pub(crate) async fn queue_followups(&self) -> Result<(), StoreError> {
        use crate::notify::MailKind;
        use crate::store::Followup;
        let Some(email) = &self.config.email else {
            return Ok(());
        };
        let now = time::OffsetDateTime::now_utc();
        let mut due = Vec::new();
        if let Some(before) = email.remind_before {
            let before = time::Duration::seconds(i64::try_from(before).unwrap_or(i64::MAX));
            for row in self.store.due_reminders(now + before).await? {
                let life = parse_time(&row.expires_at) - parse_time(&row.created_at);
                due.push((
                    Followup::Reminder,
                    (life > before).then_some(MailKind::Reminder),
                    row,
                ));
            }
        }
        if email.outcome_emails {
            for row in self
                .store
                .due_outcomes(now - time::Duration::hours(1))
                .await?
            {
                due.push((Followup::Outcome, Some(MailKind::Outcome), row));
            }
        }
        for (followup, kind, row) in due {
            let mails = match (kind, serde_json::from_str::<RuleSnapshot>(&row.rule_json)) {
                (Some(kind), Ok(rule)) => self.followup_mails(kind, &row, &rule).await?,
                // Nothing to send (or a rule that does not read): marked done all the same.
                _ => Vec::new(),
            };
            if self.store.queue_followup(&row.id, followup, &mails).await? && !mails.is_empty() {
                self.mail_queued.notify_one();
            }
        }
        Ok(())
    }

    async fn followup_mails(
        &self,
        kind: crate::notify::MailKind,
        row: &CallRow,
        rule: &RuleSnapshot,
    ) -> Result<Vec<crate::store::NewMail>, StoreError> {
        let arguments = row.shown_arguments();
        let description = self.description(&row.upstream, &row.tool).await;
        let notice = crate::notify::CallNotice {
            kind,
            description: description.as_deref(),
            call_id: &row.id,
            agent: &row.agent,
            upstream: &row.upstream,
            tool: &row.tool,
            arguments: &arguments,
            args_digest: &row.args_sha256,
            rule,
            expires_at: parse_time(&row.expires_at),
            public_url: &self.config.server.public_url,
            outcome: (kind == crate::notify::MailKind::Outcome)
                .then(|| crate::notify::outcome_text(row)),
        };
        let recipients = crate::notify::recipients(rule, &self.config);
        let deciders = self.deciders(&recipients, rule).await?;
        Ok(notice.mails(&recipients, &deciders))
    }

    /// Wakes the request waiting on call `id`, if it is parked here.
    pub fn wake(&self, id: &str) {
        self.changed.notify_one();
        if let Some(waiter) = self.waiters().get(id) {
            waiter.wake.notify_one();
        }
    }

    /// Withdraws the call parked by `session`'s request `request_key` (a `notifications/cancelled`);
    /// true if there was one.
    pub fn withdraw_request(&self, session: &str, request_key: &str) -> bool {
        let waiters = self.waiters();
        let found = waiters
            .values()
            .find(|w| &*w.session == session && w.request_key == request_key);
        if let Some(waiter) = found {
            waiter.withdraw.cancel();
        }
        found.is_some()
    }

    /// Withdraws every call parked by `session` (it was deleted or closed).
    pub fn withdraw_session(&self, session: &str) {
        for waiter in self.waiters().values() {
            if &*waiter.session == session {
                waiter.withdraw.cancel();
            }
        }
    }

    pub async fn current(&self, parked: &Parked) -> Result<Option<CallRow>, StoreError> {
        self.store.call(&parked.id).await
    }

    /// Moves the call along `from → to` as `actor`; true if this caller won.
    pub(super) async fn step(
        &self,
        id: &str,
        from: CallStatus,
        to: CallStatus,
        actor: Actor<'_>,
        detail: Option<&str>,
    ) -> Result<bool, StoreError> {
        match from.to(to) {
            Some(transition) => {
                let won = self.store.transition(id, transition, actor, detail).await?;
                if won {
                    self.changed.notify_one();
                }
                Ok(won)
            }
            None => Ok(false),
        }
    }

    /// The timeout passed: `pending → expired`, a system denial. True if this caller expired it.
    pub async fn expire(&self, parked: &Parked) -> Result<bool, StoreError> {
        let why = expiry_text(parked.rule.timeout_secs);
        self.step(
            &parked.id,
            CallStatus::Pending,
            CallStatus::Expired,
            SYSTEM,
            Some(&why),
        )
        .await
    }

    /// The agent went away or cancelled: the call leaves the queue unless it is already on its way.
    pub async fn withdraw(
        &self,
        parked: &Parked,
        agent: &str,
        why: &str,
    ) -> Result<bool, StoreError> {
        let actor = format!("agent:{agent}");
        let actor = Actor {
            name: &actor,
            via: "mcp",
        };
        for from in [CallStatus::Pending, CallStatus::Approved] {
            if self
                .step(&parked.id, from, CallStatus::Withdrawn, actor, Some(why))
                .await?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Airlock is stopping while the call waits: it is abandoned, never forwarded later.
    pub async fn abandon(&self, parked: &Parked, why: &str) -> Result<bool, StoreError> {
        for from in [CallStatus::Pending, CallStatus::Approved] {
            if self
                .step(&parked.id, from, CallStatus::Abandoned, SYSTEM, Some(why))
                .await?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Claims an approved call for sending (`approved → forwarding`, one winner) and returns the
    /// stored arguments of `row` (the call as read when its approval woke us), after checking they
    /// still hash to the digest that was parked and approved. `None` when this caller did not win
    /// or the arguments were tampered with (the call then fails).
    pub async fn begin_forward(
        &self,
        parked: &Parked,
        row: &CallRow,
    ) -> Result<Option<Value>, StoreError> {
        if !self
            .step(
                &parked.id,
                CallStatus::Approved,
                CallStatus::Forwarding,
                SYSTEM,
                None,
            )
            .await?
        {
            return Ok(None);
        }
        // The waiting is over: the gauge counts calls waiting for a decision, not ones on their way.
        self.waiters().remove(&parked.id);
        let args = serde_json::from_str::<Value>(&row.args_json)
            .ok()
            .filter(|args| {
                let digest = super::args_digest(args);
                digest == row.args_sha256 && digest == parked.digest
            });
        if args.is_none() {
            tracing::error!(call = %parked.id, "stored arguments do not match the approved digest; not forwarding");
            self.finish(
                parked,
                CallStatus::Failed,
                None,
                Some("the stored arguments no longer match the approved digest; not run"),
            )
            .await?;
        }
        Ok(args)
    }

    /// Records how a forwarded call ended (`forwarding → completed | failed | outcome_unknown`).
    pub async fn finish(
        &self,
        parked: &Parked,
        to: CallStatus,
        result: Option<&ResultSummary>,
        detail: Option<&str>,
    ) -> Result<bool, StoreError> {
        match CallStatus::Forwarding.to(to) {
            Some(transition) => {
                let won = self
                    .store
                    .finish(&parked.id, transition, result, detail)
                    .await?;
                self.changed.notify_one();
                Ok(won)
            }
            None => Ok(false),
        }
    }

    /// Counts how a waiting call was decided, for `/metrics`.
    pub fn observe_decision(&self, row: &CallRow) {
        let waited = row
            .decided_at
            .as_deref()
            .zip(Some(row.created_at.as_str()))
            .and_then(|(decided, created)| seconds_between(created, decided));
        self.metrics
            .approval_decision(row.status().as_str(), waited);
    }
}

/// The error of a call the queue's limits refused (`None` when it was parked).
fn refusal(agent: &str, parking: Parking) -> Option<ParkError> {
    match parking {
        Parking::Parked { .. } => None,
        Parking::AgentFull(open) => Some(ParkError::AgentFull {
            agent: agent.to_owned(),
            open,
        }),
        Parking::QueueFull(open) => Some(ParkError::QueueFull { open }),
    }
}

/// How long parking waits for a tool's description for its email.
const DESCRIPTION_WAIT: Duration = Duration::from_secs(2);

/// A stored time; an unreadable one (a hand-edited row) reads as now.
fn parse_time(at: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
}

pub fn expiry_text(timeout_secs: u64) -> String {
    format!("Not approved within {timeout_secs} s; not run")
}

fn seconds_between(from: &str, to: &str) -> Option<f64> {
    use time::format_description::well_known::Rfc3339;
    let from = time::OffsetDateTime::parse(from, &Rfc3339).ok()?;
    let to = time::OffsetDateTime::parse(to, &Rfc3339).ok()?;
    Some((to - from).as_seconds_f64().max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_time_is_measured_between_stored_timestamps() {
        let waited = seconds_between("2026-11-25T10:00:00.000Z", "2026-11-25T10:01:30.500Z");
        assert_eq!(waited, Some(90.5));
        assert_eq!(seconds_between("garbage", "2026-11-25T10:01:30.500Z"), None);
    }
}
