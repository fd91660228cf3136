//! Mail about calls, composed here from what the queue does: the message of a call being parked
//! (queued by the queue in its parking transaction, through [`approval::Announce`]), and, on a
//! timer, the reminders of calls about to expire and the outcome emails of calls that ended.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{CallNotice, MailKind};
use crate::approval::{self, Announcement, Reviewer, RuleSnapshot};
use crate::config::Config;
use crate::domain::Timestamp;
use crate::store::{CallRow, Followup, NewMail, Store, StoreError};
use crate::upstream::catalogue::ToolCatalogue;

/// How long composing a message waits for a tool's description (the list is cached; a slow
/// upstream costs a message its description, not more).
const DESCRIPTION_WAIT: Duration = Duration::from_secs(2);

/// Composes the emails about calls, and wakes the outbox worker when some are queued.
pub struct Announcer {
    store: Store,
    config: Arc<Config>,
    /// Where messages find what a tool does.
    catalogue: Arc<ToolCatalogue>,
    /// Wakes the outbox worker.
    mail_queued: Arc<Notify>,
}

impl Announcer {
    pub fn new(
        store: Store,
        config: Arc<Config>,
        catalogue: Arc<ToolCatalogue>,
        mail_queued: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            config,
            catalogue,
            mail_queued,
        }
    }

    /// What `tool` does, as its upstream says; nothing without `[email]` (nothing shows it).
    async fn description(&self, upstream: &str, tool: &str) -> Option<String> {
        self.config.email.as_ref()?;
        tokio::time::timeout(DESCRIPTION_WAIT, self.catalogue.description(upstream, tool))
            .await
            .ok()
            .flatten()
    }

    /// The messages about a call to its recipients; those who may decide it get decision links.
    async fn mails(&self, notice: &CallNotice<'_>) -> Result<Vec<NewMail>, StoreError> {
        let recipients = super::recipients(notice.rule, &self.config);
        let deciders = self.deciders(&recipients, notice.rule).await?;
        Ok(notice.mails(&recipients, &deciders))
    }

    /// The recipients who may decide a call under `rule` (enabled admins and approvers the rule
    /// admits).
    async fn deciders(
        &self,
        recipients: &[String],
        rule: &RuleSnapshot,
    ) -> Result<Vec<String>, StoreError> {
        let mut deciders = Vec::new();
        for email in recipients {
            if let Some(user) = self.store.user_by_email(email).await?
                && approval::decide::may_decide(Reviewer::User(&user), rule, &self.config.groups)
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
    pub async fn queue_followups(&self) -> Result<(), StoreError> {
        let Some(email) = &self.config.email else {
            return Ok(());
        };
        let now = Timestamp::now();
        let mut due = Vec::new();
        if let Some(before) = email.remind_before {
            let before = time::Duration::seconds(i64::try_from(before).unwrap_or(i64::MAX));
            for row in self.store.due_reminders(now + before).await? {
                let life = row.expires_at - row.created_at;
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
            let mails = match (kind, RuleSnapshot::read(&row.rule_json)) {
                (Some(kind), Some(rule)) => self.followup_mails(kind, &row, &rule).await?,
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
        kind: MailKind,
        row: &CallRow,
        rule: &RuleSnapshot,
    ) -> Result<Vec<NewMail>, StoreError> {
        let arguments = row.shown_arguments();
        let description = self.description(&row.upstream, &row.tool).await;
        let notice = CallNotice {
            kind,
            description: description.as_deref(),
            call_id: &row.id,
            agent: &row.agent,
            upstream: &row.upstream,
            tool: &row.tool,
            arguments: &arguments,
            args_digest: &row.args_sha256,
            rule,
            expires_at: row.expires_at,
            public_url: &self.config.server.public_url,
            outcome: (kind == MailKind::Outcome).then(|| super::outcome_text(row)),
        };
        self.mails(&notice).await
    }

    /// Queues follow-ups every [`approval::POLL`] until `stop`.
    pub fn spawn_followups(self: Arc<Self>, stop: CancellationToken) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(approval::POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failures = crate::telemetry::FailureLog::default();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = stop.cancelled() => return,
                }
                failures.record("email reminders and outcomes", self.queue_followups().await);
            }
        });
    }
}

impl approval::Announce for Announcer {
    fn compose<'a>(
        &'a self,
        call: &'a Announcement<'a>,
    ) -> BoxFuture<'a, Result<Vec<NewMail>, StoreError>> {
        Box::pin(async move {
            let description = self.description(call.upstream, call.tool).await;
            let notice = CallNotice {
                kind: MailKind::Parked,
                description: description.as_deref(),
                outcome: None,
                call_id: call.call,
                agent: call.agent,
                upstream: call.upstream,
                tool: call.tool,
                arguments: call.arguments,
                args_digest: call.digest,
                rule: call.rule,
                expires_at: call.expires_at,
                public_url: &self.config.server.public_url,
            };
            self.mails(&notice).await
        })
    }

    fn queued(&self) {
        self.mail_queued.notify_one();
    }
}
