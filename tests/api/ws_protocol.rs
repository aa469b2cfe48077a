//! The graphql-transport-ws protocol to the letter (close codes, ping/pong, keep-alive), the legacy
//! graphql-ws protocol, and authentication of sockets.

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{Ended, TestApp, phone};

const ME: &str = "subscription { notificationReceived { id } }";

#[tokio::test]
async fn close_codes_follow_the_specification() {
    // Short enough for the 4408 case to wait it out (`closed` waits 10 s), long enough that the other
    // sockets' first frames are in before it on a loaded machine (1 s flaked).
    let app = TestApp::spawn_with(|c| c.ws_init_timeout_secs = 3).await;
    let (token, _) = app.register(&phone(1), "a").await;

    // 4408: no connection_init in time.
    let mut ws = app.ws_with(Some("graphql-transport-ws"), &[]).await;
    assert_eq!(ws.closed().await, 4408);

    // 4401: subscribe before connection_ack.
    let mut ws = app.ws_with(Some("graphql-transport-ws"), &[]).await;
    ws.subscribe("1", ME, json!({})).await;
    assert_eq!(ws.closed().await, 4401);

    // 4403: a connection_init with a bad token.
    let mut ws = app.ws_with(Some("graphql-transport-ws"), &[]).await;
    ws.send(json!({ "type": "connection_init", "payload": { "authToken": "not-a-token" } })).await;
    assert_eq!(ws.closed().await, 4403);

    // 4429: a second connection_init.
    let mut ws = app.ws(Some(&token)).await;
    ws.send(json!({ "type": "connection_init" })).await;
    assert_eq!(ws.closed().await, 4429);

    // 4409: a subscription id already in use.
    let mut ws = app.ws(Some(&token)).await;
    ws.subscribe("dup", ME, json!({})).await;
    ws.subscribe("dup", ME, json!({})).await;
    assert_eq!(ws.closed().await, 4409);

    // 4400: malformed messages of every kind.
    for bad in [
        Message::Text("not json".into()),
        Message::Text("{\"no\":\"type\"}".into()),
        Message::Text("{\"type\":\"next\",\"id\":\"1\"}".into()),
        Message::Text("{\"type\":\"subscribe\",\"id\":\"1\",\"payload\":{\"query\":5}}".into()),
        Message::Binary(vec![1, 2, 3].into()),
    ] {
        let mut ws = app.ws(Some(&token)).await;
        ws.send_raw(bad.clone()).await;
        assert_eq!(ws.closed().await, 4400, "for {bad:?}");
    }

    // 4406: no subprotocol we speak.
    let mut ws = app.ws_with(None, &[]).await;
    assert_eq!(ws.closed().await, 4406);
}

