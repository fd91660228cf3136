//! The checks every HTTP face makes before anything else: the `Host` is Airlock's own name, and a
//! browser's `Origin` is one Airlock trusts (DNS-rebinding defences).
//!
//! DNS rebinding: a page at `evil.example` whose name an attacker re-points at 127.0.0.1 reaches a
//! local Airlock with `Host: evil.example` (and, from a browser, `Origin: http://evil.example`).
//! [`HostPolicy`] refuses any `Host` that is not Airlock's own name; [`OriginPolicy`] refuses
//! foreign origins. Localhost origins are trusted only when `public_url` is itself localhost: an
//! Airlock served as `https://airlock.example.org` has no business with pages on a reviewer's
//! `localhost`.

use axum::http::{HeaderMap, header};

use crate::config::Config;

/// Origins a browser may call `/mcp` from: `public_url`'s, the configured ones, and localhost
/// ones when `public_url` is localhost.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    allowed: Vec<String>,
    trust_localhost: bool,
}

impl OriginPolicy {
    pub fn from_config(config: &Config) -> Self {
        let mut allowed: Vec<String> = config
            .server
            .allowed_origins
            .iter()
            .filter_map(|o| url::Url::parse(o).ok())
            .map(|u| u.origin().ascii_serialization())
            .collect();
        let public = url::Url::parse(&config.server.public_url).ok();
        if let Some(public) = &public {
            allowed.push(public.origin().ascii_serialization());
        }
        let trust_localhost = public.as_ref().is_some_and(|u| is_local_host(u.host()));
        Self {
            allowed,
            trust_localhost,
        }
    }

    /// A request without `Origin` (not from a browser) is allowed; one with an origin must match.
    pub fn permits(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        let Some(parsed) = origin.to_str().ok().and_then(|o| url::Url::parse(o).ok()) else {
            return false;
        };
        (self.trust_localhost && is_local_host(parsed.host()))
            || self
                .allowed
                .contains(&parsed.origin().ascii_serialization())
    }
}

fn is_local_host(host: Option<url::Host<&str>>) -> bool {
    match host {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The `Host` values Airlock answers to (DESIGN.md, "Policy depth"): `public_url`'s host (with or
/// without its port), the address it listens on, `localhost` / `127.0.0.1` / `[::1]` with its port
/// when it listens on loopback, and `[server] allowed_hosts` (`host` for any port, `host:port` for
/// one). Listening on every address (`0.0.0.0`), any IP literal with the port is accepted too:
/// rebinding needs a name, and clients reaching such a server by its IP are its ordinary users.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    /// Lower-case host names (or bracketed IPv6 literals) and the ports they may come with.
    allowed: Vec<(String, Ports)>,
    port: u16,
    loopback: bool,
    any_ip: bool,
}

/// Which ports a `Host` entry accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ports {
    /// `allowed_hosts = ["name"]`: any port, or none.
    Any,
    /// This port, written out or (for the scheme's default port) left out.
    Exactly { port: u16, may_omit: bool },
}

impl HostPolicy {
    /// The policy for `config`, served on `bound` (the real address, not a configured port 0).
    pub fn new(config: &Config, bound: std::net::SocketAddr) -> Self {
        let mut allowed: Vec<(String, Ports)> = config
            .server
            .allowed_hosts
            .iter()
            .map(|entry| {
                let entry = entry.to_ascii_lowercase();
                match split_port(&entry) {
                    (name, Some(port)) => (
                        name.to_owned(),
                        Ports::Exactly {
                            port,
                            may_omit: false,
                        },
                    ),
                    (name, None) => (name.to_owned(), Ports::Any),
                }
            })
            .collect();
        if let Ok(public) = url::Url::parse(&config.server.public_url)
            && let (Some(host), Some(port)) = (public.host_str(), public.port_or_known_default())
        {
            let may_omit = public.port().is_none();
            allowed.push((host.to_ascii_lowercase(), Ports::Exactly { port, may_omit }));
        }
        let listen = match bound.ip() {
            std::net::IpAddr::V4(ip) => ip.to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        };
        allowed.push((
            listen,
            Ports::Exactly {
                port: bound.port(),
                may_omit: false,
            },
        ));
        Self {
            allowed,
            port: bound.port(),
            loopback: bound.ip().is_loopback(),
            any_ip: bound.ip().is_unspecified(),
        }
    }

