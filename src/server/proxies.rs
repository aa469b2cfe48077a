//! The client's address behind reverse proxies the operator trusts (`TRUSTED_PROXIES`).
//!
//! Behind a load balancer every connection comes from the balancer, so login throttling, rate limits,
//! connection caps and the request log would all see one address. A proxy says whom it forwards for
//! in a header, but any client can send that header too, so it counts only when the connection comes
//! from a trusted proxy, and then only as far as the chain of trusted proxies goes: the hops are read
//! right to left (each proxy appends the address it saw) and the first one that is not a trusted
//! proxy is the client. An address a client wrote further left is never believed. A hop that cannot
//! be read (`unknown`, an obfuscated `_name`, a malformed element) ends the walk at the nearest
//! address known.
//!
//! One header is read, the one the proxies manage (`TRUSTED_PROXY_HEADER`: `X-Forwarded-For` by
//! default, or `Forwarded`, RFC 7239), never the other: most proxies pass a header they do not manage
//! through untouched, so reading whichever is present would let a client choose its address.
//!
//! The server applies this once per request, where it hands handlers the peer address
//! (`ConnectInfo`), so every use of the address gets the same answer.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Hops read from the forwarding header, nearest first; a longer chain is cut there (its leftmost
/// entries are the ones a client could have written anyway).
const MAX_HOPS: usize = 32;

/// Which header the trusted proxies write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Header {
    #[default]
    XForwardedFor,
    Forwarded,
}

impl Header {
    pub fn parse(name: &str) -> Result<Header, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Header::XForwardedFor),
            "forwarded" => Ok(Header::Forwarded),
            other => Err(format!("TRUSTED_PROXY_HEADER must be x-forwarded-for or forwarded, got {other:?}")),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: Header,
}

impl TrustedProxies {
    /// A comma-separated list of addresses and CIDR blocks (`10.0.0.0/8, 192.0.2.7, fd00::/8`).
    pub fn parse(list: &str, header: Header) -> Result<TrustedProxies, String> {
        let nets = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                let net = s
                    .parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("TRUSTED_PROXIES: {s:?} is not an IP address or CIDR block"))?;
                // Addresses are compared in canonical form (IPv4-mapped IPv6 as IPv4).
                match net {
                    IpNet::V6(v6) if v6.addr().to_ipv4_mapped().is_some() => {
                        Err(format!("TRUSTED_PROXIES: write {s:?} in its IPv4 form"))
                    }
                    net => Ok(net.trunc()),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(TrustedProxies { nets, header })
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The address of the client a request comes from, given the connection's peer.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        let mut client = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        if !self.trusts(peer.ip()) {
            return client;
        }
        let hops = match self.header {
            Header::XForwardedFor => x_forwarded_for(headers),
            Header::Forwarded => forwarded(headers),
        };
        for hop in hops {
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

/// `X-Forwarded-For`'s hops, nearest first, read from the right without copying.
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<SocketAddr>> {
    let mut hops = Vec::with_capacity(4);
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(value) = value.to_str() else {
            hops.push(None);
            return hops;
        };
        for hop in value.rsplit(',') {
            hops.push(node(hop.trim()));
            if hops.len() == MAX_HOPS {
                return hops;
            }
        }
    }
    hops
}

/// `Forwarded`'s hops (each element's `for`), nearest first. Elements are split only at commas
/// outside quoted strings; an element that does not parse, or names `for` twice or not at all, is
/// a hop that names no address.
fn forwarded(headers: &HeaderMap) -> Vec<Option<SocketAddr>> {
    // Parsed left to right (quoted strings cannot be read backwards); only the last MAX_HOPS kept.
    let mut hops: VecDeque<Option<SocketAddr>> = VecDeque::with_capacity(MAX_HOPS);
    let mut keep = |hop: Option<SocketAddr>| {
        if hops.len() == MAX_HOPS {
            hops.pop_front();
        }
        hops.push_back(hop);
    };
    for value in headers.get_all("forwarded").iter() {
        let Ok(value) = value.to_str() else {
            keep(None);
            continue;
        };
        let mut rest = value;
        while !rest.is_empty() {
            let (element, next) = split_element(rest);
            keep(element.and_then(|pairs| for_of(pairs)).and_then(node));
            rest = next;
        }
    }
    hops.into_iter().rev().collect()
}

/// One `Forwarded` element from the front of `s`: its `(name, value)` pairs (`None` when malformed)
/// and what follows its comma.
fn split_element(s: &str) -> (Option<Vec<(&str, &str)>>, &str) {
    let bytes = s.as_bytes();
    let mut pairs = Vec::new();
    let mut ok = true;
    let mut i = 0;
    loop {
        // name
        let start = i;
        while i < bytes.len() && !matches!(bytes[i], b'=' | b';' | b',') {
            i += 1;
        }
        let name = s[start..i].trim();
        if i >= bytes.len() || bytes[i] != b'=' {
            // A pair without a value (or an empty element) is malformed unless the element is empty.
            ok &= name.is_empty() && pairs.is_empty();
        } else {
            i += 1;
            // value: a token, or a quoted string (no escapes: an address never needs one)
            while i < bytes.len() && bytes[i] == b' ' {
                i += 1;
            }
            let value = if i < bytes.len() && bytes[i] == b'"' {
                let open = i + 1;
                match s[open..].find(['"', '\\']) {
                    Some(n) if bytes[open + n] == b'"' => {
                        i = open + n + 1;
                        &s[open..open + n]
                    }
                    _ => {
                        // An escape, or no closing quote: unreadable; skip to the next comma outside
                        // quotes as well as we can (the end, when the quote never closes).
                        ok = false;
                        i = bytes.len();
                        ""
                    }
                }
            } else {
                let open = i;
                while i < bytes.len() && !matches!(bytes[i], b';' | b',') {
                    i += 1;
                }
                s[open..i].trim()
            };
            pairs.push((name, value));
            while i < bytes.len() && bytes[i] == b' ' {
                i += 1;
            }
            if i < bytes.len() && !matches!(bytes[i], b';' | b',') {
                ok = false;
                while i < bytes.len() && bytes[i] != b',' {
                    i += 1;
                }
            }
        }
        if i >= bytes.len() {
            return (ok.then_some(pairs), "");
        }
        if bytes[i] == b',' {
            return (ok.then_some(pairs), &s[i + 1..]);
        }
        i += 1; // ';'
    }
}

/// The element's single `for` value.
fn for_of<'a>(pairs: Vec<(&str, &'a str)>) -> Option<&'a str> {
    let mut fors = pairs.into_iter().filter(|(k, _)| k.eq_ignore_ascii_case("for")).map(|(_, v)| v);
    let first = fors.next()?;
    fors.next().is_none().then_some(first)
}

