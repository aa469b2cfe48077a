//! Operations: Prometheus metrics, request logs without personal data, request ids.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::json;

use crate::common::{TestApp, phone};

fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(name_and_labels)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn metrics_cover_operations_errors_sockets_loaders_and_the_pool() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register(&phone(1), "a").await;
    app.gql(None, "query BoardList { boards(first: 1) { edges { cursor } } }", json!({})).await;
    app.gql(None, "query MadeUpName { boards(first: 1) { edges { cursor } } }", json!({})).await;
    app.gql_err(None, "{ nope", json!({})).await;
    app.gql(Some(&token), "query HomeFeed { posts(first: 5) { edges { node { author { nickname } } } } }", json!({}))
        .await;
    app.gql(Some(&token), "query Me { me { nickname } }", json!({})).await;
    let mut ws = app.ws(Some(&token)).await;
    ws.subscribe("n", "subscription OnNotificationReceived { notificationReceived { id } }", json!({})).await;
    app.streams_waiting(1).await;

    let resp = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    let at_least = |series: &str, min: f64| {
        let v = metric(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
        assert!(v >= min, "{series} = {v}");
    };
    at_least("ecer_graphql_requests_total{operation=\"BoardList\",transport=\"http\"}", 1.0);
    // Names outside the contract are not label values.
    assert!(!text.contains("MadeUpName"));
    at_least("ecer_graphql_requests_total{operation=\"other\",transport=\"http\"}", 1.0);
    at_least("ecer_graphql_requests_total{operation=\"OnNotificationReceived\",transport=\"ws\"}", 1.0);
    at_least("ecer_graphql_errors_total{code=\"GRAPHQL_PARSE_FAILED\"}", 1.0);
    at_least("ecer_graphql_request_duration_seconds_count{operation=\"BoardList\"}", 1.0);
    at_least("ecer_websocket_connections", 1.0);
    at_least("ecer_subscriptions_active", 1.0);
    at_least("ecer_dataloader_batch_size_count{loader=\"user\"}", 0.0);
    at_least("ecer_db_pool_connections{state=\"max\"}", 5.0);
    at_least("ecer_broker_events_received_total", 0.0);
    at_least("ecer_db_statements_total", 1.0);
}

/// The request log (JSON, as operators run it) names the request, operation and duration, and never
/// holds a phone number, password, token or message text.
#[test]
fn request_logs_carry_ids_and_no_personal_data() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ecer-gateway"))
        .env_clear()
        .env("DATABASE_URL", format!("sqlite://{}/log.db?mode=rwc", dir.path().display()))
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let phone_a = phone(7);
    let secret_text = "my secret deal terms 12345";
    let token = rt.block_on(async {
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}/graphql");
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        while http.get(format!("http://127.0.0.1:{port}/healthz")).send().await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "gateway did not start");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let register = "mutation Register($input: RegisterInput!) { register(input: $input) { token user { id } } }";
        let gql = |token: Option<String>, query: &str, variables: serde_json::Value| {
            let mut req = http
                .post(&url)
                .header("x-request-id", "req-from-proxy-42")
                .json(&json!({ "query": query, "variables": variables }));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send()
        };
        let base = format!("http://127.0.0.1:{port}");
        let code_a = crate::common::dev_code(&http, &base, &phone_a, "REGISTER").await;
        let code_b = crate::common::dev_code(&http, &base, &phone(8), "REGISTER").await;
        let a: serde_json::Value = gql(
            None,
            register,
            json!({ "input": { "phone": phone_a, "code": code_a, "password": "correct horse", "nickname": "a" } }),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let b: serde_json::Value = gql(
            None,
            register,
            json!({ "input": { "phone": phone(8), "code": code_b, "password": "correct horse", "nickname": "b" } }),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let token = a["data"]["register"]["token"].as_str().unwrap().to_string();
        let send = "mutation SendMessage($input: SendMessageInput!) { sendMessage(input: $input) { message { id } } }";
        let to = b["data"]["register"]["user"]["id"].clone();
        let resp =
            gql(Some(token.clone()), send, json!({ "input": { "toUserId": to, "body": secret_text } })).await.unwrap();
        assert_eq!(resp.headers()["x-request-id"], "req-from-proxy-42", "the request id comes back");
        token
    });
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let mut log = String::from_utf8_lossy(&out.stdout).to_string();
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = BufReader::new(log.as_bytes())
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect();
    let ops: Vec<&serde_json::Value> = lines.iter().filter(|l| l["fields"]["message"] == "graphql operation").collect();
    assert!(
        ops.iter().any(|l| l["fields"]["operation"] == "SendMessage"
            && l["fields"]["request_id"] == "req-from-proxy-42"
            && l["fields"]["duration_ms"].is_number()),
        "{log}"
    );
    for secret in [phone_a.as_str(), "correct horse", token.as_str(), secret_text] {
        assert!(!log.contains(secret), "the log contains {secret:?}:\n{log}");
    }
}
