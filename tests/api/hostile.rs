//! Issue 11's regressions, through the public HTTP and WebSocket API: no document, however deep,
//! takes the gateway down on any transport; GET never writes; another site cannot act for a member;
//! responses keep the document's order.
//!
//! A stack overflow aborts the whole test process, so "the server keeps answering" is also what
//! the test binary finishing proves; each case still checks the gateway answers the next request.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{TestApp, Ws, phone};

/// The depth every construct is sent at (the issue's acceptance figure).
const LEVELS: usize = 100_000;
const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

fn nested(open: &str, close: &str, n: usize, inner: &str) -> String {
    let mut s = String::with_capacity((open.len() + close.len()) * n + inner.len());
    for _ in 0..n {
        s.push_str(open);
    }
    s.push_str(inner);
    for _ in 0..n {
        s.push_str(close);
    }
    s
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Every construct that nests, `n` levels deep, with the code it must be refused with.
fn deep_documents(n: usize) -> Vec<(&'static str, String, &'static str)> {
    // A chain of fragments, each adding two levels (a selection set and an inline fragment) and
    // spreading the next: only the chain is deep, no single definition is.
    let chain = |links: usize| {
        let mut doc = String::from("{ ...F0 }");
        for i in 0..links {
            doc.push_str(&format!(" fragment F{i} on Query {{ ... on Query {{ ...F{} }} }}", i + 1));
        }
        doc.push_str(&format!(" fragment F{links} on Query {{ __typename }}"));
        doc
    };
    let cycle = |links: usize| {
        let mut doc = String::from("{ ...F0 }");
        for i in 0..links {
            doc.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", (i + 1) % links));
        }
        doc
    };
    // Each fragment spreads the next twice: 2^30 fields once expanded, from a few hundred bytes.
    let mut fan_out = String::from("{ ...F0 }");
    for i in 0..30 {
        fan_out.push_str(&format!(" fragment F{i} on Query {{ ...F{n} ...F{n} }}", n = i + 1));
    }
    fan_out.push_str(" fragment F30 on Query { __typename }");
    vec![
        (
            "list values in an argument",
            format!("{{ __type(name: {}) {{ name }} }}", nested("[", "]", n, "\"x\"")),
            "QUERY_TOO_DEEP",
        ),
        (
            "object values in a directive argument",
            format!("{{ __typename @include(if: {}) }}", nested("{a:", "}", n, "true")),
            "QUERY_TOO_DEEP",
        ),
        (
            "list types in a variable definition",
            format!("query($v: {}) {{ __typename }}", nested("[", "]", n, "Int")),
            "QUERY_TOO_DEEP",
        ),
        (
            "list values in a variable default",
            format!("query($v: [Int] = {}) {{ __typename }}", nested("[", "]", n, "1")),
            "QUERY_TOO_DEEP",
        ),
        ("selection sets", nested("{a", "}", n, ""), "QUERY_TOO_DEEP"),
        ("inline fragments", nested("{...on Query", "}", n, "__typename"), "QUERY_TOO_DEEP"),
        ("a short chain of fragment spreads", chain(40), "QUERY_TOO_DEEP"),
        // At the default MAX_DOCUMENT_TOKENS a chain this long is refused for its size first;
        // `long_chains_and_cycles_are_refused_without_recursion` raises it to reach the walk.
        ("a chain of fragment spreads", chain(n), if n > 1_000 { "QUERY_TOO_COMPLEX" } else { "QUERY_TOO_DEEP" }),
        ("a fragment cycle", cycle(3), "GRAPHQL_VALIDATION_FAILED"),
        (
            "a fragment cycle through every fragment",
            cycle(n),
            if n > 1_000 { "QUERY_TOO_COMPLEX" } else { "GRAPHQL_VALIDATION_FAILED" },
        ),
        ("fragment fan-out", fan_out, "QUERY_TOO_COMPLEX"),
    ]
}

/// A gateway that accepts bodies big enough to carry 100,000 levels of every construct.
async fn roomy() -> TestApp {
    TestApp::spawn_with(|c| c.max_body_bytes = 32 << 20).await
}

async fn alive(app: &TestApp) {
    assert_eq!(app.gql(None, "{ __typename }", json!({})).await, json!({ "__typename": "Query" }));
}

fn first_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or("<none>")
}

