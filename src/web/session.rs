//! Reviewers' browser sessions: the cookie, the signed-in extractor, and CSRF-checked forms.
//!
//! A session cookie is 32 random bytes; the store keeps only its SHA-256, with the session's CSRF
//! token. The cookie is `HttpOnly`, `SameSite=Lax` (a link from an email still arrives signed in)
//! and, when `public_url` is https, `Secure` with the `__Host-` prefix. Every state-changing form
//! goes through [`CsrfForm`], which checks the session, the `Origin` header when a browser sends one,
//! and the form's `csrf` field against the session's token, before the handler sees the form. The
//! sign-in form, which has no session yet, carries a double-submit token instead (a cookie and a
//! field that must match).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::page::PageError;
use crate::app::AppState;
use crate::secrets;
use crate::secrets::same_token;
use crate::store::User;

/// A signed-in reviewer, and the CSRF token their forms carry.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: User,
    pub csrf: String,
    cookie_sha256: String,
}

impl SignedIn {
    pub fn cookie_sha256(&self) -> &str {
        &self.cookie_sha256
    }
}

/// The names and attributes of Airlock's cookies, which depend on whether `public_url` is https.
pub struct Cookies {
    secure: bool,
}

impl Cookies {
    pub fn of(app: &AppState) -> Self {
        Self {
            secure: app.config.server.public_url.starts_with("https://"),
        }
    }

    pub fn session_name(&self) -> &'static str {
        if self.secure {
            "__Host-airlock_session"
        } else {
            "airlock_session"
        }
    }

    pub fn login_name(&self) -> &'static str {
        if self.secure {
            "__Host-airlock_login"
        } else {
            "airlock_login"
        }
    }

    /// A `Set-Cookie` value for `name=value` living `max_age` seconds (0 deletes it).
    pub fn set(&self, name: &str, value: &str, max_age: u64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text =
            format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}");
        // Names are constants and values are hex: always a valid header value.
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The value of cookie `name` in `headers`, if sent.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// What happens to a request that needs a sign-in and has none: pages send the browser to the
/// sign-in page (and back afterwards); the live feed answers 401.
pub enum NotSignedIn {
    Redirect { next: String },
    Unauthorized,
    Store(PageError),
}

impl IntoResponse for NotSignedIn {
    fn into_response(self) -> Response {
        match self {
            Self::Redirect { next } => {
                let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
                Redirect::to(&format!("/login?next={next}")).into_response()
            }
            Self::Unauthorized => {
                (axum::http::StatusCode::UNAUTHORIZED, "sign in first\n").into_response()
            }
            Self::Store(e) => e.into_response(),
        }
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = NotSignedIn;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let required = || {
            if parts.uri.path() == "/events" {
                return NotSignedIn::Unauthorized;
            }
            NotSignedIn::Redirect {
                // After signing in, a page comes back; a form's target would be a bare GET.
                next: parts
                    .uri
                    .path_and_query()
                    .filter(|_| parts.method == Method::GET)
                    .map_or_else(|| "/".to_owned(), ToString::to_string),
            }
        };
        let Some(cookie) = cookie(&parts.headers, Cookies::of(app).session_name()) else {
            return Err(required());
        };
        let cookie_sha256 = secrets::sha256_hex(cookie.as_bytes());
        match app
            .store
            .session(&cookie_sha256)
            .await
            .map_err(|e| NotSignedIn::Store(e.into()))?
        {
            Some(session) => Ok(Self {
                user: session.user,
                csrf: session.csrf,
                cookie_sha256,
            }),
            None => Err(required()),
        }
    }
}

/// The user signed in on this browser, if any (for pages that work either way).
pub async fn signed_in_user(
    app: &AppState,
    headers: &HeaderMap,
) -> Result<Option<User>, PageError> {
    let Some(cookie) = cookie(headers, Cookies::of(app).session_name()) else {
        return Ok(None);
    };
    let session = app
        .store
        .session(&secrets::sha256_hex(cookie.as_bytes()))
        .await
        .map_err(PageError::from)?;
    Ok(session.map(|s| s.user))
}

/// A submitted dashboard form of a signed-in reviewer whose CSRF token and origin checked out.
pub struct CsrfForm<T>(pub SignedIn, pub T);

#[derive(Deserialize)]
struct WithCsrf<T> {
    #[serde(default)]
    csrf: super::fields::Text<{ super::fields::CHOICE }>,
    #[serde(flatten)]
    form: T,
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, app: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let signed = SignedIn::from_request_parts(&mut parts, app)
            .await
            .map_err(IntoResponse::into_response)?;
        if !app.origins.permits(&parts.headers) {
            return Err(
                PageError::forbidden("This form was sent from another site.").into_response(),
            );
        }
        let bytes = axum::body::to_bytes(body, super::fields::MAX_BODY_BYTES)
            .await
            .map_err(|_| PageError::bad_request("The form is too large.").into_response())?;
        let WithCsrf { csrf, form } = form_from(&bytes).map_err(IntoResponse::into_response)?;
        if !same_token(&csrf, &signed.csrf) {
            return Err(PageError::forbidden(
                "The form's security token is missing or out of date. Reload the page and try again.",
            )
            .into_response());
        }
        Ok(Self(signed, form))
    }
}

/// Parses a form body, with a page for a malformed one.
pub fn form_from<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, PageError> {
    serde_urlencoded::from_bytes(bytes)
        .map_err(|e| PageError::bad_request(&format!("The form could not be read: {e}")))
}