/// One node: `192.0.2.7`, `192.0.2.7:4711`, `2001:db8::1`, `[2001:db8::1]:4711`, `[2001:db8::1]`.
fn node(s: &str) -> Option<SocketAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip.to_canonical(), 0));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Some(SocketAddr::new(addr.ip().to_canonical(), addr.port()));
    }
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

    fn with(header: Header, trusted: &str, peer: &str, pairs: &[(&'static str, &str)]) -> IpAddr {
        let peer = SocketAddr::new(ip(peer), 5000);
        TrustedProxies::parse(trusted, header).unwrap().client(peer, &headers(pairs)).ip()
    }

    fn xff(trusted: &str, peer: &str, pairs: &[(&'static str, &str)]) -> IpAddr {
        with(Header::XForwardedFor, trusted, peer, pairs)
    }

    fn fwd(trusted: &str, peer: &str, value: &str) -> IpAddr {
        with(Header::Forwarded, trusted, peer, &[("forwarded", value)])
    }

    #[test]
    fn headers_count_only_from_a_trusted_peer() {
        let h = [("x-forwarded-for", "203.0.113.9")];
        assert_eq!(xff("", "198.51.100.1", &h), ip("198.51.100.1"), "nothing trusted");
        assert_eq!(xff("10.0.0.0/8", "198.51.100.1", &h), ip("198.51.100.1"), "peer not trusted");
        assert_eq!(xff("10.0.0.0/8", "10.1.2.3", &h), ip("203.0.113.9"));
        assert_eq!(xff("10.0.0.0/8", "10.1.2.3", &[]), ip("10.1.2.3"), "no header: the proxy itself");
        assert_eq!(xff("10.0.0.0/8", "::ffff:10.1.2.3", &[]), ip("10.1.2.3"), "in canonical form");
    }

    #[test]
    fn only_the_configured_header_is_read() {
        // Behind an X-Forwarded-For proxy, a Forwarded header is the client's own.
        let both = [("forwarded", "for=1.2.3.4"), ("x-forwarded-for", "203.0.113.9")];
        assert_eq!(xff("127.0.0.1", "127.0.0.1", &both), ip("203.0.113.9"));
        assert_eq!(xff("127.0.0.1", "127.0.0.1", &[("forwarded", "for=1.2.3.4")]), ip("127.0.0.1"));
        // And the reverse.
        let peer = SocketAddr::new(ip("127.0.0.1"), 1);
        let fwd_only = TrustedProxies::parse("127.0.0.1", Header::Forwarded).unwrap();
        assert_eq!(fwd_only.client(peer, &headers(&[("x-forwarded-for", "1.2.3.4")])).ip(), ip("127.0.0.1"));
    }

    #[test]
    fn the_walk_stops_at_the_first_untrusted_hop_from_the_right() {
        // The client wrote 1.1.1.1 itself; 203.0.113.9 is what the first trusted proxy saw.
        let chain = [("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.0.0.5")];
        assert_eq!(xff("10.0.0.0/8", "10.0.0.6", &chain), ip("203.0.113.9"));
        // Split over several header lines, in order.
        let split = [("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "203.0.113.9, 10.0.0.5")];
        assert_eq!(xff("10.0.0.0/8", "10.0.0.6", &split), ip("203.0.113.9"));
        // Every hop trusted: the leftmost.
        assert_eq!(xff("10.0.0.0/8", "10.0.0.6", &[("x-forwarded-for", "10.9.9.9, 10.0.0.5")]), ip("10.9.9.9"));
    }

    #[test]
    fn forwarded_elements_with_ports_quotes_and_ipv6() {
        let v = "for=192.0.2.60;proto=https, for=\"[2001:db8::17]:4711\"";
        assert_eq!(fwd("127.0.0.1", "127.0.0.1", v), ip("2001:db8::17"));
        assert_eq!(fwd("127.0.0.1, 2001:db8::/32", "127.0.0.1", v), ip("192.0.2.60"));
        assert_eq!(fwd("127.0.0.1", "127.0.0.1", "For=\"192.0.2.7:80\""), ip("192.0.2.7"));
        assert_eq!(fwd("127.0.0.1", "127.0.0.1", "for=::ffff:192.0.2.8"), ip("192.0.2.8"));
        assert_eq!(fwd("127.0.0.1", "127.0.0.1", "proto=https;for=192.0.2.9;by=10.0.0.1"), ip("192.0.2.9"));
    }

    #[test]
    fn text_inside_a_forwarded_element_cannot_add_a_hop() {
        // A proxy that copies the Host header into its element: a comma or quote in it must not
        // make a hop of the client's choosing.
        for v in [
            "for=192.0.2.1;host=\"x,for=1.2.3.4\"",
            "for=192.0.2.1;host=\"x;for=1.2.3.4\"",
            "for=192.0.2.1;host=x\"for=1.2.3.4",
        ] {
            let got = fwd("127.0.0.1", "127.0.0.1", v);
            assert_ne!(got, ip("1.2.3.4"), "{v}");
        }
        assert_eq!(fwd("127.0.0.1", "127.0.0.1", "for=192.0.2.1;host=\"x,for=1.2.3.4\""), ip("192.0.2.1"));
        // Two `for`s in one element: unreadable, the walk stops at the proxy.
        assert_eq!(fwd("127.0.0.1", "127.0.0.1", "for=1.2.3.4;for=192.0.2.1"), ip("127.0.0.1"));
        // A quoted value with an escape, or never closed.
        assert_eq!(fwd("127.0.0.1", "127.0.0.1", "for=\"1.2.3.4\\\""), ip("127.0.0.1"));
        assert_eq!(fwd("127.0.0.1", "127.0.0.1", "for=\"1.2.3.4"), ip("127.0.0.1"));
    }

    #[test]
    fn an_unreadable_hop_ends_the_walk_at_the_nearest_known_address() {
        for bad in ["for=unknown", "for=_hidden", "proto=https", "for=not-an-ip", "for=\"[fe80::1%eth0]\""] {
            assert_eq!(fwd("127.0.0.1", "127.0.0.1", bad), ip("127.0.0.1"), "{bad}");
        }
        let h = [("x-forwarded-for", "203.0.113.9, garbage, 127.0.0.2")];
        assert_eq!(xff("127.0.0.0/8", "127.0.0.1", &h), ip("127.0.0.2"));
    }

    #[test]
    fn a_long_chain_is_read_no_further_than_its_nearest_hops() {
        // 203.0.113.9 leftmost, then more trusted hops than are read: the walk ends at the last one
        // read, never reaching the address the client put first.
        let mut chain = vec!["203.0.113.9"];
        chain.extend(std::iter::repeat_n("10.0.0.1", MAX_HOPS + 5));
        let long = chain.join(", ");
        assert_eq!(xff("10.0.0.0/8", "10.0.0.2", &[("x-forwarded-for", long.as_str())]), ip("10.0.0.1"));
        let elements = vec!["for=10.0.0.1"; MAX_HOPS + 5].join(", ");
        let long = format!("for=203.0.113.9, {elements}");
        assert_eq!(fwd("10.0.0.0/8", "10.0.0.2", &long), ip("10.0.0.1"));
        // Within the limit, the walk reaches it.
        assert_eq!(
            xff("10.0.0.0/8", "10.0.0.2", &[("x-forwarded-for", "203.0.113.9, 10.0.0.1, 10.0.0.1")]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        let parse = |s: &str| TrustedProxies::parse(s, Header::XForwardedFor);
        assert!(parse("10.0.0.0/8, nonsense").is_err());
        assert!(parse("10.0.0.0/33").is_err());
        assert!(parse("::ffff:10.0.0.0/104").is_err(), "IPv4-mapped: write the IPv4 form");
        assert!(parse(" , ").unwrap().is_empty());
        assert!(Header::parse("x-real-ip").is_err());
        assert_eq!(Header::parse("Forwarded"), Ok(Header::Forwarded));
    }
}
