//! What a request's headers say about its client, for the request log: address, user agent,
//! preferred language, and device / OS / browser (User-Agent Client Hints when the browser sends
//! them, else parsed from the user agent). Also the first-party visitor cookie that daily unique
//! visitor counts use.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, header};

use crate::services::activity::ClientInfo;

const UNKNOWN: &str = "UNKNOWN";

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|s| !s.is_empty())
}

/// A client hint's structured-header string without its quotes: `"Android"` -> `Android`.
fn hint(headers: &HeaderMap, name: &str) -> Option<String> {
    header_str(headers, name).map(|v| v.trim_matches('"').to_string()).filter(|v| !v.is_empty())
}

/// The first language range of `Accept-Language` (`zh-CN,zh;q=0.9,en;q=0.8` -> `zh-CN`).
fn language(headers: &HeaderMap) -> Option<String> {
    let first = header_str(headers, header::ACCEPT_LANGUAGE.as_str())?.split(',').next()?;
    let tag = first.split(';').next()?.trim();
    (!tag.is_empty() && tag.len() <= 35 && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*'))
        .then(|| tag.to_string())
}

/// The most specific brand of `Sec-CH-UA` that is not a placeholder ("Not A(Brand").
fn hinted_browser(headers: &HeaderMap) -> Option<String> {
    let list = header_str(headers, "sec-ch-ua")?;
    list.split(',')
        .filter_map(|item| {
            let brand = item.split(';').next()?.trim().trim_matches('"');
            let version = item.split(";v=").nth(1).map(|v| v.trim().trim_matches('"'));
            let placeholder = brand.contains("Not") && brand.contains("Brand") || brand == "Chromium";
            (!placeholder && !brand.is_empty()).then(|| match version {
                Some(v) => format!("{brand} {v}"),
                None => brand.to_string(),
            })
        })
        .next()
}

pub fn client_info(headers: &HeaderMap, peer: &SocketAddr) -> ClientInfo {
    let user_agent = header_str(headers, header::USER_AGENT.as_str()).map(str::to_string);
    let parsed = user_agent.as_deref().and_then(|ua| woothee::parser::Parser::new().parse(ua));
    let known = |s: &str| (s != UNKNOWN && !s.is_empty()).then(|| s.to_string());
    let (mut device, mut os, mut browser) = match &parsed {
        Some(r) => (
            known(r.category),
            known(r.os).map(|os| match known(&r.os_version) {
                Some(v) => format!("{os} {v}"),
                None => os,
            }),
            known(r.name).map(|name| match known(r.version) {
                Some(v) => format!("{name} {v}"),
                None => name,
            }),
        ),
        None => (None, None, None),
    };
    if let Some(mobile) = header_str(headers, "sec-ch-ua-mobile") {
        device = Some(if mobile == "?1" { "smartphone" } else { "pc" }.to_string());
    }
    if let Some(platform) = hint(headers, "sec-ch-ua-platform") {
        os = Some(match hint(headers, "sec-ch-ua-platform-version") {
            Some(v) => format!("{platform} {v}"),
            None => platform,
        });
    }
    if let Some(b) = hinted_browser(headers) {
        browser = Some(b);
    }
    ClientInfo { ip: Some(peer.ip().to_string()), user_agent, language: language(headers), device, os, browser }
}

/// The visitor cookie's value if the request carries a well-formed one.
pub fn visitor_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| v.len() == 22 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

/// A new visitor id (16 random bytes) and the `Set-Cookie` that hands it out: first-party,
/// HttpOnly (scripts never need it), SameSite=Lax, a year long.
pub fn new_visitor_cookie(name: &str, secure: bool) -> Option<(String, HeaderValue)> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    let id = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
    let secure = if secure { "; Secure" } else { "" };
    let value = format!("{name}={id}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax{secure}");
    Some((id, HeaderValue::from_str(&value).ok()?))
}

/// Who daily unique visitors are counted by: the visitor cookie; else the member; else (a client
/// that keeps no cookies) the address and user agent, which the day's hash then hides.
pub fn visitor_key(cookie: Option<&str>, user_id: Option<i64>, client: &ClientInfo) -> Arc<str> {
    match (cookie, user_id) {
        (Some(c), _) => Arc::from(format!("c:{c}")),
        (None, Some(u)) => Arc::from(format!("u:{u}")),
        (None, None) => Arc::from(format!(
            "a:{}|{}",
            client.ip.as_deref().unwrap_or(""),
            client.user_agent.as_deref().unwrap_or("")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_user_agents_and_client_hints() {
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            header::USER_AGENT,
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1"
                .parse()
                .unwrap(),
        );
        h.insert(header::ACCEPT_LANGUAGE, "zh-CN,zh;q=0.9,en;q=0.8".parse().unwrap());
        let c = client_info(&h, &peer);
        assert_eq!(c.device.as_deref(), Some("smartphone"));
        assert!(c.os.as_deref().unwrap().starts_with("iPhone"), "{:?}", c.os);
        assert!(c.browser.as_deref().unwrap().starts_with("Safari"), "{:?}", c.browser);
        assert_eq!(c.language.as_deref(), Some("zh-CN"));

        h.insert("sec-ch-ua-mobile", "?0".parse().unwrap());
        h.insert("sec-ch-ua-platform", "\"Windows\"".parse().unwrap());
        h.insert(
            "sec-ch-ua",
            "\"Not A(Brand\";v=\"99\", \"Google Chrome\";v=\"121\", \"Chromium\";v=\"121\"".parse().unwrap(),
        );
        let c = client_info(&h, &peer);
        assert_eq!(c.device.as_deref(), Some("pc"));
        assert_eq!(c.os.as_deref(), Some("Windows"));
        assert_eq!(c.browser.as_deref(), Some("Google Chrome 121"));
    }
}
