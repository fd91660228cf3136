//! The outbox (`/outbox`, admins): every email Airlock queued, with its state (pending, sent,
//! failed and why). Without an SMTP server (`airlock demo`) mail stays here, and each message can
//! be read as it would arrive, text or HTML, with working links.
//!
//! A message's Approve and Reject links decide as its recipient, so they work here only for the
//! admin the message is addressed to; in anyone else's messages they are blanked (and the HTML
//! part, which holds them too, is not shown). An admin cannot decide as another reviewer.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::store::MailRow;
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
    let (mail, text, html) = app
        .store
        .mail(&id)
        .await?
        .ok_or_else(|| PageError::not_found("There is no such message."))?;
    let own = mail.recipient == signed.user.email;
    let text = if own { text } else { blank_review_links(&text) };
    Ok(MailPage {
        chrome: Chrome::new(&signed, "outbox"),
        text_html: linkify(&text),
        has_html: html.is_some() && own,
        mail,
    })
}

pub async fn html(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> PageResult<Response> {
    PageError::admin_only(&signed)?;
    let (mail, _, html) = app
        .store
        .mail(&id)
        .await?
        .ok_or_else(|| PageError::not_found("There is no such message."))?;
    if mail.recipient != signed.user.email {
        return Err(PageError::forbidden(
            "Only its recipient can open this message's HTML part: it holds their decision links.",
        ));
    }
    let html = html.ok_or_else(|| PageError::not_found("This message has no HTML part."))?;
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    // Set before the reviewer face's layer, which keeps what a handler set.
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(MAIL_CSP),
    );
    Ok(response)
}

/// `text` with every review link replaced by a note: those links decide as their recipient.
fn blank_review_links(text: &str) -> String {
    text.split('\n')
        .map(|line| {
            line.split(' ')
                .map(|word| {
                    if word.contains("/review/") {
                        "[a decision link for the recipient only]"
                    } else {
                        word
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}