/// POSTs `body` (JSON text) under `accept`; returns status, headers and the parsed body.
async fn post_text(
    app: &TestApp,
    body: String,
    accept: &str,
) -> (reqwest::StatusCode, reqwest::header::HeaderMap, Value) {
    let resp = app
        .http
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .header("accept", accept)
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let text = resp.text().await.unwrap();
    (status, headers, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text:.300}")))
}

/// Percent-encodes what a query string cannot carry raw; brackets stay as they are (the URL
/// standard allows them), so a deep document costs one byte per bracket in the request line.
fn url_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => out.push(b as char),
            b'{' | b'}' | b'[' | b']' | b'(' | b')' | b'.' | b'_' | b'-' | b'!' | b'$' | b':' | b'@' | b',' | b'*' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// GETs /graphql with these parameters; returns status, headers and the body as text.
async fn get_params(
    app: &TestApp,
    params: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> (reqwest::StatusCode, reqwest::header::HeaderMap, String) {
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", url_component(v))).collect();
    let mut req = app.http.get(format!("{}?{}", app.url("/graphql"), query.join("&")));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, resp.text().await.unwrap())
}

/// What a GET can carry: the request head is bounded by `HTTP_MAX_HEADER_BYTES` (431 beyond, from
/// the HTTP layer: `an_over_long_get_is_refused`), less room for the other headers.
fn get_limit(app: &TestApp) -> usize {
    app.state.config.http_max_header_bytes - 1024
}

/// The deepest version of a construct that still fits in a GET of at most `limit` bytes.
fn fits_in_a_get(what: &str, limit: usize) -> Option<(String, &'static str)> {
    [LEVELS, 20_000, 5_000, 1_000, 200].into_iter().find_map(|n| {
        let (_, doc, code) = deep_documents(n).into_iter().find(|(w, _, _)| *w == what)?;
        (url_component(&doc).len() + 100 < limit).then_some((doc, code))
    })
}

#[tokio::test]
async fn every_deep_construct_is_refused_over_get_and_post() {
    let app = roomy().await;
    for (what, doc, code) in deep_documents(LEVELS) {
        // POST, under both media types: 400 with the code and no data, or 200 with the same code.
        let body = json!({ "query": doc }).to_string();
        let (status, headers, resp) = post_text(&app, body.clone(), GRAPHQL_RESPONSE_JSON).await;
        assert_eq!((status.as_u16(), first_code(&resp)), (400, code), "POST {what}: {resp:.300}");
        assert!(headers["content-type"].to_str().unwrap().starts_with(GRAPHQL_RESPONSE_JSON));
        assert!(resp.get("data").is_none(), "{what}: {resp:.300}");
        let (status, _, resp) = post_text(&app, body, "application/json").await;
        assert_eq!((status.as_u16(), first_code(&resp)), (200, code), "POST (json) {what}: {resp:.300}");
        alive(&app).await;

        // GET, as deep as a request target can carry.
        let Some((get_doc, code)) = fits_in_a_get(what, get_limit(&app)) else { continue };
        let (status, _, text) = get_params(&app, &[("query", &get_doc)], &[("accept", GRAPHQL_RESPONSE_JSON)]).await;
        let resp: Value = serde_json::from_str(&text).unwrap();
        assert_eq!((status.as_u16(), first_code(&resp)), (400, code), "GET {what}: {text:.300}");
        alive(&app).await;
    }
}

/// A GET whose request target is longer than the HTTP layer takes (a 100,000-level document) is
/// refused there, with a 4xx, and the server goes on.
#[tokio::test]
async fn an_over_long_get_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = roomy().await;
    let doc = nested("{...on Query", "}", LEVELS, "__typename");
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!("GET /graphql?query={} HTTP/1.1\r\nHost: {}\r\n\r\n", url_component(&doc), app.addr);
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(head.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    let status: u16 = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    assert!((400..500).contains(&status), "{answer:.200}");
    alive(&app).await;
}

#[tokio::test]
async fn deep_documents_in_a_batch_are_each_refused_and_the_rest_runs() {
    let app = roomy().await;
    let cases = deep_documents(LEVELS);
    // MAX_BATCH_SIZE is 10: two batches, each ending with an ordinary operation.
    for chunk in cases.chunks(9) {
        let mut batch: Vec<Value> = chunk.iter().map(|(_, doc, _)| json!({ "query": doc })).collect();
        batch.push(json!({ "query": "{ ok: __typename }" }));
        let (status, _, resp) = post_text(&app, Value::Array(batch).to_string(), GRAPHQL_RESPONSE_JSON).await;
        assert_eq!(status, 200);
        let answers = resp.as_array().unwrap();
        assert_eq!(answers.len(), chunk.len() + 1);
        for ((what, _, code), answer) in chunk.iter().zip(answers) {
            assert_eq!(first_code(answer), *code, "batch {what}: {answer:.300}");
        }
        assert_eq!(answers[chunk.len()], json!({ "data": { "ok": "Query" } }));
    }
    alive(&app).await;
}

