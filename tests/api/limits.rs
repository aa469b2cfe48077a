//! Limits against abuse: each refuses a hostile request with its own code and lets normal traffic
//! through. Rate limits are token buckets per user or IP, shared by instances through Redis.

use serde_json::json;

use crate::common::{TestApp, phone};
use crate::scale_out::OwnRedis;

const LOGIN: &str = "mutation($p: String!) { login(input: { phone: $p, password: \"wrong password\" }) { token } }";

#[tokio::test]
async fn login_attempts_are_limited_per_address() {
    let app = TestApp::spawn_with(|c| c.rate_limit_auth_per_minute = 3).await;
    for _ in 0..3 {
        let (code, _) = app.gql_err(None, LOGIN, json!({ "p": phone(1) })).await;
        assert_eq!(code, "UNAUTHENTICATED");
    }
    let resp = app
        .http
        .post(app.url("/graphql"))
        .json(&json!({ "query": LOGIN, "variables": { "p": phone(1) } }))
        .send()
        .await
        .unwrap();
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    assert_eq!(body["errors"][0]["extensions"]["retryAfter"], retry);
}

#[tokio::test]
async fn requests_are_limited_per_user_and_per_address() {
    // One token a minute after the burst: a slow, loaded machine cannot refill the bucket mid-test.
    let app = TestApp::spawn_with(|c| {
        c.rate_limit_requests_per_minute = 1;
        c.rate_limit_requests_burst = 5;
    })
    .await;
    let q = "{ boards(first: 1) { edges { cursor } } }";
    for _ in 0..5 {
        app.gql(None, q, json!({})).await;
    }
    let resp = app.http.post(app.url("/graphql")).json(&json!({ "query": q })).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");

    // A signed-in user has a bucket of their own (the address's is empty; theirs is not)...
    let (token, _) = {
        let open = app.another_instance(|_| {}).await;
        open.register(&phone(1), "a").await
    };
    app.gql(Some(&token), q, json!({})).await;
    // ...which WebSocket operations draw on too.
    let mut ws = app.ws(Some(&token)).await;
    for i in 0..4 {
        ws.subscribe(&format!("q{i}"), q, json!({})).await;
        assert_eq!(ws.recv().await["type"], "next");
        assert_eq!(ws.recv().await["type"], "complete");
    }
    ws.subscribe("over", q, json!({})).await;
    let err = ws.recv().await;
    assert_eq!(
        (err["type"].as_str(), err["payload"][0]["extensions"]["code"].as_str()),
        (Some("error"), Some("RATE_LIMITED"))
    );
}

#[tokio::test]
async fn message_spam_is_limited_per_sender() {
    let app = TestApp::spawn_with(|c| c.rate_limit_messages_per_minute = 2).await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let (carol, _) = app.register(&phone(3), "carol").await;
    let send = "mutation($to: ID!) { sendMessage(input: { toUserId: $to, body: \"buy now\" }) { message { id } } }";
    for _ in 0..2 {
        app.gql(Some(&alice), send, json!({ "to": bob_id })).await;
    }
    let (code, err) = app.gql_err(Some(&alice), send, json!({ "to": bob_id })).await;
    assert_eq!(code, "RATE_LIMITED", "{err}");
    // Someone else sending normally is not affected.
    app.gql(Some(&carol), send, json!({ "to": bob_id })).await;
    let _ = bob;
}

/// Two instances behind a load balancer share the buckets: switching instance does not reset them.
#[tokio::test]
async fn limits_are_shared_across_instances_through_redis() {
    let redis = OwnRedis::start();
    let url = redis.url();
    let a = TestApp::spawn_with(|c| {
        c.redis_url = Some(url.clone());
        c.rate_limit_auth_per_minute = 2;
    })
    .await;
    let prefix = a.state.config.redis_prefix.clone();
    let b = a
        .another_instance(|c| {
            c.redis_url = Some(url.clone());
            c.redis_prefix = prefix.clone();
            c.rate_limit_auth_per_minute = 2;
        })
        .await;
    assert_eq!(a.gql_err(None, LOGIN, json!({ "p": phone(1) })).await.0, "UNAUTHENTICATED");
    assert_eq!(b.gql_err(None, LOGIN, json!({ "p": phone(1) })).await.0, "UNAUTHENTICATED");
    assert_eq!(a.gql_err(None, LOGIN, json!({ "p": phone(1) })).await.0, "RATE_LIMITED");
    assert_eq!(b.gql_err(None, LOGIN, json!({ "p": phone(1) })).await.0, "RATE_LIMITED");
}
