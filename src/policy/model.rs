//! The policy as Airlock enforces it: one rule per tool, per resource (by URI or glob) and per
//! prompt (by name or glob), plus a default for everything not listed.
//!
//! These are the validated domain types the loader (`load.rs`) produces; nothing else builds a
//! [`Policy`]. Their invariants hold by construction, so the proxy never re-checks them: a rate
//! limit allows at least one call over a non-empty window; an approval needs at least one approval
//! and has a non-zero timeout; a reason is never blank; no key `"*"` or `""` is a tool name; and
//! a rule carries only the settings that mean something for its action (a denied tool has no rate
//! limit, an allowed tool no reviewers). The default is kept both as the file said it (for
//! `airlock check`) and as a ready [`Rule`] (for evaluation).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::rules::{CondRule, Mode};

/// Seconds an approval waits for reviewers when the rule does not say (`timeout`).
pub const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(600);

/// A loaded, valid policy for one upstream.
#[derive(Debug, Clone)]
pub struct Policy {
    pub(super) origin: PolicyOrigin,
    pub(super) description: Option<String>,
    pub(super) default: DefaultAction,
    /// `false` when the file has no `default` key (PolicyLayer then means `allow`).
    pub(super) default_is_explicit: bool,
    /// [`Self::default`] as a rule, with the stock approval settings for `require_approval`.
    pub(super) default_rule: Rule,
    pub(super) tools: BTreeMap<String, ToolEntry>,
    /// The `"*"` tool's rules: checked after each tool's own (not for tools a `default: deny`
    /// policy does not list), their counters scoped `_global`.
    pub(super) wildcard: Vec<CondRule>,
    /// Tools removed from `tools/list` and refused (`"*"`: every tool).
    pub(super) hide: Vec<String>,
    /// `audit`: verdicts are recorded, and calls pass (but `hide` and `[policy] sensitive` hold).
    pub(super) mode: Mode,
    /// Resource URIs or globs (`*` any run, `?` one character), in the file's order.
    pub(super) resources: Vec<(String, Rule)>,
    /// Prompt names or globs, in the file's order.
    pub(super) prompts: Vec<(String, Rule)>,
}

/// Where a policy came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyOrigin {
    /// Loaded from this file.
    File(PathBuf),
    /// The built-in policy of an upstream configured without a `policy` file.
    BuiltIn,
}

/// What happens to a tool the policy does not list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction {
    Allow,
    Deny,
    RequireApproval,
}

/// A listed tool: its rule (the JSON form's `action`, `rate_limit`, ...), its conditional
/// `rules`, and whether its risk is accepted (`accept_risk`: `[policy] sensitive` lets it be).
#[derive(Debug, Clone)]
pub struct ToolEntry {
    pub(super) rule: Rule,
    pub(super) rules: Vec<CondRule>,
    pub(super) accept_risk: bool,
}

impl ToolEntry {
    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    pub fn rules(&self) -> &[CondRule] {
        &self.rules
    }

    pub fn accept_risk(&self) -> bool {
        self.accept_risk
    }

    /// Whether the entry speaks for `agent`: it has a rule of its own, no `rules` (`rules: []`
    /// allows), or a rule whose `agents` match. Otherwise the tool is treated as not listed.
    pub fn listed_for(&self, agent: &str) -> bool {
        self.rule != (Rule::Allow { rate_limit: None })
            || self.rules.is_empty()
            || self.rules.iter().any(|rule| rule.applies_to(agent))
    }
}

/// What the policy does with calls to one tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Forward the call, within the rate limit if there is one.
    Allow { rate_limit: Option<RateLimit> },
    /// Never forward the call; `reason` is shown to the agent.
    Deny { reason: Option<String> },
    /// Park the call until reviewers decide.
    RequireApproval(ApprovalRule),
}

/// At most `max` calls in any `window` (a sliding window), per agent or per session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    max: u32,
    window: Duration,
    per: RateScope,
}

/// Whose calls a rate limit counts together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RateScope {
    /// The agent's, across its sessions, tokens, Airlock instances and protocol revisions (the
    /// default: a new session must not bring a new budget).
    #[default]
    Agent,
    /// One session's (for a 2026-07-28 client, which has no sessions, one token's): PolicyLayer's
    /// behaviour, with `"per": "session"` in the rule.
    Session,
}

/// How a call that needs a human is decided.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApprovalRule {
    pub(super) approvals: u32,
    pub(super) timeout: Duration,
    pub(super) reviewers: Vec<String>,
    pub(super) notify: Vec<String>,
    pub(super) reason: Option<String>,
}

impl Policy {
    /// The policy of an upstream without a policy file: `{"version":"1","default":"require_approval"}`.
    /// Nothing runs without a human until someone writes a policy.
    pub fn require_approval_by_default() -> Self {
        Self {
            origin: PolicyOrigin::BuiltIn,
            description: None,
            default: DefaultAction::RequireApproval,
            default_is_explicit: true,
            default_rule: DefaultAction::RequireApproval.to_rule(),
            tools: BTreeMap::new(),
            wildcard: Vec::new(),
            hide: Vec::new(),
            mode: Mode::Enforce,
            resources: Vec::new(),
            prompts: Vec::new(),
        }
    }

    pub fn origin(&self) -> &PolicyOrigin {
        &self.origin
    }

    /// The file's `description`, if it has one.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// What happens to tools the policy does not list.
    pub fn default_action(&self) -> DefaultAction {
        self.default
    }