#[tokio::test]
async fn a_deep_document_is_never_registered_as_a_persisted_query() {
    let app = roomy().await;
    for (what, doc, code) in deep_documents(LEVELS) {
        let hash = sha256_hex(&doc);
        let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
        let (_, _, resp) =
            post_text(&app, json!({ "query": doc, "extensions": ext }).to_string(), "application/json").await;
        assert_eq!(first_code(&resp), code, "APQ registration of {what}");
        // Nothing was stored under its hash.
        let (_, _, resp) = post_text(&app, json!({ "extensions": ext }).to_string(), "application/json").await;
        assert_eq!(first_code(&resp), "PERSISTED_QUERY_NOT_FOUND", "{what}");
        let (_, _, text) = get_params(&app, &[("extensions", &ext.to_string())], &[]).await;
        assert_eq!(first_code(&serde_json::from_str(&text).unwrap()), "PERSISTED_QUERY_NOT_FOUND", "{what}");
    }
    alive(&app).await;
}

#[tokio::test]
async fn trusted_document_mode_refuses_deep_documents_before_looking_them_up() {
    let app = TestApp::spawn_with(|c| {
        c.max_body_bytes = 32 << 20;
        c.trusted_documents = true;
    })
    .await;
    let (id, _) = manifest_entry("Me");
    for (what, doc, code) in deep_documents(LEVELS) {
        let (_, _, resp) = post_text(&app, json!({ "query": doc }).to_string(), "application/json").await;
        assert_eq!(first_code(&resp), code, "trusted mode, {what}");
        // A real manifest id with a deep body is refused for its shape, not run as the manifest's.
        let (_, _, resp) = post_text(
            &app,
            json!({ "query": doc, "documentId": format!("sha256:{id}") }).to_string(),
            "application/json",
        )
        .await;
        assert_eq!(first_code(&resp), code, "trusted mode with an id, {what}");
    }
    // The manifest's own operations still run.
    let (status, _, resp) =
        post_text(&app, json!({ "documentId": format!("sha256:{id}") }).to_string(), "application/json").await;
    assert_eq!(status, 200);
    assert_eq!(resp, json!({ "data": { "me": null } }));
}

#[tokio::test]
async fn multipart_operations_are_bounded_too() {
    let app = roomy().await;
    let (token, _) = app.register(&phone(1), "uploader").await;
    for (what, doc, code) in deep_documents(LEVELS) {
        let (status, resp) = app.upload_raw(Some(&token), &doc, json!({}), json!({}), vec![], true).await;
        assert_eq!(first_code(&resp), code, "multipart {what} ({status}): {resp:.300}");
    }
    alive(&app).await;
}

/// A graphql-ws (legacy protocol) socket past `connection_ack`.
async fn legacy_ws(app: &TestApp) -> Ws {
    let mut ws = app.ws_with(Some("graphql-ws"), &[]).await;
    ws.send(json!({ "type": "connection_init", "payload": {} })).await;
    assert_eq!(ws.recv().await["type"], "connection_ack");
    ws
}

#[tokio::test]
async fn websocket_subscribe_is_bounded_in_both_protocols() {
    let app = roomy().await;
    for legacy in [false, true] {
        let mut ws = if legacy { legacy_ws(&app).await } else { app.ws(None).await };
        let (start, next) = if legacy { ("start", "data") } else { ("subscribe", "next") };
        for (i, (what, doc, code)) in deep_documents(LEVELS).into_iter().enumerate() {
            let id = format!("deep{i}");
            ws.send(json!({ "type": start, "id": id, "payload": { "query": doc } })).await;
            let msg = ws.recv().await;
            assert_eq!(
                (msg["type"].as_str(), msg["id"].as_str()),
                (Some("error"), Some(id.as_str())),
                "{what}: {msg:.300}"
            );
            assert_eq!(msg["payload"][0]["extensions"]["code"], code, "legacy={legacy} {what}: {msg:.300}");
        }
        // The same socket still runs operations.
        ws.send(json!({ "type": start, "id": "after", "payload": { "query": "{ __typename }" } })).await;
        let msg = ws.recv().await;
        assert_eq!(msg["type"], next, "{msg}");
        assert_eq!(msg["payload"]["data"], json!({ "__typename": "Query" }));
    }
    alive(&app).await;
}

