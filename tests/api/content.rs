use serde_json::{Value, json};

use crate::common::{Community, TestApp, phone};

const CREATE: &str = "mutation($input: CreatePostInput!) { createPost(input: $input) { post { id title body imageUrls author { id } board { id } } } }";
const UPDATE: &str = "mutation($input: UpdatePostInput!) { updatePost(input: $input) { post { id title body } } }";
const DELETE: &str = "mutation($input: DeletePostInput!) { deletePost(input: $input) { deletedPostId } }";
const DELETE_COMMENT: &str = "mutation($input: DeleteCommentInput!) { deleteComment(input: $input) { comment { id isDeleted body author { id } } } }";

#[tokio::test]
async fn posts_are_created_edited_and_soft_deleted_by_their_author() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let board = app.create_board(&admin, "fob", "FOB 報價").await;
    let (alice, alice_id) = app.register(&phone(1), "alice").await;
    let data = app
        .gql(
            Some(&alice),
            CREATE,
            json!({ "input": { "boardId": board, "title": "  外貿詢盤 FOB price  ", "body": "第一行\r\nsecond line", "imageUrls": ["https://img.example.com/1.jpg"] } }),
        )
        .await;
    let post = &data["createPost"]["post"];
    assert_eq!(post["title"], "外貿詢盤 FOB price", "titles are trimmed");
    assert_eq!(post["body"], "第一行\nsecond line");
    assert_eq!(post["imageUrls"], json!(["https://img.example.com/1.jpg"]));
    assert_eq!(post["author"]["id"], alice_id.as_str());
    let id = post["id"].as_str().unwrap().to_string();

    let data = app.gql(Some(&alice), UPDATE, json!({ "input": { "postId": id, "title": "新標題 New title" } })).await;
    assert_eq!(data["updatePost"]["post"]["title"], "新標題 New title");
    assert_eq!(data["updatePost"]["post"]["body"], "第一行\nsecond line", "fields left out are kept");

    let (bob, _) = app.register(&phone(2), "bob").await;
    let (code, _) = app.gql_err(Some(&bob), UPDATE, json!({ "input": { "postId": id, "title": "hijack" } })).await;
    assert_eq!(code, "FORBIDDEN");
    let (code, _) = app.gql_err(Some(&bob), DELETE, json!({ "input": { "postId": id } })).await;
    assert_eq!(code, "FORBIDDEN");

    // A comment survives the post's deletion, reachable from its author, with `post` null.
    let comment = app.comment(&bob, &id, None, "好問題").await;
    let data = app.gql(Some(&alice), DELETE, json!({ "input": { "postId": id } })).await;
    assert_eq!(data["deletePost"]["deletedPostId"], id.as_str());
    let gone = app
        .gql(None, "query($id: ID!) { post(id: $id) { id } posts { edges { node { id } } } }", json!({ "id": id }))
        .await;
    assert_eq!(gone["post"], Value::Null);
    assert_eq!(gone["posts"]["edges"], json!([]));
    let c = app.gql(None, "query($id: ID!) { comment(id: $id) { body post { id } } }", json!({ "id": comment })).await;
    assert_eq!(c["comment"]["body"], "好問題");
    assert_eq!(c["comment"]["post"], Value::Null);
    let counts = app.gql(None, "query($id: ID!) { board(id: $id) { postCount } }", json!({ "id": board })).await;
    assert_eq!(counts["board"]["postCount"], 0);
    let (code, _) = app.gql_err(Some(&alice), UPDATE, json!({ "input": { "postId": id, "title": "again" } })).await;
    assert_eq!(code, "NOT_FOUND");
}

