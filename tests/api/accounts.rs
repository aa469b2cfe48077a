use serde_json::json;

use crate::common::{TestApp, phone};

const REGISTER: &str =
    "mutation($input: RegisterInput!) { register(input: $input) { token expiresAt user { id nickname accountName } } }";
const LOGIN: &str = "mutation($input: LoginInput!) { login(input: $input) { token user { id } } }";
const ME: &str = "{ me { id nickname phone email role } }";

#[tokio::test]
async fn register_login_logout_with_bearer_tokens() {
    let app = TestApp::spawn().await;
    let code = app.phone_code("138 0013 8000", "REGISTER").await;
    let data = app
        .gql(
            None,
            REGISTER,
            json!({ "input": { "phone": "138 0013 8000", "code": code, "password": "correct horse", "accountName": "Alice_T", "email": "Alice@Example.com" } }),
        )
        .await;
    let user_id = data["register"]["user"]["id"].as_str().unwrap().to_string();
    assert_eq!(data["register"]["user"]["accountName"], "alice_t");
    let token = data["register"]["token"].as_str().unwrap().to_string();

    // The phone was normalised to E.164 and is visible to its owner only.
    let me = app.gql(Some(&token), ME, json!({})).await;
    assert_eq!(me["me"]["phone"], "+8613800138000");
    assert_eq!(me["me"]["email"], "alice@example.com");
    assert_eq!(me["me"]["role"], "USER");
    let (other, _) = app.register(&phone(2), "bob").await;
    let seen = app
        .gql(Some(&other), "query($id: ID!) { user(id: $id) { phone email nickname } }", json!({ "id": user_id }))
        .await;
    assert_eq!(seen["user"]["phone"], serde_json::Value::Null);
    assert_eq!(seen["user"]["email"], serde_json::Value::Null);

    // Login with the number in another format, then logout revokes exactly that session.
    let login =
        app.gql(None, LOGIN, json!({ "input": { "phone": "+86 13800138000", "password": "correct horse" } })).await;
    let second = login["login"]["token"].as_str().unwrap().to_string();
    assert_ne!(second, token);
    app.gql(Some(&second), "mutation { logout(input: {}) { loggedOut } }", json!({})).await;
    assert_eq!(app.gql(Some(&second), ME, json!({})).await["me"], serde_json::Value::Null);
    assert_eq!(app.gql(Some(&token), ME, json!({})).await["me"]["id"], user_id.as_str());

    // Logging out everywhere ends the first session too.
    app.gql(Some(&token), "mutation { logout(input: {allDevices: true}) { loggedOut } }", json!({})).await;
    assert_eq!(app.gql(Some(&token), ME, json!({})).await["me"], serde_json::Value::Null);
    let (code, _) = app.gql_err(Some(&token), "mutation { logout(input: {}) { loggedOut } }", json!({})).await;
    assert_eq!(code, "UNAUTHENTICATED");
}

