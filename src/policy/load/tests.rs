use super::*;
use std::time::Duration;

use crate::policy::model::{
    ApprovalRule, DEFAULT_APPROVAL_TIMEOUT, DefaultAction, PolicyOrigin, RateLimit, RateScope, Rule,
};

const EXAMPLE_JSON: &str = r#"{ "version": "1", "default": "deny",
  "tools": {
    "get_chats":      {},
    "send_message":   { "rate_limit": { "max": 10, "window": 60 } },
    "delete_account": { "action": "deny", "reason": "never from an agent" },
    "export_session": { "action": "require_approval", "approvals": 1, "timeout": 600,
                        "reviewers": ["security"], "notify": ["security@example.org"] } } }"#;

const EXAMPLE_TOML: &str = r#"
version = "1"
default = "deny"

[tools.get_chats]

[tools.send_message]
rate_limit = { max = 10, window = 60 }

[tools.delete_account]
action = "deny"
reason = "never from an agent"

[tools.export_session]
action = "require_approval"
approvals = 1
timeout = 600
reviewers = ["security"]
notify = ["security@example.org"]
"#;

fn parse(name: &str, text: &str) -> Policy {
    match Policy::parse(Path::new(name), text) {
        Ok(policy) => policy,
        Err(error) => panic!("{error}"),
    }
}

/// The error line for an invalid document.
fn error(name: &str, text: &str) -> String {
    match Policy::parse(Path::new(name), text) {
        Ok(policy) => panic!("loaded: {policy:?}"),
        Err(error) => error.to_string(),
    }
}

fn json_error(text: &str) -> String {
    error("policies/telegram.json", text)
}

fn toml_error(text: &str) -> String {
    error("policies/telegram.toml", text)
}

fn rule<'a>(policy: &'a Policy, tool: &str) -> &'a Rule {
    match policy.tools.get(tool) {
        Some(entry) => &entry.rule,
        None => panic!("{tool} not listed"),
    }
}

fn assert_example(policy: &Policy) {
    assert_eq!(policy.default_action(), DefaultAction::Deny);
    assert!(!policy.default_is_implicit());
    assert_eq!(policy.tools().count(), 4);
    assert_eq!(rule(policy, "get_chats"), &Rule::Allow { rate_limit: None });
    assert_eq!(
        rule(policy, "send_message"),
        &Rule::Allow {
            rate_limit: RateLimit::new(10, Duration::from_secs(60))
        }
    );
    assert_eq!(
        rule(policy, "delete_account"),
        &Rule::Deny {
            reason: Some("never from an agent".to_owned())
        }
    );
    assert_eq!(
        rule(policy, "export_session"),
        &Rule::RequireApproval(ApprovalRule {
            approvals: 1,
            timeout: Duration::from_secs(600),
            reviewers: vec!["security".to_owned()],
            notify: vec!["security@example.org".to_owned()],
            reason: None,
        })
    );
}

#[test]
fn the_design_example_loads_from_json() {
    let policy = parse("policies/telegram.json", EXAMPLE_JSON);
    assert_example(&policy);
    assert_eq!(
        policy.origin(),
        &PolicyOrigin::File("policies/telegram.json".into())
    );
}

#[test]
fn the_same_policy_loads_from_toml() {
    let toml = parse("policies/telegram.toml", EXAMPLE_TOML);
    assert_example(&toml);
    let json = parse("policies/telegram.json", EXAMPLE_JSON);
    assert_eq!(format!("{:?}", toml.tools), format!("{:?}", json.tools));
}

#[test]
fn the_format_follows_the_extension() {
    assert_eq!(
        PolicyFormat::from_path(Path::new("a/b.JSON")),
        Some(PolicyFormat::Json)
    );
    assert_eq!(
        PolicyFormat::from_path(Path::new("b.policy.toml")),
        Some(PolicyFormat::Toml)
    );
    assert_eq!(
        PolicyFormat::from_path(Path::new("b.YML")),
        Some(PolicyFormat::Yaml)
    );
    assert_eq!(PolicyFormat::from_path(Path::new("b.policy")), None);
    assert_eq!(
        error("policies/telegram.policy", "version: \"1\""),
        "policies/telegram.policy: cannot tell the policy file's format from its name; \
         name it *.json, *.toml or *.yaml"
    );
}

