//! Email review links (`/review/{token}`): GET shows the call and a confirmation form, POST makes
//! the decision, as the reviewer the link was made for, through `ApprovalQueue::decide` like every
//! other face (`via = email`), which spends the link in the decision's own transaction. Mail
//! scanners fetch links, so GET never decides.
//!
//! A link is a random token the store knows only by its SHA-256 (`notify::links`). One that was
//! edited, made up or made elsewhere, has expired, was already used, whose call's arguments are
//! not those it was made for, or whose call was already decided gets a page that says so, and
//! decides nothing. A reason is checked before the link is spent, so a rejection
//! sent without one can be sent again. With `[email] links_require_sign_in`, the browser must be
//! signed in as the link's reviewer.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;

use super::page::{PageError, PageResult, arguments_html};
use super::session::{form_from, signed_in_user};
use crate::app::AppState;
use crate::approval::decide::{self, MAX_REASON};
use crate::approval::{CallView, DecideError, Decided, Decision, Reviewer, RuleSnapshot};
use crate::domain::{Action, ArgsDigest, CallId, CallStatus, Via};
use crate::notify::links::BadLink;
use crate::store::ReviewLinkRow;
use crate::web::fields::Text;

#[derive(Template, WebTemplate, Default)]
#[template(path = "dashboard/review.html")]
pub struct ReviewPage {
    title: String,
    notice: Option<(&'static str, String)>,
    call: Option<CallView>,
    args_html: String,
    form_action: Option<&'static str>,
    reviewer: String,
    token: String,
    sign_in_url: Option<String>,
    view_url: Option<String>,
}

/// `public_url` without its trailing slash, for links to the dashboard.
fn base_url(app: &AppState) -> String {
    app.config
        .server
        .public_url
        .trim_end_matches('/')
        .to_owned()
}

/// A review page's URL holds a live token: it is never sent on as a referrer.
pub async fn no_referrer(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::REFERRER_POLICY,
        axum::http::HeaderValue::from_static("no-referrer"),
    );
    response
}

impl ReviewPage {
    fn rejecting(&self) -> bool {
        self.form_action == Some("reject")
    }
}

fn page(status: StatusCode, title: &str, class: &'static str, text: String) -> Response {
    let page = ReviewPage {
        title: title.to_owned(),
        notice: Some((class, text)),
        ..ReviewPage::default()
    };
    (status, page).into_response()
}

/// The call page of `view`, shown under `title` with a notice.
fn with_call(
    title: &str,
    class: &'static str,
    text: String,
    call: CallView,
    base: &str,
) -> ReviewPage {
    ReviewPage {
        title: title.to_owned(),
        notice: Some((class, text)),
        args_html: arguments_html(&call.arguments),
        view_url: Some(format!("{base}/calls/{}", call.id)),
        call: Some(call),
        ..ReviewPage::default()
    }
}

/// What a link decides, read from its stored row.
struct Claims {
    token_sha256: String,
    call: CallId,
    reviewer: String,
    action: Action,
    digest: ArgsDigest,
}

/// What a link's checks found.
enum Checked {
    /// The link can decide: its claims and call.
    Usable(Claims, Box<CallView>),
    /// A page that says why not.
    Refused(Response),
}

fn claims_of(row: ReviewLinkRow) -> (Claims, bool) {
    (
        Claims {
            token_sha256: row.token_sha256,
            call: row.call_id,
            reviewer: row.reviewer,
            action: row.action,
            digest: row.args_digest,
        },
        row.used_at.is_some(),
    )
}

/// A page's verdict on a link: its status, title and notice.
struct Notice {
    status: StatusCode,
    title: &'static str,
    class: &'static str,
    text: String,
}

impl Notice {
    fn new(status: StatusCode, title: &'static str, class: &'static str, text: String) -> Self {
        Self {
            status,
            title,
            class,
            text,
        }
    }

    /// The notice alone (no call to show).
    fn page(self) -> Response {
        page(self.status, self.title, self.class, self.text)
    }

    /// The notice over the call it is about.
    fn with_call(self, call: CallView, base: &str) -> Response {
        let shown = with_call(self.title, self.class, self.text, call, base);
        (self.status, shown).into_response()
    }
}

const USED: &str = "This link was already used; it works once. Nothing more was decided.";

