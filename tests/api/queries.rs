use serde_json::json;

use crate::common::{TestApp, phone};

/// The home feed query: 20-ish posts with author, board, counts, viewer flags and the first three
/// comments with their authors.
const FEED: &str = "query($first: Int) { posts(first: $first) { edges { cursor node {
    id title likeCount commentCount favoriteCount viewerHasLiked viewerHasFavorited
    author { id nickname avatarUrl followerCount viewerIsFollowing }
    board { id name viewerIsFollowing }
    comments(first: 3) { edges { node { id body likeCount viewerHasLiked author { id nickname }
      replies(first: 2) { edges { node { id author { nickname } } } } } } }
} } pageInfo { hasNextPage endCursor } } }";

/// No N+1: the number of SQL statements for a feed page does not depend on its size.
#[tokio::test]
async fn feed_statement_count_is_constant_in_page_size() {
    let app = TestApp::uncached().await;
    let admin = app.admin().await;
    let mut boards = Vec::new();
    for i in 0..3 {
        boards.push(app.create_board(&admin, &format!("b{i}"), &format!("Board {i}")).await);
    }
    // Authors, commenters and repliers are different people, so every level of the page has users
    // to fetch whatever its size (a smaller page cannot get them from an earlier level's cache).
    let mut users = Vec::new();
    for i in 0..9 {
        users.push(app.register(&phone(i), &format!("user{i}")).await.0);
    }
    let mut posts = Vec::new();
    for i in 0..55 {
        let author = &users[i % 3];
        let post = app.create_post(author, &boards[i % 3], &format!("post {i}")).await;
        if i % 2 == 0 {
            for j in 0..4 {
                let c = app.comment(&users[3 + (i + j) % 3], &post, None, "comment").await;
                if j == 0 {
                    app.comment(&users[6 + i % 3], &post, Some(&c), "reply").await;
                }
            }
        }
        if i % 3 == 0 {
            app.gql(
                Some(&users[0]),
                "mutation($input: LikePostInput!) { likePost(input: $input) { post { id } } }",
                json!({ "input": { "postId": post } }),
            )
            .await;
        }
        posts.push(post);
    }
    let viewer = users[0].clone();

    let mut counts = Vec::new();
    for first in [5, 50] {
        // Warm the session's last-seen stamp so the measured request does no bookkeeping write.
        app.gql(Some(&viewer), "{ me { id } }", json!({})).await;
        let before = app.statements();
        let data = app.gql(Some(&viewer), FEED, json!({ "first": first })).await;
        let used = app.statements() - before;
        let edges = data["posts"]["edges"].as_array().unwrap();
        assert_eq!(edges.len(), first as usize);
        assert!(edges.iter().any(|e| !e["node"]["comments"]["edges"].as_array().unwrap().is_empty()));
        counts.push(used);
    }
    assert_eq!(counts[0], counts[1], "statements for 5 and 50 posts: {counts:?}");
    // session; posts; authors, their follow flags; boards, their follow flags; post likes; favourites;
    // first comments, their authors, their likes; replies, their authors: 13, however long the page.
    assert!(counts[0] <= 13, "{counts:?}");

    // Signed out, the viewer-flag lookups disappear entirely.
    let before = app.statements();
    app.gql(None, FEED, json!({ "first": 50 })).await;
    assert!(app.statements() - before < counts[0], "anonymous feed should not look up viewer flags");
}

/// The same holds for "my favourites" and follower lists, which page over edges.
#[tokio::test]
async fn edge_lists_statement_count_is_constant_in_page_size() {
    let app = TestApp::uncached().await;
    let admin = app.admin().await;
    let board = app.create_board(&admin, "b0", "Board").await;
    let mut authors = Vec::new();
    for i in 0..4 {
        authors.push(app.register(&phone(10 + i), "author").await);
    }
    let (viewer, viewer_id) = app.register(&phone(1), "viewer").await;
    for i in 0..24 {
        let post = app.create_post(&authors[i % 4].0, &board, &format!("p{i}")).await;
        for (q, id) in [("favoritePost", "postId"), ("likePost", "postId")] {
            let cap = format!("{}{}", q[..1].to_uppercase(), &q[1..]);
            app.gql(
                Some(&viewer),
                &format!("mutation($input: {cap}Input!) {{ {q}(input: $input) {{ post {{ id }} }} }}"),
                json!({ "input": { id: post } }),
            )
            .await;
        }
    }
    for (token, _) in &authors {
        app.gql(
            Some(token),
            "mutation($input: FollowUserInput!) { followUser(input: $input) { user { id } } }",
            json!({ "input": { "userId": viewer_id } }),
        )
        .await;
    }
    // One list per request: sibling lists in one document share loaders, and whether their loads meet
    // in one batch is a matter of timing (it can only save statements, never add per-item ones).
    let favorites = "query($first: Int) { me { favorites(first: $first) { edges { node {
        id likeCount viewerHasLiked author { nickname viewerIsFollowing } board { name } } } } } }";
    let followers =
        "query($first: Int) { me { followers(first: $first) { edges { node { nickname viewerIsFollowing } } } } }";
    for query in [favorites, followers] {
        let mut counts = Vec::new();
        for first in [2, 20] {
            app.gql(Some(&viewer), "{ me { id } }", json!({})).await;
            let before = app.statements();
            let d = app.gql(Some(&viewer), query, json!({ "first": first })).await;
            counts.push(app.statements() - before);
            let list = d["me"].as_object().unwrap().values().next().unwrap();
            assert_eq!(
                list["edges"].as_array().unwrap().len(),
                (first as usize).min(if query == followers { 4 } else { 24 })
            );
        }
        assert_eq!(counts[0], counts[1], "{query}: {counts:?}");
    }
}

