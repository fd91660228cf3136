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
use crate::store::{MailRow, StoredMail};
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

pub async fn show(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> PageResult<MailPage> {
    PageError::admin_only(&signed)?;
    let stored = app
        .store
        .mail(&id)
        .await?
        .ok_or_else(|| PageError::not_found("There is no such message."))?;
    let own = stored.row.recipient == signed.user.email;
    let has_html = stored.html.is_some() && own;
    let mail = stored.row.clone();
    let (text, _) = if own {
        with_links(&app, stored).await?
    } else {
        let text = match &stored.link_slot {
            Some(slot) => crate::notify::links::blank(
                &stored.body,
                &app.config.server.public_url,
                &LinkSlot::from_stored(slot.clone()),
                "[a decision link for the recipient only]",
            ),
            None => stored.body,
        };
        (text, None)
    };
    Ok(MailPage {
        chrome: Chrome::new(&signed, "outbox"),
        text_html: linkify(&text),
        has_html,
        mail,
    })
}

/// The recipient's view of a message: its bodies with fresh links of their own.
async fn with_links(app: &AppState, stored: StoredMail) -> PageResult<(String, Option<String>)> {
    let StoredMail {
        row,
        mut body,
        html,
        link_slot,
    } = stored;
    let mut html = html.unwrap_or_default();
    if let (Some(call), Some(slot)) = (&row.call_id, link_slot) {
        crate::notify::links::complete(
            &app.store,
            &app.config.server.public_url,
            call,
            &row.recipient,
            &LinkSlot::from_stored(slot),
            [&mut body, &mut html],
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %crate::telemetry::error_chain(&e), "cannot make a message's links");
            PageError::unavailable("The message's links cannot be made right now; try again.")
        })?;
    }
    Ok((body, (!html.is_empty()).then_some(html)))
}

pub async fn html(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> PageResult<Response> {
    PageError::admin_only(&signed)?;
    let stored = app
        .store
        .mail(&id)
        .await?
        .ok_or_else(|| PageError::not_found("There is no such message."))?;
    if stored.row.recipient != signed.user.email {
        return Err(PageError::forbidden(
            "Only its recipient can open this message's HTML part: it holds their decision links.",
        ));
    }
    let (_, html) = with_links(&app, stored).await?;
    let html = html.ok_or_else(|| PageError::not_found("This message has no HTML part."))?;
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    // Set before the reviewer face's layer, which keeps what a handler set.
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(MAIL_CSP),
    );
    Ok(response)
}
