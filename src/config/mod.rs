//! Typed configuration: `airlock.toml`, then `AIRLOCK_SECTION__KEY` environment overrides, then
//! validation. A bad config stops start-up with a message that names the key and the fix; unknown
//! keys are errors (an ignored setting is a hole). Relative paths resolve against the directory of the
//! config file, so `airlock --config /etc/airlock/airlock.toml serve` works from any directory.

mod database;
mod env;
mod sections;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use database::{Backend, DatabaseConfig, redact_url};
pub use sections::{
    AgentConfig, ApprovalConfig, AuditConfig, DashboardConfig, EmailConfig, Isolation, NewTools,
    PolicyConfig, Secret, SensitiveSetting, ServerConfig, UpstreamConfig,
};

/// Where `--config` points when nothing else is said.
pub const DEFAULT_CONFIG_PATH: &str = "airlock.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "config file {path} not found; create it (see README.md, \"Configuration\") or pass --config PATH"
    )]
    NotFound { path: PathBuf },
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{origin}: {key}: {message}")]
    Invalid {
        origin: String,
        key: String,
        message: String,
    },
}

/// The whole configuration, as validated at start-up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    /// Read now so that a config written for the email notifications is not rejected as unknown.
    pub email: Option<EmailConfig>,
    #[serde(default)]
    pub dashboard: DashboardConfig,
    #[serde(default)]
    pub approval: ApprovalConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub redaction: crate::redact::RedactionConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    /// Reviewer groups, usable in a rule's `reviewers`.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<UpstreamConfig>,
    #[serde(default, rename = "agent")]
    pub agents: Vec<AgentConfig>,
    /// Where the file was read from; relative paths were resolved against its directory.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

impl Config {
    /// Reads `path`, applies `AIRLOCK_*` overrides from the process environment, validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ConfigError::NotFound {
                    path: path.to_owned(),
                }
            } else {
                ConfigError::Read {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        Self::from_toml(&text, Some(path), std::env::vars())
    }

    /// Parses TOML text with the given environment; `path` names the file in errors and anchors
    /// relative paths.
    pub fn from_toml(
        text: &str,
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let origin = path.map_or_else(|| "config".to_owned(), |p| p.display().to_string());
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: PathBuf::from(&origin),
                    message: e.to_string().trim_end().to_owned(),
                })?;
        let overrides = env::apply_overrides(&mut table, env)?;
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let key = e.path().to_string();
                let origin = overrides
                    .iter()
                    .find(|(k, _)| key.starts_with(k.as_str()))
                    .map_or_else(|| origin.clone(), |(_, var)| format!("environment {var}"));
                // toml appends "in `section`" on a second line; the key path already says it.
                let message = e.into_inner().to_string();
                ConfigError::Invalid {
                    origin,
                    key,
                    message: message.lines().next().unwrap_or_default().to_owned(),
                }
            })?;
        config.source = path.map(Path::to_owned);
        if let Some(dir) = path.and_then(Path::parent) {
            config.resolve_paths(dir);
        }
        config.validate(&origin)?;
        Ok(config)
    }

    fn resolve_paths(&mut self, dir: &Path) {
        if let Some(file) = &self.audit.signing_key_file
            && file.is_relative()
        {
            self.audit.signing_key_file = Some(dir.join(file));
        }
        if let Some(email) = &mut self.email
            && let Some(file) = &email.password_file
            && file.is_relative()
        {
            email.password_file = Some(dir.join(file));
        }
        for upstream in &mut self.upstreams {
            if let Some(policy) = &upstream.policy
                && policy.is_relative()
            {
                upstream.policy = Some(dir.join(policy));
            }
            if let Some(program) = upstream.command.as_mut().and_then(|argv| argv.first_mut())
                && program.contains('/')
                && Path::new(program.as_str()).is_relative()
            {
                *program = dir.join(&*program).display().to_string();
            }
        }
        if let Some(file) = self.database.url.strip_prefix("sqlite://")
            && !file.starts_with('/')
            && !file.starts_with(':')
        {
            self.database.url = format!("sqlite://{}", dir.join(file).display());
        }
    }

    /// Settings that load but probably do not do what was meant (`check` prints them, `serve`
    /// logs them).
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let proxied =
            self.server.listen.ip().is_loopback() && self.server.public_url.starts_with("https://");
        if proxied && self.server.trusted_proxies.is_empty() {
            warnings.push(
                "server.public_url is https and server.listen is loopback, so a proxy is in front, \
                 but server.trusted_proxies is empty: every client has the proxy's address, and \
                 login_max_failures_per_client wrong passwords from anyone lock everyone out for \
                 a while; add the proxy (e.g. trusted_proxies = [\"127.0.0.1\"])"
                    .to_owned(),
            );
        }
        warnings
    }

    pub fn upstream(&self, name: &str) -> Option<&UpstreamConfig> {
        self.upstreams.iter().find(|u| u.name == name)
    }
}

