//! Each upstream's tools (`/tools`) as the upstream lists them (description and annotations; the
//! annotations are the server's claims, shown, never trusted) beside the rule Airlock applies to
//! each, with the same risk notes `airlock check` prints; and the tools quarantined because their
//! definition changed since it was accepted, with the change, for an admin to accept
//! (`POST /tools/{upstream}/{tool}/accept`, the digest reviewed in the form).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::Value;

use crate::app::AppState;
use crate::domain::Via;
use crate::policy::risk::classify;
use crate::policy::{PolicyStatus, Rule, Sensitivity};
use crate::web::error::PageError;
use crate::web::page::{Badge, Chrome, PageResult, risk_badge};
use crate::web::session::{CsrfForm, SignedIn};

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

/// A quarantined tool, field by field.
pub struct QuarantineRow {
    upstream: String,
    tool: String,
    /// "changed since it was accepted on ..." or "appeared later".
    since: String,
    digest: String,
    changes: Vec<FieldChange>,
}

pub struct FieldChange {
    field: &'static str,
    accepted: String,
    seen: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard/tools.html")]
pub struct ToolsPage {
    chrome: Chrome,
    upstreams: Vec<UpstreamSection>,
    quarantined: Vec<QuarantineRow>,
    notice: Option<String>,
}

#[derive(Deserialize)]
pub struct AcceptForm {
    digest: String,
}

#[derive(Deserialize, Default)]
pub struct ToolsQuery {
    #[serde(default)]
    accepted: Option<String>,
    #[serde(default)]
    stale: Option<String>,
}

/// An admin accepts a quarantined tool's definition: the one they reviewed (its digest), so a
/// tool that changed again meanwhile stays quarantined.
pub async fn accept(
    State(app): State<AppState>,
    Path((upstream, tool)): Path<(String, String)>,
    CsrfForm(signed, form): CsrfForm<AcceptForm>,
) -> PageResult<Response> {
    PageError::admin_only(&signed)?;
    let digest = form.digest.trim();
    let actor = signed.user.actor(Via::Dashboard);
    let accepted = app.pins.accept(&upstream, &tool, digest, &actor).await?;
    let flash = if accepted { "accepted" } else { "stale" };
    let name = percent_encoding::utf8_percent_encode(
        &format!("{upstream}.{tool}"),
        percent_encoding::NON_ALPHANUMERIC,
    )
    .to_string();
    Ok(Redirect::to(&format!("/tools?{flash}={name}")).into_response())
}

/// What an admin reads about each quarantined tool.
fn quarantine_rows(app: &AppState) -> Vec<QuarantineRow> {
    let shown = |value: Option<&Value>| match value {
        None => "(none)".to_owned(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => serde_json::to_string_pretty(other).unwrap_or_default(),
    };
    app.pins
        .quarantined()
        .into_iter()
        .map(|q| QuarantineRow {
            since: match q.accepted_at {
                Some(at) if q.accepted.is_some() => {
                    format!("changed since it was accepted on {}", at.minute())
                }
                _ => "appeared after the upstream's tools were accepted".to_owned(),
            },
            changes: q
                .changed
                .iter()
                .map(|field| FieldChange {
                    field,
                    accepted: shown(q.accepted.as_ref().and_then(|a| a.get(*field))),
                    seen: shown(q.seen.get(*field)),
                })
                .collect(),
            digest: q.seen_digest,
            upstream: q.upstream,
            tool: q.tool,
        })
        .collect()
}

const HINTS: [(&str, &str); 4] = [
    ("readOnlyHint", "read-only"),
    ("destructiveHint", "destructive"),
    ("idempotentHint", "idempotent"),
    ("openWorldHint", "open world"),
];

pub async fn page(
    State(app): State<AppState>,
    Query(query): Query<ToolsQuery>,
    signed: SignedIn,
) -> PageResult<ToolsPage> {
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
    let notice = match (query.accepted, query.stale) {
        (Some(tool), _) => Some(format!(
            "Accepted the new definition of {tool}; agents see it again."
        )),
        (None, Some(tool)) => Some(format!(
            "{tool} changed again since the page was shown; review the change below."
        )),
        (None, None) => None,
    };
    Ok(ToolsPage {
        chrome: Chrome::new(&signed, "tools"),
        upstreams,
        quarantined: quarantine_rows(&app),
        notice,
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
        _ if policy.sensitive_parks(tool, sensitive) => "pending",
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
        rule: policy.describe_listed_tool(tool, sensitive),
        rule_class,
        risk: classify(tool).risk().map(risk_badge),
        notes: policy.risk_notes(tool, sensitive),
        name,
    }
}
