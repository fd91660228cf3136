//! What `airlock check` says about a policy: each tool's rule in a few words, and the warnings.
//!
//! Warnings are for policies that load but probably do not do what their author meant: no
//! `default` (unlisted tools are then allowed), no policy file at all (every call waits for a
//! human), and approval rules whose `reviewers` can never reach the quorum or whose `reviewers`
//! and `notify` entries name nobody. Whether a name is a `[groups]` entry is the configuration's
//! business, so the caller says (`is_group`); a name with an `@` is taken to be a user's email.

use std::fmt::Write as _;

use super::evaluate::{ResolvedRule, Secs, Sensitivity};
use super::model::{ApprovalRule, Policy, PolicyOrigin, Rule};
use super::risk::{Risk, classify};
use super::rules::{CondRule, CounterValues, Mode, RuleAction};

impl Policy {
    /// The rule for `tool` in a few words: `allow`, `allow, rate limit 10 per 60 s per agent`,
    /// `deny: never from an agent`, `require approval (1 of security; timeout 600 s)`,
    /// `deny (default: not listed)`.
    pub fn describe(&self, tool: &str) -> String {
        let mut text = if self.hides(tool) {
            "deny (hidden)".to_owned()
        } else {
            describe_resolved(self.rule_for(tool))
        };
        let own = self
            .tools
            .get(tool)
            .map(|entry| entry.rules())
            .unwrap_or_default();
        for (label, rules) in [("rules", own), ("\"*\" rules", self.wildcard())] {
            if !rules.is_empty() {
                let shown: Vec<String> = rules.iter().map(summary).collect();
                let _ = write!(text, "; {label}: {}", shown.join(", "));
            }
        }
        // Rules only for some agents: the others get the tool as if it were not listed.
        let for_some = self.tools.get(tool).is_some_and(|entry| {
            *entry.rule() == (Rule::Allow { rate_limit: None })
                && !entry.rules().is_empty()
                && entry.rules().iter().all(|rule| !rule.agents().is_empty())
        });
        if for_some {
            let _ = write!(text, "; other agents: {}", self.describe_default());
        }
        text
    }

    /// Each conditional rule a call of `tool` by `agent` with `args` meets, and what each of
    /// its conditions says (counters read as zero), for `airlock policy test`.
    pub fn trace(&self, tool: &str, agent: &str, args: &serde_json::Value) -> Vec<String> {
        let own = self
            .tools
            .get(tool)
            .map(|entry| entry.rules())
            .unwrap_or_default();
        let applied = self.rules_for(tool, agent);
        let counters = CounterValues::default();
        own.iter()
            .chain(self.wildcard())
            .map(|rule| {
                let Some((_, mode)) = applied.iter().find(|(r, _)| std::ptr::eq(*r, rule)) else {
                    return format!("{}: not for agent {agent}", summary(rule));
                };
                let checks: Vec<String> = rule
                    .conditions()
                    .iter()
                    .map(|c| {
                        let holds = if c.holds(args, &counters) {
                            "holds"
                        } else {
                            "does not hold"
                        };
                        format!("{} {holds}", c.describe())
                    })
                    .collect();
                let audit = if *mode == Mode::Audit {
                    ", audit mode"
                } else {
                    ""
                };
                if checks.is_empty() {
                    format!("{}{audit}: no conditions", summary(rule))
                } else {
                    format!("{}{audit}: {}", summary(rule), checks.join("; "))
                }
            })
            .collect()
    }

    /// A listed rule (of a resource or prompt) in a few words.
    pub fn describe_listed(&self, rule: &Rule) -> String {
        describe_resolved(ResolvedRule { rule, listed: true })
    }

    /// What happens to a tool the policy does not list.
    pub fn describe_default(&self) -> String {
        describe_resolved(ResolvedRule {
            rule: &self.default_rule,
            listed: false,
        })
    }

