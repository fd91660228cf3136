//! Every parked call (`/history`), filtered by status, upstream, tool, agent, reviewer, time range
//! and text in the arguments, newest first, in keyset pages (`before` = the last id shown), so a
//! deep page costs what the first does. A chart shows the decisions of the last days, and the same
//! filters export as JSON lines (`/history/export`), streamed page by page in constant memory.

use std::time::{Duration, Instant};

use askama::Template;
use askama_web::WebTemplate;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::chart::ChartDay;
use crate::app::AppState;
use crate::approval::CallView;
use crate::domain::{CallStatus, Timestamp};
use crate::store::{CallFilter, CallRow};
use crate::web::page::{Badge, Chrome, PageError, PageResult, preview, short_time, status_badge};
use crate::web::session::SignedIn;

/// Rows on one page.
const PAGE: u32 = 50;
/// Rows per query while exporting.
const EXPORT_PAGE: u32 = 500;
/// Calls the text and reviewer filters look through in one query (see `Store::history`).
const SCAN: u32 = 1_000;
/// How long a page searches before it shows what it found and offers to search on, rather than
/// read the whole table for something rare.
const SEARCH_TIME: Duration = Duration::from_millis(5);

/// The filters as the form sends them; empty fields do not filter.
#[derive(Deserialize, Serialize, Default, Clone)]
#[serde(default)]
pub struct HistoryQuery {
    #[serde(skip_serializing_if = "String::is_empty")]
    status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    upstream: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    tool: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    agent: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    reviewer: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    since: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    until: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    q: String,
    #[serde(skip_serializing)]
    before: String,
}

