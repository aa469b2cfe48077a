use std::collections::HashSet;

use serde_json::{Value, json};

use crate::common::{TestApp, phone};

async fn page(app: &TestApp, order: &str, first: i32, after: Option<&str>) -> (Vec<String>, Option<String>, bool) {
    let d = app
        .gql(
            None,
            "query($first: Int, $after: String, $order: PostOrder) { posts(first: $first, after: $after, orderBy: $order) {
                edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage endCursor } } }",
            json!({ "first": first, "after": after, "order": order }),
        )
        .await;
    let ids =
        d["posts"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["id"].as_str().unwrap().to_string()).collect();
    let info = &d["posts"]["pageInfo"];
    (ids, info["endCursor"].as_str().map(str::to_string), info["hasNextPage"].as_bool().unwrap())
}

/// Pages through the whole list while new posts keep arriving: every post that existed at the start is
/// seen exactly once, and none is skipped.
#[tokio::test]
async fn paging_has_no_gaps_or_duplicates_under_concurrent_inserts() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let board = app.create_board(&admin, "b1", "Board").await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let mut original = Vec::new();
    for i in 0..23 {
        original.push(app.create_post(&alice, &board, &format!("post {i}")).await);
    }
    // Varied engagement, with ties, so HOT pages cross both distinct and equal scores.
    let likers = [app.register(&phone(50), "l1").await.0, app.register(&phone(51), "l2").await.0];
    for (i, post) in original.iter().enumerate() {
        for liker in likers.iter().take(i % 3) {
            app.gql(
                Some(liker),
                "mutation($input: LikePostInput!) { likePost(input: $input) { post { id } } }",
                json!({ "input": { "postId": post } }),
            )
            .await;
        }
    }
    for order in ["LATEST", "HOT"] {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (ids, end, more) = page(&app, order, 5, after.as_deref()).await;
            seen.extend(ids);
            // Someone posts while we page.
            app.create_post(&alice, &board, "interloper").await;
            if !more {
                break;
            }
            after = end;
        }
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "{order}: duplicates in {seen:?}");
        for id in &original {
            assert!(unique.contains(id), "{order}: {id} was skipped");
        }
    }
    // LATEST is newest first.
    let (ids, _, _) = page(&app, "LATEST", 100, None).await;
    let pos = |id: &String| ids.iter().position(|x| x == id).unwrap();
    assert!(pos(&original[22]) < pos(&original[0]));
}

#[tokio::test]
async fn page_size_is_capped_and_cursors_checked() {
    let app = TestApp::spawn_with(|c| c.max_page_size = 50).await;
    let (code, err) = app.gql_err(None, "{ posts(first: 51) { edges { cursor } } }", json!({})).await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert_eq!(err["extensions"]["field"], "first");
    assert!(err["message"].as_str().unwrap().contains("50"), "{err}");
    let (code, _) = app.gql_err(None, "{ posts(first: -1) { edges { cursor } } }", json!({})).await;
    assert_eq!(code, "BAD_USER_INPUT");
    let (code, err) = app.gql_err(None, "{ posts(after: \"not-a-cursor\") { edges { cursor } } }", json!({})).await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert_eq!(err["extensions"]["field"], "after");
    app.gql(None, "{ posts(first: 50) { edges { cursor } } boards(first: 0) { edges { cursor } } }", json!({})).await;
}

#[tokio::test]
async fn hot_ranks_engagement_and_comment_pages_continue() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let board = app.create_board(&admin, "b1", "Board").await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let quiet = app.create_post(&alice, &board, "quiet").await;
    let popular = app.create_post(&alice, &board, "popular").await;
    let newest = app.create_post(&alice, &board, "newest").await;
    for i in 0..5 {
        let (t, _) = app.register(&phone(10 + i), "fan").await;
        app.gql(
            Some(&t),
            "mutation($input: LikePostInput!) { likePost(input: $input) { post { id } } }",
            json!({ "input": { "postId": popular } }),
        )
        .await;
    }
    let (hot, _, _) = page(&app, "HOT", 10, None).await;
    assert_eq!(hot[0], popular, "{hot:?}");
    let (latest, _, _) = page(&app, "LATEST", 10, None).await;
    assert_eq!(latest, vec![newest, popular.clone(), quiet]);

    // Comments page oldest first with cursors.
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(app.comment(&alice, &popular, None, &format!("c{i}")).await);
    }
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let d = app
            .gql(
                None,
                "query($id: ID!, $after: String) { post(id: $id) { comments(first: 3, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } } } }",
                json!({ "id": popular, "after": after }),
            )
            .await;
        let c = &d["post"]["comments"];
        seen.extend(c["edges"].as_array().unwrap().iter().map(|e| e["node"]["id"].as_str().unwrap().to_string()));
        if !c["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = c["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen, ids);
}

