use serde_json::json;

use super::*;

fn risk_of(tool: Value) -> Option<Risk> {
    classify(&tool).risk()
}

#[test]
fn credential_like_names_are_spotted_in_every_spelling() {
    for name in [
        "export_session",
        "exportSession",
        "get-api-token",
        "read_secrets",
        "getPassword",
        "createAPIKey",
        "get_private_key",
    ] {
        assert!(looks_credential_exporting(name), "{name}");
    }
    for name in [
        "get_chats",
        "send_message",
        "tokenize_text",
        "delete_chat",
        "list_tokens_supported_chains",
        "get_token_price",
        "list_sessions",
        "get_secret_scanning_alert",
    ] {
        assert!(!looks_credential_exporting(name), "{name}");
    }
}

#[test]
fn the_chinese_export_session_is_credential_by_its_description_and_its_output() {
    let tool = json!({
        "name": "export",
        "title": "导出Session",
        "description": "导出指定账号的Session字符串",
        "outputSchema": {"type": "object", "properties": {"session_string": {"type": "string"}}},
        "annotations": {"readOnlyHint": true}
    });
    let found = classify(&tool);
    assert_eq!(found.risk(), Some(Risk::Credential));
    let places: Vec<Place> = found.credential.iter().map(|e| e.place).collect();
    assert_eq!(places, [Place::Description, Place::Output], "{found:?}");
    assert_eq!(
        found.explain(Risk::Credential).as_deref(),
        Some(
            "looks credential-exporting: description '导出指定账号的Session字符串', \
             output field `session_string`"
        )
    );
}

#[test]
fn taking_a_credential_is_not_handing_one_over() {
    let import =
        json!({"name": "add_account_with_session", "description": "使用Session字符串导入已有账号"});
    assert_ne!(risk_of(import), Some(Risk::Credential));
    let login = json!({"name": "login", "description": "Log in with the user's password."});
    assert_ne!(risk_of(login), Some(Risk::Credential));
}

#[test]
fn destructive_tools_are_named_by_what_they_do_and_reads_are_not() {
    for name in [
        "delete_chat",
        "send_message",
        "create_refund",
        "batch_send_message",
    ] {
        assert_eq!(
            risk_of(json!({"name": name})),
            Some(Risk::Destructive),
            "{name}"
        );
    }
    for name in ["get_chats", "list_deleted_messages", "search_sent_emails"] {
        assert_eq!(risk_of(json!({"name": name})), None, "{name}");
    }
    let zh = json!({"name": "clean", "description": "删除指定的代理配置"});
    assert_eq!(risk_of(zh), Some(Risk::Destructive));
}

#[test]
fn annotations_never_lower_a_risk() {
    let claims_read_only = json!({"name": "delete_chat", "annotations": {"readOnlyHint": true, "destructiveHint": false}});
    assert_eq!(risk_of(claims_read_only), Some(Risk::Destructive));
    let says_destructive = json!({"name": "tidy", "annotations": {"destructiveHint": true}});
    assert_eq!(risk_of(says_destructive), Some(Risk::Destructive));
}

/// One labelled tool of `tests/data/risk_tools.jsonl` as `tools/list` would list it.
fn labelled() -> Vec<(Value, String)> {
    let text = include_str!("../../../tests/data/risk_tools.jsonl");
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let row: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            let properties: serde_json::Map<String, Value> = row["output"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|field| (field.to_owned(), json!({})))
                .collect();
            let mut tool = json!({
                "name": row["name"],
                "description": row["description"],
                "annotations": row["annotations"],
            });
            if let Some(title) = row["title"].as_str() {
                tool["title"] = json!(title);
            }
            if !properties.is_empty() {
                tool["outputSchema"] = json!({"type": "object", "properties": properties});
            }
            let label = row["label"].as_str().unwrap_or_default().to_owned();
            (tool, label)
        })
        .collect()
}

/// Precision and recall of one class: (true positives, false positives, false negatives).
fn score(counts: (u32, u32, u32)) -> (f64, f64) {
    let (tp, fp, fn_) = counts;
    let precision = f64::from(tp) / f64::from((tp + fp).max(1));
    let recall = f64::from(tp) / f64::from((tp + fn_).max(1));
    (precision, recall)
}

/// The figures README quotes: `cargo test --lib risk::tests::figures -- --nocapture`.
#[test]
fn figures_on_the_labelled_set_of_real_tools() {
    let tools = labelled();
    assert!(tools.len() >= 150, "{} tools", tools.len());
    let mut credential = (0, 0, 0);
    let mut destructive = (0, 0, 0);
    let mut misses = Vec::new();
    for (tool, label) in &tools {
        let got = classify(tool).risk();
        let name = tool["name"].as_str().unwrap_or_default();
        for (class, risk, counts) in [
            ("credential", Risk::Credential, &mut credential),
            ("destructive", Risk::Destructive, &mut destructive),
        ] {
            match (got == Some(risk), label == class) {
                (true, true) => counts.0 += 1,
                (true, false) => {
                    counts.1 += 1;
                    misses.push(format!("false {class}: {name} ({label})"));
                }
                (false, true) => {
                    counts.2 += 1;
                    misses.push(format!("missed {class}: {name} (got {got:?})"));
                }
                (false, false) => {}
            }
        }
    }
    let (cp, cr) = score(credential);
    let (dp, dr) = score(destructive);
    println!("{} labelled tools", tools.len());
    println!("credential:  precision {cp:.2}, recall {cr:.2} {credential:?}");
    println!("destructive: precision {dp:.2}, recall {dr:.2} {destructive:?}");
    for miss in &misses {
        println!("  {miss}");
    }
    // The floors under README's figures: a change to the tables that lowers them fails here.
    assert!(cp >= 0.85, "credential precision {cp:.2}");
    assert!(cr >= 0.70, "credential recall {cr:.2}");
    assert!(dp >= 0.90, "destructive precision {dp:.2}");
    assert!(dr >= 0.90, "destructive recall {dr:.2}");
}
