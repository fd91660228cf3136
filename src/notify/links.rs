//! Review links: an email's Approve and Reject links carry a random token (32 bytes from the OS)
//! that names one decision: a call, the reviewer it decides as, the action, the argument digest
//! the email showed, and an expiry (the call's). The store keeps only the token's SHA-256 beside
//! those fields, as it does for API tokens, so nothing readable in the database, a dump or a
//! backup of it decides a call: a reader sees which links exist, never one that works.
//!
//! Tokens are made when a message is sent, not when it is queued: an outbox row holds a
//! placeholder where each link goes ([`LinkSlot`]), and the worker (or the `/outbox` page, for
//! the message's own recipient) mints the tokens and puts them in just before the message leaves.
//! A token is good for one use (`used_at` is set when its decision is made); GET only shows a
//! confirmation page, since mail scanners fetch links.

use serde::{Deserialize, Serialize};

use crate::store::{ReviewLinkRow, Store, StoreError};

/// What a review link may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkAction {
    Approve,
    Reject,
}

impl LinkAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "approve" => Some(Self::Approve),
            "reject" => Some(Self::Reject),
            _ => None,
        }
    }
}

/// Why a token is not a usable link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadLink {
    /// No link has this token: edited, cut, made up, or made by another Airlock.
    Unknown,
    Expired,
}

/// Where a message's decision links go until it is sent: a random mark per message (not a
/// secret: it decides nothing), written into the body as `{mark}.approve` and `{mark}.reject`.
/// Agent text in the body cannot guess it, so only Airlock's own link positions are filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSlot(String);

impl LinkSlot {
    pub fn new() -> Result<Self, getrandom::Error> {
        Ok(Self(format!(
            "link-{}",
            crate::secrets::generate_session_id()?
        )))
    }

    pub fn from_stored(mark: String) -> Self {
        Self(mark)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What stands in the body for the `action` link's token.
    pub fn placeholder(&self, action: LinkAction) -> String {
        format!("{}.{}", self.0, action.as_str())
    }
}

/// A decision a link makes, before its token exists.
#[derive(Debug, Clone)]
pub struct LinkFor<'a> {
    pub call: &'a str,
    pub reviewer: &'a str,
    pub action: LinkAction,
    pub digest: &'a str,
    pub expires_at: time::OffsetDateTime,
}

/// Makes a link for `what` and returns its token (shown once: only its SHA-256 is stored).
pub async fn issue(store: &Store, what: &LinkFor<'_>) -> Result<String, IssueError> {
    let token = crate::secrets::generate_link_token()?;
    store
        .insert_review_link(&crate::secrets::sha256_hex(token.as_bytes()), what)
        .await?;
    Ok(token)
}

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("cannot store a review link")]
    Store(#[from] StoreError),
    #[error("the system's random number generator failed")]
    Random(#[from] getrandom::Error),
}

/// The link `token` names, if it is one and has not expired. (Whether it was used is in the row.)
pub async fn find(
    store: &Store,
    token: &str,
) -> Result<Result<ReviewLinkRow, BadLink>, StoreError> {
    let Some(row) = store
        .review_link(&crate::secrets::sha256_hex(token.as_bytes()))
        .await?
    else {
        return Ok(Err(BadLink::Unknown));
    };
    if row.expires_at <= crate::store::timestamp(time::OffsetDateTime::now_utc()) {
        return Ok(Err(BadLink::Expired));
    }
    Ok(Ok(row))
}

/// A message's bodies with its link placeholders filled in: for a call still pending, fresh
/// tokens deciding as `recipient`; otherwise (decided, gone) the call's own page, since a link
/// could decide nothing.
pub async fn complete(
    store: &Store,
    public_url: &str,
    call_id: &str,
    recipient: &str,
    slot: &LinkSlot,
    mut bodies: [&mut String; 2],
) -> Result<(), IssueError> {
    let base = public_url.trim_end_matches('/');
    let call = store.call(call_id).await?;
    for action in [LinkAction::Approve, LinkAction::Reject] {
        let placeholder = format!("{base}/review/{}", slot.placeholder(action));
        if !bodies.iter().any(|body| body.contains(&placeholder)) {
            continue;
        }
        let url = match &call {
            Some(row) if row.status() == crate::approval::CallStatus::Pending => {
                let expires_at = time::OffsetDateTime::parse(
                    &row.expires_at,
                    &time::format_description::well_known::Rfc3339,
                )
                .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
                let token = issue(
                    store,
                    &LinkFor {
                        call: call_id,
                        reviewer: recipient,
                        action,
                        digest: &row.args_sha256,
                        expires_at,
                    },
                )
                .await?;
                format!("{base}/review/{token}")
            }
            _ => format!("{base}/calls/{call_id}"),
        };
        for body in bodies.iter_mut() {
            if body.contains(&placeholder) {
                **body = body.replace(&placeholder, &url);
            }
        }
    }
    Ok(())
}

/// `text` with the link placeholders of `slot` replaced by `note` (for a reader other than the
/// recipient, who must not see working links).
pub fn blank(text: &str, public_url: &str, slot: &LinkSlot, note: &str) -> String {
    let base = public_url.trim_end_matches('/');
    [LinkAction::Approve, LinkAction::Reject]
        .iter()
        .fold(text.to_owned(), |text, action| {
            text.replace(
                &format!("{base}/review/{}", slot.placeholder(*action)),
                note,
            )
        })
}

/// Outbox text stored by an older Airlock with live links in it: every `/review/TOKEN` becomes
/// `call_path` (the call's own page), so the text keeps a working link that decides nothing.
pub fn scrub_old_links(text: &str, call_path: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("/review/") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "/review/".len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .unwrap_or(after.len());
        out.push_str(call_path);
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_links_are_cut_out_of_stored_text() {
        let text = "Approve: https://a.example/review/eyJh.c2ln\nView: https://a.example/calls/1\n\
                    <a href=\"https://a.example/review/eyJh.c2ln\">";
        assert_eq!(
            scrub_old_links(text, "/calls/1"),
            "Approve: https://a.example/calls/1\nView: https://a.example/calls/1\n\
             <a href=\"https://a.example/calls/1\">"
        );
        assert_eq!(scrub_old_links("no links", "/calls/1"), "no links");
    }

    #[test]
    fn placeholders_are_blanked_for_other_readers() {
        let slot = LinkSlot::from_stored("link-abc".to_owned());
        let text = format!(
            "Approve: http://h/review/{}\nReject:  http://h/review/{}",
            slot.placeholder(LinkAction::Approve),
            slot.placeholder(LinkAction::Reject)
        );
        assert_eq!(
            blank(&text, "http://h/", &slot, "[hidden]"),
            "Approve: [hidden]\nReject:  [hidden]"
        );
    }
}
