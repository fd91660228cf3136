//! The outbox (`/outbox`, admins): every email Airlock queued, with its state (pending, sent,
//! failed and why). Without an SMTP server (`airlock demo`) mail stays here, and each message can
//! be read as it would arrive, text or HTML, with working links.
//!
//! A message's Approve and Reject links decide as its recipient, so they are minted here only for
//! the admin the message is addressed to (fresh single-use links, each time the message is
//! opened, as the worker mints them when it sends: the outbox never holds a working link); in
//! anyone else's messages they are blanked (and the HTML part, which holds them too, is not
//! shown). An admin cannot decide as another reviewer.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::notify::links::LinkSlot;
use crate::store::{ClaimedMail, MailPurpose, MailRow, StoredMail};
use crate::web::page::{Chrome, PageError, PageResult, linkify};
use crate::web::session::SignedIn;

/// The most messages the page lists.
const MAX_ROWS: u32 = 200;

/// The HTML part is Airlock's own template output; it is still shown under a policy that runs no
/// script and loads nothing, only its inline styles.
const MAIL_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                        frame-ancestors 'none'; form-action 'none'; base-uri 'none'; sandbox";

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/outbox.html")]
pub struct OutboxPage {
    chrome: Chrome,
    mails: Vec<MailRow>,
    sending: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/mail.html")]
pub struct MailPage {
    chrome: Chrome,
    mail: MailRow,
    text_html: String,
    has_html: bool,
}

pub async fn page(State(app): State<AppState>, signed: SignedIn) -> PageResult<OutboxPage> {
    PageError::admin_only(&signed)?;
    Ok(OutboxPage {
        chrome: Chrome::new(&signed, "outbox"),
        mails: app.store.mails(MAX_ROWS).await?,
        sending: app
            .config
            .email
            .as_ref()
            .is_some_and(|e| e.smtp_url.is_some()),
    })
}

/// The message `id`, for an admin.
async fn stored_mail(app: &AppState, signed: &SignedIn, id: &str) -> Result<StoredMail, PageError> {
    PageError::admin_only(signed)?;
    app.store
        .mail(id)
        .await?
        .ok_or_else(|| PageError::not_found("There is no such message."))
}

pub async fn show(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> PageResult<MailPage> {
    let stored = stored_mail(&app, &signed, &id).await?;
    let own = stored.row.recipient == signed.user.email;
    let has_html = stored.html.is_some() && own;
    let mut mail = stored.row.clone();
    let text = if own {
        let shown = as_sent(&app, stored).await?;
        mail.subject = shown.subject;
        shown.body
    } else {
        let (link_slot, purpose) = (stored.link_slot.clone(), stored.purpose);
        let mut shown = as_sent(
            &app,
            StoredMail {
                link_slot: None,
                ..stored
            },
        )
        .await?;
        if let Some(slot) = link_slot {
            let slot = LinkSlot::from_stored(slot);
            shown.body = match purpose {
                Some(MailPurpose::Password) => crate::notify::password::blank(
                    &shown.body,
                    &slot,
                    "[a set-password link for the recipient only]",
                ),
                _ => crate::notify::links::blank(
                    &shown.body,
                    &slot,
                    "[a decision link for the recipient only]",
                ),
            };
        }
        mail.subject = shown.subject;
        shown.body
    };
    Ok(MailPage {
        chrome: Chrome::new(&signed, "outbox"),
        text_html: linkify(&text),
        has_html,
        mail,
    })
}

/// A message as it would leave now (a digest's list made, decision links minted for its
/// recipient unless `stored` has its link slot taken out).
async fn as_sent(app: &AppState, stored: StoredMail) -> PageResult<ClaimedMail> {
    let mail = ClaimedMail {
        id: stored.row.id,
        kind: stored.purpose.map(|p| p.as_str().to_owned()),
        call_id: stored.row.call_id,
        recipient: stored.row.recipient,
        subject: stored.row.subject,
        body: stored.body,
        html: stored.html,
        link_slot: stored.link_slot,
        attempts: stored.row.attempts,
    };
    let showing = crate::notify::links::Minting::Showing;
    crate::notify::worker::prepare(&app.store, &app.config.server.public_url, mail, showing)
        .await
        .map_err(|e| {
            tracing::error!(error = %crate::telemetry::error_chain(&e), "cannot make a message's links");
            PageError::unavailable("The message's links cannot be made right now; try again.")
        })
}

pub async fn html(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> PageResult<Response> {
    let stored = stored_mail(&app, &signed, &id).await?;
    if stored.row.recipient != signed.user.email {
        return Err(PageError::forbidden(
            "Only its recipient can open this message's HTML part: it holds their decision links.",
        ));
    }
    let html = as_sent(&app, stored)
        .await?
        .html
        .ok_or_else(|| PageError::not_found("This message has no HTML part."))?;
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    // Set before the reviewer face's layer, which keeps what a handler set.
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(MAIL_CSP),
    );
    Ok(response)
}