/// One page of a connection: (node ids, edge cursors, pageInfo).
fn edges_of(conn: &Value) -> (Vec<String>, Vec<String>, Value) {
    let edges = conn["edges"].as_array().unwrap_or_else(|| panic!("no edges in {conn}"));
    let ids = edges.iter().map(|e| e["node"]["id"].as_str().unwrap().to_string()).collect();
    let cursors = edges.iter().map(|e| e["cursor"].as_str().unwrap().to_string()).collect();
    (ids, cursors, conn["pageInfo"].clone())
}

const PAGE_INFO: &str = "pageInfo { hasPreviousPage hasNextPage startCursor endCursor }";

fn messages_query() -> String {
    format!(
        "query($c: ID!, $first: Int, $after: String, $last: Int, $before: String) {{
            messages(conversationId: $c, first: $first, after: $after, last: $last, before: $before) {{
                edges {{ cursor node {{ id cursor body }} }} {PAGE_INFO} }} }}"
    )
}

/// Messages are newest first. A client that shows the newest page, goes away while messages keep
/// coming, then fills the gap with `last`/`before` (towards the present) and scrolls back with
/// `first`/`after` (into history) sees every message exactly once; the page flags tell it when to stop.
#[tokio::test]
async fn backward_and_forward_pages_meet_with_no_gap_while_messages_arrive() {
    let app = TestApp::spawn().await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let mut all = Vec::new();
    for i in 0..12 {
        let sent = crate::messaging::send(&app, &alice, &bob_id, &format!("m{i}")).await;
        all.push(sent["message"]["id"].as_str().unwrap().to_string());
    }
    let conv = crate::messaging::send(&app, &alice, &bob_id, "m12").await;
    all.push(conv["message"]["id"].as_str().unwrap().to_string());
    let conv = conv["conversation"]["id"].as_str().unwrap().to_string();
    let q = messages_query();
    let page = |vars: Value| {
        let (app, bob, q) = (&app, &bob, &q);
        async move { edges_of(&app.gql(Some(bob), q, vars).await["messages"]) }
    };

    // The newest five, newest first: nothing newer, more older.
    let (first, cursors, info) = page(json!({ "c": conv, "first": 5 })).await;
    let newest: Vec<String> = all.iter().rev().take(5).cloned().collect();
    assert_eq!(first, newest);
    assert_eq!((info["hasPreviousPage"].as_bool(), info["hasNextPage"].as_bool()), (Some(false), Some(true)));
    assert_eq!(info["startCursor"].as_str(), cursors.first().map(String::as_str));

    // Seven more arrive while the client is away.
    for i in 13..20 {
        let sent = crate::messaging::send(&app, &alice, &bob_id, &format!("m{i}")).await;
        all.push(sent["message"]["id"].as_str().unwrap().to_string());
    }
    // Fill the gap towards the present, three at a time; another message lands mid-way.
    let mut gap: Vec<String> = Vec::new();
    let mut before = info["startCursor"].clone();
    let mut steps = 0;
    loop {
        let (ids, _, info) = page(json!({ "c": conv, "last": 3, "before": before })).await;
        // Still newest first inside the page; each backward page sits above the ones before it.
        gap.splice(0..0, ids);
        assert_eq!(info["hasNextPage"], true, "a page read from `before` has that item after it");
        steps += 1;
        if steps == 1 {
            let sent = crate::messaging::send(&app, &alice, &bob_id, "late").await;
            all.push(sent["message"]["id"].as_str().unwrap().to_string());
        }
        if !info["hasPreviousPage"].as_bool().unwrap() {
            break;
        }
        before = info["startCursor"].clone();
        assert!(steps < 10, "backward paging does not end");
    }
    let newer: Vec<String> = all[13..].iter().rev().cloned().collect();
    assert_eq!(gap, newer, "the gap is filled in order, the late message included");

    // Back into history from the first page's end.
    let mut older = Vec::new();
    let mut after = info["endCursor"].clone();
    loop {
        let (ids, _, info) = page(json!({ "c": conv, "first": 4, "after": after })).await;
        assert_eq!(info["hasPreviousPage"], true);
        older.extend(ids);
        if !info["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = info["endCursor"].clone();
    }
    let mut seen: Vec<String> = gap.into_iter().chain(first).chain(older).collect();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates");
    seen.reverse();
    assert_eq!(seen, all, "every message once, none skipped");

    // `last` alone is the oldest end of the list, still listed newest first.
    let (oldest, _, info) = page(json!({ "c": conv, "last": 2 })).await;
    assert_eq!(oldest, vec![all[1].clone(), all[0].clone()]);
    assert_eq!((info["hasPreviousPage"].as_bool(), info["hasNextPage"].as_bool()), (Some(true), Some(false)));
}

const COMMENTS: &str = "query($p: ID!, $first: Int, $after: String, $last: Int, $before: String, $around: ID) {
    post(id: $p) { commentCount comments(first: $first, after: $after, last: $last, before: $before, around: $around) {
        totalCount edges { cursor node { id } } pageInfo { hasPreviousPage hasNextPage startCursor endCursor } } } }";