/// Names of upstreams and agents appear in URLs and logs: keep them to a safe alphabet.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        Config::from_toml(text, Some(Path::new("/etc/airlock/airlock.toml")), env)
    }

    #[test]
    fn defaults_apply_to_an_empty_file() {
        let config = parse("", &[]).expect("empty config is valid");
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.server.max_body_bytes, 4_194_304);
        assert_eq!(config.database.url, "sqlite:///etc/airlock/airlock.db");
    }

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let config = parse(
            "[[upstream]]\nname = \"t\"\ncommand = [\"./bin/t\", \"--x\"]\npolicy = \"p/t.json\"\n",
            &[],
        )
        .expect("valid");
        let upstream = &config.upstreams[0];
        assert_eq!(
            upstream.policy.as_deref(),
            Some(Path::new("/etc/airlock/p/t.json"))
        );
        assert_eq!(
            upstream.command.as_deref(),
            Some(&["/etc/airlock/./bin/t".to_owned(), "--x".to_owned()][..])
        );
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_key() {
        let err =
            parse("[server]\nlisten = \"127.0.0.1:1\"\nlistn = 3\n", &[]).expect_err("unknown key");
        let text = err.to_string();
        assert!(text.contains("server"), "{text}");
        assert!(text.contains("listn"), "{text}");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err = parse("[server]\nlisten = \"not an address\"\n", &[]).expect_err("bad addr");
        assert!(err.to_string().contains("server.listen"), "{err}");
    }

    #[test]
    fn env_overrides_scalars_and_is_named_in_errors() {
        let config = parse(
            "",
            &[
                ("AIRLOCK_SERVER__LISTEN", "0.0.0.0:9999"),
                ("AIRLOCK_SERVER__MAX_BODY_BYTES", "1024"),
                ("AIRLOCK_CONFIG", "ignored.toml"),
            ],
        )
        .expect("valid");
        assert_eq!(config.server.listen.to_string(), "0.0.0.0:9999");
        assert_eq!(config.server.max_body_bytes, 1024);

        let err = parse("", &[("AIRLOCK_SERVER__MAX_BODY_BYTES", "lots")]).expect_err("bad");
        assert!(
            err.to_string()
                .contains("environment AIRLOCK_SERVER__MAX_BODY_BYTES"),
            "{err}"
        );
        let err = parse("", &[("AIRLOCK_UPSTREAM__NAME", "x")]).expect_err("array table");
        assert!(
            err.to_string().contains("only be set in the config file"),
            "{err}"
        );
    }

    #[test]
    fn an_upstream_needs_exactly_one_transport() {
        let err = parse("[[upstream]]\nname = \"t\"\n", &[]).expect_err("no transport");
        assert!(err.to_string().contains("command"), "{err}");
        let err = parse(
            "[[upstream]]\nname = \"t\"\ncommand = [\"x\"]\nurl = \"http://h/mcp\"\n",
            &[],
        )
        .expect_err("both");
        assert!(err.to_string().contains("not both"), "{err}");
        let err =
            parse("[[upstream]]\nname = \"a b\"\ncommand = [\"x\"]\n", &[]).expect_err("bad name");
        assert!(err.to_string().contains("upstream[0].name"), "{err}");
    }

    #[test]
    fn a_password_over_plain_smtp_to_another_host_is_refused_unless_allowed() {
        let email = |url: &str, extra: &str| {
            parse(
                &format!("[email]\nsmtp_url = \"{url}\"\nfrom = \"a@b.c\"\n{extra}"),
                &[],
            )
        };
        let err = email("smtp://relay@mail.example.org:25", "password = \"p\"\n")
            .expect_err("plain text to another host");
        assert!(
            err.to_string().contains(
                "email.smtp_url: a password would travel unencrypted to mail.example.org"
            ),
            "{err}"
        );
        assert!(email("smtp://u:p@mail.example.org:25", "").is_err());
        for ok in [
            (
                "smtp+starttls://relay@mail.example.org:587",
                "password = \"p\"\n",
            ),
            ("smtps://relay@mail.example.org:465", "password = \"p\"\n"),
            (
                "smtp://mail.example.org:587?tls=required",
                "password = \"p\"\n",
            ),
            ("smtp://relay@127.0.0.1:25", "password = \"p\"\n"),
            ("smtp://mail.example.org:25", ""),
            (
                "smtp://relay@mail.example.org:25",
                "password = \"p\"\nallow_plaintext_password = true\n",
            ),
        ] {
            assert!(email(ok.0, ok.1).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let config = parse(
            "[email]\nsmtp_url = \"smtps://u:hunter2@h\"\nfrom = \"a@b.c\"\npassword = \"hunter2\"\n",
            &[],
        )
        .expect("valid");
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
