//! Sign-in security: repeated failures lock a number for a while; a sign-in from a new device makes a
//! security notification that cannot be switched off.

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::common::{TestApp, phone};

const LOGIN: &str = "mutation($p: String!, $pw: String!) { login(input: { phone: $p, password: $pw }) { token } }";

#[tokio::test]
async fn repeated_failures_lock_the_number_for_a_while() {
    let app = TestApp::spawn().await;
    app.register(&phone(1), "a").await;
    for _ in 0..5 {
        let (code, _) = app.gql_err(None, LOGIN, json!({ "p": phone(1), "pw": "guess" })).await;
        assert_eq!(code, "UNAUTHENTICATED");
    }
    // Locked: even the right password is refused, with when to come back.
    let (code, err) = app.gql_err(None, LOGIN, json!({ "p": phone(1), "pw": "correct horse" })).await;
    assert_eq!(code, "ACCOUNT_LOCKED");
    let retry = err["extensions"]["retryAfter"].as_u64().unwrap();
    assert!((800..=900).contains(&retry), "{retry}");
    // A number nobody registered locks the same way: the lock tells nothing about which numbers exist.
    for _ in 0..5 {
        app.gql_err(None, LOGIN, json!({ "p": phone(9), "pw": "guess" })).await;
    }
    assert_eq!(app.gql_err(None, LOGIN, json!({ "p": phone(9), "pw": "guess" })).await.0, "ACCOUNT_LOCKED");
    // Other numbers are not affected; the database holds no phone number in the clear.
    app.register(&phone(2), "b").await;
    app.gql(None, LOGIN, json!({ "p": phone(2), "pw": "correct horse" })).await;
    let stored = app
        .state
        .db
        .query_all_raw(sea_orm::Statement::from_string(
            app.state.db.get_database_backend(),
            "SELECT phone_hash FROM login_failures",
        ))
        .await
        .unwrap();
    for row in stored {
        let key: String = row.try_get("", "phone_hash").unwrap();
        // Not the number in the clear, in any of its forms (the national 11 digits would show in
        // each of them; three digits would match a random hash now and then).
        for n in [1, 9] {
            let national = phone(n).chars().filter(char::is_ascii_digit).collect::<String>();
            assert!(!key.contains(&national[national.len() - 11..]), "{key}");
        }
        // Keyed: a plain SHA-256 of the number would be reversed by hashing every number.
        for n in [1, 9] {
            assert_ne!(key, ecer_gateway::auth::hash_token(&phone(n)), "an unkeyed hash of a phone number");
        }
    }
    // When the lock has passed, the right password works and the count starts again.
    app.state.db.execute_unprepared("UPDATE login_failures SET locked_until = window_start").await.unwrap();
    app.gql(None, LOGIN, json!({ "p": phone(1), "pw": "correct horse" })).await;
    assert_eq!(app.gql_err(None, LOGIN, json!({ "p": phone(1), "pw": "guess" })).await.0, "UNAUTHENTICATED");
}

#[tokio::test]
async fn a_new_device_makes_a_security_notification() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register(&phone(1), "a").await;
    // Even with notices switched off.
    let mute = "mutation { updateNotificationSettings(input: { settings: [{ category: NOTICES, enabled: false }] }) { settings { enabled } } }";
    app.gql(Some(&token), mute, json!({})).await;
    let login_from = |ua: &'static str| {
        let app = &app;
        async move {
            let resp: Value = app
                .http
                .post(app.url("/graphql"))
                .header("user-agent", ua)
                .json(&json!({ "query": LOGIN, "variables": { "p": phone(1), "pw": "correct horse" } }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert!(resp["errors"].is_null(), "{resp}");
        }
    };
    let notices = "{ notifications(first: 10) { edges { node { kind body } } } }";
    login_from("Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0").await;
    let list = app.gql(Some(&token), notices, json!({})).await;
    let edges = list["notifications"]["edges"].as_array().unwrap().clone();
    assert_eq!(edges.len(), 1, "{list}");
    assert_eq!(edges[0]["node"]["kind"], "NEW_DEVICE_SIGN_IN");
    assert!(edges[0]["node"]["body"].as_str().unwrap().contains("Firefox/140.0"));
    // The same device again is not news.
    login_from("Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0").await;
    let list = app.gql(Some(&token), notices, json!({})).await;
    assert_eq!(list["notifications"]["edges"].as_array().unwrap().len(), 1);
}

/// Re-entering the password (deleteAccount) is no way around the sign-in lock: its failures count
/// toward the same lock, and once locked both answer ACCOUNT_LOCKED.
#[tokio::test]
async fn password_confirmations_count_toward_the_sign_in_lock() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register(&phone(1), "alice").await;
    let delete = "mutation($p: String!) { deleteAccount(input: { password: $p }) { deleted } }";
    for _ in 0..ecer_gateway::services::signin::MAX_FAILURES {
        let (code, err) = app.gql_err(Some(&token), delete, json!({ "p": "wrong guess" })).await;
        assert_eq!(code, "BAD_USER_INPUT", "{err}");
    }
    let (code, _) = app.gql_err(Some(&token), delete, json!({ "p": "correct horse" })).await;
    assert_eq!(code, "ACCOUNT_LOCKED", "even the right password waits out the lock");
    assert_eq!(app.gql_err(None, LOGIN, json!({ "p": phone(1), "pw": "correct horse" })).await.0, "ACCOUNT_LOCKED");
    // Mixed: sign-in failures and confirmation failures add up.
    let (token, _) = app.register(&phone(2), "bob").await;
    for _ in 0..ecer_gateway::services::signin::MAX_FAILURES - 1 {
        app.gql_err(None, LOGIN, json!({ "p": phone(2), "pw": "guess" })).await;
    }
    assert_eq!(app.gql_err(Some(&token), delete, json!({ "p": "wrong" })).await.0, "BAD_USER_INPUT");
    assert_eq!(app.gql_err(Some(&token), delete, json!({ "p": "correct horse" })).await.0, "ACCOUNT_LOCKED");
}
