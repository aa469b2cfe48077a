//! Third-party apps signing members in with OAuth 2.1 (issue 16), as real clients do it:
//! - a web app on another site, in a real browser (Debian's chromium driven by puppeteer-core from
//!   tests/js/oauth-browser.mjs): its "Sign in with ecer" link, the gateway's sign-in form, the
//!   consent page (in Chinese and in English), approving and denying, the app's server exchanging
//!   the code and reading the member;
//! - an app written with oauth4webapi (tests/js/oauth-client.mjs), a spec-strict client library:
//!   discovery, PKCE, the response's `iss` and `state`, the code exchange, GraphQL over HTTP and
//!   WebSocket with the access token, refresh rotation, reuse of a rotated refresh token, revocation;
//!   for a confidential client and for a public one.
//!
//! The protocol's rules one by one are in tests/api/oauth.rs. Needs `npm ci --prefix tests/js` and
//! chromium (the README's test command installs both when missing).

use ecer_gateway::authz::scopes::Scope;
use serde_json::{Value, json};

use crate::common::{TestApp, phone};
use crate::oauth::{OAuthApp, approved_app};

const JS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js");
const CHROMIUM: &str = "/usr/bin/chromium";
/// What both scripts ask for: `{ me { id nickname } }` needs profile:read.
const SCOPES: [Scope; 2] = [Scope::ProfileRead, Scope::PostsRead];

/// Runs `node <script> <args>` in tests/js and returns the one JSON line it printed, after checking
/// that it ran to the end.
async fn node(script: &str, args: &[&str], chromium: Option<&str>) -> Value {
    for package in ["oauth4webapi", "puppeteer-core", "graphql-ws"] {
        assert!(
            std::path::Path::new(JS).join("node_modules").join(package).exists(),
            "{package} is not installed: run `npm ci --prefix tests/js` (the README's test command does)"
        );
    }
    let mut command = tokio::process::Command::new("node");
    command.arg(script).args(args).current_dir(JS);
    if let Some(chromium) = chromium {
        command.env("CHROMIUM_PATH", chromium);
    }
    let out = command.output().await.expect("run node");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed ({}): {stderr}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    let r: Value =
        serde_json::from_str(line).unwrap_or_else(|_| panic!("{script} printed no JSON: {stdout}\n{stderr}"));
    assert!(
        r.get("failure").is_none(),
        "{script} stopped: {}\n{r:#}\nstderr: {stderr}",
        r["failure"].as_str().unwrap_or("")
    );
    r
}

/// The app's name and its developer's nickname, as the consent page must show them.
async fn shown_on_consent(app: &TestApp, client: &OAuthApp) -> (String, String) {
    let data = app.gql(Some(&client.developer), "{ me { nickname developerApps { clientId name } } }", json!({})).await;
    let name = data["me"]["developerApps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["clientId"] == client.client_id.as_str())
        .map(|a| a["name"].as_str().unwrap().to_string())
        .expect("the developer's app");
    (name, data["me"]["nickname"].as_str().unwrap().to_string())
}

/// A port free on 127.0.0.2 for the app's server (the script binds it right after).
fn free_port_on_another_site() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    listener.local_addr().unwrap().port()
}

/// The consent page's scope list: each asked-for scope, in order, with its plain words.
fn scope_items(chinese: bool) -> Value {
    json!(SCOPES.iter().map(|s| json!({ "scope": s.name(), "text": s.describe(chinese) })).collect::<Vec<_>>())
}

