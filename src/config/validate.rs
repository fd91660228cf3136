//! What a config must satisfy beyond parsing: each section's checks, each failure naming the key
//! and the fix.

use super::{Backend, Config, ConfigError, EmailConfig, Isolation, UpstreamConfig, redact_url};

/// Where the config came from, for its errors.
struct Problems<'a> {
    origin: &'a str,
}

impl Problems<'_> {
    fn at(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            origin: self.origin.to_owned(),
            key: key.to_owned(),
            message: message.into(),
        }
    }

    /// An error at `key` unless every one of `values` is more than 0.
    fn positive(&self, key: &str, values: &[u64], message: &str) -> Result<(), ConfigError> {
        if values.contains(&0) {
            Err(self.at(key, message))
        } else {
            Ok(())
        }
    }
}

/// 64 hex digits: the SHA-256 of a token.
fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

const SHA256_HINT: &str =
    "expected 64 hex digits: the SHA-256 of the token (`printf %s TOKEN | sha256sum`)";

impl Config {
    pub(super) fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let problems = Problems { origin };
        self.validate_server(&problems)?;
        self.validate_limits(&problems)?;
        self.validate_database(&problems)?;
        self.validate_email(&problems)?;
        if let Some((key, message)) = self.redaction.problem() {
            return Err(problems.at(&key, message));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, upstream) in self.upstreams.iter().enumerate() {
            if !seen.insert(upstream.name.as_str()) {
                return Err(problems.at(
                    &format!("upstream[{i}].name"),
                    format!("upstream {:?} is defined twice", upstream.name),
                ));
            }
            validate_upstream(&problems, i, upstream)?;
        }
        for (i, agent) in self.agents.iter().enumerate() {
            if !super::is_valid_name(&agent.name) {
                return Err(problems.at(
                    &format!("agent[{i}].name"),
                    "use letters, digits, '-', '_' and '.'",
                ));
            }
            if !is_sha256_hex(&agent.token_sha256) {
                return Err(problems.at(&format!("agent[{i}].token_sha256"), SHA256_HINT));
            }
        }
        Ok(())
    }

    fn validate_server(&self, problems: &Problems<'_>) -> Result<(), ConfigError> {
        let server = &self.server;
        url::Url::parse(&server.public_url).map_err(|e| {
            problems.at(
                "server.public_url",
                format!("{e}; expected an absolute URL such as \"http://127.0.0.1:8080\""),
            )
        })?;
        for (i, allowed) in server.allowed_origins.iter().enumerate() {
            if url::Url::parse(allowed).is_err() {
                return Err(problems.at(
                    &format!("server.allowed_origins[{i}]"),
                    format!("{allowed:?} is not an origin; write it as \"https://host[:port]\""),
                ));
            }
        }
        for (i, host) in server.allowed_hosts.iter().enumerate() {
            let plain = !host.is_empty()
                && host.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                });
            if !plain {
                return Err(problems.at(
                    &format!("server.allowed_hosts[{i}]"),
                    format!(
                        "{host:?} is not a host; write it as \"name\" or \"name:port\", without a scheme or path"
                    ),
                ));
            }
        }
        if let Some(hex) = &server.ops_token_sha256
            && !is_sha256_hex(hex)
        {
            return Err(problems.at("server.ops_token_sha256", SHA256_HINT));
        }
        for (i, range) in server.trusted_proxies.iter().enumerate() {
            if !crate::ip_range::is_range(range) {
                return Err(problems.at(
                    &format!("server.trusted_proxies[{i}]"),
                    format!("{range:?} is not an address or CIDR block such as \"10.0.0.0/8\""),
                ));
            }
        }
        if server.instance_timeout < 2 {
            return Err(problems.at(
                "server.instance_timeout",
                "must be at least 2 seconds (instances beat every quarter of it)",
            ));
        }
        Ok(())
    }

    /// The limits of every section that must be more than 0.
    fn validate_limits(&self, problems: &Problems<'_>) -> Result<(), ConfigError> {
        let (server, dashboard, approval) = (&self.server, &self.dashboard, &self.approval);
        problems.positive(
            "server",
            &[
                server.max_connections as u64,
                server.max_connections_per_client as u64,
                server.header_timeout,
                server.body_timeout,
            ],
            "max_connections, max_connections_per_client, header_timeout and body_timeout \
             must be more than 0",
        )?;
        problems.positive(
            "server.max_body_bytes",
            &[server.max_body_bytes as u64],
            "must be more than 0",
        )?;
        problems.positive(
            "dashboard",
            &[
                dashboard.session_ttl,
                u64::from(dashboard.login_max_failures),
                u64::from(dashboard.login_max_failures_per_client),
                dashboard.login_lockout,
            ],
            "session_ttl, login_max_failures, login_max_failures_per_client and login_lockout must be more than 0",
        )?;
        problems.positive(
            "approval",
            &[
                approval.pickup,
                u64::from(approval.max_pending_per_agent),
                u64::from(approval.max_pending),
                approval.max_args_bytes as u64,
            ],
            "pickup, max_pending_per_agent, max_pending and max_args_bytes must be more than 0 \
             (hold may be 0: held until decided)",
        )?;
        problems.positive(
            "database.max_connections",
            &[
                u64::from(self.database.pool_size()),
                self.database.acquire_timeout,
            ],
            "database.max_connections and database.acquire_timeout must be more than 0",
        )
    }

    fn validate_database(&self, problems: &Problems<'_>) -> Result<(), ConfigError> {
        if Backend::of_url(&self.database.url).is_none() {
            return Err(problems.at(
                "database.url",
                format!(
                    "unsupported database URL {:?}; use \"sqlite://PATH\" or \"postgres://USER:PASSWORD@HOST/DB\"",
                    redact_url(&self.database.url)
                ),
            ));
        }
        Ok(())
    }

    fn validate_email(&self, problems: &Problems<'_>) -> Result<(), ConfigError> {
        let Some(email) = &self.email else {
            return Ok(());
        };
        if email.password.is_some() && email.password_file.is_some() {
            return Err(problems.at(
                "email.password_file",
                "set email.password or email.password_file, not both",
            ));
        }
        if let Some(why) = EmailConfig::plaintext_password(email) {
            return Err(problems.at("email.smtp_url", why));
        }
        Ok(())
    }
}

