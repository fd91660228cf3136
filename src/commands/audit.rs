//! `airlock audit verify | export | keygen`: the audit log from the command line.

use std::path::Path;

use super::CommandError;
use crate::config::Config;
use crate::store::Store;

/// `airlock audit verify`: the chain from its first event to its head, or the first break.
pub async fn audit_verify(config_path: &Path) -> Result<String, CommandError> {
    let config = Config::load(config_path)?;
    let store = Store::open(&config.database).await?;
    match crate::audit::verify(&store).await {
        Ok(verified) => Ok(format!(
            "audit log intact: {} events, head {}\n",
            verified.events, verified.head
        )),
        Err(crate::audit::VerifyError::Broken(broken)) => {
            Err(CommandError::Invalid(broken.to_string()))
        }
        Err(crate::audit::VerifyError::Store(e)) => Err(e.into()),
    }
}

/// `airlock audit verify --file`: an exported JSON-lines file checked on its own, against the
/// public key given, or else the one of this config's `[audit] signing_key_file`.
pub fn audit_verify_file(
    config_path: &Path,
    file: &Path,
    public_key: Option<&str>,
    partial: bool,
) -> Result<String, CommandError> {
    let public_key = match public_key {
        Some(key) => key.to_owned(),
        None => Config::load(config_path)
            .ok()
            .and_then(|config| audit_key(&config).ok().flatten())
            .map(|key| key.public_key())
            .ok_or_else(|| {
                CommandError::Invalid(
                    "pass --public-key HEX, the key the export must be signed with (a key named \
                     in the file alone proves nothing), or run where [audit] signing_key_file is set"
                        .to_owned(),
                )
            })?,
    };
    let opened = std::fs::File::open(file).map_err(|source| CommandError::Io {
        context: format!("cannot open {}", file.display()),
        source,
    })?;
    let verified =
        crate::audit::verify_export(std::io::BufReader::new(opened), &public_key, partial)
            .map_err(|e| CommandError::Invalid(format!("{}: {e}", file.display())))?;
    let checkpoint = &verified.checkpoint;
    let scope = if partial {
        format!(
            "the events of a filtered export ({}), none missing, added or changed",
            if checkpoint.filter.is_empty() {
                "no filter"
            } else {
                &checkpoint.filter
            }
        )
    } else {
        format!(
            "the whole log from event {} to the head {}",
            checkpoint.pruned_seq + 1,
            checkpoint.seq
        )
    };
    Ok(format!(
        "export intact: {} events; {scope}; signed at {} by {public_key}\n",
        verified.events, checkpoint.at
    ))
}

/// The config's audit signing key, or a one-line reason it cannot be read.
pub(super) fn audit_key(config: &Config) -> Result<Option<crate::audit::SigningKey>, CommandError> {
    crate::audit::SigningKey::configured(&config.audit)
        .map_err(|e| CommandError::Invalid(format!("[audit] signing_key_file: {e}")))
}

/// `airlock audit keygen`: a new signing key (hex seed) and its public key.
pub fn audit_keygen() -> Result<(String, String), CommandError> {
    let fail = |e: crate::audit::checkpoint::KeyError| CommandError::Invalid(e.to_string());
    let seed = crate::audit::SigningKey::generate().map_err(fail)?;
    let public_key = crate::audit::SigningKey::from_hex(&seed)
        .map_err(fail)?
        .public_key();
    Ok((seed, public_key))
}

/// What `airlock audit export` was asked for.
pub struct ExportRequest {
    pub format: String,
    pub since: Option<String>,
    pub until: Option<String>,
    pub upstream: Option<String>,
    pub tool: Option<String>,
    pub agent: Option<String>,
}

/// A `--since`/`--until` value as stored-time text: RFC 3339, or a day (its start, or with
/// `day_end` the next day's start).
fn export_time(flag: &str, text: &str, day_end: bool) -> Result<String, CommandError> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(at) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(crate::domain::Timestamp::from(at).text());
    }
    let day = time::Date::parse(
        text,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| {
        CommandError::Invalid(format!(
            "{flag} {text:?}: use RFC 3339 (2026-11-25T14:05:00Z) or a day (2026-11-25)"
        ))
    })?;
    let day = if day_end {
        day.next_day().unwrap_or(day)
    } else {
        day
    };
    Ok(crate::domain::Timestamp::from(day.midnight().assume_utc()).text())
}

/// `airlock audit export`: the filtered log on stdout; returns how many events.
pub async fn audit_export(config_path: &Path, request: ExportRequest) -> Result<u64, CommandError> {
    let format = crate::audit::export::Format::parse(&request.format).ok_or_else(|| {
        CommandError::Invalid(format!("--format {:?}: use jsonl or csv", request.format))
    })?;
    let filter = crate::store::AuditFilter {
        since: request
            .since
            .as_deref()
            .map(|t| export_time("--since", t, false))
            .transpose()?,
        until: request
            .until
            .as_deref()
            .map(|t| export_time("--until", t, true))
            .transpose()?,
        upstream: request.upstream,
        tool: request.tool,
        agent: request.agent,
        ..crate::store::AuditFilter::default()
    };
    let config = Config::load(config_path)?;
    let key = audit_key(&config)?;
    let store = Store::open(&config.database).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    crate::audit::export::export(&store, filter, format, key.as_ref(), &mut out)
        .await
        .map_err(|e| {
            CommandError::Invalid(format!(
                "audit export: {}",
                crate::telemetry::error_chain(&e)
            ))
        })
}