/// With MAX_DOCUMENT_TOKENS out of the way, a 100,000-link chain of spreads and a 100,000-fragment
/// cycle reach the fragment walk, which must not recurse: the chain is too deep, the cycle a cycle.
#[tokio::test]
async fn long_chains_and_cycles_are_refused_without_recursion() {
    let app = TestApp::spawn_with(|c| {
        c.max_body_bytes = 32 << 20;
        c.max_document_tokens = 100_000_000;
    })
    .await;
    let mut flat_chain = String::from("{ ...F0 }");
    let mut cycle = String::from("{ ...F0 }");
    for i in 0..LEVELS {
        flat_chain.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", i + 1));
        cycle.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", (i + 1) % LEVELS));
    }
    flat_chain.push_str(&format!(" fragment F{LEVELS} on Query {{ __typename }}"));
    for (doc, code) in [(flat_chain, "QUERY_TOO_DEEP"), (cycle, "GRAPHQL_VALIDATION_FAILED")] {
        let (_, _, resp) = post_text(&app, json!({ "query": doc }).to_string(), "application/json").await;
        assert_eq!(first_code(&resp), code, "{resp:.300}");
    }
    alive(&app).await;
}

/// JSON bodies and variables are bounded by serde_json's recursion limit (128 levels), on every
/// transport; within it, deep variables are coerced against their types with a coded error.
#[tokio::test]
async fn deep_json_variables_are_refused_with_a_code() {
    let app = roomy().await;
    let deep_json = nested("{\"a\":", "}", LEVELS, "1");
    let deep_list = nested("[", "]", LEVELS, "1");
    // A GET carries less (see `get_limit`), still far past the limit.
    let get_json = nested("{\"a\":", "}", 1_000, "1");
    let get_list = nested("[", "]", 10_000, "1");
    for (variables, in_get) in [(&deep_json, &get_json), (&deep_list, &get_list)] {
        let body = format!("{{\"query\":\"query($v: [Int]) {{ __typename }}\",\"variables\":{{\"v\":{variables}}}}}");
        let (status, _, resp) = post_text(&app, body, GRAPHQL_RESPONSE_JSON).await;
        assert_eq!((status.as_u16(), first_code(&resp)), (400, "BAD_REQUEST"), "{resp}");
        let (status, _, text) = get_params(
            &app,
            &[("query", "query($v: [Int]) { __typename }"), ("variables", &format!("{{\"v\":{in_get}}}"))],
            &[],
        )
        .await;
        assert_eq!(status, 400, "{text:.300}");
        assert_eq!(first_code(&serde_json::from_str(&text).unwrap()), "BAD_REQUEST");
    }
    // Deep but within serde_json's limit: the variable does not fit its type.
    let within = nested("[", "]", 120, "1");
    let body = format!("{{\"query\":\"query($v: [[Int]]) {{ __typename }}\",\"variables\":{{\"v\":{within}}}}}");
    let (status, _, resp) = post_text(&app, body, "application/json").await;
    assert_eq!(status, 200);
    assert!(resp["errors"][0]["extensions"]["code"].is_string(), "{resp}");
    let input = nested("{\"nickname\":", "}", 120, "\"x\"");
    let body = format!(
        "{{\"query\":\"mutation($i: UpdateProfileInput!) {{ updateProfile(input: $i) {{ user {{ id }} }} }}\",\"variables\":{{\"i\":{input}}}}}"
    );
    let (_, _, resp) = post_text(&app, body, "application/json").await;
    assert!(resp["errors"][0]["extensions"]["code"].is_string(), "{resp}");
    // Multipart `operations` and a WebSocket message go through the same parser.
    let (token, _) = app.register(&phone(1), "m").await;
    let form = reqwest::multipart::Form::new()
        .text("operations", format!("{{\"query\":\"{{ __typename }}\",\"variables\":{deep_json}}}"))
        .text("map", "{}");
    let resp = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(&token)
        .header("apollo-require-preflight", "true")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(first_code(&resp.json().await.unwrap()), "BAD_REQUEST");
    let mut ws = app.ws(None).await;
    let frame = format!(
        "{{\"type\":\"subscribe\",\"id\":\"1\",\"payload\":{{\"query\":\"{{ __typename }}\",\"variables\":{deep_json}}}}}"
    );
    ws.send_raw(tokio_tungstenite::tungstenite::Message::Text(frame.into())).await;
    assert_eq!(ws.closed().await, 4400);
    alive(&app).await;
}

