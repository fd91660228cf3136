//! `airlock policy test`: what the policy in force does with one call, and why, for people and
//! for CI checks of policy edits ("`export_session` from `claude` parks").
//!
//! The verdict is the gate's own (`Policy::evaluate`), on the configured `[policy]` settings,
//! with every counter read as zero (a fresh window) and the tool's risk judged from its name and
//! the `--description` given (the upstream is not started).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use serde_json::{Value, json};

use super::CommandError;
use crate::config::Config;
use crate::policy::risk::{self, Risk};
use crate::policy::{
    CallSite, CounterValues, Judge, PolicyHandle, RateLimiter, Sensitivity, Verdict,
};

/// What `airlock policy test` asks about (its command-line arguments).
#[derive(clap::Args)]
pub struct PolicyQuestion {
    #[arg(long)]
    pub upstream: String,
    #[arg(long)]
    pub tool: String,
    /// The call's arguments, a JSON object.
    #[arg(long, default_value = "{}")]
    pub args: String,
    #[arg(long, default_value = "agent")]
    pub agent: String,
    /// The tool's description as the upstream lists it, for the risk classifier.
    #[arg(long)]
    pub description: Option<String>,
    /// The verdict the policy must give; the command fails when it differs.
    #[arg(long, value_parser = ["allow", "deny", "rate_limited", "park"])]
    pub expect: Option<String>,
}

/// The report, and whether the verdict is the one `--expect` named (true without `--expect`).
pub fn policy_test(
    config_path: &Path,
    question: &PolicyQuestion,
) -> Result<(String, bool), CommandError> {
    let config = Config::load(config_path)?;
    let upstream = find_upstream(&config, config_path, &question.upstream)?;
    let args = arguments(&question.args)?;
    let policy = PolicyHandle::load(upstream.policy.clone())
        .map_err(|e| CommandError::Invalid(format!("upstream {}: {e}", upstream.name)))?
        .current();
    let mut definition = json!({ "name": question.tool });
    if let Some(description) = &question.description {
        definition["description"] = json!(description);
    }
    let assessment = risk::classify(&definition);
    let call = CallSite {
        upstream: &upstream.name,
        tool: &question.tool,
        agent: &question.agent,
        session: "airlock-policy-test",
        args: &args,
    };
    let counters = CounterValues::default();
    let judge = Judge {
        limiter: &RateLimiter::new(),
        now: Instant::now(),
        unix_now: time::OffsetDateTime::now_utc().unix_timestamp(),
        counters: &counters,
        risk: &assessment,
        sensitive: Sensitivity::of(&config.policy),
    };
    let mut report = format!(
        "{}.{} {} from agent {}\n",
        upstream.name, question.tool, args, question.agent
    );
    let verdict = policy.evaluate(&call, &judge);
    let (name, detail) = verdict_line(&verdict);
    let _ = writeln!(report, "verdict: {name}: {detail}");
    let _ = writeln!(report, "rule: {}", policy.describe(&question.tool));
    for line in policy.trace(&question.tool, &question.agent, &args) {
        let _ = writeln!(report, "  {line}");
    }
    for risk in [Risk::Credential, Risk::Destructive] {
        if let Some(why) = assessment.explain(risk) {
            let _ = writeln!(report, "risk: {why}");
        }
    }
    if let Verdict::Allow { reserve, .. } = &verdict {
        for taken in reserve {
            let _ = writeln!(
                report,
                "counts: state.{}.{} += {} this {} (limit {})",
                taken.key.scope,
                taken.key.counter,
                taken.amount,
                taken.window.as_str(),
                taken
                    .limit
                    .map_or_else(|| "none".to_owned(), |l| l.to_string())
            );
        }
    }
    let expected = question.expect.as_deref().is_none_or(|want| want == name);
    if let Some(want) = &question.expect
        && !expected
    {
        let _ = writeln!(report, "expected: {want}, but the verdict is {name}");
    }
    Ok((report, expected))
}

fn find_upstream<'a>(
    config: &'a Config,
    config_path: &Path,
    name: &str,
) -> Result<&'a crate::config::UpstreamConfig, CommandError> {
    config
        .upstreams
        .iter()
        .find(|u| u.name == name)
        .ok_or_else(|| {
            let known: Vec<&str> = config.upstreams.iter().map(|u| u.name.as_str()).collect();
            CommandError::Invalid(format!(
                "no upstream {name:?} in {}; configured: {}",
                config_path.display(),
                known.join(", ")
            ))
        })
}

/// `--args`: a JSON object.
fn arguments(text: &str) -> Result<Value, CommandError> {
    serde_json::from_str(text)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| {
            CommandError::Invalid(format!(
                "--args must be a JSON object such as '{{\"account\": \"main\"}}', not {text}"
            ))
        })
}

/// The verdict's name (as `--expect` spells it) and what it says.
fn verdict_line(verdict: &Verdict) -> (&'static str, String) {
    match verdict {
        Verdict::Allow { why, shadow, .. } => ("allow", with_shadow(why, shadow)),
        Verdict::Deny { message } => ("deny", message.clone()),
        Verdict::RateLimited { message, .. } => ("rate_limited", message.clone()),
        Verdict::RequireApproval { rule, shadow } => (
            "park",
            with_shadow(
                &format!(
                    "{} approval(s) of {} within {} s: {}",
                    rule.approvals(),
                    if rule.reviewers().is_empty() {
                        "any approver".to_owned()
                    } else {
                        rule.reviewers().join(", ")
                    },
                    rule.timeout().as_secs(),
                    rule.reason().unwrap_or("its rule requires approval")
                ),
                shadow,
            ),
        ),
    }
}

fn with_shadow(text: &str, shadow: &[String]) -> String {
    if shadow.is_empty() {
        text.to_owned()
    } else {
        format!("{text} ({})", shadow.join("; "))
    }
}
