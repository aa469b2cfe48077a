//! Who is asking: session tokens, the `Viewer` a request acts as, and roles.
//!
//! A session token is 32 random bytes from the OS RNG, handed to the client once (cookie or bearer)
//! and stored only as its SHA-256, so a leaked database does not leak live sessions.

pub mod viewer;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// What a user may do beyond the basics. Stored as the variant name in `users.role`. What each role
/// allows is `authz::capabilities`: roles are sets of capabilities, deliberately not ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Moderator,
    Reviewer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "USER",
            Role::Moderator => "MODERATOR",
            Role::Reviewer => "REVIEWER",
            Role::Admin => "ADMIN",
        }
    }

    /// The role stored in `users.role`. An unknown value is a corrupt row, not a member: it fails
    /// (INTERNAL, logged) instead of silently reading as some role.
    pub fn parse(s: &str) -> crate::error::AppResult<Role> {
        match s {
            "USER" => Ok(Role::User),
            "MODERATOR" => Ok(Role::Moderator),
            "REVIEWER" => Ok(Role::Reviewer),
            "ADMIN" => Ok(Role::Admin),
            other => Err(crate::error::AppError::internal(format!("unknown role {other:?} stored in users.role"))),
        }
    }
}

/// The signed-in user a request acts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer {
    pub user_id: i64,
    pub role: Role,
    /// The first-party session; 0 for an app's token, which is not a session of the member's.
    pub session_id: i64,
    /// Set when a third-party app acts for the member with an OAuth access token (issue 16).
    pub app: Option<AppAccess>,
}

/// What an app's access token carries: the member's grant to that app, and what it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppAccess {
    pub grant_id: i64,
    pub app_id: i64,
    /// The app's public `client_id`, for metrics labels and logs.
    pub client_id: ClientId,
    pub scopes: crate::authz::scopes::Scopes,
    /// When the token stops working: a WebSocket it opened closes then.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// A `client_id` held inline (they are 24 characters; at most 64 are kept), so that a `Viewer`
/// stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ClientId {
    bytes: [u8; 64],
    len: u8,
}

impl ClientId {
    pub fn new(id: &str) -> ClientId {
        let mut bytes = [0u8; 64];
        let mut len = id.len().min(64);
        while !id.is_char_boundary(len) {
            len -= 1;
        }
        bytes[..len].copy_from_slice(&id.as_bytes()[..len]);
        ClientId { bytes, len: len as u8 }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::fmt::Debug for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fresh session token: 32 bytes from the OS RNG, URL-safe base64 (43 characters).
/// Fails only if the OS cannot supply randomness, which is not worth serving through.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The form a token is stored and looked up in.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// How the request carried its token: web clients use the cookie, mobile clients the bearer header.
/// A bearer header wins when both are present.
pub fn token_from_headers(headers: &http::HeaderMap, cookie_name: &str) -> Option<String> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let mut parts = value.splitn(2, ' ');
        if let (Some(scheme), Some(token)) = (parts.next(), parts.next())
            && scheme.eq_ignore_ascii_case("bearer")
        {
            let token = token.trim();
            if !token.is_empty() {
                return Some(token.to_string());
            }
        }
    }
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == cookie_name)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

/// The token a request (HTTP or WebSocket upgrade) carries: a bearer header always (it is never sent
/// by a browser on its own); the session cookie only when the request proves it comes from the
/// gateway's own pages or one of `ALLOWED_ORIGINS`. Browsers attach cookies to cross-site requests
/// too (a link, a form post, an `<img>`, a WebSocket opened by another site), so an unproven cookie is
/// ignored and the request runs signed out: another site cannot act for the member, nor make them
/// leave traces such as search history (cross-site request forgery, cross-site WebSocket hijacking).
pub fn token_for_request(headers: &http::HeaderMap, cookie_name: &str, origins: Origins<'_>) -> Option<String> {
    if proves_same_origin(headers, origins) {
        return token_from_headers(headers, cookie_name);
    }
    let mut bearer_only = headers.clone();
    bearer_only.remove(http::header::COOKIE);
    token_from_headers(&bearer_only, cookie_name)
}

