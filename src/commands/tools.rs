//! `airlock tools diff` and `airlock tools accept`: the quarantined tools (definitions that
//! changed since they were accepted, see `pinning`) and accepting one, from the command line.
//! The running server picks an acceptance up within seconds, as it does a CLI decision.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use super::CommandError;
use crate::config::Config;
use crate::domain::Actor;
use crate::pinning::{Pins, Quarantined};
use crate::store::Store;

/// Opens the store and the pins with an audit writer; `f` runs with them, then the writer is
/// drained.
async fn with_pins<T>(
    config_path: &Path,
    f: impl AsyncFnOnce(&Pins) -> Result<T, CommandError>,
) -> Result<T, CommandError> {
    let config = Config::load(config_path)?;
    let store = Store::open(&config.database).await?;
    let stop = tokio_util::sync::CancellationToken::new();
    let (audit, task) = crate::audit::AuditWriter::start(store.clone(), stop.clone());
    let pins = Pins::load(store, audit, HashMap::new()).await?;
    let result = f(&pins).await;
    drop(pins);
    stop.cancel();
    let _ = task.await;
    result
}

/// Every quarantined tool (of `upstream`, if given) and what changed, field by field.
pub async fn tools_diff(
    config_path: &Path,
    upstream: Option<&str>,
) -> Result<String, CommandError> {
    with_pins(config_path, async |pins| {
        let all: Vec<Quarantined> = pins
            .quarantined()
            .into_iter()
            .filter(|q| upstream.is_none_or(|u| q.upstream == u))
            .collect();
        if all.is_empty() {
            return Ok("no tool is quarantined\n".to_owned());
        }
        let mut report = String::new();
        for q in all {
            let since = match (q.accepted_at, &q.accepted) {
                (Some(at), Some(_)) => format!("changed since it was accepted on {}", at.minute()),
                _ => "appeared after the upstream's tools were accepted".to_owned(),
            };
            let _ = writeln!(
                report,
                "{}.{}: {since}; seen {}",
                q.upstream,
                q.tool,
                q.seen_at.minute()
            );
            for field in &q.changed {
                let show = |v: Option<&serde_json::Value>| {
                    v.map_or_else(|| "(none)".to_owned(), ToString::to_string)
                };
                let _ = writeln!(report, "  {field}:");
                let _ = writeln!(
                    report,
                    "    - {}",
                    show(q.accepted.as_ref().and_then(|a| a.get(*field)))
                );
                let _ = writeln!(report, "    + {}", show(q.seen.get(*field)));
            }
            let _ = writeln!(
                report,
                "  accept with: airlock tools accept {} {} --digest {}",
                q.upstream, q.tool, q.seen_digest
            );
        }
        Ok(report)
    })
    .await
}

/// Accepts the quarantined definition of `upstream.tool`: the one with `digest` when given
/// (what `tools diff` showed), else the latest seen.
pub async fn tools_accept(
    config_path: &Path,
    upstream: &str,
    tool: &str,
    digest: Option<&str>,
) -> Result<String, CommandError> {
    with_pins(config_path, async |pins| {
        let quarantined = pins
            .quarantined()
            .into_iter()
            .find(|q| q.upstream == upstream && q.tool == tool)
            .ok_or_else(|| {
                CommandError::Invalid(format!("{upstream}.{tool} is not quarantined"))
            })?;
        let digest = digest.unwrap_or(&quarantined.seen_digest);
        if pins
            .accept(upstream, tool, digest, &Actor::OPERATOR)
            .await?
        {
            Ok(format!("accepted the new definition of {upstream}.{tool}"))
        } else {
            Err(CommandError::Invalid(format!(
                "{upstream}.{tool} has changed again since; run airlock tools diff and review it"
            )))
        }
    })
    .await
}
