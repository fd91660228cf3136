//! The reviewers' dashboard: server-rendered askama pages behind a password sign-in. Every page is
//! usable with JavaScript off (decisions are plain form posts); the script only adds live updates,
//! countdowns and browser notifications. Routes (all but `/login` need a signed-in session; every
//! POST goes through `CsrfForm`):
//!
//! ```text
//! GET  /login  POST /login  POST /logout  GET|POST /set-password/{token} (an admin's reset, emailed)
//! GET  /                 pending queue          GET /queue/rows       its rows, for live updates
//! GET  /calls/{id}       one call               POST /calls/{id}/decide   approve | reject
//!                                               POST /calls/{id}/reveal   one masked field (audited)
//! GET  /calls/{id}/status                       GET /history  GET /history/export
//! GET  /history/events   the audit log          GET /history/events/export  (jsonl | csv)
//! GET  /tools            upstreams' tools and rules
//! GET  /users (admin)    POST /users/add  /users/{id}/role  /users/{id}/disable  /users/{id}/enable  /users/{id}/password
//! GET  /outbox (admin)   GET /outbox/{id}  GET /outbox/{id}/html   queued email
//! GET  /account          POST /account/password  /account/tokens  /account/tokens/{id}/revoke
//! ```

mod account;
mod audit_log;
mod call;
pub(crate) mod chart;
mod history;
mod login;
mod outbox;
mod queue;
mod tools;
mod users;

use axum::Router;
use axum::routing::{get, post};

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route(
            "/set-password/{token}",
            get(login::set_password_form)
                .post(login::set_password)
                .layer(axum::middleware::map_response(super::review::no_referrer)),
        )
        .route("/", get(queue::page))
        .route("/queue/rows", get(queue::fragment))
        .route("/calls/{id}", get(call::page))
        .route("/calls/{id}/status", get(call::status))
        .route("/calls/{id}/decide", post(call::decide))
        .route("/calls/{id}/reveal", post(call::reveal))
        .route("/history", get(history::page))
        .route("/history/export", get(history::export))
        .route("/history/events", get(audit_log::page))
        .route("/history/events/export", get(audit_log::export))
        .route("/tools", get(tools::page))
        .route("/tools/{upstream}/{tool}/accept", post(tools::accept))
        .route("/users", get(users::page))
        .route("/users/add", post(users::add))
        .route("/users/{id}/role", post(users::set_role))
        .route("/users/{id}/disable", post(users::disable))
        .route("/users/{id}/enable", post(users::enable))
        .route("/users/{id}/password", post(users::reset_password))
        .route("/outbox", get(outbox::page))
        .route("/outbox/{id}", get(outbox::show))
        .route("/outbox/{id}/html", get(outbox::html))
        .route("/account", get(account::page))
        .route("/account/password", post(account::change_password))
        .route("/account/tokens", post(account::create_token))
        .route("/account/tokens/{id}/revoke", post(account::revoke_token))
}