#[tokio::test]
async fn moderators_may_delete_but_not_edit_others_posts() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let board = app.create_board(&admin, "b1", "Board").await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let (moderator, _) = app.user_with_role(&phone(3), "MODERATOR").await;
    let post = app.create_post(&alice, &board, "t").await;
    let comment = app.comment(&alice, &post, None, "c").await;
    let (code, _) = app.gql_err(Some(&moderator), UPDATE, json!({ "input": { "postId": post, "title": "x" } })).await;
    assert_eq!(code, "FORBIDDEN");
    let flags = app
        .gql(
            Some(&moderator),
            "query($id: ID!) { post(id: $id) { viewerCanEdit viewerCanDelete } }",
            json!({ "id": post }),
        )
        .await;
    assert_eq!(flags["post"], json!({ "viewerCanEdit": false, "viewerCanDelete": true }));
    // Removing someone else's words is a staff action: it says why, or nothing is removed.
    let (code, _) = app.gql_err(Some(&moderator), DELETE, json!({ "input": { "postId": post } })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    let (code, _) = app.gql_err(Some(&moderator), DELETE_COMMENT, json!({ "input": { "commentId": comment } })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    let still = app.gql(None, "query($id: ID!) { post(id: $id) { id commentCount } }", json!({ "id": post })).await;
    assert_eq!(still["post"]["commentCount"], 1);
    let why = "off-topic";
    app.gql(Some(&moderator), DELETE_COMMENT, json!({ "input": { "commentId": comment, "reason": why } })).await;
    app.gql(Some(&moderator), DELETE, json!({ "input": { "postId": post, "reason": why } })).await;
}

#[tokio::test]
async fn deleted_comments_keep_the_thread_shape() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let board = app.create_board(&admin, "b1", "Board").await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    let post = app.create_post(&alice, &board, "t").await;
    let top = app.comment(&alice, &post, None, "parent text").await;
    let reply = app.comment(&bob, &post, Some(&top), "reply text").await;

    let (code, _) = app.gql_err(Some(&bob), DELETE_COMMENT, json!({ "input": { "commentId": top } })).await;
    assert_eq!(code, "FORBIDDEN");
    let data = app.gql(Some(&alice), DELETE_COMMENT, json!({ "input": { "commentId": top } })).await;
    assert_eq!(data["deleteComment"]["comment"], json!({ "id": top, "isDeleted": true, "body": null, "author": null }));

    let thread = app
        .gql(
            None,
            "query($id: ID!) { post(id: $id) { commentCount comments { edges { node { id isDeleted body replies { edges { node { id body } } } } } } } }",
            json!({ "id": post }),
        )
        .await;
    let node = &thread["post"]["comments"]["edges"][0]["node"];
    assert_eq!(node["isDeleted"], true);
    assert_eq!(node["body"], Value::Null);
    assert_eq!(node["replies"]["edges"][0]["node"]["id"], reply.as_str());
    assert_eq!(node["replies"]["edges"][0]["node"]["body"], "reply text");
    assert_eq!(thread["post"]["commentCount"], 1);

    // Replying to a deleted comment or to a comment of another post is refused.
    let other = app.create_post(&alice, &board, "other").await;
    for (post_id, parent) in [(&post, &top), (&other, &reply)] {
        let (code, _) = app
            .gql_err(
                Some(&bob),
                "mutation($input: CreateCommentInput!) { createComment(input: $input) { comment { id } } }",
                json!({ "input": { "postId": post_id, "parentId": parent, "body": "x" } }),
            )
            .await;
        assert_eq!(code, "NOT_FOUND");
    }
    // The failed attempts left the counters alone.
    let counts = app.gql(None, "query($id: ID!) { post(id: $id) { commentCount } }", json!({ "id": other })).await;
    assert_eq!(counts["post"]["commentCount"], 0);
}