    /// `true` when the file has no `default` key, so unlisted tools are allowed without the author
    /// having said so; `airlock check` warns about it.
    pub fn default_is_implicit(&self) -> bool {
        !self.default_is_explicit
    }

    /// The listed tools and their entries, by tool name.
    pub fn tools(&self) -> impl Iterator<Item = (&str, &ToolEntry)> {
        self.tools
            .iter()
            .map(|(name, entry)| (name.as_str(), entry))
    }

    /// The `"*"` rules.
    pub fn wildcard(&self) -> &[CondRule] {
        &self.wildcard
    }

    /// Whether `tool` is hidden: removed from `tools/list`, and its calls refused.
    pub fn hides(&self, tool: &str) -> bool {
        self.hide.iter().any(|name| name == "*" || name == tool)
    }

    /// The whole policy's mode (`mode: audit` records verdicts and lets calls pass).
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The listed resources (URIs or globs) and their rules, in the file's order.
    pub fn resources(&self) -> impl Iterator<Item = (&str, &Rule)> {
        self.resources
            .iter()
            .map(|(name, rule)| (name.as_str(), rule))
    }

    /// The listed prompts (names or globs) and their rules, in the file's order.
    pub fn prompts(&self) -> impl Iterator<Item = (&str, &Rule)> {
        self.prompts
            .iter()
            .map(|(name, rule)| (name.as_str(), rule))
    }
}

impl PolicyOrigin {
    /// The file, or `None` for the built-in policy.
    pub fn path(&self) -> Option<&Path> {
        match self {
            PolicyOrigin::File(path) => Some(path),
            PolicyOrigin::BuiltIn => None,
        }
    }
}

impl DefaultAction {
    /// The rule applied to unlisted tools: approvals use the stock settings (one approval by any
    /// approver, [`DEFAULT_APPROVAL_TIMEOUT`]).
    pub(super) fn to_rule(self) -> Rule {
        match self {
            DefaultAction::Allow => Rule::Allow { rate_limit: None },
            DefaultAction::Deny => Rule::Deny { reason: None },
            DefaultAction::RequireApproval => Rule::RequireApproval(ApprovalRule::stock(None)),
        }
    }

    /// The spelling used in policy files: `allow`, `deny`, `require_approval`.
    pub fn as_str(self) -> &'static str {
        match self {
            DefaultAction::Allow => "allow",
            DefaultAction::Deny => "deny",
            DefaultAction::RequireApproval => "require_approval",
        }
    }
}

impl RateLimit {
    /// A limit of `max` calls per `window` for each agent; `None` unless `max >= 1` and `window`
    /// is not zero.
    pub fn new(max: u32, window: Duration) -> Option<Self> {
        (max >= 1 && !window.is_zero()).then_some(Self {
            max,
            window,
            per: RateScope::Agent,
        })
    }

    /// The same limit, counted per `per` instead.
    pub fn counted_per(self, per: RateScope) -> Self {
        Self { per, ..self }
    }

    /// Whose calls count together.
    pub fn per(&self) -> RateScope {
        self.per
    }

    /// Calls allowed per window (at least 1).
    pub fn max(&self) -> u32 {
        self.max
    }

    /// The sliding window (never zero).
    pub fn window(&self) -> Duration {
        self.window
    }
}

impl ApprovalRule {
    /// Distinct approvals needed (at least 1).
    pub fn approvals(&self) -> u32 {
        self.approvals
    }

    /// How long the call waits for a decision before it expires (never zero).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// User emails and `[groups]` names who may decide; empty means any approver.
    pub fn reviewers(&self) -> &[String] {
        &self.reviewers
    }

    /// Addresses (or `[groups]` names) told about the call besides the configured recipients.
    pub fn notify(&self) -> &[String] {
        &self.notify
    }

    /// The rule's `reason`: a note for reviewers on why this tool needs a human.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// The stock approval (one approver, any of them, [`DEFAULT_APPROVAL_TIMEOUT`]) with `reason`.
    pub fn stock(reason: Option<String>) -> Self {
        Self {
            approvals: 1,
            timeout: DEFAULT_APPROVAL_TIMEOUT,
            reviewers: Vec::new(),
            notify: Vec::new(),
            reason,
        }
    }

    /// This rule and `other` together (DESIGN.md, "Policy depth"): the larger quorum, the shorter
    /// timeout, only reviewers both lists allow (an empty list allows anyone), both `notify`
    /// lists, and both reasons.
    pub fn combine(self, other: ApprovalRule) -> ApprovalRule {
        let reviewers = match (self.reviewers.is_empty(), other.reviewers.is_empty()) {
            (true, _) => other.reviewers,
            (_, true) => self.reviewers,
            _ => self
                .reviewers
                .into_iter()
                .filter(|name| other.reviewers.contains(name))
                .collect(),
        };
        let mut notify = self.notify;
        for name in other.notify {
            if !notify.contains(&name) {
                notify.push(name);
            }
        }
        let reason = match (self.reason, other.reason) {
            (Some(a), Some(b)) if a != b => Some(format!("{a}; {b}")),
            (a, b) => a.or(b),
        };
        ApprovalRule {
            approvals: self.approvals.max(other.approvals),
            timeout: self.timeout.min(other.timeout),
            reviewers,
            notify,
            reason,
        }
    }

    /// The same rule with `why` added to its reason.
    pub fn because(mut self, why: String) -> ApprovalRule {
        self.reason = Some(match self.reason {
            Some(reason) => format!("{reason}; {why}"),
            None => why,
        });
        self
    }
}
