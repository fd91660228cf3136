//! Telling people: email about parked calls (when parked, a reminder before expiry, and the
//! outcome), as a plain-text and an HTML part rendered from `templates/email/`.
//!
//! Parking a call queues its messages in the outbox in the same transaction as the call
//! (`store::outbox`); a worker in every instance sends them with retry and backoff ([`worker`]).
//! SMTP being down delays mail and never blocks, fails or loses a call. Without `[email]
//! smtp_url` messages stay in the outbox (the local outbox of `airlock demo`).
//!
//! Who gets a message: the rule's `notify` (addresses, or `[groups]` names expanded to their
//! members), else `[email] to`.

mod announce;
pub mod digest;
pub mod links;
pub mod password;
pub mod worker;

use askama::Template;
use serde_json::Value;

pub use announce::Announcer;

use crate::approval::RuleSnapshot;
use crate::config::Config;
use crate::domain::{Action, CallStatus, Timestamp};
use crate::store::{MailPurpose, NewMail};
use links::LinkSlot;

/// How much of a call's arguments a message shows.
const ARGS_PREVIEW: usize = 2000;

/// The recipients of a parked call's notification, without duplicates, in a stable order.
pub fn recipients(rule: &RuleSnapshot, config: &Config) -> Vec<String> {
    let named: Vec<&String> = if rule.notify.is_empty() {
        config
            .email
            .as_ref()
            .map(|e| e.to.iter().collect())
            .unwrap_or_default()
    } else {
        rule.notify.iter().collect()
    };
    let mut out = Vec::new();
    for name in named {
        let expanded: Vec<&String> = match config.groups.get(name.as_str()) {
            Some(members) => members.iter().collect(),
            None => vec![name],
        };
        for address in expanded {
            let address = address.to_lowercase();
            if address.contains('@') && !out.contains(&address) {
                out.push(address);
            }
        }
    }
    out
}

/// Which email about a call this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    /// The call was just parked.
    Parked,
    /// The call is still pending and expires soon.
    Reminder,
    /// The call left the queue; `CallNotice::outcome` says how.
    Outcome,
}

/// A call as its emails describe it.
pub struct CallNotice<'a> {
    pub kind: MailKind,
    /// What the tool does, as its upstream describes it (untrusted text, shown as such).
    pub description: Option<&'a str>,
    pub call_id: &'a str,
    pub agent: &'a str,
    pub upstream: &'a str,
    pub tool: &'a str,
    /// The arguments as people may see them (redaction rules already applied).
    pub arguments: &'a Value,
    pub args_digest: &'a str,
    pub rule: &'a RuleSnapshot,
    pub expires_at: Timestamp,
    pub public_url: &'a str,
    /// How the call ended, for an outcome email.
    pub outcome: Option<String>,
}

/// The data of `templates/email/call.{txt,html}`.
pub struct CallMessage {
    id: String,
    headline: String,
    outcome: Option<String>,
    agent: String,
    upstream: String,
    tool: String,
    description: Option<String>,
    why: String,
    pending: bool,
    time_left: String,
    expires: String,
    quorum: String,
    digest: String,
    arguments: String,
    truncated: bool,
    /// A decider's message that offers View only, because its arguments were cut.
    decide_on_page: bool,
    view_url: String,
    approve_url: Option<String>,
    reject_url: Option<String>,
}

#[derive(Template)]
#[template(path = "email/call.txt")]
struct CallText<'a> {
    m: &'a CallMessage,
}

#[derive(Template)]
#[template(path = "email/call.html")]
struct CallHtml<'a> {
    m: &'a CallMessage,
}

