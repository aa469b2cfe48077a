//! Account deletion: sessions end and sockets close at once, identifying fields are erased from the
//! database itself, private data is gone, public content stays without an author, and the phone number
//! can register again.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};

use crate::common::{TestApp, phone};
use crate::live::{CHAT, live_stream};

const DELETE: &str = "mutation($p: String!) { deleteAccount(input: { password: $p }) { deleted } }";

#[tokio::test]
async fn deleting_an_account_erases_it_and_keeps_the_conversation_going() {
    let (app, c) = TestApp::community().await;
    let reg = "mutation($input: RegisterInput!) { register(input: $input) { token user { id } } }";
    let data = app
        .gql(
            None,
            reg,
            json!({ "input": { "phone": phone(50), "password": "correct horse", "nickname": "李雷",
                "accountName": "li_lei", "email": "li.lei@example.com" } }),
        )
        .await;
    let token = data["register"]["token"].as_str().unwrap().to_string();
    let me = data["register"]["user"]["id"].as_str().unwrap().to_string();
    let profile = "mutation { updateProfile(input: { avatarUrl: \"https://img.example/li.png\", signature: \"FOB Ningbo\" }) { user { id } } }";
    app.gql(Some(&token), profile, json!({})).await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let bob_post = app.create_post(&bob, &c.board, "bob's deal").await;
    let my_post = app.create_post(&token, &c.board, "my public post").await;
    let my_comment = app.comment(&token, &bob_post, None, "my public comment").await;
    for (q, v) in [
        ("mutation($u: ID!) { followUser(input: { userId: $u }) { user { id } } }", json!({ "u": bob_id })),
        ("mutation($b: ID!) { followBoard(input: { boardId: $b }) { board { id } } }", json!({ "b": c.board })),
        ("mutation($p: ID!) { favoritePost(input: { postId: $p }) { post { id } } }", json!({ "p": bob_post })),
    ] {
        app.gql(Some(&token), q, v).await;
    }
    app.gql(Some(&bob), "mutation($u: ID!) { followUser(input: { userId: $u }) { user { id } } }", json!({ "u": me }))
        .await;
    let sent = app
        .gql(
            Some(&bob),
            "mutation($to: ID!) { sendMessage(input: { toUserId: $to, body: \"hi\" }) { conversation { id } } }",
            json!({ "to": me }),
        )
        .await;
    app.gql(
        Some(&token),
        "mutation($p: ID!) { recordPostView(input: { postId: $p }) { post { id } } }",
        json!({ "p": bob_post }),
    )
    .await;
    app.gql(Some(&token), "query { search(query: \"FOB\") { edges { cursor } } }", json!({})).await;
    let stream = live_stream(&app, &token).await;
    let mut viewer = app.ws(Some(&bob)).await;
    viewer.subscribe("c", CHAT, json!({ "s": stream })).await;
    let mut my_socket = app.ws(Some(&token)).await;

    // The password is asked for again.
    let (code, err) = app.gql_err(Some(&token), DELETE, json!({ "p": "not my password" })).await;
    assert_eq!((code.as_str(), err["extensions"]["field"].as_str()), ("BAD_USER_INPUT", Some("input.password")));
    assert_eq!(app.gql(Some(&token), DELETE, json!({ "p": "correct horse" })).await["deleteAccount"]["deleted"], true);

    // Signed out everywhere, at once; the live stream ended for its viewers.
    assert_eq!(my_socket.closed().await, 4403);
    assert_eq!(viewer.recv().await, json!({ "type": "complete", "id": "c" }));
    let (code, _) = app.gql_err(Some(&token), "mutation { logout { loggedOut } }", json!({})).await;
    assert_eq!(code, "UNAUTHENTICATED");

    // Public content stays, by nobody.
    let post = app.gql(None, "query($p: ID!) { post(id: $p) { title author { id } } }", json!({ "p": my_post })).await;
    assert_eq!(post["post"], json!({ "title": "my public post", "author": null }));
    let comment =
        app.gql(None, "query($c: ID!) { comment(id: $c) { body author { id } } }", json!({ "c": my_comment })).await;
    assert_eq!(comment["comment"], json!({ "body": "my public comment", "author": null }));
    assert_eq!(app.gql(None, "query($u: ID!) { user(id: $u) { id } }", json!({ "u": me })).await["user"], Value::Null);
    // Bob's side: counts moved, the conversation stays with no peer.
    let bob_view = app
        .gql(
            Some(&bob),
            "query($p: ID!, $c: ID!) { me { followerCount followingCount } post(id: $p) { favoriteCount }
              conversation(id: $c) { peer { id } lastMessage { body } } }",
            json!({ "p": bob_post, "c": sent["sendMessage"]["conversation"]["id"] }),
        )
        .await;
    assert_eq!(bob_view["me"], json!({ "followerCount": 0, "followingCount": 0 }));
    assert_eq!(bob_view["post"]["favoriteCount"], 0);
    assert_eq!(bob_view["conversation"]["peer"], Value::Null);
    assert_eq!(bob_view["conversation"]["lastMessage"]["body"], "hi");
    let board = app.gql(None, "query($b: String!) { board(slug: $b) { followerCount } }", json!({ "b": "b1" })).await;
    assert_eq!(board["board"]["followerCount"], 0);

    // The database itself holds no trace of who it was.
    let db = &app.state.db;
    let backend = db.get_database_backend();
    let id = match ecer_gateway::graphql::ids::decode_any(&me) {
        Some((_, n)) => n,
        None => unreachable!(),
    };
    let p = if backend == DbBackend::Postgres { "$1" } else { "?" };
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!("SELECT phone, password_hash, account_name, email, nickname, avatar_url, signature, deleted_at FROM users WHERE id = {p}"),
            [id.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    for col in ["phone", "password_hash", "account_name", "email", "avatar_url", "signature"] {
        let v: Option<String> = row.try_get("", col).unwrap();
        assert_eq!(v, None, "users.{col}");
    }
    let nickname: String = row.try_get("", "nickname").unwrap();
    assert_eq!(nickname, "");
    for (table, column) in [
        ("sessions", "user_id"),
        ("favorites", "user_id"),
        ("user_follows", "follower_id"),
        ("user_follows", "followee_id"),
        ("board_follows", "user_id"),
        ("notifications", "user_id"),
        ("browse_history", "user_id"),
        ("search_history", "user_id"),
        ("user_devices", "user_id"),
        ("search_documents", "kind = 'user' AND ref_id"),
    ] {
        let n = db
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                format!("SELECT COUNT(*) AS n FROM {table} WHERE {column} = {p}"),
                [id.into()],
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "n")
            .unwrap();
        assert_eq!(n, 0, "{table}.{column}");
    }
    for secret in [
        phone(50),
        "li.lei@example.com".to_string(),
        "li_lei".to_string(),
        "李雷".to_string(),
        "FOB Ningbo".to_string(),
    ] {
        let n = db
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT COUNT(*) AS n FROM users WHERE phone = {p} OR email = {p} OR account_name = {p} OR nickname = {p} OR signature = {p}"
                ),
                if backend == DbBackend::Postgres { vec![secret.clone().into()] } else { vec![secret.clone().into(); 5] },
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "n")
            .unwrap();
        assert_eq!(n, 0, "{secret} is still in users");
    }

    // The number is free again: a new account, a new id.
    let (_, new_id) = app.register(&phone(50), "new owner").await;
    assert_ne!(new_id, me);
}