/// Comments are oldest first: `last` gives the latest, `before` walks back to the first one, and a
/// forward walk from there meets it; comments posted meanwhile show up at the end only.
#[tokio::test]
async fn latest_comments_then_back_to_the_first() {
    let (app, c) = TestApp::community().await;
    let mut ids = Vec::new();
    for i in 0..9 {
        ids.push(app.comment(&c.alice, &c.post, None, &format!("c{i}")).await);
    }
    let comments = |vars: Value| {
        let app = &app;
        async move { app.gql(None, COMMENTS, vars).await["post"]["comments"].clone() }
    };
    let conn = comments(json!({ "p": c.post, "last": 4 })).await;
    let (latest, _, info) = edges_of(&conn);
    assert_eq!(latest, ids[5..].to_vec(), "the latest four, oldest first");
    assert_eq!((info["hasPreviousPage"].as_bool(), info["hasNextPage"].as_bool()), (Some(true), Some(false)));
    assert_eq!(conn["totalCount"], 9);

    let mut walked = latest;
    let mut before = info["startCursor"].clone();
    loop {
        // Someone comments while we walk back: the backward walk is not disturbed.
        app.comment(&c.alice, &c.post, None, "meanwhile").await;
        let (page, _, info) = edges_of(&comments(json!({ "p": c.post, "last": 4, "before": before })).await);
        walked.splice(0..0, page);
        assert_eq!(info["hasNextPage"], true);
        if !info["hasPreviousPage"].as_bool().unwrap() {
            break;
        }
        before = info["startCursor"].clone();
    }
    assert_eq!(walked, ids);

    // `first` with `before`: the first two before the latest page, a forward page with a bound.
    let (page, _, info) = edges_of(&comments(json!({ "p": c.post, "first": 2, "before": edges_of(&conn).1[0] })).await);
    assert_eq!(page, ids[..2].to_vec());
    assert_eq!((info["hasPreviousPage"].as_bool(), info["hasNextPage"].as_bool()), (Some(false), Some(true)));

    // Replies read both ways too, and their count is the reply count.
    let parent = &ids[0];
    let mut replies = Vec::new();
    for i in 0..5 {
        replies.push(app.comment(&c.alice, &c.post, Some(parent), &format!("r{i}")).await);
    }
    let q = "query($c: ID!, $before: String) { node(id: $c) { ... on Comment { replyCount
        replies(last: 2, before: $before) { totalCount edges { cursor node { id } } pageInfo { hasPreviousPage hasNextPage startCursor endCursor } } } } }";
    let d = app.gql(None, q, json!({ "c": parent })).await;
    let (page, _, info) = edges_of(&d["node"]["replies"]);
    assert_eq!(page, replies[3..].to_vec());
    assert_eq!(d["node"]["replies"]["totalCount"], 5);
    assert_eq!(d["node"]["replyCount"], 5);
    let d = app.gql(None, q, json!({ "c": parent, "before": info["startCursor"] })).await;
    assert_eq!(edges_of(&d["node"]["replies"]).0, replies[1..3].to_vec());
}