async fn check(app: &AppState, headers: &HeaderMap, token: &str) -> PageResult<Checked> {
    let found = crate::notify::links::find(&app.store, token)
        .await?
        .map(claims_of);
    let (claims, used) = match found {
        Ok(found) => found,
        Err(bad) => return Ok(Checked::Refused(bad_link(bad).page())),
    };
    if let Some(response) = sign_in_needed(app, headers, &claims, token).await? {
        return Ok(Checked::Refused(response));
    }
    let row = app
        .store
        .call(&claims.call)
        .await?
        .ok_or_else(|| PageError::not_found("The call this link is for does not exist."))?;
    let rule = RuleSnapshot::read(&row.rule_json);
    let approvals = app.store.approvals(&claims.call).await?;
    let call = CallView::new(row, approvals, None);
    match unusable(app, &claims, used, &call, rule.as_ref()).await? {
        Some(notice) => Ok(Checked::Refused(notice.with_call(call, &base_url(app)))),
        None => Ok(Checked::Usable(claims, Box::new(call))),
    }
}

/// What a token that names no usable link gets.
fn bad_link(bad: BadLink) -> Notice {
    match bad {
        BadLink::Unknown => Notice::new(
            StatusCode::BAD_REQUEST,
            "This link is not valid",
            "error",
            "The link was changed or cut short, or was not made by this Airlock. Nothing was decided. Open the call from the dashboard instead.".to_owned(),
        ),
        BadLink::Expired => Notice::new(
            StatusCode::GONE,
            "This link has expired",
            "error",
            "Review links work only until their call expires. Nothing was decided.".to_owned(),
        ),
    }
}

/// Why a link that exists cannot decide its call now: used, the call decided, its arguments
/// changed, or its reviewer no longer allowed (enabled, a deciding role, named by the rule).
async fn unusable(
    app: &AppState,
    claims: &Claims,
    used: bool,
    call: &CallView,
    rule: Option<&RuleSnapshot>,
) -> PageResult<Option<Notice>> {
    if used {
        let notice = Notice::new(
            StatusCode::CONFLICT,
            "This link was already used",
            "warning",
            USED.to_owned(),
        );
        return Ok(Some(notice));
    }
    if call.status != CallStatus::Pending {
        let text = format!(
            "This call is no longer waiting: it was {}. Nothing was decided.",
            call.status
        );
        return Ok(Some(Notice::new(
            StatusCode::CONFLICT,
            "Already decided",
            "warning",
            text,
        )));
    }
    if call.args_digest != claims.digest.as_str() {
        let text = "The call's arguments are not the ones this link was made for. Nothing was decided; look at the call in the dashboard.".to_owned();
        return Ok(Some(Notice::new(
            StatusCode::CONFLICT,
            "This link does not match the call",
            "error",
            text,
        )));
    }
    let user = app.store.user_by_email(&claims.reviewer).await?;
    let allowed = match (&user, rule) {
        (Some(user), Some(rule)) => {
            decide::may_decide(Reviewer::User(user), rule, &app.config.groups)
        }
        _ => Err(DecideError::Forbidden(format!(
            "{} is no longer an Airlock user",
            claims.reviewer
        ))),
    };
    Ok(allowed.err().map(|why| {
        Notice::new(
            StatusCode::FORBIDDEN,
            "This link cannot decide",
            "error",
            format!("{why}. Nothing was decided."),
        )
    }))
}

/// With `links_require_sign_in`, the page asking to sign in as the link's reviewer first.
async fn sign_in_needed(
    app: &AppState,
    headers: &HeaderMap,
    claims: &Claims,
    token: &str,
) -> PageResult<Option<Response>> {
    let required = app
        .config
        .email
        .as_ref()
        .is_some_and(|e| e.links_require_sign_in);
    if !required {
        return Ok(None);
    }
    let signed = signed_in_user(app, headers).await?;
    if signed.is_some_and(|user| user.email == claims.reviewer) {
        return Ok(None);
    }
    let next: String =
        url::form_urlencoded::byte_serialize(format!("/review/{token}").as_bytes()).collect();
    let shown = ReviewPage {
        title: "Sign in first".to_owned(),
        notice: Some((
            "warning",
            format!(
                "This Airlock wants review links used by a browser signed in as {}.",
                claims.reviewer
            ),
        )),
        reviewer: claims.reviewer.clone(),
        sign_in_url: Some(format!("/login?next={next}")),
        ..ReviewPage::default()
    };
    Ok(Some((StatusCode::UNAUTHORIZED, shown).into_response()))
}