/// The checks of `[[upstream]]` number `i`: a usable name, exactly one transport, HTTP headers
/// that are headers.
fn validate_upstream(
    problems: &Problems<'_>,
    i: usize,
    upstream: &UpstreamConfig,
) -> Result<(), ConfigError> {
    let key = |field: &str| format!("upstream[{i}].{field}");
    if !super::is_valid_name(&upstream.name) {
        return Err(problems.at(
            &key("name"),
            format!(
                "{:?} cannot be used in /mcp/{{upstream}}; use letters, digits, '-' and '_'",
                upstream.name
            ),
        ));
    }
    match (&upstream.command, &upstream.url) {
        (Some(_), Some(_)) => {
            return Err(problems.at(
                &key("command"),
                "give either `command` (stdio) or `url` (Streamable HTTP), not both",
            ));
        }
        (None, None) => {
            return Err(problems.at(
                &upstream.name,
                "needs `command = [\"program\", \"arg\"]` (stdio) or `url = \"http://...\"`",
            ));
        }
        (Some(argv), None) if argv.is_empty() || argv[0].is_empty() => {
            return Err(problems.at(
                &key("command"),
                "is empty; give the program and its arguments",
            ));
        }
        (None, Some(url)) => {
            let parsed = url::Url::parse(url).map_err(|e| {
                problems.at(&key("url"), format!("{e}; expected http(s)://host/path"))
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(problems.at(&key("url"), "must be an http:// or https:// URL"));
            }
            if matches!(
                upstream.isolation,
                Some(Isolation::Shared | Isolation::Agent)
            ) {
                return Err(problems.at(
                    &key("isolation"),
                    "HTTP upstreams always get one upstream session per downstream session",
                ));
            }
        }
        _ => {}
    }
    for name in upstream.headers.keys() {
        if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(problems.at(
                &key(&format!("headers.{name}")),
                "is not a valid HTTP header name",
            ));
        }
    }
    Ok(())
}