/// Whether a request shows it was made by the gateway's own pages (or an allowed origin):
/// - an `Origin` header decides on its own: the gateway's own origin (its `Host`, and `https` when
///   the gateway is served over HTTPS) or one listed in `ALLOWED_ORIGINS`; anything else, `null`
///   included, is foreign;
/// - without `Origin` (a navigation, a same-origin GET), the browser's `Sec-Fetch-Site` must say
///   `same-origin`, `same-site` or `none` (typed into the address bar, a bookmark);
/// - a request with neither is not proven: every current browser sends `Sec-Fetch-Site`, and a
///   non-browser client has no reason to use the cookie instead of a bearer token.
pub fn proves_same_origin(headers: &http::HeaderMap, origins: Origins<'_>) -> bool {
    if let Some(origin) = headers.get(http::header::ORIGIN) {
        let Ok(origin) = origin.to_str() else { return false };
        if origins.allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
            return true;
        }
        let host = headers.get(http::header::HOST).and_then(|v| v.to_str().ok());
        let origin_host = url::Url::parse(origin).ok().and_then(|u| {
            // Served over HTTPS, a page of the same host over plain HTTP is another origin: whoever
            // can tamper with that HTTP traffic could otherwise post with the member's cookie.
            if origins.https && u.scheme() != "https" {
                return None;
            }
            let host = u.host_str()?.to_string();
            Some(match u.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        });
        return host.is_some_and(|h| origin_host.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(h)));
    }
    matches!(headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()), Some("same-origin" | "same-site" | "none"))
}

/// Which origins count as the gateway's own, besides its `Host`.
#[derive(Clone, Copy, Debug)]
pub struct Origins<'a> {
    /// `ALLOWED_ORIGINS`: the web frontend's origins when it is served elsewhere.
    pub allowed: &'a [String],
    /// The gateway is reached over HTTPS (`SESSION_COOKIE_SECURE`): its own origin is `https` only.
    pub https: bool,
}

impl<'a> Origins<'a> {
    pub fn of(config: &'a crate::config::Config) -> Origins<'a> {
        Origins { allowed: &config.allowed_origins, https: config.session_cookie_secure }
    }
}

/// The `Set-Cookie` value that hands a session to a browser: HttpOnly so scripts cannot read it,
/// SameSite=Lax so cross-site sub-requests do not carry it.
pub fn session_cookie(name: &str, token: &str, max_age: chrono::Duration, secure: bool) -> String {
    cookie::Cookie::build((name.to_string(), token.to_string()))
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .path("/")
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age.num_seconds()))
        .build()
        .to_string()
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_session_cookie(name: &str, secure: bool) -> String {
    session_cookie(name, "", chrono::Duration::zero(), secure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hashed() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), a);
    }

    #[test]
    fn bearer_wins_over_cookie() {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::COOKIE, "x=1; ecer_session=fromcookie".parse().unwrap());
        assert_eq!(token_from_headers(&h, "ecer_session").as_deref(), Some("fromcookie"));
        h.insert(http::header::AUTHORIZATION, "Bearer frombearer".parse().unwrap());
        assert_eq!(token_from_headers(&h, "ecer_session").as_deref(), Some("frombearer"));
    }
    #[test]
    fn cookies_count_only_from_the_same_origin() {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::HOST, "gw.example:8000".parse().unwrap());
        h.insert(http::header::COOKIE, "ecer_session=abc".parse().unwrap());
        let none = Origins { allowed: &[], https: false };
        // Neither Origin nor Sec-Fetch-Site: not proven.
        assert_eq!(token_for_request(&h, "ecer_session", none), None);
        for (site, counts) in [("cross-site", false), ("same-origin", true), ("same-site", true), ("none", true)] {
            h.insert("sec-fetch-site", site.parse().unwrap());
            assert_eq!(token_for_request(&h, "ecer_session", none).is_some(), counts, "{site}");
        }
        h.insert(http::header::ORIGIN, "null".parse().unwrap());
        assert_eq!(token_for_request(&h, "ecer_session", none), None, "an opaque origin is foreign");
        h.insert(http::header::ORIGIN, "http://gw.example:8000".parse().unwrap());
        assert_eq!(token_for_request(&h, "ecer_session", none).as_deref(), Some("abc"));
        h.insert(http::header::ORIGIN, "https://evil.example".parse().unwrap());
        assert_eq!(token_for_request(&h, "ecer_session", none), None);
        let listed = ["https://evil.example".to_string()];
        let app_origin = Origins { allowed: &listed, https: false };
        assert_eq!(token_for_request(&h, "ecer_session", app_origin).as_deref(), Some("abc"));
        h.insert(http::header::AUTHORIZATION, "Bearer tok".parse().unwrap());
        assert_eq!(token_for_request(&h, "ecer_session", none).as_deref(), Some("tok"));
    }

    #[test]
    fn over_https_the_same_host_over_http_is_foreign() {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::HOST, "gw.example".parse().unwrap());
        let https = Origins { allowed: &[], https: true };
        for (origin, same) in [
            ("https://gw.example", true),
            ("http://gw.example", false),
            ("https://gw.example:8443", false),
            ("wss://gw.example", false),
            ("https://gw.example.evil", false),
        ] {
            h.insert(http::header::ORIGIN, origin.parse().unwrap());
            assert_eq!(proves_same_origin(&h, https), same, "{origin} over HTTPS");
        }
        // Plain HTTP (local development): either scheme of the same host.
        h.insert(http::header::ORIGIN, "http://gw.example".parse().unwrap());
        assert!(proves_same_origin(&h, Origins { allowed: &[], https: false }));
    }
}
