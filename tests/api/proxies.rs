//! Trusted proxies (`TRUSTED_PROXIES`): behind a load balancer the client's address comes from the
//! forwarding headers, and only when the connection comes from a trusted proxy. The tests connect
//! from 127.0.0.1, so trusting it makes the test client the proxy.

use serde_json::{Value, json};

use crate::common::{TestApp, phone};

const LOGIN: &str = "mutation($input: LoginInput!) { login(input: $input) { token } }";

/// Signs in with `headers` on the request and returns the IP the new session records.
async fn session_ip(app: &TestApp, n: u32, headers: &[(&str, &str)]) -> Value {
    app.register(&phone(n), &format!("m{n}")).await;
    let mut req = app.http.post(app.url("/graphql"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body: Value = req
        .json(&json!({ "query": LOGIN, "variables": { "input": { "phone": phone(n), "password": "correct horse" } } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = body["data"]["login"]["token"].as_str().unwrap().to_string();
    let me = app.gql(Some(&token), "{ me { sessions { ip current } } }", json!({})).await;
    let current = me["me"]["sessions"].as_array().unwrap().iter().find(|s| s["current"] == true).unwrap().clone();
    current["ip"].clone()
}

#[tokio::test]
async fn forwarding_headers_are_ignored_unless_the_peer_is_trusted() {
    let app = TestApp::spawn().await;
    let spoofed = [("x-forwarded-for", "203.0.113.9"), ("forwarded", "for=198.51.100.4")];
    assert_eq!(session_ip(&app, 1, &spoofed).await, "127.0.0.1");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_session_records_the_client() {
    let app = TestApp::spawn_with(|c| c.trusted_proxies = "127.0.0.1, 10.0.0.0/8".into()).await;
    assert_eq!(session_ip(&app, 1, &[("x-forwarded-for", "203.0.113.9")]).await, "203.0.113.9");
    // A value the client wrote itself, left of what the proxies saw, is not believed.
    assert_eq!(session_ip(&app, 2, &[("x-forwarded-for", "1.1.1.1, 203.0.113.10, 10.0.0.5")]).await, "203.0.113.10");
    // A Forwarded header is the client's own when the proxies write X-Forwarded-For (the default).
    let both = [("forwarded", "for=1.2.3.4"), ("x-forwarded-for", "203.0.113.11")];
    assert_eq!(session_ip(&app, 3, &both).await, "203.0.113.11");
    assert_eq!(session_ip(&app, 4, &[]).await, "127.0.0.1", "no header: the proxy's own request");
}

#[tokio::test]
async fn behind_a_forwarded_proxy_only_forwarded_is_read() {
    let app = TestApp::spawn_with(|c| {
        c.trusted_proxies = "127.0.0.1".into();
        c.trusted_proxy_header = "forwarded".into();
    })
    .await;
    let h = [("forwarded", "for=\"[2001:db8::7]:4711\";proto=https"), ("x-forwarded-for", "1.2.3.4")];
    assert_eq!(session_ip(&app, 1, &h).await, "2001:db8::7");
}

#[tokio::test]
async fn rate_limits_count_per_client_behind_a_trusted_proxy() {
    let app = TestApp::spawn_with(|c| {
        c.trusted_proxies = "127.0.0.1".into();
        c.rate_limit_requests_per_minute = 1;
        c.rate_limit_requests_burst = 2;
    })
    .await;
    let status = async |xff: &str| {
        let q = json!({ "query": "{ boards(first: 1) { edges { cursor } } }" });
        app.http.post(app.url("/graphql")).header("x-forwarded-for", xff).json(&q).send().await.unwrap().status()
    };
    assert_eq!(status("203.0.113.9").await, 200);
    assert_eq!(status("203.0.113.9").await, 200);
    assert_eq!(status("203.0.113.9").await, 429);
    // Prepending another address does not buy a new budget.
    assert_eq!(status("198.51.100.1, 203.0.113.9").await, 429);
    // Another client behind the same proxy has its own.
    assert_eq!(status("203.0.113.10").await, 200);
}

#[tokio::test]
async fn websocket_caps_count_per_client_behind_a_trusted_proxy() {
    let app = TestApp::spawn_with(|c| {
        c.trusted_proxies = "127.0.0.1".into();
        c.max_websockets_per_ip = 1;
        c.max_connections_per_ip = 1;
    })
    .await;
    // Several connections from the proxy itself: its address is not capped per connection.
    let _a = app.ws_with(Some("graphql-transport-ws"), &[("x-forwarded-for", "203.0.113.9")]).await;
    let _b = app.ws_with(Some("graphql-transport-ws"), &[("x-forwarded-for", "203.0.113.10")]).await;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{}/graphql", app.addr).into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    req.headers_mut().insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 429),
        other => panic!("a second socket for the same client: {:?}", other.map(|_| ())),
    }
}