    /// Things about this policy worth a second look; `is_group` tells whether a name is a
    /// `[groups]` entry of the configuration.
    pub fn warnings(&self, is_group: impl Fn(&str) -> bool) -> Vec<String> {
        let mut warnings = Vec::new();
        match &self.origin {
            PolicyOrigin::BuiltIn => warnings.push(
                "no policy file: every tool call waits for a human approval \
                 (default: require_approval); write a policy to allow routine tools"
                    .to_owned(),
            ),
            PolicyOrigin::File(_) if self.default_is_implicit() => warnings.push(
                "no \"default\": tools not listed are allowed (PolicyLayer semantics); \
                 add \"default\": \"deny\" or \"require_approval\" to allow only the listed tools"
                    .to_owned(),
            ),
            PolicyOrigin::File(_) => {}
        }
        for (tool, entry) in self.tools() {
            if let Rule::RequireApproval(approval) = entry.rule() {
                check_approval(&format!("tools.{tool}"), approval, &is_group, &mut warnings);
            }
            for (i, rule) in entry.rules().iter().enumerate() {
                if let RuleAction::RequireApproval(approval) = rule.action() {
                    let at = format!("tools.{tool}.rules[{i}]");
                    check_approval(&at, approval, &is_group, &mut warnings);
                }
            }
        }
        let listed = self
            .resources()
            .map(|entry| ("resources", entry))
            .chain(self.prompts().map(|entry| ("prompts", entry)));
        for (section, (name, rule)) in listed {
            if matches!(rule, Rule::RequireApproval(_)) {
                warnings.push(format!(
                    "{section}.{name}: only tool calls can wait for approval, so this is refused like a deny"
                ));
            }
        }
        warnings
    }
}

