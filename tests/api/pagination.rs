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
