//! `[database]`: which engine, where, and how many connections; and hiding the password a
//! database URL may carry.

use std::fmt;

use serde::Deserialize;

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The pool's size unless `[database] max_connections` says. SQLite takes one writer at a
    /// time, and each connection holds its own page cache, prepared statements and thread
    /// (about 1 MiB once warm), so a few connections serve it as well as many: a burst of parked
    /// calls grew a pool of 10 to all 10 and held ~6 MiB more than one of 4 (`benches/parked.rs`).
    pub fn default_pool_size(self) -> u32 {
        match self {
            Self::Sqlite => 4,
            Self::Postgres => 10,
        }
    }

    /// The backend a database URL names, if Airlock supports it.
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (the default, embedded) or `postgres://USER:PASSWORD@HOST/DB` (shared by
    /// several instances).
    pub url: String,
    /// Connections in the pool; by default [`Backend::default_pool_size`].
    pub max_connections: Option<u32>,
    /// Seconds a query waits for a free connection (or a new one) before it fails.
    pub acquire_timeout: u64,
}

/// The URL may carry a password: `Debug` shows it redacted.
impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

impl DatabaseConfig {
    /// Connections in the pool: as configured, or the backend's default.
    pub fn pool_size(&self) -> u32 {
        self.max_connections
            .unwrap_or_else(|| Backend::of_url(&self.url).map_or(10, Backend::default_pool_size))
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://airlock.db".to_owned(),
            max_connections: None,
            acquire_timeout: 5,
        }
    }
}

/// Hides a password in a URL before it is shown to anyone: the user-info password, a
/// `password=` query parameter, and, for a URL that does not even parse (an unescaped `#` or `/`
/// in the password), everything before the last `@`.
pub fn redact_url(url: &str) -> String {
    const HIDDEN: &str = "••••";
    let Ok(mut parsed) = url::Url::parse(url) else {
        return match url.split_once("://") {
            Some((scheme, rest)) => match rest.rfind('@') {
                Some(at) => format!("{scheme}://{HIDDEN}@{}", &rest[at + 1..]),
                None => format!("{scheme}://{rest}"),
            },
            None => HIDDEN.to_owned(),
        };
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some(HIDDEN));
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if k.eq_ignore_ascii_case("password") {
                    HIDDEN.to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_survive_redaction() {
        for url in [
            "postgres://airlock:s3cret@db/x",
            "postgres://airlock:p#s3cret@db/x",
            "postgres://airlock:a/s3cret@db/x",
            "postgres://airlock@db/x?sslmode=require&password=s3cret",
        ] {
            let shown = redact_url(url);
            assert!(!shown.contains("s3cret"), "{url} -> {shown}");
            assert!(shown.contains("db"), "{shown}");
        }
        let config = DatabaseConfig {
            url: "postgres://airlock:s3cret@db/x".to_owned(),
            ..DatabaseConfig::default()
        };
        assert!(!format!("{config:?}").contains("s3cret"));
        assert_eq!(redact_url("sqlite://airlock.db"), "sqlite://airlock.db");
    }

    #[test]
    fn the_pool_is_sized_by_the_backend_unless_configured() {
        let on = |url: &str, max_connections| DatabaseConfig {
            url: url.to_owned(),
            max_connections,
            ..DatabaseConfig::default()
        };
        assert_eq!(DatabaseConfig::default().pool_size(), 4);
        assert_eq!(on("postgres://db/x", None).pool_size(), 10);
        assert_eq!(on("sqlite://a.db", Some(12)).pool_size(), 12);
        assert_eq!(on("postgres://db/x", Some(3)).pool_size(), 3);
    }
}