pub async fn confirm(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> PageResult<Response> {
    let (claims, call) = match check(&app, &headers, &token).await? {
        Checked::Usable(claims, call) => (claims, *call),
        Checked::Refused(response) => return Ok(response),
    };
    let action = claims.action.as_str();
    let base = base_url(&app);
    let mut shown = with_call(
        if claims.action == Action::Approve {
            "Approve this call?"
        } else {
            "Reject this call?"
        },
        "info",
        format!(
            "You are about to {action} this call as {}.",
            claims.reviewer
        ),
        call,
        &base,
    );
    shown.form_action = Some(action);
    shown.reviewer = claims.reviewer;
    shown.token = token;
    Ok(shown.into_response())
}

#[derive(Deserialize, Default)]
struct ReasonForm {
    #[serde(default)]
    reason: Text<MAX_REASON>,
}

pub async fn decide(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
    body: Bytes,
) -> PageResult<Response> {
    if !app.origins.permits(&headers) {
        return Err(PageError::forbidden(
            "This form was sent from another site.",
        ));
    }
    let form: ReasonForm = form_from(&body)?;
    let (claims, call) = match check(&app, &headers, &token).await? {
        Checked::Usable(claims, call) => (claims, *call),
        Checked::Refused(response) => return Ok(response),
    };
    let reason = form.reason.trim();
    let base = base_url(&app);
    if claims.action == Action::Reject && reason.is_empty() {
        // The reason is checked before anything is recorded: the link can be used again.
        let mut shown = with_call(
            "Reject this call?",
            "error",
            "A rejection needs a reason; the agent is shown it.".to_owned(),
            call,
            &base,
        );
        shown.form_action = Some("reject");
        shown.reviewer = claims.reviewer;
        shown.token = token;
        return Ok((StatusCode::BAD_REQUEST, shown).into_response());
    }
    let user = app
        .store
        .user_by_email(&claims.reviewer)
        .await?
        .ok_or_else(|| {
            PageError::forbidden(&format!(
                "{} is no longer an Airlock user.",
                claims.reviewer
            ))
        })?;
    let decision = Decision {
        action: claims.action,
        reviewer: Reviewer::User(&user),
        via: Via::Email,
        reason: (!reason.is_empty()).then_some(reason),
        args_digest: Some(&claims.digest),
        link: Some(&claims.token_sha256),
    };
    let notice = outcome(app.approvals.decide(&claims.call, decision).await)?;
    let after = match app.store.call(&claims.call).await? {
        Some(row) => {
            let approvals = app.store.approvals(&claims.call).await?;
            CallView::new(row, approvals, None)
        }
        None => call,
    };
    Ok(notice.with_call(after, &base))
}

/// What the reviewer reads once their decision was tried.
fn outcome(decided: Result<Decided, DecideError>) -> PageResult<Notice> {
    let (status, title, class, text) = match decided {
        Ok(decided) => (StatusCode::OK, "Done", "ok", done_text(decided)),
        Err(DecideError::NotPending { status, .. }) => (
            StatusCode::CONFLICT,
            "Already decided",
            "warning",
            format!(
                "Too late: the call had already {}. Nothing was changed.",
                status.as_str()
            ),
        ),
        Err(DecideError::LinkUsed) => (
            StatusCode::CONFLICT,
            "This link was already used",
            "warning",
            USED.to_owned(),
        ),
        Err(
            e @ (DecideError::AlreadyApproved { .. }
            | DecideError::DigestMismatch
            | DecideError::ReasonRequired),
        ) => (
            StatusCode::CONFLICT,
            "Nothing was decided",
            "warning",
            e.to_string(),
        ),
        Err(e) => return Err(crate::web::AppError::from(e).into()),
    };
    Ok(Notice::new(status, title, class, text))
}

/// What the reviewer reads once their decision is recorded.
fn done_text(decided: Decided) -> String {
    match decided {
        Decided::Released => "Approved. The call is released to the agent.".to_owned(),
        Decided::Counted { have, need } => {
            format!("Your approval is counted ({have} of {need}); the call needs more.")
        }
        Decided::Rejected => "Rejected. The agent is told your reason.".to_owned(),
    }
}