#[test]
fn omitted_settings_take_their_defaults() {
    let policy = parse(
        "p.json",
        r#"{"version": "1", "tools": {"a": {}, "b": {"action": "allow"},
                "c": {"action": "deny"}, "d": {"action": "require_approval"}}}"#,
    );
    assert_eq!(policy.default_action(), DefaultAction::Allow);
    assert!(policy.default_is_implicit());
    assert_eq!(policy.description(), None);
    assert_eq!(rule(&policy, "a"), &Rule::Allow { rate_limit: None });
    assert_eq!(rule(&policy, "b"), &Rule::Allow { rate_limit: None });
    assert_eq!(rule(&policy, "c"), &Rule::Deny { reason: None });
    assert_eq!(
        rule(&policy, "d"),
        &Rule::RequireApproval(ApprovalRule {
            approvals: 1,
            timeout: DEFAULT_APPROVAL_TIMEOUT,
            reviewers: Vec::new(),
            notify: Vec::new(),
            reason: None,
        })
    );
    assert_eq!(DEFAULT_APPROVAL_TIMEOUT, Duration::from_secs(600));

    let bare = parse("p.json", r#"{"version": "1"}"#);
    assert_eq!(bare.tools().count(), 0);
    let defaults = parse("p.json", r#"{"version": 1, "default": "require_approval"}"#);
    assert_eq!(defaults.default_action(), DefaultAction::RequireApproval);
    assert_eq!(
        defaults.default_rule,
        Policy::require_approval_by_default().default_rule
    );
}

#[test]
fn description_and_approval_notes_are_kept() {
    let policy = parse(
        "p.toml",
        "version = \"1\"\ndescription = \"Telegram\"\n\
         [tools.ban]\naction = \"require_approval\"\nreason = \"  affects others \"\n",
    );
    assert_eq!(policy.description(), Some("Telegram"));
    match rule(&policy, "ban") {
        Rule::RequireApproval(approval) => {
            assert_eq!(approval.reason(), Some("affects others"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_unknown_key_at_the_top_is_an_error() {
    assert_eq!(
        json_error(r#"{"version": "1", "defualt": "deny"}"#),
        "policies/telegram.json: defualt: unknown field `defualt`, expected one of `version`, \
         `description`, `default`, `tools`, `resources`, `prompts`, `hide`, `mode` (line 1, column 26)"
    );
}

#[test]
fn an_unknown_key_in_a_rule_is_an_error() {
    assert_eq!(
        json_error(r#"{"version": "1", "tools": {"delete_chat": {"acton": "deny"}}}"#),
        "policies/telegram.json: tools.delete_chat.acton: unknown field `acton`, expected one \
         of `action`, `reason`, `rate_limit`, `per`, `approvals`, `timeout`, `reviewers`, `notify`, \
         `accept_risk`, `rules` (line 1, column 50)"
    );
    assert_eq!(
        toml_error("version = \"1\"\n[tools.delete_chat]\nacton = \"deny\"\n"),
        "policies/telegram.toml: tools.delete_chat.acton: unknown field `acton`, expected one \
         of `action`, `reason`, `rate_limit`, `per`, `approvals`, `timeout`, `reviewers`, `notify`, \
         `accept_risk`, `rules` (line 3, column 1)"
    );
}

#[test]
fn an_unknown_key_in_a_rate_limit_is_an_error() {
    assert_eq!(
        json_error(
            r#"{"version": "1", "tools": {"send": {"rate_limit": {"max": 1, "window": 60, "burst": 5}}}}"#
        ),
        "policies/telegram.json: tools.send.rate_limit.burst: unknown field `burst`, \
         expected `max` or `window` (line 1, column 82)"
    );
}

#[test]
fn a_bad_action_is_an_error() {
    assert_eq!(
        json_error(r#"{"version": "1", "tools": {"x": {"action": "block"}}}"#),
        "policies/telegram.json: tools.x.action: unknown action \"block\"; use \"allow\", \
         \"deny\" or \"require_approval\" (line 1, column 50)"
    );
    assert_eq!(
        toml_error("version = \"1\"\ndefault = \"ask\"\n"),
        "policies/telegram.toml: default: unknown action \"ask\"; use \"allow\", \"deny\" \
         or \"require_approval\" (line 2, column 11)"
    );
}

#[test]
fn a_zero_max_is_an_error() {
    assert_eq!(
        json_error(
            r#"{"version": "1", "tools": {"send_message": {"rate_limit": {"max": 0, "window": 60}}}}"#
        ),
        "policies/telegram.json: tools.send_message.rate_limit.max: expected a positive whole \
         number of calls, found 0 (line 1, column 67)"
    );
}

#[test]
fn a_negative_window_is_an_error() {
    assert_eq!(
        json_error(
            r#"{"version": "1", "tools": {"send_message": {"rate_limit": {"max": 10, "window": -5}}}}"#
        ),
        "policies/telegram.json: tools.send_message.rate_limit.window: expected a positive \
         whole number of seconds, found -5 (line 1, column 82)"
    );
    assert_eq!(
        toml_error(
            "version = \"1\"\n[tools.send_message]\nrate_limit = { max = 10, window = -5 }\n"
        ),
        "policies/telegram.toml: tools.send_message.rate_limit.window: expected a positive \
         whole number of seconds, found -5 (line 3, column 35)"
    );
}

#[test]
fn numbers_must_be_whole_and_in_range() {
    let cases = [
        (
            r#""window": 1.5"#,
            "window: expected a positive whole number of seconds, found 1.5",
        ),
        (
            r#""window": 60.0"#,
            "window: expected a positive whole number of seconds, found 60.0",
        ),
        (
            r#""window": "60""#,
            "window: invalid type: string \"60\", expected a positive whole number of seconds",
        ),
        (
            r#""window": 0"#,
            "window: expected a positive whole number of seconds, found 0",
        ),
        (
            r#""window": 31536001"#,
            "window: expected at most 31536000 seconds, found 31536001",
        ),
    ];
    for (window, expected) in cases {
        let text = format!(
            r#"{{"version": "1", "tools": {{"s": {{"rate_limit": {{"max": 1, {window}}}}}}}}}"#
        );
        let message = json_error(&text);
        assert!(
            message.contains(&format!("tools.s.rate_limit.{expected}")),
            "{message}"
        );
    }
    let message = json_error(
        r#"{"version": "1", "tools": {"s": {"rate_limit": {"max": 100001, "window": 1}}}}"#,
    );
    assert!(
        message.contains("max: expected at most 100000 calls, found 100001"),
        "{message}"
    );
    let message = json_error(
        r#"{"version": "1", "tools": {"s": {"action": "require_approval", "approvals": 0}}}"#,
    );
    assert!(
        message
            .contains("tools.s.approvals: expected a positive whole number of approvals, found 0"),
        "{message}"
    );
    let message = json_error(
        r#"{"version": "1", "tools": {"s": {"action": "require_approval", "timeout": 0}}}"#,
    );
    assert!(
        message.contains("tools.s.timeout: expected a positive whole number of seconds, found 0"),
        "{message}"
    );
}

#[test]
fn a_rate_limit_needs_both_keys() {
    let message = json_error(r#"{"version": "1", "tools": {"s": {"rate_limit": {"max": 1}}}}"#);
    assert!(
        message.contains("tools.s.rate_limit: missing field `window`"),
        "{message}"
    );
    let message = json_error(r#"{"version": "1", "tools": {"s": {"rate_limit": "5/hour"}}}"#);
    assert!(
        message.contains("tools.s.rate_limit: invalid type: string \"5/hour\", expected a rate limit with the keys \"max\" (calls) and \"window\" (seconds)"),
        "{message}"
    );
}

#[test]
fn an_unsupported_or_missing_version_is_an_error() {
    assert_eq!(
        json_error(r#"{"version": "2", "tools": {}}"#),
        "policies/telegram.json: version: unsupported policy version \"2\"; this Airlock \
         reads version \"1\" (line 1, column 15)"
    );
    assert!(json_error(r#"{"version": 2}"#).contains("unsupported policy version 2;"));
    assert_eq!(
        json_error(r#"{"default": "deny", "tools": {}}"#),
        "policies/telegram.json: version: missing; add \"version\": \"1\" at the top of the file"
    );
    assert_eq!(
        toml_error("default = \"deny\"\n"),
        "policies/telegram.toml: version: missing; add version = \"1\" at the top of the file"
    );
}

#[test]
fn resources_and_prompts_take_rules_by_name_or_glob_in_their_order() {
    let policy = parse(
        "p.json",
        r#"{"version": "1", "default": "deny",
                "resources": {"telegram://account/*": {"action": "deny"}, "*": {}},
                "prompts": {"summarize_chat": {"action": "require_approval", "reason": "a transcript"}}}"#,
    );
    let resources: Vec<&str> = policy.resources().map(|(name, _)| name).collect();
    assert_eq!(resources, ["telegram://account/*", "*"]);
    assert_eq!(policy.prompts().count(), 1);
    assert!(
        json_error(
            r#"{"version": "1", "resources": {"a": {"rate_limit": {"max": 1, "window": 1}}}}"#
        )
        .contains("resources.a.rate_limit: `rate_limit` applies only to tools")
    );
    assert!(
        json_error(r#"{"version": "1", "prompts": {"a": {}, "a": {"action": "deny"}}}"#)
            .contains("\"a\" is listed twice")
    );
    assert!(
        json_error(r#"{"version": "1", "prompts": {"a": {"actoin": "deny"}}}"#)
            .contains("prompts.a.actoin: unknown field `actoin`")
    );
}

#[test]
fn rate_limits_count_per_agent_unless_the_rule_says_per_session() {
    let policy = parse(
        "p.json",
        r#"{"version": "1", "tools": {
                "a": {"rate_limit": {"max": 5, "window": 60}},
                "b": {"rate_limit": {"max": 5, "window": 60}, "per": "session"},
                "c": {"rate_limit": {"max": 5, "window": 60}, "per": "agent"}}}"#,
    );
    let per = |tool| match rule(&policy, tool) {
        Rule::Allow {
            rate_limit: Some(limit),
        } => limit.per(),
        other => panic!("{other:?}"),
    };
    assert_eq!(per("a"), RateScope::Agent);
    assert_eq!(per("b"), RateScope::Session);
    assert_eq!(per("c"), RateScope::Agent);
}

#[test]
fn settings_that_do_not_fit_the_action_are_errors() {
    let cases = [
        (
            r#"{"action": "deny", "approvals": 2}"#,
            "tools.x.approvals: `approvals` applies only to \"action\": \"require_approval\"",
        ),
        (
            r#"{"timeout": 60}"#,
            "tools.x.timeout: `timeout` applies only to \"action\": \"require_approval\"",
        ),
        (
            r#"{"action": "allow", "reviewers": ["a@b"]}"#,
            "tools.x.reviewers: `reviewers` applies only",
        ),
        (
            r#"{"action": "deny", "notify": ["a@b"]}"#,
            "tools.x.notify: `notify` applies only",
        ),
        (
            r#"{"action": "deny", "rate_limit": {"max": 1, "window": 1}}"#,
            "tools.x.rate_limit: `rate_limit` applies only to allowed tools",
        ),
        (
            r#"{"action": "require_approval", "rate_limit": {"max": 1, "window": 1}}"#,
            "tools.x.rate_limit: `rate_limit` applies only to allowed tools",
        ),
        (
            r#"{"reason": "why not"}"#,
            "tools.x.reason: `reason` applies only to \"action\": \"deny\"",
        ),
        (
            r#"{"per": "session"}"#,
            "tools.x.per: `per` applies only to rules with a \"rate_limit\"",
        ),
        (
            r#"{"rate_limit": {"max": 1, "window": 1}, "per": "tool"}"#,
            "tools.x.per: unknown scope \"tool\"",
        ),
    ];
    for (rule, expected) in cases {
        let message = json_error(&format!(r#"{{"version": "1", "tools": {{"x": {rule}}}}}"#));
        assert!(
            message.starts_with(&format!("policies/telegram.json: {expected}")),
            "{message}"
        );
    }
}

#[test]
fn nulls_blanks_and_repeats_are_errors() {
    let message = json_error(r#"{"version": "1", "default": null}"#);
    assert!(message.contains("default: invalid type: null"), "{message}");
    let message =
        json_error(r#"{"version": "1", "tools": {"x": {"action": "deny", "reason": " "}}}"#);
    assert!(
        message.contains("tools.x.reason: expected a non-empty string"),
        "{message}"
    );
    let message = json_error(
        r#"{"version": "1", "tools": {"x": {"action": "require_approval", "reviewers": ["a@b", "a@b"]}}}"#,
    );
    assert!(
        message.contains("tools.x.reviewers: \"a@b\" is listed twice"),
        "{message}"
    );
    let message = json_error(r#"{"version": "1", "tools": {"x": {"action": "deny"}, "x": {}}}"#);
    assert!(
        message.contains("tools: tool \"x\" is listed twice"),
        "{message}"
    );
    let message =
        json_error(r#"{"version": "1", "tools": {"x": {"action": "deny", "action": "allow"}}}"#);
    assert!(
        message.contains("tools.x: duplicate field `action`"),
        "{message}"
    );
    let message = toml_error("version = \"1\"\nversion = \"1\"\n");
    assert!(message.contains("duplicate key"), "{message}");
}

#[test]
fn a_wildcard_holds_only_rules_and_empty_tool_names_are_refused() {
    let message = json_error(r#"{"version": "1", "tools": {"*": {"action": "deny"}}}"#);
    assert_eq!(
        message,
        "policies/telegram.json: tools.*.action: the \"*\" entry holds only \"rules\" (for every \
         tool); give other settings per tool, or use \"default\""
    );
    let message = json_error(r#"{"version": "1", "tools": {"": {}}}"#);
    assert!(message.contains("\"\" is not a tool name"), "{message}");
}

#[test]
fn syntax_errors_and_trailing_content_name_the_position() {
    assert_eq!(
        json_error("{\"version\": \"1\",\n  \"tools\": {\n}"),
        "policies/telegram.json: EOF while parsing an object (line 3, column 1)"
    );
    let message = json_error(r#"{"version": "1"} {}"#);
    assert_eq!(
        message,
        "policies/telegram.json: trailing characters (line 1, column 18)"
    );
    let message = toml_error("version = \"1\"\n[tools\n");
    assert!(message.starts_with("policies/telegram.toml: "), "{message}");
    assert!(message.ends_with("(line 2, column 7)"), "{message}");
    let message = json_error("");
    assert!(message.contains("EOF while parsing a value"), "{message}");
}

#[test]
fn only_objects_are_read_as_objects() {
    assert_eq!(
        json_error(r#"["1", null, "allow", {}]"#),
        "policies/telegram.json: invalid type: sequence, expected a policy with the keys \
         \"version\", \"default\", \"tools\", \"hide\", \"resources\" and \"prompts\" (line 1, column 1)"
    );
    let message = json_error(r#"{"version": "1", "tools": {"s": {"rate_limit": [10, 60]}}}"#);
    assert!(
        message.contains("tools.s.rate_limit: invalid type: sequence, expected a rate limit"),
        "{message}"
    );
    let message = json_error(r#"{"version": "1", "tools": {"s": ["deny"]}}"#);
    assert!(
        message.contains("tools.s: invalid type: sequence, expected a rule"),
        "{message}"
    );
}

#[test]
fn a_byte_order_mark_is_not_content() {
    let policy = parse(
        "p.json",
        "\u{feff}{\"version\": \"1\", \"default\": \"deny\"}",
    );
    assert_eq!(policy.default_action(), DefaultAction::Deny);
}

#[test]
fn an_unreadable_file_names_the_file_and_the_cause() {
    let message = match Policy::load(Path::new("/nonexistent/telegram.json")) {
        Err(error) => error.to_string(),
        Ok(_) => panic!("loaded a missing file"),
    };
    assert!(
        message.starts_with("/nonexistent/telegram.json: cannot read the policy file: "),
        "{message}"
    );
    let message = match Policy::from_bytes(Path::new("p.json"), vec![0xff, 0xfe]) {
        Err(error) => error.to_string(),
        Ok(_) => panic!("loaded garbage"),
    };
    assert_eq!(
        message,
        "p.json: cannot read the policy file: the file is not UTF-8"
    );
}
