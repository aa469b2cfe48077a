//! The OAuth 2.1 authorization server (issue 16): third-party apps an admin approved ask members for
//! scoped access with the authorization code flow and PKCE (RFC 8414 metadata, RFC 7009 revocation,
//! RFC 9207 `iss`, RFC 8252 loopback redirects), then call the API with `ecat_` access tokens that
//! the scope table narrows and that never carry staff powers. Members see and revoke their grants;
//! grants are audited, exported and end with the account.
//!
//! The fixtures at the top (`approved_app`, `pkce`, `authorize`, `code_for`, `exchange`) are shared
//! with tests/api/oauth_clients.rs.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::common::{TestApp, Ws, phone};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// An app registered by a verified member and approved by an admin.
pub(crate) struct OAuthApp {
    pub client_id: String,
    /// The client secret of a confidential app (shown once at registration); `None` for a public one.
    pub secret: Option<String>,
    /// The developer's first-party session token.
    pub developer: String,
    /// The session token of the ADMIN who approved the app.
    pub admin: String,
}

/// The homepage every fixture app registers.
pub(crate) const HOMEPAGE: &str = "https://crm.example/";
/// The developer's nickname (as `developer_apps::verified_member` registers it).
pub(crate) const DEVELOPER: &str = "developer";

/// The name `approved_app` gives an app.
pub(crate) fn app_name(confidential: bool) -> &'static str {
    if confidential { "Partner CRM" } else { "CRM mobile" }
}

const REGISTER_APP: &str = "mutation($input: RegisterAppInput!) {
    registerApp(input: $input) { app { clientId status } clientSecret } }";
const REVIEW_APP: &str = "mutation($c: String!) {
    reviewApp(input: { clientId: $c, approve: true, reason: \"clear purpose, known company\" }) { app { status } } }";

/// Phone numbers of fixture members: far from the small numbers tests use, distinct per call.
static NEXT_FIXTURE: AtomicU32 = AtomicU32::new(0);

fn app_input(confidential: bool, redirect_uris: &[&str]) -> Value {
    json!({ "input": {
        "name": app_name(confidential),
        "description": "Syncs buyers' inquiries from the community into our CRM.",
        "homepageUrl": HOMEPAGE,
        "redirectUris": redirect_uris,
        "confidential": confidential,
    } })
}

/// Registers an app by a verified member (crate::developer_apps::verified_member), approves it by
/// an admin (reviewApp), returns it. Each call has a developer and an admin of its own.
pub(crate) async fn approved_app(app: &TestApp, confidential: bool, redirect_uris: &[&str]) -> OAuthApp {
    let n = 70_000 + 1_000 * NEXT_FIXTURE.fetch_add(1, Ordering::Relaxed);
    // Not `app.admin()`: running create-admin again would sign out a test's own admin.
    let (admin, _) = app.user_with_role(&phone(n + 500), "ADMIN").await;
    let (developer, _) = crate::developer_apps::verified_member(app, &admin, n).await;
    let data = app.gql(Some(&developer), REGISTER_APP, app_input(confidential, redirect_uris)).await;
    let client_id = data["registerApp"]["app"]["clientId"].as_str().expect("clientId").to_string();
    let secret = data["registerApp"]["clientSecret"].as_str().map(str::to_string);
    assert_eq!(secret.is_some(), confidential, "a secret exactly for a confidential app: {data}");
    let reviewed = app.gql(Some(&admin), REVIEW_APP, json!({ "c": client_id })).await;
    assert_eq!(reviewed["reviewApp"]["app"]["status"], "APPROVED", "{reviewed}");
    OAuthApp { client_id, secret, developer, admin }
}

/// PKCE pair: (verifier, S256 challenge); the verifier is 43 characters of the unreserved set.
pub(crate) fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// An HTTP client that does not follow redirects (the tests read every `Location`).
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("http client")
}

/// The issuer: the gateway's base URL, without a trailing slash.
pub(crate) fn issuer(app: &TestApp) -> String {
    app.url("")
}

/// The `Cookie` header value carrying a first-party session.
pub(crate) fn session_cookie(app: &TestApp, token: &str) -> String {
    format!("{}={token}", app.state.config.session_cookie_name)
}

/// The parameters of an authorization request.
pub(crate) fn authorize_params(
    client_id: &str,
    redirect_uri: &str,
    scope: &str,
    state: &str,
    challenge: &str,
) -> Vec<(String, String)> {
    [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", scope),
        ("state", state),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn with(params: &[(String, String)], key: &str, value: Option<&str>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = params.iter().filter(|(k, _)| k != key).cloned().collect();
    if let Some(v) = value {
        out.push((key.to_string(), v.to_string()));
    }
    out
}

fn encode(pairs: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// GET /oauth/authorize as a browser following the app's redirect (a cross-site top-level
/// navigation), with the member's session cookie if given.
pub(crate) async fn get_authorize(
    app: &TestApp,
    member: Option<&str>,
    params: &[(String, String)],
) -> reqwest::Response {
    let mut req = client()
        .get(format!("{}?{}", app.url("/oauth/authorize"), encode(params)))
        .header("Sec-Fetch-Site", "cross-site")
        .header("Sec-Fetch-Mode", "navigate")
        .header("Sec-Fetch-Dest", "document");
    if let Some(token) = member {
        req = req.header("Cookie", session_cookie(app, token));
    }
    req.send().await.expect("GET /oauth/authorize")
}

/// The consent page for `params` as `member` sees it: (headers, HTML, csrf).
pub(crate) async fn consent(
    app: &TestApp,
    member: &str,
    params: &[(String, String)],
) -> (reqwest::header::HeaderMap, String, String) {
    let resp = get_authorize(app, Some(member), params).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let html = resp.text().await.expect("consent page body");
    assert_eq!(status, 200, "the consent page for {params:?}: {html}");
    let csrf = inputs(&html)
        .into_iter()
        .find(|i| i.get("name").map(String::as_str) == Some("csrf"))
        .and_then(|i| i.get("value").cloned())
        .unwrap_or_else(|| panic!("no hidden `csrf` input on the consent page: {html}"));
    assert!(!csrf.is_empty(), "an empty csrf on the consent page");
    (headers, html, csrf)
}

/// POSTs the consent form: `params` + `csrf` + `decision`, with the member's cookie and `origin`.
pub(crate) async fn post_consent(
    app: &TestApp,
    member: Option<&str>,
    params: &[(String, String)],
    csrf: Option<&str>,
    decision: &str,
    origin: Option<&str>,
) -> reqwest::Response {
    let mut form = params.to_vec();
    if let Some(c) = csrf {
        form.push(("csrf".into(), c.into()));
    }
    form.push(("decision".into(), decision.into()));
    let mut req = browser_form_post(app, "/oauth/authorize", encode(&form), origin);
    if let Some(token) = member {
        req = req.header("Cookie", session_cookie(app, token));
    }
    req.send().await.expect("POST /oauth/authorize")
}

/// A form post as a browser sends it from a page at `origin` (none: no `Origin` header, the
/// request otherwise looking like the gateway's own page, so only the missing header is wrong).
fn browser_form_post(app: &TestApp, path: &str, body: String, origin: Option<&str>) -> reqwest::RequestBuilder {
    let req = client()
        .post(app.url(path))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Sec-Fetch-Site", if origin.is_none_or(|o| o == issuer(app)) { "same-origin" } else { "cross-site" })
        .header("Sec-Fetch-Mode", "navigate")
        .header("Sec-Fetch-Dest", "document")
        .body(body);
    match origin {
        Some(o) => req.header("Origin", o),
        None => req,
    }
}

/// Runs the consent flow over plain HTTP as `member` (a first-party session token, sent as the
/// session cookie): GET the consent page, read its csrf, POST approve from the gateway's origin.
/// Returns the raw POST response (303 to the app when all went well).
pub(crate) async fn authorize(
    app: &TestApp,
    member: &str,
    client_id: &str,
    redirect_uri: &str,
    scope: &str,
    state: &str,
    challenge: &str,
) -> reqwest::Response {
    let params = authorize_params(client_id, redirect_uri, scope, state, challenge);
    let (_, _, csrf) = consent(app, member, &params).await;
    post_consent(app, Some(member), &params, Some(&csrf), "approve", Some(&issuer(app))).await
}

/// The query parameters of a 303 to `redirect_uri` (asserting the status and that the `Location`
/// is `redirect_uri` plus a query).
pub(crate) fn redirected_to(resp: &reqwest::Response, redirect_uri: &str) -> HashMap<String, String> {
    assert_eq!(
        resp.status(),
        303,
        "expected a 303 back to {redirect_uri}, got {} ({:?})",
        resp.status(),
        resp.headers()
    );
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("a 303 without Location: {:?}", resp.headers()));
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let prefix = format!("{redirect_uri}{sep}");
    let query = location
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("Location {location:?} is not {redirect_uri:?} plus a query"));
    url::form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

/// `authorize`, then the `code` from the redirect (checking `state` and `iss` came back).
pub(crate) async fn code_for(
    app: &TestApp,
    member: &str,
    client_id: &str,
    redirect_uri: &str,
    scope: &str,
    state: &str,
    challenge: &str,
) -> String {
    let resp = authorize(app, member, client_id, redirect_uri, scope, state, challenge).await;
    let q = redirected_to(&resp, redirect_uri);
    assert!(!q.contains_key("error"), "the approval came back as an error: {q:?}");
    assert_eq!(q.get("state").map(String::as_str), Some(state), "state in {q:?}");
    assert_eq!(q.get("iss"), Some(&issuer(app)), "iss in {q:?}");
    q.get("code").filter(|c| !c.is_empty()).unwrap_or_else(|| panic!("no code in {q:?}")).clone()
}

/// How a request to the token or revocation endpoint authenticates its client.
#[derive(Clone, Copy)]
pub(crate) enum Client<'a> {
    /// client_secret_basic.
    Basic(&'a str, &'a str),
    /// client_secret_post.
    Post(&'a str, &'a str),
    /// A public client: `client_id` in the body.
    Public(&'a str),
    /// Nothing at all.
    Nothing,
}

impl OAuthApp {
    /// How this app authenticates by default: Basic for a confidential app, `client_id` else.
    pub(crate) fn auth(&self) -> Client<'_> {
        match &self.secret {
            Some(s) => Client::Basic(&self.client_id, s),
            None => Client::Public(&self.client_id),
        }
    }
}

fn form_urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// POSTs a form to an OAuth endpoint: (status, headers, body as JSON; `Null` when empty, a string
/// when not JSON).
pub(crate) async fn oauth_post(
    app: &TestApp,
    path: &str,
    auth: Client<'_>,
    pairs: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut form: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut req = client().post(app.url(path)).header("Content-Type", "application/x-www-form-urlencoded");
    match auth {
        Client::Basic(id, secret) => {
            let cred = STANDARD.encode(format!("{}:{}", form_urlencode(id), form_urlencode(secret)));
            req = req.header("Authorization", format!("Basic {cred}"));
        }
        Client::Post(id, secret) => {
            form.push(("client_id".into(), id.into()));
            form.push(("client_secret".into(), secret.into()));
        }
        Client::Public(id) => form.push(("client_id".into(), id.into())),
        Client::Nothing => {}
    }
    let resp = req.body(encode(&form)).send().await.expect("POST to an OAuth endpoint");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    (status, headers, body)
}

/// Exchanges an authorization code at the token endpoint (the app's default client authentication).
pub(crate) async fn exchange(
    app: &TestApp,
    oapp: &OAuthApp,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> (u16, Value) {
    let (status, _, body) = oauth_post(
        app,
        "/oauth/token",
        oapp.auth(),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ],
    )
    .await;
    (status, body)
}

/// A refresh token grant (the app's default client authentication).
pub(crate) async fn refresh(app: &TestApp, oapp: &OAuthApp, refresh_token: &str) -> (u16, Value) {
    let (status, _, body) = oauth_post(
        app,
        "/oauth/token",
        oapp.auth(),
        &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)],
    )
    .await;
    (status, body)
}

