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
    let (bob, _) = app.register(&crate::common::phone(2), "bob").await;
    let sub = "subscription($p: ID!, $a: String) { commentAdded(postId: $p, after: $a) { kind cursor node { id body parent { id } } } }";
    let mut page = app.ws(None).await;
    page.subscribe("p", sub, serde_json::json!({ "p": c.post })).await;
    page.quiet(200).await;
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
