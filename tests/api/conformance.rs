use serde_json::{Value, json};

use crate::common::TestApp;

/// The public GraphQL-over-HTTP audit suite (npm `graphql-http`, the reference implementation's
/// `serverAudits`): every MUST and SHOULD audit passes. Needs `npm ci --prefix tests/js` (the test
/// command in the README runs it).
#[tokio::test]
async fn graphql_over_http_audit_passes_every_must_and_should() {
    let app = TestApp::spawn().await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js");
    assert!(
        std::path::Path::new(dir).join("node_modules/graphql-http").exists(),
        "the audit suite is not installed: run `npm ci --prefix tests/js` (the README's test command does)"
    );
    let out = tokio::process::Command::new("node")
        .arg("audit.mjs")
        .arg(app.url("/graphql"))
        .current_dir(dir)
        .output()
        .await
        .expect("run node (Node.js 20 is required for the audit)");
    assert!(out.status.success(), "audit failed to run: {}", String::from_utf8_lossy(&out.stderr));
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).expect("audit JSON");
    assert!(results.len() >= 61, "expected the full audit, got {}", results.len());
    let failures: Vec<&Value> = results
        .iter()
        .filter(|r| {
            let name = r["name"].as_str().unwrap_or("");
            (name.starts_with("MUST") || name.starts_with("SHOULD")) && r["status"] != "ok"
        })
        .collect();
    assert!(failures.is_empty(), "failed audits: {failures:#?}");
}