#[tokio::test]
async fn writes_need_a_session_and_valid_input() {
    let (app, Community { board, alice, post, .. }) = TestApp::community().await;

    for (query, vars) in [
        (CREATE, json!({ "input": { "boardId": board, "title": "t", "body": "b" } })),
        (
            "mutation($input: LikePostInput!) { likePost(input: $input) { post { id } } }",
            json!({ "input": { "postId": post } }),
        ),
        (
            "mutation($input: FollowBoardInput!) { followBoard(input: $input) { board { id } } }",
            json!({ "input": { "boardId": board } }),
        ),
        (
            "mutation($input: CreateCommentInput!) { createComment(input: $input) { comment { id } } }",
            json!({ "input": { "postId": post, "body": "b" } }),
        ),
    ] {
        let (code, _) = app.gql_err(None, query, vars).await;
        assert_eq!(code, "UNAUTHENTICATED", "{query}");
    }

    for (input, field) in [
        (json!({ "boardId": board, "title": "", "body": "b" }), "input.title"),
        (json!({ "boardId": board, "title": "標".repeat(121), "body": "b" }), "input.title"),
        (json!({ "boardId": board, "title": "two\nlines", "body": "b" }), "input.title"),
        (json!({ "boardId": board, "title": "t", "body": "null\u{0000}byte" }), "input.body"),
        (json!({ "boardId": board, "title": "t", "body": "文".repeat(20_001) }), "input.body"),
        (json!({ "boardId": board, "title": "t", "body": "b", "imageUrls": ["ftp://x/y.png"] }), "input.imageUrls[0]"),
        (
            json!({ "boardId": board, "title": "t", "body": "b", "imageUrls": vec!["https://x.example/1.png"; 10] }),
            "input.imageUrls",
        ),
        (json!({ "boardId": post, "title": "t", "body": "b" }), "input.boardId"),
    ] {
        let (code, err) = app.gql_err(Some(&alice), CREATE, json!({ "input": input })).await;
        assert_eq!(code, "BAD_USER_INPUT", "{err}");
        assert_eq!(err["extensions"]["field"], field, "{err}");
    }
    // A long but valid Chinese body is accepted: limits count characters, not bytes.
    app.gql(
        Some(&alice),
        CREATE,
        json!({ "input": { "boardId": board, "title": "標".repeat(120), "body": "文".repeat(20_000) } }),
    )
    .await;
    let data = app.gql(None, "query($id: ID!) { board(id: $id) { postCount } }", json!({ "id": board })).await;
    assert_eq!(data["board"]["postCount"], 2, "failed writes created nothing");

    let (code, _) = app
        .gql_err(
            Some(&alice),
            "mutation($input: CreateCommentInput!) { createComment(input: $input) { comment { id } } }",
            json!({ "input": { "postId": post, "body": "  " } }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
}

#[tokio::test]
async fn boards_are_created_by_admins_and_verified_members_only() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    const CREATE_BOARD: &str =
        "mutation($input: CreateBoardInput!) { createBoard(input: $input) { board { slug name } } }";
    let (code, _) = app.gql_err(Some(&alice), CREATE_BOARD, json!({ "input": { "slug": "x1", "name": "X" } })).await;
    assert_eq!(code, "VERIFICATION_REQUIRED", "an unverified member (tests/api/trust.rs covers the verified path)");
    let data = app
        .gql(Some(&admin), CREATE_BOARD, json!({ "input": { "slug": "Sourcing-China", "name": "採購 Sourcing" } }))
        .await;
    assert_eq!(data["createBoard"]["board"], json!({ "slug": "sourcing-china", "name": "採購 Sourcing" }));
    let (code, _) =
        app.gql_err(Some(&admin), CREATE_BOARD, json!({ "input": { "slug": "sourcing-china", "name": "dup" } })).await;
    assert_eq!(code, "CONFLICT");
    let (code, err) =
        app.gql_err(Some(&admin), CREATE_BOARD, json!({ "input": { "slug": "bad slug!", "name": "x" } })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert_eq!(err["extensions"]["field"], "input.slug");
}

#[tokio::test]
async fn posts_have_an_excerpt_for_lists() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let board = app.create_board(&admin, "b1", "Board").await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let body = format!("LED panels,\n\n  {} FOB Ningbo", "stock ".repeat(3000));
    let create = "mutation($b: ID!, $body: String!) { createPost(input: { boardId: $b, title: \"t\", body: $body }) { post { id } } }";
    app.gql(Some(&alice), create, json!({ "b": board, "body": body })).await;
    let q = "{ posts(first: 1) { edges { node { short: excerpt(length: 16) preview: excerpt } } } }";
    let node = app.gql(None, q, json!({})).await["posts"]["edges"][0]["node"].clone();
    assert_eq!(node["short"], "LED panels, stoc…");
    assert_eq!(node["preview"].as_str().unwrap().chars().count(), 141, "140 characters and the ellipsis");
    let (code, _) = app.gql_err(None, "{ posts(first: 1) { edges { node { excerpt(length: 0) } } } }", json!({})).await;
    assert_eq!(code, "BAD_USER_INPUT");
}

#[tokio::test]
async fn permalinks_account_names_and_edit_times() {
    let app = TestApp::spawn_with(|c| c.public_web_url = "https://ecer.example.com".into()).await;
    let admin = app.admin().await;
    let board = app.create_board(&admin, "led-lights", "LED").await;
    let code = app.phone_code(&phone(1), "REGISTER").await;
    let register = "mutation($input: RegisterInput!) { register(input: $input) { token user { id } } }";
    let input = json!({ "phone": phone(1), "code": code, "password": "correct horse", "nickname": "alice", "accountName": "alice_led" });
    let data = app.gql(None, register, json!({ "input": input })).await;
    let alice = data["register"]["token"].as_str().unwrap().to_string();
    let alice_id = data["register"]["user"]["id"].as_str().unwrap().to_string();
    let post = app.create_post(&alice, &board, "t").await;
    let comment = app.comment(&alice, &post, None, "c").await;
    let q = "query($p: ID!, $c: ID!) { post(id: $p) { url editedAt board { url } author { url } } comment(id: $c) { url } }";
    let data = app.gql(None, q, json!({ "p": post, "c": comment })).await;
    assert_eq!(data["post"]["url"], format!("https://ecer.example.com/posts/{post}"));
    assert_eq!(data["post"]["board"]["url"], "https://ecer.example.com/boards/led-lights");
    assert_eq!(data["post"]["author"]["url"], "https://ecer.example.com/u/alice_led");
    assert_eq!(data["comment"]["url"], format!("https://ecer.example.com/posts/{post}#comment-{comment}"));
    assert_eq!(data["post"]["editedAt"], Value::Null, "never edited");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    app.gql(Some(&alice), UPDATE, json!({ "input": { "postId": post, "title": "again" } })).await;
    let edited = app.gql(None, q, json!({ "p": post, "c": comment })).await;
    assert!(edited["post"]["editedAt"].is_string(), "{edited}");

    // By account name, in any case; exactly one of id and accountName.
    let by_name = "query($n: String!) { user(accountName: $n) { id } }";
    assert_eq!(app.gql(None, by_name, json!({ "n": "Alice_LED" })).await["user"]["id"], alice_id.as_str());
    assert_eq!(app.gql(None, by_name, json!({ "n": "nobody_here" })).await["user"], Value::Null);
    let (code, _) = app.gql_err(None, "{ user { id } }", json!({})).await;
    assert_eq!(code, "BAD_USER_INPUT");
    let (code, _) = app.gql_err(None, by_name, json!({ "n": "x" })).await;
    assert_eq!(code, "BAD_USER_INPUT");
}

#[tokio::test]
async fn payloads_return_what_changed_for_client_caches() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let board = app.create_board(&admin, "b1", "Board").await;
    let (alice, alice_id) = app.register(&phone(1), "alice").await;
    let post = app.create_post(&alice, &board, "t").await;
    app.create_post(&alice, &board, "u").await;
    // A deletion returns the board and the author with their counters as they now are.
    let del = "mutation($p: ID!) { deletePost(input: { postId: $p }) { deletedPostId board { id postCount } author { id postCount } } }";
    let d = app.gql(Some(&alice), del, json!({ "p": post })).await["deletePost"].clone();
    assert_eq!(d["deletedPostId"], post.as_str());
    assert_eq!(d["board"], json!({ "id": board, "postCount": 1 }));
    assert_eq!(d["author"], json!({ "id": alice_id, "postCount": 1 }));
    // Settings changes return the member too.
    let settings = "mutation { updateSettings(input: { recordHistory: false }) { settings { recordHistory } me { id settings { recordHistory } } } }";
    let s = app.gql(Some(&alice), settings, json!({})).await["updateSettings"].clone();
    assert_eq!(s["settings"]["recordHistory"], false);
    assert_eq!(s["me"], json!({ "id": alice_id, "settings": { "recordHistory": false } }));
}

