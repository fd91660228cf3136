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

use crate::domain::{Action, ArgsDigest, CallId, CallStatus, Timestamp};
use crate::store::{NewReviewLink, ReviewLinkRow, Store, StoreError};

/// Why a token is not a usable link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadLink {
    /// No link has this token: edited, cut, made up, or made by another Airlock.
    Unknown,
    Expired,
}

/// Where a message's links go until it is sent: a random mark per message (not a secret: it
/// decides nothing), written into the body as the last part of each link's URL, `{mark}.approve`,
/// `{mark}.reject` (review links) or `{mark}.set` (a set-password link). Agent text in the body
/// cannot guess it, so only Airlock's own link positions are ever filled in. Tokens minted for a
/// place replace the ones minted for it before (a retried send, a second look at `/outbox`), so
/// a message has at most one working link per place.
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

    /// What stands in the body for the token of the `place` link (`approve`, `reject`, `set`).
    pub fn placeholder(&self, place: &str) -> String {
        format!("{}.{place}", self.0)
    }
}

/// How tokens minted for a message's places relate to those minted for them before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Minting {
    /// The message is being sent: the new tokens replace the unused ones of an earlier attempt.
    Sending,
    /// Its recipient is reading it on `/outbox` (text and HTML are fetched apart): the new
    /// tokens are added, so each view's links work.
    Showing,
}

/// `bodies` with the placeholder of `slot`'s `place` replaced by `token` (the URL around it is
/// the one written when the message was queued).
pub fn fill(bodies: &mut [&mut String], slot: &LinkSlot, place: &str, token: &str) {
    let placeholder = slot.placeholder(place);
    for body in bodies.iter_mut() {
        **body = body.replace(&placeholder, token);
    }
}

/// `text` with every whole URL that ends in the placeholder of `slot`'s `place` replaced by
/// `with` (a note for a reader other than the recipient, or a link that decides nothing).
pub fn replace_link(text: &str, slot: &LinkSlot, place: &str, with: &str) -> String {
    let placeholder = slot.placeholder(place);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(&placeholder) {
        let before = &rest[..at];
        // The URL starts at its scheme, after the last space, quote or `>` before it.
        let word = before
            .rfind(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '>' | '<'))
            .map_or(0, |i| i + 1);
        let start = before[word..].find("http").map_or(at, |i| word + i);
        out.push_str(&rest[..start]);
        out.push_str(with);
        rest = &rest[at + placeholder.len()..];
    }
    out.push_str(rest);
    out
}

/// A decision a link makes, before its token exists.
#[derive(Debug, Clone)]
pub struct LinkFor<'a> {
    pub call: &'a CallId,
    pub reviewer: &'a str,
    pub action: Action,
    pub digest: &'a ArgsDigest,
    pub expires_at: Timestamp,
    /// The message place it fills, if any: it replaces the link minted there before.
    pub slot: Option<&'a str>,
}

/// Makes a link for `what` and returns its token (shown once: only its SHA-256 is stored).
pub async fn issue(store: &Store, what: &LinkFor<'_>) -> Result<String, IssueError> {
    let token = crate::secrets::generate_link_token()?;
    let token_sha256 = crate::secrets::sha256_hex(token.as_bytes());
    store
        .insert_review_link(&NewReviewLink {
            token_sha256: &token_sha256,
            call: what.call,
            reviewer: what.reviewer,
            action: what.action,
            digest: what.digest,
            expires_at: what.expires_at,
            slot: what.slot,
        })
        .await?;
    Ok(token)
}

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("cannot store a link")]
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
    if row.expires_at <= Timestamp::now() {
        return Ok(Err(BadLink::Expired));
    }
    Ok(Ok(row))
}

/// A message's bodies with its review links filled in: for a call still pending, fresh tokens
/// deciding as `recipient`; otherwise (decided, gone) the call's own page, since a link could
/// decide nothing.
pub async fn complete(
    store: &Store,
    public_url: &str,
    call_id: &CallId,
    recipient: &str,
    (slot, minting): (&LinkSlot, Minting),
    mut bodies: [&mut String; 2],
) -> Result<(), IssueError> {
    let call = store.call(call_id).await?;
    for action in [Action::Approve, Action::Reject] {
        let placeholder = slot.placeholder(action.as_str());
        if !bodies.iter().any(|body| body.contains(&placeholder)) {
            continue;
        }
        match &call {
            Some(row) if row.status == CallStatus::Pending => {
                let token = issue(
                    store,
                    &LinkFor {
                        call: call_id,
                        reviewer: recipient,
                        action,
                        digest: &row.args_sha256,
                        expires_at: row.expires_at,
                        slot: (minting == Minting::Sending).then_some(slot.as_str()),
                    },
                )
                .await?;
                fill(&mut bodies, slot, action.as_str(), &token);
            }
            _ => {
                let page = format!("{}/calls/{call_id}", public_url.trim_end_matches('/'));
                for body in bodies.iter_mut() {
                    **body = replace_link(body, slot, action.as_str(), &page);
                }
            }
        }
    }
    Ok(())
}

/// `text` with the review links of `slot` replaced by `note` (for a reader other than the
/// recipient, who must not see working links).
pub fn blank(text: &str, slot: &LinkSlot, note: &str) -> String {
    [Action::Approve, Action::Reject]
        .iter()
        .fold(text.to_owned(), |text, action| {
            replace_link(&text, slot, action.as_str(), note)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_or_blanked_whatever_the_url_around_them() {
        let slot = LinkSlot::from_stored("link-abc".to_owned());
        let text = format!(
            "Approve: http://old.example/review/{}\nReject:  <a href=\"https://h/review/{}\">",
            slot.placeholder("approve"),
            slot.placeholder("reject")
        );
        assert_eq!(
            blank(&text, &slot, "[hidden]"),
            "Approve: [hidden]\nReject:  <a href=\"[hidden]\">"
        );
        let mut filled = text.clone();
        fill(&mut [&mut filled], &slot, "approve", "rl_1");
        assert!(
            filled.starts_with("Approve: http://old.example/review/rl_1\n"),
            "{filled}"
        );
        assert_eq!(
            replace_link("no links here", &slot, "approve", "x"),
            "no links here"
        );
    }
}
