//! `AIRLOCK_SECTION__KEY` environment overrides of the file's scalar keys.

use super::ConfigError;

const ENV_PREFIX: &str = "AIRLOCK_";

/// Applies `AIRLOCK_SECTION__KEY=value` overrides to scalar keys of the parsed file. Values are read
/// as TOML when they parse (`8080`, `true`, `["a"]`) and as plain strings otherwise. Returns which
/// key paths came from which variable, so errors can point at the variable instead of the file.
pub(super) fn apply_overrides(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut applied = Vec::new();
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if !rest.contains("__") {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        let invalid = |message: &str| ConfigError::Invalid {
            origin: format!("environment {var}"),
            key: path.join("."),
            message: message.to_owned(),
        };
        if path.len() != 2 || path.iter().any(String::is_empty) {
            return Err(invalid(
                "expected AIRLOCK_SECTION__KEY, e.g. AIRLOCK_DATABASE__URL",
            ));
        }
        if matches!(path[0].as_str(), "upstream" | "agent") {
            return Err(invalid(
                "[[upstream]] and [[agent]] entries can only be set in the config file",
            ));
        }
        let section = table
            .entry(path[0].clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(section) = section.as_table_mut() else {
            return Err(invalid("this section is not a table in the config file"));
        };
        section.insert(path[1].clone(), parse_env_value(&raw));
        applied.push((path.join("."), var));
    }
    Ok(applied)
}

fn parse_env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}
