//! Each upstream's tools (`/tools`) as the upstream lists them (description and annotations; the
//! annotations are the server's claims, shown, never trusted) beside the rule Airlock applies to
//! each, with the same risk notes `airlock check` prints.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use serde_json::Value;

use crate::app::AppState;
use crate::policy::risk::classify;
use crate::policy::{PolicyStatus, Rule, Sensitivity};
use crate::web::page::{Badge, Chrome, PageResult, risk_badge};
use crate::web::session::SignedIn;

pub struct ToolRow {
    name: String,
    description: String,
    hints: Vec<&'static str>,
    rule: String,
    rule_class: &'static str,
    risk: Option<Badge>,
    notes: Vec<String>,
}

pub struct UpstreamSection {
    name: String,
    policy_file: String,
    policy_error: Option<String>,
    default_rule: String,
    tools: Vec<ToolRow>,
    error: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/tools.html")]
pub struct ToolsPage {
    chrome: Chrome,
    upstreams: Vec<UpstreamSection>,
}

const HINTS: [(&str, &str); 4] = [
    ("readOnlyHint", "read-only"),
    ("destructiveHint", "destructive"),
    ("idempotentHint", "idempotent"),
    ("openWorldHint", "open world"),
];

pub async fn page(State(app): State<AppState>, signed: SignedIn) -> PageResult<ToolsPage> {
    // Every upstream is asked at once: a slow one costs the page its own timeout, not a sum.
    let listings =
        futures_util::future::join_all(app.gateways.keys().map(|name| app.catalogue.tools(name)))
            .await;
    let sensitive = Sensitivity::of(&app.config.policy);
    let mut upstreams = Vec::new();
    for ((name, gateway), listed) in app.gateways.iter().zip(listings) {
        let policy = gateway.policy.current();
        let (tools, error) = match listed {
            Ok(tools) => (
                tools
                    .iter()
                    .map(|tool| row(&policy, tool, sensitive))
                    .collect(),
                None,
            ),
            Err(e) => (Vec::new(), Some(e)),
        };
        upstreams.push(UpstreamSection {
            name: name.to_string(),
            policy_file: gateway.policy.path().map_or_else(
                || "none (built in: every call needs approval)".to_owned(),
                |p| p.display().to_string(),
            ),
            policy_error: match gateway.policy.status() {
                PolicyStatus::Ok => None,
                PolicyStatus::Stale { error } => Some(error),
            },
            default_rule: policy.describe_default(),
            tools,
            error,
        });
    }
    Ok(ToolsPage {
        chrome: Chrome::new(&signed, "tools"),
        upstreams,
    })
}

fn row(policy: &crate::policy::Policy, tool: &Value, sensitive: Sensitivity) -> ToolRow {
    let name = tool
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let resolved = policy.rule_for(&name);
    let rule_class = match resolved.rule {
        Rule::Allow { .. } => "approved",
        Rule::Deny { .. } => "rejected",
        Rule::RequireApproval(_) => "pending",
    };
    let hints = HINTS
        .iter()
        .filter(|(key, _)| {
            tool.pointer(&format!("/annotations/{key}"))
                .and_then(Value::as_bool)
                == Some(true)
        })
        .map(|(_, label)| *label)
        .collect();
    ToolRow {
        description: tool
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        hints,
        rule: policy.describe(&name),
        rule_class,
        risk: classify(tool).risk().map(risk_badge),
        notes: policy.risk_notes(tool, sensitive),
        name,
    }
}
