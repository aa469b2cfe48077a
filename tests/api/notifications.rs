//! Notifications: replies, coalesced likes and follows, read state, settings that switch categories
//! off, and the push.

use serde_json::json;

use crate::common::{TestApp, phone};

const RECEIVED: &str = "subscription($after: String) { notificationReceived(after: $after) {
    id cursor kind actorCount actor { nickname } post { title } comment { body } read } }";

const LIST: &str = "{ unreadNotificationCount notifications(first: 10) { edges { node { id kind actorCount
    actor { nickname } } } } }";

#[tokio::test]
async fn replies_likes_and_follows_notify_the_owner() {
    let (app, c) = TestApp::community().await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    let (carol, _) = app.register(&phone(3), "carol").await;
    let mut ws = app.ws(Some(&c.alice)).await;
    ws.subscribe("n", RECEIVED, json!({})).await;
    app.streams_waiting(1).await;

    // A comment on alice's post.
    let comment = app.comment(&bob, &c.post, None, "what MOQ?").await;
    let n = ws.next_data("n").await["notificationReceived"].clone();
    assert_eq!((n["kind"].as_str(), n["actor"]["nickname"].as_str()), (Some("COMMENT_ON_POST"), Some("bob")));
    assert_eq!(n["comment"]["body"], "what MOQ?");
    assert_eq!(n["read"], false);

    // Alice's own actions never notify her.
    let reply = app.comment(&c.alice, &c.post, Some(&comment), "500 pcs").await;
    // Bob is told of the reply; a reply by carol to alice's comment notifies alice once, as a reply.
    app.comment(&carol, &c.post, Some(&reply), "same question").await;
    let n = ws.next_data("n").await["notificationReceived"].clone();
    assert_eq!(n["kind"], "REPLY_TO_COMMENT");

    // Likes coalesce: one line per post while unread, growing.
    let like = "mutation($p: ID!) { likePost(input: { postId: $p }) { post { likeCount } } }";
    app.gql(Some(&bob), like, json!({ "p": c.post })).await;
    let first = ws.next_data("n").await["notificationReceived"].clone();
    assert_eq!((first["kind"].as_str(), first["actorCount"].as_i64()), (Some("POST_LIKED"), Some(1)));
    app.gql(Some(&carol), like, json!({ "p": c.post })).await;
    let second = ws.next_data("n").await["notificationReceived"].clone();
    assert_eq!(second["id"], first["id"], "the same notification, grown");
    assert_eq!((second["actorCount"].as_i64(), second["actor"]["nickname"].as_str()), (Some(2), Some("carol")));
    assert_ne!(second["cursor"], first["cursor"], "it moves up the stream");

    let follow = "mutation($u: ID!) { followUser(input: { userId: $u }) { user { followerCount } } }";
    let alice_id = app.gql(Some(&c.alice), "{ me { id } }", json!({})).await["me"]["id"].clone();
    app.gql(Some(&bob), follow, json!({ "u": alice_id })).await;
    assert_eq!(ws.next_data("n").await["notificationReceived"]["kind"], "NEW_FOLLOWER");

    let list = app.gql(Some(&c.alice), LIST, json!({})).await;
    assert_eq!(list["unreadNotificationCount"], 4);
    let kinds: Vec<_> =
        list["notifications"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["kind"].clone()).collect();
    assert_eq!(
        kinds,
        vec![json!("NEW_FOLLOWER"), json!("POST_LIKED"), json!("REPLY_TO_COMMENT"), json!("COMMENT_ON_POST")]
    );

    // Marking one read, then all.
    let mark = "mutation($ids: [ID!]) { markNotificationsRead(input: { ids: $ids }) { unreadCount } }";
    let one = list["notifications"]["edges"][0]["node"]["id"].clone();
    let left = app.gql(Some(&c.alice), mark, json!({ "ids": [one] })).await;
    assert_eq!(left["markNotificationsRead"]["unreadCount"], 3);
    let left = app.gql(Some(&c.alice), mark, json!({})).await;
    assert_eq!(left["markNotificationsRead"]["unreadCount"], 0);

    // After it was read, the next like starts a new line.
    let (dave, _) = app.register(&phone(4), "dave").await;
    app.gql(Some(&dave), like, json!({ "p": c.post })).await;
    let third = ws.next_data("n").await["notificationReceived"].clone();
    assert_ne!(third["id"], first["id"]);
    assert_eq!(third["actorCount"], 1);
}

