//! Private messages: conversations, read state, privacy between users, blocks, and the push.

use serde_json::{Value, json};

use crate::common::{TestApp, phone};

pub const SEND: &str = "mutation($to: ID, $c: ID, $body: String!) {
    sendMessage(input: { toUserId: $to, conversationId: $c, body: $body }) {
        message { id cursor body isMine sender { nickname } }
        conversation { id }
    } }";

pub const RECEIVED: &str = "subscription($after: String) { messageReceived(after: $after) { cursor body sender { nickname } conversation { id } } }";

pub async fn send(app: &TestApp, token: &str, to: &str, body: &str) -> Value {
    app.gql(Some(token), SEND, json!({ "to": to, "body": body })).await["sendMessage"].clone()
}

#[tokio::test]
async fn a_message_reaches_the_recipient_and_the_senders_other_devices() {
    let app = TestApp::spawn().await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let mut bob_ws = app.ws(Some(&bob)).await;
    let mut alice_ws = app.ws(Some(&alice)).await;
    bob_ws.subscribe("m", RECEIVED, json!({})).await;
    alice_ws.subscribe("m", RECEIVED, json!({})).await;
    // Both subscriptions start at the newest message when they read it: wait for that before the send.
    app.streams_waiting(2).await;

    let sent = send(&app, &alice, &bob_id, "你好, FOB price?").await;
    assert_eq!(sent["message"]["isMine"], true);
    for ws in [&mut bob_ws, &mut alice_ws] {
        let got = ws.next_data("m").await["messageReceived"].clone();
        assert_eq!(got["body"], "你好, FOB price?");
        assert_eq!(got["sender"]["nickname"], "alice");
        assert_eq!(got["conversation"]["id"], sent["conversation"]["id"]);
        assert_eq!(got["cursor"], sent["message"]["cursor"]);
    }
}

#[tokio::test]
async fn conversations_unread_counts_and_read_markers() {
    let app = TestApp::spawn().await;
    let (alice, alice_id) = app.register(&phone(1), "alice").await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let (carol, carol_id) = app.register(&phone(3), "carol").await;
    let first = send(&app, &alice, &bob_id, "one").await;
    let conv = first["conversation"]["id"].as_str().unwrap().to_string();
    // Sending to the same user again, or by conversation id, stays in one conversation.
    let again = send(&app, &alice, &bob_id, "two").await;
    assert_eq!(again["conversation"]["id"], conv);
    let reply = app.gql(Some(&bob), SEND, json!({ "c": conv, "body": "three" })).await;
    assert_eq!(reply["sendMessage"]["conversation"]["id"], conv);
    send(&app, &carol, &bob_id, "hi from carol").await;

    let list = "{ conversations(first: 10) { edges { node { id unreadCount peer { nickname }
        lastMessage { body } } } } }";
    let bob_view = app.gql(Some(&bob), list, json!({})).await;
    let edges = bob_view["conversations"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 2);
    assert_eq!(edges[0]["node"]["peer"]["nickname"], "carol", "newest conversation first");
    assert_eq!(edges[0]["node"]["unreadCount"], 1);
    assert_eq!(edges[1]["node"]["peer"]["nickname"], "alice");
    // Replying reads what came before, as in every chat app.
    assert_eq!(edges[1]["node"]["unreadCount"], 0);
    assert_eq!(edges[1]["node"]["lastMessage"]["body"], "three");

    let mark =
        "mutation($c: ID!) { markConversationRead(input: { conversationId: $c }) { conversation { unreadCount } } }";
    let carol_conv = edges[0]["node"]["id"].clone();
    let marked = app.gql(Some(&bob), mark, json!({ "c": carol_conv })).await;
    assert_eq!(marked["markConversationRead"]["conversation"]["unreadCount"], 0);
    let (code, _) = app.gql_err(Some(&alice), mark, json!({ "c": carol_conv })).await;
    assert_eq!(code, "NOT_FOUND");
    let alice_view = app.gql(Some(&alice), list, json!({})).await;
    assert_eq!(alice_view["conversations"]["edges"][0]["node"]["unreadCount"], 1);

    // History pages newest first.
    let history = "query($c: ID!, $after: String) { messages(conversationId: $c, first: 2, after: $after) {
        edges { node { body } } pageInfo { hasNextPage endCursor } } }";
    let page = app.gql(Some(&alice), history, json!({ "c": conv })).await;
    let bodies: Vec<_> =
        page["messages"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["body"].clone()).collect();
    assert_eq!(bodies, vec![json!("three"), json!("two")]);
    let next =
        app.gql(Some(&alice), history, json!({ "c": conv, "after": page["messages"]["pageInfo"]["endCursor"] })).await;
    assert_eq!(next["messages"]["edges"][0]["node"]["body"], "one");
    assert_eq!(next["messages"]["pageInfo"]["hasNextPage"], false);

    // Nobody else can read or write the conversation.
    let (code, _) = app.gql_err(Some(&carol), history, json!({ "c": conv })).await;
    assert_eq!(code, "NOT_FOUND");
    let (code, _) = app.gql_err(Some(&carol), SEND, json!({ "c": conv, "body": "let me in" })).await;
    assert_eq!(code, "NOT_FOUND");
    let (code, _) = app.gql_err(None, list, json!({})).await;
    assert_eq!(code, "UNAUTHENTICATED");

    // A new message moves the recipient's inbox, not their read marker.
    send(&app, &alice, &bob_id, "four").await;
    let bob_view = app.gql(Some(&bob), list, json!({})).await;
    assert_eq!(bob_view["conversations"]["edges"][0]["node"]["lastMessage"]["body"], "four");
    assert_eq!(bob_view["conversations"]["edges"][0]["node"]["unreadCount"], 1);
    let _ = (alice_id, carol_id);
}

