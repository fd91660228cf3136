//! User administration (`/users`, admins only): add a user (with a generated password, shown once),
//! change a role, disable or enable, and reset a password (a new generated one, shown once).
//! Disabling a user or resetting a password ends their browser sessions; a disabled user's API
//! tokens stop working. The last enabled admin cannot be demoted or disabled.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::app::AppState;
use crate::secrets;
use crate::store::{Role, UserListing};
use crate::web::fields::{CHOICE, EMAIL, Text};
use crate::web::page::{Chrome, PageError, PageResult, short_time};
use crate::web::session::{CsrfForm, SignedIn};

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/users.html")]
pub struct UsersPage {
    chrome: Chrome,
    users: Vec<UserListing>,
    /// A generated password to hand over: (email, password), shown once.
    secret: Option<(String, String)>,
    notice: Option<(&'static str, String)>,
}

impl UsersPage {
    fn roles(&self) -> [&'static str; 3] {
        ["admin", "approver", "viewer"]
    }

    fn has_role(&self, user: &UserListing, role: &str) -> bool {
        user.role().as_str() == role
    }

    fn created(&self, user: &UserListing) -> String {
        short_time(&user.created_at)
    }
}

async fn render(
    app: &AppState,
    signed: &SignedIn,
    secret: Option<(String, String)>,
    notice: Option<(&'static str, String)>,
) -> PageResult {
    PageError::admin_only(signed)?;
    Ok(UsersPage {
        chrome: Chrome::new(signed, "users"),
        users: app.store.list_users().await?,
        secret,
        notice,
    }
    .into_response())
}

pub async fn page(State(app): State<AppState>, signed: SignedIn) -> PageResult {
    render(&app, &signed, None, None).await
}

/// A new generated password and its hash.
async fn new_password(app: &AppState) -> PageResult<(String, String)> {
    let password = secrets::generate_password()
        .map_err(|_| PageError::bad_request("The system's random number generator failed."))?;
    let hash = app
        .passwords
        .hash(password.clone())
        .await?
        .map_err(|e| PageError::bad_request(&e.to_string()))?;
    Ok((password, hash))
}

#[derive(Deserialize)]
pub struct AddForm {
    #[serde(default)]
    email: Text<EMAIL>,
    #[serde(default)]
    role: Text<CHOICE>,
}

pub async fn add(
    State(app): State<AppState>,
    CsrfForm(signed, form): CsrfForm<AddForm>,
) -> PageResult {
    PageError::admin_only(&signed)?;
    let email = form.email.trim().to_lowercase();
    if !crate::domain::is_plausible_email(&email) {
        let notice = ("error", format!("{email:?} is not an email address."));
        return render(&app, &signed, None, Some(notice)).await;
    }
    let role = Role::parse(&form.role).ok_or_else(|| PageError::bad_request("Choose a role."))?;
    let Some(user) = app.store.add_user(&email, role).await? else {
        let notice = ("error", format!("A user {email} already exists."));
        return render(&app, &signed, None, Some(notice)).await;
    };
    let (password, hash) = new_password(&app).await?;
    app.store.set_password_hash(&user.id, &hash).await?;
    tracing::info!(admin = %signed.user.email, user = %email, role = role.as_str(), "user added");
    let detail = format!("{email} as {}", role.as_str());
    crate::audit::record(
        &app.store,
        "user_added",
        &signed.user.actor(crate::domain::Via::Dashboard),
        Some(&detail),
    )
    .await?;
    render(&app, &signed, Some((email, password)), None).await
}

#[derive(Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: Text<CHOICE>,
}

pub async fn set_role(
    State(app): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(signed, form): CsrfForm<RoleForm>,
) -> PageResult {
    PageError::admin_only(&signed)?;
    let role = Role::parse(&form.role).ok_or_else(|| PageError::bad_request("Choose a role."))?;
    if !app.store.set_role(&id, role).await? {
        let notice = (
            "error",
            "That would leave no admin; make someone else admin first.".to_owned(),
        );
        return render(&app, &signed, None, Some(notice)).await;
    }
    tracing::info!(admin = %signed.user.email, user = %id, role = role.as_str(), "role changed");
    let detail = format!("user {id} to {}", role.as_str());
    crate::audit::record(
        &app.store,
        "role_changed",
        &signed.user.actor(crate::domain::Via::Dashboard),
        Some(&detail),
    )
    .await?;
    Ok(Redirect::to("/users").into_response())
}

#[derive(Deserialize)]
pub struct NoFields {}

pub async fn disable(
    State(app): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(signed, _): CsrfForm<NoFields>,
) -> PageResult {
    toggle(&app, &signed, &id, true).await
}

pub async fn enable(
    State(app): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(signed, _): CsrfForm<NoFields>,
) -> PageResult {
    toggle(&app, &signed, &id, false).await
}

async fn toggle(app: &AppState, signed: &SignedIn, id: &str, disabled: bool) -> PageResult {
    PageError::admin_only(signed)?;
    if !app.store.set_disabled(id, disabled).await? {
        let notice = (
            "error",
            "That would leave no admin; make someone else admin first.".to_owned(),
        );
        return render(app, signed, None, Some(notice)).await;
    }
    tracing::info!(admin = %signed.user.email, user = %id, disabled, "user access changed");
    let kind = if disabled {
        "user_disabled"
    } else {
        "user_enabled"
    };
    crate::audit::record(
        &app.store,
        kind,
        &signed.user.actor(crate::domain::Via::Dashboard),
        Some(id),
    )
    .await?;
    Ok(Redirect::to("/users").into_response())
}

/// An admin's reset of a user's password: the old one stops working (with the user's sessions
/// and API tokens), and the user is emailed a one-time link to set a new one. The admin never
/// sees a password, so resetting others cannot hand an admin their sign-ins (a quorum of
/// approvers stays a quorum of people). Without an SMTP server the link could reach nobody, so
/// the page says to use `airlock user password` on the server instead.
pub async fn reset_password(
    State(app): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(signed, _): CsrfForm<NoFields>,
) -> PageResult<Response> {
    PageError::admin_only(&signed)?;
    let users = app.store.list_users().await?;
    let user = users
        .iter()
        .find(|u| u.id == id)
        .ok_or_else(|| PageError::not_found("There is no such user."))?;
    let sends = app
        .config
        .email
        .as_ref()
        .is_some_and(|e| e.smtp_url.is_some());
    if !sends {
        let notice = (
            "error",
            format!(
                "Airlock sends no email here ([email] smtp_url is not set), so it cannot send {} a link to set a password. On the server: airlock user password {}",
                user.email, user.email
            ),
        );
        return render(&app, &signed, None, Some(notice)).await;
    }
    let mail = crate::notify::password::reset_mail(
        &user.email,
        &signed.user.email,
        &app.config.server.public_url,
    )
    .map_err(|e| {
        tracing::error!(error = %crate::telemetry::error_chain(&e), "cannot make a password email");
        PageError::unavailable("The email cannot be made right now; try again.")
    })?;
    app.store.reset_password(&id, &mail).await?;
    app.mail_queued.notify_one();
    tracing::info!(admin = %signed.user.email, user = %user.email, "password reset; link emailed");
    let detail = format!("{}; a set-password link was emailed", user.email);
    crate::audit::record(
        &app.store,
        "password_reset",
        &signed.user.actor(crate::domain::Via::Dashboard),
        Some(&detail),
    )
    .await?;
    let notice = (
        "ok",
        format!(
            "{} was emailed a link to set a new password (it works once, for 24 hours). Their old password, browser sessions and API tokens no longer work.",
            user.email
        ),
    );
    render(&app, &signed, None, Some(notice)).await
}
