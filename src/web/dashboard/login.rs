//! Signing in and out. A sign-in checks the password against its argon2id hash off the async
//! threads; unknown emails are checked against a dummy hash so timing does not tell who has an
//! account. After `login_max_failures` failures for one email, or `login_max_failures_per_client`
//! from one client address (whatever the emails), within `login_lockout` seconds, further
//! attempts are refused (429) until the oldest failure ages out, whether or not the password is
//! right; the message says when to try again. Known and unknown emails get the same answers. The
//! form's fields are bounded before anything else happens (an email is at most 254 bytes), and
//! failed sign-ins reach the audit log at most 100 an hour one by one (`audit::sign_ins`).

use std::sync::LazyLock;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;
use serde::Deserialize;

use crate::app::AppState;
use crate::secrets;
use crate::secrets::same_token;
use crate::web::client::ClientAddr;
use crate::web::fields::{CHOICE, EMAIL, OTHER, PASSWORD, Text};
use crate::web::page::{PageError, PageResult, seconds_until};
use crate::web::session::{Cookies, CsrfForm, cookie, form_from};

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/login.html")]
struct LoginPage {
    csrf: String,
    next: String,
    email: String,
    error: Option<String>,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<Text<OTHER>>,
    changed: Option<Text<CHOICE>>,
}

/// Only a path on this site, else `/`: `//evil.example`, `/\evil.example` or `https://...` would
/// send the reviewer away, and browsers drop tabs and newlines before reading a URL, so
/// `/<TAB>/evil.example` is refused too (as is any control character or space).
fn safe_next(next: Option<&str>) -> String {
    const HOME: &str = "http://airlock.invalid";
    let Some(path) = next else {
        return "/".to_owned();
    };
    let plain = path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.chars().any(|c| c.is_control() || c.is_whitespace());
    // What a browser would make of it, resolved against a stand-in origin: still that origin.
    let stays_here = url::Url::parse(HOME).is_ok_and(|home| {
        home.join(path)
            .is_ok_and(|joined| joined.origin() == home.origin())
    });
    if plain && stays_here {
        path.to_owned()
    } else {
        "/".to_owned()
    }
}

/// The sign-in form, with a fresh double-submit token in a cookie and in the form.
pub async fn form(State(app): State<AppState>, Query(query): Query<NextQuery>) -> PageResult {
    let notice = query
        .changed
        .is_some()
        .then_some("Your password is changed. Sign in with the new one.");
    let next = safe_next(query.next.as_deref());
    page(
        &app,
        Shown {
            next,
            notice,
            ..Shown::default()
        },
        StatusCode::OK,
    )
}

/// What the sign-in page shows besides the form.
#[derive(Default)]
struct Shown {
    next: String,
    email: String,
    error: Option<String>,
    notice: Option<&'static str>,
}

fn page(app: &AppState, shown: Shown, status: StatusCode) -> PageResult {
    with_form_token(app, |csrf| {
        (
            status,
            LoginPage {
                csrf,
                next: shown.next,
                email: shown.email,
                error: shown.error,
                notice: shown.notice,
            },
        )
    })
}

/// A page with a form that has no session yet (sign-in, set-password): `render` gets a fresh
/// double-submit token for its form, and the response sets the same token as a cookie.
fn with_form_token<R: IntoResponse>(
    app: &AppState,
    render: impl FnOnce(String) -> R,
) -> PageResult {
    let csrf =
        secrets::generate_session_id().map_err(|_| PageError::bad_request("no randomness"))?;
    let cookies = Cookies::of(app);
    let mut response = render(csrf.clone()).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookies.set(cookies.login_name(), &csrf, 3600),
    );
    Ok(response)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: Text<CHOICE>,
    #[serde(default)]
    next: Text<OTHER>,
    #[serde(default)]
    email: Text<EMAIL>,
    #[serde(default)]
    password: Text<PASSWORD>,
}

/// A hash of a random password, verified against when the email has no account.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    secrets::generate_password()
        .ok()
        .and_then(|password| secrets::hash_password(&password).ok())
        .unwrap_or_default()
});

/// The sign-in page again, with why the attempt was refused.
fn refuse(
    app: &AppState,
    next: String,
    email: String,
    error: String,
    status: StatusCode,
) -> PageResult {
    let shown = Shown {
        next,
        email,
        error: Some(error),
        notice: None,
    };
    page(app, shown, status)
}

