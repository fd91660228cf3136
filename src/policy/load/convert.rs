//! From the document as written to the [`Policy`] model: settings that mean nothing for a rule's
//! action are refused here.

use std::collections::BTreeMap;
use std::path::Path;

use super::convert_rules::{check_counter_references, convert_rules};
use super::raw::{Action, PatternTable, Per, RawPolicy, RawRule, Table, Text};
use super::raw_rules::RawMode;
use super::{Failure, PolicyFormat};
use crate::policy::model::{
    ApprovalRule, DEFAULT_APPROVAL_TIMEOUT, DefaultAction, Policy, PolicyOrigin, RateLimit,
    RateScope, Rule, ToolEntry,
};
use crate::policy::rules::{CondRule, Mode};

pub(super) fn convert(
    raw: RawPolicy,
    format: PolicyFormat,
    path: &Path,
) -> Result<Policy, Failure> {
    if raw.version.is_none() {
        let example = match format {
            PolicyFormat::Json => "\"version\": \"1\"",
            PolicyFormat::Toml => "version = \"1\"",
            PolicyFormat::Yaml => "version: \"1\"",
        };
        return Err(Failure::at(
            "version".to_owned(),
            format!("missing; add {example} at the top of the file"),
        ));
    }
    let default = match raw.default {
        None | Some(Action::Allow) => DefaultAction::Allow,
        Some(Action::Deny) => DefaultAction::Deny,
        Some(Action::RequireApproval) => DefaultAction::RequireApproval,
    };
    let (tools, wildcard) = convert_tools(raw.tools.0)?;
    let hide = convert_hide(raw.hide)?;
    let patterns = |section: &str, table: PatternTable| {
        table
            .0
            .into_iter()
            .map(|(name, rule)| {
                let at = format!("{section}.{name}");
                if rule.accept_risk.is_some() || rule.rules.is_some() {
                    let key = if rule.rules.is_some() {
                        "rules"
                    } else {
                        "accept_risk"
                    };
                    return Err(Failure::at(
                        format!("{at}.{key}"),
                        format!("`{key}` applies only to tools; remove it"),
                    ));
                }
                convert_rule(&at, false, rule).map(|rule| (name, rule))
            })
            .collect::<Result<Vec<_>, Failure>>()
    };
    let resources = patterns("resources", raw.resources)?
        .into_iter()
        .map(|(pattern, rule)| (crate::policy::methods::canonical_pattern(&pattern), rule))
        .collect();
    let prompts = patterns("prompts", raw.prompts)?;
    Ok(Policy {
        origin: PolicyOrigin::File(path.to_path_buf()),
        description: raw.description,
        default,
        default_is_explicit: raw.default.is_some(),
        default_rule: default.to_rule(),
        tools,
        wildcard,
        hide,
        mode: match raw.mode {
            Some(RawMode::Audit) => Mode::Audit,
            Some(RawMode::Enforce) | None => Mode::Enforce,
        },
        resources,
        prompts,
    })
}

/// The listed tools and the `"*"` rules.
fn convert_tools(
    raw: BTreeMap<String, RawRule>,
) -> Result<(BTreeMap<String, ToolEntry>, Vec<CondRule>), Failure> {
    let mut tools = BTreeMap::new();
    let mut wildcard = Vec::new();
    let mut all_rules = BTreeMap::new();
    for (name, mut rule) in raw {
        let at = format!("tools.{name}");
        let accept_risk = rule.accept_risk.take().unwrap_or(false);
        let scope = if name == "*" {
            "_global"
        } else {
            name.as_str()
        };
        let rules = match rule.rules.take() {
            Some(rules) => convert_rules(&format!("{at}.rules"), scope, rules)?,
            None => Vec::new(),
        };
        all_rules.insert(name.clone(), rules.clone());
        if name == "*" {
            if let Some(key) = only_rules(&rule, accept_risk) {
                return Err(Failure::at(
                    format!("{at}.{key}"),
                    "the \"*\" entry holds only \"rules\" (for every tool); give other settings per tool, or use \"default\"".to_owned(),
                ));
            }
            wildcard = rules;
            continue;
        }
        let rule = convert_rule(&at, true, rule)?;
        tools.insert(
            name,
            ToolEntry {
                rule,
                rules,
                accept_risk,
            },
        );
    }
    check_counter_references(&all_rules)?;
    Ok((tools, wildcard))
}