#[tokio::test]
async fn ping_pong_both_ways_and_completes() {
    let app = TestApp::spawn_with(|c| c.ws_keepalive_secs = 1).await;
    let mut ws = app.ws(None).await;
    ws.send(json!({ "type": "ping", "payload": { "t": 1 } })).await;
    let pong = ws.recv().await;
    assert_eq!(pong, json!({ "type": "pong", "payload": { "t": 1 } }));

    // The server pings on its own; a client that answers stays connected past the idle limit.
    use futures_util::StreamExt;
    let mut saw_ping = false;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(3500);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.stream.next()).await {
        if let Message::Text(t) = msg {
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "ping" {
                saw_ping = true;
                ws.send(json!({ "type": "pong" })).await;
            }
        }
    }
    assert!(saw_ping, "the server sends keep-alive pings");

    // Queries run over the socket too: next, then complete.
    ws.subscribe("q", "{ boards(first: 1) { edges { cursor } } }", json!({})).await;
    assert_eq!(ws.next_data("q").await, json!({ "boards": { "edges": [] } }));
    assert_eq!(ws.recv().await, json!({ "type": "complete", "id": "q" }));

    // A validation error is an `error` message with a code, and no complete.
    ws.subscribe("bad", "subscription { nope }", json!({})).await;
    let err = ws.recv().await;
    assert_eq!(err["type"], "error");
    assert_eq!(err["payload"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED");
    ws.subscribe("q", "{ boards(first: 1) { edges { cursor } } }", json!({})).await;
    assert_eq!(ws.next_data("q").await["boards"]["edges"], json!([]));
}

#[tokio::test]
async fn a_silent_client_is_disconnected() {
    let app = TestApp::spawn_with(|c| c.ws_keepalive_secs = 1).await;
    let mut ws = app.ws(None).await;
    // Read nothing for three intervals: tungstenite answers transport pings only while polled, and
    // protocol pings go unanswered, so the server hears nothing and drops the socket.
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    // Drain what was sent (pings) without answering, until the server has dropped the socket.
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, ws.stream.next()).await.expect("the server kept a silent socket") {
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            Some(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn subscriptions_need_a_signed_in_socket() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(None).await;
    ws.subscribe("1", ME, json!({})).await;
    let msg = ws.recv().await;
    assert_eq!(msg["type"], "next");
    assert_eq!(msg["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    assert_eq!(ws.recv().await, json!({ "type": "complete", "id": "1" }));
}

#[tokio::test]
async fn cookie_sessions_work_from_the_same_origin_only() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register(&phone(1), "a").await;
    let cookie = format!("ecer_session={token}");
    let host = app.addr.to_string();
    let origin = format!("http://{host}");
    let query = "{ me { nickname } }";

    let mut ws = app.ws_with(Some("graphql-transport-ws"), &[("cookie", &cookie), ("origin", &origin)]).await;
    ws.send(json!({ "type": "connection_init" })).await;
    assert_eq!(ws.recv().await["type"], "connection_ack");
    ws.subscribe("1", query, json!({})).await;
    assert_eq!(ws.next_data("1").await, json!({ "me": { "nickname": "a" } }));

    let mut ws =
        app.ws_with(Some("graphql-transport-ws"), &[("cookie", &cookie), ("origin", "https://evil.example")]).await;
    ws.send(json!({ "type": "connection_init" })).await;
    assert_eq!(ws.recv().await["type"], "connection_ack");
    ws.subscribe("1", query, json!({})).await;
    assert_eq!(ws.next_data("1").await, json!({ "me": null }));
}

#[tokio::test]
async fn logout_closes_the_users_sockets() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register(&phone(1), "a").await;
    let login = app
        .gql(
            None,
            "mutation($p: String!) { login(input: { phone: $p, password: \"correct horse\" }) { token } }",
            json!({ "p": phone(1) }),
        )
        .await;
    let other_device = login["login"]["token"].as_str().unwrap().to_string();
    let mut ws1 = app.ws(Some(&token)).await;
    let mut ws2 = app.ws(Some(&other_device)).await;

    // Logging out one session closes that session's socket only.
    app.gql(Some(&token), "mutation { logout { loggedOut } }", json!({})).await;
    assert_eq!(ws1.closed().await, 4403);
    ws2.send(json!({ "type": "ping" })).await;
    assert_eq!(ws2.recv().await["type"], "pong");

    // A bad or revoked token cannot open a new one.
    let mut ws = app.ws_with(Some("graphql-transport-ws"), &[]).await;
    ws.send(json!({ "type": "connection_init", "payload": { "authToken": token } })).await;
    assert_eq!(ws.closed().await, 4403);
}

#[tokio::test]
async fn legacy_subscriptions_transport_ws_protocol() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register(&phone(1), "a").await;
    let mut ws = app.ws_with(Some("graphql-ws"), &[]).await;
    ws.send(json!({ "type": "connection_init", "payload": { "authToken": token } })).await;
    assert_eq!(ws.recv_within(std::time::Duration::from_secs(5)).await.unwrap()["type"], "connection_ack");
    ws.send(json!({ "type": "start", "id": "1", "payload": { "query": "{ me { nickname } }" } })).await;
    let data = ws.recv().await;
    assert_eq!(data, json!({ "type": "data", "id": "1", "payload": { "data": { "me": { "nickname": "a" } } } }));
    assert_eq!(ws.recv().await, json!({ "type": "complete", "id": "1" }));
    ws.send(json!({ "type": "start", "id": "2", "payload": { "query": ME } })).await;
    ws.send(json!({ "type": "stop", "id": "2" })).await;
    ws.quiet(200).await;
    ws.send(json!({ "type": "connection_terminate" })).await;
    assert!(matches!(ws.recv_within(std::time::Duration::from_secs(5)).await, Err(Ended::Closed(1000, _))));

    // A rejected init gets connection_error before the close.
    let mut ws = app.ws_with(Some("graphql-ws"), &[]).await;
    ws.send(json!({ "type": "connection_init", "payload": { "authToken": "bad" } })).await;
    assert_eq!(ws.recv_within(std::time::Duration::from_secs(5)).await.unwrap()["type"], "connection_error");
}

#[tokio::test]
async fn too_many_subscriptions_on_one_socket_are_refused() {
    let app = TestApp::spawn_with(|c| c.max_subscriptions_per_connection = 2).await;
    let (token, _) = app.register(&phone(1), "a").await;
    let mut ws = app.ws(Some(&token)).await;
    ws.subscribe("1", ME, json!({})).await;
    ws.subscribe("2", ME, json!({})).await;
    ws.subscribe("3", ME, json!({})).await;
    let err = ws.recv().await;
    assert_eq!(err["type"], "error");
    assert_eq!(err["id"], "3");
    assert_eq!(err["payload"][0]["extensions"]["code"], "TOO_MANY_SUBSCRIPTIONS");
    // Completing one frees a slot.
    ws.send(json!({ "type": "complete", "id": "1" })).await;
    ws.subscribe("3", ME, json!({})).await;
    ws.quiet(300).await;
}

/// The real client apps use (npm `graphql-ws`): authenticates with `connectionParams`, receives pushes,
/// resumes from a cursor, and reports a rejected token as close code 4403.
#[tokio::test]
async fn the_graphql_ws_client_library_works_end_to_end() {
    let app = TestApp::spawn().await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js");
    assert!(
        std::path::Path::new(dir).join("node_modules/graphql-ws").exists(),
        "graphql-ws is not installed: run `npm ci --prefix tests/js` (the README's test command does)"
    );
    let out = tokio::process::Command::new("node")
        .args(["graphql-ws-client.mjs", &app.url("/graphql"), &alice, &bob, &bob_id])
        .current_dir(dir)
        .output()
        .await
        .expect("run node");
    assert!(out.status.success(), "client failed: {}", String::from_utf8_lossy(&out.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).expect("client JSON");
    assert_eq!(seen["live"], json!(["hello from graphql-ws", "second"]));
    assert_eq!(seen["resumed"], json!(["second"]));
    assert_eq!(seen["rejected"], 4403);
    assert!(seen["closes"].as_array().unwrap().contains(&json!(4403)), "{seen}");
}

/// A shutting-down instance tells its sockets to go elsewhere (1001) instead of cutting them, and stops
/// taking new connections.
#[tokio::test]
async fn shutdown_asks_sockets_to_reconnect() {
    let mut app = TestApp::spawn().await;
    let (token, _) = app.register(&phone(1), "a").await;
    let mut ws = app.ws(Some(&token)).await;
    ws.subscribe("n", ME, json!({})).await;
    ws.quiet(100).await;
    app.shutdown();
    assert_eq!(ws.closed().await, 1001);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while app.http.get(app.url("/healthz")).send().await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "still accepting after shutdown");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Signing out one device from another, and suspending an account, close the affected sockets.
#[tokio::test]
async fn revoking_a_session_or_suspending_an_account_closes_sockets() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (phone_token, user_id) = app.register(&phone(1), "a").await;
    let login = "mutation($p: String!) { login(input: { phone: $p, password: \"correct horse\" }) { token } }";
    let laptop = app.gql(None, login, json!({ "p": phone(1) })).await["login"]["token"].as_str().unwrap().to_string();
    let mut phone_ws = app.ws(Some(&phone_token)).await;
    let mut laptop_ws = app.ws(Some(&laptop)).await;

    // The laptop lists the devices and signs the phone out.
    let list = app.gql(Some(&laptop), "{ me { sessions { id current userAgent } } }", json!({})).await;
    let sessions = list["me"]["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2);
    let phone_session = sessions.iter().find(|s| s["current"] == false).unwrap()["id"].clone();
    let revoke = "mutation($s: ID!) { revokeSession(input: { sessionId: $s }) { revoked } }";
    app.gql(Some(&laptop), revoke, json!({ "s": phone_session })).await;
    assert_eq!(phone_ws.closed().await, 4403);
    let (code, _) = app.gql_err(Some(&phone_token), "mutation { logout { loggedOut } }", json!({})).await;
    assert_eq!(code, "UNAUTHENTICATED");
    // Someone else's session id is not found, and sessions are private.
    let (other, _) = app.register(&phone(2), "b").await;
    let (code, _) = app.gql_err(Some(&other), revoke, json!({ "s": sessions[0]["id"] })).await;
    assert_eq!(code, "NOT_FOUND");
    let peek = "query($u: ID!) { user(id: $u) { sessions { id } } }";
    let (code, _) = app.gql_err(Some(&other), peek, json!({ "u": user_id })).await;
    assert_eq!(code, "FORBIDDEN");

    // Suspension: members cannot, staff can; the account is signed out everywhere and cannot sign in.
    let ban = "mutation($u: ID!) { banUser(input: { userId: $u, reason: \"rule 3: spam\" }) { user { suspended } } }";
    let (code, _) = app.gql_err(Some(&other), ban, json!({ "u": user_id })).await;
    assert_eq!(code, "FORBIDDEN");
    let banned = app.gql(Some(&admin), ban, json!({ "u": user_id })).await;
    assert_eq!(banned["banUser"]["user"]["suspended"], true);
    assert_eq!(laptop_ws.closed().await, 4403);
    let (code, _) = app.gql_err(None, login, json!({ "p": phone(1) })).await;
    assert_eq!(code, "FORBIDDEN");
    let unban =
        "mutation($u: ID!) { unbanUser(input: { userId: $u, reason: \"rule 3: spam\" }) { user { suspended } } }";
    assert_eq!(app.gql(Some(&admin), unban, json!({ "u": user_id })).await["unbanUser"]["user"]["suspended"], false);
    app.gql(None, login, json!({ "p": phone(1) })).await;
    // Members do not see who is suspended.
    let look = "query($u: ID!) { user(id: $u) { suspended } }";
    assert_eq!(
        app.gql(Some(&other), look, json!({ "u": user_id })).await["user"]["suspended"],
        serde_json::Value::Null
    );
}

/// A frame the server refuses (over MAX_BODY_BYTES, invalid UTF-8) ends the socket with its close
/// code, never a reset, even while the client still has frames on the way: the server reads them
/// (a lingering close) instead of dropping the connection with them unread.
#[tokio::test]
async fn refused_frames_close_with_their_code_not_a_reset_while_the_client_keeps_sending() {
    use futures_util::SinkExt;
    let app = TestApp::spawn_with(|c| c.max_body_bytes = 64 * 1024).await;
    let (token, _) = app.register(&phone(1), "a").await;
    let filler = |i: usize| {
        let query = format!("{{ __typename }} # {}", "x".repeat(2_000));
        Message::Text(
            json!({ "type": "subscribe", "id": format!("f{i}"), "payload": { "query": query } }).to_string().into(),
        )
    };
    let too_big = Message::Text("x".repeat(65 * 1024).into());
    let bad_utf8 = Message::Frame(tokio_tungstenite::tungstenite::protocol::frame::Frame::message(
        vec![0xff, 0xfe, 0x7b],
        tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
            tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Text,
        ),
        true,
    ));
    for (refused, code) in [(too_big, 1009), (bad_utf8, 1007)] {
        let mut ws = app.ws(Some(&token)).await;
        for i in 0..50 {
            ws.stream.feed(filler(i)).await.unwrap();
        }
        ws.stream.feed(refused).await.unwrap();
        // About 1 MB behind the refused frame, sent without reading: on the server's side of the
        // socket, unread when it decides to close.
        for i in 50..550 {
            if ws.stream.feed(filler(i)).await.is_err() {
                break;
            }
        }
        let _ = ws.stream.flush().await;
        assert_eq!(ws.closed().await, code);
    }
}