// ---------------------------------------------------------------------------------------------
// GET never writes.

const SET_SIGNATURE: &str = "mutation M { updateProfile(input: { signature: \"via GET\" }) { user { signature } } }";

async fn signature(app: &TestApp, token: &str) -> Value {
    app.gql(Some(token), "{ me { signature } }", json!({})).await["me"]["signature"].clone()
}

fn manifest_entry(name: &str) -> (String, String) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/frontend-contract/persisted-query-manifest.json"
    ))
    .unwrap();
    let manifest: Value = serde_json::from_str(&text).unwrap();
    let op = manifest["operations"].as_array().unwrap().iter().find(|o| o["name"] == name).unwrap();
    (op["id"].as_str().unwrap().to_string(), op["body"].as_str().unwrap().to_string())
}

fn assert_405(status: reqwest::StatusCode, headers: &reqwest::header::HeaderMap, body: &str, what: &str) {
    assert_eq!(status, 405, "{what}: {body}");
    assert_eq!(headers.get("allow").map(|v| v.to_str().unwrap()), Some("POST"), "{what}");
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(first_code(&body), "BAD_REQUEST", "{what}");
}

#[tokio::test]
async fn get_never_runs_a_mutation_or_subscription() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register(&phone(1), "member").await;
    let bearer = format!("Bearer {token}");
    let auth: &[(&str, &str)] = &[("authorization", &bearer)];
    let anonymous = SET_SIGNATURE.replace("mutation M", "mutation");
    let two = format!("query Q {{ __typename }} {SET_SIGNATURE}");
    let reversed = format!("{SET_SIGNATURE} query Q {{ __typename }}");
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("a named mutation", vec![("query", SET_SIGNATURE)]),
        ("an anonymous mutation", vec![("query", &anonymous)]),
        ("the mutation of two, by operationName", vec![("query", &two), ("operationName", "M")]),
        ("the mutation of two, listed first", vec![("query", &reversed), ("operationName", "M")]),
        ("a named mutation with its operationName", vec![("query", SET_SIGNATURE), ("operationName", "M")]),
        ("a subscription", vec![("query", "subscription S { notificationReceived { id } }")]),
    ];
    for (what, params) in &cases {
        let (status, headers, body) = get_params(&app, params, auth).await;
        assert_405(status, &headers, &body, what);
    }
    // The member's own page (same origin, cookie) gets the same answer.
    let cookie = format!("ecer_session={token}");
    let (status, headers, body) =
        get_params(&app, &[("query", SET_SIGNATURE)], &[("cookie", &cookie), ("sec-fetch-site", "same-origin")]).await;
    assert_405(status, &headers, &body, "same-origin cookie");

    // A persisted query (APQ) whose hash names the mutation: registered by a POST that ran signed
    // out (and so changed nothing), then named by hash in a GET with the member's token.
    let hash = sha256_hex(SET_SIGNATURE);
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let (_, _, resp) =
        post_text(&app, json!({ "query": SET_SIGNATURE, "extensions": ext }).to_string(), "application/json").await;
    assert_eq!(first_code(&resp), "UNAUTHENTICATED", "{resp}");
    let (status, headers, body) = get_params(&app, &[("extensions", &ext.to_string())], auth).await;
    assert_405(status, &headers, &body, "an APQ hash naming a mutation");

    assert_eq!(signature(&app, &token).await, Value::Null, "a GET changed the profile");
    // The query of a two-operation document still runs over GET.
    let (status, _, body) = get_params(&app, &[("query", &two), ("operationName", "Q")], auth).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, r#"{"data":{"__typename":"Query"}}"#));
    // Over POST the same mutation works: the cases above were refused for their method alone.
    app.gql(Some(&token), SET_SIGNATURE, json!({})).await;
    assert_eq!(signature(&app, &token).await, "via GET");
}

