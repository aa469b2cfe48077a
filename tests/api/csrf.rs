//! Cookie sessions are safe from cross-site request forgery: a mutation cannot be run by another
//! site's form post or simple request, nor by its script with the member's cookie.

use serde_json::{Value, json};

use crate::common::{TestApp, phone};

const LIKE: &str = "mutation($p: ID!) { likePost(input: { postId: $p }) { post { likeCount } } }";

#[tokio::test]
async fn cross_site_requests_cannot_act_for_the_member() {
    let (app, c) = TestApp::community().await;
    let (token, _) = app.register(&phone(2), "victim").await;
    let cookie = format!("ecer_session={token}");
    let host = app.addr.to_string();
    let like_count = || async {
        app.gql(None, "query($p: ID!) { post(id: $p) { likeCount } }", json!({ "p": c.post })).await["post"]["likeCount"]
            .as_i64()
            .unwrap()
    };
    let body = json!({ "query": LIKE, "variables": { "p": c.post } }).to_string();

    // The member's cookie, sent by a page on another site with this content type.
    let cross_site = |content_type: &'static str| {
        app.http
            .post(app.url("/graphql"))
            .header("content-type", content_type)
            .header("cookie", &cookie)
            .header("origin", "https://evil.example")
            .body(body.clone())
            .send()
    };
    // A plain HTML form can only send these content types: refused before anything runs. Multipart
    // (uploads) is accepted only with a header a form cannot set, which forces a CORS preflight.
    let resp = cross_site("multipart/form-data; boundary=x").await.unwrap();
    assert_eq!(resp.status(), 400);
    let refusal: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(refusal["errors"][0]["extensions"]["code"], "CSRF_PREFLIGHT_REQUIRED");
    for content_type in ["application/x-www-form-urlencoded", "text/plain"] {
        assert_eq!(cross_site(content_type).await.unwrap().status(), 415, "{content_type}");
    }
    // A mutation in a GET (a link, an <img>) is refused.
    let url = format!(
        "{}?query={}",
        app.url("/graphql"),
        url::form_urlencoded::byte_serialize(LIKE.as_bytes()).collect::<String>()
    );
    assert_eq!(app.http.get(url).header("cookie", &cookie).send().await.unwrap().status(), 405);
    // A script on another site that manages to send JSON (it cannot without a CORS preflight, which
    // the gateway never approves) still runs signed out: the cookie is ignored for another origin.
    let resp: Value = cross_site("application/json").await.unwrap().json().await.unwrap();
    assert_eq!(resp["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    assert_eq!(like_count().await, 0);
    // No CORS approval is ever given.
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/graphql"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(preflight.headers().get("access-control-allow-origin").is_none());

    // The member's own page (same origin) works with the cookie.
    let resp: Value = app
        .http
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .header("cookie", &cookie)
        .header("origin", format!("http://{host}"))
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["data"]["likePost"]["post"]["likeCount"], 1, "{resp}");
}
