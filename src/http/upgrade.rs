//! The WebSocket opening handshake (RFC 6455, 4.2.2), done here instead of by axum's `ws` extractor
//! for one reason: axum's socket never gives the TCP connection back, and closing a WebSocket
//! without a reset needs it (a lingering close, see [`crate::http::ws`]). The frames themselves are
//! tokio-tungstenite's, as with axum.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version, header};
use axum::response::Response;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// A server-side WebSocket over the upgraded HTTP/1.1 connection.
pub type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// A request that asks for a WebSocket, or `None` for any other request (a GraphQL GET).
pub struct MaybeUpgrade(pub Option<Upgrade>);

pub struct Upgrade {
    key: HeaderValue,
    offered: Vec<String>,
    on_upgrade: OnUpgrade,
}

impl<S: Send + Sync> FromRequestParts<S> for MaybeUpgrade {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(MaybeUpgrade(Upgrade::from_parts(parts)))
    }
}

fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

impl Upgrade {
    fn from_parts(parts: &mut Parts) -> Option<Upgrade> {
        let headers = &parts.headers;
        if parts.method != Method::GET
            || parts.version != Version::HTTP_11
            || !has_token(headers, header::CONNECTION, "upgrade")
            || !has_token(headers, header::UPGRADE, "websocket")
            || headers.get(header::SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13")
        {
            return None;
        }
        let key = headers.get(header::SEC_WEBSOCKET_KEY)?.clone();
        let offered = headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|p| p.trim().to_owned())
            .collect();
        let on_upgrade = parts.extensions.remove::<OnUpgrade>()?;
        Some(Upgrade { key, offered, on_upgrade })
    }

    /// The first of the server's `supported` subprotocols that the client offered.
    pub fn select(&self, supported: &[&'static str]) -> Option<&'static str> {
        supported.iter().copied().find(|s| self.offered.iter().any(|o| o == s))
    }

    /// Answers 101 and hands the socket to `serve` once the connection is upgraded.
    pub fn on_upgrade<F, Fut>(self, protocol: Option<&'static str>, config: WebSocketConfig, serve: F) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Upgrade { key, on_upgrade, .. } = self;
        tokio::spawn(async move {
            // Fails only when the client went away before the 101 reached it.
            if let Ok(upgraded) = on_upgrade.await {
                let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
                serve(socket).await;
            }
        });
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        // The accept key is base64: always a valid header value.
        if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        if let Some(protocol) = protocol {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
        }
        response
    }
}