#[tokio::test]
async fn live_chat_history_reads_towards_the_present() {
    let app = TestApp::spawn().await;
    let (host, _) = app.register(&phone(1), "host").await;
    let stream = crate::live::live_stream(&app, &host).await;
    let mut cursors = Vec::new();
    for i in 0..6 {
        let said = app.gql(Some(&host), crate::live::SAY, json!({ "s": stream, "b": format!("line {i}") })).await;
        cursors.push(said["sendLiveChatMessage"]["message"]["cursor"].as_str().unwrap().to_string());
    }
    let q = "query($s: ID!, $last: Int, $before: String) { liveStream(id: $s) { chat(last: $last, before: $before) {
        edges { cursor node { seq } } pageInfo { hasPreviousPage hasNextPage } } } }";
    // Newer than line 1 (seq 2), the two right after it: seq 3 and 4, newest first.
    let d = app.gql(None, q, json!({ "s": stream, "last": 2, "before": cursors[1] })).await;
    let chat = &d["liveStream"]["chat"];
    let seqs: Vec<i64> = chat["edges"].as_array().unwrap().iter().map(|e| e["node"]["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, vec![4, 3]);
    assert_eq!(chat["pageInfo"], json!({ "hasPreviousPage": true, "hasNextPage": true }));
    let d = app.gql(None, q, json!({ "s": stream, "last": 10, "before": cursors[1] })).await;
    let chat = &d["liveStream"]["chat"];
    assert_eq!(chat["edges"].as_array().unwrap().len(), 4);
    assert_eq!(chat["pageInfo"]["hasPreviousPage"], false);
}

#[tokio::test]
async fn first_with_last_and_bad_backward_arguments_are_refused() {
    let app = TestApp::spawn_with(|cfg| cfg.max_page_size = 50).await;
    let admin = app.admin().await;
    let board = app.create_board(&admin, "b1", "Board").await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let post = app.create_post(&alice, &board, "t").await;
    let q = "query($p: ID!, $first: Int, $last: Int, $before: String, $after: String, $around: ID) { post(id: $p) {
        comments(first: $first, last: $last, before: $before, after: $after, around: $around) { edges { cursor } } } }";
    let refused = |token: Option<&'static str>, q: &'static str, vars: Value| {
        let app = &app;
        async move {
            let (code, err) = app.gql_err(token, q, vars).await;
            assert_eq!(code, "BAD_USER_INPUT", "{err}");
            (err["extensions"]["field"].as_str().unwrap_or_default().to_string(), err)
        }
    };
    let (field, err) = refused(None, q, json!({ "p": post, "first": 2, "last": 2 })).await;
    assert_eq!(field, "last");
    assert!(err["message"].as_str().unwrap().contains("first"), "{err}");
    let (field, err) = refused(None, q, json!({ "p": post, "last": 51 })).await;
    assert_eq!(field, "last");
    assert!(err["message"].as_str().unwrap().contains("50"), "{err}");
    assert_eq!(refused(None, q, json!({ "p": post, "last": -1 })).await.0, "last");
    assert_eq!(refused(None, q, json!({ "p": post, "last": 2, "before": "not-a-cursor" })).await.0, "before");
    let comment = app.comment(&alice, &post, None, "hello").await;
    assert_eq!(refused(None, q, json!({ "p": post, "around": comment, "last": 2 })).await.0, "around");
    assert_eq!(refused(None, q, json!({ "p": post, "around": post })).await.0, "around", "a post id is no comment");

    // Messages, chat and notifications refuse the same way.
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let sent = crate::messaging::send(&app, &alice, &bob_id, "hi").await;
    let conv = sent["conversation"]["id"].clone();
    let (code, err) = app
        .gql_err(
            Some(&bob),
            "query($c: ID!) { messages(conversationId: $c, first: 1, last: 1) { edges { cursor } } }",
            json!({ "c": conv }),
        )
        .await;
    assert_eq!((code.as_str(), err["extensions"]["field"].as_str()), ("BAD_USER_INPUT", Some("last")));
    let (code, err) =
        app.gql_err(Some(&bob), "{ notifications(first: 1, last: 1) { edges { cursor } } }", json!({})).await;
    assert_eq!((code.as_str(), err["extensions"]["field"].as_str()), ("BAD_USER_INPUT", Some("last")));
}

