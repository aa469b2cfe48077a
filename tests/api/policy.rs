//! Privacy policy versions: published by ADMINs, archived, readable by everyone; a major version is
//! pushed to every member and blocks their writes (not their reads) until they accept it.

use serde_json::json;

use crate::common::{TestApp, phone};

const PUBLISH: &str = "mutation($b: String!, $m: Boolean!) { publishPolicyVersion(input: { body: $b, major: $m }) { policy { version major } } }";
const ACCEPT: &str = "mutation($v: Int!) { acceptPrivacyPolicy(input: { version: $v }) { consent { acceptedVersion requiredVersion } } }";

#[tokio::test]
async fn versions_consent_and_the_write_block() {
    let (app, c) = TestApp::community().await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    let (code, _) = app.gql_err(Some(&bob), PUBLISH, json!({ "b": "v1", "m": true })).await;
    assert_eq!(code, "FORBIDDEN");
    let v1 = app.gql(Some(&c.admin), PUBLISH, json!({ "b": "Version 1: we record what you read.", "m": false })).await;
    assert_eq!(v1["publishPolicyVersion"]["policy"], json!({ "version": 1, "major": false }));
    // A minor version asks nothing of anyone.
    app.gql(
        Some(&bob),
        "mutation($p: ID!) { likePost(input: { postId: $p }) { post { id } } }",
        json!({ "p": c.post }),
    )
    .await;

    // A major one is pushed to connected members...
    let mut ws = app.ws(Some(&bob)).await;
    ws.subscribe("n", "subscription { notificationReceived { kind body } }", json!({})).await;
    app.streams_waiting(1).await;
    let mute = "mutation { updateNotificationSettings(input: { settings: [{ category: NOTICES, enabled: false }] }) { settings { enabled } } }";
    app.gql(Some(&bob), mute, json!({})).await;
    app.gql(Some(&c.admin), PUBLISH, json!({ "b": "Version 2: we now also record searches.", "m": true })).await;
    let n = ws.next_data("n").await["notificationReceived"].clone();
    assert_eq!(n["kind"], "POLICY_UPDATED", "even with notices switched off");

    // ...and until they accept it they can read but not write.
    let (code, err) = app
        .gql_err(
            Some(&bob),
            "mutation($p: ID!) { unlikePost(input: { postId: $p }) { post { id } } }",
            json!({ "p": c.post }),
        )
        .await;
    assert_eq!(code, "POLICY_CONSENT_REQUIRED");
    assert_eq!(err["extensions"]["version"], 2);
    app.gql(Some(&bob), "{ posts(first: 1) { edges { cursor } } }", json!({})).await;
    // Privacy actions stay open.
    app.gql(Some(&bob), "mutation { deleteSearchHistory(input: {}) { deletedCount } }", json!({})).await;
    let consent = app.gql(Some(&bob), "{ policyConsent { acceptedVersion requiredVersion } }", json!({})).await;
    assert_eq!(consent["policyConsent"], json!({ "acceptedVersion": null, "requiredVersion": 2 }));
    let accepted = app.gql(Some(&bob), ACCEPT, json!({ "v": 2 })).await;
    assert_eq!(accepted["acceptPrivacyPolicy"]["consent"], json!({ "acceptedVersion": 2, "requiredVersion": null }));
    app.gql(
        Some(&bob),
        "mutation($p: ID!) { unlikePost(input: { postId: $p }) { post { id } } }",
        json!({ "p": c.post }),
    )
    .await;

    // New members accept the version in force when they register.
    let (carol, _) = app.register(&phone(3), "carol").await;
    let consent = app.gql(Some(&carol), "{ policyConsent { acceptedVersion requiredVersion } }", json!({})).await;
    assert_eq!(consent["policyConsent"], json!({ "acceptedVersion": 2, "requiredVersion": null }));

    // Everyone reads the current policy and the archive.
    let read = app
        .gql(None, "{ privacyPolicy { version } old: privacyPolicy(version: 1) { body } privacyPolicyVersions { version major } }", json!({}))
        .await;
    assert_eq!(read["privacyPolicy"]["version"], 2);
    assert_eq!(read["old"]["body"], "Version 1: we record what you read.");
    assert_eq!(
        read["privacyPolicyVersions"],
        json!([{ "version": 2, "major": true }, { "version": 1, "major": false }])
    );
    let (code, _) = app.gql_err(Some(&bob), ACCEPT, json!({ "v": 9 })).await;
    assert_eq!(code, "NOT_FOUND");
}
