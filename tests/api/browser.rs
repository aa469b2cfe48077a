//! A real browser (Debian's chromium, driven by puppeteer-core from tests/js/cross-site.mjs) signed
//! in to the gateway with the session cookie, and a page on another site (127.0.0.2) trying to act
//! for the member or read their data. Needs `npm ci --prefix tests/js` and chromium (the README's
//! test command installs both when missing).

use serde_json::{Value, json};

use crate::common::{TestApp, phone};

const CHROMIUM: &str = "/usr/bin/chromium";

#[tokio::test]
async fn a_page_on_another_site_cannot_act_for_or_read_a_signed_in_member() {
    let (app, c) = TestApp::community().await;
    let member_phone = phone(2);
    let (token, id) = app.register(&member_phone, "member").await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js");
    assert!(
        std::path::Path::new(dir).join("node_modules/puppeteer-core").exists(),
        "puppeteer-core is not installed: run `npm ci --prefix tests/js` (the README's test command does)"
    );
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| CHROMIUM.to_string());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: `apt-get install -y chromium` (the README's test command does), or set CHROMIUM_PATH"
    );
    let out = tokio::process::Command::new("node")
        .arg("cross-site.mjs")
        .arg(format!("http://{}", app.addr))
        .arg(&member_phone)
        .arg("correct horse")
        .arg(&c.post)
        .env("CHROMIUM_PATH", &chromium)
        .current_dir(dir)
        .output()
        .await
        .expect("run node");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cross-site.mjs failed: {stderr}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("not JSON: {stderr}"));
    assert!(r.get("failure").is_none(), "the browser run failed: {}\n{r:#}", r["failure"]);

    // The member is signed in, by cookie, in this browser: their own page reads them.
    assert!(r["signIn"].get("errors").is_none(), "{r:#}");
    assert_eq!(r["signIn"]["data"]["login"]["token"], Value::Null, "cookie delivery hands no token to scripts");
    assert_eq!(r["cookieReadableByScript"], false);
    assert_eq!(r["sameOriginMe"]["id"], json!(id), "{r:#}");
    assert_eq!(r["sameOriginWebsocket"]["results"]["me"]["data"]["me"]["id"], json!(id), "{r:#}");

    // The other site's attempts.
    assert_eq!(r["linkMutation"]["status"], 405, "a link to a GET mutation: {r:#}");
    let search: Value = serde_json::from_str(r["linkSearch"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(r["linkSearch"]["status"], 200);
    assert!(search["data"]["search"].is_object(), "{search}");
    assert_eq!(r["formText"]["status"], 415, "a text/plain form post: {r:#}");
    assert_eq!(r["formMultipart"]["status"], 400, "a multipart form post: {r:#}");
    assert!(r["formMultipart"]["body"].as_str().unwrap().contains("CSRF_PREFLIGHT_REQUIRED"));
    assert_eq!(r["fetch"]["simplePost"], "opaque", "{r:#}");
    assert_eq!(r["fetch"]["jsonPost"], "blocked", "a credentialed JSON fetch needs a preflight we never approve");
    assert_eq!(r["fetch"]["readMe"], "blocked", "no CORS approval: the page cannot read the answer");
    assert_eq!(r["fetch"]["readMeNoCors"], "opaque");
    for image in r["images"].as_array().unwrap() {
        assert_eq!(image["outcome"], "error", "{image}");
    }
    // A WebSocket carries no CORS: what protects the member is that the socket runs signed out.
    let ws = &r["websocket"];
    assert_eq!(ws["results"]["me"]["data"]["me"], Value::Null, "another site's socket read the member: {r:#}");
    let like_errors = &ws["results"]["like"];
    let code =
        like_errors[0]["extensions"]["code"].as_str().or(like_errors["errors"][0]["extensions"]["code"].as_str());
    assert_eq!(code, Some("UNAUTHENTICATED"), "{r:#}");

    // Nothing happened to the member: checked with their bearer token.
    let me = app
        .gql(Some(&token), "{ me { signature searchHistory(first: 10) { edges { node { query } } } } }", json!({}))
        .await;
    assert_eq!(me["me"]["signature"], Value::Null, "the profile changed");
    let history: Vec<&str> = me["me"]["searchHistory"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["query"].as_str().unwrap())
        .collect();
    // The member's own search (typed into the address bar) is there: the check could see one.
    assert_eq!(r["typedSearch"]["status"], 200);
    assert_eq!(history, vec!["own search"], "{r:#}");
    let likes = app.gql(None, "query($p: ID!) { post(id: $p) { likeCount } }", json!({ "p": c.post })).await;
    assert_eq!(likes["post"]["likeCount"], 0, "a like was recorded");
}
