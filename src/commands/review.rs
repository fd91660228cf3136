//! Reviewer commands: users and their API tokens, and deciding calls from the command line.
//! Decisions write to the store directly (the operator has the config and the database); a
//! running Airlock notices them within `approval::POLL`.

use std::fmt::Write;
use std::path::Path;

use super::CommandError;
use crate::approval::{ApprovalQueue, CallView, Decided, Decision, Reviewer};
use crate::config::Config;
use crate::domain::{Action, CallId, CallStatus, Via};
use crate::secrets;
use crate::store::{Role, Store, User};

/// How many characters of a call's arguments `airlock pending` shows.
const ARGS_PREVIEW: usize = 60;

async fn open(config_path: &Path) -> Result<(Config, Store), CommandError> {
    let config = Config::load(config_path)?;
    let store = Store::open(&config.database).await?;
    Ok((config, store))
}

fn check_email(email: &str) -> Result<(), CommandError> {
    if crate::domain::is_plausible_email(email) {
        Ok(())
    } else {
        Err(CommandError::Invalid(format!(
            "{email:?} is not an email address"
        )))
    }
}

/// Agent-controlled text (tool names, arguments) shown on a terminal, with control characters
/// escaped: a name carrying `\r` or an ANSI sequence must not redraw the table the operator reads.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// `airlock user add EMAIL --role ROLE [--password-stdin]`. The user signs in to the dashboard
/// with the password read from `password` (stdin), or else with a generated one, returned to be
/// shown once.
pub async fn user_add(
    config_path: &Path,
    email: &str,
    role: &str,
    password: Option<String>,
) -> Result<Option<String>, CommandError> {
    let email = &email.to_lowercase();
    check_email(email)?;
    let role = Role::parse(role).ok_or_else(|| {
        CommandError::Invalid(format!("role {role:?}: use admin, approver or viewer"))
    })?;
    let (password, generated) = chosen_or_generated(password)?;
    let hash = hash(password).await?;
    let (_, store) = open(config_path).await?;
    let user = store.add_user(email, role).await?.ok_or_else(|| {
        CommandError::Invalid(format!(
            "a user {email} already exists (new password: airlock user password {email})"
        ))
    })?;
    store.set_password_hash(&user.id, &hash).await?;
    let detail = format!("{email} as {}", role.as_str());
    crate::audit::record(
        &store,
        "user_added",
        &crate::domain::Actor::OPERATOR,
        Some(&detail),
    )
    .await?;
    Ok(generated)
}

/// `airlock user password EMAIL [--password-stdin]`: a new dashboard password (ends the user's
/// browser sessions); the generated one is returned to be shown once.
pub async fn user_password(
    config_path: &Path,
    email: &str,
    password: Option<String>,
) -> Result<Option<String>, CommandError> {
    let (password, generated) = chosen_or_generated(password)?;
    let hash = hash(password).await?;
    let (_, store) = open(config_path).await?;
    let user = user(&store, email).await?;
    store.change_password(&user.id, &hash).await?;
    crate::audit::record(
        &store,
        "password_reset",
        &crate::domain::Actor::OPERATOR,
        Some(&user.email),
    )
    .await?;
    Ok(generated)
}

/// The password given, or a generated one (then also returned second, to be shown).
fn chosen_or_generated(password: Option<String>) -> Result<(String, Option<String>), CommandError> {
    match password {
        Some(password) => Ok((password, None)),
        None => {
            let password = secrets::generate_password()?;
            Ok((password.clone(), Some(password)))
        }
    }
}

/// The argon2id hash of `password`, computed off the async threads.
pub async fn hash(password: String) -> Result<String, CommandError> {
    tokio::task::spawn_blocking(move || secrets::hash_password(&password))
        .await
        .map_err(|e| CommandError::Invalid(format!("hashing the password failed: {e}")))?
        .map_err(|e| CommandError::Invalid(e.to_string()))
}

async fn user(store: &Store, email: &str) -> Result<User, CommandError> {
    store.user_by_email(email).await?.ok_or_else(|| {
        CommandError::Invalid(format!(
            "no user {email} (add one with: airlock user add {email} --role approver)"
        ))
    })
}

/// `airlock user token EMAIL`: a new reviewer API token, printed once.
pub async fn user_token(config_path: &Path, email: &str) -> Result<String, CommandError> {
    let (_, store) = open(config_path).await?;
    let user = user(&store, email).await?;
    let token = secrets::generate_token()?;
    store
        .add_user_token(&user, &secrets::sha256_hex(token.as_bytes()))
        .await?;
    crate::audit::record(
        &store,
        "token_created",
        &crate::domain::Actor::OPERATOR,
        Some(&user.email),
    )
    .await?;
    Ok(token)
}