/// `hide`: each tool once.
fn convert_hide(raw: Option<Vec<Text>>) -> Result<Vec<String>, Failure> {
    let mut hide: Vec<String> = Vec::new();
    for Text(name) in raw.unwrap_or_default() {
        if hide.contains(&name) {
            return Err(Failure::at(
                "hide".to_owned(),
                format!("duplicate entry {name:?}; list each tool once"),
            ));
        }
        hide.push(name);
    }
    Ok(hide)
}

/// The first setting of a `"*"` entry other than `rules`, if it has one.
fn only_rules(rule: &RawRule, accept_risk: bool) -> Option<&'static str> {
    [
        ("action", rule.action.is_some()),
        ("reason", rule.reason.is_some()),
        ("rate_limit", rule.rate_limit.is_some()),
        ("per", rule.per.is_some()),
        ("approvals", rule.approvals.is_some()),
        ("timeout", rule.timeout.is_some()),
        ("reviewers", rule.reviewers.is_some()),
        ("notify", rule.notify.is_some()),
        ("accept_risk", accept_risk),
    ]
    .into_iter()
    .find_map(|(key, set)| set.then_some(key))
}

/// The rule at `at` (`tools.send_message`); `is_tool` because only tool calls are counted by
/// rate limits.
fn convert_rule(at: &str, is_tool: bool, raw: RawRule) -> Result<Rule, Failure> {
    let action = raw.action.unwrap_or(Action::Allow);
    let key = |name: &str| format!("{at}.{name}");
    let misplaced = |name: &str, applies_to: &str| {
        Failure::at(
            key(name),
            format!("`{name}` applies only to {applies_to}; remove it or change the rule's action"),
        )
    };
    const APPROVAL_ONLY: &str = "\"action\": \"require_approval\"";

    if !matches!(action, Action::RequireApproval) {
        let approval_keys = [
            ("approvals", raw.approvals.is_some()),
            ("timeout", raw.timeout.is_some()),
            ("reviewers", raw.reviewers.is_some()),
            ("notify", raw.notify.is_some()),
        ];
        if let Some((name, _)) = approval_keys.iter().find(|(_, set)| *set) {
            return Err(misplaced(name, APPROVAL_ONLY));
        }
    }
    if !matches!(action, Action::Allow) && raw.rate_limit.is_some() {
        return Err(misplaced(
            "rate_limit",
            "allowed tools (no \"action\", or \"action\": \"allow\")",
        ));
    }
    if raw.per.is_some() && raw.rate_limit.is_none() {
        return Err(misplaced("per", "rules with a \"rate_limit\""));
    }
    if !is_tool && raw.rate_limit.is_some() {
        return Err(misplaced("rate_limit", "tools"));
    }

    match action {
        Action::Allow => {
            if raw.reason.is_some() {
                return Err(misplaced(
                    "reason",
                    "\"action\": \"deny\" (shown to the agent) or \"require_approval\" (shown to reviewers)",
                ));
            }
            let rate_limit = match raw.rate_limit {
                None => None,
                // The value checks above make `new` succeed; should they ever disagree, the file
                // is refused rather than loaded without its limit.
                Some(Table(limit)) => Some(
                    RateLimit::new(limit.max.0, limit.window.0)
                        .ok_or_else(|| {
                            Failure::at(
                                key("rate_limit"),
                                "expected at least 1 call over a window of at least 1 second"
                                    .to_owned(),
                            )
                        })?
                        .counted_per(raw.per.map_or(RateScope::Agent, |Per(per)| per)),
                ),
            };
            Ok(Rule::Allow { rate_limit })
        }
        Action::Deny => Ok(Rule::Deny {
            reason: raw.reason.map(|text| text.0),
        }),
        Action::RequireApproval => Ok(Rule::RequireApproval(ApprovalRule {
            approvals: raw.approvals.map_or(1, |a| a.0),
            timeout: raw.timeout.map_or(DEFAULT_APPROVAL_TIMEOUT, |t| t.0),
            reviewers: names(&key("reviewers"), raw.reviewers)?,
            notify: names(&key("notify"), raw.notify)?,
            reason: raw.reason.map(|text| text.0),
        })),
    }
}

/// A `reviewers` or `notify` list; an entry given twice is an error (it may be a typo of another).
pub(super) fn names(key_path: &str, list: Option<Vec<Text>>) -> Result<Vec<String>, Failure> {
    let mut names: Vec<String> = Vec::new();
    for Text(name) in list.unwrap_or_default() {
        if names.contains(&name) {
            return Err(Failure::at(
                key_path.to_owned(),
                format!("{name:?} is listed twice"),
            ));
        }
        names.push(name);
    }
    Ok(names)
}
