//! Intercept's YAML: its documented format loads, and each of its validation errors (POLICY.md,
//! "Validation errors") stops loading with the file, the key path, the line and a fix.

use std::path::Path;

use crate::policy::Policy;

fn error(text: &str) -> String {
    match Policy::parse(Path::new("policies/github.yaml"), text) {
        Ok(policy) => panic!("loaded: {policy:?}"),
        Err(error) => error.to_string(),
    }
}

const HEAD: &str = "version: \"1\"\ntools:\n  create_issue:\n    rules:\n";

#[test]
fn policy_md_github_example_loads() {
    let text = r#"
version: "1"
description: "GitHub MCP server policies"

hide:
  - transfer_repository
  - list_webhooks

tools:
  create_issue:
    rules:
      - name: "hourly issue limit"
        rate_limit: 5/hour
        on_deny: "Hourly limit of 5 new issues reached"

  delete_repository:
    rules:
      - name: "block repo deletion"
        action: "deny"
        on_deny: "Repository deletion is not permitted via AI agents"

  "*":
    rules:
      - name: "global rate limit"
        rate_limit: 60/minute
"#;
    let policy = Policy::parse(Path::new("github.yaml"), text).unwrap_or_else(|e| panic!("{e}"));
    assert!(policy.hides("list_webhooks"));
    assert_eq!(policy.wildcard().len(), 1);
    assert_eq!(policy.description(), Some("GitHub MCP server policies"));
    assert!(
        policy.default_is_implicit(),
        "no default: allow, as in Intercept"
    );
}

#[test]
fn an_unknown_key_stops_loading_with_its_line() {
    let message = error(&format!(
        "{HEAD}      - name: \"limit\"\n        rate_limt: 5/hour\n"
    ));
    assert!(
        message.starts_with(
            "policies/github.yaml: tools.create_issue.rules[0].rate_limt: unknown field `rate_limt`"
        ),
        "{message}"
    );
    assert!(message.contains("(line 6, column 9)"), "{message}");
}

#[test]
fn each_documented_validation_error_is_refused() {
    let rule = |body: &str| format!("{HEAD}      - name: \"r\"\n{body}");
    let cases: Vec<(String, &str)> = vec![
        (
            "version: \"2\"\ntools: {}\n".to_owned(),
            "unsupported policy version",
        ),
        (
            "version: \"1\"\ndefault: maybe\n".to_owned(),
            "unknown action \"maybe\"",
        ),
        (
            "version: \"1\"\nhide: [\"\"]\n".to_owned(),
            "expected a non-empty string",
        ),
        (
            "version: \"1\"\nhide: [a, a]\n".to_owned(),
            "duplicate entry \"a\"",
        ),
        (
            format!("{HEAD}      - action: deny\n"),
            "every rule needs a \"name\"",
        ),
        (
            rule("        action: allowish\n"),
            "unknown rule action \"allowish\"",
        ),
        (
            rule(
                "        action: deny\n        conditions:\n          - {path: args.a, op: eq, value: 1}\n",
            ),
            "deny rules must not have conditions",
        ),
        (
            rule("        on_deny: \"x\"\n"),
            "evaluate rules must have at least one condition",
        ),
        (
            rule("        conditions:\n          - {path: amount, op: eq, value: 1}\n"),
            "path must start with \"args.\" or \"state.\"",
        ),
        (
            rule("        conditions:\n          - {path: args.a, op: like, value: 1}\n"),
            "unknown operator \"like\"",
        ),
        (
            rule("        conditions:\n          - {path: args.a, op: in, value: usd}\n"),
            "needs a list value",
        ),
        (
            rule("        conditions:\n          - {path: args.a, op: lte, value: lots}\n"),
            "needs a numeric value",
        ),
        (
            rule("        conditions:\n          - {path: args.a, op: exists, value: yes}\n"),
            "\"exists\" needs true or false",
        ),
        (
            rule("        conditions:\n          - {path: args.a, op: regex, value: 5}\n"),
            "a regex value must be a string",
        ),
        (
            rule("        conditions:\n          - {path: args.a, op: regex, value: \"(\"}\n"),
            "invalid regex",
        ),
        (
            rule(
                "        conditions:\n          - {path: args.a, op: eq, value: 1}\n        state: {counter: \"\", window: day}\n",
            ),
            "expected a non-empty string",
        ),
        (
            rule(
                "        conditions:\n          - {path: args.a, op: eq, value: 1}\n        state: {counter: c, window: week}\n",
            ),
            "unknown window \"week\"",
        ),
        (
            rule(
                "        conditions:\n          - {path: args.a, op: eq, value: 1}\n        state: {counter: c, window: day, increment_from: amount}\n",
            ),
            "increment_from must start with \"args.\"",
        ),
        (
            rule(
                "        conditions:\n          - {path: state.create_issue.nope, op: lte, value: 1}\n",
            ),
            "state.create_issue.nope is kept by no rule",
        ),
        (
            rule("        rate_limit: 0/hour\n"),
            "rate_limit count must be a positive whole number",
        ),
        (
            rule("        rate_limit: 5/week\n"),
            "rate_limit window must be minute, hour or day",
        ),
        (
            rule(
                "        rate_limit: 5/hour\n        conditions:\n          - {path: args.a, op: eq, value: 1}\n",
            ),
            "rate_limit cannot be combined with conditions or state",
        ),
        (
            rule("        rate_limit: 5/hour\n        action: deny\n"),
            "rate_limit cannot be used with this action",
        ),
        (
            format!(
                "{HEAD}      - name: a\n        rate_limit: 5/hour\n      - name: b\n        rate_limit: 9/hour\n"
            ),
            "duplicate state counter \"_rate_hour\" (also used by rules[0])",
        ),
        (
            rule(
                "        approvals: 2\n        conditions:\n          - {path: args.a, op: eq, value: 1}\n",
            ),
            "`approvals` applies only to \"action\": \"require_approval\"",
        ),
    ];
    for (text, expected) in cases {
        let message = error(&text);
        assert!(
            message.contains(expected),
            "{expected:?} not in {message:?} for\n{text}"
        );
        assert!(message.starts_with("policies/github.yaml: "), "{message}");
    }
}

#[test]
fn every_intercept_template_loads_and_allows_what_it_lists() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/intercept-templates");
    let sensitive = crate::policy::Sensitivity {
        credential: true,
        destructive: false,
    };
    let mut loaded = 0;
    let mut parked = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let policy = Policy::load(&path).unwrap_or_else(|e| panic!("{e}"));
        for (name, entry) in policy.tools() {
            assert!(entry.rules().is_empty(), "{}: {name}", path.display());
            assert_eq!(policy.describe(name), "allow", "{}: {name}", path.display());
            let notes = policy.risk_notes(&serde_json::json!({ "name": name }), sensitive);
            if let Some(note) = notes.first()
                && note.starts_with("looks credential-exporting")
            {
                assert!(note.ends_with("parked by [policy] sensitive"), "{note}");
                let file = path.file_name().map(|f| f.to_string_lossy().into_owned());
                parked.push(format!("{}: {name}", file.unwrap_or_default()));
            }
        }
        loaded += 1;
    }
    assert!(loaded >= 50, "only {loaded} templates in {}", dir.display());
    // What the templates allow and `sensitive` parks anyway (`check` lists the same).
    parked.sort();
    assert_eq!(
        parked,
        [
            "azure.yaml: keyvault",
            "neon.yaml: get_connection_string",
            "supabase.yaml: get_publishable_keys"
        ],
        "the credential tools the templates allow"
    );
}