/// RFC 7009 revocation (the app's default client authentication).
pub(crate) async fn revoke(app: &TestApp, oapp: &OAuthApp, token: &str, hint: Option<&str>) -> u16 {
    let mut pairs = vec![("token", token)];
    if let Some(h) = hint {
        pairs.push(("token_type_hint", h));
    }
    oauth_post(app, "/oauth/revoke", oapp.auth(), &pairs).await.0
}

/// What a successful token response carried.
#[derive(Debug, Clone)]
pub(crate) struct Tokens {
    pub access: String,
    pub refresh: String,
    pub scope: BTreeSet<String>,
}

/// Checks a 200 token response against the contract and takes its tokens.
fn tokens_of(status: u16, body: &Value) -> Tokens {
    assert_eq!(status, 200, "token response: {body}");
    let access = body["access_token"].as_str().unwrap_or_else(|| panic!("no access_token: {body}"));
    let refresh = body["refresh_token"].as_str().unwrap_or_else(|| panic!("no refresh_token: {body}"));
    assert!(access.starts_with("ecat_"), "access token {access:?} does not start with ecat_");
    assert!(refresh.starts_with("ecrt_"), "refresh token {refresh:?} does not start with ecrt_");
    assert_eq!(body["token_type"], "Bearer", "{body}");
    assert_eq!(body["expires_in"], 3600, "{body}");
    let scope = body["scope"].as_str().unwrap_or_else(|| panic!("no scope: {body}"));
    Tokens { access: access.into(), refresh: refresh.into(), scope: words(scope) }
}

/// The whole flow for `member`: consent, code, exchange; the redirect URI is `redirect_uri`.
pub(crate) async fn tokens_at(app: &TestApp, oapp: &OAuthApp, member: &str, redirect_uri: &str, scope: &str) -> Tokens {
    let (verifier, challenge) = pkce();
    let code = code_for(app, member, &oapp.client_id, redirect_uri, scope, "st", &challenge).await;
    let (status, body) = exchange(app, oapp, &code, redirect_uri, &verifier).await;
    tokens_of(status, &body)
}

/// The whole flow at the first redirect URI every app in this file registers (`CB`).
async fn tokens(app: &TestApp, oapp: &OAuthApp, member: &str, scope: &str) -> Tokens {
    tokens_at(app, oapp, member, CB, scope).await
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/// A fresh code for `member` at `CB`: (code, verifier).
async fn fresh_code(app: &TestApp, member: &str, client_id: &str, scope: &str, state: &str) -> (String, String) {
    let (verifier, challenge) = pkce();
    (code_for(app, member, client_id, CB, scope, state, &challenge).await, verifier)
}

/// Exchanges a code (redirect URI `CB`) authenticating as `auth`.
async fn exchange_as(app: &TestApp, auth: Client<'_>, code: String, verifier: String) -> (u16, Value) {
    let (status, _, body) = oauth_post(
        app,
        "/oauth/token",
        auth,
        &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB), ("code_verifier", &verifier)],
    )
    .await;
    (status, body)
}

const CB: &str = "https://crm.example/oauth/callback";
const CB2: &str = "https://crm.example/oauth/other";
const LOOPBACK: &str = "http://127.0.0.1:8765/callback";
const LOOPBACK6: &str = "http://[::1]:8765/callback";
const FOREIGN: &str = "https://evil.example";

fn words(s: &str) -> BTreeSet<String> {
    s.split(' ').filter(|w| !w.is_empty()).map(str::to_string).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A JSON list of strings (or a space-separated string) as a set.
fn strings(v: &Value) -> BTreeSet<String> {
    match v {
        Value::Array(a) => {
            a.iter().map(|s| s.as_str().unwrap_or_else(|| panic!("not a string: {s}")).to_string()).collect()
        }
        Value::String(s) => words(s),
        other => panic!("expected a list of strings, got {other}"),
    }
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn assert_error(status: u16, body: &Value, want_status: u16, want: &str, ctx: &str) {
    assert_eq!(
        (status, body["error"].as_str()),
        (want_status, Some(want)),
        "{ctx}: expected {want_status} {want}, got {status} {body}"
    );
    assert!(body["error_description"].is_string(), "{ctx}: no error_description in {body}");
}

/// A GraphQL request with a bearer token: (status, body).
async fn gql_as(app: &TestApp, token: &str, query: &str, variables: Value) -> (u16, Value) {
    let resp = client()
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("graphql request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The first error's code and `requiredScope` (`Null` when absent).
fn first_error(body: &Value) -> (String, Value) {
    let err = &body["errors"][0];
    assert!(!err.is_null(), "expected an error, got {body}");
    (err["extensions"]["code"].as_str().unwrap_or("<none>").to_string(), err["extensions"]["requiredScope"].clone())
}

/// The request is refused for lack of a scope: INSUFFICIENT_SCOPE naming `scope` (`None`: no scope
/// allows it, `requiredScope` null).
async fn assert_scope_refused(app: &TestApp, token: &str, query: &str, variables: Value, scope: Option<&str>) {
    let (_, body) = gql_as(app, token, query, variables).await;
    let (code, required) = first_error(&body);
    assert_eq!(code, "INSUFFICIENT_SCOPE", "{query}: {body}");
    assert_eq!(required, scope.map_or(Value::Null, |s| json!(s)), "requiredScope for {query}: {body}");
}

const ME: &str = "{ me { id } }";

/// Whether an access token still acts for a member: `me` answers (or is refused for lack of scope,
/// which only a live token is) rather than reading as signed out.
/// A socket for `token` subscribed to its messages (`messageReceived`, id "m").
async fn listening(app: &TestApp, token: &str) -> Ws {
    let mut ws = app.ws(Some(token)).await;
    ws.subscribe("m", "subscription { messageReceived { body } }", json!({})).await;
    ws
}

async fn token_alive(app: &TestApp, token: &str) -> bool {
    let (status, body) = gql_as(app, token, ME, json!({})).await;
    if let Some(id) = body["data"]["me"]["id"].as_str() {
        return !id.is_empty();
    }
    if body.get("errors").is_some() {
        let (code, _) = first_error(&body);
        return match code.as_str() {
            "INSUFFICIENT_SCOPE" => true,
            "UNAUTHENTICATED" => false,
            other => panic!("`me` with an app token answered {other}: {status} {body}"),
        };
    }
    assert_eq!(body["data"]["me"], Value::Null, "{status} {body}");
    false
}

async fn assert_alive(app: &TestApp, token: &str, ctx: &str) {
    assert!(token_alive(app, token).await, "{ctx}: the access token should still work");
}

async fn assert_dead(app: &TestApp, token: &str, ctx: &str) {
    assert!(!token_alive(app, token).await, "{ctx}: the access token should no longer work");
}

async fn assert_refresh_refused(app: &TestApp, oapp: &OAuthApp, rt: &str, ctx: &str) {
    let (status, body) = refresh(app, oapp, rt).await;
    assert_error(status, &body, 400, "invalid_grant", ctx);
}

const AUTHORIZED: &str =
    "{ me { authorizedApps { clientId name homepageUrl developer { nickname } scopes grantedAt } } }";

async fn authorized_apps(app: &TestApp, member: &str) -> Vec<Value> {
    app.gql(Some(member), AUTHORIZED, json!({})).await["me"]["authorizedApps"]
        .as_array()
        .unwrap_or_else(|| panic!("authorizedApps is not a list"))
        .clone()
}

const REVOKE_GRANT: &str = "mutation($c: String!) { revokeAppAuthorization(input: { clientId: $c }) { clientId } }";

/// Audit actions, newest first.
async fn audit_actions(app: &TestApp, admin: &str) -> Vec<(String, String)> {
    let log = app.gql(Some(admin), "{ auditLog(first: 50) { edges { node { action target } } } }", json!({})).await;
    log["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["node"]["action"].as_str().unwrap_or("").to_string(),
                e["node"]["target"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// POSTs the authorization page's sign-in form, from `origin` (none: no `Origin` header).
async fn sign_in_form(
    app: &TestApp,
    origin: Option<&str>,
    phone: &str,
    password: &str,
    return_to: &str,
) -> reqwest::Response {
    let body = encode(&[
        ("phone".into(), phone.into()),
        ("password".into(), password.into()),
        ("return_to".into(), return_to.into()),
    ]);
    browser_form_post(app, "/oauth/sign-in", body, origin).send().await.expect("POST /oauth/sign-in")
}

/// The session token a response's `Set-Cookie` hands out, if any.
fn session_from(app: &TestApp, resp: &reqwest::Response) -> Option<String> {
    let prefix = format!("{}=", app.state.config.session_cookie_name);
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&prefix))
        .map(|c| c[prefix.len()..].split(';').next().unwrap_or("").to_string())
        .filter(|v| !v.is_empty())
}

// ---- a small HTML reader: start tags and their attributes ------------------------------------

/// The attributes of every `<tag …>` in `html` (names lower-cased, values unescaped).
fn tags(html: &str, tag: &str) -> Vec<HashMap<String, String>> {
    let mut out = Vec::new();
    let lower = html.to_ascii_lowercase();
    let open = format!("<{tag}");
    let mut from = 0;
    while let Some(at) = lower[from..].find(&open) {
        let start = from + at + open.len();
        from = start;
        // `<inputs` is not `<input`.
        if !lower[start..].starts_with(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/') {
            continue;
        }
        out.push(attributes(&html[start..]));
    }
    out
}

fn attributes(s: &str) -> HashMap<String, String> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut attrs = HashMap::new();
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        if i >= b.len() || b[i] == b'>' {
            return attrs;
        }
        let name_start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let name = s[name_start..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let vs = i + 1;
                i = vs;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                value = unescape(&s[vs..i.min(b.len())]);
                i += 1;
            } else {
                let vs = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                    i += 1;
                }
                value = unescape(&s[vs..i]);
            }
        }
        attrs.insert(name, value);
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';').filter(|e| *e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let ch = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") || e.starts_with("#X") => {
                u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32)
            }
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn inputs(html: &str) -> Vec<HashMap<String, String>> {
    tags(html, "input")
}

/// The value of the input named `name`.
fn input_value(html: &str, name: &str) -> Option<String> {
    inputs(html)
        .into_iter()
        .find(|i| i.get("name").map(String::as_str) == Some(name))
        .and_then(|i| i.get("value").cloned())
}

/// The text inside `<li … data-scope="{scope}">…</li>`, if there is one.
fn scope_item(html: &str, scope: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find("<li") {
        let start = from + at;
        from = start + 3;
        let attrs = attributes(&html[start + 3..]);
        if attrs.get("data-scope").map(String::as_str) != Some(scope) {
            continue;
        }
        let body_start = start + html[start..].find('>')? + 1;
        let body_end = body_start + lower[body_start..].find("</li")?;
        let inner = &html[body_start..body_end];
        // Text only: drop nested tags.
        let mut text = String::new();
        let mut in_tag = false;
        for c in inner.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => text.push(c),
                _ => {}
            }
        }
        return Some(unescape(text.trim()));
    }
    None
}

