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
    let code = app.phone_code(&phone(50), "REGISTER").await;
    let data = app
        .gql(
            None,
            reg,
            json!({ "input": { "phone": phone(50), "code": code, "password": "correct horse", "nickname": "李雷",
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

    // Nothing keyed by the number outlives the account: its codes and its SMS are gone.
    let key = ecer_gateway::services::signin::phone_key(app.state.media.sealer(), &phone(50));
    for table in ["phone_codes", "sms_outbox"] {
        let db = &app.state.db;
        let backend = db.get_database_backend();
        let p = if backend == DbBackend::Postgres { "$1" } else { "?" };
        let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE phone_key = {p}");
        let row = db.query_one_raw(Statement::from_sql_and_values(backend, sql, [key.clone().into()])).await.unwrap();
        assert_eq!(row.unwrap().try_get::<i64>("", "n").unwrap(), 0, "{table}");
    }

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

/// Where an erased member's id may still appear, and why; every other user column holds nothing of
/// theirs. The test below fails for a table or user column that is not listed here.
const USER_COLUMNS: &[(&str, &str, Fate)] = &[
    ("audit_log", "actor_id", Fate::Kept("staff accountability: who acted stays on record")),
    ("audit_log", "subject_user_id", Fate::Kept("staff accountability: whose data was read or decided")),
    ("board_follows", "user_id", Fate::Gone),
    ("boards", "created_by", Fate::Kept("a public board; its page shows no creator")),
    ("browse_history", "user_id", Fate::Gone),
    ("comment_likes", "user_id", Fate::Gone),
    ("comments", "author_id", Fate::Kept("public speech stays, shown without author, in no by-author list")),
    ("conversation_members", "user_id", Fate::Kept("the peer's conversation goes on; read cursors only")),
    ("conversation_members", "peer_id", Fate::Kept("the peer's conversation goes on, with no peer shown")),
    ("conversations", "user_low", Fate::Kept("the peer's conversation goes on, with no peer shown")),
    ("conversations", "user_high", Fate::Kept("the peer's conversation goes on, with no peer shown")),
    ("data_exports", "user_id", Fate::Gone),
    ("email_codes", "user_id", Fate::Gone),
    ("email_outbox", "user_id", Fate::Gone),
    ("favorites", "user_id", Fate::Gone),
    ("hidden_content", "author_id", Fate::Gone),
    ("hidden_content", "hidden_by", Fate::Kept("staff accountability: which moderator hid someone's words")),
    ("identity_verifications", "user_id", Fate::Gone),
    ("identity_verifications", "reviewer_id", Fate::Kept("a staff decision about someone else")),
    ("live_chat_messages", "user_id", Fate::Kept("public speech stays, shown without author")),
    ("live_streams", "host_id", Fate::Kept("a public, ended stream, shown without host")),
    ("media", "owner_id", Fate::Kept("only public images of kept posts; private files and avatars are gone")),
    ("messages", "sender_id", Fate::Kept("the peer's conversation goes on, with no sender shown")),
    ("notification_mutes", "user_id", Fate::Gone),
    ("notifications", "user_id", Fate::Gone),
    ("notifications", "actor_id", Fate::Gone),
    ("policy_acceptances", "user_id", Fate::Gone),
    ("post_likes", "user_id", Fate::Gone),
    ("posts", "author_id", Fate::Kept("public speech stays, shown without author, in no by-author list")),
    ("developer_apps", "owner_id", Fate::Gone),
    ("developer_apps", "reviewer_id", Fate::Kept("staff accountability: which admin approved an app")),
    ("oauth_grants", "user_id", Fate::Gone),
    ("push_outbox", "user_id", Fate::Gone),
    ("push_subscriptions", "user_id", Fate::Gone),
    ("reports", "reporter_id", Fate::Gone),
    ("reports", "handled_by", Fate::Kept("staff accountability: which moderator settled a report")),
    ("request_log", "user_id", Fate::Gone),
    ("search_history", "user_id", Fate::Gone),
    ("live_chat_mutes", "user_id", Fate::Gone),
    ("notice_broadcasts", "sent_by", Fate::Kept("staff accountability: which ADMIN sent a notice")),
    ("sessions", "user_id", Fate::Gone),
    ("user_blocks", "blocker_id", Fate::Gone),
    ("user_blocks", "blocked_id", Fate::Gone),
    ("user_devices", "user_id", Fate::Gone),
    ("user_follows", "follower_id", Fate::Gone),
    ("user_follows", "followee_id", Fate::Gone),
    ("user_settings", "user_id", Fate::Gone),
];

/// Integer columns ending in `_id` that name something other than a member.
const NOT_USER_COLUMNS: &[&str] = &[
    "app_id",
    "board_id",
    "broadcast_id",
    "comment_id",
    "conversation_id",
    "grant_id",
    "last_message_id",
    "last_read_message_id",
    "message_id",
    "parent_id",
    "post_id",
    "ref_id",
    "session_id",
    "stream_id",
    "subscription_id",
    "target_id",
];

#[derive(Debug, Clone, Copy)]
enum Fate {
    Gone,
    Kept(&'static str),
}

/// Every (table, integer column) of the entity crate that may hold a member's id: `*_id` columns
/// other than the known non-member ones, `created_by`, `user_low`, `user_high`.
fn user_columns_of_the_entity_crate() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("entity/src");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let src = std::fs::read_to_string(&path).unwrap();
        let Some(table) = src.split("table_name = \"").nth(1).and_then(|s| s.split('"').next()) else { continue };
        for line in src.lines() {
            let line = line.trim();
            let Some(rest) = line.strip_prefix("pub ") else { continue };
            let Some((name, ty)) = rest.split_once(':') else { continue };
            let ty = ty.trim().trim_end_matches(',');
            if !matches!(ty, "i64" | "Option<i64>") || name == "id" {
                continue;
            }
            if (name.ends_with("_id") && !NOT_USER_COLUMNS.contains(&name))
                || matches!(name, "created_by" | "sent_by" | "user_low" | "user_high" | "handled_by" | "hidden_by")
            {
                found.push((table.to_string(), name.to_string()));
            }
        }
    }
    found.sort();
    found
}

async fn count_where(app: &TestApp, table: &str, column: &str, id: i64) -> i64 {
    let db = &app.state.db;
    let backend = db.get_database_backend();
    let p = if backend == DbBackend::Postgres { "$1" } else { "?" };
    db.query_one_raw(Statement::from_sql_and_values(
        backend,
        format!("SELECT COUNT(*) AS n FROM {table} WHERE {column} = {p}"),
        [id.into()],
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get::<i64>("", "n")
    .unwrap()
}

#[tokio::test]
async fn erasure_walks_every_table_with_a_user_column() {
    // Every user column of the entity crate has a fate, and no listed one is stale.
    let found = user_columns_of_the_entity_crate();
    for (table, column) in &found {
        assert!(
            USER_COLUMNS.iter().any(|(t, c, _)| t == table && c == column),
            "{table}.{column} may hold a member's id: say in USER_COLUMNS what erasure does to it"
        );
    }
    for (t, c, _) in USER_COLUMNS {
        assert!(found.iter().any(|(ft, fc)| ft == t && fc == c), "{t}.{c} is listed but no longer exists");
    }

    let (app, c) = TestApp::community().await;
    let (alice, alice_gid) = app.register(&phone(60), "alice").await;
    let (bob, bob_id) = app.register(&phone(61), "bob").await;
    let (_, carol_id) = app.register(&phone(62), "carol").await;
    let (moderator, _) = app.user_with_role(&phone(63), "MODERATOR").await;
    let alice_id = ecer_gateway::graphql::ids::decode_any(&alice_gid).unwrap().1;
    let bob_post = app.create_post(&bob, &c.board, "bob's deal").await;
    let bob_comment = app.comment(&bob, &bob_post, None, "bob's comment").await;
    let my_post = app.create_post(&alice, &c.board, "alice's post").await;
    let alice_comment = app.comment(&alice, &bob_post, None, "alice's comment").await;
    for (q, v) in [
        ("mutation($p: ID!) { likePost(input: { postId: $p }) { post { id } } }", json!({ "p": bob_post })),
        ("mutation($c: ID!) { likeComment(input: { commentId: $c }) { comment { id } } }", json!({ "c": bob_comment })),
        ("mutation($p: ID!) { favoritePost(input: { postId: $p }) { post { id } } }", json!({ "p": bob_post })),
        ("mutation($u: ID!) { followUser(input: { userId: $u }) { user { id } } }", json!({ "u": bob_id })),
        ("mutation($b: ID!) { followBoard(input: { boardId: $b }) { board { id } } }", json!({ "b": c.board })),
        ("mutation($u: ID!) { blockUser(input: { userId: $u }) { user { id } } }", json!({ "u": carol_id })),
        (
            "mutation($to: ID!) { sendMessage(input: { toUserId: $to, body: \"hi\" }) { conversation { id } } }",
            json!({ "to": bob_id }),
        ),
        ("mutation($p: ID!) { recordPostView(input: { postId: $p }) { post { id } } }", json!({ "p": bob_post })),
        ("mutation { updateSettings(input: { recordHistory: true }) { settings { recordHistory } } }", json!({})),
        ("mutation { requestDataExport { export { id } } }", json!({})),
        ("mutation { addEmail(input: { email: \"alice@example.com\" }) { user { id } } }", json!({})),
    ] {
        app.gql(Some(&alice), q, v).await;
    }
    app.gql(Some(&alice), "query { search(query: \"deal\") { edges { cursor } } }", json!({})).await;
    app.gql(
        Some(&bob),
        "mutation($p: ID!) { likePost(input: { postId: $p }) { post { id } } }",
        json!({ "p": my_post }),
    )
    .await;
    let stream = crate::live::live_stream(&app, &alice).await;
    let say = "mutation($s: ID!) { sendLiveChatMessage(input: { streamId: $s, body: \"hello\" }) { message { id } } }";
    app.gql(Some(&alice), say, json!({ "s": stream })).await;
    // Muted in someone else's room.
    let bobs_room = crate::live::live_stream(&app, &bob).await;
    let mute = "mutation($s: ID!, $u: ID!) { muteLiveChatViewer(input: { streamId: $s, userId: $u, minutes: 60 }) { mutedUntil } }";
    app.gql(Some(&bob), mute, json!({ "s": bobs_room, "u": alice_gid })).await;
    assert_eq!(count_where(&app, "live_chat_mutes", "user_id", alice_id).await, 1);
    // She reports bob's post; her comment is reported and hidden, its words kept for an appeal.
    let report = "mutation($t: ID!) { reportContent(input: { target: $t, reason: SPAM }) { report { id } } }";
    app.gql(Some(&alice), report, json!({ "t": bob_post })).await;
    app.gql(Some(&bob), report, json!({ "t": alice_comment })).await;
    let hide = "mutation($t: ID!) { resolveReports(input: { target: $t, action: HIDE, reason: \"spam\" }) { reportsResolved } }";
    app.gql(Some(&moderator), hide, json!({ "t": alice_comment })).await;
    assert_eq!(count_where(&app, "reports", "reporter_id", alice_id).await, 1);
    assert_eq!(count_where(&app, "hidden_content", "author_id", alice_id).await, 1);
    // A failed sign-in on her number, and a suspension the staff log keeps.
    let login = "mutation($p: String!) { login(input: { phone: $p, password: \"wrong\" }) { token } }";
    app.gql_err(None, login, json!({ "p": phone(60) })).await;
    for m in ["banUser", "unbanUser"] {
        let q = format!(
            "mutation($u: ID!) {{ {m}(input: {{ userId: $u, reason: \"rule 3: spam\" }}) {{ user {{ id }} }} }}"
        );
        app.gql(Some(&moderator), &q, json!({ "u": alice_gid })).await;
    }
    // The suspension ended her sessions: sign in again.
    let relogin = "mutation($p: String!) { login(input: { phone: $p, password: \"correct horse\" }) { token } }";
    let alice = app.gql(None, relogin, json!({ "p": phone(60) })).await["login"]["token"].as_str().unwrap().to_string();
    let counts = "query($p: ID!, $c: ID!) { post(id: $p) { likeCount favoriteCount } comment(id: $c) { likeCount } }";
    let before = app.gql(Some(&bob), counts, json!({ "p": bob_post, "c": bob_comment })).await;
    assert_eq!(before, json!({ "post": { "likeCount": 1, "favoriteCount": 1 }, "comment": { "likeCount": 1 } }));
    app.state.activity.flush().await;
    assert!(count_where(&app, "request_log", "user_id", alice_id).await > 0, "the request log had her");

    assert_eq!(app.gql(Some(&alice), DELETE, json!({ "p": "correct horse" })).await["deleteAccount"]["deleted"], true);
    app.state.activity.flush().await;

    for (table, column, fate) in USER_COLUMNS {
        match fate {
            Fate::Gone => {
                assert_eq!(count_where(&app, table, column, alice_id).await, 0, "{table}.{column} still names her")
            }
            Fate::Kept(why) => assert!(!why.is_empty(), "{table}.{column}: say why it is kept"),
        }
    }
    // Counters she fed moved back; her public content is in no list by author.
    let after = app.gql(Some(&bob), counts, json!({ "p": bob_post, "c": bob_comment })).await;
    assert_eq!(after, json!({ "post": { "likeCount": 0, "favoriteCount": 0 }, "comment": { "likeCount": 0 } }));
    let by_author = "query($u: ID!) { posts(authorId: $u) { edges { node { id } } } }";
    assert_eq!(app.gql(None, by_author, json!({ "u": alice_gid })).await["posts"]["edges"], json!([]));
    let mine = app
        .gql(None, "query($p: ID!) { post(id: $p) { title likeCount author { id } } }", json!({ "p": my_post }))
        .await;
    assert_eq!(mine["post"], json!({ "title": "alice's post", "likeCount": 1, "author": null }));
    // No sign-in failure row is left for her number (the only one that failed here).
    let key = ecer_gateway::services::signin::phone_key(app.state.media.sealer(), &phone(60));
    let db = &app.state.db;
    let backend = db.get_database_backend();
    let p = if backend == DbBackend::Postgres { "$1" } else { "?" };
    let left = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!("SELECT COUNT(*) AS n FROM login_failures WHERE phone_hash = {p}"),
            [key.into()],
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(left, 0, "login_failures");
}