impl Policy {
    /// Whether `[policy] sensitive` parks calls of `tool` (its `tools/list` entry) that its rule
    /// would allow: `check` and the tools page then say "require approval".
    pub fn sensitive_parks(&self, tool: &serde_json::Value, sensitive: Sensitivity) -> bool {
        let name = tool
            .get("name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        !self.hides(name)
            && self
                .sensitive_risk(name, &classify(tool), sensitive)
                .is_some()
    }

    /// The rule of `tool` in a few words as calls meet it: [`Policy::describe`], or "require
    /// approval" first when `[policy] sensitive` parks what the rule allows.
    pub fn describe_listed_tool(&self, tool: &serde_json::Value, sensitive: Sensitivity) -> String {
        let name = tool
            .get("name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        if self.sensitive_parks(tool, sensitive) {
            format!(
                "require approval (1 of any approver; timeout {} s) by [policy] sensitive; its rule: {}",
                Secs(super::DEFAULT_APPROVAL_TIMEOUT),
                self.describe(name)
            )
        } else {
            self.describe(name)
        }
    }

    /// What the classifier and `[policy] sensitive` make of `tool` (its `tools/list` entry)
    /// under this policy, for `check` and the tools page: `looks credential-exporting: name
    /// `export_session`; allowed by its rule, parked by [policy] sensitive`.
    pub fn risk_notes(&self, tool: &serde_json::Value, sensitive: Sensitivity) -> Vec<String> {
        let assessment = classify(tool);
        let Some(risk) = assessment.risk() else {
            return Vec::new();
        };
        let Some(why) = assessment.explain(risk) else {
            return Vec::new();
        };
        let name = tool
            .get("name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        let entry = self.tools.get(name);
        let resolved = self.rule_for(name);
        let by = if resolved.listed {
            "its rule"
        } else {
            "the policy's default"
        };
        let mut notes = vec![if self.hides(name) {
            format!("{why}; hidden by the policy")
        } else if !matches!(resolved.rule, Rule::Allow { .. }) {
            why
        } else if entry.is_some_and(|entry| entry.accept_risk()) {
            format!("{why}; allowed by {by}: the risk is accepted (accept_risk)")
        } else if sensitive.parks(risk) {
            format!("{why}; allowed by {by}, parked by [policy] sensitive")
        } else if risk == Risk::Credential {
            format!("{why}; allowed by {by} ([policy] sensitive = \"allow\")")
        } else {
            format!("{why}; allowed by {by} ([policy] sensitive_destructive = true would park it)")
        }];
        let claims_read_only =
            tool.pointer("/annotations/readOnlyHint") == Some(&serde_json::Value::Bool(true));
        if claims_read_only {
            notes.push("claims readOnlyHint (untrusted; Airlock ignores it)".to_owned());
        }
        notes
    }
}

/// A conditional rule in a few words: `"big charges" (park unless args.amount lte 50000, for
/// ci-*)`.
fn summary(rule: &CondRule) -> String {
    let conditions: Vec<String> = rule.conditions().iter().map(|c| c.describe()).collect();
    let unless = if conditions.is_empty() {
        String::new()
    } else {
        format!(" unless {}", conditions.join(" and "))
    };
    let action = match rule.action() {
        RuleAction::Deny => "deny".to_owned(),
        RuleAction::Evaluate => format!("deny{unless}"),
        RuleAction::RequireApproval(approval) => {
            format!("park{unless}: {}", approval_details(approval))
        }
    };
    let agents = if rule.agents().is_empty() {
        String::new()
    } else {
        format!(", for {}", rule.agents().join(", "))
    };
    format!("{:?} ({action}{agents})", rule.name())
}

/// `1 of security; timeout 600 s`, or `1 of any approver; ...` without `reviewers`.
fn approval_details(approval: &ApprovalRule) -> String {
    let who = if approval.reviewers().is_empty() {
        "any approver".to_owned()
    } else {
        approval.reviewers().join(", ")
    };
    format!(
        "{} of {who}; timeout {} s",
        approval.approvals(),
        Secs(approval.timeout())
    )
}

fn check_approval(
    key_path: &str,
    approval: &ApprovalRule,
    is_group: &dyn Fn(&str) -> bool,
    warnings: &mut Vec<String>,
) {
    let names_someone = |name: &str| name.contains('@') || is_group(name);
    let nobody: Vec<&str> = approval
        .reviewers()
        .iter()
        .map(String::as_str)
        .filter(|name| !names_someone(name))
        .collect();
    for name in &nobody {
        warnings.push(format!(
            "{key_path}.reviewers: {name:?} is neither an email address nor a [groups] name, \
             so it names nobody"
        ));
    }
    if !approval.reviewers().is_empty() && nobody.len() == approval.reviewers().len() {
        warnings.push(format!(
            "{key_path}: no reviewer can decide, so every call will expire unapproved"
        ));
    } else if approval.reviewers().iter().all(|name| name.contains('@'))
        && approval.reviewers().len() < approval.approvals() as usize
        && !approval.reviewers().is_empty()
    {
        let named = approval.reviewers().len();
        warnings.push(format!(
            "{key_path}: needs {} approvals but names only {named} reviewer{}, so every call \
             will expire unapproved",
            approval.approvals(),
            if named == 1 { "" } else { "s" }
        ));
    }
    for name in approval.notify() {
        if !names_someone(name) {
            warnings.push(format!(
                "{key_path}.notify: {name:?} is neither an email address nor a [groups] name, \
                 so nobody is notified by it"
            ));
        }
    }
}

/// A rule in a few words; `listed: false` marks the policy's default.
fn describe_resolved(resolved: ResolvedRule<'_>) -> String {
    let mut text = String::new();
    let default_note = (!resolved.listed).then_some("default: not listed");
    match resolved.rule {
        Rule::Allow { rate_limit } => {
            text.push_str("allow");
            if let Some(limit) = rate_limit {
                let _ = write!(
                    text,
                    ", rate limit {} per {} s per {}",
                    limit.max(),
                    Secs(limit.window()),
                    match limit.per() {
                        super::RateScope::Agent => "agent",
                        super::RateScope::Session => "session",
                    }
                );
            }
            if let Some(note) = default_note {
                let _ = write!(text, " ({note})");
            }
        }
        Rule::Deny { reason } => {
            text.push_str("deny");
            if let Some(note) = default_note {
                let _ = write!(text, " ({note})");
            } else if let Some(reason) = reason {
                let _ = write!(text, ": {reason}");
            }
        }
        Rule::RequireApproval(approval) => {
            let details = approval_details(approval);
            match default_note {
                Some(note) => {
                    let _ = write!(text, "require approval ({note}; {details})");
                }
                None => {
                    let _ = write!(text, "require approval ({details})");
                }
            }
            if let Some(reason) = approval.reason() {
                let _ = write!(text, ": {reason}");
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(name: &str, text: &str) -> Policy {
        match Policy::parse(Path::new(name), text) {
            Ok(policy) => policy,
            Err(error) => panic!("{error}"),
        }
    }

    fn no_groups(_: &str) -> bool {
        false
    }

    #[test]
    fn each_kind_of_rule_is_described_in_a_few_words() {
        let policy = parse(
            "policies/telegram.json",
            r#"{ "version": "1", "default": "deny",
              "tools": {
                "get_chats":      {},
                "send_message":   { "rate_limit": { "max": 10, "window": 60 } },
                "delete_account": { "action": "deny", "reason": "never from an agent" },
                "leave_chat":     { "action": "deny" },
                "export_session": { "action": "require_approval", "approvals": 1, "timeout": 600,
                                    "reviewers": ["security"], "notify": ["security@example.org"] },
                "ban_user":       { "action": "require_approval", "reason": "affects other people" }
              } }"#,
        );
        assert_eq!(policy.describe("get_chats"), "allow");
        assert_eq!(
            policy.describe("send_message"),
            "allow, rate limit 10 per 60 s per agent"
        );
        assert_eq!(
            policy.describe("delete_account"),
            "deny: never from an agent"
        );
        assert_eq!(policy.describe("leave_chat"), "deny");
        assert_eq!(
            policy.describe("export_session"),
            "require approval (1 of security; timeout 600 s)"
        );
        assert_eq!(
            policy.describe("ban_user"),
            "require approval (1 of any approver; timeout 600 s): affects other people"
        );
        assert_eq!(
            policy.describe("send_sticker"),
            "deny (default: not listed)"
        );
    }

    #[test]
    fn unlisted_tools_are_described_by_the_default() {
        let allow = parse("p.json", r#"{"version": "1"}"#);
        assert_eq!(allow.describe("x"), "allow (default: not listed)");
        assert_eq!(
            Policy::require_approval_by_default().describe("x"),
            "require approval (default: not listed; 1 of any approver; timeout 600 s)"
        );
    }

    #[test]
    fn a_file_without_default_is_warned_about() {
        let warnings = parse("p.json", r#"{"version": "1", "tools": {}}"#).warnings(no_groups);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("no \"default\""), "{warnings:?}");
        let explicit = parse("p.json", r#"{"version": "1", "default": "allow"}"#);
        assert!(explicit.warnings(no_groups).is_empty());
    }

    #[test]
    fn the_built_in_policy_is_warned_about() {
        let warnings = Policy::require_approval_by_default().warnings(no_groups);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("no policy file"), "{warnings:?}");
    }

    #[test]
    fn reviewers_and_recipients_that_name_nobody_are_warned_about() {
        let policy = parse(
            "p.toml",
            r#"
            version = "1"
            default = "deny"
            [tools.export_session]
            action = "require_approval"
            reviewers = ["secuirty"]
            notify = ["security", "ops"]
            [tools.wipe]
            action = "require_approval"
            approvals = 2
            reviewers = ["alice@example.org"]
            [tools.fine]
            action = "require_approval"
            approvals = 2
            reviewers = ["security"]
            "#,
        );
        let warnings = policy.warnings(|name| name == "security");
        assert_eq!(
            warnings,
            [
                "tools.export_session.reviewers: \"secuirty\" is neither an email address nor a \
                 [groups] name, so it names nobody",
                "tools.export_session: no reviewer can decide, so every call will expire unapproved",
                "tools.export_session.notify: \"ops\" is neither an email address nor a [groups] \
                 name, so nobody is notified by it",
                "tools.wipe: needs 2 approvals but names only 1 reviewer, so every call will \
                 expire unapproved",
            ]
        );
    }
}