/// The `data-scope` of every `<li>` on the page.
fn listed_scopes(html: &str) -> BTreeSet<String> {
    tags(html, "li").into_iter().filter_map(|a| a.get("data-scope").cloned()).collect()
}

// ---- WebSocket --------------------------------------------------------------------------------

/// Runs one query or mutation on the socket; returns its result payload.
async fn ws_op(ws: &mut Ws, id: &str, query: &str, variables: Value) -> Value {
    ws.subscribe(id, query, variables).await;
    let msg = ws.recv().await;
    assert_eq!(msg["id"], id, "{msg}");
    match msg["type"].as_str() {
        Some("next") => {
            let done = ws.recv().await;
            assert_eq!((done["type"].as_str(), done["id"].as_str()), (Some("complete"), Some(id)), "{done}");
            msg["payload"].clone()
        }
        Some("error") => json!({ "errors": msg["payload"] }),
        _ => panic!("unexpected message for {id}: {msg}"),
    }
}

/// The first message for a subscription that must be refused, as a `{ errors }` payload (an
/// `error` message, or a `next` carrying errors).
async fn ws_refused(ws: &mut Ws, id: &str) -> Value {
    let msg = ws.recv().await;
    assert_eq!(msg["id"], id, "{msg}");
    match msg["type"].as_str() {
        Some("error") => json!({ "errors": msg["payload"] }),
        Some("next") => {
            assert!(msg["payload"]["errors"].is_array(), "the subscription ran: {msg}");
            let done = ws.recv().await;
            assert_eq!((done["type"].as_str(), done["id"].as_str()), (Some("complete"), Some(id)), "{done}");
            msg["payload"].clone()
        }
        _ => panic!("unexpected message for {id}: {msg}"),
    }
}

async fn closed_with(ws: &mut Ws) -> u16 {
    closed_within(ws, std::time::Duration::from_secs(10)).await
}

/// As [`closed_with`], waiting up to `limit` for each frame.
async fn closed_within(ws: &mut Ws, limit: std::time::Duration) -> u16 {
    use crate::common::Ended;
    loop {
        match ws.recv_within(limit).await {
            Ok(msg) => assert_ne!(msg["type"], "next", "the socket ran an operation after the revocation: {msg}"),
            Err(Ended::Closed(code, _)) => return code,
            Err(Ended::Dropped) => panic!("the socket dropped without a close frame"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn metadata_describes_the_authorization_server() {
    let app = TestApp::spawn().await;
    let resp = client().get(app.url("/.well-known/oauth-authorization-server")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(header(resp.headers(), "content-type").starts_with("application/json"), "{:?}", resp.headers());
    let m: Value = resp.json().await.unwrap();
    let iss = issuer(&app);
    assert!(!iss.ends_with('/'));
    assert_eq!(m["issuer"], iss.as_str(), "{m}");
    assert_eq!(m["authorization_endpoint"], format!("{iss}/oauth/authorize").as_str(), "{m}");
    assert_eq!(m["token_endpoint"], format!("{iss}/oauth/token").as_str(), "{m}");
    assert_eq!(m["revocation_endpoint"], format!("{iss}/oauth/revoke").as_str(), "{m}");
    assert_eq!(m["response_types_supported"], json!(["code"]), "{m}");
    assert_eq!(strings(&m["grant_types_supported"]), set(&["authorization_code", "refresh_token"]), "{m}");
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]), "{m}");
    assert_eq!(
        strings(&m["token_endpoint_auth_methods_supported"]),
        set(&["client_secret_basic", "client_secret_post", "none"]),
        "{m}"
    );
    let scopes = strings(&m["scopes_supported"]);
    for s in [
        "profile:read",
        "posts:read",
        "posts:write",
        "social:write",
        "history:read",
        "messages:read",
        "messages:write",
        "notifications:read",
    ] {
        assert!(scopes.contains(s), "scopes_supported lacks {s}: {m}");
    }
    assert_eq!(m["authorization_response_iss_parameter_supported"], true, "{m}");
}

#[tokio::test]
async fn authorize_never_redirects_to_an_unchecked_uri_and_reports_request_errors_to_the_app() {
    let app = TestApp::spawn().await;
    let oapp = approved_app(&app, false, &[CB, LOOPBACK, LOOPBACK6]).await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let (_, challenge) = pkce();
    let ok = authorize_params(&oapp.client_id, CB, "posts:read", "s-1", &challenge);

    // An app still waiting for review.
    let pending = app.gql(Some(&oapp.developer), REGISTER_APP, app_input(false, &[CB])).await;
    let pending_id = pending["registerApp"]["app"]["clientId"].as_str().unwrap().to_string();
    assert_eq!(pending["registerApp"]["app"]["status"], "PENDING");

    // Not an app we know, or not a redirect URI it registered: an error page, never a redirect.
    let refused: Vec<(&str, Vec<(String, String)>)> = vec![
        ("unknown client_id", with(&ok, "client_id", Some("no-such-client"))),
        ("missing client_id", with(&ok, "client_id", None)),
        ("an app not approved", with(&ok, "client_id", Some(&pending_id))),
        ("missing redirect_uri", with(&ok, "redirect_uri", None)),
        ("a foreign redirect_uri", with(&ok, "redirect_uri", Some("https://evil.example/oauth/callback"))),
        ("a trailing slash", with(&ok, "redirect_uri", Some("https://crm.example/oauth/callback/"))),
        ("an added query", with(&ok, "redirect_uri", Some("https://crm.example/oauth/callback?x=1"))),
        ("another path", with(&ok, "redirect_uri", Some(CB2))),
        ("a prefix of the registered URI", with(&ok, "redirect_uri", Some("https://crm.example/oauth"))),
        ("http instead of https", with(&ok, "redirect_uri", Some("http://crm.example/oauth/callback"))),
        ("loopback with another path", with(&ok, "redirect_uri", Some("http://127.0.0.1:8765/other"))),
        ("loopback by name", with(&ok, "redirect_uri", Some("http://localhost:8765/callback"))),
        ("loopback over https", with(&ok, "redirect_uri", Some("https://127.0.0.1:8765/callback"))),
    ];
    for (what, params) in refused {
        // Also the pending app gets no redirect, even at a URI it registered.
        let resp = get_authorize(&app, Some(&alice), &params).await;
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = resp.text().await.unwrap();
        assert_eq!(status, 400, "{what}: {body}");
        assert!(headers.get("location").is_none(), "{what}: redirected to {:?}", headers.get("location"));
        assert!(header(&headers, "content-type").starts_with("text/html"), "{what}: {headers:?}");
    }

    // RFC 8252 §7.3: a registered loopback URI matches on any port (native apps pick one at run time).
    for uri in ["http://127.0.0.1:49152/callback", "http://[::1]:50123/callback", LOOPBACK] {
        let (_, html, _) = consent(&app, &alice, &with(&ok, "redirect_uri", Some(uri))).await;
        assert!(html.contains("id=\"consent\""), "{uri}: {html}");
    }
    // ... and the code comes back to the port asked for, redeemed with that same URI.
    let (verifier, challenge2) = pkce();
    let native = "http://127.0.0.1:50999/callback";
    let code = code_for(&app, &alice, &oapp.client_id, native, "posts:read", "s-2", &challenge2).await;
    let (status, body) = exchange(&app, &oapp, &code, native, &verifier).await;
    tokens_of(status, &body);

    // The client and URI are good: errors go back to the app, with state and iss.
    let errors = [
        ("missing code_challenge", with(&ok, "code_challenge", None), "invalid_request"),
        ("plain PKCE", with(&ok, "code_challenge_method", Some("plain")), "invalid_request"),
        ("implicit flow", with(&ok, "response_type", Some("token")), "unsupported_response_type"),
        ("unknown scope", with(&ok, "scope", Some("posts:read admin:everything")), "invalid_scope"),
    ];
    for (what, params, want) in errors {
        let resp = get_authorize(&app, Some(&alice), &params).await;
        let q = redirected_to(&resp, CB);
        assert_eq!(q.get("error").map(String::as_str), Some(want), "{what}: {q:?}");
        assert_eq!(q.get("state").map(String::as_str), Some("s-1"), "{what}: {q:?}");
        assert_eq!(q.get("iss"), Some(&issuer(&app)), "{what}: {q:?}");
        assert!(!q.contains_key("code"), "{what}: a code with an error: {q:?}");
    }
    assert!(authorized_apps(&app, &alice).await.len() == 1, "only the loopback approval made a grant");
}

#[tokio::test]
async fn the_authorization_page_signs_members_in_from_its_own_origin_only() {
    let app = TestApp::spawn().await;
    let oapp = approved_app(&app, false, &[CB]).await;
    let (_, alice_id) = app.register(&phone(1), "alice").await;
    let (_, challenge) = pkce();
    let params = authorize_params(&oapp.client_id, CB, "profile:read", "s-3", &challenge);

    // Signed out: a sign-in form, on the gateway's own page.
    let resp = get_authorize(&app, None, &params).await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.contains("<form id=\"sign-in\""), "no sign-in form: {html}");
    let form = tags(&html, "form").into_iter().find(|f| f.get("id").map(String::as_str) == Some("sign-in")).unwrap();
    assert_eq!(form.get("action").map(String::as_str), Some("/oauth/sign-in"), "{form:?}");
    assert_eq!(form.get("method").map(|m| m.to_ascii_lowercase()), Some("post".into()), "{form:?}");
    let names: BTreeSet<String> = inputs(&html).into_iter().filter_map(|i| i.get("name").cloned()).collect();
    for n in ["phone", "password", "return_to"] {
        assert!(names.contains(n), "the sign-in form lacks {n}: {names:?}");
    }
    let return_to = input_value(&html, "return_to").unwrap();
    let back = return_to.strip_prefix(&issuer(&app)).unwrap_or(&return_to).to_string();
    assert!(back.starts_with("/oauth/authorize?"), "return_to {return_to:?}");
    assert!(back.contains(&oapp.client_id), "return_to keeps the request: {return_to:?}");

    let sign_in = async |origin: Option<&str>, password: &str, return_to: &str| {
        sign_in_form(&app, origin, &phone(1), password, return_to).await
    };
    let session_set = |resp: &reqwest::Response| session_from(&app, resp);

    // Not from the gateway's own page: refused, no session handed out.
    for origin in [None, Some(FOREIGN), Some("null")] {
        let resp = sign_in(origin, "correct horse", &return_to).await;
        assert_eq!(resp.status(), 403, "sign-in with Origin {origin:?} (Sec-Fetch-Site: same-origin when None)");
        assert!(session_set(&resp).is_none(), "a session for a sign-in with Origin {origin:?}");
    }
    // A wrong password hands out nothing either.
    let resp = sign_in(Some(&issuer(&app)), "guess", &return_to).await;
    assert!(session_set(&resp).is_none(), "a session for a wrong password");

    // Signed in: a session cookie, and back to the same authorization request.
    let resp = sign_in(Some(&issuer(&app)), "correct horse", &return_to).await;
    assert_eq!(resp.status(), 303, "{:?}", resp.headers());
    let session = session_set(&resp).expect("a session cookie");
    let location = header(resp.headers(), "location").to_string();
    assert_eq!(location.strip_prefix(&issuer(&app)).unwrap_or(&location), back, "back to the request");
    let me = app.gql(Some(&session), ME, json!({})).await;
    assert_eq!(me["me"]["id"], alice_id.as_str(), "the cookie is alice's session");
    let (_, html, _) = consent(&app, &session, &params).await;
    assert!(html.contains("<form id=\"consent\""), "{html}");

    // return_to never leads off the gateway (no open redirect).
    for evil in ["https://evil.example/steal", "//evil.example/steal", "/\\evil.example/steal"] {
        let resp = sign_in(Some(&issuer(&app)), "correct horse", evil).await;
        let location = header(resp.headers(), "location");
        let resolved =
            url::Url::parse(&issuer(&app)).unwrap().join(location).map(|u| u.to_string()).unwrap_or_default();
        assert!(
            location.is_empty() || resolved.starts_with(&format!("{}/", issuer(&app))),
            "return_to {evil:?} redirected to {location:?}"
        );
    }
}

#[tokio::test]
async fn consent_shows_what_is_asked_and_only_a_same_origin_post_with_the_sessions_csrf_grants() {
    let app = TestApp::spawn().await;
    let oapp = approved_app(&app, false, &[CB]).await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    let (verifier, challenge) = pkce();
    // A state that would break out of an attribute if the page did not escape it.
    let state = "x\"><script>alert(1)</script>&y='z";
    let params = authorize_params(&oapp.client_id, CB, "profile:read posts:read", state, &challenge);

    let zh = with(&params, "ui_locales", Some("zh-CN"));
    let (headers, html, csrf) = consent(&app, &alice, &zh).await;
    assert!(header(&headers, "content-type").starts_with("text/html"), "{headers:?}");
    assert_eq!(header(&headers, "x-frame-options").to_ascii_uppercase(), "DENY", "{headers:?}");
    assert!(header(&headers, "cache-control").contains("no-store"), "{headers:?}");
    assert!(html.contains("lang=\"zh-CN\""), "ui_locales=zh-CN: {html}");
    assert!(html.contains("授权"), "Chinese consent text: {html}");
    assert!(html.contains(app_name(false)), "the app's name: {html}");
    assert!(html.contains(DEVELOPER), "the developer's nickname: {html}");
    assert!(!html.contains("<script>alert(1)"), "state reflected unescaped: {html}");
    let form = tags(&html, "form").into_iter().find(|f| f.get("id").map(String::as_str) == Some("consent"));
    let form = form.unwrap_or_else(|| panic!("no <form id=\"consent\">: {html}"));
    assert_eq!(form.get("method").map(|m| m.to_ascii_lowercase()), Some("post".into()), "{form:?}");
    assert_eq!(form.get("action").map(String::as_str), Some("/oauth/authorize"), "{form:?}");
    for (name, value) in &params {
        assert_eq!(input_value(&html, name).as_ref(), Some(value), "hidden input {name}: {html}");
    }
    let decisions: BTreeSet<String> = tags(&html, "button")
        .into_iter()
        .chain(inputs(&html))
        .filter(|b| b.get("name").map(String::as_str) == Some("decision"))
        .filter_map(|b| b.get("value").cloned())
        .collect();
    assert_eq!(decisions, set(&["approve", "deny"]), "decision buttons: {html}");
    assert_eq!(listed_scopes(&html), set(&["posts:read", "profile:read"]), "one item per scope asked: {html}");
    for s in ["posts:read", "profile:read"] {
        let text = scope_item(&html, s).unwrap();
        assert!(!text.is_empty() && text != s, "{s} in plain words, got {text:?}");
    }
    let en = with(&params, "ui_locales", Some("en"));
    let (_, html_en, _) = consent(&app, &alice, &en).await;
    assert!(html_en.contains("lang=\"en\""), "ui_locales=en: {html_en}");
    assert_ne!(scope_item(&html_en, "posts:read"), scope_item(&html, "posts:read"), "the scope in English");

    // Forgeries: no code, no grant.
    let own = issuer(&app);
    let (_, _, bobs_csrf) = consent(&app, &bob, &params).await;
    enum Csrf {
        Wrong,
        Missing,
        Bobs,
        Fresh,
    }
    let cases = [
        ("a wrong csrf", Csrf::Wrong, Some(own.as_str())),
        ("no csrf", Csrf::Missing, Some(own.as_str())),
        ("another session's csrf", Csrf::Bobs, Some(own.as_str())),
        ("no Origin (Sec-Fetch-Site: same-origin)", Csrf::Fresh, None),
        ("a foreign Origin", Csrf::Fresh, Some(FOREIGN)),
        ("Origin null", Csrf::Fresh, Some("null")),
    ];
    for (what, which, origin) in cases {
        // A fresh page each time (whether a csrf survives a failed attempt is not the point).
        let (_, _, fresh) = consent(&app, &alice, &params).await;
        let sent = match which {
            Csrf::Wrong => Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string()),
            Csrf::Missing => None,
            Csrf::Bobs => Some(bobs_csrf.clone()),
            Csrf::Fresh => Some(fresh),
        };
        let resp = post_consent(&app, Some(&alice), &params, sent.as_deref(), "approve", origin).await;
        assert_eq!(resp.status(), 403, "{what}");
        assert!(resp.headers().get("location").is_none(), "{what}: redirected to {:?}", resp.headers().get("location"));
    }
    // Bob's csrf is still good for bob: it was the session that was wrong.
    let resp = post_consent(&app, Some(&bob), &params, Some(&bobs_csrf), "deny", Some(&own)).await;
    assert_eq!(redirected_to(&resp, CB).get("error").map(String::as_str), Some("access_denied"));
    assert!(authorized_apps(&app, &alice).await.is_empty(), "a forged consent made a grant");

    // Deny: back to the app with access_denied.
    let resp = post_consent(&app, Some(&alice), &params, Some(&csrf), "deny", Some(&own)).await;
    let q = redirected_to(&resp, CB);
    assert_eq!(q.get("error").map(String::as_str), Some("access_denied"), "{q:?}");
    assert_eq!(q.get("state").map(String::as_str), Some(state), "{q:?}");
    assert_eq!(q.get("iss"), Some(&own), "{q:?}");
    assert!(!q.contains_key("code"), "{q:?}");
    assert!(authorized_apps(&app, &alice).await.is_empty(), "a denial made a grant");

    // Approve: a code, the state exactly as sent, and the issuer (RFC 9207).
    let code = code_for(&app, &alice, &oapp.client_id, CB, "profile:read posts:read", state, &challenge).await;
    let (status, body) = exchange(&app, &oapp, &code, CB, &verifier).await;
    assert_eq!(tokens_of(status, &body).scope, set(&["posts:read", "profile:read"]));
}