impl CallNotice<'_> {
    /// One message per recipient. Recipients among `deciders` (users who may decide this call)
    /// get places for Approve and Reject links (minted for them when the message is sent:
    /// [`links`]); everyone gets the View link.
    pub fn mails(&self, recipients: &[String], deciders: &[String]) -> Vec<NewMail> {
        let subject = self.subject();
        recipients
            .iter()
            .filter_map(|to| {
                let slot = deciders
                    .contains(to)
                    .then(LinkSlot::new)
                    .transpose()
                    .unwrap_or_else(|e| {
                        tracing::error!(error = %e, "no randomness for a message's links; it offers View only");
                        None
                    });
                let message = self.message(slot.as_ref());
                let body = CallText { m: &message }.render();
                let html = CallHtml { m: &message }.render();
                let link_slot = slot.filter(|_| message.approve_url.is_some());
                match (body, html) {
                    (Ok(body), Ok(html)) => Some(NewMail {
                        purpose: match self.kind {
                            MailKind::Parked => MailPurpose::Parked,
                            MailKind::Reminder => MailPurpose::Reminder,
                            MailKind::Outcome => MailPurpose::Outcome,
                        },
                        recipient: to.clone(),
                        subject: subject.clone(),
                        body,
                        html: Some(html),
                        link_slot: link_slot.map(|slot| slot.as_str().to_owned()),
                    }),
                    (Err(e), _) | (_, Err(e)) => {
                        tracing::error!(error = %e, "cannot render an email; not queued");
                        None
                    }
                }
            })
            .collect()
    }

    /// `[Airlock] claude wants telegram.export_session (expires 14:05 UTC)`. Agent-controlled
    /// text is stripped of control characters, so it cannot start a new header line (lettre
    /// encodes the rest).
    fn subject(&self) -> String {
        let call = format!("{}.{}", self.upstream, self.tool);
        let subject = match self.kind {
            MailKind::Parked => format!(
                "[Airlock] {} wants {call} (expires {} UTC)",
                self.agent,
                self.clock()
            ),
            MailKind::Reminder => format!(
                "[Airlock] Reminder: {} wants {call} (expires {} UTC)",
                self.agent,
                self.clock()
            ),
            MailKind::Outcome => format!(
                "[Airlock] {call} for {}: {}",
                self.agent,
                self.outcome.as_deref().unwrap_or("decided")
            ),
        };
        one_line(&subject)
    }

    fn clock(&self) -> String {
        self.expires_at.clock()
    }

    /// The message's data; `slot` marks where a decider's links go. A message that cannot show
    /// every argument (some had to be cut, or are masked) offers View only: a reviewer must not
    /// approve what the message did not show; the call's page shows it all (and reveals).
    fn message(&self, slot: Option<&LinkSlot>) -> CallMessage {
        let mut arguments = crate::visible::visible(
            &serde_json::to_string_pretty(self.arguments).unwrap_or_default(),
        )
        .into_owned();
        let masked = arguments.contains(crate::redact::MASK);
        let truncated = arguments.chars().count() > ARGS_PREVIEW;
        if truncated {
            arguments = arguments.chars().take(ARGS_PREVIEW).collect();
            arguments.push_str("\n…");
        }
        let partial = truncated || masked;
        let base = self.public_url.trim_end_matches('/');
        let pending = self.kind != MailKind::Outcome;
        let link = |action: Action| {
            let slot = slot.filter(|_| pending && !partial)?;
            Some(format!(
                "{base}/review/{}",
                slot.placeholder(action.as_str())
            ))
        };
        let seconds = (self.expires_at - Timestamp::now()).whole_seconds();
        let headline = match self.kind {
            MailKind::Parked => {
                format!("{} asks to run {}.{}", self.agent, self.upstream, self.tool)
            }
            MailKind::Reminder => format!(
                "Still waiting: {} asks to run {}.{}",
                self.agent, self.upstream, self.tool
            ),
            MailKind::Outcome => format!("{}.{} for {}", self.upstream, self.tool, self.agent),
        };
        // Agent-controlled names stay on their line: a tool named "x\nApprove: https://..." must
        // not add a line that looks like Airlock's own to the text part.
        CallMessage {
            id: self.call_id.to_owned(),
            headline: short_line(&headline),
            outcome: self.outcome.as_deref().map(short_line),
            agent: short_line(self.agent),
            upstream: short_line(self.upstream),
            tool: short_line(self.tool),
            description: self.description.map(|d| {
                let d = one_line(d);
                if d.chars().count() > 500 {
                    format!("{}…", d.chars().take(499).collect::<String>())
                } else {
                    d
                }
            }),
            why: short_line(
                &self
                    .rule
                    .reason
                    .clone()
                    .unwrap_or_else(|| format!("the rule {} requires approval", self.rule.rule)),
            ),
            pending,
            time_left: crate::approval::time_left(seconds),
            expires: self.clock(),
            quorum: if self.rule.approvals > 1 {
                format!("{} approvals from different reviewers", self.rule.approvals)
            } else {
                "one approval".to_owned()
            },
            digest: self.args_digest.to_owned(),
            arguments,
            truncated,
            decide_on_page: partial && pending && slot.is_some(),
            view_url: format!("{base}/calls/{}", self.call_id),
            approve_url: link(Action::Approve),
            reject_url: link(Action::Reject),
        }
    }
}

/// How a call that left the queue ended, in a line: `rejected by bob@example.org: not today`.
pub fn outcome_text(row: &crate::store::CallRow) -> String {
    let by = row.decided_by.as_deref().unwrap_or("the system");
    let why = row
        .reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    match row.status {
        CallStatus::Rejected => format!("rejected by {by}{why}"),
        CallStatus::Expired => "expired: nobody decided in time; not run".to_owned(),
        CallStatus::Completed => format!("approved by {by}; run"),
        CallStatus::Failed => format!("approved by {by}; the upstream call failed"),
        CallStatus::OutcomeUnknown => format!("approved by {by}; outcome unknown"),
        CallStatus::Unclaimed => {
            format!("approved by {by}, but the agent did not call for it in time; not run")
        }
        CallStatus::Withdrawn => "withdrawn by the agent; not run".to_owned(),
        CallStatus::Abandoned => "abandoned (the agent's connection was lost); not run".to_owned(),
        other => other.as_str().to_owned(),
    }
}

/// [`one_line`], at most 200 characters.
pub(crate) fn short_line(text: &str) -> String {
    let line = one_line(text);
    if line.chars().count() > 200 {
        let cut: String = line.chars().take(199).collect();
        format!("{cut}…")
    } else {
        line
    }
}

/// Agent text on one line: control characters become spaces, and characters that would change
/// how the line reads without being seen are written out.
fn one_line(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    crate::visible::visible(&line).into_owned()
}
