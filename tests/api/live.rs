//! Live streams: life cycle, the host-only ingest key, the room chat with replay, and viewer counts.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{TestApp, phone};

pub const CREATE: &str =
    "mutation($t: String!) { createLiveStream(input: { title: $t }) { liveStream { id status ingestKey } } }";
pub const START: &str =
    "mutation($s: ID!) { startLiveStream(input: { streamId: $s }) { liveStream { status startedAt } } }";
pub const END: &str = "mutation($s: ID!) { endLiveStream(input: { streamId: $s }) { liveStream { status endedAt } } }";
pub const SAY: &str = "mutation($s: ID!, $b: String!) { sendLiveChatMessage(input: { streamId: $s, body: $b }) { message { seq cursor body author { nickname } } } }";
pub const CHAT: &str = "subscription($s: ID!, $after: String) { liveChat(streamId: $s, after: $after) { skipped message { seq cursor body author { nickname } } } }";
pub const COUNT: &str = "query($s: ID!) { liveStream(id: $s) { viewerCount } }";

pub async fn live_stream(app: &TestApp, host: &str) -> String {
    let created = app.gql(Some(host), CREATE, json!({ "t": "广交会 live: LED lights" })).await;
    let id = created["createLiveStream"]["liveStream"]["id"].as_str().unwrap().to_string();
    app.gql(Some(host), START, json!({ "s": id })).await;
    id
}

