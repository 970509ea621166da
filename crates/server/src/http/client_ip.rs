//! The client's address behind trusted reverse proxies: the forwarding header is walked from the
//! right, so only entries written by proxies we trust are ever used.
use crate::config::ClientIpHeader;
use axum::http::HeaderMap;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use utoipa::ToSchema;

/// Who may name the client: the networks of our reverse proxies and the one header they write.
#[derive(Debug, Clone, Default)]
pub struct ProxySettings {
    pub proxies: Vec<ipnet::IpNet>,
    pub header: ClientIpHeader,
    /// The first forwarding header from a peer that is not a trusted proxy (shared with `/readyz`).
    pub untrusted: Arc<UntrustedForwarding>,
}

/// A reverse proxy that is not in `trusted_proxies`: its forwarding header is (rightly) ignored,
/// so every person behind it is counted as the proxy's one address, and shares its per-address
/// budgets. The first such request is logged once and shown by `/readyz` from then on.
#[derive(Debug, Default)]
pub struct UntrustedForwarding {
    first: OnceLock<UntrustedPeer>,
}

/// The peer that sent a forwarding header without being a trusted proxy.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UntrustedPeer {
    /// The connection's peer address (the proxy, or a client writing the header itself).
    pub peer: String,
    /// The forwarding header it sent (`x-forwarded-for` or `forwarded`).
    pub header: &'static str,
    /// What to do about it.
    pub hint: &'static str,
}

const UNTRUSTED_HINT: &str = "if this peer is your reverse proxy, add its address to [http] trusted_proxies: until then every client \
     behind it shares its address and per-address budgets; if it is not, a client wrote the header itself and it is rightly ignored";

impl UntrustedForwarding {
    /// The first untrusted peer that sent a forwarding header, if any did.
    pub fn first(&self) -> Option<&UntrustedPeer> {
        self.first.get()
    }

    /// Notes a request whose peer is not a trusted proxy but carries a forwarding header; logs
    /// the first one. Costs nothing once one was seen.
    fn observe(&self, settings: &ProxySettings, peer: IpAddr, headers: &HeaderMap) {
        if self.first.get().is_some() || settings.trusts(&peer) {
            return;
        }
        let Some(header) = ["x-forwarded-for", "forwarded"].into_iter().find(|h| headers.contains_key(*h)) else {
            return;
        };
        let noted = UntrustedPeer { peer: peer.to_canonical().to_string(), header, hint: UNTRUSTED_HINT };
        if self.first.set(noted).is_ok() {
            tracing::warn!(
                peer = %peer.to_canonical(),
                header,
                setting = "[http] trusted_proxies",
                "a request carried a forwarding header from a peer that is not a trusted proxy: the header is ignored and the peer is the client; {UNTRUSTED_HINT}"
            );
        }
    }
}

impl ProxySettings {
    /// The client's address (`client_ip`), noting a forwarding header from an untrusted peer.
    pub fn client_ip_noting(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        self.untrusted.observe(self, peer, headers);
        self.client_ip(peer, headers)
    }

    /// Whether `ip` (a connection's peer) is one of our reverse proxies.
    pub fn trusts(&self, ip: &IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.proxies.iter().any(|n| n.contains(&ip))
    }

    /// The client's address. The walk starts at the peer; while the hop walked to is a trusted
    /// proxy, the entry it appended (the next one from the right) is believed. The first address
    /// that is not a trusted proxy is the client. An entry that is not an address (`unknown`,
    /// `_hidden`, garbage) ends the walk at the trusted hop that added it: nothing left of it,
    /// which the client could have written, is ever used.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        // `::ffff:10.0.0.1` is 10.0.0.1: one address, one spelling, for the walk and the budgets.
        let mut client = peer.to_canonical();
        let mut hops = self.hops(headers).into_iter().rev();
        while self.trusts(&client) {
            match hops.next() {
                Some(Some(ip)) => client = ip.to_canonical(),
                Some(None) | None => break,
            }
        }
        client
    }

    /// The configured header's entries in order, left to right, over all its lines; `None` for
    /// an entry that is not an address. `X-Forwarded-For` is split at every comma, byte by byte,
    /// so nothing a client writes (a quote, a byte that is not UTF-8) can swallow the entry a
    /// proxy appended after it. A `Forwarded` line whose quotes do not pair up is one bad entry
    /// (the walk stops at the proxy that passed it on).
    fn hops(&self, headers: &HeaderMap) -> Vec<Option<IpAddr>> {
        let mut hops = Vec::new();
        match self.header {
            ClientIpHeader::XForwardedFor => {
                for line in headers.get_all("x-forwarded-for") {
                    let entries = line.as_bytes().split(|b| *b == b',');
                    hops.extend(entries.map(|e| std::str::from_utf8(e).ok().and_then(|e| address(e.trim()))));
                }
            }
            ClientIpHeader::Forwarded => {
                for line in headers.get_all("forwarded") {
                    match line.to_str().ok().filter(|l| quotes_pair_up(l)) {
                        Some(line) => hops.extend(split_outside_quotes(line, ',').into_iter().map(|e| forwarded_for(e.trim()))),
                        None => hops.push(None),
                    }
                }
            }
        }
        hops
    }
}