#[tokio::test]
async fn a_code_needs_its_verifier_and_redirect_uri_works_once_and_a_second_use_revokes_the_grant() {
    let app = TestApp::spawn().await;
    let oapp = approved_app(&app, false, &[CB, CB2]).await;
    let other = approved_app(&app, false, &[CB]).await;
    let (alice, alice_id) = app.register(&phone(1), "alice").await;
    let scope = "profile:read posts:read";
    let fresh = async |state: &str| fresh_code(&app, &alice, &oapp.client_id, scope, state).await;

    let (code, verifier) = fresh("a").await;
    let (wrong, _) = pkce();
    let (status, body) = exchange(&app, &oapp, &code, CB, &wrong).await;
    assert_error(status, &body, 400, "invalid_grant", "a wrong code_verifier");

    let (code, verifier2) = fresh("b").await;
    let (status, body) = exchange(&app, &oapp, &code, CB2, &verifier2).await;
    assert_error(status, &body, 400, "invalid_grant", "another (registered) redirect_uri than the request's");

    let (code, verifier3) = fresh("c").await;
    let (status, body) = exchange(&app, &other, &code, CB, &verifier3).await;
    assert_error(status, &body, 400, "invalid_grant", "a code issued to another client");

    let (status, _, body) = oauth_post(
        &app,
        "/oauth/token",
        oapp.auth(),
        &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB)],
    )
    .await;
    assert_error(status, &body, 400, "invalid_request", "no code_verifier");
    let (status, _, body) = oauth_post(
        &app,
        "/oauth/token",
        oapp.auth(),
        &[("grant_type", "authorization_code"), ("redirect_uri", CB), ("code_verifier", &verifier)],
    )
    .await;
    assert_error(status, &body, 400, "invalid_request", "no code");
    let (status, _, body) =
        oauth_post(&app, "/oauth/token", oapp.auth(), &[("code", &code), ("redirect_uri", CB)]).await;
    assert_error(status, &body, 400, "invalid_request", "no grant_type");
    let (status, headers, body) = oauth_post(
        &app,
        "/oauth/token",
        oapp.auth(),
        &[("grant_type", "password"), ("username", &phone(1)), ("password", "correct horse")],
    )
    .await;
    assert_error(status, &body, 400, "unsupported_grant_type", "the password grant");
    assert!(header(&headers, "content-type").starts_with("application/json"), "{headers:?}");
    let (status, _, body) = oauth_post(
        &app,
        "/oauth/token",
        oapp.auth(),
        &[
            ("grant_type", "authorization_code"),
            ("code", "not-a-code"),
            ("redirect_uri", CB),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_error(status, &body, 400, "invalid_grant", "an unknown code");

    // The good exchange.
    let (code, verifier) = fresh("d").await;
    let (status, headers, body) = oauth_post(
        &app,
        "/oauth/token",
        oapp.auth(),
        &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB), ("code_verifier", &verifier)],
    )
    .await;
    let first = tokens_of(status, &body);
    assert!(header(&headers, "cache-control").contains("no-store"), "{headers:?}");
    assert!(header(&headers, "content-type").starts_with("application/json"), "{headers:?}");
    assert_eq!(first.scope, words(scope));
    let me = app.gql(Some(&first.access), ME, json!({})).await;
    assert_eq!(me["me"]["id"], alice_id.as_str(), "the token acts for alice");

    // Used again (a stolen code replayed): refused, and everything the first use gave ends.
    let (status, body) = exchange(&app, &oapp, &code, CB, &verifier).await;
    assert_error(status, &body, 400, "invalid_grant", "the code a second time");
    assert_dead(&app, &first.access, "after the code was replayed").await;
    assert_refresh_refused(&app, &oapp, &first.refresh, "the refresh token after the code was replayed").await;

    // An expired code (they live 60 s): aged in the database, as tests/api/accounts.rs ages sessions.
    let (code, verifier) = fresh("e").await;
    use sea_orm::ConnectionTrait as _;
    let aged = app
        .state
        .db
        .execute_unprepared("UPDATE oauth_codes SET expires_at = '2000-01-01 00:00:00+00:00' WHERE used_at IS NULL")
        .await
        .expect("age the unused codes");
    assert!(aged.rows_affected() >= 1, "no unused code to age");
    let (status, body) = exchange(&app, &oapp, &code, CB, &verifier).await;
    assert_error(status, &body, 400, "invalid_grant", "an expired code");
}

