//! The pending queue (`/`): every call waiting for a decision, newest first, [`PAGE`] at a time
//! (keyset pages: `?before=ID` continues after that call), with the total. The page embeds the
//! rows; the browser script swaps in `/queue/rows` (of the same page) whenever `/events` says the
//! queue changed, so the list stays live without a reload (and works, refreshed by hand, with
//! JavaScript off).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use serde::Deserialize;

use crate::app::AppState;
use crate::approval::CallView;
use crate::domain::CallStatus;
use crate::web::fields::{CHOICE, Text};
use crate::web::page::{
    Badge, Chrome, PageResult, parked_badge, preview, seconds_until, time_left,
};
use crate::web::session::SignedIn;

/// Pending calls per page.
const PAGE: u32 = 100;
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
    page: QueueRows,
}

#[derive(Template, WebTemplate)]
#[template(path = "partials/queue_rows.html")]
pub struct QueueRows {
    rows: Vec<QueueRow>,
    /// Every pending call, not only this page's.
    total: i64,
    /// The page continues after this call (`?before=`), when it is not the first.
    before: Option<String>,
    /// The next page's `before`, when there are older calls.
    older: Option<String>,
}

impl QueueRows {
    /// Where this page's rows are fetched for the live update.
    fn src(&self) -> String {
        match &self.before {
            Some(id) => format!("/queue/rows?before={id}"),
            None => "/queue/rows".to_owned(),
        }
    }
}

#[derive(Deserialize)]
pub struct PageQuery {
    before: Option<Text<CHOICE>>,
}

async fn rows(app: &AppState, before: Option<String>) -> PageResult<QueueRows> {
    let total = app.store.count_status(CallStatus::Pending).await?;
    let mut pending = app
        .store
        .calls(Some(CallStatus::Pending), before.as_deref(), PAGE + 1)
        .await?;
    let older = (pending.len() > PAGE as usize).then(|| {
        pending.truncate(PAGE as usize);
        pending.last().map(|row| row.id.to_string())
    });
    let ids: Vec<_> = pending.iter().map(|row| row.id.clone()).collect();
    let approvals = app.store.approvals_of(&ids).await?;
    let mut rows = Vec::with_capacity(pending.len());
    for row in pending {
        let approvals_have = approvals.get(&row.id).map_or(0, Vec::len);
        let call = CallView::new(row, Vec::new(), None);
        rows.push(QueueRow {
            risk: parked_badge(&call.tool),
            preview: preview(&call.arguments, PREVIEW_CHARS),
            approvals_have,
            approvals_needed: call.approvals_needed,
            left: time_left(seconds_until(&call.expires_at)),
            id: call.id.into_string(),
            upstream: call.upstream,
            tool: crate::visible::visible(&call.tool).into_owned(),
            agent: crate::visible::visible(&call.agent).into_owned(),
            expires_at: call.expires_at,
        });
    }
    Ok(QueueRows {
        rows,
        total,
        before,
        older: older.flatten(),
    })
}

pub async fn page(
    State(app): State<AppState>,
    signed: SignedIn,
    Query(query): Query<PageQuery>,
) -> PageResult<QueuePage> {
    Ok(QueuePage {
        chrome: Chrome::new(&signed, "queue"),
        page: rows(&app, query.before.map(Text::into_string)).await?,
    })
}

/// The rows alone, for the live update.
pub async fn fragment(
    State(app): State<AppState>,
    _signed: SignedIn,
    Query(query): Query<PageQuery>,
) -> PageResult<QueueRows> {
    rows(&app, query.before.map(Text::into_string)).await
}
