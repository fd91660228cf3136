//! What each CLI subcommand does; `main.rs` only parses arguments and calls in here.
//! Commands that create a secret print it alone on stdout and everything else on stderr, so
//! `TOKEN=$(airlock token create --agent claude)` works.

mod audit;
mod check;
mod demo;
mod policy_test;
mod review;
mod tools;

pub use audit::{ExportRequest, audit_export, audit_keygen, audit_verify, audit_verify_file};
pub use check::check;
pub use demo::{DEMO_POLICY, DEMO_REVIEWER, DemoArgs, demo, demo_upstream};
pub use policy_test::{PolicyQuestion, policy_test};
pub use review::{approve, pending, reject, user_add, user_password, user_token};
pub use tools::{tools_accept, tools_diff};

use std::path::Path;

use crate::app::{Application, StartupError};
use crate::config::{Config, ConfigError};
use crate::secrets;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no secure randomness available")]
    Random(#[from] getrandom::Error),
    #[error("the server stopped with an error")]
    Serve(#[source] std::io::Error),
    #[error(transparent)]
    Demo(#[from] crate::demo_upstream::DemoError),
    #[error(transparent)]
    Decide(#[from] crate::approval::DecideError),
}

/// `airlock serve`: production.
pub async fn serve(config_path: &Path) -> Result<(), CommandError> {
    let config = Config::load(config_path)?;
    let app = Application::build(config).await?;
    let config = &app.state().config;
    for warning in crate::store::permission_warnings(&config.database.url)
        .into_iter()
        .chain(config.warnings())
    {
        tracing::warn!("{warning}");
    }
    tracing::info!(addr = %app.local_addr(), "airlock listening");
    app.run_until_stopped().await.map_err(CommandError::Serve)
}

/// `airlock token create --agent NAME`: a new agent bearer token, printed once.
pub async fn token_create(config_path: &Path, agent: &str) -> Result<String, CommandError> {
    if !crate::config::is_valid_name(agent) {
        return Err(CommandError::Invalid(format!(
            "agent name {agent:?}: use letters, digits, '-', '_' and '.'"
        )));
    }
    let config = Config::load(config_path)?;
    let store = Store::open(&config.database).await?;
    let token = secrets::generate_token()?;
    store
        .add_agent_token(agent, &secrets::sha256_hex(token.as_bytes()))
        .await?;
    let detail = format!("agent {agent}");
    crate::audit::record(
        &store,
        "agent_token_created",
        &crate::domain::Actor::OPERATOR,
        Some(&detail),
    )
    .await?;
    Ok(token)
}
