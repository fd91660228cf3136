//! The pending queue (`/`): every call waiting for a decision, newest first. The page embeds the
//! rows; the browser script swaps in `/queue/rows` whenever `/events` says the queue changed, so
//! the list stays live without a reload (and works, refreshed by hand, with JavaScript off).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;

use crate::app::AppState;
use crate::approval::{CallStatus, CallView};
use crate::web::page::{Badge, Chrome, PageResult, preview, risk_badge, seconds_until, time_left};
use crate::web::session::SignedIn;

/// The most pending calls the page lists.
const MAX_ROWS: u32 = 500;
/// Characters of the argument preview.
const PREVIEW_CHARS: usize = 80;

pub struct QueueRow {
    id: String,
    upstream: String,
    tool: String,
    agent: String,
    risk: Badge,
    preview: String,
    approvals_have: usize,
    approvals_needed: i64,
    expires_at: String,
    left: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/queue.html")]
pub struct QueuePage {
    chrome: Chrome,
    rows: Vec<QueueRow>,
}

#[derive(Template, WebTemplate)]
#[template(path = "partials/queue_rows.html")]
pub struct QueueRows {
    rows: Vec<QueueRow>,
}

async fn rows(app: &AppState) -> PageResult<Vec<QueueRow>> {
    let pending = app
        .store
        .calls(Some(CallStatus::Pending), None, MAX_ROWS)
        .await?;
    let mut rows = Vec::with_capacity(pending.len());
    for row in pending {
        let approvals = app.store.approvals(&row.id).await?;
        let call = CallView::new(row, approvals, None);
        rows.push(QueueRow {
            risk: risk_badge(&call.tool),
            preview: preview(&call.arguments, PREVIEW_CHARS),
            approvals_have: call.approvals.len(),
            approvals_needed: call.approvals_needed,
            left: time_left(seconds_until(&call.expires_at)),
            id: call.id,
            upstream: call.upstream,
            tool: call.tool,
            agent: call.agent,
            expires_at: call.expires_at,
        });
    }
    Ok(rows)
}

pub async fn page(State(app): State<AppState>, signed: SignedIn) -> PageResult<QueuePage> {
    Ok(QueuePage {
        chrome: Chrome::new(&signed, "queue"),
        rows: rows(&app).await?,
    })
}

/// The rows alone, for the live update.
pub async fn fragment(State(app): State<AppState>, _signed: SignedIn) -> PageResult<QueueRows> {
    Ok(QueueRows {
        rows: rows(&app).await?,
    })
}