#[tokio::test]
async fn get_never_runs_a_trusted_document_that_mutates() {
    // Members sign up through the manifest's `Register`; a plain instance on the same database is quicker.
    let open = TestApp::spawn().await;
    let (token, _) = open.register(&phone(1), "member").await;
    let app = open.another_instance(|c| c.trusted_documents = true).await;
    let bearer = format!("Bearer {token}");
    let (id, _) = manifest_entry("UpdateProfile");
    let variables = json!({ "input": { "signature": "via GET" } }).to_string();
    let document_id = format!("sha256:{id}");
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": id } }).to_string();
    for params in [vec![("documentId", document_id.as_str())], vec![("extensions", ext.as_str())]] {
        let mut params = params;
        params.push(("variables", &variables));
        let (status, headers, body) = get_params(&app, &params, &[("authorization", &bearer)]).await;
        assert_405(status, &headers, &body, "a trusted document that mutates");
    }
    let (me, _) = manifest_entry("Me");
    let resp = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(&token)
        .json(&json!({ "documentId": format!("sha256:{me}") }))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"]["me"]["signature"], Value::Null, "{body}");
}

// ---------------------------------------------------------------------------------------------
// Another site cannot act for the member: the session cookie counts only when the request proves
// it comes from the gateway's own pages (or ALLOWED_ORIGINS).

const SEARCH: &str = "{ search(query: \"cross site probe\") { edges { cursor } } }";
const HISTORY: &str = "{ me { searchHistory(first: 10) { edges { node { query } } } } }";