/// A notification links into comment 20 of 30: `around` opens the page holding it, with room on
/// both sides and cursors to page on; a linked reply opens its thread's page, and `ancestors`
/// gives the path down to it.
#[tokio::test]
async fn around_opens_the_page_of_a_linked_comment() {
    let (app, c) = TestApp::community().await;
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(app.comment(&c.alice, &c.post, None, &format!("c{i}")).await);
    }
    let around = |id: &str, first: i32| {
        let (app, post, id) = (&app, c.post.clone(), id.to_string());
        async move { app.gql(None, COMMENTS, json!({ "p": post, "around": id, "first": first })).await["post"].clone() }
    };
    let post = around(&ids[20], 6).await;
    let (page, _, info) = edges_of(&post["comments"]);
    assert_eq!(page, ids[17..23].to_vec(), "three before, the linked one, two after");
    assert_eq!((info["hasPreviousPage"].as_bool(), info["hasNextPage"].as_bool()), (Some(true), Some(true)));
    assert_eq!(post["comments"]["totalCount"], post["commentCount"]);
    // Paging on from either end continues without a gap.
    let next = app.gql(None, COMMENTS, json!({ "p": c.post, "first": 3, "after": info["endCursor"] })).await;
    assert_eq!(edges_of(&next["post"]["comments"]).0, ids[23..26].to_vec());
    let prev = app.gql(None, COMMENTS, json!({ "p": c.post, "last": 3, "before": info["startCursor"] })).await;
    assert_eq!(edges_of(&prev["post"]["comments"]).0, ids[14..17].to_vec());

    // Near the end, the room goes before; near the start, after.
    let (page, _, info) = edges_of(&around(&ids[29], 6).await["comments"]);
    assert_eq!(page, ids[24..30].to_vec());
    assert_eq!((info["hasPreviousPage"].as_bool(), info["hasNextPage"].as_bool()), (Some(true), Some(false)));
    let (page, _, info) = edges_of(&around(&ids[0], 6).await["comments"]);
    assert_eq!(page, ids[..6].to_vec());
    assert_eq!((info["hasPreviousPage"].as_bool(), info["hasNextPage"].as_bool()), (Some(false), Some(true)));

    // A reply three levels down: the page of its top-level comment, and its path.
    let r1 = app.comment(&c.alice, &c.post, Some(&ids[5]), "r1").await;
    let r2 = app.comment(&c.alice, &c.post, Some(&r1), "r2").await;
    let r3 = app.comment(&c.alice, &c.post, Some(&r2), "r3").await;
    let (page, _, _) = edges_of(&around(&r3, 4).await["comments"]);
    assert_eq!(page, ids[3..7].to_vec());
    let path = app
        .gql(None, "query($c: ID!) { node(id: $c) { ... on Comment { ancestors { id } } } }", json!({ "c": r3 }))
        .await;
    let path: Vec<&str> =
        path["node"]["ancestors"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(path, vec![ids[5].as_str(), r1.as_str(), r2.as_str()]);

    // Another post's comment, or one that does not exist: BAD_USER_INPUT on `around`.
    let other = app.create_post(&c.alice, &c.board, "other").await;
    let foreign = app.comment(&c.alice, &other, None, "elsewhere").await;
    for id in [foreign.clone(), "Q29tbWVudDo5OTk5OTk".to_string()] {
        let (code, err) = app.gql_err(None, COMMENTS, json!({ "p": c.post, "around": id, "first": 4 })).await;
        assert_eq!((code.as_str(), err["extensions"]["field"].as_str()), ("BAD_USER_INPUT", Some("around")), "{err}");
    }
}