async fn sign_in_through_the_browser(locale: &str) {
    let chinese = locale == "zh-CN";
    let app = TestApp::spawn().await;
    let member_phone = phone(90);
    let nickname = "小林";
    let (_, member_id) = app.register(&member_phone, nickname).await;
    let port = free_port_on_another_site();
    let redirect = format!("http://127.0.0.2:{port}/callback");
    let client = approved_app(&app, false, &[&redirect]).await;
    assert_eq!(client.secret, None, "a public client has no secret");
    let (app_name, developer) = shown_on_consent(&app, &client).await;
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| CHROMIUM.to_string());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: `apt-get install -y chromium` (the README's test command does), or set CHROMIUM_PATH"
    );
    let gateway = app.url("");
    let r = node(
        "oauth-browser.mjs",
        &[&gateway, &client.client_id, &member_phone, "correct horse", locale, &port.to_string()],
        Some(&chromium),
    )
    .await;

    // Not signed in: the authorize URL shows the gateway's sign-in form.
    assert_eq!(r["authorize"]["status"], 200, "{r:#}");
    assert!(r["authorize"]["url"].as_str().unwrap().starts_with(&format!("{gateway}/oauth/authorize?")), "{r:#}");
    let form = &r["signInForm"];
    assert_eq!(form["method"], "post", "{r:#}");
    assert_eq!(form["action"], "/oauth/sign-in", "{r:#}");
    assert_eq!(form["phone"], true, "{r:#}");
    assert_eq!(form["passwordType"], "password", "{r:#}");
    assert_eq!(form["submit"], true, "{r:#}");
    let return_to = form["returnTo"].as_str().unwrap_or_else(|| panic!("no return_to: {r:#}"));
    assert!(return_to.contains(&client.client_id), "return_to leads back to this authorization: {return_to}");

    // Signed in, the member is back at the authorize URL, which now asks for consent.
    assert_eq!(r["signIn"]["status"], 200, "{r:#}");
    assert_eq!(r["signIn"]["backAtAuthorize"], true, "{r:#}");
    let consent = &r["consent"];
    assert_eq!(consent["signInForm"], false, "{r:#}");
    assert_eq!(consent["lang"], locale, "the page speaks ui_locales={locale}, not Accept-Language: {r:#}");
    let text = consent["text"].as_str().unwrap();
    assert!(text.contains(&app_name), "the app's name {app_name:?} on the consent page: {text}");
    assert!(text.contains(&developer), "the developer's nickname {developer:?} on the consent page: {text}");
    assert_eq!(consent["scopes"], scope_items(chinese), "{r:#}");
    assert_eq!(consent["form"]["method"], "post", "{r:#}");
    assert_eq!(consent["form"]["action"], "/oauth/authorize", "{r:#}");
    for (id, value) in [("approve", "approve"), ("deny", "deny")] {
        assert_eq!(
            consent[id],
            json!({ "tag": "button", "type": "submit", "name": "decision", "value": value, "inForm": true }),
            "{r:#}"
        );
    }

    // Approved: the browser lands on the app's callback with a code, the state and the issuer.
    assert!(r["approve"]["url"].as_str().unwrap().starts_with(&format!("{redirect}?")), "{r:#}");
    assert_eq!(r["approve"]["callbackText"], "signed in", "{r:#}");
    let approved = &r["approved"];
    assert!(approved["params"]["code"].as_str().is_some_and(|c| !c.is_empty()), "{r:#}");
    assert!(approved["params"].get("error").is_none(), "{r:#}");
    assert_eq!(approved["stateMatched"], true, "{r:#}");
    assert_eq!(approved["params"]["iss"], gateway.as_str(), "{r:#}");
    // The app's server exchanged it (client_id and code_verifier: a public client).
    let token = &approved["token"];
    assert_eq!(token["status"], 200, "{r:#}");
    assert!(token["cacheControl"].as_str().is_some_and(|c| c.contains("no-store")), "RFC 6749 5.1: {r:#}");
    assert_eq!(token["body"]["token_type"], "Bearer", "{r:#}");
    assert_eq!(token["body"]["expires_in"], 3600, "{r:#}");
    assert_eq!(token["body"]["scope"], "profile:read posts:read", "{r:#}");
    assert!(token["body"]["access_token"].as_str().unwrap().starts_with("ecat_"), "{r:#}");
    assert!(token["body"]["refresh_token"].as_str().unwrap().starts_with("ecrt_"), "{r:#}");
    // And read the member with the access token.
    assert_eq!(approved["graphql"]["status"], 200, "{r:#}");
    assert_eq!(approved["graphql"]["body"]["data"]["me"], json!({ "id": member_id, "nickname": nickname }), "{r:#}");

    // Again, signed in now: straight to the consent page; denied.
    assert_eq!(r["again"]["status"], 200, "{r:#}");
    assert_eq!(r["againConsent"]["signInForm"], false, "the session cookie signed the member in: {r:#}");
    assert_eq!(r["againConsent"]["lang"], locale, "{r:#}");
    assert_eq!(r["againConsent"]["scopes"], scope_items(chinese), "{r:#}");
    assert!(r["deny"]["url"].as_str().unwrap().starts_with(&format!("{redirect}?")), "{r:#}");
    let denied = &r["denied"];
    assert_eq!(denied["params"]["error"], "access_denied", "{r:#}");
    assert!(denied["params"].get("code").is_none(), "{r:#}");
    assert_eq!(denied["stateMatched"], true, "{r:#}");
    assert_eq!(denied["params"]["iss"], gateway.as_str(), "{r:#}");
    assert!(denied.get("token").is_none(), "{r:#}");
    assert_eq!(r["callbacks"], 2, "{r:#}");
}

