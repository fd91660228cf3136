//! Telling people: email notifications of parked calls.
//!
//! Parking a call queues its messages in the outbox in the same transaction as the call
//! (`store::outbox`); a worker in every instance sends them with retry and backoff ([`worker`]).
//! SMTP being down delays mail and never blocks, fails or loses a call. Without `[email]
//! smtp_url` messages stay in the outbox (the local outbox of `airlock demo`).
//!
//! Who gets a message: the rule's `notify` (addresses, or `[groups]` names expanded to their
//! members), else `[email] to`.

pub mod worker;

use serde_json::Value;

use crate::approval::RuleSnapshot;
use crate::config::Config;
use crate::store::NewMail;

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

/// What a parked call's notification says.
pub struct ParkedNotice<'a> {
    pub call_id: &'a str,
    pub agent: &'a str,
    pub upstream: &'a str,
    pub tool: &'a str,
    pub arguments: &'a Value,
    pub args_digest: &'a str,
    pub rule: &'a RuleSnapshot,
    pub expires_at: time::OffsetDateTime,
    pub public_url: &'a str,
}

impl ParkedNotice<'_> {
    /// One message per recipient.
    pub fn mails(&self, recipients: &[String]) -> Vec<NewMail> {
        let subject = self.subject();
        let body = self.body();
        recipients
            .iter()
            .map(|to| NewMail {
                recipient: to.clone(),
                subject: subject.clone(),
                body: body.clone(),
            })
            .collect()
    }

    /// `[Airlock] claude wants telegram.export_session (expires 14:05 UTC)`; agent-controlled
    /// text is stripped of control characters, so it cannot start a new header line.
    fn subject(&self) -> String {
        let expires = self
            .expires_at
            .format(time::macros::format_description!("[hour]:[minute]"))
            .unwrap_or_default();
        one_line(&format!(
            "[Airlock] {} wants {}.{} (expires {expires} UTC)",
            self.agent, self.upstream, self.tool
        ))
    }

    fn body(&self) -> String {
        let mut args = serde_json::to_string_pretty(self.arguments).unwrap_or_default();
        if args.chars().count() > ARGS_PREVIEW {
            args = args.chars().take(ARGS_PREVIEW).collect();
            args.push_str("\n… (truncated; the full arguments are on the call's page)");
        }
        let why = self
            .rule
            .reason
            .as_deref()
            .unwrap_or("its policy rule requires approval");
        let quorum = if self.rule.approvals > 1 {
            format!("{} approvals from different reviewers", self.rule.approvals)
        } else {
            "one approval".to_owned()
        };
        let base = self.public_url.trim_end_matches('/');
        format!(
            "The agent {agent} asks to run {upstream}.{tool}.\n\n\
             Why it waits for a person: {why}.\n\
             It needs {quorum} within {timeout} s; after that it is refused.\n\n\
             Arguments (SHA-256 {digest}):\n{args}\n\n\
             Review it: {base}/calls/{id}\n\
             Or: airlock approve {id}   /   airlock reject {id} --reason \"...\"\n",
            agent = self.agent,
            upstream = self.upstream,
            tool = self.tool,
            timeout = self.rule.timeout_secs,
            digest = self.args_digest,
            id = self.call_id,
        )
    }
}

fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
