//! Development-only routes, served only with the `log` SMS provider and no production setting
//! (`Config::dev_routes`), and only to requests from this machine: they let `cargo run`, GraphiQL
//! users and the scripted test clients (the fuzzer, the chaos suite, the Node.js scripts) sign up on
//! a bare machine without a phone.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;

#[derive(serde::Deserialize)]
pub struct CodeQuery {
    phone: String,
}

/// `GET /dev/sms-codes?phone=+8613800138000`: the newest code the `log` provider sent to that number
/// in this process (`{"phone", "purpose", "code", "sentAt"}`), or 404 NOT_FOUND.
///
/// Answered only to this machine (a loopback peer, and no proxy's forwarding headers): a gateway
/// started with development defaults but reachable from outside must not hand anyone the codes that
/// sign in as someone else. Anyone else gets the 404 of a route that does not exist.
pub async fn sms_codes(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<CodeQuery>,
) -> Response {
    let proxied = ["forwarded", "x-forwarded-for", "x-real-ip"].iter().any(|h| headers.contains_key(*h));
    if !peer.ip().is_loopback() || proxied {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Ok(phone) = crate::services::validate::phone("phone", &q.phone) else {
        return json(StatusCode::BAD_REQUEST, crate::http::graphql::error_body("BAD_USER_INPUT", "not a phone number"));
    };
    match state.sms.last_code(&phone) {
        Some(sent) => {
            let body = serde_json::json!({
                "phone": sent.phone,
                "purpose": sent.purpose,
                "code": sent.code,
                "sentAt": sent.at.to_rfc3339(),
            });
            json(StatusCode::OK, body.to_string())
        }
        None => json(
            StatusCode::NOT_FOUND,
            crate::http::graphql::error_body(crate::error::code::NOT_FOUND, "no code was sent to this number"),
        ),
    }
}

fn json(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}