/// `Message.cursor`, `Notification.cursor` and `LiveChatMessage.cursor` are their edge's cursor,
/// and one string serves the subscription's `after` and the list's `after` and `before`.
#[tokio::test]
async fn one_cursor_per_item_serves_lists_and_subscriptions() {
    let (app, c) = TestApp::community().await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;

    // Messages.
    let mut sent = Vec::new();
    for i in 0..3 {
        sent.push(crate::messaging::send(&app, &c.alice, &bob_id, &format!("m{i}")).await);
    }
    let conv = sent[0]["conversation"]["id"].clone();
    let list = app.gql(Some(&bob), &messages_query(), json!({ "c": conv, "first": 3 })).await;
    let edges = list["messages"]["edges"].as_array().unwrap().clone();
    for e in &edges {
        assert_eq!(e["cursor"], e["node"]["cursor"]);
    }
    let middle = edges[1]["cursor"].clone();
    assert_eq!(middle, sent[1]["message"]["cursor"], "the cursor the sender got is the same string");
    let older = app.gql(Some(&bob), &messages_query(), json!({ "c": conv, "first": 5, "after": middle })).await;
    assert_eq!(older["messages"]["edges"][0]["node"]["body"], "m0");
    let newer = app.gql(Some(&bob), &messages_query(), json!({ "c": conv, "last": 5, "before": middle })).await;
    assert_eq!(newer["messages"]["edges"][0]["node"]["body"], "m2");
    let mut ws = app.ws(Some(&bob)).await;
    ws.subscribe("m", crate::messaging::RECEIVED, json!({ "after": middle })).await;
    assert_eq!(ws.next_data("m").await["messageReceived"]["body"], "m2", "replayed right after the cursor");

    // Notifications: bob comments three times on alice's post.
    for i in 0..3 {
        app.comment(&bob, &c.post, None, &format!("n{i}")).await;
    }
    let q = "query($first: Int, $after: String, $last: Int, $before: String) {
        notifications(first: $first, after: $after, last: $last, before: $before) {
            edges { cursor node { cursor comment { body } } } } }";
    let list = app.gql(Some(&c.alice), q, json!({ "first": 3 })).await;
    let edges = list["notifications"]["edges"].as_array().unwrap().clone();
    assert_eq!(edges.len(), 3);
    for e in &edges {
        assert_eq!(e["cursor"], e["node"]["cursor"]);
    }
    let middle = edges[1]["cursor"].clone();
    let body = |v: &Value| v["notifications"]["edges"][0]["node"]["comment"]["body"].clone();
    assert_eq!(body(&app.gql(Some(&c.alice), q, json!({ "first": 1, "after": middle })).await), "n0");
    assert_eq!(body(&app.gql(Some(&c.alice), q, json!({ "last": 1, "before": middle })).await), "n2");
    let mut ws = app.ws(Some(&c.alice)).await;
    ws.subscribe(
        "n",
        "subscription($after: String) { notificationReceived(after: $after) { cursor comment { body } } }",
        json!({ "after": middle }),
    )
    .await;
    let n = ws.next_data("n").await["notificationReceived"].clone();
    assert_eq!((n["comment"]["body"].as_str(), &n["cursor"]), (Some("n2"), &edges[0]["cursor"]));

    // Live chat.
    let stream = crate::live::live_stream(&app, &bob).await;
    for i in 0..3 {
        app.gql(Some(&bob), crate::live::SAY, json!({ "s": stream, "b": format!("l{i}") })).await;
    }
    let q = "query($s: ID!, $first: Int, $after: String, $last: Int, $before: String) { liveStream(id: $s) {
        chat(first: $first, after: $after, last: $last, before: $before) { edges { cursor node { cursor body } } } } }";
    let list = app.gql(None, q, json!({ "s": stream, "first": 3 })).await;
    let edges = list["liveStream"]["chat"]["edges"].as_array().unwrap().clone();
    for e in &edges {
        assert_eq!(e["cursor"], e["node"]["cursor"]);
    }
    let middle = edges[1]["cursor"].clone();
    let body = |v: &Value| v["liveStream"]["chat"]["edges"][0]["node"]["body"].clone();
    assert_eq!(body(&app.gql(None, q, json!({ "s": stream, "first": 1, "after": middle })).await), "l0");
    assert_eq!(body(&app.gql(None, q, json!({ "s": stream, "last": 1, "before": middle })).await), "l2");
    let mut ws = app.ws(None).await;
    ws.subscribe("c", crate::live::CHAT, json!({ "s": stream, "after": middle })).await;
    let line = ws.next_data("c").await["liveChat"]["message"].clone();
    assert_eq!((line["body"].as_str(), &line["cursor"]), (Some("l2"), &edges[0]["cursor"]));
}