/// Polls `viewerCount` until it equals `want` (counts settle asynchronously); panics after 10 s.
pub async fn wait_for_count(app: &TestApp, stream: &str, want: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = app.gql(None, COUNT, json!({ "s": stream })).await["liveStream"]["viewerCount"].as_i64().unwrap();
        if got == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "viewerCount stayed {got}, wanted {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn line(v: &Value) -> (i64, String) {
    let m = &v["liveChat"]["message"];
    (m["seq"].as_i64().unwrap(), m["body"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn a_stream_from_creation_to_end() {
    let app = TestApp::spawn().await;
    let (host, _) = app.register(&phone(1), "host").await;
    let (fan, _) = app.register(&phone(2), "fan").await;
    let created = app.gql(Some(&host), CREATE, json!({ "t": "Canton fair walk" })).await;
    let stream = created["createLiveStream"]["liveStream"].clone();
    let id = stream["id"].as_str().unwrap().to_string();
    assert_eq!(stream["status"], "SCHEDULED");
    assert_eq!(stream["ingestKey"].as_str().unwrap().len(), 43);

    // Only the host sees the ingest key.
    let q = "query($s: ID!) { liveStream(id: $s) { ingestKey host { nickname } } }";
    assert_eq!(app.gql(Some(&fan), q, json!({ "s": id })).await["liveStream"]["ingestKey"], Value::Null);
    assert_eq!(app.gql(None, q, json!({ "s": id })).await["liveStream"]["ingestKey"], Value::Null);
    assert_eq!(app.gql(Some(&host), q, json!({ "s": id })).await["liveStream"]["ingestKey"], stream["ingestKey"]);

    // No chat before it starts; nobody but the host starts it.
    let (code, _) = app.gql_err(Some(&fan), SAY, json!({ "s": id, "b": "hello?" })).await;
    assert_eq!(code, "CONFLICT");
    let (code, _) = app.gql_err(Some(&fan), START, json!({ "s": id })).await;
    assert_eq!(code, "FORBIDDEN");
    assert_eq!(
        app.gql(Some(&host), START, json!({ "s": id })).await["startLiveStream"]["liveStream"]["status"],
        "LIVE"
    );

    let browse =
        app.gql(None, "{ liveStreams(status: LIVE, first: 5) { edges { node { id title } } } }", json!({})).await;
    assert_eq!(browse["liveStreams"]["edges"][0]["node"]["id"], id);

    // Anonymous viewers may watch; only members may talk.
    let mut viewer = app.ws(None).await;
    viewer.subscribe("c", CHAT, json!({ "s": id })).await;
    wait_for_count(&app, &id, 1).await;
    let (code, _) = app.gql_err(None, SAY, json!({ "s": id, "b": "hi" })).await;
    assert_eq!(code, "UNAUTHENTICATED");
    for (who, body) in [(&fan, "多少钱?"), (&host, "FOB 2 USD"), (&fan, "MOQ?")] {
        app.gql(Some(who), SAY, json!({ "s": id, "b": body })).await;
    }
    assert_eq!(line(&viewer.next_data("c").await), (1, "多少钱?".into()));
    assert_eq!(line(&viewer.next_data("c").await), (2, "FOB 2 USD".into()));
    let third = viewer.next_data("c").await;
    assert_eq!(line(&third), (3, "MOQ?".into()));
    assert_eq!(third["liveChat"]["skipped"], 0);

    // A late viewer resumes from a cursor.
    let mut late = app.ws(Some(&fan)).await;
    let first_cursor = app
        .gql(
            None,
            "query($s: ID!) { liveStream(id: $s) { chat(first: 3) { edges { node { seq cursor } } } } }",
            json!({ "s": id }),
        )
        .await["liveStream"]["chat"]["edges"][2]["node"]["cursor"]
        .clone();
    late.subscribe("c", CHAT, json!({ "s": id, "after": first_cursor })).await;
    assert_eq!(line(&late.next_data("c").await).0, 2);
    assert_eq!(line(&late.next_data("c").await).0, 3);
    wait_for_count(&app, &id, 2).await;

    // Ending completes every viewer's subscription; chat is closed.
    app.gql(Some(&host), END, json!({ "s": id })).await;
    assert_eq!(viewer.recv().await, json!({ "type": "complete", "id": "c" }));
    assert_eq!(late.recv().await, json!({ "type": "complete", "id": "c" }));
    let (code, _) = app.gql_err(Some(&fan), SAY, json!({ "s": id, "b": "late" })).await;
    assert_eq!(code, "CONFLICT");
    let (code, _) = app.gql_err(Some(&host), START, json!({ "s": id })).await;
    assert_eq!(code, "CONFLICT");
    wait_for_count(&app, &id, 0).await;
}

#[tokio::test]
async fn viewers_are_counted_once_and_leave_when_their_socket_dies() {
    let app = TestApp::spawn().await;
    let (host, _) = app.register(&phone(1), "host").await;
    let (fan, _) = app.register(&phone(2), "fan").await;
    let id = live_stream(&app, &host).await;

    // One member on two sockets (two tabs) is one viewer; an anonymous socket is another.
    let mut tab1 = app.ws(Some(&fan)).await;
    let mut tab2 = app.ws(Some(&fan)).await;
    let mut anon = app.ws(None).await;
    for ws in [&mut tab1, &mut tab2, &mut anon] {
        ws.subscribe("c", CHAT, json!({ "s": id })).await;
    }
    wait_for_count(&app, &id, 2).await;
    // Completing the subscription leaves; so does a socket that just disappears.
    tab1.send(json!({ "type": "complete", "id": "c" })).await;
    wait_for_count(&app, &id, 2).await;
    drop(tab2);
    wait_for_count(&app, &id, 1).await;
    drop(anon);
    wait_for_count(&app, &id, 0).await;
}

#[tokio::test]
async fn chat_input_is_checked() {
    let app = TestApp::spawn().await;
    let (host, _) = app.register(&phone(1), "host").await;
    let id = live_stream(&app, &host).await;
    let (code, err) = app.gql_err(Some(&host), SAY, json!({ "s": id, "b": "" })).await;
    assert_eq!((code.as_str(), err["extensions"]["field"].as_str()), ("BAD_USER_INPUT", Some("input.body")));
    let (code, _) = app.gql_err(Some(&host), SAY, json!({ "s": id, "b": "x".repeat(501) })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    let (code, _) = app.gql_err(Some(&host), CREATE, json!({ "t": "" })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    let mut ws = app.ws(None).await;
    ws.subscribe("c", CHAT, json!({ "s": "TGl2ZVN0cmVhbTo5OTk5" })).await;
    let msg = ws.recv().await;
    assert_eq!(msg["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND");
}

#[tokio::test]
async fn hosts_and_moderators_delete_lines_and_mute_viewers_and_rooms_carry_media_urls() {
    let app = TestApp::spawn_with(|c| {
        c.live_ingest_url = "rtmp://ingest.example.com/live/{stream}?key={key}".into();
        c.live_playback_hls_url = "https://play.example.com/live/{stream}.m3u8".into();
    })
    .await;
    let (host, _) = app.register(&phone(1), "host").await;
    let (fan, fan_id) = app.register(&phone(2), "fan").await;
    let (other, _) = app.register(&phone(3), "other").await;
    let (moderator, _) = app.user_with_role(&phone(4), "MODERATOR").await;
    let id = live_stream(&app, &host).await;

    // The host gets the push address with the key; viewers the playback URLs, never the key.
    let urls = "query($s: ID!) { liveStream(id: $s) { ingestKey ingestUrl playback { hls flv } } }";
    let mine = app.gql(Some(&host), urls, json!({ "s": id })).await["liveStream"].clone();
    let key = mine["ingestKey"].as_str().unwrap();
    let n = ecer_gateway::graphql::ids::decode_any(&id).unwrap().1;
    assert_eq!(mine["ingestUrl"], format!("rtmp://ingest.example.com/live/ecer-{n}?key={key}"));
    let theirs = app.gql(Some(&fan), urls, json!({ "s": id })).await["liveStream"].clone();
    assert_eq!(theirs["ingestUrl"], Value::Null);
    assert_eq!(
        theirs["playback"],
        json!({ "hls": format!("https://play.example.com/live/ecer-{n}.m3u8"), "flv": null })
    );
    assert!(!theirs.to_string().contains(key));

    let events = "subscription($s: ID!) { liveChat(streamId: $s) { kind message { id seq body isDeleted } } }";
    let mut ws = app.ws(Some(&other)).await;
    ws.subscribe("c", events, json!({ "s": id })).await;
    // The chat starts at the newest line when it reads the room, and only then counts its viewer.
    wait_for_count(&app, &id, 1).await;
    let said =
        "mutation($s: ID!, $b: String!) { sendLiveChatMessage(input: { streamId: $s, body: $b }) { message { id } } }";
    let spam = app.gql(Some(&fan), said, json!({ "s": id, "b": "buy cheap followers" })).await["sendLiveChatMessage"]
        ["message"]["id"]
        .clone();
    let got = ws.next_data("c").await["liveChat"].clone();
    assert_eq!((got["kind"].as_str(), got["message"]["body"].as_str()), (Some("CREATED"), Some("buy cheap followers")));

    // Another viewer may not delete it; the host may, and viewers holding it are told.
    let delete = "mutation($id: ID!) { deleteLiveChatMessage(input: { id: $id }) { message { isDeleted body } liveStream { id } } }";
    assert_eq!(app.gql_err(Some(&other), delete, json!({ "id": spam })).await.0, "FORBIDDEN");
    let gone = app.gql(Some(&host), delete, json!({ "id": spam })).await;
    assert_eq!(gone["deleteLiveChatMessage"]["message"], json!({ "isDeleted": true, "body": "" }));
    let got = ws.next_data("c").await["liveChat"].clone();
    assert_eq!(got["kind"], "DELETED");
    assert_eq!(got["message"], json!({ "id": spam, "seq": 1, "body": "", "isDeleted": true }));
    // A late joiner replays the tombstone in its place: no hole in the cursors, no text.
    let replay = "subscription($s: ID!, $a: String) { liveChat(streamId: $s, after: $a) { kind message { seq body isDeleted } } }";
    let mut late = app.ws(None).await;
    let start = ecer_gateway::services::page::Cursor::Id(0).encode();
    late.subscribe("c", replay, json!({ "s": id, "a": start })).await;
    assert_eq!(
        late.next_data("c").await["liveChat"],
        json!({ "kind": "CREATED", "message": { "seq": 1, "body": "", "isDeleted": true } })
    );
    let history = "query($s: ID!) { liveStream(id: $s) { chat(first: 5) { nodes { seq body isDeleted } } } }";
    let lines = app.gql(None, history, json!({ "s": id })).await;
    assert_eq!(lines["liveStream"]["chat"]["nodes"], json!([{ "seq": 1, "body": "", "isDeleted": true }]));

    // A moderator mutes the fan here; the fan cannot speak until it is lifted. Nobody mutes the host.
    let mute = "mutation($s: ID!, $u: ID!, $m: Int!) { muteLiveChatViewer(input: { streamId: $s, userId: $u, minutes: $m }) { mutedUntil user { nickname } } }";
    assert_eq!(app.gql_err(Some(&other), mute, json!({ "s": id, "u": fan_id, "m": 10 })).await.0, "FORBIDDEN");
    let muted = app.gql(Some(&moderator), mute, json!({ "s": id, "u": fan_id, "m": 10 })).await;
    assert!(muted["muteLiveChatViewer"]["mutedUntil"].is_string());
    let (code, _) = app.gql_err(Some(&fan), said, json!({ "s": id, "b": "hello?" })).await;
    assert_eq!(code, "FORBIDDEN");
    assert_eq!(app.gql_err(Some(&host), mute, json!({ "s": id, "u": fan_id, "m": -1 })).await.0, "BAD_USER_INPUT");
    // A week at most.
    assert_eq!(app.gql_err(Some(&host), mute, json!({ "s": id, "u": fan_id, "m": 10_081 })).await.0, "BAD_USER_INPUT");
    assert!(app.gql(Some(&host), mute, json!({ "s": id, "u": fan_id, "m": 10_080 })).await["muteLiveChatViewer"]["mutedUntil"].is_string());
    let lifted = app.gql(Some(&host), mute, json!({ "s": id, "u": fan_id, "m": 0 })).await;
    assert_eq!(lifted["muteLiveChatViewer"]["mutedUntil"], Value::Null);
    app.gql(Some(&fan), said, json!({ "s": id, "b": "sorry" })).await;
    let host_id = app.gql(Some(&host), "{ me { id } }", json!({})).await["me"]["id"].clone();
    let (code, _) = app.gql_err(Some(&moderator), mute, json!({ "s": id, "u": host_id, "m": 10 })).await;
    assert_eq!(code, "BAD_USER_INPUT");
}

#[tokio::test]
async fn a_room_shows_the_hosts_own_image_as_its_cover() {
    let app = TestApp::spawn().await;
    let (host, _) = app.register(&phone(1), "host").await;
    let (other, _) = app.register(&phone(2), "other").await;
    let upload =
        "mutation($file: Upload!) { uploadMedia(input: { file: $file, kind: POST_IMAGE }) { media { id url } } }";
    let upload_as = |token: String| {
        let app = &app;
        async move {
            app.upload(&token, upload, json!({}), ("0", "cover.png", "image/png", crate::common::png("cover"))).await
                ["uploadMedia"]["media"]
                .clone()
        }
    };
    let mine = upload_as(host.clone()).await;
    let theirs = upload_as(other.clone()).await;
    let create = "mutation($t: String!, $c: ID) { createLiveStream(input: { title: $t, coverMediaId: $c }) { liveStream { id coverUrl } } }";
    let (code, err) = app.gql_err(Some(&host), create, json!({ "t": "t", "c": theirs["id"] })).await;
    assert_eq!((code.as_str(), &err["extensions"]["field"]), ("BAD_USER_INPUT", &json!("input.coverMediaId")));
    let room = app.gql(Some(&host), create, json!({ "t": "t", "c": mine["id"] })).await;
    assert_eq!(room["createLiveStream"]["liveStream"]["coverUrl"], mine["url"]);
    let served = app.http.get(app.url(mine["url"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(served.status(), 200);
    let bare = app.gql(Some(&host), create, json!({ "t": "t", "c": null })).await;
    assert_eq!(bare["createLiveStream"]["liveStream"]["coverUrl"], Value::Null);
}

#[tokio::test]
async fn a_room_page_hears_the_status_and_the_viewer_count_change() {
    let app = TestApp::spawn().await;
    let (host, _) = app.register(&phone(1), "host").await;
    let created = app.gql(Some(&host), CREATE, json!({ "t": "样品直播" })).await;
    let id = created["createLiveStream"]["liveStream"]["id"].as_str().unwrap().to_string();
    let updates = "subscription($s: ID!) { liveStreamUpdated(streamId: $s) { kind node { id status viewerCount } } }";
    let mut page = app.ws(None).await;
    page.subscribe("u", updates, json!({ "s": id })).await;
    let next = |v: Value| {
        let e = &v["liveStreamUpdated"];
        (
            e["kind"].as_str().unwrap().to_string(),
            e["node"]["status"].as_str().unwrap().to_string(),
            e["node"]["viewerCount"].as_i64().unwrap(),
        )
    };
    assert_eq!(next(page.next_data("u").await), ("UPDATED".into(), "SCHEDULED".into(), 0));
    app.gql(Some(&host), START, json!({ "s": id })).await;
    assert_eq!(next(page.next_data("u").await), ("UPDATED".into(), "LIVE".into(), 0));
    // Someone starts watching (the chat counts as watching): the page hears within a tick.
    let mut viewer = app.ws(None).await;
    viewer.subscribe("c", CHAT, json!({ "s": id })).await;
    assert_eq!(next(page.next_data("u").await), ("UPDATED".into(), "LIVE".into(), 1));
    app.gql(Some(&host), END, json!({ "s": id })).await;
    // A count tick may still report the room LIVE first (its count moving as the viewer's chat ends);
    // the ENDED event follows.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (kind, status, _) = next(page.next_data("u").await);
        if (kind.as_str(), status.as_str()) == ("UPDATED", "LIVE") {
            assert!(tokio::time::Instant::now() < deadline, "no ENDED event within 15 s");
            continue;
        }
        assert_eq!((kind.as_str(), status.as_str()), ("UPDATED", "ENDED"));
        break;
    }
    assert_eq!(page.recv().await, json!({ "type": "complete", "id": "u" }));
}

/// Statements the gateway ran while `line` was said and reached every socket in `sockets`; the
/// least of three lines, since the request log's writer lands its own statements at any time.
async fn statements_per_line(app: &TestApp, host: &str, stream: &str, sockets: &mut [crate::common::Ws]) -> u64 {
    let say =
        "mutation($s: ID!, $b: String!) { sendLiveChatMessage(input: { streamId: $s, body: $b }) { message { seq } } }";
    let mut least = u64::MAX;
    for n in 0..3 {
        let before = app.statements();
        app.gql(Some(host), say, json!({ "s": stream, "b": format!("line {n}") })).await;
        for ws in sockets.iter_mut() {
            assert_eq!(ws.next_data("c").await["liveChat"]["message"]["body"], format!("line {n}"));
        }
        least = least.min(app.statements() - before);
    }
    least
}

#[tokio::test]
async fn a_room_full_of_viewers_costs_one_execution_per_line() {
    // Every read reaches the database: each execution of the line's `author` is a statement.
    let app = TestApp::uncached().await;
    let (host, _) = app.register(&phone(1), "host").await;
    let (fan, _) = app.register(&phone(2), "fan").await;
    let id = live_stream(&app, &host).await;
    let chat = "subscription($s: ID!) { liveChat(streamId: $s) { message { body author { nickname } } } }";
    let mut sockets = vec![app.ws(None).await];
    sockets[0].subscribe("c", chat, json!({ "s": id })).await;
    wait_for_count(&app, &id, 1).await;
    let alone = statements_per_line(&app, &host, &id, &mut sockets).await;

    // Four more signed-out viewers and a member (the document reads nothing of the viewer).
    for token in [None, None, None, None, Some(fan.as_str())] {
        let mut ws = app.ws(token).await;
        ws.subscribe("c", chat, json!({ "s": id })).await;
        sockets.push(ws);
    }
    wait_for_count(&app, &id, 6).await;
    assert_eq!(app.state.shared_feeds.len(), 1, "one execution for the room");
    let six = statements_per_line(&app, &host, &id, &mut sockets).await;
    assert_eq!(six, alone, "the line's author is read once for six viewers as for one");

    // Everyone leaves: the feed stops, and the room is empty.
    for ws in &mut sockets {
        ws.send(json!({ "type": "complete", "id": "c" })).await;
    }
    wait_for_count(&app, &id, 0).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !app.state.shared_feeds.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the feed outlived its members");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_document_that_asks_about_the_viewer_is_answered_for_each_member() {
    let app = TestApp::spawn().await;
    let (host, _) = app.register(&phone(1), "host").await;
    let (fan, _) = app.register(&phone(2), "fan").await;
    let id = live_stream(&app, &host).await;
    let chat = "subscription($s: ID!) { liveChat(streamId: $s) { message { body author { nickname isViewer } } } }";
    let mut sockets = Vec::new();
    for token in [Some(host.as_str()), Some(fan.as_str()), None, None] {
        let mut ws = app.ws(token).await;
        ws.subscribe("c", chat, json!({ "s": id })).await;
        sockets.push(ws);
    }
    wait_for_count(&app, &id, 4).await;
    // The two signed-out viewers share; each member runs the document as themselves.
    assert_eq!(app.state.shared_feeds.len(), 1);
    app.gql(Some(&host), SAY, json!({ "s": id, "b": "welcome" })).await;
    let mut seen = Vec::new();
    for ws in &mut sockets {
        seen.push(ws.next_data("c").await["liveChat"]["message"]["author"]["isViewer"].clone());
    }
    assert_eq!(seen, [json!(true), json!(false), json!(false), json!(false)]);
}

#[tokio::test]
async fn a_late_room_page_starts_from_the_state_now_and_all_pages_end_together() {
    let app = TestApp::spawn().await;
    let (host, _) = app.register(&phone(1), "host").await;
    let id = live_stream(&app, &host).await;
    let updates = "subscription($s: ID!) { liveStreamUpdated(streamId: $s) { node { status } } }";
    let mut early = app.ws(None).await;
    early.subscribe("u", updates, json!({ "s": id })).await;
    assert_eq!(early.next_data("u").await["liveStreamUpdated"]["node"]["status"], "LIVE");
    let mut late = app.ws(None).await;
    late.subscribe("u", updates, json!({ "s": id })).await;
    assert_eq!(late.next_data("u").await["liveStreamUpdated"]["node"]["status"], "LIVE");
    assert_eq!(app.state.shared_feeds.len(), 1);
    app.gql(Some(&host), END, json!({ "s": id })).await;
    for ws in [&mut early, &mut late] {
        assert_eq!(ws.next_data("u").await["liveStreamUpdated"]["node"]["status"], "ENDED");
        assert_eq!(ws.recv().await, json!({ "type": "complete", "id": "u" }));
    }
    // A page that opens after the end runs its own (new) execution and gets the end at once.
    let mut after = app.ws(None).await;
    after.subscribe("u", updates, json!({ "s": id })).await;
    assert_eq!(after.next_data("u").await["liveStreamUpdated"]["node"]["status"], "ENDED");
    assert_eq!(after.recv().await, json!({ "type": "complete", "id": "u" }));
}
