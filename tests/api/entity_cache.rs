//! The entity cache: a signed-in page reads what is the same for everyone from memory and only its
//! viewer's own flags from the database, and is never older than the last content write on any
//! instance.

use serde_json::{Value, json};

use crate::common::{TestApp, phone};
use crate::response_cache::pair;
use crate::scale_out::OwnRedis;

fn home_feed() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/frontend-contract/operations/HomeFeed.graphql"))
        .unwrap()
}

/// The feed's first card.
async fn first_card(app: &TestApp, token: &str) -> Value {
    let data = app.gql(Some(token), &home_feed(), json!({ "first": 5 })).await;
    data["posts"]["edges"][0]["node"].clone()
}

#[tokio::test]
async fn a_warm_signed_in_home_feed_costs_at_most_three_statements_and_shows_the_viewers_own_flags() {
    // Entries kept a minute, so the warm read is warm however long the machine stalls between the
    // reads (the default 1 s flaked); what follows relies on writes moving the epoch, not on expiry.
    let (app, c) = TestApp::community_on(TestApp::spawn_with(|c| c.entity_cache_ttl_ms = 60_000).await).await;
    let mut people = Vec::new();
    for i in 2..6 {
        people.push(app.register(&phone(i), &format!("user{i}")).await.0);
    }
    for (i, author) in people.iter().enumerate() {
        let post = app.create_post(author, &c.board, &format!("post {i}")).await;
        for commenter in &people {
            app.comment(commenter, &post, None, "comment").await;
        }
    }
    let (viewer, _) = app.register(&phone(9), "viewer").await;
    let feed = home_feed();
    let vars = json!({ "first": 20 });
    let cold_before = app.statements();
    let cold = app.gql(Some(&viewer), &feed, vars.clone()).await;
    let cold_cost = app.statements() - cold_before;
    app.gql(Some(&viewer), &feed, vars.clone()).await;
    let before = app.statements();
    let warm = app.gql(Some(&viewer), &feed, vars.clone()).await;
    let warm_cost = app.statements() - before;
    assert_eq!(warm, cold, "the cache changes nothing in the answer");
    assert!(warm_cost <= 3, "a warm signed-in HomeFeed ran {warm_cost} statements (cold: {cold_cost})");
    assert!(warm_cost < cold_cost, "warm {warm_cost}, cold {cold_cost}");

    // The viewer's own like shows at once, with the count it moved, and only for them.
    let top = cold["posts"]["edges"][0]["node"].clone();
    let like = "mutation($p: ID!) { likePost(input: { postId: $p }) { post { id } } }";
    app.gql(Some(&viewer), like, json!({ "p": top["id"] })).await;
    let mine = first_card(&app, &viewer).await;
    assert_eq!(mine["viewerHasLiked"], true);
    assert_eq!(mine["likeCount"], top["likeCount"].as_i64().unwrap() + 1);
    let theirs = first_card(&app, &c.alice).await;
    assert_eq!(
        (theirs["viewerHasLiked"].clone(), theirs["likeCount"].clone()),
        (json!(false), mine["likeCount"].clone())
    );
}

#[tokio::test]
async fn a_members_own_record_is_never_served_from_the_cache() {
    let (app, c) = TestApp::community().await;
    // Alice's record is cached as the author of her post, read by someone else...
    let author = "query($p: ID!) { post(id: $p) { author { id nickname } } }";
    for _ in 0..2 {
        app.gql(Some(&c.admin), author, json!({ "p": c.post })).await;
    }
    // ...then she adds an email address: a private write, which moves no epoch. Her own view of
    // herself has it at once.
    let add = "mutation { addEmail(input: { email: \"alice@example.com\" }) { user { id } } }";
    app.gql(Some(&c.alice), add, json!({})).await;
    let me = app.gql(Some(&c.alice), "{ me { pendingEmail } }", json!({})).await;
    assert_eq!(me["me"]["pendingEmail"], "alice@example.com");
}