pub(super) fn non_empty(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// `YYYY-MM-DD` as the stored time of that day's start, `days_after` days later.
pub(super) fn day_start(
    text: &str,
    days_after: i64,
    field: &str,
) -> Result<Option<Timestamp>, PageError> {
    let Some(text) = non_empty(text) else {
        return Ok(None);
    };
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(&text, format).map_err(|_| {
        PageError::bad_request(&format!("{field}: {text:?} is not a date like 2026-11-25"))
    })?;
    let day = day
        .checked_add(time::Duration::days(days_after))
        .ok_or_else(|| PageError::bad_request(&format!("{field}: {text:?} is too far away")))?;
    Ok(Some(Timestamp::from(day.midnight().assume_utc())))
}

impl HistoryQuery {
    fn filter(&self) -> Result<CallFilter, PageError> {
        let status =
            match non_empty(&self.status) {
                None => None,
                Some(text) => Some(CallStatus::parse(&text).ok_or_else(|| {
                    PageError::bad_request(&format!("There is no status {text:?}."))
                })?),
            };
        Ok(CallFilter {
            status,
            upstream: non_empty(&self.upstream),
            tool: non_empty(&self.tool),
            agent: non_empty(&self.agent),
            reviewer: non_empty(&self.reviewer),
            since: day_start(&self.since, 0, "From")?,
            until: day_start(&self.until, 1, "To")?,
            text: non_empty(&self.q),
        })
    }

    /// These filters as a query string (for the next page and the export link).
    fn encoded(&self) -> String {
        serde_urlencoded::to_string(self).unwrap_or_default()
    }
}

pub struct HistoryRow {
    id: String,
    badge: Badge,
    upstream: String,
    tool: String,
    agent: String,
    preview: String,
    created: String,
    decided_by: String,
    reason: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/history.html")]
pub struct HistoryPage {
    chrome: Chrome,
    query: HistoryQuery,
    statuses: Vec<&'static str>,
    rows: Vec<HistoryRow>,
    next: Option<String>,
    /// The search stopped before the page filled: `next` searches on.
    scan_ended: bool,
    export: String,
    chart: Vec<ChartDay>,
}

pub async fn page(
    State(app): State<AppState>,
    signed: SignedIn,
    Query(query): Query<HistoryQuery>,
) -> PageResult<HistoryPage> {
    let filter = query.filter()?;
    let before = non_empty(&query.before);
    let (found, after) = search(&app, &filter, before).await?;
    let scan_ended = after.is_some() && found.len() < PAGE as usize;
    let next = after.map(|id| format!("{}&before={id}", query.encoded()));
    let rows = found
        .into_iter()
        .map(|row| CallView::new(row, Vec::new(), None))
        .filter(|call| shows_text(&filter, call))
        .map(|call| HistoryRow {
            badge: status_badge(call.status),
            preview: preview(&call.arguments, 60),
            created: short_time(&call.created_at),
            decided_by: call.decided_by.unwrap_or_default(),
            reason: call.reason.unwrap_or_default(),
            id: call.id.into_string(),
            upstream: call.upstream,
            tool: crate::visible::visible(&call.tool).into_owned(),
            agent: crate::visible::visible(&call.agent).into_owned(),
        })
        .collect();
    Ok(HistoryPage {
        chrome: Chrome::new(&signed, "history"),
        export: query.encoded(),
        statuses: CallStatus::ALL.iter().map(|s| s.as_str()).collect(),
        rows,
        next,
        scan_ended,
        chart: app.chart.days(&app.store).await?,
        query,
    })
}

/// Up to [`PAGE`] calls matching `filter` after `before`, and where the next page starts. Filters
/// without an index scan [`SCAN`] calls at a time, for at most [`SEARCH_TIME`]: a page searching
/// for something rare comes back short, saying where to search on.
async fn search(
    app: &AppState,
    filter: &CallFilter,
    mut before: Option<String>,
) -> PageResult<(Vec<CallRow>, Option<String>)> {
    let started = Instant::now();
    let mut found = Vec::new();
    loop {
        let wanted = PAGE - u32::try_from(found.len()).unwrap_or(PAGE);
        let slice = app
            .store
            .history(filter, before.as_deref(), wanted, Some(SCAN))
            .await?;
        found.extend(slice.rows);
        before = slice.next;
        if found.len() >= PAGE as usize || before.is_none() || started.elapsed() >= SEARCH_TIME {
            return Ok((found, before));
        }
    }
}

/// Whether the text filter, if any, matches what a person sees of the call's arguments. The store
/// searches the arguments as stored; a match inside a masked field would let a reader guess the
/// secret one character at a time, so it does not count. (This also makes the search
/// case-sensitive on SQLite, whose `LIKE` is not, as on PostgreSQL.)
fn shows_text(filter: &CallFilter, call: &CallView) -> bool {
    filter
        .text
        .as_ref()
        .is_none_or(|text| call.arguments.to_string().contains(text.as_str()))
}

/// One exported call, if it passes the text filter: the view the API gives, one JSON object per
/// line.
fn export_line(filter: &CallFilter, row: CallRow) -> String {
    let call = CallView::new(row, Vec::new(), None);
    if !shows_text(filter, &call) {
        return String::new();
    }
    let mut line = serde_json::to_string(&call).unwrap_or_default();
    line.push('\n');
    line
}

pub async fn export(
    State(app): State<AppState>,
    _signed: SignedIn,
    Query(query): Query<HistoryQuery>,
) -> PageResult<Response> {
    let filter = query.filter()?;
    let store = app.store.clone();
    let lines = futures_util::stream::unfold(Some(None::<String>), move |cursor| {
        let store = store.clone();
        let filter = filter.clone();
        async move {
            let before = cursor?;
            match store
                .history(&filter, before.as_deref(), EXPORT_PAGE, None)
                .await
            {
                Ok(slice) => {
                    let chunk: String = slice
                        .rows
                        .into_iter()
                        .map(|row| export_line(&filter, row))
                        .collect();
                    Some((Ok::<_, std::io::Error>(chunk), slice.next.map(Some)))
                }
                Err(e) => {
                    tracing::error!(error = %crate::telemetry::error_chain(&e), "history export stopped");
                    Some((
                        Err(std::io::Error::other("the store failed during the export")),
                        None,
                    ))
                }
            }
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"airlock-calls.jsonl\"",
            ),
        ],
        Body::from_stream(lines),
    )
        .into_response())
}