/// `airlock pending [--json]`: the calls waiting for a decision, newest first.
pub async fn pending(config_path: &Path, json: bool) -> Result<String, CommandError> {
    let (_, store) = open(config_path).await?;
    let rows = store.calls(Some(CallStatus::Pending), None, 10_000).await?;
    let ids: Vec<_> = rows.iter().map(|row| row.id.clone()).collect();
    let mut approvals = store.approvals_of(&ids).await?;
    let views: Vec<_> = rows
        .into_iter()
        .map(|row| {
            let approvals = approvals.remove(&row.id).unwrap_or_default();
            CallView::new(row, approvals, None)
        })
        .collect();
    if json {
        let mut out = serde_json::to_string_pretty(&views)
            .map_err(|e| CommandError::Invalid(format!("cannot print calls as JSON: {e}")))?;
        out.push('\n');
        return Ok(out);
    }
    if views.is_empty() {
        return Ok("no calls are waiting for approval\n".to_owned());
    }
    let mut out = format!(
        "{:<36}  {:<20}  {:<32}  {:<16}  {:<9}  ARGUMENTS\n",
        "ID", "EXPIRES (UTC)", "CALL", "AGENT", "APPROVALS"
    );
    for view in &views {
        let args = printable(&view.arguments.to_string());
        let preview: String = if args.chars().count() > ARGS_PREVIEW {
            args.chars().take(ARGS_PREVIEW - 1).chain(['…']).collect()
        } else {
            args
        };
        let expires = view
            .expires_at
            .get(..19)
            .unwrap_or(&view.expires_at)
            .replace('T', " ");
        let _ = writeln!(
            out,
            "{:<36}  {:<20}  {:<32}  {:<16}  {:<9}  {preview}",
            view.id,
            expires,
            printable(&format!("{}.{}", view.upstream, view.tool)),
            printable(&view.agent),
            format!("{}/{}", view.approvals.len(), view.approvals_needed),
        );
    }
    Ok(out)
}

/// Who a CLI decision is recorded as: the user named by `--as`, else the operator (`cli`).
async fn reviewer_user(store: &Store, as_user: Option<&str>) -> Result<Option<User>, CommandError> {
    match as_user {
        Some(email) => Ok(Some(user(store, email).await?)),
        None => Ok(None),
    }
}

/// A decision made at the command line, as `user` (`--as`) or as the operator.
fn cli_decision<'a>(
    action: Action,
    user: Option<&'a User>,
    reason: Option<&'a str>,
) -> Decision<'a> {
    Decision {
        action,
        reviewer: user.map_or(Reviewer::Operator, Reviewer::User),
        via: Via::Cli,
        reason,
        args_digest: None,
        link: None,
    }
}

/// Decides call `id` through the queue, as every face does. This process parks nothing, so the
/// queue has no waits to wake: the running server notices the decision by its poll.
async fn decide(
    config_path: &Path,
    id: &str,
    action: Action,
    reason: Option<&str>,
    as_user: Option<&str>,
) -> Result<Decided, CommandError> {
    let (config, store) = open(config_path).await?;
    let id = CallId::parse(id).map_err(|e| CommandError::Invalid(e.to_string()))?;
    let user = reviewer_user(&store, as_user).await?;
    let queue = ApprovalQueue::new(
        store,
        std::sync::Arc::new(config),
        std::sync::Arc::default(),
        tokio_util::sync::CancellationToken::new(),
    );
    Ok(queue
        .decide(&id, cli_decision(action, user.as_ref(), reason))
        .await?)
}

/// `airlock approve ID [--reason R] [--as EMAIL]`; returns what happened, for stderr.
pub async fn approve(
    config_path: &Path,
    id: &str,
    reason: Option<&str>,
    as_user: Option<&str>,
) -> Result<String, CommandError> {
    Ok(
        match decide(config_path, id, Action::Approve, reason, as_user).await? {
            Decided::Counted { have, need } => format!(
                "approval counted for call {id}: {have} of {need}; it still waits for {} more",
                need.saturating_sub(have)
            ),
            Decided::Released | Decided::Rejected => {
                format!("approved call {id}; it is released to its agent")
            }
        },
    )
}

/// `airlock reject ID --reason R [--as EMAIL]`.
pub async fn reject(
    config_path: &Path,
    id: &str,
    reason: &str,
    as_user: Option<&str>,
) -> Result<String, CommandError> {
    decide(config_path, id, Action::Reject, Some(reason), as_user).await?;
    Ok(format!("rejected call {id}"))
}