/// The inbox and the notification list: peer, last message, unread count, actors, posts and
/// comments are batched, so statements do not grow with the page.
#[tokio::test]
async fn inbox_and_notification_lists_have_constant_statement_counts() {
    let (app, c) = TestApp::community_on(TestApp::uncached().await).await;
    let me = c.alice.clone();
    let me_id = app.gql(Some(&me), "{ me { id } }", json!({})).await["me"]["id"].clone();
    for i in 0..12 {
        let (other, _) = app.register(&phone(100 + i), &format!("peer{i}")).await;
        let send =
            "mutation($to: ID!, $b: String!) { sendMessage(input: { toUserId: $to, body: $b }) { message { id } } }";
        app.gql(Some(&other), send, json!({ "to": me_id, "b": format!("hi {i}") })).await;
        app.comment(&other, &c.post, None, &format!("comment {i}")).await;
    }
    let inbox = "query($n: Int) { conversations(first: $n) { edges { node { id unreadCount
        peer { nickname } lastMessage { body sender { nickname } } } } } }";
    let notes = "query($n: Int) { notifications(first: $n) { edges { node { kind actorCount
        actor { nickname } post { title author { nickname } } comment { body } } } } }";
    for query in [inbox, notes] {
        let mut counts = Vec::new();
        for n in [2, 12] {
            app.gql(Some(&me), "{ me { id } }", json!({})).await;
            let before = app.statements();
            app.gql(Some(&me), query, json!({ "n": n })).await;
            counts.push(app.statements() - before);
        }
        assert_eq!(counts[0], counts[1], "statements for 2 and 12 items of {query}");
        assert!(counts[0] <= 8, "{counts:?} for {query}");
    }
}

/// A private message is the session read, the policy-consent gate every write passes, one read of
/// the peer and a five-statement transaction, whether it opens a conversation or adds to one (it
/// was 14 statements on SQLite and 15 on PostgreSQL).
#[tokio::test]
async fn a_private_message_costs_eight_statements() {
    let app = TestApp::uncached().await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let (_, bob_id) = app.register(&phone(2), "bob").await;
    let send = "mutation($to: ID!, $b: String!) { sendMessage(input: { toUserId: $to, body: $b }) { message { id } } }";
    for body in ["first, opens the conversation", "second"] {
        app.gql(Some(&alice), "{ me { id } }", json!({})).await;
        // The request log's writer would otherwise land its batch inside the count.
        app.state.activity.flush().await;
        let before = app.statements();
        app.gql(Some(&alice), send, json!({ "to": bob_id, "b": body })).await;
        assert_eq!(app.statements() - before, 8, "{body}");
    }
}

/// Search results: the union's posts with their authors and boards, excerpts and the total are
/// batched, so statements do not grow with the page.
#[tokio::test]
async fn search_statement_count_is_constant_in_page_size() {
    let app = TestApp::uncached().await;
    let admin = app.admin().await;
    let mut boards = Vec::new();
    for i in 0..3 {
        boards.push(app.create_board(&admin, &format!("b{i}"), &format!("出口 Board {i}")).await);
    }
    let mut users = Vec::new();
    for i in 0..6 {
        users.push(app.register(&phone(i), &format!("exporter{i}")).await.0);
    }
    for i in 0..24 {
        app.create_post(&users[i % 6], &boards[i % 3], &format!("出口 export {i}")).await;
    }
    let search = "query($q: String!, $type: SearchType, $first: Int) {
        search(query: $q, type: $type, first: $first) { totalCount totalCountIsCapped
          edges { cursor node { snippet text highlights { start length } result { __typename
            ... on Post { id title likeCount author { id nickname followerCount } board { id name } }
            ... on Board { id name followerCount }
            ... on User { id nickname followerCount } } } }
          pageInfo { hasNextPage endCursor } } }";
    for (q, kind, most) in [("出口", "POST", 24), ("出口", "BOARD", 3), ("exporter", "USER", 6)] {
        let mut counts = Vec::new();
        for first in [2, 20] {
            let before = app.statements();
            let d = app.gql(None, search, json!({ "q": q, "type": kind, "first": first })).await;
            counts.push(app.statements() - before);
            assert_eq!(d["search"]["edges"].as_array().unwrap().len(), (first as usize).min(most), "{kind}");
            assert_eq!(d["search"]["totalCount"], most, "{kind}");
        }
        assert_eq!(counts[0], counts[1], "statements for 2 and 20 {kind} results: {counts:?}");
        // the search index's change log (in memory) or search and count (in the database), things
        // found, then (posts) authors and boards.
        assert!(counts[0] <= 8, "{counts:?} for {kind}");
    }
}