#[tokio::test]
async fn confidential_apps_authenticate_with_basic_or_post_and_public_apps_with_their_id() {
    let app = TestApp::spawn().await;
    let conf = approved_app(&app, true, &[CB]).await;
    let other_conf = approved_app(&app, true, &[CB]).await;
    let public = approved_app(&app, false, &[CB]).await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let secret = conf.secret.clone().unwrap();
    let scope = "posts:read";
    let code_pair = async |oapp: &OAuthApp| fresh_code(&app, &alice, &oapp.client_id, scope, "s").await;
    let (id, sec) = (conf.client_id.as_str(), secret.as_str());

    // Refused: no authentication, a wrong secret (either way), another app's secret, a secret with
    // the wrong id.
    let other_secret = other_conf.secret.as_deref().unwrap();
    for (what, auth) in [
        ("no client authentication (client_id only)", Client::Public(id)),
        ("nothing at all", Client::Nothing),
        ("a wrong secret (basic)", Client::Basic(id, "wrong-secret")),
        ("a wrong secret (post)", Client::Post(id, "wrong-secret")),
        ("another app's secret", Client::Basic(id, other_secret)),
    ] {
        let (code, v) = code_pair(&conf).await;
        let (status, body) = exchange_as(&app, auth, code, v).await;
        assert_error(status, &body, 401, "invalid_client", what);
    }

    // client_secret_basic and client_secret_post both work.
    let (code, v) = code_pair(&conf).await;
    let (status, body) = exchange_as(&app, Client::Basic(id, sec), code, v).await;
    let basic = tokens_of(status, &body);
    let (code, v) = code_pair(&conf).await;
    let (status, body) = exchange_as(&app, Client::Post(id, sec), code, v).await;
    let post = tokens_of(status, &body);
    assert_alive(&app, &basic.access, "client_secret_basic").await;
    assert_alive(&app, &post.access, "client_secret_post").await;

    // The refresh grant authenticates the same way.
    let (status, _, body) = oauth_post(
        &app,
        "/oauth/token",
        Client::Public(id),
        &[("grant_type", "refresh_token"), ("refresh_token", &basic.refresh)],
    )
    .await;
    assert_error(status, &body, 401, "invalid_client", "a confidential app's refresh without its secret");
    let (status, _, body) = oauth_post(
        &app,
        "/oauth/token",
        Client::Post(id, sec),
        &[("grant_type", "refresh_token"), ("refresh_token", &basic.refresh)],
    )
    .await;
    tokens_of(status, &body);

    // A public app: its client_id, no secret.
    let (code, v) = code_pair(&public).await;
    let (status, body) = exchange(&app, &public, &code, CB, &v).await;
    let t = tokens_of(status, &body);
    assert_alive(&app, &t.access, "a public app's token").await;
    // A public app's code cannot be redeemed under another app's id.
    let (code, v) = code_pair(&public).await;
    let (status, body) = exchange_as(&app, Client::Basic(id, sec), code, v).await;
    assert_error(status, &body, 400, "invalid_grant", "a public app's code redeemed by the confidential app");
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_replayed_one_revokes_the_whole_grant() {
    let app = TestApp::spawn().await;
    let oapp = approved_app(&app, false, &[CB]).await;
    let other = approved_app(&app, false, &[CB]).await;
    let (alice, alice_id) = app.register(&phone(1), "alice").await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    let scope = "profile:read posts:read";

    let t0 = tokens(&app, &oapp, &alice, scope).await;
    let (status, body) = refresh(&app, &oapp, &t0.refresh).await;
    let t1 = tokens_of(status, &body);
    assert_ne!(t1.refresh, t0.refresh, "a new refresh token each time");
    assert_ne!(t1.access, t0.access, "a new access token");
    assert_eq!(t1.scope, words(scope), "the same scopes");
    let me = app.gql(Some(&t1.access), ME, json!({})).await;
    assert_eq!(me["me"]["id"], alice_id.as_str());
    let (status, body) = refresh(&app, &oapp, &t1.refresh).await;
    let t2 = tokens_of(status, &body);
    assert_ne!(t2.refresh, t1.refresh);

    let (status, _, body) = oauth_post(&app, "/oauth/token", oapp.auth(), &[("grant_type", "refresh_token")]).await;
    assert_error(status, &body, 400, "invalid_request", "a refresh grant without refresh_token");
    let (status, body) = refresh(&app, &oapp, "ecrt_not-a-token").await;
    assert_error(status, &body, 400, "invalid_grant", "an unknown refresh token");

    // Bob's grant: another client cannot use his refresh token.
    let b0 = tokens(&app, &oapp, &bob, scope).await;
    let (status, body) = refresh(&app, &other, &b0.refresh).await;
    assert_error(status, &body, 400, "invalid_grant", "a refresh token of another client");

    // Alice's first refresh token again (a stolen copy, or a replay): refused, and the grant ends.
    let (status, body) = refresh(&app, &oapp, &t0.refresh).await;
    assert_error(status, &body, 400, "invalid_grant", "a rotated-out refresh token");
    for (what, at) in [("t0", &t0.access), ("t1", &t1.access), ("t2", &t2.access)] {
        assert_dead(&app, at, &format!("access token {what} after the refresh token replay")).await;
    }
    assert_refresh_refused(&app, &oapp, &t2.refresh, "the newest refresh token after the replay").await;
    assert!(authorized_apps(&app, &alice).await.is_empty(), "the grant is gone from alice's list");
    // Bob's grant to the same app is another grant: untouched.
    assert_alive(&app, &b0.access, "bob's token (another member's grant)").await;

    // Alice can authorize the app again.
    let again = tokens(&app, &oapp, &alice, scope).await;
    assert_alive(&app, &again.access, "a new grant after the revocation").await;
}

#[tokio::test]
async fn revocation_follows_rfc_7009() {
    let app = TestApp::spawn().await;
    let oapp = approved_app(&app, false, &[CB]).await;
    let other = approved_app(&app, false, &[CB]).await;
    let conf = approved_app(&app, true, &[CB]).await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let scope = "profile:read";

    // Unknown tokens: 200 all the same (a client cannot probe tokens).
    for token in ["ecat_unknown", "ecrt_unknown", "whatever"] {
        assert_eq!(revoke(&app, &oapp, token, None).await, 200, "revoking {token:?}");
    }

    // An access token: that token ends, the grant goes on.
    let t0 = tokens(&app, &oapp, &alice, scope).await;
    assert_eq!(revoke(&app, &oapp, &t0.access, Some("access_token")).await, 200);
    assert_dead(&app, &t0.access, "a revoked access token").await;
    let (status, body) = refresh(&app, &oapp, &t0.refresh).await;
    let t1 = tokens_of(status, &body);
    assert_alive(&app, &t1.access, "the grant after revoking one access token").await;
    assert_eq!(authorized_apps(&app, &alice).await.len(), 1);

    // A refresh token: its chain ends (the refresh tokens it replaced and the access tokens issued
    // along it: the app signing out of one device), not the app's other chains with the member, and
    // the member's grant stays until they withdraw it.
    let elsewhere = tokens(&app, &oapp, &alice, scope).await;
    assert_eq!(revoke(&app, &oapp, &t1.refresh, Some("refresh_token")).await, 200);
    assert_dead(&app, &t1.access, "an access token of a chain whose refresh token was revoked").await;
    assert_refresh_refused(&app, &oapp, &t1.refresh, "a revoked refresh token").await;
    assert_alive(&app, &elsewhere.access, "the app's other chain (another device)").await;
    assert_eq!(authorized_apps(&app, &alice).await.len(), 1, "the grant stays");

    // The hint is only a hint.
    let t2 = tokens(&app, &oapp, &alice, scope).await;
    assert_eq!(revoke(&app, &oapp, &t2.refresh, Some("access_token")).await, 200);
    assert_dead(&app, &t2.access, "a refresh token revoked under a wrong hint").await;

    // Another client's token: not revoked.
    let t3 = tokens(&app, &oapp, &alice, scope).await;
    let _ = revoke(&app, &other, &t3.refresh, None).await;
    let _ = revoke(&app, &other, &t3.access, None).await;
    assert_alive(&app, &t3.access, "a token another client tried to revoke").await;
    let (status, body) = refresh(&app, &oapp, &t3.refresh).await;
    tokens_of(status, &body);

    // A confidential client authenticates to revoke.
    let c0 = tokens(&app, &conf, &alice, scope).await;
    let (status, _, body) =
        oauth_post(&app, "/oauth/revoke", Client::Basic(&conf.client_id, "wrong-secret"), &[("token", &c0.refresh)])
            .await;
    assert_error(status, &body, 401, "invalid_client", "revocation with a wrong secret");
    assert_alive(&app, &c0.access, "after a revocation with a wrong secret").await;
    let (status, _, _) =
        oauth_post(&app, "/oauth/revoke", Client::Public(&conf.client_id), &[("token", &c0.refresh)]).await;
    assert_eq!(status, 401, "a confidential app revoking without its secret");
    assert_alive(&app, &c0.access, "after a revocation without the secret").await;
    assert_eq!(revoke(&app, &conf, &c0.refresh, None).await, 200);
    assert_dead(&app, &c0.access, "after the confidential app revoked its grant").await;
}

#[tokio::test]
async fn an_app_token_reaches_only_what_its_scopes_allow_and_never_staff_powers() {
    let (app, c) = TestApp::community().await;
    let oapp = approved_app(&app, false, &[CB]).await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let count_posts = async || {
        let data = app.gql(None, "{ posts(first: 50) { edges { node { id } } } }", json!({})).await;
        data["posts"]["edges"].as_array().unwrap().len()
    };
    let posts_before = count_posts().await;

    // posts:read only.
    let read = tokens(&app, &oapp, &bob, "posts:read").await;
    let (_, body) = gql_as(&app, &read.access, "{ posts(first: 10) { edges { node { id title } } } }", json!({})).await;
    assert!(body.get("errors").is_none(), "reading posts with posts:read: {body}");
    let ids: Vec<&str> =
        body["data"]["posts"]["edges"].as_array().unwrap().iter().filter_map(|e| e["node"]["id"].as_str()).collect();
    assert!(ids.contains(&c.post.as_str()), "{body}");
    let (_, body) =
        gql_as(&app, &read.access, "query($id: ID!) { post(id: $id) { id title } }", json!({ "id": c.post })).await;
    assert_eq!(body["data"]["post"]["title"], "t", "{body}");

    let create = "mutation($b: ID!) { createPost(input: { boardId: $b, title: \"by app\", body: \"from the app\" }) { post { id } } }";
    assert_scope_refused(&app, &read.access, create, json!({ "b": c.board }), Some("posts:write")).await;
    assert_eq!(count_posts().await, posts_before, "a post refused by scope was created");
    assert_scope_refused(&app, &read.access, ME, json!({}), Some("profile:read")).await;
    assert_scope_refused(&app, &read.access, "{ me { phone } }", json!({}), Some("profile:read")).await;
    let like = "mutation($p: ID!) { likePost(input: { postId: $p }) { post { likeCount } } }";
    assert_scope_refused(&app, &read.access, like, json!({ "p": c.post }), Some("social:write")).await;
    let likes = app.gql(None, "query($id: ID!) { post(id: $id) { likeCount } }", json!({ "id": c.post })).await;
    assert_eq!(likes["post"]["likeCount"], 0, "a like refused by scope was counted");
    let alice_id = app.gql(Some(&c.alice), ME, json!({})).await["me"]["id"].clone();
    let send = "mutation($to: ID!) { sendMessage(input: { toUserId: $to, body: \"hi\" }) { message { id } } }";
    assert_scope_refused(&app, &read.access, send, json!({ "to": alice_id }), Some("messages:write")).await;
    let convs = app.gql(Some(&c.alice), "{ conversations(first: 5) { edges { node { id } } } }", json!({})).await;
    assert_eq!(convs["conversations"]["edges"], json!([]), "a message refused by scope was sent");
    assert_scope_refused(
        &app,
        &read.access,
        "{ notifications(first: 5) { edges { node { id } } } }",
        json!({}),
        Some("notifications:read"),
    )
    .await;
    let delete_me = "mutation { deleteAccount(input: { password: \"correct horse\" }) { deleted } }";
    assert_scope_refused(&app, &read.access, delete_me, json!({}), None).await;
    assert_eq!(app.gql(Some(&bob), ME, json!({})).await["me"]["id"], bob_id.as_str(), "bob's account is still there");

    // profile:read, posts:read and posts:write.
    let write = tokens(&app, &oapp, &bob, "profile:read posts:read posts:write").await;
    let me = app.gql(Some(&write.access), "{ me { id nickname phone } }", json!({})).await;
    assert_eq!(me["me"]["id"], bob_id.as_str(), "{me}");
    assert_eq!(me["me"]["phone"], phone(2).as_str(), "{me}");
    assert_scope_refused(&app, &write.access, "{ me { sessions { id } } }", json!({}), None).await;
    let created = app.gql(Some(&write.access), create, json!({ "b": c.board })).await;
    let new_post = created["createPost"]["post"]["id"].as_str().unwrap().to_string();
    let author =
        app.gql(None, "query($id: ID!) { post(id: $id) { author { nickname } } }", json!({ "id": new_post })).await;
    assert_eq!(author["post"]["author"]["nickname"], "bob", "the app posts as the member");

    // An admin's app token: only what every member has.
    let staff = tokens(&app, &oapp, &oapp.admin, "posts:read posts:write").await;
    let del = "mutation($id: ID!) { deletePost(input: { postId: $id, reason: \"off-topic\" }) { deletedPostId } }";
    let (_, body) = gql_as(&app, &staff.access, del, json!({ "id": c.post })).await;
    let (code, _) = first_error(&body);
    assert_eq!(code, "FORBIDDEN", "an admin's app deleting another member's post: {body}");
    let still = app.gql(None, "query($id: ID!) { post(id: $id) { id } }", json!({ "id": c.post })).await;
    assert_eq!(still["post"]["id"], c.post.as_str(), "the post survived");
    let (_, body) = gql_as(&app, &staff.access, "{ auditLog(first: 1) { edges { cursor } } }", json!({})).await;
    let (code, _) = first_error(&body);
    assert!(
        matches!(code.as_str(), "FORBIDDEN" | "INSUFFICIENT_SCOPE"),
        "an admin's app reading the audit log: {body}"
    );
    assert!(body["data"].is_null() || body["data"]["auditLog"].is_null(), "{body}");
}

#[tokio::test]
async fn scopes_hold_over_websocket_too() {
    let app = TestApp::spawn().await;
    let with_messages = approved_app(&app, false, &[CB]).await;
    let without = approved_app(&app, false, &[CB]).await;
    let (alice, alice_id) = app.register(&phone(1), "alice").await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let reader = tokens(&app, &with_messages, &alice, "messages:read").await;
    let poster = tokens(&app, &without, &alice, "posts:read").await;
    // From the start of alice's messages (she has none yet): without `after` the socket would start
    // at the newest message when the server reads it, maybe after the one sent below. (An app's
    // socket runs its operations itself, so `streams_waiting` does not count it.)
    let received = "subscription($a: String) { messageReceived(after: $a) { body } }";
    let start = json!({ "a": ecer_gateway::services::page::Cursor::Id(0).encode() });

    let mut ws_ok = app.ws(Some(&reader.access)).await;
    ws_ok.subscribe("m", received, start.clone()).await;
    let mut ws_no = app.ws(Some(&poster.access)).await;
    ws_no.subscribe("m", received, start).await;
    let refused = ws_refused(&mut ws_no, "m").await;
    let (code, required) = first_error(&refused);
    assert_eq!((code.as_str(), required), ("INSUFFICIENT_SCOPE", json!("messages:read")), "{refused}");

    crate::messaging::send(&app, &bob, &alice_id, "FOB price?").await;
    let got = ws_ok.next_data("m").await;
    assert_eq!(got["messageReceived"]["body"], "FOB price?", "{got}");

    // Queries and mutations on the socket are checked as over HTTP.
    let payload = ws_op(&mut ws_no, "q", ME, json!({})).await;
    let (code, required) = first_error(&payload);
    assert_eq!((code.as_str(), required), ("INSUFFICIENT_SCOPE", json!("profile:read")), "{payload}");
    let send =
        "mutation($to: ID!) { sendMessage(input: { toUserId: $to, body: \"from the app\" }) { message { id } } }";
    let payload = ws_op(&mut ws_ok, "s", send, json!({ "to": bob_id })).await;
    let (code, required) = first_error(&payload);
    assert_eq!((code.as_str(), required), ("INSUFFICIENT_SCOPE", json!("messages:write")), "{payload}");
    let history =
        app.gql(Some(&bob), "{ conversations(first: 5) { edges { node { lastMessage { body } } } } }", json!({})).await;
    assert_eq!(
        history["conversations"]["edges"][0]["node"]["lastMessage"]["body"], "FOB price?",
        "nothing sent by the app"
    );
    let payload = ws_op(&mut ws_no, "p", "{ posts(first: 1) { edges { cursor } } }", json!({})).await;
    assert!(payload.get("errors").is_none(), "posts:read over the socket: {payload}");
}

#[tokio::test]
async fn members_see_and_revoke_their_grants_and_the_apps_sockets_close() {
    let app = TestApp::spawn().await;
    let oapp = approved_app(&app, false, &[CB]).await;
    let (alice, alice_id) = app.register(&phone(1), "alice").await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    assert!(authorized_apps(&app, &alice).await.is_empty());

    let first = tokens(&app, &oapp, &alice, "messages:read").await;
    let listed = authorized_apps(&app, &alice).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let grant = &listed[0];
    assert_eq!(grant["clientId"], oapp.client_id.as_str(), "{grant}");
    assert_eq!(grant["name"], app_name(false), "{grant}");
    assert_eq!(grant["homepageUrl"], HOMEPAGE, "{grant}");
    assert_eq!(grant["developer"]["nickname"], DEVELOPER, "{grant}");
    assert_eq!(strings(&grant["scopes"]), set(&["messages:read"]), "{grant}");
    let granted_at = grant["grantedAt"].as_str().unwrap_or_else(|| panic!("grantedAt: {grant}"));
    assert!(chrono::DateTime::parse_from_rfc3339(granted_at).is_ok(), "grantedAt {granted_at:?}");

    // Approving again with more scopes widens the one grant.
    let second = tokens(&app, &oapp, &alice, "profile:read").await;
    assert!(second.scope.contains("profile:read"), "{:?}", second.scope);
    let listed = authorized_apps(&app, &alice).await;
    assert_eq!(listed.len(), 1, "still one grant: {listed:?}");
    assert_eq!(strings(&listed[0]["scopes"]), set(&["messages:read", "profile:read"]), "{listed:?}");

    // An app cannot manage grants itself.
    let (_, body) = gql_as(&app, &second.access, REVOKE_GRANT, json!({ "c": oapp.client_id })).await;
    assert_eq!(first_error(&body).0, "INSUFFICIENT_SCOPE", "an app revoking through the API: {body}");
    let bobs = tokens(&app, &oapp, &bob, "profile:read").await;

    // Open sockets: the app's (acting for alice) and alice's own.
    let mut app_ws = listening(&app, &first.access).await;
    let mut own_ws = listening(&app, &alice).await;
    own_ws.quiet(200).await;

    let revoked = app.gql(Some(&alice), REVOKE_GRANT, json!({ "c": oapp.client_id })).await;
    assert_eq!(revoked["revokeAppAuthorization"]["clientId"], oapp.client_id.as_str(), "{revoked}");
    assert_eq!(closed_with(&mut app_ws).await, 4403, "the app's socket closes");
    let payload = ws_op(&mut own_ws, "q", ME, json!({})).await;
    assert_eq!(payload["data"]["me"]["id"], alice_id.as_str(), "alice's own socket stays open: {payload}");

    for (what, t) in [("first", &first), ("second", &second)] {
        assert_dead(&app, &t.access, &format!("the {what} access token after the member revoked")).await;
        assert_refresh_refused(&app, &oapp, &t.refresh, &format!("the {what} refresh token after the member revoked"))
            .await;
    }
    assert!(authorized_apps(&app, &alice).await.is_empty());
    let (code, _) = app.gql_err(Some(&alice), REVOKE_GRANT, json!({ "c": oapp.client_id })).await;
    assert_eq!(code, "NOT_FOUND", "revoking a grant that is gone");
    let (code, _) = app.gql_err(Some(&alice), REVOKE_GRANT, json!({ "c": "no-such-client" })).await;
    assert_eq!(code, "NOT_FOUND", "revoking an unknown app");
    assert_alive(&app, &bobs.access, "bob's grant to the same app").await;
}

#[tokio::test]
async fn grants_are_audited_exported_and_end_with_the_account() {
    let app = TestApp::spawn().await;
    let oapp = approved_app(&app, false, &[CB]).await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    let (carol, _) = app.register(&phone(3), "carol").await;
    let count = |log: &[(String, String)], action: &str| log.iter().filter(|(a, _)| a == action).count();

    let t = tokens(&app, &oapp, &alice, "profile:read posts:read").await;
    let log = audit_actions(&app, &oapp.admin).await;
    assert_eq!(count(&log, "GRANT_APP"), 1, "the grant is on the record: {log:?}");

    // Alice's export lists the grant, and no token.
    let request = "mutation { requestDataExport(input: { format: JSON }) { export { downloadUrl } } }";
    let export = app.gql(Some(&alice), request, json!({})).await;
    let url = export["requestDataExport"]["export"]["downloadUrl"].as_str().unwrap().to_string();
    let archive: Value = app.http.get(app.url(&url)).bearer_auth(&alice).send().await.unwrap().json().await.unwrap();
    let apps = archive["authorizedApps"].as_array().unwrap_or_else(|| panic!("no authorizedApps in the export"));
    assert_eq!(apps.len(), 1, "{apps:?}");
    assert_eq!(apps[0]["clientId"], oapp.client_id.as_str(), "{apps:?}");
    assert_eq!(apps[0]["name"], app_name(false), "{apps:?}");
    assert_eq!(strings(&apps[0]["scopes"]), set(&["posts:read", "profile:read"]), "{apps:?}");
    assert!(apps[0]["grantedAt"].is_string(), "{apps:?}");
    let text = archive.to_string();
    assert!(!text.contains(&t.access) && !text.contains(&t.refresh), "tokens in the export");

    // Revoked by the member: on the record.
    app.gql(Some(&alice), REVOKE_GRANT, json!({ "c": oapp.client_id })).await;
    let log = audit_actions(&app, &oapp.admin).await;
    assert_eq!(count(&log, "REVOKE_APP"), 1, "the member's revocation is on the record: {log:?}");

    // Revoked by reuse detection: on the record too.
    let b0 = tokens(&app, &oapp, &bob, "posts:read").await;
    let (status, body) = refresh(&app, &oapp, &b0.refresh).await;
    tokens_of(status, &body);
    let (status, body) = refresh(&app, &oapp, &b0.refresh).await;
    assert_error(status, &body, 400, "invalid_grant", "a replayed refresh token");
    let log = audit_actions(&app, &oapp.admin).await;
    assert_eq!(count(&log, "GRANT_APP"), 2, "{log:?}");
    assert_eq!(count(&log, "REVOKE_APP"), 2, "the reuse revocation is on the record: {log:?}");

    // Deleting the account ends its grants.
    let c0 = tokens(&app, &oapp, &carol, "posts:read").await;
    assert_alive(&app, &c0.access, "carol's token").await;
    let del = "mutation { deleteAccount(input: { password: \"correct horse\" }) { deleted } }";
    assert_eq!(app.gql(Some(&carol), del, json!({})).await["deleteAccount"]["deleted"], true);
    assert_dead(&app, &c0.access, "an app token of a deleted account").await;
    assert_refresh_refused(&app, &oapp, &c0.refresh, "a refresh token of a deleted account").await;
}

#[tokio::test]
async fn revoking_an_app_closes_its_sockets_on_every_instance() {
    let redis = crate::scale_out::OwnRedis::start();
    let url = redis.url();
    let a = TestApp::spawn_with(|c| c.redis_url = Some(url.clone())).await;
    let prefix = a.state.config.redis_prefix.clone();
    let b = a
        .another_instance(|c| {
            c.redis_url = Some(url.clone());
            c.redis_prefix = prefix.clone();
        })
        .await;
    let oapp = approved_app(&a, false, &[CB]).await;
    let (alice, _) = a.register(&phone(1), "alice").await;
    let granted = tokens(&a, &oapp, &alice, "profile:read messages:read").await;

    // The app's socket lives on B; the member revokes through A.
    let mut app_ws = listening(&b, &granted.access).await;
    let mut own_ws = listening(&b, &alice).await;
    own_ws.quiet(300).await;
    let revoke = "mutation($c: String!) { revokeAppAuthorization(input: { clientId: $c }) { clientId } }";
    a.gql(Some(&alice), revoke, json!({ "c": oapp.client_id })).await;
    assert_eq!(closed_with(&mut app_ws).await, 4403, "the app's socket on the other instance closes");
    let payload = ws_op(&mut own_ws, "q", ME, json!({})).await;
    assert!(payload["data"]["me"]["id"].is_string(), "the member's own socket stays: {payload}");
    assert!(!token_alive(&b, &granted.access).await, "the access token is dead on B too");
}

#[tokio::test]
async fn private_media_follow_the_scopes_message_files_need_messages_read() {
    let app = TestApp::spawn().await;
    let oapp = approved_app(&app, false, &[CB]).await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let photo = crate::common::png("quote for the fabric");
    let (photo_id, photo_url) =
        crate::messaging::upload(&app, &alice, "MESSAGE_PHOTO", ("0", "quote.png", "image/png", photo.clone())).await;
    app.gql(Some(&alice), crate::messaging::SEND_MEDIA, json!({ "to": bob_id, "m": [photo_id] })).await;

    let get = |token: String, url: String| {
        let http = app.http.clone();
        async move {
            let resp = http.get(url).bearer_auth(token).send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.bytes().await.unwrap().to_vec())
        }
    };
    let reader = tokens(&app, &oapp, &bob, "messages:read").await;
    let (status, body) = get(reader.access.clone(), photo_url.clone()).await;
    assert_eq!((status, body), (200, photo.clone()), "messages:read opens the conversation's files");
    let other = tokens(&app, &oapp, &bob, "posts:read profile:read").await;
    let (status, body) = get(other.access.clone(), photo_url.clone()).await;
    assert_eq!(status, 403, "without messages:read");
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert!(body.to_string().contains("INSUFFICIENT_SCOPE"), "{body}");

    // ID photos and exports are for the member and staff only: refused to any app token before the
    // file is even looked up, while the member's own session gets the route's own answer for an
    // unknown id (404 for an export; 403 for ID photos, which are for reviewers).
    let every = "profile:read posts:read posts:write social:write history:read messages:read messages:write";
    let all = tokens(&app, &oapp, &bob, &format!("{every} notifications:read")).await;
    let unknown = "00000000-0000-4000-8000-000000000000";
    for route in ["private", "exports"] {
        let url = app.url(&format!("/media/{route}/{unknown}"));
        let (status, body) = get(all.access.clone(), url.clone()).await;
        assert_eq!(status, 403, "{route} with an app token");
        assert!(String::from_utf8_lossy(&body).contains("INSUFFICIENT_SCOPE"), "{route}");
        let (_, body) = get(bob.clone(), url).await;
        assert!(!String::from_utf8_lossy(&body).contains("INSUFFICIENT_SCOPE"), "{route} for the member");
    }
}

