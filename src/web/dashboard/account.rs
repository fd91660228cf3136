//! The signed-in reviewer's own page (`/account`): change the password, and personal API tokens
//! for the JSON API (created and shown once, listed by label, revoked).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use crate::app::AppState;
use crate::secrets;
use crate::store::TokenListing;
use crate::web::fields::{LABEL, PASSWORD, Text};
use crate::web::page::{Chrome, PageError, PageResult, short_time};
use crate::web::session::{CsrfForm, SignedIn};

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/account.html")]
pub struct AccountPage {
    chrome: Chrome,
    tokens: Vec<TokenListing>,
    new_token: Option<String>,
    notice: Option<(&'static str, String)>,
}

impl AccountPage {
    fn when(&self, at: &str) -> String {
        short_time(at)
    }
}

async fn render(
    app: &AppState,
    signed: &SignedIn,
    new_token: Option<String>,
    notice: Option<(&'static str, String)>,
) -> PageResult {
    Ok(AccountPage {
        chrome: Chrome::new(signed, "account"),
        tokens: app.store.user_tokens(&signed.user.id).await?,
        new_token,
        notice,
    }
    .into_response())
}

pub async fn page(State(app): State<AppState>, signed: SignedIn) -> PageResult {
    render(&app, &signed, None, None).await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: Text<PASSWORD>,
    #[serde(default)]
    new: Text<PASSWORD>,
    #[serde(default)]
    confirm: Text<PASSWORD>,
}

pub async fn change_password(
    State(app): State<AppState>,
    CsrfForm(signed, form): CsrfForm<PasswordForm>,
) -> PageResult {
    if form.new != form.confirm {
        let notice = (
            "error",
            "The new password and its confirmation differ.".to_owned(),
        );
        return render(&app, &signed, None, Some(notice)).await;
    }
    let stored = app.store.password_hash(&signed.user.email).await?;
    let matches = match stored {
        Some((_, hash)) => {
            app.passwords
                .verify(form.current.into_string(), hash)
                .await?
        }
        None => false,
    };
    if !matches {
        let notice = ("error", "The current password is not right.".to_owned());
        return render(&app, &signed, None, Some(notice)).await;
    }
    let hash = match app.passwords.hash(form.new.into_string()).await? {
        Ok(hash) => hash,
        Err(e) => return render(&app, &signed, None, Some(("error", format!("{e}.")))).await,
    };
    // Every session of this user ends, this one included, and their API tokens: sign in again
    // with the new password.
    app.store.change_password(&signed.user.id, &hash).await?;
    tracing::info!(email = %signed.user.email, "password changed");
    crate::audit::record(
        &app.store,
        "password_changed",
        &signed.user.actor(crate::domain::Via::Dashboard),
        None,
    )
    .await?;
    Ok(Redirect::to("/login?changed=1").into_response())
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    label: Text<LABEL>,
}

pub async fn create_token(
    State(app): State<AppState>,
    CsrfForm(signed, form): CsrfForm<TokenForm>,
) -> PageResult {
    let token = secrets::generate_token()
        .map_err(|_| PageError::bad_request("The system's random number generator failed."))?;
    let label = form.label.trim();
    app.store
        .add_labelled_user_token(
            &signed.user,
            &secrets::sha256_hex(token.as_bytes()),
            (!label.is_empty()).then_some(label),
        )
        .await?;
    tracing::info!(email = %signed.user.email, "API token created");
    crate::audit::record(
        &app.store,
        "token_created",
        &signed.user.actor(crate::domain::Via::Dashboard),
        label_detail(label).as_deref(),
    )
    .await?;
    render(&app, &signed, Some(token), None).await
}

#[derive(Deserialize)]
pub struct NoFields {}

/// A token's label for the audit log.
fn label_detail(label: &str) -> Option<String> {
    (!label.is_empty()).then(|| format!("label {label}"))
}

pub async fn revoke_token(
    State(app): State<AppState>,
    Path(id): Path<String>,
    CsrfForm(signed, _): CsrfForm<NoFields>,
) -> PageResult {
    if !app.store.revoke_user_token(&signed.user.id, &id).await? {
        return Err(PageError::not_found(
            "You have no such token, or it is already revoked.",
        ));
    }
    tracing::info!(email = %signed.user.email, token = %id, "API token revoked");
    crate::audit::record(
        &app.store,
        "token_revoked",
        &signed.user.actor(crate::domain::Via::Dashboard),
        Some(&id),
    )
    .await?;
    Ok(Redirect::to("/account").into_response())
}
