//! Persisted documents: the contract manifest is current, automatic persisted queries (Apollo's
//! protocol) over POST and GET, trusted-documents mode over HTTP and WebSocket, and the switches for
//! introspection and GraphiQL.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{TestApp, phone};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn sha(q: &str) -> String {
    Sha256::digest(q.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn manifest() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(format!("{ROOT}/frontend-contract/persisted-query-manifest.json")).unwrap(),
    )
    .unwrap()
}

async fn post(app: &TestApp, body: Value) -> (u16, Value) {
    let resp = app.http.post(app.url("/graphql")).json(&body).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn the_manifest_is_generated_from_the_contract_and_current() {
    let out = tokio::process::Command::new("node")
        .args(["contract-manifest.mjs", &format!("{ROOT}/frontend-contract/operations")])
        .current_dir(format!("{ROOT}/tests/js"))
        .output()
        .await
        .expect("run node (run `npm ci --prefix tests/js` first)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let fresh: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        fresh,
        manifest(),
        "frontend-contract/persisted-query-manifest.json is stale: run `npm run --prefix tests/js manifest`"
    );
    for op in fresh["operations"].as_array().unwrap() {
        assert_eq!(op["id"].as_str().unwrap(), sha(op["body"].as_str().unwrap()));
    }
}

#[tokio::test]
async fn automatic_persisted_queries_over_post_and_get() {
    let app = TestApp::spawn().await;
    let q = "query Boards { boards(first: 2) { edges { cursor } } }";
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": sha(q) } });

    // Hash only, unknown: the client is told to send the query.
    let (_, body) = post(&app, json!({ "extensions": ext })).await;
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound");
    assert_eq!(body["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_FOUND");
    // Hash and query: registered and run.
    let (status, body) = post(&app, json!({ "query": q, "extensions": ext })).await;
    assert_eq!((status, body["data"]["boards"]["edges"].clone()), (200, json!([])));
    // Hash only again, now over GET as Apollo Client does for queries.
    let url = format!("{}?extensions={}", app.url("/graphql"), urlencoding(&ext.to_string()));
    let body: Value = app.http.get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["data"]["boards"]["edges"], json!([]));
    // A query that does not match its hash is refused.
    let (_, body) = post(&app, json!({ "query": "{ me { id } }", "extensions": ext })).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_HASH_MISMATCH");
    let bad = json!({ "persistedQuery": { "version": 2, "sha256Hash": sha(q) } });
    let (_, body) = post(&app, json!({ "extensions": bad })).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_SUPPORTED");
}

fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn trusted_documents_mode_runs_only_the_manifest() {
    let app = TestApp::spawn_with(|c| c.trusted_documents = true).await;
    let ops = manifest();
    let board_list = ops["operations"].as_array().unwrap().iter().find(|o| o["name"] == "BoardList").unwrap().clone();
    let id = board_list["id"].as_str().unwrap();

    // By codegen's documentId, by Apollo's hash, or with the exact manifest body.
    let vars = json!({ "first": 5, "after": null });
    for body in [
        json!({ "documentId": format!("sha256:{id}"), "variables": vars }),
        json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": id } }, "variables": vars }),
        json!({ "query": board_list["body"], "variables": vars }),
    ] {
        let (status, resp) = post(&app, body.clone()).await;
        assert_eq!(status, 200, "{body}: {resp}");
        assert!(resp["data"]["boards"]["edges"].is_array(), "{resp}");
    }
    // Anything else is refused before it is parsed.
    let (_, resp) = post(&app, json!({ "query": "{ boards(first: 1) { edges { cursor } } }" })).await;
    assert_eq!(resp["errors"][0]["extensions"]["code"], "TRUSTED_DOCUMENT_REQUIRED");
    let (_, resp) = post(&app, json!({ "documentId": format!("sha256:{}", sha("{ me { id } }")) })).await;
    assert_eq!(resp["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_FOUND");
    // APQ registration cannot smuggle a new document in.
    let q = "{ me { id } }";
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": sha(q) } });
    let (_, resp) = post(&app, json!({ "query": q, "extensions": ext })).await;
    assert_eq!(resp["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_FOUND");

    // Over the WebSocket too.
    let open = app.another_instance(|_| {}).await;
    let (token, _) = open.register(&phone(1), "a").await;
    let mut ws = app.ws(Some(&token)).await;
    ws.send(
        json!({ "type": "subscribe", "id": "1", "payload": { "query": "subscription { messageReceived { id } }" } }),
    )
    .await;
    let err = ws.recv().await;
    assert_eq!((err["type"].as_str(), err["id"].as_str()), (Some("error"), Some("1")));
    assert_eq!(err["payload"][0]["extensions"]["code"], "TRUSTED_DOCUMENT_REQUIRED");
    let sub = ops["operations"].as_array().unwrap().iter().find(|o| o["name"] == "OnMessageReceived").unwrap().clone();
    ws.send(json!({ "type": "subscribe", "id": "2", "payload": { "documentId": sub["id"], "variables": {} } })).await;
    ws.quiet(200).await;
}

#[tokio::test]
async fn introspection_graphiql_and_alias_limits_are_configurable() {
    let open = TestApp::spawn().await;
    let data = open.gql(None, "{ __schema { queryType { name } } }", json!({})).await;
    assert_eq!(data["__schema"]["queryType"]["name"], "Query");
    assert_eq!(open.http.get(open.url("/")).send().await.unwrap().status(), 200);

    let closed = TestApp::spawn_with(|c| {
        c.introspection = false;
        c.graphiql = false;
    })
    .await;
    let (_, body) = closed.gql_raw(None, "{ __schema { queryType { name } } }", json!({})).await;
    assert_eq!(body["data"]["__schema"], Value::Null, "{body}");
    assert_eq!(closed.http.get(closed.url("/")).send().await.unwrap().status(), 404);
    // Ordinary queries still run.
    closed.gql(None, "{ boards(first: 1) { edges { cursor } } }", json!({})).await;

    // Aliases: the contract's heaviest operation passes, a flood of aliases does not.
    let many: String = (0..31).map(|i| format!("a{i}: boards(first: 1) {{ edges {{ cursor }} }} ")).collect();
    let (code, err) = open.gql_err(None, &format!("{{ {many} }}"), json!({})).await;
    assert_eq!(code, "QUERY_TOO_MANY_ALIASES", "{err}");
    let half: String = (0..16).map(|i| format!("a{i}: boards(first: 1) {{ edges {{ cursor }} }} ")).collect();
    let hidden = format!("query {{ ...F ... on Query {{ ...F }} }} fragment F on Query {{ {half} }}");
    let (code, _) = open.gql_err(None, &hidden, json!({})).await;
    assert_eq!(code, "QUERY_TOO_MANY_ALIASES", "aliases in fragments count per spread");
    let few: String = (0..5).map(|i| format!("a{i}: boards(first: 1) {{ edges {{ cursor }} }} ")).collect();
    open.gql(None, &format!("{{ {few} }}"), json!({})).await;
}

/// Apollo Client and urql, the libraries the web app uses, speak APQ with the gateway: the first
/// client registers its query after a miss, the second is served by hash alone (over GET).
#[tokio::test]
async fn apollo_client_and_urql_persisted_queries_work() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.create_board(&admin, "deals", "Deals").await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js");
    let out = tokio::process::Command::new("node")
        .args(["apq-clients.mjs", &app.url("/graphql")])
        .current_dir(dir)
        .output()
        .await
        .expect("run node (run `npm ci --prefix tests/js` first)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    for lib in ["apollo", "urql"] {
        let results = seen[lib]["results"].as_array().unwrap();
        assert_eq!(results.len(), 2, "{lib}: {seen}");
        for r in results {
            assert_eq!(r["boards"]["edges"][0]["node"]["slug"], "deals", "{lib}: {seen}");
        }
        let requests = seen[lib]["requests"].as_array().unwrap();
        // First client: hash only (miss), then hash + query. Second client: hash only, served.
        assert!(
            requests[0]["notFound"].as_bool().unwrap() && !requests[0]["hasQuery"].as_bool().unwrap(),
            "{lib}: {seen}"
        );
        assert!(requests[1]["hasQuery"].as_bool().unwrap(), "{lib}: {seen}");
        let last = requests.last().unwrap();
        assert!(!last["hasQuery"].as_bool().unwrap() && !last["notFound"].as_bool().unwrap(), "{lib}: {seen}");
        assert_eq!(last["method"], "GET", "{lib}: hashed queries go over GET");
        assert_eq!(requests.len(), 3, "{lib}: {seen}");
    }
}

#[tokio::test]
async fn anonymous_gets_of_persisted_documents_are_cacheable_and_revalidate() {
    let app = TestApp::spawn().await;
    let q = "query Boards { boards(first: 2) { edges { cursor } } }";
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": sha(q) } });
    post(&app, json!({ "query": q, "extensions": ext })).await;
    let url = format!("{}?extensions={}", app.url("/graphql"), urlencoding(&ext.to_string()));
    // A client that keeps no cookies, as a CDN or an app.
    let http = reqwest::Client::new();

    let first = http.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let h = first.headers().clone();
    assert_eq!(h["cache-control"], "public, max-age=5");
    assert_eq!(h["vary"], "Accept, Authorization, Cookie");
    assert!(h.get("set-cookie").is_none(), "a shared answer hands out no visitor cookie");
    let etag = h["etag"].to_str().unwrap().to_string();
    let body = first.text().await.unwrap();
    assert!(body.contains("\"boards\""), "{body}");

    // Revalidation: 304 and no body while nothing changed, the same tag on a full answer.
    let again = http.get(&url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag.as_str());
    assert!(again.text().await.unwrap().is_empty());
    let full = http.get(&url).send().await.unwrap();
    assert_eq!(full.headers()["etag"], etag.as_str());
    // Something changed: a new tag.
    let admin = app.admin().await;
    app.create_board(&admin, "b1", "Board").await;
    let changed = http.get(&url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()["etag"], etag.as_str());

    // Never shared: a signed-in request, a query sent as text, an answer with errors.
    let (token, _) = app.register(&phone(1), "member").await;
    let mine = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(mine.status(), 200);
    assert!(mine.headers().get("cache-control").is_none() && mine.headers().get("etag").is_none());
    let text = format!("{}?query={}", app.url("/graphql"), urlencoding(q));
    let raw = http.get(text).send().await.unwrap();
    assert!(raw.headers().get("etag").is_none());
    let unknown = json!({ "persistedQuery": { "version": 1, "sha256Hash": sha("{ __typename }") } });
    let url = format!("{}?extensions={}", app.url("/graphql"), urlencoding(&unknown.to_string()));
    let missing = http.get(url).send().await.unwrap();
    assert!(missing.headers().get("etag").is_none());
    assert!(missing.text().await.unwrap().contains("PERSISTED_QUERY_NOT_FOUND"));
}
