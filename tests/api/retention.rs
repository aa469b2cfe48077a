//! Retention: each kind of personal data goes when its period ends (the purge runs with a moved
//! clock, the results are read through the API), and only one instance purges at a time.

use chrono::{Duration, Utc};
use ecer_gateway::services::retention::{self, Periods};
use serde_json::json;

use crate::common::{TestApp, phone};

const MINE: &str = "{ me { sessions { id } browseHistory(first: 10) { edges { node { id } } }
    searchHistory(first: 10) { edges { node { id } } } dataExports { id downloadUrl } } }";

#[tokio::test]
async fn personal_data_goes_when_its_period_ends_and_not_before() {
    let (app, c) = TestApp::community().await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    let view = "mutation($p: ID!) { recordPostView(input: { postId: $p }) { post { id } } }";
    app.gql(Some(&bob), view, json!({ "p": c.post })).await;
    app.gql(Some(&bob), "{ search(query: \"FOB\") { edges { cursor } } }", json!({})).await;
    let export =
        app.gql(Some(&bob), "mutation { requestDataExport(input: {}) { export { downloadUrl } } }", json!({})).await;
    let download = export["requestDataExport"]["export"]["downloadUrl"].as_str().unwrap().to_string();
    let fetch_export = || app.http.get(app.url(&download)).bearer_auth(&bob).send();
    assert_eq!(fetch_export().await.unwrap().status(), 200);

    // A message photo bob uploads and never sends.
    let upload =
        "mutation($file: Upload!) { uploadMedia(input: { file: $file, kind: MESSAGE_PHOTO }) { media { url } } }";
    let draft = app.upload(&bob, upload, json!({}), ("0", "d.png", "image/png", crate::common::png("draft"))).await;
    let draft_url = draft["uploadMedia"]["media"]["url"].as_str().unwrap().to_string();
    let fetch_draft = || app.http.get(&draft_url).bearer_auth(&bob).send();
    assert_eq!(fetch_draft().await.unwrap().status(), 200);

    let wrong = "mutation($i: LoginInput!) { login(input: $i) { token } }";
    app.gql_err(None, wrong, json!({ "i": { "phone": phone(2), "password": "not it" } })).await;

    let periods = Periods::from_config(&app.state.config);
    let now = Utc::now();
    // Ten days on: the export (72 hours) is gone with its file; history (180 days) and the session
    // (30 days) stay.
    let purged = retention::purge(&app.state.db, &app.state.media, &periods, now + Duration::days(10)).await.unwrap();
    assert_eq!((purged.exports, purged.browse_history, purged.search_history, purged.sessions), (1, 0, 0, 0));
    assert_eq!(purged.login_failures, 1, "the failed sign-in's window and lock have passed");
    assert!(purged.sms_outbox >= 1, "the SMS of the sign-up code, a day old: {purged:?}");
    assert_eq!(purged.unsent_message_media, 1, "the photo never sent");
    assert_eq!(fetch_draft().await.unwrap().status(), 404);
    let mine = app.gql(Some(&bob), MINE, json!({})).await["me"].clone();
    assert_eq!(mine["browseHistory"]["edges"].as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine["searchHistory"]["edges"].as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine["dataExports"], json!([]));
    assert_eq!(fetch_export().await.unwrap().status(), 404);

    // Two hundred days on: history and expired sessions are gone. Bob signs in again to look.
    let purged = retention::purge(&app.state.db, &app.state.media, &periods, now + Duration::days(200)).await.unwrap();
    assert_eq!((purged.browse_history, purged.search_history), (1, 1));
    assert!(purged.sessions >= 2, "every session of the test has expired by then: {purged:?}");
    assert_eq!(app.gql(Some(&bob), "{ me { id } }", json!({})).await["me"], json!(null), "the expired session is gone");
    let login = app
        .gql(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { token } }",
            json!({ "i": { "phone": phone(2), "password": "correct horse" } }),
        )
        .await;
    let again = login["login"]["token"].as_str().unwrap();
    let mine = app.gql(Some(again), MINE, json!({})).await["me"].clone();
    assert_eq!(mine["browseHistory"]["edges"], json!([]));
    assert_eq!(mine["searchHistory"]["edges"], json!([]));
    assert_eq!(mine["sessions"].as_array().unwrap().len(), 1);
    // Running it again finds nothing more: the purge is idempotent.
    let purged = retention::purge(&app.state.db, &app.state.media, &periods, now + Duration::days(200)).await.unwrap();
    assert_eq!((purged.browse_history, purged.search_history, purged.exports), (0, 0, 0));
}

#[tokio::test]
async fn one_instance_purges_at_a_time() {
    let app = TestApp::spawn().await;
    let other = app.another_instance(|_| {}).await;
    let now = Utc::now();
    assert!(retention::take_lease(&app.state.db, "a", now).await.unwrap());
    assert!(!retention::take_lease(&other.state.db, "b", now).await.unwrap(), "a holds it");
    assert!(retention::take_lease(&app.state.db, "a", now + Duration::minutes(5)).await.unwrap(), "a renews");
    // A holder that stops renewing (it crashed) loses the lease when it lapses.
    let later = now + Duration::minutes(40);
    assert!(retention::take_lease(&other.state.db, "b", later).await.unwrap());
    assert!(!retention::take_lease(&app.state.db, "a", later).await.unwrap());
}
