//! Address ranges as `[server] trusted_proxies` writes them: an address (`10.0.0.1`) or a CIDR
//! block (`10.0.0.0/8`, `fd00::/8`).

use std::net::IpAddr;

/// Whether `ip` is `range`: an address (`10.0.0.1`) or a CIDR block (`10.0.0.0/8`, `fd00::/8`).
pub fn in_range(ip: IpAddr, range: &str) -> bool {
    let (net, bits) = match range.split_once('/') {
        Some((net, bits)) => (net, bits.parse::<u32>().ok()),
        None => (range, None),
    };
    let Ok(net) = net.trim().parse::<IpAddr>() else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// Whether `range` is something [`in_range`] understands (config validation asks).
pub fn is_range(range: &str) -> bool {
    let (net, bits) = match range.split_once('/') {
        Some((net, bits)) => (net, Some(bits)),
        None => (range, None),
    };
    match net.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => bits.is_none_or(|b| b.parse::<u32>().is_ok_and(|b| b <= 32)),
        Ok(IpAddr::V6(_)) => bits.is_none_or(|b| b.parse::<u32>().is_ok_and(|b| b <= 128)),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn addresses_and_blocks_of_both_families() {
        assert!(in_range(ip("fd00::1"), "fd00::/8"));
        assert!(!in_range(ip("fe00::1"), "fd00::/8"));
        assert!(in_range(ip("1.2.3.4"), "0.0.0.0/0"));
        assert!(in_range(ip("10.0.0.1"), "10.0.0.1"));
        assert!(!in_range(ip("10.0.0.1"), "::/0"), "families do not mix");
        assert!(
            is_range("10.0.0.0/8")
                && is_range("::1")
                && !is_range("10.0.0.0/33")
                && !is_range("proxy")
        );
    }
}
