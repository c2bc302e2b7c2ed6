//! Where a request comes from: the peer address, or the entry of a forwarding header (such as
//! `X-Forwarded-For`) that the configured number of our own proxies vouch for.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rocket::request::Request;

/// How the client address of a request is found (`ip_header` and `trusted_proxies`).
///
/// Without a header, the client is the peer address. With one, its lines are read as one
/// comma-separated list in order (several header lines are joined), and the client is the
/// `trusted_proxies`-th entry counting from the right: each of our proxies appends the address
/// it received the request from, so the rightmost `trusted_proxies` entries are written by them
/// and everything to their left by whoever sent the request, which may be forged.
///
/// - **Fewer entries than `trusted_proxies`**: the leftmost entry. The request came through
///   fewer of our proxies than configured (e.g. a health check sent to an inner proxy); the
///   entries it has were then all appended by our proxies, and the leftmost is the address the
///   outermost of them saw. Falling back to the peer instead would put every such client in the
///   bucket of one proxy.
/// - **No header**: the peer address.
/// - **The chosen entry is not an IP address** (`ip` or `ip:port`, `[ipv6]:port`): the peer
///   address. Our proxies do not write such entries, so the configuration or the proxy chain
///   is wrong; a value anyone could make up is never used as the client.
///
/// Rocket's default `X-Real-IP` is read only when it is the configured header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientAddress {
    header: Option<String>,
    hops: usize,
}

impl ClientAddress {
    /// From `ip_header` and `trusted_proxies` (default 1; 0 is taken as 1, though the
    /// configuration check refuses it).
    pub(crate) fn new(header: Option<String>, trusted_proxies: Option<u32>) -> Self {
        let hops = trusted_proxies
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(1)
            .max(1);
        ClientAddress { header, hops }
    }

    /// The client address of `request`; `0.0.0.0` when even the peer is unknown.
    pub(crate) fn of(&self, request: &Request<'_>) -> IpAddr {
        let forwarded = self.header.as_deref().and_then(|name| {
            let lines: Vec<&str> = request.headers().get(name).collect();
            forwarded_client(&lines, self.hops)
        });
        forwarded
            .or_else(|| request.remote().map(|addr| addr.ip()))
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

/// The `hops`-th entry from the right of a forwarding header's `lines` (the leftmost when there
/// are fewer), if it is an address; `None` sends the caller to the peer address.
fn forwarded_client(lines: &[&str], hops: usize) -> Option<IpAddr> {
    let entry = lines
        .iter()
        .rev()
        .flat_map(|line| line.rsplit(','))
        .take(hops)
        .last()?
        .trim();
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|addr| addr.ip()))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn the_nth_entry_from_the_right() {
        let lines = ["6.6.6.6, 192.0.2.1, 10.0.0.2"];
        assert_eq!(forwarded_client(&lines, 1), ip("10.0.0.2"));
        assert_eq!(forwarded_client(&lines, 2), ip("192.0.2.1"));
        assert_eq!(forwarded_client(&lines, 3), ip("6.6.6.6"));
    }

    #[test]
    fn several_lines_are_one_list() {
        let lines = ["6.6.6.6", "192.0.2.1, 10.0.0.2", "10.0.0.3"];
        assert_eq!(forwarded_client(&lines, 2), ip("10.0.0.2"));
        assert_eq!(forwarded_client(&lines, 3), ip("192.0.2.1"));
        assert_eq!(forwarded_client(&lines, 4), ip("6.6.6.6"));
    }

    #[test]
    fn fewer_entries_than_hops_give_the_leftmost() {
        assert_eq!(
            forwarded_client(&["192.0.2.1, 10.0.0.2"], 5),
            ip("192.0.2.1")
        );
        assert_eq!(forwarded_client(&["192.0.2.1"], 2), ip("192.0.2.1"));
        assert_eq!(forwarded_client(&[], 2), None);
    }

    #[test]
    fn entries_that_are_not_addresses_give_none() {
        for lines in [
            &["nope"][..],
            &[""],
            &[" , "],
            &["192.0.2.1,"],
            &["unknown, 10.0.0.2"],
            &["fe80::1%eth0"],
            &["192.0.2.1/24"],
        ] {
            let hops = if lines[0].contains("unknown") { 2 } else { 1 };
            assert_eq!(forwarded_client(lines, hops), None, "{lines:?}");
        }
        let long = "1,".repeat(50_000);
        assert_eq!(forwarded_client(&[&long], 3), None);
    }

    #[test]
    fn ports_and_brackets_are_read() {
        assert_eq!(forwarded_client(&["192.0.2.1:4711"], 1), ip("192.0.2.1"));
        assert_eq!(
            forwarded_client(&["[2001:db8::1]:443"], 1),
            ip("2001:db8::1")
        );
        assert_eq!(forwarded_client(&[" 2001:db8::1 "], 1), ip("2001:db8::1"));
    }

    #[test]
    fn trusted_proxies_default_to_one() {
        assert_eq!(ClientAddress::new(None, None).hops, 1);
        assert_eq!(ClientAddress::new(None, Some(0)).hops, 1);
        assert_eq!(ClientAddress::new(None, Some(3)).hops, 3);
    }
}
