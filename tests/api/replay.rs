//! Nothing lost: subscriptions resume from a cursor with no gap and no duplicate, even while new
//! events race the reconnect.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;

use crate::common::{TestApp, phone};
use crate::messaging::{RECEIVED, send};

#[tokio::test]
async fn resubscribing_with_a_cursor_replays_what_was_missed() {
    let app = TestApp::spawn().await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let first = send(&app, &alice, &bob_id, "m0").await;
    let cursor = first["message"]["cursor"].clone();
    for i in 1..=3 {
        send(&app, &alice, &bob_id, &format!("m{i}")).await;
    }
    let mut ws = app.ws(Some(&bob)).await;
    ws.subscribe("m", RECEIVED, json!({ "after": cursor })).await;
    for i in 1..=3 {
        assert_eq!(ws.next_data("m").await["messageReceived"]["body"], format!("m{i}"));
    }
    send(&app, &alice, &bob_id, "m4").await;
    assert_eq!(ws.next_data("m").await["messageReceived"]["body"], "m4");
    ws.quiet(200).await;

    // Without a cursor a subscription starts from now.
    let mut fresh = app.ws(Some(&bob)).await;
    fresh.subscribe("m", RECEIVED, json!({})).await;
    // Both sockets' streams have read where they start (the first one waits again after m4).
    app.streams_waiting(2).await;
    send(&app, &alice, &bob_id, "m5").await;
    assert_eq!(fresh.next_data("m").await["messageReceived"]["body"], "m5");

    let (code, _) = {
        let mut ws = app.ws(Some(&bob)).await;
        ws.subscribe("m", RECEIVED, json!({ "after": "not a cursor" })).await;
        let msg = ws.recv().await;
        (msg["payload"]["errors"][0]["extensions"]["code"].as_str().unwrap().to_string(), msg)
    };
    assert_eq!(code, "BAD_USER_INPUT");
}

