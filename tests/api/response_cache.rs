//! The response cache: signed-out queries answered from memory, and never an answer older than the
//! last write that changed public content, on any instance.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{TestApp, phone};
use crate::scale_out::OwnRedis;

const PAGE: &str = "query($p: ID!) { post(id: $p) { id title likeCount author { id nickname } } }";

/// Two instances sharing the database and a Redis of the test's own (it is killed mid-test).
pub(crate) async fn pair(redis: &OwnRedis) -> (TestApp, TestApp) {
    let url = redis.url();
    let a = TestApp::spawn_with(|c| c.redis_url = Some(url.clone())).await;
    let prefix = a.state.config.redis_prefix.clone();
    let b = a
        .another_instance(|c| {
            c.redis_url = Some(url.clone());
            c.redis_prefix = prefix.clone();
        })
        .await;
    (a, b)
}

async fn page(app: &TestApp, post: &str) -> Value {
    app.gql(None, PAGE, json!({ "p": post })).await["post"].clone()
}

#[tokio::test]
async fn a_repeated_signed_out_query_runs_no_sql_and_a_signed_in_one_is_never_shared() {
    let (app, c) = TestApp::community().await;
    let first = page(&app, &c.post).await;
    let before = app.statements();
    for _ in 0..5 {
        assert_eq!(page(&app, &c.post).await, first);
    }
    assert_eq!(app.statements(), before, "a cached answer needs no statement");
    // Another variable is another answer.
    let other = app.create_post(&c.alice, &c.board, "other").await;
    assert_eq!(page(&app, &other).await["title"], "other");
    // A member's answer is their own: it runs, and says what only they would see.
    let mine = "query($p: ID!) { post(id: $p) { id viewerCanEdit } }";
    assert_eq!(app.gql(Some(&c.alice), mine, json!({ "p": c.post })).await["post"]["viewerCanEdit"], true);
    assert_eq!(app.gql(None, mine, json!({ "p": c.post })).await["post"]["viewerCanEdit"], false);
}

#[tokio::test]
async fn concurrent_readers_of_a_cold_answer_share_one_computation() {
    let (app, c) = TestApp::community().await;
    for i in 0..5 {
        app.create_post(&c.alice, &c.board, &format!("p{i}")).await;
    }
    let list =
        "query($n: Int!) { posts(first: $n) { edges { node { id title author { nickname } board { name } } } } }";
    let before = app.statements();
    app.gql(None, list, json!({ "n": 4 })).await;
    let one = app.statements() - before;
    assert!(one > 0);
    let before = app.statements();
    let readers = (0..20).map(|_| app.gql(None, list, json!({ "n": 5 })));
    let answers = futures_util::future::join_all(readers).await;
    assert!(answers.windows(2).all(|w| w[0] == w[1]));
    let twenty = app.statements() - before;
    assert!(twenty < 2 * one, "20 concurrent readers ran {twenty} statements; one reader runs {one}");
}

#[tokio::test]
async fn deletions_erasures_and_edits_on_one_instance_are_never_served_by_another() {
    let redis = OwnRedis::start();
    let (a, b) = pair(&redis).await;
    let admin = a.admin().await;
    let board = a.create_board(&admin, "b1", "Board").await;
    let (alice, _) = a.register(&phone(1), "alice").await;
    let (bob, _) = a.register(&phone(2), "bob").await;
    let post = a.create_post(&alice, &board, "原标题").await;
    let bobs = a.create_post(&bob, &board, "bob's").await;
    assert_eq!(page(&b, &post).await["title"], "原标题");
    assert_eq!(page(&b, &bobs).await["author"]["nickname"], "bob");

    // An edit through A: B's very next answer has it.
    let edit = "mutation($p: ID!) { updatePost(input: { postId: $p, title: \"新标题\" }) { post { id } } }";
    a.gql(Some(&alice), edit, json!({ "p": post })).await;
    assert_eq!(page(&b, &post).await["title"], "新标题");

    // A deletion through A: B never serves the post again.
    a.gql(
        Some(&alice),
        "mutation($p: ID!) { deletePost(input: { postId: $p }) { deletedPostId } }",
        json!({ "p": post }),
    )
    .await;
    assert_eq!(page(&b, &post).await, Value::Null);

    // An erasure through A: B's cached page of the member's post loses its author at once.
    let erase = "mutation { deleteAccount(input: { password: \"correct horse\" }) { deleted } }";
    let erased = a.gql_raw(Some(&bob), erase, json!({})).await.1;
    assert!(erased.get("errors").is_none(), "{erased}");
    assert_eq!(page(&b, &bobs).await["author"], Value::Null);
}