#[tokio::test]
async fn bad_input_and_blocks() {
    let app = TestApp::spawn().await;
    let (alice, alice_id) = app.register(&phone(1), "alice").await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;

    let (code, err) = app.gql_err(Some(&alice), SEND, json!({ "to": bob_id, "body": "  " })).await;
    assert_eq!((code.as_str(), err["extensions"]["field"].as_str()), ("BAD_USER_INPUT", Some("input.body")));
    let (code, _) = app.gql_err(Some(&alice), SEND, json!({ "to": alice_id, "body": "me" })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    let (code, _) = app.gql_err(Some(&alice), SEND, json!({ "body": "nobody" })).await;
    assert_eq!(code, "BAD_USER_INPUT");

    let block = "mutation($u: ID!) { blockUser(input: { userId: $u }) { user { nickname } } }";
    let unblock = "mutation($u: ID!) { unblockUser(input: { userId: $u }) { user { nickname } } }";
    app.gql(Some(&bob), block, json!({ "u": alice_id })).await;
    app.gql(Some(&bob), block, json!({ "u": alice_id })).await;
    // Blocked either way: neither side can message.
    let (code, _) = app.gql_err(Some(&alice), SEND, json!({ "to": bob_id, "body": "hello?" })).await;
    assert_eq!(code, "FORBIDDEN");
    let (code, _) = app.gql_err(Some(&bob), SEND, json!({ "to": alice_id, "body": "hello?" })).await;
    assert_eq!(code, "FORBIDDEN");
    app.gql(Some(&bob), unblock, json!({ "u": alice_id })).await;
    send(&app, &alice, &bob_id, "friends again").await;
}

#[tokio::test]
async fn a_retried_message_with_its_client_id_is_stored_and_pushed_once() {
    let app = TestApp::spawn().await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let (_, carol_id) = app.register(&phone(3), "carol").await;
    let mut bob_ws = app.ws(Some(&bob)).await;
    bob_ws.subscribe("m", RECEIVED, json!({})).await;
    app.streams_waiting(1).await;
    let send = "mutation($to: ID!, $body: String!, $cid: String) {
        sendMessage(input: { toUserId: $to, body: $body, clientMessageId: $cid }) { message { id body } conversation { id } } }";
    let vars =
        json!({ "to": bob_id, "body": "Is the quote still valid?", "cid": "3f1c9a2e-7b4d-4e1a-9c55-2f8d0b6a1e77" });

    // The client timed out and sends again, twice at once for good measure: one message.
    let first = app.gql(Some(&alice), send, vars.clone()).await["sendMessage"].clone();
    let (a, b) = tokio::join!(app.gql(Some(&alice), send, vars.clone()), app.gql(Some(&alice), send, vars.clone()));
    assert_eq!(a["sendMessage"], first);
    assert_eq!(b["sendMessage"], first);
    let list = "query($c: ID!) { messages(conversationId: $c, first: 10) { edges { node { id } } } }";
    let stored = app.gql(Some(&bob), list, json!({ "c": first["conversation"]["id"] })).await;
    assert_eq!(stored["messages"]["edges"].as_array().unwrap().len(), 1);
    assert_eq!(bob_ws.next_data("m").await["messageReceived"]["body"], "Is the quote still valid?");
    bob_ws.quiet(300).await;

    // The same id for a message to someone else is a mistake, said as one; a bad id is refused.
    let other = json!({ "to": carol_id, "body": "hello", "cid": "3f1c9a2e-7b4d-4e1a-9c55-2f8d0b6a1e77" });
    let (code, _) = app.gql_err(Some(&alice), send, other).await;
    assert_eq!(code, "CONFLICT");
    let (code, err) = app.gql_err(Some(&alice), send, json!({ "to": bob_id, "body": "x", "cid": "no spaces" })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert_eq!(err["extensions"]["field"], "input.clientMessageId");
    // Without an id, each send is a new message.
    let plain = json!({ "to": bob_id, "body": "again" });
    let one = app.gql(Some(&alice), send, plain.clone()).await["sendMessage"]["message"]["id"].clone();
    let two = app.gql(Some(&alice), send, plain).await["sendMessage"]["message"]["id"].clone();
    assert_ne!(one, two);
}

/// Every object a client caches is a `Node`; `node(id)` gives private ones only to who may see them.
#[tokio::test]
async fn private_objects_are_nodes_for_their_members_and_null_for_anyone_else() {
    let app = TestApp::spawn().await;
    let (alice, alice_id) = app.register(&phone(1), "alice").await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    let (eve, _) = app.register(&phone(3), "eve").await;
    let send = "mutation($to: ID!) { sendMessage(input: { toUserId: $to, body: \"报价单\" }) { message { id } conversation { id } } }";
    let sent = app.gql(Some(&bob), send, json!({ "to": alice_id })).await["sendMessage"].clone();
    let follow = "mutation($u: ID!) { followUser(input: { userId: $u }) { user { id } } }";
    app.gql(Some(&bob), follow, json!({ "u": alice_id })).await;
    let notification = app.gql(Some(&alice), "{ notifications(first: 1) { nodes { id } } }", json!({})).await
        ["notifications"]["nodes"][0]["id"]
        .clone();
    let session =
        app.gql(Some(&alice), "{ me { sessions { id } } }", json!({})).await["me"]["sessions"][0]["id"].clone();
    let node = "query($id: ID!) { node(id: $id) { __typename id } }";
    let cases = [
        (sent["conversation"]["id"].clone(), "Conversation", &alice),
        (sent["message"]["id"].clone(), "Message", &alice),
        (notification, "Notification", &alice),
        (session, "Session", &alice),
    ];
    for (id, typename, owner) in cases {
        let seen = app.gql(Some(owner), node, json!({ "id": id })).await;
        assert_eq!(seen["node"], json!({ "__typename": typename, "id": id }), "{typename} for its member");
        for other in [Some(eve.as_str()), None] {
            assert_eq!(app.gql(other, node, json!({ "id": id })).await["node"], serde_json::Value::Null, "{typename}");
        }
    }
    // The other member of the conversation sees it too.
    let conversation = sent["conversation"]["id"].clone();
    assert_eq!(app.gql(Some(&bob), node, json!({ "id": conversation })).await["node"]["__typename"], "Conversation");
}

pub(crate) const UPLOAD: &str = "mutation($file: Upload!, $kind: MediaKind!) {
    uploadMedia(input: { file: $file, kind: $kind }) { media { id url } } }";
