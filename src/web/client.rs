//! Who a request comes from, as far as throttling needs to know: the TCP peer's address, or, when
//! the peer is one of `[server] trusted_proxies`, the address that proxy says it forwarded for
//! (the right-most `X-Forwarded-For` entry that is not itself a trusted proxy). A header from
//! anyone else is ignored: it is whatever the client wants it to be. An IPv6 client is counted
//! by its /64 (one machine usually has a whole /64 to pick addresses from).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use crate::app::AppState;
use crate::ip_range::in_range;

/// The client's address, as text (`unknown` when the server was not told the peer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddr(pub String);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        let client = client_of(peer, &forwarded, &app.config.server.trusted_proxies);
        Ok(Self(client.map_or_else(|| "unknown".to_owned(), bucket)))
    }
}

/// How a client address is counted: an IPv4 address as it is, an IPv6 one by its /64.
fn bucket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let prefix = u128::from(ip) & (u128::MAX << 64);
                format!("{}/64", std::net::Ipv6Addr::from(prefix))
            }
        },
    }
}

/// The client behind `peer`: the peer itself unless it is a trusted proxy, then the right-most
/// forwarded address that is not one.
fn client_of(peer: Option<IpAddr>, forwarded: &[IpAddr], trusted: &[String]) -> Option<IpAddr> {
    let trusted_ip = |ip: &IpAddr| trusted.iter().any(|range| in_range(*ip, range));
    let peer = peer?;
    if !trusted_ip(&peer) {
        return Some(peer);
    }
    Some(
        forwarded
            .iter()
            .rev()
            .find(|ip| !trusted_ip(ip))
            .copied()
            .unwrap_or(peer),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn forwarded_for_counts_only_through_a_trusted_proxy() {
        let trusted = vec!["10.0.0.0/8".to_owned(), "::1".to_owned()];
        let claimed = [ip("203.0.113.9")];
        // Not through a proxy: the header is the client's own say-so.
        assert_eq!(
            client_of(Some(ip("198.51.100.7")), &claimed, &trusted),
            Some(ip("198.51.100.7"))
        );
        // Through one: the address it forwarded for.
        assert_eq!(
            client_of(Some(ip("10.1.2.3")), &claimed, &trusted),
            Some(ip("203.0.113.9"))
        );
        // A client that prepends its own entry cannot choose its address.
        let chain = [ip("192.0.2.1"), ip("203.0.113.9"), ip("10.0.0.2")];
        assert_eq!(
            client_of(Some(ip("::1")), &chain, &trusted),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            client_of(Some(ip("10.1.2.3")), &[], &trusted),
            Some(ip("10.1.2.3"))
        );
        assert_eq!(bucket(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(
            bucket(ip("2001:db8:1:2:bbbb::9")),
            bucket(ip("2001:db8:1:2:aaaa::1"))
        );
        assert_eq!(bucket(ip("::ffff:192.0.2.7")), "192.0.2.7");
    }
}
