//! The reviewer JSON API: list and read calls (any user), approve and reject them (admins and
//! approvers, within the rule's `reviewers`).
//!
//! ```text
//! GET  /api/v1/calls?status=pending&limit=50&before=ID   newest first; `next_before` pages on
//! GET  /api/v1/calls/{id}                                 one call with its history
//! POST /api/v1/calls/{id}/approve  {"reason": "...", "args_digest": "..."}   both optional
//! POST /api/v1/calls/{id}/reject   {"reason": "..."}                        reason required
//! ```
//! A decision that comes too late (the call is no longer pending), a second approval by the same
//! reviewer, or an `args_digest` that is not the call's answers 409 and changes nothing.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppError;
use super::reviewer::ApiUser;
use crate::app::AppState;
use crate::approval::{CallView, Decided, Decision, Reviewer};
use crate::domain::{Action, CallId, CallStatus, Via};
use crate::store::User;

/// The most calls one page lists.
const MAX_PAGE: u32 = 500;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/calls", get(list))
        .route("/api/v1/calls/{id}", get(show))
        .route("/api/v1/calls/{id}/approve", post(approve))
        .route("/api/v1/calls/{id}/reject", post(reject))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    limit: Option<u32>,
    before: Option<String>,
}

async fn list(
    State(app): State<AppState>,
    _user: ApiUser,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, AppError> {
    let Query(query) = query.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let status = match query.status.as_deref() {
        None | Some("all") => None,
        Some(text) => Some(CallStatus::parse(text).ok_or_else(|| {
            let known: Vec<&str> = CallStatus::ALL.iter().map(|s| s.as_str()).collect();
            AppError::BadRequest(format!(
                "unknown status {text:?}; one of: all, {}",
                known.join(", ")
            ))
        })?),
    };
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let rows = app
        .store
        .calls(status, query.before.as_deref(), limit)
        .await?;
    let next_before = (rows.len() == limit as usize)
        .then(|| rows.last().map(|row| row.id.to_string()))
        .flatten();
    let ids: Vec<_> = rows.iter().map(|row| row.id.clone()).collect();
    let mut approvals = app.store.approvals_of(&ids).await?;
    let mut calls = Vec::with_capacity(rows.len());
    for row in rows {
        let approvals = approvals.remove(&row.id).unwrap_or_default();
        let waiting = app.approvals.requests_waiting(&row.id);
        calls.push(CallView::new(row, approvals, None).waited_on_by(waiting));
    }
    Ok(Json(json!({"calls": calls, "next_before": next_before})))
}

async fn show(
    State(app): State<AppState>,
    _user: ApiUser,
    Path(id): Path<String>,
) -> Result<Json<CallView>, AppError> {
    view(&app, &call_id(&id)?).await.map(Json)
}

/// The call id a path names; one that is not an id names no call.
fn call_id(text: &str) -> Result<CallId, AppError> {
    CallId::parse(text).map_err(|e| AppError::NotFound(e.to_string()))
}

async fn view(app: &AppState, id: &CallId) -> Result<CallView, AppError> {
    let row = app
        .store
        .call(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no call with id {id}")))?;
    let approvals = app.store.approvals(id).await?;
    let events = app.store.events(id).await?;
    let waiting = app.approvals.requests_waiting(id);
    Ok(CallView::new(row, approvals, Some(events)).waited_on_by(waiting))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    reason: Option<String>,
    args_digest: Option<String>,
}

impl DecisionBody {
    /// `user`'s decision with this body's reason and digest.
    fn decision<'a>(&'a self, action: Action, user: &'a User) -> Decision<'a> {
        Decision {
            action,
            reviewer: Reviewer::User(user),
            via: Via::Api,
            reason: self.reason.as_deref(),
            args_digest: self.args_digest.as_deref(),
            link: None,
        }
    }
}

/// The body is optional (an approval needs no reason); when present it must be this JSON object.
fn decision_body(body: &[u8]) -> Result<DecisionBody, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DecisionBody::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        AppError::BadRequest(format!(
            "the body must be JSON like {{\"reason\": \"...\"}}: {e}"
        ))
    })
}

/// Decides call `id` as `user`, and returns the outcome and the call as it now stands.
async fn decide(
    app: &AppState,
    user: &User,
    id: &str,
    body: &[u8],
    action: Action,
) -> Result<(Decided, CallView), AppError> {
    let id = call_id(id)?;
    let body = decision_body(body)?;
    let decided = app
        .approvals
        .decide(&id, body.decision(action, user))
        .await?;
    Ok((decided, view(app, &id).await?))
}

async fn approve(
    State(app): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, AppError> {
    let (decided, call) = decide(&app, &user, &id, &body, Action::Approve).await?;
    let (have, need) = match decided {
        Decided::Counted { have, need } => (Some(have), Some(need)),
        Decided::Released | Decided::Rejected => (None, None),
    };
    Ok(Json(json!({
        "released": decided == Decided::Released,
        "approvals": have,
        "approvals_needed": need,
        "call": call,
    })))
}

async fn reject(
    State(app): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, AppError> {
    let (_, call) = decide(&app, &user, &id, &body, Action::Reject).await?;
    Ok(Json(json!({"call": call})))
}