    /// Whether a request naming `host` (its `Host` header or URI authority) is for this Airlock.
    pub fn permits(&self, host: Option<&str>) -> bool {
        let Some(host) = host.map(str::to_ascii_lowercase) else {
            return false;
        };
        let (name, port) = split_port(&host);
        let listed = self.allowed.iter().any(|(entry, ports)| {
            entry == name
                && match (*ports, port) {
                    (Ports::Any, _) => true,
                    (Ports::Exactly { port: p, .. }, Some(q)) => p == q,
                    (Ports::Exactly { may_omit, .. }, None) => may_omit,
                }
        });
        if listed {
            return true;
        }
        if port != Some(self.port) {
            return false;
        }
        let ip = name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .ok();
        (self.loopback && (name == "localhost" || ip.is_some_and(|ip| ip.is_loopback())))
            || (self.any_ip && ip.is_some())
    }

    /// The host a request names: its URI authority (HTTP/2) or its `Host` header.
    pub fn host_of<'a>(uri: &'a axum::http::Uri, headers: &'a HeaderMap) -> Option<&'a str> {
        uri.authority()
            .map(axum::http::uri::Authority::as_str)
            .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()))
    }
}

/// `host:port` into the host and its port; `[::1]:80` into `[::1]` and 80.
fn split_port(host: &str) -> (&str, Option<u16>) {
    let colon = if host.starts_with('[') {
        host.find("]:").map(|i| i + 1)
    } else {
        host.rfind(':')
    };
    match colon {
        Some(i) => (&host[..i], host[i + 1..].parse().ok()),
        None => (host, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_origin(origin: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_str(origin).expect("ascii"),
        );
        headers
    }

    #[test]
    fn origins_are_checked_against_public_url_configured_and_localhost() {
        let config = Config::from_toml(
            "[server]\npublic_url = \"https://airlock.example.org\"\nallowed_origins = [\"https://app.example.org\"]\n",
            None,
            std::iter::empty(),
        )
        .expect("valid");
        let policy = OriginPolicy::from_config(&config);
        assert!(policy.permits(&HeaderMap::new()));
        assert!(policy.permits(&with_origin("https://airlock.example.org")));
        assert!(policy.permits(&with_origin("https://app.example.org")));
        assert!(!policy.permits(&with_origin("http://localhost:6274")));
        assert!(!policy.permits(&with_origin("http://127.0.0.1:3000")));
        assert!(!policy.permits(&with_origin("https://evil.example.com")));
        assert!(!policy.permits(&with_origin("null")));
        assert!(!policy.permits(&with_origin("http://localhost.evil.com")));

        let local = Config::from_toml(
            "[server]\npublic_url = \"http://127.0.0.1:8080\"\n",
            None,
            std::iter::empty(),
        )
        .expect("valid");
        let policy = OriginPolicy::from_config(&local);
        assert!(policy.permits(&with_origin("http://localhost:6274")));
        assert!(policy.permits(&with_origin("http://127.0.0.1:3000")));
        assert!(!policy.permits(&with_origin("http://localhost.evil.com")));
    }

    fn hosts(toml: &str, bound: &str) -> HostPolicy {
        let config = Config::from_toml(toml, None, std::iter::empty()).expect("valid");
        HostPolicy::new(&config, bound.parse().expect("an address"))
    }

    #[test]
    fn hosts_are_airlocks_own_names_only() {
        let policy = hosts(
            "[server]\npublic_url = \"https://airlock.example.org\"\nallowed_hosts = [\"gw.internal\", \"alt.example.org:8443\"]\n",
            "127.0.0.1:8080",
        );
        for good in [
            "airlock.example.org",
            "airlock.example.org:443",
            "AIRLOCK.example.org",
            "127.0.0.1:8080",
            "localhost:8080",
            "[::1]:8080",
            "gw.internal:9000",
            "alt.example.org:8443",
        ] {
            assert!(policy.permits(Some(good)), "{good}");
        }
        for bad in [
            "evil.example.com",
            "evil.example.com:8080",
            "airlock.example.org:8443",
            "alt.example.org",
            "localhost:9999",
            "127.0.0.2:9999",
            "10.0.0.5:8080",
            "",
        ] {
            assert!(!policy.permits(Some(bad)), "{bad}");
        }
        assert!(!policy.permits(None));

        let everywhere = hosts("", "0.0.0.0:8080");
        assert!(everywhere.permits(Some("10.0.0.5:8080")));
        assert!(everywhere.permits(Some("127.0.0.1:8080")));
        assert!(!everywhere.permits(Some("10.0.0.5:9090")));
        assert!(!everywhere.permits(Some("evil.example.com:8080")));
    }
}