#[tokio::test]
async fn an_open_post_page_gets_new_comments_and_replies_and_resumes_without_a_gap() {
    let (app, c) = TestApp::community().await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    let sub = "subscription($p: ID!, $a: String) { commentAdded(postId: $p, after: $a) { kind cursor node { id body parent { id } } } }";
    let mut page = app.ws(None).await;
    // From the start of the post's comments (it has none yet): without `after` the page would start
    // at the newest comment when the server reads it, maybe after the one below.
    let start = ecer_gateway::services::page::Cursor::Id(0).encode();
    page.subscribe("p", sub, serde_json::json!({ "p": c.post, "a": start })).await;
    let first = app.comment(&bob, &c.post, None, "MOQ 是多少?").await;
    let got = page.next_data("p").await["commentAdded"].clone();
    assert_eq!((got["kind"].as_str(), got["node"]["id"].as_str()), (Some("CREATED"), Some(first.as_str())));
    let reply = app.comment(&c.alice, &c.post, Some(&first), "500 pcs").await;
    let got = page.next_data("p").await["commentAdded"].clone();
    assert_eq!(got["node"]["id"], reply.as_str());
    assert_eq!(got["node"]["parent"]["id"], first.as_str());
    let resume_from = got["cursor"].as_str().unwrap().to_string();
    drop(page);

    // Written while the page was away: replayed in order on return, then live again, no duplicate.
    let a = app.comment(&bob, &c.post, None, "a").await;
    let b = app.comment(&bob, &c.post, Some(&first), "b").await;
    let mut page = app.ws(None).await;
    page.subscribe("p", sub, serde_json::json!({ "p": c.post, "a": resume_from })).await;
    for want in [&a, &b] {
        assert_eq!(page.next_data("p").await["commentAdded"]["node"]["id"], want.as_str());
    }
    let live = app.comment(&c.alice, &c.post, None, "live").await;
    assert_eq!(page.next_data("p").await["commentAdded"]["node"]["id"], live.as_str());
    page.quiet(200).await;

    // Another post's comments are not this page's.
    let other = app.create_post(&c.alice, &c.board, "other").await;
    app.comment(&bob, &other, None, "elsewhere").await;
    page.quiet(200).await;
}

