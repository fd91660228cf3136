//! `airlock check`: the config, every policy and (unless offline) every upstream, explained.

use std::fmt::Write as _;
use std::path::Path;

use super::CommandError;
use crate::config::{Config, UpstreamConfig};
use crate::policy::{Policy, PolicyHandle, Sensitivity};
use crate::store::Store;
use crate::upstream::Upstream;

/// `airlock check`: validates the config and every policy, and explains each tool's rule. Unless
/// `offline`, it also starts each upstream and explains the tools it actually offers, with risk
/// hints. An invalid config or policy is an error (exit 1); an unreachable upstream is a warning.
pub async fn check(config_path: &Path, offline: bool) -> Result<String, CommandError> {
    let config = Config::load(config_path)?;
    let mut report = format!("config {}: ok\n", config_path.display());
    if !offline {
        check_database(&config, &mut report).await?;
    }
    for warning in crate::store::permission_warnings(&config.database.url)
        .into_iter()
        .chain(config.warnings())
    {
        let _ = writeln!(report, "warning: {warning}");
    }
    check_email(&config, offline, &mut report).await?;
    check_audit(&config, &mut report)?;
    if config.upstreams.is_empty() {
        report.push_str("warning: no [[upstream]] is configured; agents have nothing to reach\n");
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    for upstream in &config.upstreams {
        check_upstream(&config, upstream, offline, &shutdown, &mut report).await?;
    }
    shutdown.cancel();
    Ok(report)
}

async fn check_database(config: &Config, report: &mut String) -> Result<(), CommandError> {
    let shown = crate::config::redact_url(&config.database.url);
    match Store::open(&config.database).await {
        Ok(store) => {
            let _ = writeln!(
                report,
                "database {shown}: ok (reachable, migrations applied)"
            );
            drop(store);
            Ok(())
        }
        Err(e) => Err(CommandError::Invalid(format!(
            "database {shown}: {}",
            crate::telemetry::error_chain(&e)
        ))),
    }
}

async fn check_email(
    config: &Config,
    offline: bool,
    report: &mut String,
) -> Result<(), CommandError> {
    let Some(email) = &config.email else {
        return Ok(());
    };
    let mailer = crate::notify::worker::Mailer::new(email)
        .map_err(|e| CommandError::Invalid(format!("email: {e}")))?;
    match (mailer, offline) {
        (None, _) => report.push_str(
            "email: no smtp_url; messages stay in the outbox (admins read them on /outbox)\n",
        ),
        (Some(_), true) => report.push_str("email: not tested (--offline)\n"),
        (Some(mailer), false) => match mailer.test_connection().await {
            Ok(()) => {
                report.push_str("email: ok (the SMTP server answered and accepted the login)\n")
            }
            Err(why) => return Err(CommandError::Invalid(format!("email: {why}"))),
        },
    }
    Ok(())
}

fn check_audit(config: &Config, report: &mut String) -> Result<(), CommandError> {
    match super::audit::audit_key(config)? {
        Some(key) => {
            let _ = writeln!(
                report,
                "audit: exports are signed; public key {} (give it to whoever checks them)",
                key.public_key()
            );
        }
        None => report.push_str(
            "audit: exports are not signed (set [audit] signing_key_file; `airlock audit keygen` makes a key)\n",
        ),
    }
    if config.audit.retain_days > 0 {
        let _ = writeln!(
            report,
            "audit: events older than {} days are removed",
            config.audit.retain_days
        );
    }
    Ok(())
}

/// One upstream: its policy, the policy's warnings, and (unless offline) the tools it offers.
async fn check_upstream(
    config: &Config,
    upstream: &UpstreamConfig,
    offline: bool,
    shutdown: &tokio_util::sync::CancellationToken,
    report: &mut String,
) -> Result<(), CommandError> {
    let policy = PolicyHandle::load(upstream.policy.clone())
        .map_err(|e| CommandError::Invalid(format!("upstream {}: {e}", upstream.name)))?;
    let _ = writeln!(
        report,
        "\nupstream {} ({})",
        upstream.name,
        transport(upstream)
    );
    let _ = writeln!(
        report,
        "  policy {}",
        upstream.policy.as_ref().map_or_else(
            || "(none: the built-in default)".to_owned(),
            |p| p.display().to_string()
        )
    );
    let current = policy.current();
    for warning in current.warnings(|name| config.groups.contains_key(name)) {
        let _ = writeln!(report, "  warning: {warning}");
    }
    let offered = if offline {
        None
    } else {
        let runtime = Upstream::new(
            upstream,
            crate::upstream::HttpClient::new()
                .map_err(|e| CommandError::Invalid(format!("upstream {}: {e}", upstream.name)))?,
            shutdown.child_token(),
            std::sync::Arc::new(crate::redact::Redactor::new(&config.redaction)),
        )
        .map_err(|e| CommandError::Invalid(format!("upstream {}: {e}", upstream.name)))?;
        match runtime.list_tools().await {
            Ok(tools) => Some(tools),
            Err(e) => {
                let _ = writeln!(
                    report,
                    "  warning: cannot list the upstream's tools ({e}); showing the policy only"
                );
                None
            }
        }
    };
    explain_tools(
        report,
        &current,
        offered.as_deref(),
        Sensitivity::of(&config.policy),
    );
    explain_other_requests(report, &current);
    Ok(())
}

/// The rules of resources and prompts, and what the rest of the requests get.
fn explain_other_requests(report: &mut String, policy: &Policy) {
    for (title, entries) in [
        ("resources", policy.resources().collect::<Vec<_>>()),
        ("prompts", policy.prompts().collect::<Vec<_>>()),
    ] {
        if entries.is_empty() {
            continue;
        }
        let _ = writeln!(
            report,
            "  {title} (resources/read and subscribe, prompts/get, their completions):"
        );
        for (name, rule) in entries {
            let _ = writeln!(report, "    {name:<24} {}", policy.describe_listed(rule));
        }
    }
    let _ = writeln!(
        report,
        "  other resources, prompts and methods: {} (tool listings, ping and tasks always pass; \
         outside tools/call nothing can wait for approval)",
        policy.describe_default()
    );
}

/// One line per tool: the upstream's own tools when known (plus policy entries it lacks), else the
/// policy's entries; then what any other tool gets.
fn explain_tools(
    report: &mut String,
    policy: &Policy,
    offered: Option<&[serde_json::Value]>,
    sensitive: Sensitivity,
) {
    match offered {
        Some(tools) => {
            let _ = writeln!(report, "  tools offered by the upstream ({}):", tools.len());
            for tool in tools {
                let name = tool
                    .get("name")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default();
                let shown = policy.describe_listed_tool(tool, sensitive);
                let _ = writeln!(report, "    {name:<24} {shown}");
                for note in policy.risk_notes(tool, sensitive) {
                    let _ = writeln!(report, "    {:<24} ! {note}", "");
                }
            }
            let missing: Vec<&str> = policy
                .tools()
                .map(|(name, _)| name)
                .filter(|name| {
                    !tools
                        .iter()
                        .any(|t| t.get("name").and_then(serde_json::Value::as_str) == Some(name))
                })
                .collect();
            let _ = writeln!(
                report,
                "    {:<24} {}",
                "(any other tool)",
                policy.describe_default()
            );
            for name in missing {
                let _ = writeln!(
                    report,
                    "  warning: the policy lists {name}, which the upstream does not offer"
                );
            }
            return;
        }
        None => {
            // Without the upstream's list, the names alone say which tools look risky.
            for (name, _) in policy.tools() {
                let listed = serde_json::json!({ "name": name });
                let shown = policy.describe_listed_tool(&listed, sensitive);
                let _ = writeln!(report, "    {name:<24} {shown}");
                for note in policy.risk_notes(&listed, sensitive) {
                    let _ = writeln!(report, "    {:<24} ! {note}", "");
                }
            }
        }
    }
    let _ = writeln!(
        report,
        "    {:<24} {}",
        "(any other tool)",
        policy.describe_default()
    );
}

fn transport(upstream: &UpstreamConfig) -> String {
    match (&upstream.command, &upstream.url) {
        (Some(argv), _) => format!("stdio: {}", argv.join(" ")),
        (None, Some(url)) => format!("http: {url}"),
        (None, None) => "no transport".to_owned(),
    }
}