/// A page of comments with `totalCount`, the latest comments (`last`) and their replies costs the
/// same statements at 2 comments as at 20: the counts come with the post and the comments, and the
/// page arguments reach the look-ahead prefetch.
#[tokio::test]
async fn comment_pages_with_total_count_cost_constant_statements() {
    let (app, c) = TestApp::community_on(TestApp::uncached().await).await;
    for i in 0..25 {
        let top = app.comment(&c.alice, &c.post, None, &format!("c{i}")).await;
        app.comment(&c.alice, &c.post, Some(&top), "r").await;
    }
    let q = "query($p: ID!, $n: Int) { post(id: $p) { comments(last: $n) { totalCount
        edges { node { id body replyCount author { nickname } replies(last: 2) { totalCount edges { node { id author { nickname } } } } } } } } }";
    let mut counts = Vec::new();
    for n in [2, 20] {
        app.gql(Some(&c.alice), "{ me { id } }", json!({})).await;
        let before = app.statements();
        let d = app.gql(Some(&c.alice), q, json!({ "p": c.post, "n": n })).await;
        counts.push(app.statements() - before);
        let conn = &d["post"]["comments"];
        assert_eq!(conn["edges"].as_array().unwrap().len(), n as usize);
        assert_eq!(conn["totalCount"], 50, "comments and replies together");
        assert_eq!(conn["edges"][0]["node"]["replies"]["totalCount"], 1);
    }
    assert_eq!(counts[0], counts[1], "statements for 2 and 20 comments: {counts:?}");
    // session; post; comments; their authors; replies; their authors.
    assert!(counts[0] <= 6, "{counts:?}");

    // `totalCount` itself costs nothing.
    let plain = "query($p: ID!) { post(id: $p) { comments(first: 5) { edges { node { id } } } } }";
    let counted = "query($p: ID!) { post(id: $p) { comments(first: 5) { totalCount edges { node { id } } } } }";
    let mut used = Vec::new();
    for q in [plain, counted] {
        app.gql(Some(&c.alice), "{ me { id } }", json!({})).await;
        let before = app.statements();
        app.gql(Some(&c.alice), q, json!({ "p": c.post })).await;
        used.push(app.statements() - before);
    }
    assert_eq!(used[0], used[1], "{used:?}");

    // `around` with `ancestors` on its comments: constant too.
    let mut counts = Vec::new();
    let top = app.gql(None, COMMENTS, json!({ "p": c.post, "first": 1 })).await;
    let linked = edges_of(&top["post"]["comments"]).0[0].clone();
    let q = "query($p: ID!, $c: ID!, $n: Int) { post(id: $p) { comments(around: $c, first: $n) {
        edges { node { id ancestors { id } replies(first: 3) { edges { node { id ancestors { id } } } } } } } } }";
    for n in [2, 20] {
        app.gql(Some(&c.alice), "{ me { id } }", json!({})).await;
        let before = app.statements();
        app.gql(Some(&c.alice), q, json!({ "p": c.post, "c": linked, "n": n })).await;
        counts.push(app.statements() - before);
    }
    assert_eq!(counts[0], counts[1], "around: {counts:?}");
}