#[tokio::test]
async fn apps_have_their_own_rate_limit_and_metrics() {
    let app = TestApp::spawn_with(|c| c.rate_limit_app_requests_per_minute = 3).await;
    let oapp = approved_app(&app, true, &[CB]).await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let granted = tokens(&app, &oapp, &alice, "profile:read").await;
    let mut codes = Vec::new();
    for _ in 0..4 {
        let (_, body) = gql_as(&app, &granted.access, ME, json!({})).await;
        codes.push(body["errors"][0]["extensions"]["code"].as_str().unwrap_or("ok").to_string());
    }
    assert_eq!(codes, ["ok", "ok", "ok", "RATE_LIMITED"], "3 a minute for this app and member");
    // The member's own requests are another bucket (and unlimited in this test's configuration).
    assert!(app.gql(Some(&alice), ME, json!({})).await["me"]["id"].is_string());

    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("ecer_app_requests_total") && l.contains(&format!("app=\"{}\"", oapp.client_id)))
        .unwrap_or_else(|| panic!("no ecer_app_requests_total for app {}:\n{metrics}", oapp.client_id));
    assert!(line.contains("transport=\"http\"") && line.ends_with(" 4"), "{line}");
}

#[tokio::test]
async fn an_app_shares_the_members_spam_limits_and_uploads_need_posts_write_before_any_byte() {
    let app = TestApp::spawn_with(|c| c.rate_limit_messages_per_minute = 2).await;
    let first = approved_app(&app, false, &[CB]).await;
    let second = approved_app(&app, false, &[CB]).await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let (_, bob_id) = app.register(&phone(2), "bob").await;
    let send = "mutation($to: ID!) { sendMessage(input: { toUserId: $to, body: \"hi\" }) { message { id } } }";
    let a = tokens(&app, &first, &alice, "messages:read messages:write").await;
    let b = tokens(&app, &second, &alice, "messages:read messages:write").await;
    // Two messages a minute for Alice, whoever sends them: her own app, or two apps of others.
    let mut codes = Vec::new();
    for token in [&alice, &a.access, &b.access] {
        let (_, body) = gql_as(&app, token, send, json!({ "to": bob_id })).await;
        codes.push(body["errors"][0]["extensions"]["code"].as_str().unwrap_or("ok").to_string());
    }
    assert_eq!(codes, ["ok", "ok", "RATE_LIMITED"], "apps never multiply a member's message allowance");

    // A multipart upload from a token without posts:write is refused before its files are read.
    let reader = tokens(&app, &first, &alice, "profile:read").await;
    let form = reqwest::multipart::Form::new()
        .text("operations", r#"{"query":"mutation($f: Upload!) { uploadMedia(input: { file: $f, kind: POST_IMAGE }) { media { id } } }","variables":{"f":null}}"#)
        .text("map", r#"{"0":["variables.f"]}"#)
        .part("0", reqwest::multipart::Part::bytes(crate::common::png("x")).file_name("x.png").mime_str("image/png").unwrap());
    let resp = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(&reader.access)
        .header("apollo-require-preflight", "true")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("INSUFFICIENT_SCOPE"));
}

#[tokio::test]
async fn a_dead_access_token_is_refused_with_401_not_run_signed_out() {
    let (app, c) = TestApp::community().await;
    let oapp = approved_app(&app, false, &[CB]).await;
    let (alice, _) = app.register(&phone(50), "alice").await;
    let granted = tokens(&app, &oapp, &alice, "posts:read").await;
    let public = "query($id: ID!) { node(id: $id) { id } }";
    let (status, _) = gql_as(&app, &granted.access, public, json!({ "id": c.post })).await;
    assert_eq!(status, 200);
    assert_eq!(revoke(&app, &oapp, &granted.access, None).await, 200);
    let resp = client()
        .post(app.url("/graphql"))
        .bearer_auth(&granted.access)
        .json(&json!({ "query": public, "variables": { "id": c.post } }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "a public query with a revoked token: the app must learn to refresh");
    assert!(header(resp.headers(), "www-authenticate").contains("invalid_token"), "{:?}", resp.headers());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{body}");
}

#[tokio::test]
async fn a_narrower_refresh_narrows_the_access_token_only() {
    let app = TestApp::spawn().await;
    let oapp = approved_app(&app, false, &[CB]).await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let granted = tokens(&app, &oapp, &alice, "profile:read posts:read").await;
    let (status, _, body) = oauth_post(
        &app,
        "/oauth/token",
        oapp.auth(),
        &[("grant_type", "refresh_token"), ("refresh_token", &granted.refresh), ("scope", "posts:read")],
    )
    .await;
    let narrow = tokens_of(status, &body);
    assert_eq!(narrow.scope, set(&["posts:read"]));
    assert_scope_refused(&app, &narrow.access, ME, json!({}), Some("profile:read")).await;
    // The refresh token it came with still holds what was granted (RFC 6749 §6).
    let (status, body) = refresh(&app, &oapp, &narrow.refresh).await;
    assert_eq!(tokens_of(status, &body).scope, set(&["profile:read", "posts:read"]));
}

#[tokio::test]
async fn rejecting_an_approved_app_ends_every_grant_and_its_sockets() {
    let app = TestApp::spawn().await;
    let oapp = approved_app(&app, false, &[CB]).await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let granted = tokens(&app, &oapp, &alice, "profile:read messages:read").await;
    let mut ws = listening(&app, &granted.access).await;
    ws.quiet(200).await;
    let review = "mutation($c: String!) { reviewApp(input: { clientId: $c, approve: false, reason: \"abuse\" }) { app { status } } }";
    let data = app.gql(Some(&oapp.admin), review, json!({ "c": oapp.client_id })).await;
    assert_eq!(data["reviewApp"]["app"]["status"], "REJECTED");
    assert_eq!(closed_with(&mut ws).await, 4403, "the rejected app's socket closes at once");
    assert!(!token_alive(&app, &granted.access).await);
    assert!(authorized_apps(&app, &alice).await.is_empty(), "the grant is gone: approving again needs consent");
    let log =
        app.gql(Some(&oapp.admin), "{ auditLog(first: 20) { edges { node { action reason } } } }", json!({})).await;
    let revoked = log["auditLog"]["edges"].as_array().unwrap().iter().any(|e| {
        e["node"]["action"] == "REVOKE_APP" && e["node"]["reason"].as_str().is_some_and(|r| r.contains("rejected"))
    });
    assert!(revoked, "{log}");
}

#[tokio::test]
async fn a_password_reset_ends_every_app_grant() {
    let app = TestApp::spawn().await;
    let oapp = approved_app(&app, false, &[CB]).await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let granted = tokens(&app, &oapp, &alice, "profile:read").await;
    let code = app.phone_code(&phone(1), "RESET_PASSWORD").await;
    let reset = "mutation($input: ResetPasswordInput!) { resetPassword(input: $input) { reset } }";
    let data = app
        .gql(None, reset, json!({ "input": { "phone": phone(1), "code": code, "newPassword": "a brand new one" } }))
        .await;
    assert_eq!(data["resetPassword"]["reset"], true);
    assert!(!token_alive(&app, &granted.access).await, "an app authorized by whoever held the account loses it");
    let (status, body) = refresh(&app, &oapp, &granted.refresh).await;
    assert_error(status, &body, 400, "invalid_grant", "refresh after a reset");
}

#[tokio::test]
async fn an_expired_access_token_ends_its_socket_and_says_how_long_it_lives() {
    let app = TestApp::spawn_with(|c| {
        // Long enough for the exchange, the connection and its init on a loaded machine.
        c.oauth_access_token_ttl_secs = 5;
        c.ws_keepalive_secs = 1;
    })
    .await;
    let oapp = approved_app(&app, false, &[CB]).await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let (verifier, challenge) = pkce();
    let code = code_for(&app, &alice, &oapp.client_id, CB, "messages:read", "st", &challenge).await;
    let (status, body) = exchange(&app, &oapp, &code, CB, &verifier).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], 5, "OAUTH_ACCESS_TOKEN_TTL_SECS: {body}");
    let access = body["access_token"].as_str().unwrap().to_string();
    let mut ws = listening(&app, &access).await;
    let started = std::time::Instant::now();
    let limit = std::time::Duration::from_secs(30);
    assert_eq!(closed_within(&mut ws, limit).await, 4403, "the socket ends with its token");
    // Far below the 10-minute re-check: it closed because the token expired.
    assert!(started.elapsed() < limit, "not at the 10-minute re-check");
    assert!(!token_alive(&app, &access).await);
}

