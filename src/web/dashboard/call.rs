//! One call (`/calls/{id}`): what was asked, under which rule, the arguments (redacted fields
//! masked, long strings folded), the votes and the history; for a pending call the decision form.
//!
//! A decision is a POST of that form (`/calls/{id}/decide`), bound to the argument digest the page
//! showed. It answers with a redirect back to the call (post/redirect/get), whose page then says
//! what happened; a decision that came too late shows the call's outcome instead of an error.
//!
//! A reviewer who may decide a waiting call can reveal one masked field at a time (`POST
//! /calls/{id}/reveal`): the answer is this page with that field's real value, never stored in a
//! page anyone else sees (no redirect, no URL holding it, `no-store`), and an audit event records
//! who revealed which field (never the value).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::app::AppState;
use crate::approval::decide::{self, MAX_REASON};
use crate::approval::{CallView, DecideError, Decided, Decision, Reviewer};
use crate::domain::{Action, Actor, CallId, CallStatus, Timestamp, Via};
use crate::store::{EventRow, MailRow};
use crate::web::AppError;
use crate::web::fields::{CHOICE, OTHER, Text};
use crate::web::page::{
    Badge, Chrome, PageError, PageResult, Reveal, arguments_html_with, parked_badge, seconds_until,
    short_time, status_badge, time_left,
};
use crate::web::session::{CsrfForm, SignedIn};

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/call.html")]
pub struct CallPage {
    chrome: Chrome,
    call: CallView,
    badge: Badge,
    risk: Badge,
    args_html: String,
    tool_description: Option<String>,
    /// Masked fields can be revealed (the decision form's reviewer, a waiting call).
    can_reveal: bool,
    created: String,
    expires: String,
    decided: Option<String>,
    left: String,
    missing: i64,
    pending: bool,
    can_decide: bool,
    outcome: String,
    /// Whether the agent waits for the call now, or picks it up when it calls again (open calls).
    agent_state: Option<String>,
    notice: Option<(&'static str, String)>,
    events: Vec<EventRow>,
    mails: Vec<MailRow>,
}

#[derive(Deserialize)]
pub struct Flash {
    done: Option<String>,
    late: Option<String>,
    error: Option<String>,
}

/// The call a path names; one that is not an id names no call.
fn call_id(text: &str) -> PageResult<CallId> {
    CallId::parse(text).map_err(|_| PageError::not_found(&format!("There is no call {text}.")))
}

async fn load(app: &AppState, id: &CallId) -> PageResult<CallView> {
    let row = app
        .store
        .call(id)
        .await?
        .ok_or_else(|| PageError::not_found(&format!("There is no call {id}.")))?;
    let approvals = app.store.approvals(id).await?;
    let events = app.store.events(id).await?;
    Ok(CallView::new(row, approvals, Some(events)))
}

/// Whether the agent is waiting for an open call right now (`waiting` requests on this instance),
/// or gets it when it calls again.
fn agent_state(call: &CallView, waiting: usize) -> Option<String> {
    if !matches!(call.status, CallStatus::Pending | CallStatus::Approved) {
        return None;
    }
    Some(match waiting {
        0 => {
            let by = call
                .pickup_by
                .as_deref()
                .filter(|_| call.status == CallStatus::Approved)
                .map(|at| format!(" (until {})", short_time(at)))
                .unwrap_or_default();
            format!(
                "The agent is not waiting right now: it gets the result when it calls {} again with \
                 the same arguments{by}.",
                call.tool
            )
        }
        1 => "The agent is waiting for this call now.".to_owned(),
        n => format!("The agent is waiting for this call now ({n} requests)."),
    })
}

/// What the call's end looked like, in a sentence.
fn outcome(call: &CallView) -> String {
    match (call.status, &call.result) {
        (CallStatus::Completed, Some(result)) if result.is_error == Some(true) => format!(
            "forwarded; the upstream answered with an error ({} bytes)",
            result.bytes
        ),
        (CallStatus::Completed, Some(result)) => {
            format!(
                "forwarded; the upstream answered ({} bytes, not stored)",
                result.bytes
            )
        }
        (CallStatus::Failed, _) => "forwarded, but the upstream call failed".to_owned(),
        (CallStatus::OutcomeUnknown, _) => {
            "forwarded, but Airlock stopped before the answer was recorded".to_owned()
        }
        (CallStatus::Approved, _) => {
            "approved: runs when the agent calls again (or now, if it is waiting)".to_owned()
        }
        (CallStatus::Forwarding, _) => "being forwarded".to_owned(),
        (CallStatus::Unclaimed, _) => {
            "not run: approved, but the agent did not call for it in time".to_owned()
        }
        (CallStatus::Rejected, _) => "not run: rejected".to_owned(),
        (CallStatus::Expired, _) => "not run: nobody decided in time".to_owned(),
        (CallStatus::Withdrawn, _) => "not run: the agent withdrew the call".to_owned(),
        (CallStatus::Abandoned, _) => "not run: the agent's connection was lost".to_owned(),
        _ => String::new(),
    }
}

/// Whether `signed` may decide this call: a deciding role, and named by the rule if it names anyone.
fn may_decide(app: &AppState, signed: &SignedIn, call: &CallView) -> bool {
    call.rule.as_ref().is_some_and(|rule| {
        decide::may_decide(Reviewer::User(&signed.user), rule, &app.config.groups).is_ok()
    })
}

pub async fn page(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    Query(flash): Query<Flash>,
) -> PageResult<CallPage> {
    let call = load(&app, &call_id(&id)?).await?;
    let notice = notice(&call, &flash);
    render(&app, &signed, call, notice, None).await
}

/// The call page for `signed`, with `revealed` (a field's JSON pointer and real value) shown.
async fn render(
    app: &AppState,
    signed: &SignedIn,
    mut call: CallView,
    notice: Option<(&'static str, String)>,
    revealed: Option<(&str, &serde_json::Value)>,
) -> PageResult<CallPage> {
    let id = call.id.clone();
    let status = call.status;
    let pending = status == CallStatus::Pending;
    let tool_description = app
        .catalogue
        .description(&call.upstream, &call.tool)
        .await
        .map(|d| crate::visible::visible(&d).into_owned());
    let seconds = seconds_until(&call.expires_at);
    let can_decide = pending && may_decide(app, signed, &call);
    let args_html = arguments_html_with(
        &call.arguments,
        &Reveal {
            form: can_decide.then_some("reveal"),
            revealed,
        },
    );
    call.tool = crate::visible::visible(&call.tool).into_owned();
    call.agent = crate::visible::visible(&call.agent).into_owned();
    Ok(CallPage {
        chrome: Chrome::new(signed, "queue"),
        badge: status_badge(status),
        risk: parked_badge(&call.tool),
        args_html,
        tool_description,
        can_reveal: can_decide,
        created: short_time(&call.created_at),
        expires: short_time(&call.expires_at),
        decided: call.decided_at.as_deref().map(short_time),
        left: time_left(seconds),
        missing: call.approvals_needed - i64::try_from(call.approvals.len()).unwrap_or(0),
        pending,
        can_decide,
        outcome: outcome(&call),
        agent_state: agent_state(&call, app.approvals.requests_waiting(&id)),
        notice,
        events: call.events.clone().unwrap_or_default(),
        mails: app.store.mails_of_call(&id).await?,
        call,
    })
}

fn notice(call: &CallView, flash: &Flash) -> Option<(&'static str, String)> {
    let by = call.decided_by.as_deref().unwrap_or("the system");
    let why = call
        .reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    if let Some(done) = &flash.done {
        let text = match done.as_str() {
            "approved" => "Approved. The call is released to the agent.".to_owned(),
            "counted" => "Your approval is counted; the call needs more approvals.".to_owned(),
            "rejected" => "Rejected. The agent is told your reason.".to_owned(),
            _ => return None,
        };
        return Some(("ok", text));
    }
    if let Some(late) = &flash.late {
        let text = match late.as_str() {
            "duplicate" => {
                "You have already approved this call; it needs approvals from other reviewers."
                    .to_owned()
            }
            // A call past its expiry may not have been swept yet: say what the decision met.
            _ if call.status == CallStatus::Pending => {
                let met = CallStatus::parse(late).map_or("decided", CallStatus::as_str);
                format!("Too late: this call had already {met}. Nothing was changed.")
            }
            _ => format!(
                "Too late: this call was already {} by {by}{why}. Nothing was changed.",
                call.status
            ),
        };
        return Some(("warning", text));
    }
    match flash.error.as_deref() {
        Some("reason") => Some(("error", "A rejection needs a reason; the agent is shown it.".to_owned())),
        Some("digest") => Some((
            "error",
            "The call's arguments are not the ones this page showed; nothing was decided. Look at them again.".to_owned(),
        )),
        _ => None,
    }
}

#[derive(Deserialize)]
pub struct DecideForm {
    #[serde(default)]
    decision: Text<CHOICE>,
    #[serde(default)]
    reason: Text<MAX_REASON>,
    #[serde(default)]
    args_digest: Text<CHOICE>,
}

pub async fn decide(
    State(app): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(signed, form): CsrfForm<DecideForm>,
) -> PageResult<Response> {
    let Some(action) = Action::parse(&form.decision) else {
        return Err(PageError::bad_request("Choose Approve or Reject."));
    };
    let call = call_id(&id)?;
    let reason = form.reason.trim();
    let decision = Decision {
        action,
        reviewer: Reviewer::User(&signed.user),
        via: Via::Dashboard,
        reason: (!reason.is_empty()).then_some(reason),
        args_digest: Some(&form.args_digest),
        link: None,
    };
    let flash = match app.approvals.decide(&call, decision).await {
        Ok(Decided::Released) => "done=approved".to_owned(),
        Ok(Decided::Counted { .. }) => "done=counted".to_owned(),
        Ok(Decided::Rejected) => "done=rejected".to_owned(),
        Err(DecideError::NotPending { status, .. }) => format!("late={}", status.as_str()),
        Err(DecideError::AlreadyApproved { .. }) => "late=duplicate".to_owned(),
        Err(DecideError::ReasonRequired) => "error=reason".to_owned(),
        Err(DecideError::DigestMismatch) => "error=digest".to_owned(),
        Err(e) => return Err(AppError::from(e).into()),
    };
    Ok(Redirect::to(&format!("/calls/{call}?{flash}")).into_response())
}

#[derive(Deserialize)]
pub struct RevealForm {
    #[serde(default)]
    field: Text<OTHER>,
}

/// Shows one masked field's real value to a reviewer who may decide the waiting call, and
/// records that they saw it.
pub async fn reveal(
    State(app): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(signed, form): CsrfForm<RevealForm>,
) -> PageResult<Response> {
    let id = call_id(&id)?;
    let call = load(&app, &id).await?;
    if call.status != CallStatus::Pending || !may_decide(&app, &signed, &call) {
        return Err(PageError::forbidden(
            "Only a reviewer who may decide this call can reveal its masked fields, while it waits.",
        ));
    }
    let row = app
        .store
        .call(&id)
        .await?
        .ok_or_else(|| PageError::not_found(&format!("There is no call {id}.")))?;
    let field = form.field.into_string();
    let masked = call
        .arguments
        .pointer(&field)
        .and_then(serde_json::Value::as_str)
        .is_some_and(|shown| shown.contains(crate::redact::MASK));
    let real = serde_json::from_str::<serde_json::Value>(&row.args_json)
        .ok()
        .and_then(|args| args.pointer(&field).cloned())
        .filter(|_| masked)
        .ok_or_else(|| PageError::bad_request("That field is not masked in this call."))?;
    let detail = format!("field {}", crate::visible::visible(&field));
    let at = Timestamp::now().text();
    let actor: Actor = signed.user.actor(Via::Dashboard);
    app.store
        .audit(&crate::store::NewAuditEvent {
            at: &at,
            kind: "revealed",
            actor: actor.name(),
            via: actor.via().as_str(),
            upstream: Some(&row.upstream),
            tool: Some(&row.tool),
            call_id: Some(&row.id),
            args_digest: Some(&row.args_sha256),
            detail: Some(&detail),
        })
        .await?;
    tracing::info!(call = %id, reviewer = %signed.user.email, field = %field, "masked field revealed");
    let notice = Some((
        "warning",
        format!("Revealed {field} to you; the audit log records that you saw it."),
    ));
    Ok(render(&app, &signed, call, notice, Some((&field, &real)))
        .await?
        .into_response())
}

/// The call's status alone, for the call page's live check.
pub async fn status(
    State(app): State<AppState>,
    _signed: SignedIn,
    Path(id): Path<String>,
) -> PageResult<&'static str> {
    let id = call_id(&id)?;
    let row = app
        .store
        .call(&id)
        .await?
        .ok_or_else(|| PageError::not_found(&format!("There is no call {id}.")))?;
    Ok(row.status.as_str())
}