/// An address as proxies write it: `1.2.3.4`, `2001:db8::1`, `1.2.3.4:5678`, `[::1]` or `[::1]:80`.
fn address(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| s.strip_prefix('[')?.strip_suffix(']')?.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6))
}

/// The `for=` address of one RFC 7239 element (`for=192.0.2.60;proto=http`,
/// `for="[2001:db8::1]:4711"`). `None` for `unknown`, an obfuscated `_name`, a missing or
/// repeated `for`, or anything malformed.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let mut found = None;
    for pair in split_outside_quotes(element, ';') {
        let (name, value) = pair.split_once('=')?;
        // Every parameter's value must be well formed, not only `for`'s.
        let value = unquote(value.trim())?;
        if !name.trim().eq_ignore_ascii_case("for") {
            continue;
        }
        if found.is_some() {
            return None;
        }
        found = Some(value);
    }
    address(&found?)
}

/// A token or a quoted string (with `\` escapes) as its text; `None` when the quotes are broken.
fn unquote(value: &str) -> Option<String> {
    let Some(inner) = value.strip_prefix('"') else {
        return (!value.contains('"')).then(|| value.to_string());
    };
    let inner = inner.strip_suffix('"')?;
    let mut text = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => text.push(chars.next()?),
            '"' => return None,
            c => text.push(c),
        }
    }
    Some(text)
}

/// Whether every quoted string in `s` is closed (`\` escapes inside quotes).
fn quotes_pair_up(s: &str) -> bool {
    let (mut quoted, mut escaped) = (false, false);
    for c in s.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            _ => {}
        }
    }
    !quoted
}