#[tokio::test]
async fn the_members_activity_names_the_app_that_acted_for_them() {
    let app = TestApp::spawn().await;
    let oapp = approved_app(&app, false, &[CB]).await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let t = tokens(&app, &oapp, &alice, "profile:read").await;

    let (status, body) = gql_as(&app, &t.access, "query AppRead { me { nickname } }", json!({})).await;
    assert_eq!((status, &body["data"]["me"]["nickname"]), (200, &json!("alice")), "{body}");
    let mut ws = app.ws(Some(&t.access)).await;
    assert_eq!(
        ws_op(&mut ws, "q", "query AppSocket { me { nickname } }", json!({})).await["data"]["me"]["nickname"],
        "alice"
    );
    app.gql(Some(&alice), "query Mine { me { nickname } }", json!({})).await;
    app.state.activity.flush().await;

    let activity = "{ me { activity(first: 10) { nodes { operation transport app { clientId name } } } } }";
    let entries = |data: Value| -> Vec<(String, String, Value)> {
        data["me"]["activity"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                let text = |k: &str| n[k].as_str().unwrap_or_default().to_string();
                (text("operation"), text("transport"), n["app"].clone())
            })
            .collect()
    };
    // Newest first (operation names outside the trusted documents are recorded as `other`).
    let seen = entries(app.gql(Some(&alice), activity, json!({})).await);
    let by_app = json!({ "clientId": oapp.client_id, "name": app_name(false) });
    let shape: Vec<(&str, &Value)> = seen.iter().take(3).map(|(_, t, a)| (t.as_str(), a)).collect();
    assert_eq!(shape, vec![("http", &Value::Null), ("ws", &by_app), ("http", &by_app)], "{seen:?}");
    // The log itself is the member's, never an app's to read.
    assert_scope_refused(&app, &t.access, activity, json!({}), None).await;

    // The developer deletes the app: the member's log still names it, and so does the export.
    let delete = "mutation($c: String!) { deleteApp(input: { clientId: $c }) { deletedClientId } }";
    app.gql(Some(&oapp.developer), delete, json!({ "c": oapp.client_id })).await;
    app.state.activity.flush().await;
    let seen = entries(app.gql(Some(&alice), activity, json!({})).await);
    // Its two reads and its refused attempt at the log.
    assert_eq!(seen.iter().filter(|(_, _, a)| *a == by_app).count(), 3, "{seen:?}");
    let request = "mutation { requestDataExport(input: { format: JSON }) { export { downloadUrl } } }";
    let export = app.gql(Some(&alice), request, json!({})).await;
    let url = export["requestDataExport"]["export"]["downloadUrl"].as_str().unwrap().to_string();
    let archive: Value = app.http.get(app.url(&url)).bearer_auth(&alice).send().await.unwrap().json().await.unwrap();
    let named = &archive["requestLogApps"];
    assert_eq!(named.as_array().map(Vec::len), Some(1), "{named}");
    assert_eq!(
        (&named[0]["client_id"], &named[0]["name"]),
        (&json!(oapp.client_id), &json!(app_name(false))),
        "{named}"
    );
    let logged = archive["requestLog"].as_array().unwrap();
    assert_eq!(logged.iter().filter(|r| r["app_id"] == named[0]["id"]).count(), 3, "{logged:?}");

    // The developer erases their account and the app with it: the lines stay, saying an app acted.
    let del = "mutation { deleteAccount(input: { password: \"correct horse\" }) { deleted } }";
    assert_eq!(app.gql(Some(&oapp.developer), del, json!({})).await["deleteAccount"]["deleted"], true);
    let seen = entries(app.gql(Some(&alice), activity, json!({})).await);
    let gone = json!({ "clientId": null, "name": null });
    let apps: Vec<&Value> = seen.iter().map(|(_, _, a)| a).filter(|a| !a.is_null()).collect();
    // The app's two reads and its refused attempt at the log: each line stays.
    assert_eq!(apps, vec![&gone; 3], "{seen:?}");
}