#[tokio::test]
async fn tokens_are_stored_only_as_hashes() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register(&phone(1), "a").await;
    use sea_orm::{ConnectionTrait, Statement};
    let rows = app
        .state
        .db
        .query_all_raw(Statement::from_string(app.state.db.get_database_backend(), "SELECT token_hash FROM sessions"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let stored: String = rows[0].try_get("", "token_hash").unwrap();
    assert_ne!(stored, token);
    assert_eq!(stored, ecer_gateway::auth::hash_token(&token));
}

#[tokio::test]
async fn cookie_sessions_for_web_clients() {
    let app = TestApp::spawn().await;
    app.register(&phone(1), "alice").await;
    let resp = app
        .http
        .post(app.url("/graphql"))
        .json(&json!({ "query": LOGIN, "variables": { "input": { "phone": phone(1), "password": "correct horse", "delivery": "COOKIE" } } }))
        .send()
        .await
        .unwrap();
    let cookie = resp.headers().get("set-cookie").expect("a session cookie").to_str().unwrap().to_string();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        body["data"]["login"]["token"],
        serde_json::Value::Null,
        "cookie delivery keeps the token out of scripts"
    );
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_string();
    assert!(pair.starts_with("ecer_session="));

    // What a browser sends with a fetch from the gateway's own pages.
    let me_from = |c: String, site: &'static str| {
        let app = &app;
        async move {
            let resp = app
                .http
                .post(app.url("/graphql"))
                .header("cookie", c)
                .header("sec-fetch-site", site)
                .json(&json!({ "query": ME }))
                .send()
                .await
                .unwrap();
            (
                resp.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_string()),
                resp.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let me = |c: String| me_from(c, "same-origin");
    assert_eq!(me(pair.clone()).await.1["data"]["me"]["nickname"], "alice");
    // The same cookie on a request another site made counts for nothing.
    assert_eq!(me_from(pair.clone(), "cross-site").await.1["data"]["me"], serde_json::Value::Null);

    // Logout over the cookie clears it and revokes the session server-side.
    let resp = app
        .http
        .post(app.url("/graphql"))
        .header("cookie", pair.clone())
        .header("sec-fetch-site", "same-origin")
        .json(&json!({ "query": "mutation { logout(input: {}) { loggedOut } }" }))
        .send()
        .await
        .unwrap();
    let cleared = resp.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(me(pair).await.1["data"]["me"], serde_json::Value::Null);
}

#[tokio::test]
async fn registration_rules() {
    let app = TestApp::spawn().await;
    app.register(&phone(1), "first").await;
    // Without a proven code nothing is said about the number: the same answer as for a new one.
    let input =
        |phone: &str, code: &str| json!({ "input": { "phone": phone, "code": code, "password": "another pass" } });
    let (known, known_err) = app.gql_err(None, REGISTER, input("13800000001", "000000")).await;
    let (new, new_err) = app.gql_err(None, REGISTER, input(&phone(77), "000000")).await;
    assert_eq!(known, "INVALID_CODE", "{known_err}");
    assert_eq!(
        (known_err["message"].clone(), known_err["extensions"].clone()),
        (new_err["message"].clone(), new_err["extensions"].clone())
    );
    assert_eq!(new, "INVALID_CODE");
    // The holder of the number, once proven, learns it is taken; the same number in another spelling
    // is the same number.
    let code = app.phone_code("13800000001", "REGISTER").await;
    let (code, err) = app.gql_err(None, REGISTER, input("13800000001", &code)).await;
    assert_eq!(code, "CONFLICT", "{err}");
    // Registering needs a code at all.
    let (code, err) =
        app.gql_err(None, REGISTER, json!({ "input": { "phone": phone(6), "password": "another pass" } })).await;
    assert_eq!(code, "GRAPHQL_VALIDATION_FAILED", "{err}");

    for (input, field) in [
        (json!({ "code": "000000", "phone": "12345", "password": "long enough" }), "input.phone"),
        (json!({ "code": "000000", "phone": phone(5), "password": "short" }), "input.password"),
        (
            json!({ "code": "000000", "phone": phone(5), "password": "long enough", "accountName": "x y" }),
            "input.accountName",
        ),
        (
            json!({ "code": "000000", "phone": phone(5), "password": "long enough", "email": "not-an-email" }),
            "input.email",
        ),
        (
            json!({ "code": "000000", "phone": phone(5), "password": "long enough", "nickname": "bad\u{0007}name" }),
            "input.nickname",
        ),
    ] {
        let (code, err) = app.gql_err(None, REGISTER, json!({ "input": input })).await;
        assert_eq!(code, "BAD_USER_INPUT", "{err}");
        assert_eq!(err["extensions"]["field"], field, "{err}");
    }
    // Nothing was half-created by the failures: the number is still free.
    app.register(&phone(5), "fifth").await;
}

#[tokio::test]
async fn wrong_credentials_give_one_generic_error() {
    let app = TestApp::spawn().await;
    app.register(&phone(1), "a").await;
    let wrong_password =
        app.gql_err(None, LOGIN, json!({ "input": { "phone": phone(1), "password": "wrong password" } })).await;
    let unknown_phone =
        app.gql_err(None, LOGIN, json!({ "input": { "phone": phone(9), "password": "correct horse" } })).await;
    let garbage_phone =
        app.gql_err(None, LOGIN, json!({ "input": { "phone": "nope", "password": "correct horse" } })).await;
    assert_eq!(wrong_password.0, "UNAUTHENTICATED");
    assert_eq!(wrong_password.1["message"], unknown_phone.1["message"]);
    assert_eq!(wrong_password.1["message"], garbage_phone.1["message"]);
    assert_eq!(unknown_phone.0, "UNAUTHENTICATED");
}

#[tokio::test]
async fn profile_updates_validate_and_patch() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register(&phone(1), "alice").await;
    const UPDATE: &str = "mutation($input: UpdateProfileInput!) { updateProfile(input: $input) { user { nickname avatarUrl gender signature } } }";
    let data = app
        .gql(
            Some(&token),
            UPDATE,
            json!({ "input": { "nickname": "外貿小王 Wang", "avatarUrl": "https://img.example.com/a.png", "gender": "FEMALE", "signature": "FOB 報價\n歡迎詢盤" } }),
        )
        .await;
    assert_eq!(data["updateProfile"]["user"]["nickname"], "外貿小王 Wang");
    assert_eq!(data["updateProfile"]["user"]["gender"], "FEMALE");

    // Absent fields stay; null clears.
    let data = app.gql(Some(&token), UPDATE, json!({ "input": { "avatarUrl": null } })).await;
    assert_eq!(data["updateProfile"]["user"]["avatarUrl"], serde_json::Value::Null);
    assert_eq!(data["updateProfile"]["user"]["signature"], "FOB 報價\n歡迎詢盤");

    for (input, field) in [
        (json!({ "nickname": "" }), "input.nickname"),
        (json!({ "nickname": "x".repeat(33) }), "input.nickname"),
        (json!({ "avatarUrl": "javascript:alert(1)" }), "input.avatarUrl"),
        (json!({ "signature": "s".repeat(201) }), "input.signature"),
    ] {
        let (code, err) = app.gql_err(Some(&token), UPDATE, json!({ "input": input })).await;
        assert_eq!(code, "BAD_USER_INPUT", "{err}");
        assert_eq!(err["extensions"]["field"], field);
    }
    let (code, _) = app.gql_err(None, UPDATE, json!({ "input": { "nickname": "x" } })).await;
    assert_eq!(code, "UNAUTHENTICATED");
}