#[tokio::test]
async fn an_open_post_page_gets_edits_counters_and_the_deletion_of_its_post_and_comments() {
    let (app, c) = TestApp::community().await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    let comment = app.comment(&bob, &c.post, None, "FOB 还是 CIF?").await;
    let post_sub = "subscription($p: ID!) { postUpdated(postId: $p) { kind node { id title likeCount favoriteCount commentCount } } }";
    let comment_sub =
        "subscription($p: ID!) { commentUpdated(postId: $p) { kind cursor node { id likeCount isDeleted } } }";
    let mut page = app.ws(None).await;
    page.subscribe("post", post_sub, json!({ "p": c.post })).await;
    page.subscribe("comments", comment_sub, json!({ "p": c.post })).await;
    // The post as it is now comes first: a page that reconnects never keeps a stale state.
    let now = page.next_data("post").await["postUpdated"].clone();
    assert_eq!(now["kind"], "UPDATED");
    assert_eq!(now["node"]["commentCount"], 1);
    page.quiet(200).await;

    // A burst of counter changes arrives as one event within the tick (sent at once: one after the
    // other, a stalled machine could put them a tick apart).
    let like = "mutation($p: ID!) { likePost(input: { postId: $p }) { post { id } } }";
    let fav = "mutation($p: ID!) { favoritePost(input: { postId: $p }) { post { id } } }";
    tokio::join!(app.gql(Some(&bob), like, json!({ "p": c.post })), app.gql(Some(&bob), fav, json!({ "p": c.post })));
    let got = page.next_data("post").await["postUpdated"].clone();
    assert_eq!(got["kind"], "UPDATED");
    assert_eq!((got["node"]["likeCount"].as_i64(), got["node"]["favoriteCount"].as_i64()), (Some(1), Some(1)));
    page.quiet(1300).await;

    let edit = "mutation($p: ID!) { updatePost(input: { postId: $p, title: \"新标题\" }) { post { id } } }";
    app.gql(Some(&c.alice), edit, json!({ "p": c.post })).await;
    assert_eq!(page.next_data("post").await["postUpdated"]["node"]["title"], "新标题");

    // A comment's likes and its deletion reach the page's comments, with the post's counter.
    let like_comment = "mutation($c: ID!) { likeComment(input: { commentId: $c }) { comment { id } } }";
    app.gql(Some(&c.alice), like_comment, json!({ "c": comment })).await;
    let got = page.next_data("comments").await["commentUpdated"].clone();
    assert_eq!(got["kind"], "UPDATED");
    assert_eq!(got["node"], json!({ "id": comment, "likeCount": 1, "isDeleted": false }));
    let del_comment = "mutation($c: ID!) { deleteComment(input: { commentId: $c }) { comment { id } } }";
    app.gql(Some(&bob), del_comment, json!({ "c": comment })).await;
    // Both streams hear the one event, each after its own tick: either may speak first.
    let mut heard = std::collections::HashMap::new();
    for _ in 0..2 {
        let msg = page.recv().await;
        assert_eq!(msg["type"], "next", "{msg}");
        heard.insert(msg["id"].as_str().unwrap().to_string(), msg["payload"]["data"].clone());
    }
    let got = &heard["comments"]["commentUpdated"];
    assert_eq!((got["kind"].as_str(), got["node"]["isDeleted"].as_bool()), (Some("DELETED"), Some(true)));
    assert_eq!(heard["post"]["postUpdated"]["node"]["commentCount"], 0);

    // The post's deletion is the last event of its stream.
    let del = "mutation($p: ID!) { deletePost(input: { postId: $p }) { deletedPostId } }";
    app.gql(Some(&c.alice), del, json!({ "p": c.post })).await;
    let got = page.next_data("post").await["postUpdated"].clone();
    assert_eq!((got["kind"].as_str(), got["node"]["id"].as_str()), (Some("DELETED"), Some(c.post.as_str())));
    let done = page.recv().await;
    assert_eq!((done["type"].as_str(), done["id"].as_str()), (Some("complete"), Some("post")));

    // A deleted or unknown post's page cannot be opened.
    let mut late = app.ws(None).await;
    late.subscribe("post", post_sub, json!({ "p": c.post })).await;
    let msg = late.recv().await;
    assert_eq!(msg["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND", "{msg}");
}

#[tokio::test]
async fn create_mutations_return_the_edge_their_lists_give_the_new_item() {
    let (app, c) = TestApp::community().await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let create = "mutation($b: ID!) { createPost(input: { boardId: $b, title: \"t2\", body: \"b\" }) { post { id } postEdge { cursor node { id } } } }";
    let p = app.gql(Some(&c.alice), create, json!({ "b": c.board })).await["createPost"].clone();
    assert_eq!(p["postEdge"]["node"]["id"], p["post"]["id"]);
    let list = app.gql(None, "{ posts(first: 1) { edges { cursor node { id } } } }", json!({})).await;
    assert_eq!(list["posts"]["edges"][0], p["postEdge"]);

    let comment = "mutation($p: ID!) { createComment(input: { postId: $p, body: \"hi\" }) { commentEdge { cursor node { id } } } }";
    let e = app.gql(Some(&bob), comment, json!({ "p": c.post })).await["createComment"]["commentEdge"].clone();
    let list = "query($p: ID!) { post(id: $p) { comments(first: 5) { edges { cursor node { id } } } } }";
    assert_eq!(app.gql(None, list, json!({ "p": c.post })).await["post"]["comments"]["edges"][0], e);

    let send = "mutation($u: ID!) { sendMessage(input: { toUserId: $u, body: \"你好\" }) { messageEdge { cursor node { id cursor } } conversation { id } } }";
    let m = app.gql(Some(&c.alice), send, json!({ "u": bob_id })).await["sendMessage"].clone();
    assert_eq!(m["messageEdge"]["cursor"], m["messageEdge"]["node"]["cursor"]);
    let list = "query($c: ID!) { messages(conversationId: $c, first: 1) { edges { cursor node { id cursor } } } }";
    let got = app.gql(Some(&bob), list, json!({ "c": m["conversation"]["id"] })).await;
    assert_eq!(got["messages"]["edges"][0], m["messageEdge"]);
}

#[tokio::test]
async fn mark_notifications_read_returns_the_notifications_it_changed() {
    let (app, c) = TestApp::community().await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    app.comment(&bob, &c.post, None, "one").await;
    app.comment(&bob, &c.post, None, "two").await;
    let list = app.gql(Some(&c.alice), "{ notifications(first: 10) { nodes { id read } } }", json!({})).await;
    let ids: Vec<String> =
        list["notifications"]["nodes"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap().into()).collect();
    assert_eq!(ids.len(), 2);
    let mark = "mutation($ids: [ID!]) { markNotificationsRead(input: { ids: $ids }) { unreadCount notifications { id read } } }";
    let one = app.gql(Some(&c.alice), mark, json!({ "ids": [ids[1]] })).await["markNotificationsRead"].clone();
    assert_eq!(one, json!({ "unreadCount": 1, "notifications": [{ "id": ids[1], "read": true }] }));
    // Marking all returns the rest; a second call changes nothing and returns nothing.
    let all = app.gql(Some(&c.alice), mark, json!({ "ids": null })).await["markNotificationsRead"].clone();
    assert_eq!(all, json!({ "unreadCount": 0, "notifications": [{ "id": ids[0], "read": true }] }));
    let again = app.gql(Some(&c.alice), mark, json!({ "ids": null })).await["markNotificationsRead"].clone();
    assert_eq!(again, json!({ "unreadCount": 0, "notifications": [] }));
}

#[tokio::test]
async fn settings_and_consent_are_nodes_their_owner_alone_can_fetch() {
    let (app, c) = TestApp::community().await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    let me =
        "{ me { settings { id recordHistory } } notificationSettings { id category enabled } policyConsent { id } }";
    let got = app.gql(Some(&c.alice), me, json!({})).await;
    let settings = got["me"]["settings"]["id"].as_str().unwrap().to_string();
    let consent = got["policyConsent"]["id"].as_str().unwrap().to_string();
    let categories = got["notificationSettings"].as_array().unwrap().clone();
    assert!(categories.len() > 1);
    let node = "query($id: ID!) { node(id: $id) { __typename id ... on NotificationSetting { category enabled } } }";
    for (id, typename) in [(&settings, "Settings"), (&consent, "PolicyConsent")] {
        let got = app.gql(Some(&c.alice), node, json!({ "id": id })).await;
        assert_eq!(
            (got["node"]["__typename"].as_str(), got["node"]["id"].as_str()),
            (Some(typename), Some(id.as_str()))
        );
        assert_eq!(app.gql(Some(&bob), node, json!({ "id": id })).await["node"], Value::Null);
        assert_eq!(app.gql(None, node, json!({ "id": id })).await["node"], Value::Null);
    }
    for setting in &categories {
        let got = app.gql(Some(&c.alice), node, json!({ "id": setting["id"] })).await["node"].clone();
        assert_eq!(got["category"], setting["category"]);
        assert_eq!(got["enabled"], setting["enabled"]);
        assert_eq!(app.gql(Some(&bob), node, json!({ "id": setting["id"] })).await["node"], Value::Null);
    }
}
