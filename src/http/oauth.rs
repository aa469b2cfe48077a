//! The OAuth 2.1 endpoints (issue 16): authorization (sign-in and consent pages), token, revocation
//! (RFC 7009) and server metadata (RFC 8414). The protocol's decisions are `services::oauth`; this
//! module reads requests, renders pages (`oauth_pages`) and writes the answers the RFCs prescribe.
//!
//! CSRF: the consent form carries a token bound to the member's session and to every parameter of
//! the request (a keyed hash), and a POST counts only when the browser proves it comes from our own
//! page (`auth::proves_same_origin`, the same rule as GraphQL's cookie). The pages refuse framing.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::json;

use super::oauth_pages::{self, Lang, Text};
use crate::app::AppState;
use crate::auth::{self, Viewer};
use crate::authz::scopes::Scope;
use crate::services::accounts::{self, SessionMeta};
use crate::services::oauth::{self, AuthRequest, Checked, ClientCredentials, Refusal, TokenError};

/// Parameters of a form or query string, refusing repeats (RFC 6749 §3.1, §3.2).
fn params(raw: &[u8]) -> Option<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (k, v) in url::form_urlencoded::parse(raw) {
        if !seen.insert(k.clone()) {
            return None;
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Some(out)
}

fn get<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn auth_request(params: &[(String, String)]) -> AuthRequest {
    let owned = |name: &str| get(params, name).map(str::to_string);
    AuthRequest {
        response_type: owned("response_type"),
        client_id: owned("client_id"),
        redirect_uri: owned("redirect_uri"),
        scope: owned("scope"),
        state: owned("state"),
        code_challenge: owned("code_challenge"),
        code_challenge_method: owned("code_challenge_method"),
        ui_locales: owned("ui_locales"),
    }
}

fn page(status: StatusCode, html: String) -> Response {
    let mut resp = (status, html).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    // Not `no-referrer`: with it browsers send `Origin: null` on the page's own form posts, which
    // then cannot prove they are same-origin. `same-origin` still tells other sites nothing.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    resp
}

fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            let mut resp = StatusCode::SEE_OTHER.into_response();
            resp.headers_mut().insert(header::LOCATION, value);
            resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// The app's redirect URI with the answer's parameters added, and `iss` (RFC 9207) so that a
/// client talking to several servers can tell whose answer this is.
fn redirect_with(app: &AppState, redirect_uri: &str, state: Option<&str>, pairs: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else { return StatusCode::BAD_REQUEST.into_response() };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
        if let Some(state) = state {
            q.append_pair("state", state);
        }
        q.append_pair("iss", &issuer(app));
    }
    see_other(url.as_str())
}

fn issuer(app: &AppState) -> String {
    app.config.public_api_base()
}

/// The member signed in to this browser, by the session cookie alone: the authorization request
/// arrives as a top-level navigation from the app's site, which SameSite=Lax lets the cookie ride.
/// Showing a page is all it allows; acting on it (the POST) needs a same-origin proof.
async fn cookie_member(app: &AppState, headers: &HeaderMap) -> Result<Option<Viewer>, Response> {
    let mut cookie_only = headers.clone();
    cookie_only.remove(header::AUTHORIZATION);
    let Some(token) = auth::token_from_headers(&cookie_only, &app.config.session_cookie_name) else {
        return Ok(None);
    };
    match auth::viewer::for_token(&app.db, &token).await {
        Ok(viewer) => Ok(viewer.filter(|v| v.app.is_none())),
        Err(err) => Err(internal(err)),
    }
}