pub(crate) const SEND_MEDIA: &str = "mutation($to: ID!, $body: String, $m: [ID!]) {
    sendMessage(input: { toUserId: $to, body: $body, mediaIds: $m }) {
        message { id body media { id kind mimeType url } } } }";

pub(crate) async fn upload(app: &TestApp, token: &str, kind: &str, file: crate::common::Part) -> (String, String) {
    let data = app.upload(token, UPLOAD, json!({ "kind": kind }), file).await;
    let media = &data["uploadMedia"]["media"];
    (media["id"].as_str().unwrap().to_string(), media["url"].as_str().unwrap().to_string())
}

async fn fetch(app: &TestApp, token: Option<&str>, url: &str) -> (u16, Vec<u8>) {
    let mut req = app.http.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let no_store = resp.headers().get("cache-control").is_some_and(|v| v.to_str().unwrap().contains("no-store"));
    if status == 200 {
        assert!(no_store, "a private file is never cached");
    }
    (status, resp.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn photos_and_videos_in_messages_reach_only_the_conversation() {
    let app = TestApp::spawn().await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let (carol, carol_id) = app.register(&phone(3), "carol").await;
    let photo = crate::common::png("sample of the fabric");
    let (photo_id, photo_url) =
        upload(&app, &alice, "MESSAGE_PHOTO", ("0", "fabric.png", "image/png", photo.clone())).await;
    let (video_id, _) =
        upload(&app, &alice, "MESSAGE_VIDEO", ("0", "loading.mp4", "video/mp4", crate::common::mp4())).await;
    assert!(photo_url.contains("/media/messages/"), "{photo_url}");
    // Before it is sent, only the uploader opens it.
    assert_eq!(fetch(&app, Some(&alice), &photo_url).await, (200, photo.clone()));
    assert_eq!(fetch(&app, Some(&bob), &photo_url).await.0, 404);

    let mut bob_ws = app.ws(Some(&bob)).await;
    let received = "subscription { messageReceived { body media { id mimeType url } } }";
    bob_ws.subscribe("m", received, json!({})).await;
    app.streams_waiting(1).await;
    // Files alone make a message; the order given is kept.
    let sent = app.gql(Some(&alice), SEND_MEDIA, json!({ "to": bob_id, "m": [photo_id, video_id] })).await;
    let media = sent["sendMessage"]["message"]["media"].as_array().unwrap().clone();
    assert_eq!(media.iter().map(|m| m["id"].clone()).collect::<Vec<_>>(), vec![json!(photo_id), json!(video_id)]);
    assert_eq!(sent["sendMessage"]["message"]["body"], "");
    let pushed = bob_ws.next_data("m").await["messageReceived"].clone();
    assert_eq!(pushed["media"][0]["url"], json!(photo_url));
    assert_eq!(pushed["media"][1]["mimeType"], "video/mp4");

    // A player seeks in the video: byte ranges.
    let video_url = pushed["media"][1]["url"].as_str().unwrap().to_string();
    let part = app.http.get(&video_url).bearer_auth(&bob).header("range", "bytes=0-99").send().await.unwrap();
    assert_eq!(part.status(), 206);
    let total = crate::common::mp4().len();
    assert_eq!(part.headers()["content-range"], format!("bytes 0-99/{total}").as_str());
    assert_eq!(part.bytes().await.unwrap().to_vec(), crate::common::mp4()[..100].to_vec());
    let beyond = app.http.get(&video_url).bearer_auth(&bob).header("range", format!("bytes={total}-")).send().await;
    assert_eq!(beyond.unwrap().status(), 416);

    // The two members open it; nobody else does, and there is no public URL for it.
    assert_eq!(fetch(&app, Some(&bob), &photo_url).await, (200, photo.clone()));
    assert_eq!(fetch(&app, Some(&carol), &photo_url).await.0, 404);
    assert_eq!(fetch(&app, None, &photo_url).await.0, 401);
    let public = photo_url.replace("/media/messages/", "/media/");
    assert_eq!(fetch(&app, Some(&bob), &public).await.0, 404);

    // An upload goes with one message only, and only the uploader's own message uploads go at all.
    let (code, err) = app.gql_err(Some(&alice), SEND_MEDIA, json!({ "to": carol_id, "m": [photo_id] })).await;
    assert_eq!((code.as_str(), err["extensions"]["field"].as_str()), ("BAD_USER_INPUT", Some("input.mediaIds")));
    let (post_image, _) =
        upload(&app, &alice, "POST_IMAGE", ("0", "p.png", "image/png", crate::common::png("p"))).await;
    let (code, _) = app.gql_err(Some(&alice), SEND_MEDIA, json!({ "to": carol_id, "m": [post_image] })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    let (bobs, _) = upload(&app, &bob, "MESSAGE_PHOTO", ("0", "b.png", "image/png", crate::common::png("b"))).await;
    let (code, _) = app.gql_err(Some(&alice), SEND_MEDIA, json!({ "to": carol_id, "m": [bobs] })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    // A refused send stores nothing: carol has no conversation.
    let inbox = "{ conversations(first: 5) { edges { node { id } } } }";
    assert_eq!(app.gql(Some(&carol), inbox, json!({})).await["conversations"]["edges"], json!([]));
    let (code, _) = app.gql_err(Some(&alice), SEND_MEDIA, json!({ "to": carol_id, "body": "" })).await;
    assert_eq!(code, "BAD_USER_INPUT", "no text and no file");
    let mut ten = Vec::new();
    for i in 0..10 {
        let part = ("0", "n.png", "image/png", crate::common::png(&format!("n{i}")));
        ten.push(upload(&app, &alice, "MESSAGE_PHOTO", part).await.0);
    }
    let (code, err) = app.gql_err(Some(&alice), SEND_MEDIA, json!({ "to": carol_id, "m": ten })).await;
    assert_eq!((code.as_str(), err["extensions"]["field"].as_str()), ("BAD_USER_INPUT", Some("input.mediaIds")));
    assert!(err["message"].as_str().unwrap().contains("at most 9"), "{err}");
    let (code, _) = app.gql_err(Some(&alice), SEND_MEDIA, json!({ "to": carol_id, "m": [ten[0], ten[0]] })).await;
    assert_eq!(code, "BAD_USER_INPUT", "an upload listed twice");

    // A moderator opens them once a member of the conversation reports the message.
    let (moderator, _) = app.user_with_role(&phone(4), "MODERATOR").await;
    assert_eq!(fetch(&app, Some(&moderator), &photo_url).await.0, 404);
    let report = "mutation($t: ID!) { reportContent(input: { target: $t, reason: HARASSMENT }) { report { id } } }";
    app.gql(Some(&bob), report, json!({ "t": sent["sendMessage"]["message"]["id"] })).await;
    assert_eq!(fetch(&app, Some(&moderator), &photo_url).await, (200, photo.clone()));

    // The files go with their sender's account.
    let delete = "mutation { deleteAccount(input: { password: \"correct horse\" }) { deleted } }";
    app.gql(Some(&alice), delete, json!({})).await;
    assert_eq!(fetch(&app, Some(&bob), &photo_url).await.0, 404);
}

#[tokio::test]
async fn a_long_message_video_is_unsealed_a_few_segments_at_a_time_within_the_memory_budget() {
    // One MiB of room for unsealed files: exactly one streaming download's share.
    let app = TestApp::spawn_with(|c| c.max_unsealed_mib = 1).await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    // Larger than the socket buffers of a client that stops reading, so its download stays open.
    let mut video = crate::common::mp4();
    video.extend((0..16 * 1024 * 1024).map(|i: u32| (i % 253) as u8));
    let (video_id, url) = upload(&app, &alice, "MESSAGE_VIDEO", ("0", "tour.mp4", "video/mp4", video.clone())).await;
    app.gql(Some(&alice), SEND_MEDIA, json!({ "to": bob_id, "m": [video_id] })).await;

    // Sealed in segments: no plain run of the file in storage, the segmented format's magic first.
    let file = url.rsplit('/').next().unwrap();
    let stored = std::fs::read(app.media_dir.path().join("media").join("private").join(file)).unwrap();
    assert_eq!(&stored[..4], b"ECS2");
    assert!(!stored.windows(64).any(|w| w == &video[100_000..100_064]), "plain bytes in storage");

    // Ranges inside one segment, across segment and read boundaries, and to the end.
    let seg = 64 * 1024;
    for (start, end) in [(0, 99), (seg - 10, seg + 10), (8 * seg - 1, 8 * seg), (3 * seg + 5, 20 * seg + 7)] {
        let part = app.http.get(&url).bearer_auth(&bob).header("range", format!("bytes={start}-{end}")).send();
        let part = part.await.unwrap();
        assert_eq!(part.status(), 206, "{start}-{end}");
        assert_eq!(part.bytes().await.unwrap().as_ref(), &video[start..=end], "{start}-{end}");
    }
    let tail = app.http.get(&url).bearer_auth(&bob).header("range", "bytes=-5").send().await.unwrap();
    assert_eq!(tail.bytes().await.unwrap().as_ref(), &video[video.len() - 5..]);

    // A player that stops reading holds the room: the next download waits for it, then is told to
    // come back (503, Retry-After) rather than unsealing beyond the budget.
    let stalled = app.http.get(&url).bearer_auth(&bob).send().await.unwrap();
    assert_eq!(stalled.status(), 200);
    assert_eq!(stalled.headers()["content-length"], video.len().to_string().as_str());
    let busy = app.http.get(&url).bearer_auth(&bob).send().await.unwrap();
    assert_eq!(busy.status(), 503);
    assert!(busy.headers().get("retry-after").is_some());
    // Once it goes, the room comes back, and the whole file streams in order.
    drop(stalled);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let whole = loop {
        let resp = app.http.get(&url).bearer_auth(&bob).send().await.unwrap();
        if resp.status() == 200 {
            break resp.bytes().await.unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "the room never came back: {}", resp.status());
    };
    assert_eq!(whole.len(), video.len());
    assert!(whole.as_ref() == video.as_slice(), "the whole file, in order");
}

/// A 16 MiB message video from alice to bob: larger than the socket buffers of a client that stops
/// reading, so such a download stays open. Returns bob's token, alice's, the video and its URL.
async fn long_video(app: &TestApp) -> (String, String, Vec<u8>, String) {
    let (alice, _) = app.register(&phone(1), "alice").await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let mut video = crate::common::mp4();
    video.extend((0..16 * 1024 * 1024).map(|i: u32| (i % 251) as u8));
    let (video_id, url) = upload(app, &alice, "MESSAGE_VIDEO", ("0", "long.mp4", "video/mp4", video.clone())).await;
    app.gql(Some(&alice), SEND_MEDIA, json!({ "to": bob_id, "m": [video_id] })).await;
    (bob, alice, video, url)
}

#[tokio::test]
async fn a_member_has_eight_files_open_at_once_and_does_not_keep_others_waiting() {
    // The default room (256 MiB) holds far more than eight streaming downloads.
    let app = TestApp::spawn().await;
    let (bob, alice, video, url) = long_video(&app).await;
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let resp = app.http.get(&url).bearer_auth(&bob).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        stalled.push(resp);
    }
    // Bob's ninth waits for one of his own (as could seven more), then is told to come back.
    let ninth = app.http.get(&url).bearer_auth(&bob).send().await.unwrap();
    assert_eq!(ninth.status(), 503);
    assert!(ninth.headers().get("retry-after").is_some());
    // Alice is not kept waiting by him.
    let hers = app.http.get(&url).bearer_auth(&alice).send().await.unwrap();
    assert_eq!(hers.status(), 200);
    assert!(hers.bytes().await.unwrap().as_ref() == video.as_slice());
    // One of his ends and the next one opens.
    drop(stalled.pop());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let resp = app.http.get(&url).bearer_auth(&bob).header("range", "bytes=0-99").send().await.unwrap();
        if resp.status() == 206 {
            assert_eq!(resp.bytes().await.unwrap().as_ref(), &video[..100]);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "his turn never came back: {}", resp.status());
    }
}

#[tokio::test]
async fn a_download_nobody_reads_is_cut_off_and_gives_its_room_back() {
    // Room for one streaming download, and writes that wait 3 s at most for a reader.
    let app = TestApp::spawn_with(|c| {
        c.max_unsealed_mib = 1;
        c.http_write_timeout_secs = 3;
    })
    .await;
    let (bob, _, video, url) = long_video(&app).await;
    let stalled = app.http.get(&url).bearer_auth(&bob).send().await.unwrap();
    assert_eq!(stalled.status(), 200);
    // The next download waits for the room (up to 10 s); the stalled one is closed long before.
    let next = app.http.get(&url).bearer_auth(&bob).send().await.unwrap();
    assert_eq!(next.status(), 200);
    assert!(next.bytes().await.unwrap().as_ref() == video.as_slice());
    // What the stalled one gets is cut short: its connection ended before its length.
    assert!(stalled.bytes().await.is_err(), "a stalled download was sent whole");
}
