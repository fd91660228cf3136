//! The email of an admin's password reset: a one-time link (24 hours) with which the user sets a
//! new password. The admin never sees a password or the link: it is minted when the message is
//! sent (as review links are, `links`), and the outbox shows it only to the message's recipient.

use askama::Template;

use super::links::{IssueError, LinkSlot};
use crate::store::{MailPurpose, NewMail, Store};

/// How long a set-password link works.
pub const LINK_LIFETIME: time::Duration = time::Duration::hours(24);

#[derive(Template)]
#[template(path = "email/password.txt")]
struct PasswordText<'a> {
    admin: &'a str,
    recipient: &'a str,
    url: &'a str,
}

#[derive(Template)]
#[template(path = "email/password.html")]
struct PasswordHtml<'a> {
    admin: &'a str,
    recipient: &'a str,
    url: &'a str,
}

/// The place of the link in the message (see `links::LinkSlot`).
const PLACE: &str = "set";

/// The message telling `recipient` that `admin` reset their password, with the link's place.
pub fn reset_mail(recipient: &str, admin: &str, public_url: &str) -> Result<NewMail, MailError> {
    let slot = LinkSlot::new()?;
    let url = format!(
        "{}/set-password/{}",
        public_url.trim_end_matches('/'),
        slot.placeholder(PLACE)
    );
    let body = PasswordText {
        admin,
        recipient,
        url: &url,
    }
    .render()?;
    let html = PasswordHtml {
        admin,
        recipient,
        url: &url,
    }
    .render()?;
    Ok(NewMail {
        purpose: MailPurpose::Password,
        recipient: recipient.to_owned(),
        subject: "[Airlock] Set a new password".to_owned(),
        body,
        html: Some(html),
        link_slot: Some(slot.as_str().to_owned()),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the system's random number generator failed")]
    Random(#[from] getrandom::Error),
    #[error("cannot render the message")]
    Render(#[from] askama::Error),
}

/// The message's link minted for `recipient` (it replaces the one minted for the same message
/// before: only its SHA-256 is kept). A recipient who is no longer a user gets no link.
pub async fn complete(
    store: &Store,
    recipient: &str,
    (slot, minting): (&LinkSlot, super::links::Minting),
    mut bodies: [&mut String; 2],
) -> Result<(), IssueError> {
    match store.user_by_email(recipient).await? {
        Some(user) => {
            let token = crate::secrets::generate_link_token()?;
            let stored = store
                .insert_password_link(
                    &crate::secrets::sha256_hex(token.as_bytes()),
                    &user.id,
                    (slot.as_str(), minting == super::links::Minting::Sending),
                    time::OffsetDateTime::now_utc() + LINK_LIFETIME,
                )
                .await?;
            if stored {
                super::links::fill(&mut bodies, slot, PLACE, &token);
                return Ok(());
            }
            void(bodies, slot, "(a later reset replaced this link)");
        }
        None => void(bodies, slot, "(no longer a user)"),
    }
    Ok(())
}

fn void(bodies: [&mut String; 2], slot: &LinkSlot, note: &str) {
    for body in bodies {
        *body = super::links::replace_link(body, slot, PLACE, note);
    }
}

/// `text` with the link replaced by `note`, for a reader other than the recipient.
pub fn blank(text: &str, slot: &LinkSlot, note: &str) -> String {
    super::links::replace_link(text, slot, PLACE, note)
}
