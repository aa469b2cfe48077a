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
    fresh.quiet(200).await;
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
