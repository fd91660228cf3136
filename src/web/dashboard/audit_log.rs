//! The audit log on the dashboard (`/history/events`): every event of the hash chain (for
//! admins; other reviewers see the events of calls, not sign-ins and user changes), newest first, filtered by kind, actor, agent, upstream, tool and days, in keyset pages (`before` = the
//! last number shown); and its download (`/history/events/export`) as JSON lines (ending with the
//! signed checkpoint) or CSV, streamed page by page in constant memory.

use askama::Template;
use askama_web::WebTemplate;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::history::{day_start, non_empty};
use crate::app::AppState;
use crate::audit::export::{Exporter, Format};
use crate::store::{AuditFilter, AuditOrder, Role};
use crate::web::page::{Chrome, PageError, PageResult, short_time};
use crate::web::session::SignedIn;

/// Events on one page.
const PAGE: u32 = 100;

/// The kinds the filter offers (any other can be typed in the URL).
const KINDS: &[&str] = &[
    "allowed",
    "completed",
    "failed",
    "outcome_unknown",
    "denied",
    "rate_limited",
    "pending",
    "approval",
    "approved",
    "rejected",
    "expired",
    "withdrawn",
    "unclaimed",
    "abandoned",
    "forwarding",
    "policy_loaded",
    "policy_reloaded",
    "policy_refused",
    "shadowed",
    "tool_quarantined",
    "tool_accepted",
    "sign_in",
    "sign_in_failed",
    "user_added",
    "role_changed",
    "user_disabled",
    "user_enabled",
    "password_reset",
    "password_changed",
    "token_created",
    "token_revoked",
    "agent_token_created",
    "pruned",
];

/// The filters as the form sends them; empty fields do not filter.
#[derive(Deserialize, Serialize, Default, Clone)]
#[serde(default)]
pub struct EventsQuery {
    #[serde(skip_serializing_if = "String::is_empty")]
    kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    actor: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    agent: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    upstream: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    tool: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    since: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    until: String,
    #[serde(skip_serializing)]
    before: String,
    #[serde(skip_serializing)]
    format: String,
}

impl EventsQuery {
    /// The filters; `everything` (admins) includes the events that are not about calls.
    fn filter(&self, everything: bool) -> Result<AuditFilter, PageError> {
        Ok(AuditFilter {
            kind: non_empty(&self.kind),
            actor: non_empty(&self.actor),
            agent: non_empty(&self.agent),
            upstream: non_empty(&self.upstream),
            tool: non_empty(&self.tool),
            since: day_start(&self.since, 0, "From")?.map(|at| at.text()),
            until: day_start(&self.until, 1, "To")?.map(|at| at.text()),
            max_seq: None,
            calls_only: !everything,
        })
    }

    fn encoded(&self) -> String {
        serde_urlencoded::to_string(self).unwrap_or_default()
    }
}

pub struct EventRow {
    seq: i64,
    at: String,
    kind: String,
    actor: String,
    via: String,
    /// `upstream.tool`, or empty.
    tool: String,
    call_id: String,
    detail: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/audit_log.html")]
pub struct AuditLogPage {
    chrome: Chrome,
    query: EventsQuery,
    kinds: &'static [&'static str],
    rows: Vec<EventRow>,
    next: Option<String>,
    export: String,
    signed: bool,
    /// Admins see every event; others see the events of calls.
    admin: bool,
}

pub async fn page(
    State(app): State<AppState>,
    signed: SignedIn,
    Query(query): Query<EventsQuery>,
) -> PageResult<AuditLogPage> {
    let admin = signed.user.role() == Role::Admin;
    let filter = query.filter(admin)?;
    let before = match non_empty(&query.before) {
        None => i64::MAX,
        Some(text) => text
            .parse()
            .map_err(|_| PageError::bad_request("before: not an event number"))?,
    };
    let found = app
        .store
        .audit_page(&filter, AuditOrder::Before(before), PAGE)
        .await?;
    let next = (found.len() == PAGE as usize)
        .then(|| {
            found
                .last()
                .map(|e| format!("{}&before={}", query.encoded(), e.seq))
        })
        .flatten();
    let rows = found
        .into_iter()
        .map(|e| EventRow {
            seq: e.seq,
            at: short_time(&e.at),
            tool: match (e.upstream, e.tool) {
                (Some(upstream), Some(tool)) => format!("{upstream}.{tool}"),
                (Some(upstream), None) => upstream,
                (None, tool) => tool.unwrap_or_default(),
            },
            call_id: e.call_id.unwrap_or_default(),
            detail: e.detail.unwrap_or_default(),
            kind: e.kind,
            actor: e.actor,
            via: e.via,
        })
        .collect();
    Ok(AuditLogPage {
        chrome: Chrome::new(&signed, "history"),
        export: query.encoded(),
        kinds: KINDS,
        rows,
        next,
        signed: app.audit_key.is_some(),
        admin,
        query,
    })
}

pub async fn export(
    State(app): State<AppState>,
    signed: SignedIn,
    Query(query): Query<EventsQuery>,
) -> PageResult<Response> {
    let filter = query.filter(signed.user.role() == Role::Admin)?;
    let format = Format::parse(non_empty(&query.format).as_deref().unwrap_or("jsonl"))
        .ok_or_else(|| PageError::bad_request("format: use jsonl or csv"))?;
    let exporter = Exporter::start(&app.store, filter, format, app.audit_key.as_deref())
        .await
        .map_err(|e| match e {
            crate::audit::export::ExportError::Store(e) => PageError::from(e),
            crate::audit::export::ExportError::Write(_)
            | crate::audit::export::ExportError::PrunedMeanwhile => {
                PageError::bad_request("cannot start the export")
            }
        })?;
    let chunks = futures_util::stream::unfold(Some(exporter), |exporter| async move {
        let mut exporter = exporter?;
        match exporter.next_chunk().await {
            Ok(Some((chunk, _))) => Some((Ok::<_, std::io::Error>(chunk), Some(exporter))),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %crate::telemetry::error_chain(&e), "audit export stopped");
                Some((
                    Err(std::io::Error::other("the store failed during the export")),
                    None,
                ))
            }
        }
    });
    let (content_type, name) = match format {
        Format::Jsonl => ("application/x-ndjson", "airlock-audit.jsonl"),
        Format::Csv => ("text/csv; charset=utf-8", "airlock-audit.csv"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}