/// Whose failures locked a sign-in out.
#[derive(Clone, Copy)]
enum Lockout {
    Account,
    Client,
}

/// The page refusing a sign-in for too many failures, saying when to try again.
fn locked(
    app: &AppState,
    next: String,
    email: String,
    (whose, oldest): (Lockout, Option<String>),
    window: time::Duration,
) -> PageResult {
    let wait = oldest.map_or(0, |at| seconds_until(&at)) + window.whole_seconds();
    let minutes = (wait.max(1) + 59) / 60;
    let whose = match whose {
        Lockout::Account => "for this account",
        Lockout::Client => "from this address",
    };
    tracing::warn!(email = %email, "sign-in refused: too many failures {whose}");
    let error = format!("Too many failed sign-ins {whose}. Try again in {minutes} min.");
    refuse(app, next, email, error, StatusCode::TOO_MANY_REQUESTS)
}

/// The lockout in force for `email` from `client` once the failures counted so far are
/// `over` their limits (`>=` before an attempt is counted, `>` after), if any.
async fn lockout(
    app: &AppState,
    email: &str,
    client: &str,
    window: time::Duration,
    over: fn(i64, i64) -> bool,
) -> PageResult<Option<(Lockout, Option<String>)>> {
    let dashboard = &app.config.dashboard;
    let (failures, oldest) = app.store.login_failures(email, window).await?;
    if over(failures, i64::from(dashboard.login_max_failures)) {
        return Ok(Some((Lockout::Account, oldest)));
    }
    let (failures, oldest) = app.store.client_login_failures(client, window).await?;
    if over(failures, i64::from(dashboard.login_max_failures_per_client)) {
        return Ok(Some((Lockout::Client, oldest)));
    }
    Ok(None)
}