async fn history(app: &TestApp, token: &str) -> Vec<String> {
    let data = app.gql(Some(token), HISTORY, json!({})).await;
    data["me"]["searchHistory"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["query"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_cross_site_get_runs_signed_out() {
    let app = TestApp::spawn_with(|c| c.allowed_origins = vec!["https://app.example".into()]).await;
    let (token, id) = app.register(&phone(1), "member").await;
    let cookie = format!("ecer_session={token}");
    let own = format!("http://{}", app.addr);
    let me = |headers: Vec<(&'static str, String)>| {
        let (app, cookie) = (&app, cookie.clone());
        async move {
            let mut all: Vec<(&str, &str)> = vec![("cookie", &cookie)];
            all.extend(headers.iter().map(|(k, v)| (*k, v.as_str())));
            let (status, _, body) = get_params(app, &[("query", "{ me { id } }")], &all).await;
            assert_eq!(status, 200, "{body}");
            serde_json::from_str::<Value>(&body).unwrap()["data"]["me"]["id"].clone()
        }
    };
    // Not proven: a link or an <img> on another site, an opaque origin, a foreign origin, and a
    // request that says nothing.
    for headers in [
        vec![("sec-fetch-site", "cross-site".to_string())],
        vec![("origin", "null".to_string())],
        vec![("origin", "https://evil.example".to_string()), ("sec-fetch-site", "same-origin".to_string())],
        vec![("origin", format!("http://{}.evil.example", app.addr.ip()))],
        vec![],
    ] {
        assert_eq!(me(headers.clone()).await, Value::Null, "signed in with {headers:?}");
    }
    // Proven: the gateway's own origin, an allowed origin, or a browser saying same-origin,
    // same-site or none (typed into the address bar).
    for headers in [
        vec![("origin", own.clone())],
        vec![("origin", "https://app.example".to_string())],
        vec![("sec-fetch-site", "same-origin".to_string())],
        vec![("sec-fetch-site", "same-site".to_string())],
        vec![("sec-fetch-site", "none".to_string())],
    ] {
        assert_eq!(me(headers.clone()).await, json!(id), "signed out with {headers:?}");
    }

    // A cross-site navigation to a search does not write the member's search history.
    for headers in [[("sec-fetch-site", "cross-site")], [("origin", "null")], [("origin", "https://evil.example")]] {
        let mut all = vec![("cookie", cookie.as_str())];
        all.extend(headers);
        let (status, _, body) = get_params(&app, &[("query", SEARCH)], &all).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(history(&app, &token).await, Vec::<String>::new());
    // The member's own search (same origin) is recorded: the check above could have seen one.
    let (status, _, _) =
        get_params(&app, &[("query", SEARCH)], &[("cookie", &cookie), ("sec-fetch-site", "same-origin")]).await;
    assert_eq!(status, 200);
    assert_eq!(history(&app, &token).await, vec!["cross site probe".to_string()]);
}

#[tokio::test]
async fn a_cross_site_post_runs_signed_out() {
    let (app, c) = TestApp::community().await;
    let (token, _) = app.register(&phone(2), "member").await;
    let cookie = format!("ecer_session={token}");
    let like = json!({ "query": "mutation($p: ID!) { likePost(input: { postId: $p }) { post { likeCount } } }", "variables": { "p": c.post } });
    let post = |headers: Vec<(&'static str, String)>| {
        let (app, cookie, like) = (&app, cookie.clone(), like.clone());
        async move {
            let mut req = app.http.post(app.url("/graphql")).header("cookie", cookie).json(&like);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            req.send().await.unwrap().json::<Value>().await.unwrap()
        }
    };
    for headers in [
        vec![("origin", "null".to_string())],
        vec![("origin", "https://evil.example".to_string())],
        vec![("sec-fetch-site", "cross-site".to_string())],
        vec![("origin", "https://evil.example".to_string()), ("sec-fetch-site", "same-origin".to_string())],
    ] {
        let resp = post(headers.clone()).await;
        assert_eq!(first_code(&resp), "UNAUTHENTICATED", "{headers:?}: {resp}");
    }
    let likes = app.gql(None, "query($p: ID!) { post(id: $p) { likeCount } }", json!({ "p": c.post })).await;
    assert_eq!(likes["post"]["likeCount"], 0);
    // The same request from the gateway's own page acts; so does a bearer token from anywhere.
    let resp = post(vec![("origin", format!("http://{}", app.addr))]).await;
    assert_eq!(resp["data"]["likePost"]["post"]["likeCount"], 1, "{resp}");
    let (other, _) = app.register(&phone(3), "app user").await;
    let resp = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(&other)
        .header("origin", "https://evil.example")
        .json(&like)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(resp["data"]["likePost"]["post"]["likeCount"], 2, "{resp}");
}

#[tokio::test]
async fn a_cross_site_websocket_runs_signed_out() {
    let app = TestApp::spawn().await;
    let (token, id) = app.register(&phone(1), "member").await;
    let cookie = format!("ecer_session={token}");
    let own = format!("http://{}", app.addr);
    for (origin, expected) in [("https://evil.example", Value::Null), ("null", Value::Null), (own.as_str(), json!(id))]
    {
        let mut ws = app.ws_with(Some("graphql-transport-ws"), &[("cookie", &cookie), ("origin", origin)]).await;
        ws.send(json!({ "type": "connection_init" })).await;
        assert_eq!(ws.recv().await["type"], "connection_ack");
        ws.subscribe("1", "{ me { id } }", json!({})).await;
        assert_eq!(ws.next_data("1").await["me"]["id"], expected, "origin {origin}");
    }
}

// ---------------------------------------------------------------------------------------------
// Responses keep the document's order (GraphQL spec, Serialized Map Ordering).

#[tokio::test]
async fn responses_keep_the_document_order_over_http_and_websocket() {
    let (app, c) = TestApp::community().await;
    let cases = [
        (
            "{ posts(first: 1) { edges { node { title id } } } __typename }".to_string(),
            format!(r#"{{"posts":{{"edges":[{{"node":{{"title":"t","id":"{}"}}}}]}},"__typename":"Query"}}"#, c.post),
        ),
        ("{ z: __typename a: __typename m: __typename }".into(), r#"{"z":"Query","a":"Query","m":"Query"}"#.into()),
        (
            "{ zz: __typename ...F b: __typename ... on Query { y: __typename } } fragment F on Query { x: __typename }"
                .into(),
            r#"{"zz":"Query","x":"Query","b":"Query","y":"Query"}"#.into(),
        ),
        (
            format!(r#"{{ post(id: "{}") {{ title author {{ nickname __typename }} id }} }}"#, c.post),
            format!(
                r#"{{"post":{{"title":"t","author":{{"nickname":"alice","__typename":"User"}},"id":"{}"}}}}"#,
                c.post
            ),
        ),
    ];
    let mut ws = app.ws(None).await;
    for (i, (query, data)) in cases.iter().enumerate() {
        let resp = app.http.post(app.url("/graphql")).json(&json!({ "query": query })).send().await.unwrap();
        assert_eq!(resp.text().await.unwrap(), format!(r#"{{"data":{data}}}"#), "POST {query}");
        let (_, _, text) = get_params(&app, &[("query", query)], &[]).await;
        assert_eq!(text, format!(r#"{{"data":{data}}}"#), "GET {query}");
        ws.subscribe(&i.to_string(), query, json!({})).await;
        // The previous operation's `complete` may come first.
        let frame = loop {
            let text = ws.recv_text().await;
            if !text.contains(r#""type":"complete""#) {
                break text;
            }
        };
        assert_eq!(frame, format!(r#"{{"type":"next","id":"{i}","payload":{{"data":{data}}}}}"#), "WS {query}");
    }
    // Errors come first, then data.
    for query in [
        "{ a: __typename search(query: \"x\", first: -1) { edges { cursor } } }",
        "mutation { b: createPost(input: { boardId: \"x\", title: \"t\", body: \"b\" }) { post { id } } }",
    ] {
        let resp = app.http.post(app.url("/graphql")).json(&json!({ "query": query })).send().await.unwrap();
        let text = resp.text().await.unwrap();
        assert!(text.starts_with(r#"{"errors":[{"message":"#), "{text}");
        assert!(text.contains(r#"],"data":"#), "{text}");
    }
}

/// Refusals from the router itself are coded like every other: a method a route does not take
/// (405, with `Allow`) and a path no route serves (404).
#[tokio::test]
async fn the_routers_own_refusals_are_coded() {
    let app = TestApp::spawn().await;
    for method in ["PUT", "DELETE", "PATCH", "OPTIONS"] {
        let resp = app
            .http
            .request(method.parse().unwrap(), app.url("/graphql"))
            .header("content-type", "application/json")
            .body("{\"query\":\"{ __typename }\"}")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405, "{method}");
        assert!(resp.headers()["allow"].to_str().unwrap().contains("POST"), "{method}");
        assert_eq!(first_code(&resp.json().await.unwrap()), "BAD_REQUEST", "{method}");
    }
    let resp = app.http.get(app.url("/no/such/route")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(first_code(&resp.json().await.unwrap()), "NOT_FOUND");
}

/// A required variable left out of the request is the client's mistake: BAD_USER_INPUT, not
/// INTERNAL (async-graphql reports it only where a field reads the variable).
#[tokio::test]
async fn a_missing_required_variable_is_bad_user_input() {
    let app = TestApp::spawn().await;
    for (query, variables) in [
        ("query($id: ID!) { post(id: $id) { id } }", json!({})),
        ("query($id: ID!) { post(id: $id) { id } }", json!({ "id": null })),
        ("mutation($i: FollowUserInput!) { followUser(input: $i) { __typename } }", json!({})),
    ] {
        let (code, err) = app.gql_err(None, query, variables).await;
        assert!(
            matches!(code.as_str(), "BAD_USER_INPUT" | "BAD_REQUEST" | "GRAPHQL_VALIDATION_FAILED"),
            "{query}: {err}"
        );
    }
}

/// A refusal sent before the body was read (406, any multipart refusal) says `Connection: close`:
/// the server will not read another request on that connection, and a keep-alive client must not
/// send one into it.
#[tokio::test]
async fn refusals_that_leave_the_body_unread_close_the_connection() {
    let app = TestApp::spawn().await;
    let body = json!({ "query": "{ __typename }", "pad": "x".repeat(200_000) }).to_string();
    let resp = app
        .http
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .header("accept", "text/html")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 406);
    assert_eq!(resp.headers().get("connection").map(|v| v.to_str().unwrap()), Some("close"));
    let resp = app
        .http
        .post(app.url("/graphql"))
        .header("content-type", "multipart/form-data; boundary=x")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers().get("connection").map(|v| v.to_str().unwrap()), Some("close"));
    alive(&app).await;
}

/// Text holding U+0000 is refused as the client's input on both back ends (PostgreSQL cannot store
/// it and used to answer INTERNAL), never as a server fault.
#[tokio::test]
async fn the_nul_character_is_bad_user_input_not_internal() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register(&phone(1), "member").await;
    let (_, body) = app.gql_raw(None, "query($s: String!) { board(slug: $s) { id } }", json!({ "s": "a\u{0}b" })).await;
    assert!(
        body["errors"].as_array().is_none_or(|e| e.iter().all(|e| e["extensions"]["code"] != "INTERNAL")),
        "{body}"
    );
    let (_, body) = app
        .gql_raw(
            Some(&token),
            "mutation($i: UpdateProfileInput!) { updateProfile(input: $i) { user { signature } } }",
            json!({ "i": { "signature": "nul\u{0}here" } }),
        )
        .await;
    assert!(
        body["errors"].as_array().is_none_or(|e| e.iter().all(|e| e["extensions"]["code"] != "INTERNAL")),
        "{body}"
    );
    let (_, body) = app.gql_raw(None, "{ search(query: \"a\\u0000b\") { edges { cursor } } }", json!({})).await;
    assert!(
        body["errors"].as_array().is_none_or(|e| e.iter().all(|e| e["extensions"]["code"] != "INTERNAL")),
        "{body}"
    );
}