/// The sender writes as fast as it can while the receiver keeps dropping its socket after a few
/// messages and resuming from the last cursor it saw: every message arrives exactly once, in order.
#[tokio::test]
async fn reconnects_racing_new_messages_lose_and_repeat_nothing() {
    const TOTAL: usize = 60;
    let app = Arc::new(TestApp::spawn().await);
    let (alice, _) = app.register(&phone(1), "alice").await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let start = send(&app, &alice, &bob_id, "start").await["message"]["cursor"].clone();

    let sending = Arc::new(AtomicBool::new(true));
    let writer = {
        let (app, alice, bob_id, sending) = (app.clone(), alice.clone(), bob_id.clone(), sending.clone());
        tokio::spawn(async move {
            for i in 0..TOTAL {
                send(&app, &alice, &bob_id, &format!("{i}")).await;
                if i % 3 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            sending.store(false, Ordering::SeqCst);
        })
    };

    let mut received: Vec<usize> = Vec::new();
    let mut cursor = start;
    let mut round = 0;
    while received.len() < TOTAL {
        round += 1;
        let mut ws = app.ws(Some(&bob)).await;
        ws.subscribe("m", RECEIVED, json!({ "after": cursor })).await;
        // Take one to four messages, then drop the socket mid-stream.
        for _ in 0..(round % 4 + 1) {
            if received.len() == TOTAL {
                break;
            }
            let m = ws.next_data("m").await["messageReceived"].clone();
            received.push(m["body"].as_str().unwrap().parse().unwrap());
            cursor = m["cursor"].clone();
        }
        drop(ws);
    }
    writer.await.unwrap();
    assert!(!sending.load(Ordering::SeqCst));
    assert_eq!(received, (0..TOTAL).collect::<Vec<_>>(), "after {round} reconnects");
}

#[tokio::test]
async fn notifications_resume_from_a_cursor_too() {
    let (app, c) = TestApp::community().await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    let q = "subscription($after: String) { notificationReceived(after: $after) { cursor comment { body } } }";
    app.comment(&bob, &c.post, None, "c1").await;
    let list = app.gql(Some(&c.alice), "{ notifications(first: 1) { edges { node { cursor } } } }", json!({})).await;
    let cursor = list["notifications"]["edges"][0]["node"]["cursor"].clone();
    app.comment(&bob, &c.post, None, "c2").await;
    app.comment(&bob, &c.post, None, "c3").await;
    let mut ws = app.ws(Some(&c.alice)).await;
    ws.subscribe("n", q, json!({ "after": cursor })).await;
    assert_eq!(ws.next_data("n").await["notificationReceived"]["comment"]["body"], "c2");
    assert_eq!(ws.next_data("n").await["notificationReceived"]["comment"]["body"], "c3");
    app.comment(&bob, &c.post, None, "c4").await;
    assert_eq!(ws.next_data("n").await["notificationReceived"]["comment"]["body"], "c4");
}

/// Two senders write concurrently (the case the per-user append lock exists for: on PostgreSQL ids
/// could otherwise commit out of order) while the receiver keeps reconnecting.
#[tokio::test]
async fn concurrent_senders_racing_reconnects_lose_and_repeat_nothing() {
    const EACH: usize = 30;
    let app = Arc::new(TestApp::spawn().await);
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let mut senders = Vec::new();
    for (n, name) in [(1, "alice"), (3, "carol")] {
        senders.push((app.register(&phone(n), name).await.0, name));
    }
    let start = send(&app, &senders[0].0, &bob_id, "start").await["message"]["cursor"].clone();
    let writers = spawn_senders(&app, senders.clone(), &bob_id, EACH);
    let mut received: Vec<String> = Vec::new();
    let mut cursor = start;
    let mut round = 0;
    while received.len() < 2 * EACH {
        round += 1;
        let mut ws = app.ws(Some(&bob)).await;
        ws.subscribe("m", RECEIVED, json!({ "after": cursor })).await;
        for _ in 0..(round % 5 + 1) {
            if received.len() == 2 * EACH {
                break;
            }
            let m = ws.next_data("m").await["messageReceived"].clone();
            received.push(m["body"].as_str().unwrap().to_string());
            cursor = m["cursor"].clone();
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    each_sender_in_order(&received, ["alice", "carol"], EACH, &format!("after {round} reconnects"));
}

/// Each sender writing `each` messages "<name> <i>" to `to`, one after another.
fn spawn_senders(
    app: &Arc<TestApp>,
    senders: Vec<(String, &'static str)>,
    to: &str,
    each: usize,
) -> Vec<tokio::task::JoinHandle<()>> {
    senders
        .into_iter()
        .map(|(token, name)| {
            let (app, to) = (app.clone(), to.to_string());
            tokio::spawn(async move {
                for i in 0..each {
                    send(&app, &token, &to, &format!("{name} {i}")).await;
                }
            })
        })
        .collect()
}

/// Every sender's `each` messages are in `received` exactly once and in the order they were sent.
fn each_sender_in_order(received: &[String], names: [&str; 2], each: usize, context: &str) {
    for name in names {
        let theirs: Vec<&String> = received.iter().filter(|b| b.starts_with(name)).collect();
        let want: Vec<String> = (0..each).map(|i| format!("{name} {i}")).collect();
        assert_eq!(theirs, want.iter().collect::<Vec<_>>(), "{name}'s messages, {context}");
    }
}

/// A cursor past the head (made up, or from another stream) must not swallow what comes next.
#[tokio::test]
async fn a_cursor_past_the_head_starts_from_the_head() {
    let app = TestApp::spawn().await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let far = ecer_gateway::services::page::Cursor::Id(1_000_000_000).encode();
    let mut ws = app.ws(Some(&bob)).await;
    ws.subscribe("m", RECEIVED, json!({ "after": far })).await;
    app.streams_waiting(1).await;
    send(&app, &alice, &bob_id, "still arrives").await;
    assert_eq!(ws.next_data("m").await["messageReceived"]["body"], "still arrives");
}

/// A coalesced notification that grew while the client was away is replayed, grown.
#[tokio::test]
async fn a_coalesced_notification_is_replayed_when_it_grows() {
    let (app, c) = TestApp::community().await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    let (carol, _) = app.register(&phone(3), "carol").await;
    let like = "mutation($p: ID!) { likePost(input: { postId: $p }) { post { likeCount } } }";
    app.gql(Some(&bob), like, json!({ "p": c.post })).await;
    let list = app.gql(Some(&c.alice), "{ notifications(first: 1) { edges { node { id cursor } } } }", json!({})).await;
    let seen = list["notifications"]["edges"][0]["node"].clone();
    app.gql(Some(&carol), like, json!({ "p": c.post })).await;
    let q = "subscription($after: String) { notificationReceived(after: $after) { id actorCount } }";
    let mut ws = app.ws(Some(&c.alice)).await;
    ws.subscribe("n", q, json!({ "after": seen["cursor"] })).await;
    let n = ws.next_data("n").await["notificationReceived"].clone();
    assert_eq!((n["id"].clone(), n["actorCount"].as_i64()), (seen["id"].clone(), Some(2)));
}

/// Replies crossing between the same two people at the same time (each one's comment on the other's
/// post) lock both notification streams in one order: no deadlock, no error.
#[tokio::test]
async fn crossing_replies_do_not_deadlock() {
    let app = Arc::new(TestApp::spawn().await);
    let admin = app.admin().await;
    let board = app.create_board(&admin, "deals", "Board").await;
    let (w, _) = app.register(&phone(1), "w").await;
    let (y, _) = app.register(&phone(2), "y").await;
    let (z, _) = app.register(&phone(3), "z").await;
    let post_w = app.create_post(&w, &board, "w's post").await;
    let post_y = app.create_post(&y, &board, "y's post").await;
    let by_w_on_y = app.comment(&w, &post_y, None, "w on y").await;
    let by_y_on_w = app.comment(&y, &post_w, None, "y on w").await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        for (post, parent) in [(post_y.clone(), by_w_on_y.clone()), (post_w.clone(), by_y_on_w.clone())] {
            let (app, z) = (app.clone(), z.clone());
            tasks.push(tokio::spawn(async move { app.comment(&z, &post, Some(&parent), &format!("reply {i}")).await }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let count = app.gql(Some(&w), "{ unreadNotificationCount }", json!({})).await;
    assert_eq!(count["unreadNotificationCount"], 25, "1 comment + 12 replies to w's comment + 12 on w's post");
}

/// Polls `f` until it holds; panics after 5 s.
async fn until(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Between events a private subscription holds only the member's topic and its cursor, no GraphQL
/// execution (issue 14): each event runs the client's document again from where the last run got
/// to. The client cannot tell: a burst from two concurrent senders, more than the topic buffers
/// (16) and more than one read takes (100), arrives whole, in order, once; and so do the messages of
/// a subscription that resumed with `after`.
#[tokio::test]
async fn an_idle_private_subscription_holds_no_execution_and_a_burst_arrives_whole() {
    const EACH: usize = 60;
    let app = Arc::new(TestApp::spawn().await);
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let (carol, _) = app.register(&phone(3), "carol").await;
    let waiting = || app.state.private_streams.count();
    let start = send(&app, &alice, &bob_id, "start").await["message"]["cursor"].clone();

    let mut live = app.ws(Some(&bob)).await;
    live.subscribe("m", RECEIVED, json!({})).await;
    let mut resumed = app.ws(Some(&bob)).await;
    resumed.subscribe("m", RECEIVED, json!({ "after": start })).await;
    until("both subscriptions wait with no execution", || waiting() == 2).await;

    let writers = spawn_senders(&app, vec![(alice, "alice"), (carol, "carol")], &bob_id, EACH);
    for w in writers {
        w.await.unwrap();
    }
    for ws in [&mut live, &mut resumed] {
        let mut received = Vec::new();
        while received.len() < 2 * EACH {
            received.push(ws.next_data("m").await["messageReceived"]["body"].as_str().unwrap().to_string());
        }
        ws.quiet(200).await;
        each_sender_in_order(&received, ["alice", "carol"], EACH, "while idle");
    }
    until("both wait again after the burst", || waiting() == 2).await;
    drop(live);
    drop(resumed);
    until("a closed socket's stream stops waiting", || waiting() == 0).await;
}
