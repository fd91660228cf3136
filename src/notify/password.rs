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

/// The placeholder that stands for the link in a stored message.
fn placeholder(public_url: &str, slot: &LinkSlot) -> String {
    format!(
        "{}/set-password/{}.set",
        public_url.trim_end_matches('/'),
        slot.as_str()
    )
}

/// The message telling `recipient` that `admin` reset their password, with the link's place.
pub fn reset_mail(recipient: &str, admin: &str, public_url: &str) -> Result<NewMail, MailError> {
    let slot = LinkSlot::new()?;
    let url = placeholder(public_url, &slot);
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

/// The message's link minted for `recipient` (a fresh one each time: only its SHA-256 is kept).
/// A recipient who is no longer a user gets no link.
pub async fn complete(
    store: &Store,
    public_url: &str,
    recipient: &str,
    slot: &LinkSlot,
    bodies: [&mut String; 2],
) -> Result<(), IssueError> {
    let placeholder = placeholder(public_url, slot);
    let url = match store.user_by_email(recipient).await? {
        Some(user) => {
            let token = crate::secrets::generate_link_token()?;
            store
                .insert_password_link(
                    &crate::secrets::sha256_hex(token.as_bytes()),
                    &user.id,
                    time::OffsetDateTime::now_utc() + LINK_LIFETIME,
                )
                .await?;
            format!("{}/set-password/{token}", public_url.trim_end_matches('/'))
        }
        None => "(no longer a user)".to_owned(),
    };
    for body in bodies {
        *body = body.replace(&placeholder, &url);
    }
    Ok(())
}

/// `text` with the link's place replaced by `note`, for a reader other than the recipient.
pub fn blank(text: &str, public_url: &str, slot: &LinkSlot, note: &str) -> String {
    text.replace(&placeholder(public_url, slot), note)
}