#[tokio::test]
async fn create_admin_command_makes_an_admin() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    assert_eq!(app.gql(Some(&admin), ME, json!({})).await["me"]["role"], "ADMIN");
    let mut socket = app.ws(Some(&admin)).await;
    // The command is idempotent: run again on the same phone it re-keys the same account (and signs
    // out the old password's sessions, sockets included).
    let again = ecer_gateway::services::accounts::create_admin(
        &app.state.db,
        &app.state.broker,
        "+8613900000000",
        "new admin password".into(),
        "admin",
    )
    .await
    .map_err(|e| format!("{e:?}"))
    .unwrap();
    assert_eq!(again.role, "ADMIN");
    assert_eq!(socket.closed().await, 4403);
    app.gql(None, LOGIN, json!({ "input": { "phone": "+8613900000000", "password": "new admin password" } })).await;
}

#[tokio::test]
async fn expired_sessions_are_refused() {
    use sea_orm::ConnectionTrait;
    let app = TestApp::spawn().await;
    let (token, _) = app.register(&phone(1), "a").await;
    assert!(app.gql(Some(&token), ME, json!({})).await["me"].is_object());
    app.state.db.execute_unprepared("UPDATE sessions SET expires_at = created_at").await.unwrap();
    assert_eq!(app.gql(Some(&token), ME, json!({})).await["me"], serde_json::Value::Null);
    let (code, _) = app.gql_err(Some(&token), "mutation { logout(input: {}) { loggedOut } }", json!({})).await;
    assert_eq!(code, "UNAUTHENTICATED");
}