pub async fn submit(
    State(app): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let form: LoginForm = form_from(&body)?;
    let cookies = Cookies::of(&app);
    let next = safe_next(Some(&form.next));
    let email = form.email.trim().to_lowercase();
    let sent = cookie(&headers, cookies.login_name()).unwrap_or_default();
    if !app.origins.permits(&headers) || sent.is_empty() || !same_token(sent, &form.csrf) {
        let error = "The sign-in form expired. Please try again.".to_owned();
        return refuse(&app, next, email, error, StatusCode::FORBIDDEN);
    }
    let window = time::Duration::seconds(
        i64::try_from(app.config.dashboard.login_lockout).unwrap_or(i64::MAX),
    );
    // Refused before it counts, so hammering a locked account does not extend the lockout ...
    if let Some(lock) = lockout(&app, &email, &client, window, |n, max| n >= max).await? {
        return locked(&app, next, email, lock, window);
    }
    // ... and counted before the check, so parallel guesses cannot all slip under the limit.
    app.store
        .record_login_attempt(&email, &client, window)
        .await?;
    if let Some(lock) = lockout(&app, &email, &client, window, |n, max| n > max).await? {
        return locked(&app, next, email, lock, window);
    }
    let stored = app.store.password_hash(&email).await?;
    let (user, hash) = match stored {
        Some((user, hash)) => (Some(user), hash),
        None => (None, DUMMY_HASH.clone()),
    };
    let matches = app
        .passwords
        .verify(form.password.into_string(), hash)
        .await?;
    let Some(user) = user.filter(|_| matches) else {
        tracing::info!(email = %email, client = %client, "failed sign-in");
        app.failed_sign_ins
            .record(&app.store, &email, &client)
            .await?;
        let error = "Wrong email or password.".to_owned();
        return refuse(&app, next, email, error, StatusCode::UNAUTHORIZED);
    };
    app.store.clear_login_failures(&email).await?;
    // A session this browser had before ends: a signed-in browser gets a new cookie.
    let previous =
        cookie(&headers, cookies.session_name()).map(|c| secrets::sha256_hex(c.as_bytes()));
    app.store.end_session(previous.as_deref()).await?;
    let session = secrets::generate_token().map_err(|_| PageError::bad_request("no randomness"))?;
    let csrf =
        secrets::generate_session_id().map_err(|_| PageError::bad_request("no randomness"))?;
    let ttl = app.config.dashboard.session_ttl;
    app.store
        .create_session(
            &secrets::sha256_hex(session.as_bytes()),
            &user,
            &csrf,
            time::Duration::seconds(i64::try_from(ttl).unwrap_or(i64::MAX)),
        )
        .await?;
    tracing::info!(email = %user.email, "signed in");
    crate::audit::record(
        &app.store,
        "sign_in",
        &user.actor(crate::domain::Via::Dashboard),
        None,
    )
    .await?;
    let mut response = Redirect::to(&next).into_response();
    let set = response.headers_mut();
    set.append(
        header::SET_COOKIE,
        cookies.set(cookies.session_name(), &session, ttl),
    );
    set.append(header::SET_COOKIE, cookies.set(cookies.login_name(), "", 0));
    Ok(response)
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/set_password.html")]
struct SetPasswordPage {
    csrf: String,
    token: String,
    /// The user the link is for; `None` when the link cannot be used.
    email: Option<String>,
    error: Option<String>,
}

/// The set-password page for `token` (with a fresh double-submit token, as the sign-in form).
fn set_password_page(
    app: &AppState,
    token: String,
    email: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> PageResult {
    with_form_token(app, |csrf| {
        (
            status,
            SetPasswordPage {
                csrf,
                token,
                email,
                error,
            },
        )
    })
}

const DEAD_LINK: &str = "This link does not work: it was used, has expired, or a newer one was sent. Ask an admin for a new one.";

/// `GET /set-password/{token}`: the form to set a new password, from the link an admin's reset
/// emailed (see `notify::password`).
pub async fn set_password_form(
    State(app): State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> PageResult {
    let user = app
        .store
        .password_link_user(&secrets::sha256_hex(token.as_bytes()))
        .await?;
    match user {
        Some(user) => set_password_page(&app, token, Some(user.email), None, StatusCode::OK),
        None => set_password_page(
            &app,
            token,
            None,
            Some(DEAD_LINK.to_owned()),
            StatusCode::GONE,
        ),
    }
}

#[derive(Deserialize)]
struct SetPasswordForm {
    #[serde(default)]
    csrf: Text<CHOICE>,
    #[serde(default)]
    new: Text<PASSWORD>,
    #[serde(default)]
    confirm: Text<PASSWORD>,
}

/// `POST /set-password/{token}`: spends the link and sets the password (the user's sessions and
/// API tokens end), then sends them to sign in.
pub async fn set_password(
    State(app): State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let form: SetPasswordForm = form_from(&body)?;
    let digest = secrets::sha256_hex(token.as_bytes());
    let Some(user) = app.store.password_link_user(&digest).await? else {
        return set_password_page(
            &app,
            token,
            None,
            Some(DEAD_LINK.to_owned()),
            StatusCode::GONE,
        );
    };
    let sent = cookie(&headers, Cookies::of(&app).login_name()).unwrap_or_default();
    let again = |error: &str, status| {
        set_password_page(
            &app,
            token.clone(),
            Some(user.email.clone()),
            Some(error.to_owned()),
            status,
        )
    };
    if !app.origins.permits(&headers) || sent.is_empty() || !same_token(sent, &form.csrf) {
        return again("The form expired. Please try again.", StatusCode::FORBIDDEN);
    }
    if *form.new != *form.confirm {
        return again("The two passwords differ.", StatusCode::BAD_REQUEST);
    }
    let hash = match app.passwords.hash(form.new.into_string()).await? {
        Ok(hash) => hash,
        Err(e) => return again(&format!("{e}."), StatusCode::BAD_REQUEST),
    };
    let Some(user) = app.store.set_password_by_link(&digest, &hash).await? else {
        return set_password_page(
            &app,
            token,
            None,
            Some(DEAD_LINK.to_owned()),
            StatusCode::GONE,
        );
    };
    tracing::info!(email = %user.email, "password set with an emailed link");
    crate::audit::record(
        &app.store,
        "password_set",
        &user.actor(crate::domain::Via::Email),
        None,
    )
    .await?;
    Ok(Redirect::to("/login?changed=1").into_response())
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn logout(
    State(app): State<AppState>,
    CsrfForm(signed, _): CsrfForm<Empty>,
) -> PageResult<Response> {
    app.store.end_session(Some(signed.cookie_sha256())).await?;
    tracing::info!(email = %signed.user.email, "signed out");
    let cookies = Cookies::of(&app);
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookies.set(cookies.session_name(), "", 0),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_paths_on_this_site_are_followed_after_sign_in() {
        for good in ["/", "/calls/abc?done=1", "/history?q=a%20b"] {
            assert_eq!(safe_next(Some(good)), good);
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "https://evil.example/",
            "evil.example",
            "/ /evil.example",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