#[tokio::test]
async fn an_app_on_another_site_signs_a_member_in_through_a_real_browser_in_chinese() {
    sign_in_through_the_browser("zh-CN").await;
}

#[tokio::test]
async fn an_app_on_another_site_signs_a_member_in_through_a_real_browser_in_english() {
    sign_in_through_the_browser("en").await;
}

/// A token that no longer opens anything: GraphQL answers as to a signed-out visitor.
fn signed_out(answer: &Value, what: &str) {
    let status = answer["status"].as_u64().unwrap();
    assert!(status == 200 || status == 401, "{what}: {answer:#}");
    assert_eq!(answer["body"]["data"]["me"], Value::Null, "{what} still reads the member: {answer:#}");
}

async fn client_with_oauth4webapi(confidential: bool) {
    let app = TestApp::spawn().await;
    let nickname = "oauth member";
    let (session, member_id) = app.register(&phone(91), nickname).await;
    let redirect = "https://partner.example/oauth/callback";
    let client = approved_app(&app, confidential, &[redirect]).await;
    assert_eq!(client.secret.is_some(), confidential, "only a confidential client has a secret");
    let gateway = app.url("");
    let r = node(
        "oauth-client.mjs",
        &[&gateway, &client.client_id, client.secret.as_deref().unwrap_or("-"), &session, redirect],
        None,
    )
    .await;
    let me = json!({ "id": member_id, "nickname": nickname });

    // Discovery (RFC 8414): oauth4webapi already checked that the issuer is the gateway's URL.
    let m = &r["metadata"];
    assert_eq!(m["issuer"], gateway.as_str(), "{m:#}");
    assert_eq!(m["authorization_endpoint"], format!("{gateway}/oauth/authorize"), "{m:#}");
    assert_eq!(m["token_endpoint"], format!("{gateway}/oauth/token"), "{m:#}");
    assert_eq!(m["revocation_endpoint"], format!("{gateway}/oauth/revoke"), "{m:#}");
    assert_eq!(m["response_types_supported"], json!(["code"]), "RFC 8414 2 (REQUIRED): {m:#}");
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]), "{m:#}");
    let mut auth_methods: Vec<&str> =
        m["token_endpoint_auth_methods_supported"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    auth_methods.sort_unstable();
    assert_eq!(auth_methods, ["client_secret_basic", "client_secret_post", "none"], "{m:#}");
    assert_eq!(m["authorization_response_iss_parameter_supported"], true, "{m:#}");
    let mut scopes: Vec<&str> = m["scopes_supported"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    scopes.sort_unstable();
    let mut all: Vec<&str> = Scope::ALL.iter().map(|s| s.name()).collect();
    all.sort_unstable();
    assert_eq!(scopes, all, "{m:#}");

    // The first authorization: the consent page, approved; the response carries iss and state
    // (oauth4webapi's validateAuthResponse checked both); the code exchanged.
    for step in ["first", "second"] {
        let s = &r[step];
        assert_eq!(s["consentPage"]["status"], 200, "{step}: {s:#}");
        assert!(s["consentPage"]["contentType"].as_str().unwrap().starts_with("text/html"), "{step}: {s:#}");
        let form = &s["consentPage"]["form"];
        assert_eq!(form["method"], "post", "{step}: {s:#}");
        assert_eq!(form["action"], "/oauth/authorize", "{step}: {s:#}");
        assert!(form["hidden"].as_array().unwrap().contains(&json!("csrf")), "{step}: {s:#}");
        for value in ["approve", "deny"] {
            assert!(
                form["buttons"].as_array().unwrap().iter().any(|b| b["id"] == value
                    && b["name"] == "decision"
                    && b["value"] == value
                    && b["type"] == "submit"),
                "{step}: the {value} button: {s:#}"
            );
        }
        assert_eq!(s["approve"]["status"], 303, "{step}: {s:#}");
        assert_eq!(s["approve"]["startsWithRedirectUri"], true, "{step}: {s:#}");
        assert_eq!(s["callback"], json!({ "hasCode": true, "stateMatches": true, "iss": gateway }), "{step}: {s:#}");
        let t = &s["tokens"];
        assert_eq!(t["token_type"], "bearer", "{step} (oauth4webapi lowercases it): {s:#}");
        assert_eq!(t["expires_in"], 3600, "{step}: {s:#}");
        assert_eq!(t["scope"], "profile:read posts:read", "{step}: {s:#}");
        assert_eq!(t["access_token_prefix"], "ecat_", "{step}: {s:#}");
        assert_eq!(t["refresh_token_prefix"], "ecrt_", "{step}: {s:#}");
        assert_eq!(s["me"]["status"], 200, "{step}: {s:#}");
        assert_eq!(s["me"]["body"], json!({ "data": { "me": me } }), "{step}: {s:#}");
    }
    // The access token is limited to its scopes (history:read was not asked for), over HTTP; and it
    // signs a WebSocket in.
    let first = &r["first"];
    assert_eq!(first["outsideScopes"]["body"]["errors"][0]["extensions"]["code"], "INSUFFICIENT_SCOPE", "{first:#}");
    assert_eq!(first["webSocket"]["result"], json!({ "data": { "me": me } }), "{first:#}");

    // Refresh: a new refresh token (rotation) and a new access token that works.
    let refresh = &r["refresh"];
    assert_eq!(refresh["refreshTokenChanged"], true, "{refresh:#}");
    assert_eq!(refresh["accessTokenChanged"], true, "{refresh:#}");
    assert_eq!(refresh["tokens"]["token_type"], "bearer", "{refresh:#}");
    assert_eq!(refresh["tokens"]["expires_in"], 3600, "{refresh:#}");
    assert_eq!(refresh["tokens"]["access_token_prefix"], "ecat_", "{refresh:#}");
    assert_eq!(refresh["tokens"]["refresh_token_prefix"], "ecrt_", "{refresh:#}");
    assert_eq!(refresh["me"]["body"], json!({ "data": { "me": me } }), "{refresh:#}");

    // The rotated-out refresh token again: invalid_grant, and the whole grant is gone.
    let invalid_grant = json!({ "threw": "ResponseBodyError", "status": 400, "error": "invalid_grant" });
    let without_description = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().map(|o| o.remove("error_description"));
        v
    };
    assert_eq!(without_description(&r["reuse"]), invalid_grant, "{:#}", r["reuse"]);
    let after = &r["afterReuse"];
    assert_eq!(without_description(&after["newestRefresh"]), invalid_grant, "the newest refresh token: {after:#}");
    signed_out(&after["newestAccess"], "the newest access token after the reuse");
    signed_out(&after["firstAccess"], "the first access token after the reuse");

    // The second authorization is a grant of its own; the app revokes its refresh token (RFC 7009:
    // 200), which then no longer refreshes.
    assert_eq!(r["second"]["differsFromFirst"], true, "{r:#}");
    assert_eq!(r["revocation"]["status"], 200, "{r:#}");
    assert!(r["revocation"]["processed"].get("threw").is_none(), "{r:#}");
    let after = &r["afterRevocation"];
    assert_eq!(without_description(&after["refresh"]), invalid_grant, "the revoked refresh token: {after:#}");
    // RFC 7009 2.1: revoking a refresh token also ends the access tokens of its grant.
    signed_out(&after["access"], "the access token of the revoked grant");
}

#[tokio::test]
async fn a_confidential_app_written_with_oauth4webapi_signs_a_member_in_refreshes_and_revokes() {
    client_with_oauth4webapi(true).await;
}

#[tokio::test]
async fn a_public_app_written_with_oauth4webapi_signs_a_member_in_refreshes_and_revokes() {
    client_with_oauth4webapi(false).await;
}