#[tokio::test]
async fn http_edges_have_the_right_status_and_codes() {
    let app = TestApp::spawn().await;
    let gql_json = "application/graphql-response+json";

    // A mutation over GET is refused with 405 and an Allow header.
    let resp = app
        .http
        .get(app.url("/graphql?query=mutation%20%7B%20logout(input%3A%20%7B%7D)%20%7B%20loggedOut%20%7D%20%7D"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");

    // A form post (what a cross-site HTML form can send) is not a GraphQL request.
    let resp = app
        .http
        .post(app.url("/graphql"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("query=mutation%7Blogout(input%3A%7B%7D)%7BloggedOut%7D%7D")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let resp = app
        .http
        .post(app.url("/graphql"))
        .header("content-type", "text/plain")
        .body("{\"query\":\"{__typename}\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);

    // Nothing acceptable to produce.
    let resp =
        app.http.get(app.url("/graphql?query=%7B__typename%7D")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(resp.status(), 406);

    // Parse and validation failures: 400 without data under the new media type, coded.
    for (query, code) in [("{", "GRAPHQL_PARSE_FAILED"), ("{ nope }", "GRAPHQL_VALIDATION_FAILED")] {
        let resp = app
            .http
            .post(app.url("/graphql"))
            .header("accept", gql_json)
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with(gql_json));
        let body: Value = resp.json().await.unwrap();
        assert!(body.get("data").is_none(), "{body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], code, "{body}");
        // Legacy application/json clients get 200 with the same coded errors.
        let resp = app
            .http
            .post(app.url("/graphql"))
            .header("accept", "application/json")
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], code);
    }

    // An unknown operation name and a bad variable are request errors too.
    let (status, body) = {
        let resp = app
            .http
            .post(app.url("/graphql"))
            .header("accept", gql_json)
            .json(&json!({ "query": "query A { __typename }", "operationName": "B" }))
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST");

    // Batches run every operation and answer in order.
    let resp = app
        .http
        .post(app.url("/graphql"))
        .json(&json!([{ "query": "{ a: __typename }" }, { "query": "{ b: __typename }" }]))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!([{ "data": { "a": "Query" } }, { "data": { "b": "Query" } }]));
    let too_many: Vec<Value> = (0..11).map(|_| json!({ "query": "{ __typename }" })).collect();
    let resp = app.http.post(app.url("/graphql")).json(&too_many).send().await.unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn graphiql_is_served_offline_with_subscriptions_wired() {
    // Running subscriptions in a real browser is tested in demo.rs; this checks the page's wiring.
    let app = TestApp::spawn().await;
    let resp = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.contains("GraphiQL.createFetcher"));
    assert!(html.contains("graphqlWs.createClient"), "subscriptions use the vendored graphql-ws client");
    assert!(html.contains("OnLiveChat") && html.contains("query HomeFeed"), "the contract's tabs are filled in");
    // Every script and stylesheet is served by the gateway itself: no CDN.
    assert!(!html.contains("https://"), "the page must not load anything from the internet");
    for asset in [
        "graphiql.min.js",
        "graphiql.min.css",
        "react.production.min.js",
        "react-dom.production.min.js",
        "graphql-ws.min.js",
    ] {
        assert!(html.contains(&format!("/graphiql/{asset}")));
        let resp = app.http.get(app.url(&format!("/graphiql/{asset}"))).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{asset}");
        assert!(resp.bytes().await.unwrap().len() > 5_000, "{asset}");
    }
    assert_eq!(app.http.get(app.url("/graphiql/../Cargo.toml")).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    assert_eq!(app.http.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(app.http.get(app.url("/readyz")).send().await.unwrap().status(), 200);
}

/// Bad configuration stops the process at start with a message naming the setting.
#[test]
fn bad_configuration_fails_at_start_with_a_clear_message() {
    let bin = env!("CARGO_BIN_EXE_ecer-gateway");
    for (var, value, needle) in [
        ("DATABASE_URL", "mysql://x", "DATABASE_URL"),
        ("REDIS_URL", "http://localhost", "REDIS_URL"),
        ("MAX_PAGE_SIZE", "0", "MAX_PAGE_SIZE"),
        ("LISTEN_ADDR", "not-an-address", "LISTEN_ADDR"),
    ] {
        let out = std::process::Command::new(bin).arg("migrate").env(var, value).output().unwrap();
        assert!(!out.status.success(), "{var}={value} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle) || stderr.contains(&var.to_lowercase().replace('_', "-")), "{var}: {stderr}");
    }
    // An unreachable Redis is named too (port 1 on loopback refuses at once).
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin)
        .arg("migrate")
        .env("DATABASE_URL", format!("sqlite://{}/x.db?mode=rwc", dir.path().display()))
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("redis"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_a_coded_error() {
    let app = TestApp::spawn_with(|c| c.max_body_bytes = 4096).await;
    let big = format!("{{ __typename }} # {}", "x".repeat(8192));
    let resp = app.http.post(app.url("/graphql")).json(&json!({ "query": big })).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "REQUEST_TOO_LARGE");
    app.gql(None, "{ __typename }", json!({})).await;
}

#[tokio::test]
async fn oversized_batches_are_refused_with_their_own_code() {
    let app = TestApp::spawn_with(|c| c.max_batch_size = 3).await;
    let op = json!({ "query": "{ __typename }" });
    let ok = app.http.post(app.url("/graphql")).json(&json!([op, op, op])).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<Value>().await.unwrap().as_array().unwrap().len(), 3);
    let resp = app.http.post(app.url("/graphql")).json(&json!([op, op, op, op])).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BATCH_TOO_LARGE");
}

/// Hostile queries are refused before they run; ordinary ones (every contract operation, tested in
/// contract.rs) pass the same limits.
#[tokio::test]
async fn query_cost_and_depth_are_limited() {
    let app = TestApp::spawn().await;
    let fanout = "{ posts(first: 100) { edges { node { comments(first: 100) { edges { node {
        replies(first: 100) { edges { node { id } } } } } } } } } }";
    let (code, _) = app.gql_err(None, fanout, json!({})).await;
    assert_eq!(code, "QUERY_TOO_COMPLEX");
    // Replies of replies, 8 levels down: each level adds 3 to the depth.
    let mut deep = "id".to_string();
    for _ in 0..8 {
        deep = format!("replies(first: 1) {{ edges {{ node {{ {deep} }} }} }}");
    }
    let deep = format!("{{ comment(id: \"x\") {{ {deep} }} }}");
    let (code, _) = app.gql_err(None, &deep, json!({})).await;
    assert_eq!(code, "QUERY_TOO_DEEP");
    app.gql(
        None,
        "{ posts(first: 100) { edges { node { id title comments(first: 3) { edges { node { id } } } } } } }",
        json!({}),
    )
    .await;
}