#[tokio::test]
async fn a_developer_deletes_their_app_and_every_grant_token_and_socket_ends_on_the_record() {
    let app = TestApp::spawn().await;
    let oapp = approved_app(&app, true, &[CB]).await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let t = tokens(&app, &oapp, &alice, "messages:read").await;
    let mut app_ws = listening(&app, &t.access).await;
    app_ws.quiet(200).await;

    let delete = "mutation($c: String!) { deleteApp(input: { clientId: $c }) { deletedClientId } }";
    // Nobody but its developer: not a member it serves, not the admin who approved it, not the app.
    for who in [&alice, &oapp.admin] {
        let (code, _) = app.gql_err(Some(who), delete, json!({ "c": oapp.client_id })).await;
        assert_eq!(code, "FORBIDDEN");
    }
    let (_, body) = gql_as(&app, &t.access, delete, json!({ "c": oapp.client_id })).await;
    assert_eq!(first_error(&body).0, "INSUFFICIENT_SCOPE", "{body}");
    assert_alive(&app, &t.access, "the token after refused deletions").await;

    let done = app.gql(Some(&oapp.developer), delete, json!({ "c": oapp.client_id })).await;
    assert_eq!(done["deleteApp"]["deletedClientId"], oapp.client_id.as_str(), "{done}");
    assert_eq!(closed_with(&mut app_ws).await, 4403, "the app's socket closes");
    assert_dead(&app, &t.access, "an access token of a deleted app").await;
    // The client itself is unknown now, so the token endpoint refuses the client before the token.
    let (status, body) = refresh(&app, &oapp, &t.refresh).await;
    assert_error(status, &body, 401, "invalid_client", "a refresh by a deleted app");
    assert!(authorized_apps(&app, &alice).await.is_empty());
    let mine = app.gql(Some(&oapp.developer), "{ me { developerApps { clientId } } }", json!({})).await;
    assert_eq!(mine["me"]["developerApps"], json!([]), "{mine}");
    let log = app.gql(Some(&oapp.admin), "{ auditLog(first: 50) { nodes { action target reason } } }", json!({})).await;
    let entries = log["auditLog"]["nodes"].as_array().unwrap();
    let of = |action: &str| -> Vec<&Value> { entries.iter().filter(|e| e["action"] == action).collect() };
    let target = json!(format!("App:{}", oapp.client_id));
    let revoked = of("REVOKE_APP");
    assert_eq!(revoked.len(), 1, "the ended grant is on the record: {log}");
    assert_eq!((&revoked[0]["target"], &revoked[0]["reason"]), (&target, &json!("the developer deleted the app")));
    let deleted = of("DELETE_APP");
    assert_eq!(deleted.len(), 1, "the deletion itself is on the record: {log}");
    assert_eq!((&deleted[0]["target"], &deleted[0]["reason"]), (&target, &json!("1 member grants ended")));
    // The client id is gone for good: no new consent, no second deletion.
    let (_, challenge) = pkce();
    let params = authorize_params(&oapp.client_id, CB, "profile:read", "s", &challenge);
    let resp = get_authorize(&app, Some(&alice), &params).await;
    assert_eq!(resp.status(), 400, "an unknown app gets the error page, never a redirect");
    assert!(resp.headers().get("location").is_none());
    let (code, _) = app.gql_err(Some(&oapp.developer), delete, json!({ "c": oapp.client_id })).await;
    assert_eq!(code, "NOT_FOUND");
    let (code, _) = app.gql_err(Some(&oapp.admin), REVIEW_APP, json!({ "c": oapp.client_id })).await;
    assert_eq!(code, "NOT_FOUND", "a deleted app is not reviewed again");
}
