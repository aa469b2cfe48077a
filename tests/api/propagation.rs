//! Field errors as the GraphQL specification handles them ("Handling Execution Errors"): a failed
//! field is present as `null`, never left out, and a failed non-null field nulls its nearest
//! nullable parent, over HTTP and WebSocket alike. Owner-only `User` fields are nullable, so one
//! profile fragment serves every viewer.

use serde_json::{Value, json};

use crate::common::{TestApp, phone};

const PROFILE: &str = "query($u: ID!) { user(id: $u) { nickname favorites(first: 1) { edges { cursor } } followerCount settings { recordHistory } sessions { id } } }";
const NESTED: &str =
    "query($u: ID!) { user(id: $u) { nickname posts(first: -5) { edges { cursor } } } me { nickname } }";
const ROOT: &str = "{ __typename identityVerifications { nodes { id } } }";

fn codes_at(body: &Value) -> Vec<(Value, String)> {
    let mut out: Vec<(Value, String)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].clone(), e["extensions"]["code"].as_str().unwrap().to_string()))
        .collect();
    out.sort_by_key(|(p, _)| p.to_string());
    out
}

fn check_profile(body: &Value) {
    // The rest of the profile is kept; each owner-only field is null with its own error.
    assert_eq!(
        body["data"],
        json!({ "user": { "nickname": "alice", "favorites": null, "followerCount": 0, "settings": null, "sessions": null } })
    );
    let forbidden = |f: &str| (json!(["user", f]), "FORBIDDEN".to_string());
    assert_eq!(codes_at(body), vec![forbidden("favorites"), forbidden("sessions"), forbidden("settings")]);
}

fn check_nested(body: &Value) {
    // `posts` is non-null: its failure nulls `user`, its nearest nullable parent; `me` survives.
    assert_eq!(body["data"], json!({ "user": null, "me": { "nickname": "bob" } }));
    assert_eq!(codes_at(body), vec![(json!(["user", "posts"]), "BAD_USER_INPUT".to_string())]);
}

fn check_root(body: &Value) {
    // A non-null root field that fails nulls `data` itself.
    assert_eq!(body["data"], Value::Null);
    assert_eq!(codes_at(body), vec![(json!(["identityVerifications"]), "FORBIDDEN".to_string())]);
}

#[tokio::test]
async fn failed_fields_are_null_and_non_null_failures_null_their_nearest_nullable_parent() {
    let app = TestApp::spawn().await;
    let (alice, alice_id) = app.register(&phone(1), "alice").await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    let vars = json!({ "u": alice_id });

    let (_, body) = app.gql_raw(Some(&bob), PROFILE, vars.clone()).await;
    check_profile(&body);
    let (_, body) = app.gql_raw(Some(&bob), NESTED, vars.clone()).await;
    check_nested(&body);
    let (_, body) = app.gql_raw(Some(&bob), ROOT, json!({})).await;
    check_root(&body);

    // The same answers over a WebSocket.
    let mut ws = app.ws(Some(&bob)).await;
    for (id, (query, variables)) in [(PROFILE, vars.clone()), (NESTED, vars), (ROOT, json!({}))].into_iter().enumerate()
    {
        let id = id.to_string();
        ws.send(json!({ "type": "subscribe", "id": id, "payload": { "query": query, "variables": variables } })).await;
        let msg = ws.recv().await;
        assert_eq!(msg["type"], "next", "{msg}");
        let body = &msg["payload"];
        match id.as_str() {
            "0" => check_profile(body),
            "1" => check_nested(body),
            _ => check_root(body),
        }
        assert_eq!(ws.recv().await["type"], "complete");
    }

    // The owner reads the same fragment whole.
    let (_, body) = app.gql_raw(Some(&alice), PROFILE, json!({ "u": alice_id })).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(body["data"]["user"]["settings"]["recordHistory"], true);
    assert!(body["data"]["user"]["sessions"].as_array().is_some_and(|s| !s.is_empty()));
}