fn internal(err: crate::error::AppError) -> Response {
    tracing::error!(error = %format!("{err:?}"), "oauth endpoint failed");
    (StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable").into_response()
}

/// The consent form's CSRF token: bound to the member's session and to the request it approves.
fn csrf(app: &AppState, viewer: &Viewer, req: &Checked) -> String {
    let message = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        viewer.session_id,
        req.app.client_id,
        req.redirect_uri,
        req.scopes,
        req.state.as_deref().unwrap_or_default(),
        req.code_challenge
    );
    let digest = app.media.sealer().keyed_hash("ecer oauth consent v1", message.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// Whether a form post came from our own page: browsers send `Origin` on every POST, so here (unlike
/// the GraphQL endpoint, which also serves clients that are not browsers) it must be present and ours.
fn from_our_page(app: &AppState, headers: &HeaderMap) -> bool {
    headers.contains_key(header::ORIGIN) && auth::proves_same_origin(headers, auth::Origins::of(&app.config))
}

/// GET /oauth/authorize: the sign-in form, or the consent page.
pub async fn authorize(State(app): State<AppState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let raw = query.unwrap_or_default();
    let lang_of = |req: &AuthRequest| Lang::choose(req.ui_locales.as_deref(), &headers);
    let Some(params) = params(raw.as_bytes()) else {
        return page(StatusCode::BAD_REQUEST, oauth_pages::error(Lang::choose(None, &headers), Text::Repeated));
    };
    let req = auth_request(&params);
    let lang = lang_of(&req);
    let checked = match oauth::check_request(&app.db, &req).await {
        Ok(Ok(checked)) => checked,
        Ok(Err(refusal)) => return refuse(&app, lang, refusal),
        Err(err) => return internal(err),
    };
    let member = match cookie_member(&app, &headers).await {
        Ok(member) => member,
        Err(resp) => return resp,
    };
    let Some(member) = member else {
        let return_to = format!("/oauth/authorize?{raw}");
        return page(StatusCode::OK, oauth_pages::sign_in(lang, &checked, &return_to, None));
    };
    let nickname = match entity_nickname(&app, member.user_id).await {
        Ok(n) => n,
        Err(resp) => return resp,
    };
    let token = csrf(&app, &member, &checked);
    page(StatusCode::OK, oauth_pages::consent(lang, &checked, &req, &nickname, &token))
}

async fn entity_nickname(app: &AppState, user_id: i64) -> Result<String, Response> {
    use sea_orm::EntityTrait as _;
    match entity::users::Entity::find_by_id(user_id).one(&app.db).await {
        Ok(Some(user)) => Ok(user.nickname),
        Ok(None) => Err(StatusCode::FORBIDDEN.into_response()),
        Err(err) => Err(internal(err.into())),
    }
}

fn refuse(app: &AppState, lang: Lang, refusal: Refusal) -> Response {
    match refusal {
        Refusal::Here(problem) => page(StatusCode::BAD_REQUEST, oauth_pages::error(lang, problem.into())),
        Refusal::Redirect { redirect_uri, state, error, description } => redirect_with(
            app,
            &redirect_uri,
            state.as_deref(),
            &[("error", error), ("error_description", &description)],
        ),
    }
}

/// POST /oauth/authorize: the member's decision on the consent page.
pub async fn decide(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(params) = params(&body) else {
        return page(StatusCode::BAD_REQUEST, oauth_pages::error(Lang::choose(None, &headers), Text::Repeated));
    };
    let req = auth_request(&params);
    let lang = Lang::choose(req.ui_locales.as_deref(), &headers);
    let forbidden = || page(StatusCode::FORBIDDEN, oauth_pages::error(lang, Text::Forged));
    if !from_our_page(&app, &headers) {
        return forbidden();
    }
    // The cookie counts only on a request our own page made (not another site's form).
    let member = match auth::viewer::for_request(&app.db, &app.config, &headers).await {
        Ok(Some(v)) if v.app.is_none() && v.session_id != 0 => v,
        Ok(_) => return forbidden(),
        Err(err) => return internal(err),
    };
    let checked = match oauth::check_request(&app.db, &req).await {
        Ok(Ok(checked)) => checked,
        Ok(Err(refusal)) => return refuse(&app, lang, refusal),
        Err(err) => return internal(err),
    };
    let expected = csrf(&app, &member, &checked);
    let given = get(&params, "csrf").unwrap_or_default();
    // Equal lengths and a keyed hash: a timing difference tells the attacker nothing useful, but
    // compare without short-circuiting anyway.
    let same = expected.len() == given.len()
        && expected.bytes().zip(given.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if !same {
        return forbidden();
    }
    match get(&params, "decision") {
        Some("approve") => {
            let ip = super::client::client_info(&headers, &peer).ip;
            match oauth::approve(&app.db, &member, ip.as_deref(), &checked).await {
                Ok(code) => redirect_with(&app, &checked.redirect_uri, checked.state.as_deref(), &[("code", &code)]),
                Err(err) => {
                    // The app is known good by now: it hears of the failure (RFC 6749 §4.1.2.1).
                    tracing::error!(error = %format!("{err:?}"), "oauth approval failed");
                    redirect_with(
                        &app,
                        &checked.redirect_uri,
                        checked.state.as_deref(),
                        &[("error", "temporarily_unavailable"), ("error_description", "try again")],
                    )
                }
            }
        }
        Some("deny") => redirect_with(
            &app,
            &checked.redirect_uri,
            checked.state.as_deref(),
            &[("error", "access_denied"), ("error_description", "the member declined")],
        ),
        _ => page(StatusCode::BAD_REQUEST, oauth_pages::error(lang, Text::NoDecision)),
    }
}

/// POST /oauth/sign-in: the sign-in form on the authorization page. Same-origin only (so another
/// site cannot sign a browser into an account of its choosing), rate-limited like `login`.
pub async fn sign_in(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let lang = Lang::choose(None, &headers);
    if !from_our_page(&app, &headers) {
        return page(StatusCode::FORBIDDEN, oauth_pages::error(lang, Text::Forged));
    }
    let Some(params) = params(&body) else {
        return page(StatusCode::BAD_REQUEST, oauth_pages::error(lang, Text::Repeated));
    };
    let return_to = get(&params, "return_to").unwrap_or_default();
    // Only back to an authorization request of ours: never an open redirect.
    let Some(query) = return_to.strip_prefix("/oauth/authorize?") else {
        return page(StatusCode::BAD_REQUEST, oauth_pages::error(lang, Text::NoDecision));
    };
    let Some(auth_params) = self::params(query.as_bytes()) else {
        return page(StatusCode::BAD_REQUEST, oauth_pages::error(lang, Text::Repeated));
    };
    let req = auth_request(&auth_params);
    let lang = Lang::choose(req.ui_locales.as_deref(), &headers);
    let checked = match oauth::check_request(&app.db, &req).await {
        Ok(Ok(checked)) => checked,
        Ok(Err(refusal)) => return refuse(&app, lang, refusal),
        Err(err) => return internal(err),
    };
    let started = std::time::Instant::now();
    let client = super::client::client_info(&headers, &peer);
    let key = crate::ratelimit::key_for(None, client.ip.as_deref());
    if app.limiter.check(crate::ratelimit::Limit::Auth, &key).await.is_err() {
        return page(
            StatusCode::TOO_MANY_REQUESTS,
            oauth_pages::sign_in(lang, &checked, return_to, Some(Text::TooMany)),
        );
    }
    let phone = get(&params, "phone").unwrap_or_default();
    let password = get(&params, "password").unwrap_or_default().to_string();
    let meta = SessionMeta {
        ttl: chrono::Duration::hours(i64::from(app.config.session_ttl_hours)),
        user_agent: client.user_agent.clone(),
        ip: client.ip.clone(),
    };
    match accounts::login(&app.db, &app.broker, app.media.sealer(), phone, password, meta).await {
        Ok(session) => {
            // On the member's login history like any sign-in (what they check for a stranger's).
            app.activity.request(crate::services::activity::RequestRecord {
                duration: started.elapsed(),
                user_id: Some(session.user.id),
                transport: "http",
                operation: "oauthSignIn".into(),
                sign_in: true,
                client: std::sync::Arc::new(client),
                // The member signed in on our page; the app acts only once it holds a token.
                app_id: None,
            });
            let mut resp = see_other(return_to);
            let cookie = auth::session_cookie(
                &app.config.session_cookie_name,
                &session.token,
                chrono::Duration::hours(i64::from(app.config.session_ttl_hours)),
                app.config.session_cookie_secure,
            );
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().append(header::SET_COOKIE, value);
            }
            resp
        }
        Err(crate::error::AppError::BadCredentials) => {
            page(StatusCode::UNAUTHORIZED, oauth_pages::sign_in(lang, &checked, return_to, Some(Text::WrongPassword)))
        }
        Err(crate::error::AppError::AccountLocked { .. }) | Err(crate::error::AppError::Forbidden(_)) => {
            page(StatusCode::FORBIDDEN, oauth_pages::sign_in(lang, &checked, return_to, Some(Text::Locked)))
        }
        Err(err) => internal(err),
    }
}

fn token_json(status: StatusCode, body: serde_json::Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

fn token_error(err: TokenError, basic: bool) -> Response {
    let status = if err.error == "invalid_client" { StatusCode::UNAUTHORIZED } else { StatusCode::BAD_REQUEST };
    let mut resp = token_json(status, json!({ "error": err.error, "error_description": err.description }));
    if status == StatusCode::UNAUTHORIZED && basic {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"ecer\""));
    }
    resp
}

fn invalid_request(description: &str) -> TokenError {
    TokenError { error: "invalid_request", description: description.to_string() }
}

/// The client's credentials: HTTP Basic (form-urlencoded id and secret, RFC 6749 §2.3.1), or
/// `client_id` (+ `client_secret`) in the body; never both.
fn credentials(headers: &HeaderMap, params: &[(String, String)]) -> Result<(ClientCredentials, bool), TokenError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, encoded)| encoded);
    let body_id = get(params, "client_id");
    let body_secret = get(params, "client_secret");
    match basic {
        Some(encoded) => {
            if body_secret.is_some() {
                return Err(invalid_request("use one client authentication method"));
            }
            let bad = || TokenError { error: "invalid_client", description: "malformed Basic credentials".into() };
            let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
            let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
            let decode = |s: &str| -> String {
                url::form_urlencoded::parse(format!("v={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            let id = decode(id);
            if body_id.is_some_and(|b| b != id) {
                return Err(invalid_request("client_id differs from the authenticated client"));
            }
            Ok((ClientCredentials { client_id: id, secret: Some(decode(secret)) }, true))
        }
        None => {
            let id = body_id.ok_or_else(|| TokenError {
                error: "invalid_client",
                description: "client authentication is required".into(),
            })?;
            Ok((ClientCredentials { client_id: id.to_string(), secret: body_secret.map(str::to_string) }, false))
        }
    }
}

/// The form of a token or revocation request, and the client it authenticates (with whether it used
/// HTTP Basic, which shapes a 401); the error response otherwise.
async fn authenticated(
    app: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Vec<(String, String)>, entity::developer_apps::Model, bool), Response> {
    let Some(params) = params(body) else { return Err(token_error(invalid_request("a parameter is repeated"), false)) };
    let tried_basic = headers.get(header::AUTHORIZATION).is_some();
    let (creds, basic) = credentials(headers, &params).map_err(|err| token_error(err, tried_basic))?;
    match oauth::authenticate(&app.db, &creds).await {
        Ok(Ok(client)) => Ok((params, client, basic)),
        Ok(Err(err)) => Err(token_error(err, basic)),
        Err(err) => Err(internal(err)),
    }
}

fn access_ttl(app: &AppState) -> chrono::Duration {
    chrono::Duration::seconds(i64::from(app.config.oauth_access_token_ttl_secs))
}

/// POST /oauth/token.
pub async fn token(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (params, client, basic) = match authenticated(&app, &headers, &body).await {
        Ok(parts) => parts,
        Err(resp) => return resp,
    };
    let issued = match get(&params, "grant_type") {
        Some("authorization_code") => {
            let (Some(code), Some(verifier)) = (get(&params, "code"), get(&params, "code_verifier")) else {
                return token_error(invalid_request("code and code_verifier are required"), basic);
            };
            let redirect_uri = get(&params, "redirect_uri");
            oauth::exchange_code(&app.db, &app.broker, &client, code, redirect_uri, verifier, access_ttl(&app)).await
        }
        Some("refresh_token") => {
            let Some(refresh) = get(&params, "refresh_token") else {
                return token_error(invalid_request("refresh_token is required"), basic);
            };
            oauth::refresh(&app.db, &app.broker, &client, refresh, get(&params, "scope"), access_ttl(&app)).await
        }
        Some(_) => {
            let err = TokenError {
                error: "unsupported_grant_type",
                description: "use authorization_code or refresh_token".into(),
            };
            return token_error(err, basic);
        }
        None => return token_error(invalid_request("grant_type is required"), basic),
    };
    match issued {
        Ok(Ok(issued)) => token_json(
            StatusCode::OK,
            json!({
                "access_token": issued.access_token,
                "token_type": "Bearer",
                "expires_in": issued.expires_in,
                "refresh_token": issued.refresh_token,
                "scope": issued.scopes.to_string(),
            }),
        ),
        Ok(Err(err)) => token_error(err, basic),
        Err(err) => internal(err),
    }
}

/// POST /oauth/revoke (RFC 7009): 200 whether or not the token was known.
pub async fn revoke(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (params, client, basic) = match authenticated(&app, &headers, &body).await {
        Ok(parts) => parts,
        Err(resp) => return resp,
    };
    let Some(token) = get(&params, "token") else { return token_error(invalid_request("token is required"), basic) };
    match oauth::revoke_token(&app.db, &app.broker, &client, token).await {
        Ok(()) => token_json(StatusCode::OK, json!({})),
        Err(err) => internal(err),
    }
}

/// GET /.well-known/oauth-authorization-server (RFC 8414).
pub async fn metadata(State(app): State<AppState>) -> Response {
    let issuer = issuer(&app);
    let auth_methods = ["client_secret_basic", "client_secret_post", "none"];
    let body = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "scopes_supported": Scope::ALL.iter().map(|s| s.name()).collect::<Vec<_>>(),
        "authorization_response_iss_parameter_supported": true,
        "ui_locales_supported": ["zh-CN", "en"],
    });
    let mut resp = (StatusCode::OK, body.to_string()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    resp
}