#[tokio::test]
async fn signed_in_readers_on_another_instance_never_see_edits_deletions_bans_or_erasures_late() {
    let redis = OwnRedis::start();
    let (a, b) = pair(&redis).await;
    let admin = a.admin().await;
    let board = a.create_board(&admin, "b1", "Board").await;
    let (alice, _) = a.register(&phone(1), "alice").await;
    let (bob, _) = a.register(&phone(2), "bob").await;
    let (reader, _) = a.register(&phone(3), "reader").await;
    let (carol, _) = a.register(&phone(4), "carol").await;
    let post = a.create_post(&alice, &board, "原标题").await;
    let bobs = a.create_post(&bob, &board, "bob's").await;
    let comment = a.comment(&bob, &post, None, "first!").await;
    let page = "query($p: ID!) { post(id: $p) { id title author { id nickname }
        comments(first: 5) { edges { node { id body isDeleted } } } } }";
    let read = |token: String, p: String| {
        let b = &b;
        async move { b.gql(Some(&token), page, json!({ "p": p })).await["post"].clone() }
    };
    // Warm B's cache with both pages, twice.
    for _ in 0..2 {
        assert_eq!(read(reader.clone(), post.clone()).await["title"], "原标题");
        assert_eq!(read(reader.clone(), bobs.clone()).await["author"]["nickname"], "bob");
    }

    let edit = "mutation($p: ID!) { updatePost(input: { postId: $p, title: \"新标题\" }) { post { id } } }";
    a.gql(Some(&alice), edit, json!({ "p": post })).await;
    assert_eq!(read(reader.clone(), post.clone()).await["title"], "新标题");

    let delete_comment = "mutation($c: ID!) { deleteComment(input: { commentId: $c }) { comment { id } } }";
    let deleted = a.gql_raw(Some(&bob), delete_comment, json!({ "c": comment })).await.1;
    assert!(deleted.get("errors").is_none(), "{deleted}");
    let comments = read(reader.clone(), post.clone()).await["comments"]["edges"].clone();
    assert!(
        comments.as_array().unwrap().iter().all(|e| e["node"]["isDeleted"] == true || e["node"]["id"] != comment),
        "{comments}"
    );

    // A suspension made on A is what B's staff see next.
    let suspended = "query($u: ID!) { user(id: $u) { suspended } }";
    let carols = a.create_post(&carol, &board, "carol's").await;
    let carol_id = read(reader.clone(), carols).await["author"]["id"].clone();
    for _ in 0..2 {
        assert_eq!(b.gql(Some(&admin), suspended, json!({ "u": carol_id })).await["user"]["suspended"], false);
    }
    let ban = "mutation($u: ID!) { banUser(input: { userId: $u, reason: \"spam\" }) { user { id } } }";
    a.gql(Some(&admin), ban, json!({ "u": carol_id })).await;
    assert_eq!(b.gql(Some(&admin), suspended, json!({ "u": carol_id })).await["user"]["suspended"], true);

    let erase = "mutation { deleteAccount(input: { password: \"correct horse\" }) { deleted } }";
    let erased = a.gql_raw(Some(&bob), erase, json!({})).await.1;
    assert!(erased.get("errors").is_none(), "{erased}");
    assert_eq!(read(reader.clone(), bobs.clone()).await["author"], Value::Null);

    let delete = "mutation($p: ID!) { deletePost(input: { postId: $p }) { deletedPostId } }";
    a.gql(Some(&alice), delete, json!({ "p": post })).await;
    assert_eq!(read(reader.clone(), post.clone()).await, Value::Null);
}

#[tokio::test]
async fn a_mutations_payload_shows_its_own_write_even_when_the_entity_was_cached() {
    let (app, c) = TestApp::community().await;
    let counts = "query($p: ID!) { post(id: $p) { board { postCount } author { postCount } } }";
    for _ in 0..2 {
        let post = &app.gql(Some(&c.alice), counts, json!({ "p": c.post })).await["post"];
        assert_eq!((post["board"]["postCount"].clone(), post["author"]["postCount"].clone()), (json!(1), json!(1)));
    }
    let delete = "mutation($p: ID!) { deletePost(input: { postId: $p }) {
        board { postCount } author { postCount } } }";
    let out = &app.gql(Some(&c.alice), delete, json!({ "p": c.post })).await["deletePost"];
    assert_eq!(out["board"]["postCount"], 0, "{out}");
    assert_eq!(out["author"]["postCount"], 0, "{out}");
}