#[tokio::test]
async fn switched_off_categories_make_no_notifications() {
    let (app, c) = TestApp::community().await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    let settings = "mutation($s: [NotificationSettingInput!]!) { updateNotificationSettings(input: { settings: $s }) {
        settings { category enabled } } }";
    let out = app.gql(Some(&c.alice), settings, json!({ "s": [{ "category": "LIKES", "enabled": false }] })).await;
    let likes = out["updateNotificationSettings"]["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["category"] == "LIKES")
        .unwrap()
        .clone();
    assert_eq!(likes["enabled"], false);
    let like = "mutation($p: ID!) { likePost(input: { postId: $p }) { post { likeCount } } }";
    app.gql(Some(&bob), like, json!({ "p": c.post })).await;
    app.comment(&bob, &c.post, None, "replies still come").await;
    let list = app.gql(Some(&c.alice), LIST, json!({})).await;
    assert_eq!(list["unreadNotificationCount"], 1);
    assert_eq!(list["notifications"]["edges"][0]["node"]["kind"], "COMMENT_ON_POST");

    // A blocked user's actions do not notify either.
    let bob_id = app.gql(Some(&bob), "{ me { id } }", json!({})).await["me"]["id"].clone();
    app.gql(
        Some(&c.alice),
        "mutation($u: ID!) { blockUser(input: { userId: $u }) { user { id } } }",
        json!({ "u": bob_id }),
    )
    .await;
    app.comment(&bob, &c.post, None, "you will not hear this").await;
    let list = app.gql(Some(&c.alice), LIST, json!({})).await;
    assert_eq!(list["unreadNotificationCount"], 1);

    let read = app.gql(Some(&c.alice), "{ notificationSettings { category enabled } }", json!({})).await;
    assert_eq!(read["notificationSettings"].as_array().unwrap().len(), 4);
    let (code, _) = app.gql_err(None, LIST, json!({})).await;
    assert_eq!(code, "UNAUTHENTICATED");
}

#[tokio::test]
async fn admins_send_security_notices_that_cannot_be_muted() {
    let (app, c) = TestApp::community().await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let (carol, _) = app.register(&phone(3), "carol").await;
    let mute = "mutation { updateNotificationSettings(input: { settings: [{ category: NOTICES, enabled: false }] }) { settings { enabled } } }";
    app.gql(Some(&bob), mute, json!({})).await;
    let mut ws = app.ws(Some(&bob)).await;
    ws.subscribe("n", "subscription { notificationReceived { kind body } }", json!({})).await;
    app.streams_waiting(1).await;
    let send =
        "mutation($b: String!, $u: [ID!]) { sendSecurityNotice(input: { body: $b, userIds: $u }) { recipients } }";
    let (code, _) = app.gql_err(Some(&carol), send, json!({ "b": "hi" })).await;
    assert_eq!(code, "FORBIDDEN");
    let to_bob = app
        .gql(Some(&c.admin), send, json!({ "b": "Reset your password: a partner site leaked.", "u": [bob_id] }))
        .await;
    assert_eq!(to_bob["sendSecurityNotice"]["recipients"], 1);
    let n = ws.next_data("n").await["notificationReceived"].clone();
    assert_eq!(n, json!({ "kind": "SECURITY_NOTICE", "body": "Reset your password: a partner site leaked." }));
    let count = "{ notifications(first: 5) { edges { node { kind } } } }";
    assert_eq!(app.gql(Some(&carol), count, json!({})).await["notifications"]["edges"], json!([]));
    let all = app.gql(Some(&c.admin), send, json!({ "b": "Scheduled maintenance tonight." })).await;
    assert_eq!(all["sendSecurityNotice"]["recipients"], 4, "admin, alice, bob and carol");
    assert_eq!(
        app.gql(Some(&carol), count, json!({})).await["notifications"]["edges"][0]["node"]["kind"],
        "SECURITY_NOTICE"
    );
}

#[tokio::test]
async fn unread_counts_follow_new_items_and_reads_from_any_device() {
    let app = TestApp::spawn().await;
    let (alice, alice_id) = app.register(&phone(1), "alice").await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    let mut ws = app.ws(Some(&alice)).await;
    ws.subscribe("u", "subscription { unreadCountsChanged { notifications messages } }", json!({})).await;
    let counts = |v: serde_json::Value| v["unreadCountsChanged"].clone();
    assert_eq!(counts(ws.next_data("u").await), json!({ "notifications": 0, "messages": 0 }));

    let send =
        "mutation($to: ID!, $b: String!) { sendMessage(input: { toUserId: $to, body: $b }) { conversation { id } } }";
    let sent = app.gql(Some(&bob), send, json!({ "to": alice_id, "b": "样品什么时候发?" })).await;
    assert_eq!(counts(ws.next_data("u").await), json!({ "notifications": 0, "messages": 1 }));
    // Read on another device (HTTP): this socket hears of it.
    let read =
        "mutation($c: ID!) { markConversationRead(input: { conversationId: $c }) { conversation { unreadCount } } }";
    app.gql(Some(&alice), read, json!({ "c": sent["sendMessage"]["conversation"]["id"] })).await;
    assert_eq!(counts(ws.next_data("u").await), json!({ "notifications": 0, "messages": 0 }));
    let query = "{ unreadMessageCount unreadNotificationCount }";
    assert_eq!(
        app.gql(Some(&alice), query, json!({})).await,
        json!({ "unreadMessageCount": 0, "unreadNotificationCount": 0 })
    );

    let follow = "mutation($u: ID!) { followUser(input: { userId: $u }) { user { id } } }";
    app.gql(Some(&bob), follow, json!({ "u": alice_id })).await;
    assert_eq!(counts(ws.next_data("u").await), json!({ "notifications": 1, "messages": 0 }));
    app.gql(Some(&alice), "mutation { markNotificationsRead(input: {}) { unreadCount } }", json!({})).await;
    assert_eq!(counts(ws.next_data("u").await), json!({ "notifications": 0, "messages": 0 }));
    // Nothing changed, nothing said.
    app.gql(Some(&alice), "mutation { markNotificationsRead(input: {}) { unreadCount } }", json!({})).await;
    ws.quiet(300).await;
}