#[tokio::test]
async fn counters_converge_on_other_instances_within_the_bound_and_at_once_on_the_writers() {
    let redis = OwnRedis::start();
    let (a, b) = pair(&redis).await;
    let admin = a.admin().await;
    let board = a.create_board(&admin, "b1", "Board").await;
    let (alice, _) = a.register(&phone(1), "alice").await;
    let post = a.create_post(&alice, &board, "t").await;
    assert_eq!(page(&a, &post).await["likeCount"], 0);
    assert_eq!(page(&b, &post).await["likeCount"], 0);
    a.gql(Some(&admin), "mutation($p: ID!) { likePost(input: { postId: $p }) { post { id } } }", json!({ "p": post }))
        .await;
    assert_eq!(page(&a, &post).await["likeCount"], 1, "the writer's instance answers at once");
    let bound = 2 * Duration::from_millis(b.state.config.response_cache_ttl_ms) + Duration::from_millis(500);
    let started = Instant::now();
    while page(&b, &post).await["likeCount"] != 1 {
        assert!(started.elapsed() < bound, "B still showed the old count after {:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn without_the_broker_nothing_cached_is_trusted() {
    let mut redis = OwnRedis::start();
    let (a, b) = pair(&redis).await;
    let admin = a.admin().await;
    let board = a.create_board(&admin, "b1", "Board").await;
    let (alice, _) = a.register(&phone(1), "alice").await;
    let post = a.create_post(&alice, &board, "t").await;
    assert_eq!(page(&b, &post).await["title"], "t");
    redis.kill();
    // Neither instance can read the epoch: both answer from the database.
    a.gql(
        Some(&alice),
        "mutation($p: ID!) { deletePost(input: { postId: $p }) { deletedPostId } }",
        json!({ "p": post }),
    )
    .await;
    assert_eq!(page(&b, &post).await, Value::Null);
    assert_eq!(page(&a, &post).await, Value::Null);
}

#[tokio::test]
async fn a_stale_answer_is_served_while_one_reader_refreshes_it_and_never_past_twice_the_ttl() {
    // Long enough that a stalled second on a loaded machine leaves every bound below standing; the
    // entity cache off, so the refresh reads the count from the database, not a post kept in memory.
    const TTL: u64 = 3000;
    let app = TestApp::spawn_with(|c| {
        c.response_cache_ttl_ms = TTL;
        c.entity_cache_ttl_ms = 0;
    })
    .await;
    let admin = app.admin().await;
    let board = app.create_board(&admin, "b1", "Board").await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let post = app.create_post(&alice, &board, "t").await;
    let views = "query($p: ID!) { post(id: $p) { viewCount } }";
    let count = |d: Value| d["post"]["viewCount"].as_i64().unwrap();
    let cached_at = Instant::now();
    assert_eq!(count(app.gql(None, views, json!({ "p": post })).await), 0);
    // A view moves no epoch: the cached answer stands.
    let view = "mutation($p: ID!) { recordPostView(input: { postId: $p }) { post { id } } }";
    app.gql(None, view, json!({ "p": post })).await;
    let viewed_at = Instant::now();
    assert_eq!(count(app.gql(None, views, json!({ "p": post })).await), 0);
    // Past the TTL, the first reader still gets the old answer at once, and sets off its refresh.
    tokio::time::sleep(Duration::from_millis(TTL + 100).saturating_sub(cached_at.elapsed())).await;
    let stale = count(app.gql(None, views, json!({ "p": post })).await);
    let in_window = cached_at.elapsed() < Duration::from_millis(TTL * 3 / 2);
    if in_window {
        assert_eq!(stale, 0, "within twice the TTL the stale answer is served");
    }
    // The refresh it set off replaces the answer before the old one would have expired (twice the
    // TTL): the new count comes from the background refresh, not from an expiry.
    while count(app.gql(None, views, json!({ "p": post })).await) != 1 {
        if in_window {
            assert!(cached_at.elapsed() < Duration::from_millis(2 * TTL - 100), "the background refresh did not land");
        }
        assert!(viewed_at.elapsed() < Duration::from_millis(TTL * 5 / 2), "the view never reached the answer");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_answer_computed_on_one_instance_serves_the_others_through_redis_until_content_changes() {
    let redis = OwnRedis::start();
    let (a, b) = pair(&redis).await;
    let admin = a.admin().await;
    let board = a.create_board(&admin, "b1", "Board").await;
    let (alice, _) = a.register(&phone(1), "alice").await;
    let post = a.create_post(&alice, &board, "t").await;
    let first = page(&a, &post).await;
    let before = b.statements();
    assert_eq!(page(&b, &post).await, first);
    assert_eq!(b.statements(), before, "B answered from A's computation, with no statement of its own");
    // A content write moves the shared epoch: B computes its own answer, with the edit.
    let edit = "mutation($p: ID!) { updatePost(input: { postId: $p, title: \"edited\" }) { post { id } } }";
    a.gql(Some(&alice), edit, json!({ "p": post })).await;
    let before = b.statements();
    assert_eq!(page(&b, &post).await["title"], "edited");
    assert!(b.statements() > before);
    // A counter write on B is B's own: an answer A computed before it is not taken from Redis.
    let fresh_on_a = page(&a, &post).await;
    assert_eq!(fresh_on_a["title"], "edited");
    b.gql(Some(&admin), "mutation($p: ID!) { likePost(input: { postId: $p }) { post { id } } }", json!({ "p": post }))
        .await;
    assert_eq!(page(&b, &post).await["likeCount"], 1, "the writer's instance shows its own like at once");
}
