//! The client's address behind reverse proxies the operator trusts (`TRUSTED_PROXIES`).
//!
//! Behind a load balancer every connection comes from the balancer, so login throttling, rate limits,
//! connection caps and the request log would all see one address. A proxy says whom it forwards for
//! in `Forwarded` (RFC 7239) or `X-Forwarded-For`, but any client can send those headers too, so they
//! count only when the connection comes from a trusted proxy, and then only as far as the chain of
//! trusted proxies goes: the hops are read right to left (each proxy appends the address it saw) and
//! the first one that is not a trusted proxy is the client. An address a client wrote further left is
//! never believed. A hop that cannot be read (`unknown`, an obfuscated `_name`, garbage) ends the walk
//! at the nearest address known. `Forwarded` wins over `X-Forwarded-For` when both are present.
//!
//! The server applies this once per request, where it hands handlers the peer address
//! (`ConnectInfo`), so every use of the address gets the same answer.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Hops read from the forwarding headers, nearest first; a longer chain is cut there (its leftmost
/// entries are the ones a client could have written anyway).
const MAX_HOPS: usize = 32;

#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// A comma-separated list of addresses and CIDR blocks (`10.0.0.0/8, 192.0.2.7, fd00::/8`).
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map(|n| n.trunc())
                    .map_err(|_| format!("TRUSTED_PROXIES: {s:?} is not an IP address or CIDR block"))
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The address of the client a request comes from, given the connection's peer.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        if !self.trusts(peer.ip()) {
            return peer;
        }
        let mut client = peer;
        for hop in hops(headers) {
            match hop {
                Some(addr) => {
                    client = addr;
                    if !self.trusts(addr.ip()) {
                        break;
                    }
                }
                None => break,
            }
        }
        client
    }
}

/// The forwarding chain, nearest hop first; `None` for a hop that names no address.
fn hops(headers: &HeaderMap) -> Vec<Option<SocketAddr>> {
    let values = |name: &str| -> Vec<String> {
        headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect()
    };
    let forwarded = values("forwarded");
    let elements: Vec<Option<String>> = if !forwarded.is_empty() {
        forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .map(|element| {
                element.split(';').find_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    key.trim().eq_ignore_ascii_case("for").then(|| value.trim().to_string())
                })
            })
            .collect()
    } else {
        values("x-forwarded-for").iter().flat_map(|v| v.split(',')).map(|s| Some(s.trim().to_string())).collect()
    };
    elements.into_iter().rev().take(MAX_HOPS).map(|e| e.and_then(|e| node(&e))).collect()
}

/// One node: `192.0.2.7`, `192.0.2.7:4711`, `2001:db8::1`, `"[2001:db8::1]:4711"`; quoted or not.
fn node(raw: &str) -> Option<SocketAddr> {
    let s = raw.trim().trim_matches('"');
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip.to_canonical(), 0));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Some(SocketAddr::new(addr.ip().to_canonical(), addr.port()));
    }
    // `[v6]` without a port.
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip.to_canonical(), 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn client(trusted: &str, peer: &str, pairs: &[(&'static str, &str)]) -> IpAddr {
        let peer = SocketAddr::new(ip(peer), 5000);
        TrustedProxies::parse(trusted).unwrap().client(peer, &headers(pairs)).ip()
    }

    #[test]
    fn headers_count_only_from_a_trusted_peer() {
        let xff = [("x-forwarded-for", "203.0.113.9")];
        assert_eq!(client("", "198.51.100.1", &xff), ip("198.51.100.1"), "nothing trusted");
        assert_eq!(client("10.0.0.0/8", "198.51.100.1", &xff), ip("198.51.100.1"), "peer not trusted");
        assert_eq!(client("10.0.0.0/8", "10.1.2.3", &xff), ip("203.0.113.9"));
        assert_eq!(client("10.0.0.0/8", "10.1.2.3", &[]), ip("10.1.2.3"), "no header: the proxy itself");
    }

    #[test]
    fn the_walk_stops_at_the_first_untrusted_hop_from_the_right() {
        // The client wrote 1.1.1.1 itself; 203.0.113.9 is what the first trusted proxy saw.
        let chain = [("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.0.0.5")];
        assert_eq!(client("10.0.0.0/8", "10.0.0.6", &chain), ip("203.0.113.9"));
        // Split over several header lines, in order.
        let split = [("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "203.0.113.9, 10.0.0.5")];
        assert_eq!(client("10.0.0.0/8", "10.0.0.6", &split), ip("203.0.113.9"));
        // Every hop trusted: the leftmost.
        assert_eq!(client("10.0.0.0/8", "10.0.0.6", &[("x-forwarded-for", "10.9.9.9, 10.0.0.5")]), ip("10.9.9.9"));
    }

    #[test]
    fn forwarded_is_read_with_ports_quotes_and_ipv6_and_wins() {
        let both =
            [("forwarded", "for=192.0.2.60;proto=https, for=\"[2001:db8::17]:4711\""), ("x-forwarded-for", "9.9.9.9")];
        assert_eq!(client("127.0.0.1", "127.0.0.1", &both), ip("2001:db8::17"));
        assert_eq!(client("127.0.0.1, 2001:db8::/32", "127.0.0.1", &both), ip("192.0.2.60"));
        assert_eq!(client("127.0.0.1", "127.0.0.1", &[("forwarded", "For=\"192.0.2.7:80\"")]), ip("192.0.2.7"));
        // IPv4-mapped addresses are the IPv4 ones, for the peer and the hops.
        assert_eq!(client("127.0.0.1", "::ffff:127.0.0.1", &[("forwarded", "for=::ffff:192.0.2.8")]), ip("192.0.2.8"));
    }

    #[test]
    fn an_unreadable_hop_ends_the_walk_at_the_nearest_known_address() {
        for bad in ["for=unknown", "for=_hidden", "proto=https", "for=not-an-ip"] {
            let h = [("forwarded", bad)];
            assert_eq!(client("127.0.0.1", "127.0.0.1", &h), ip("127.0.0.1"), "{bad}");
        }
        let h = [("x-forwarded-for", "203.0.113.9, garbage, 127.0.0.2")];
        assert_eq!(client("127.0.0.0/8", "127.0.0.1", &h), ip("127.0.0.2"));
    }

    #[test]
    fn a_long_chain_is_read_no_further_than_its_nearest_hops() {
        let long = vec!["10.0.0.1"; 10_000].join(", ");
        assert_eq!(client("10.0.0.0/8", "10.0.0.2", &[("x-forwarded-for", long.as_str())]), ip("10.0.0.1"));
    }

    #[test]
    fn bad_lists_are_refused() {
        assert!(TrustedProxies::parse("10.0.0.0/8, nonsense").is_err());
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse(" , ").unwrap().is_empty());
    }
}