/// `s` split at `sep` where it is not inside a quoted string.
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const PEER: &str = "127.0.0.1";

    fn walk(header: ClientIpHeader, lines: &[&str]) -> String {
        let settings =
            ProxySettings { proxies: vec!["127.0.0.0/8".parse().unwrap(), "10.0.0.0/8".parse().unwrap()], header, ..Default::default() };
        let mut headers = HeaderMap::new();
        let name = match header {
            ClientIpHeader::XForwardedFor => "x-forwarded-for",
            ClientIpHeader::Forwarded => "forwarded",
        };
        for line in lines {
            headers.append(name, HeaderValue::from_bytes(line.as_bytes()).unwrap());
        }
        settings.client_ip(PEER.parse().unwrap(), &headers).to_string()
    }

    #[test]
    fn x_forwarded_for_is_walked_from_the_right() {
        let cases: &[(&[&str], &str)] = &[
            (&[], PEER),
            (&["198.51.100.7"], "198.51.100.7"),
            // What nginx's $proxy_add_x_forwarded_for passes on when the client sent its own header.
            (&["203.0.113.9, unknown, 198.51.100.7"], "198.51.100.7"),
            (&["203.0.113.9, 198.51.100.7, 127.0.0.2"], "198.51.100.7"),
            (&["203.0.113.9, 198.51.100.7, 10.1.1.1, 127.0.0.2"], "198.51.100.7"),
            // Not an address: the walk ends at the trusted hop that added it.
            (&["203.0.113.9, unknown"], PEER),
            (&["203.0.113.9, garbage, 10.1.1.1"], "10.1.1.1"),
            (&["203.0.113.9, _hidden, 10.1.1.1, 127.0.0.2"], "10.1.1.1"),
            (&["203.0.113.9,, 10.1.1.1"], "10.1.1.1"),
            (&[""], PEER),
            // Only trusted hops: the left-most of them.
            (&["10.1.1.1, 127.0.0.2"], "10.1.1.1"),
            // Ports and brackets.
            (&["203.0.113.9:5678"], "203.0.113.9"),
            (&["[2001:db8::1]:80"], "2001:db8::1"),
            (&["[2001:db8::1]"], "2001:db8::1"),
            (&["2001:db8::1"], "2001:db8::1"),
            (&["203.0.113.9, 10.1.1.1:443"], "203.0.113.9"),
            // Several lines are one list in order.
            (&["203.0.113.9", "198.51.100.7"], "198.51.100.7"),
            (&["203.0.113.9, unknown", "10.1.1.1"], "10.1.1.1"),
            (&["198.51.100.7", "10.1.1.1, 127.0.0.2"], "198.51.100.7"),
            // Quotes mean nothing here: a client's quote cannot swallow the entry a proxy appended.
            (&["\", 203.0.113.9"], "203.0.113.9"),
            (&["\"8.8.8.8, 203.0.113.9"], "203.0.113.9"),
            // IPv4-mapped addresses are the IPv4 address (trusted as such, counted as such).
            (&["203.0.113.9, ::ffff:10.1.1.1"], "203.0.113.9"),
            (&["::ffff:203.0.113.9"], "203.0.113.9"),
        ];
        for (lines, want) in cases {
            assert_eq!(walk(ClientIpHeader::XForwardedFor, lines), *want, "X-Forwarded-For: {lines:?}");
        }
        // A byte that is not UTF-8 spoils only its own entry.
        let settings =
            ProxySettings { proxies: vec!["127.0.0.0/8".parse().unwrap()], header: ClientIpHeader::XForwardedFor, ..Default::default() };
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", HeaderValue::from_bytes(b"\xff, 203.0.113.9").unwrap());
        assert_eq!(settings.client_ip(PEER.parse().unwrap(), &headers).to_string(), "203.0.113.9");
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        headers.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.7"));
        assert_eq!(settings.client_ip(mapped, &headers).to_string(), "198.51.100.7", "a mapped loopback peer is a trusted proxy");
    }

    #[test]
    fn forwarded_is_walked_from_the_right() {
        let cases: &[(&[&str], &str)] = &[
            (&[], PEER),
            (&["for=198.51.100.7"], "198.51.100.7"),
            (&["for=203.0.113.9, for=unknown, for=198.51.100.7;proto=https"], "198.51.100.7"),
            (&["for=203.0.113.9, for=unknown"], PEER),
            (&["for=203.0.113.9, for=_hidden, for=10.1.1.1"], "10.1.1.1"),
            (&[r#"for="[2001:db8::1]:4711""#], "2001:db8::1"),
            // A client's unclosed quote spoils the whole line, never names the client.
            (&[r#"for=8.8.8.8;x=", for=203.0.113.9"#], PEER),
            (&[r#"for=8.8.8.8;x=", for=203.0.113.9"#, "for=198.51.100.7"], "198.51.100.7"),
            // Every parameter's value must be well formed.
            (&[r#"for=203.0.113.9;by="a"b"#], PEER),
            (&[r#"For="198.51.100.7:80";by=10.1.1.1"#], "198.51.100.7"),
            (&["proto=https;for=198.51.100.7;host=example.com"], "198.51.100.7"),
            // A quoted comma does not split elements; an element without `for` ends the walk.
            (&[r#"for=203.0.113.9, for="x,y", for=10.1.1.1"#], "10.1.1.1"),
            (&["for=203.0.113.9, proto=https, for=10.1.1.1"], "10.1.1.1"),
            (&["for=203.0.113.9, for=198.51.100.7;for=198.51.100.8"], PEER),
            (&[r#"for="198.51.100.7"#], PEER),
            (&["for=203.0.113.9", "for=198.51.100.7, for=127.0.0.2"], "198.51.100.7"),
        ];
        for (lines, want) in cases {
            assert_eq!(walk(ClientIpHeader::Forwarded, lines), *want, "Forwarded: {lines:?}");
        }
    }

    #[test]
    fn only_the_configured_header_counts() {
        let settings =
            ProxySettings { proxies: vec!["127.0.0.0/8".parse().unwrap()], header: ClientIpHeader::Forwarded, ..Default::default() };
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.7"));
        assert_eq!(settings.client_ip(PEER.parse().unwrap(), &headers).to_string(), PEER);
        let xff = ProxySettings { header: ClientIpHeader::XForwardedFor, ..settings };
        let mut headers = HeaderMap::new();
        headers.insert("forwarded", HeaderValue::from_static("for=198.51.100.7"));
        assert_eq!(xff.client_ip(PEER.parse().unwrap(), &headers).to_string(), PEER);
    }

    #[test]
    fn an_untrusted_peer_is_the_client() {
        let settings =
            ProxySettings { proxies: vec!["10.0.0.0/8".parse().unwrap()], header: ClientIpHeader::XForwardedFor, ..Default::default() };
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.7"));
        assert_eq!(settings.client_ip(PEER.parse().unwrap(), &headers).to_string(), PEER);
    }

    #[test]
    fn the_first_forwarding_header_from_an_untrusted_peer_is_noted() {
        let settings = ProxySettings { proxies: vec!["10.0.0.0/8".parse().unwrap()], ..Default::default() };
        let mut headers = HeaderMap::new();
        settings.client_ip_noting("192.0.2.1".parse().unwrap(), &headers);
        headers.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.7"));
        settings.client_ip_noting("10.0.0.1".parse().unwrap(), &headers);
        assert!(settings.untrusted.first().is_none(), "no header, or a trusted proxy: nothing to say");
        settings.client_ip_noting("::ffff:192.0.2.1".parse().unwrap(), &headers);
        settings.client_ip_noting("192.0.2.2".parse().unwrap(), &headers);
        let noted = settings.untrusted.first().unwrap();
        assert_eq!((noted.peer.as_str(), noted.header), ("192.0.2.1", "x-forwarded-for"), "the first one, canonical");
        assert!(noted.hint.contains("[http] trusted_proxies"));
    }
}
