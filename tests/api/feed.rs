//! The recommended feed: reasons, exclusions, cold start, the off switch, and offline quality against
//! the hot list with planted interests.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use crate::common::{TestApp, phone};

const FEED: &str = "query($first: Int, $after: String) { recommendedFeed(first: $first, after: $after) {
    edges { cursor node { reason post { id title board { name } author { nickname } } } }
    pageInfo { hasNextPage endCursor } } }";

fn items(d: &Value) -> Vec<(String, String)> {
    d["recommendedFeed"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (e["node"]["post"]["id"].as_str().unwrap().to_string(), e["node"]["reason"].as_str().unwrap().to_string())
        })
        .collect()
}

#[tokio::test]
async fn reasons_exclusions_cold_start_and_the_off_switch() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let trade = app.create_board(&admin, "trade", "外贸实战").await;
    let other = app.create_board(&admin, "other", "闲聊").await;
    let (alice, alice_id) = app.register(&phone(1), "alice").await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    let a1 = app.create_post(&alice, &other, "alice on other").await;
    let t1 = app.create_post(&bob, &trade, "bob on trade").await;
    let mine = app.create_post(&bob, &other, "bob's own").await;
    let read = app.create_post(&alice, &trade, "already read").await;

    // Cold start: a new member gets the hot list.
    let cold = items(&app.gql(Some(&bob), FEED, json!({ "first": 10 })).await);
    assert!(!cold.is_empty() && cold.iter().all(|(_, r)| r == "popular in the community"), "{cold:?}");

    let follow_user = "mutation($u: ID!) { followUser(input: { userId: $u }) { user { id } } }";
    let follow_board = "mutation($b: ID!) { followBoard(input: { boardId: $b }) { board { id } } }";
    let (carol, _) = app.register(&phone(3), "carol").await;
    app.gql(Some(&carol), follow_user, json!({ "u": alice_id })).await;
    app.gql(Some(&carol), follow_board, json!({ "b": trade })).await;
    app.gql(
        Some(&carol),
        "mutation($p: ID!) { recordPostView(input: { postId: $p }) { post { id } } }",
        json!({ "p": read }),
    )
    .await;
    let carol_own = app.create_post(&carol, &trade, "carol's own").await;
    let feed = items(&app.gql(Some(&carol), FEED, json!({ "first": 10 })).await);
    let reasons: HashMap<String, String> = feed.iter().cloned().collect();
    assert_eq!(reasons.get(&a1).map(String::as_str), Some("because you follow alice"));
    assert_eq!(reasons.get(&t1).map(String::as_str), Some("because you follow 外贸实战"));
    assert!(!reasons.contains_key(&read), "already read posts are left out");
    assert!(!reasons.contains_key(&carol_own), "own posts are left out");
    assert!(!reasons.contains_key(&mine), "nothing ties carol to bob's post on the other board");

    // Switched off: the same feed as a visitor's, using none of carol's behaviour.
    let off = "mutation { updateSettings(input: { personalizedRecommendations: false }) { settings { personalizedRecommendations } } }";
    app.gql(Some(&carol), off, json!({})).await;
    let carol_off = items(&app.gql(Some(&carol), FEED, json!({ "first": 10 })).await);
    let visitor = items(&app.gql(None, FEED, json!({ "first": 10 })).await);
    assert_eq!(carol_off, visitor);
}

/// Offline quality with planted interests: 6 boards of 30 posts; 12 members each like posts on two
/// boards; a quarter of the posts each member would like is held out. The personalised feed's first 20
/// places must hold clearly more of the held-out posts than the hot list's first 20.
#[tokio::test]
async fn the_personal_feed_beats_the_hot_list_on_held_out_interests() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let mut boards = Vec::new();
    for b in 0..6 {
        boards.push(app.create_board(&admin, &format!("board-{b}"), &format!("Board {b}")).await);
    }
    let mut authors = Vec::new();
    for a in 0..6 {
        authors.push(app.register(&phone(100 + a), &format!("author{a}")).await.0);
    }
    let mut posts_of: Vec<Vec<String>> = vec![Vec::new(); 6];
    for i in 0..180 {
        let board = i % 6;
        let author = &authors[(i / 6) % 6];
        posts_of[board].push(app.create_post(author, &boards[board], &format!("post {i}")).await);
    }
    let like = "mutation($p: ID!) { likePost(input: { postId: $p }) { post { id } } }";
    let (mut personal_hits, mut hot_hits, mut held_total) = (0usize, 0usize, 0usize);
    let hot_q = "{ hotPosts(first: 20) { edges { node { id } } } }";
    let mut members = Vec::new();
    for m in 0..12 {
        let (token, _) = app.register(&phone(200 + m), &format!("member{m}")).await;
        let (b1, b2) = ((m % 6) as usize, ((m + 1 + m / 6) % 6) as usize);
        // Every 4th post of the two boards is held out; the member likes a different half of the rest.
        let mut held = HashSet::new();
        for (k, post) in posts_of[b1].iter().chain(&posts_of[b2]).enumerate() {
            if k % 4 == 0 {
                held.insert(post.clone());
            } else if k % 4 == 1 || k % 4 == 2 {
                app.gql(Some(&token), like, json!({ "p": post })).await;
            }
        }
        members.push((token, held));
    }
    let hot: HashSet<String> = app.gql(None, hot_q, json!({})).await["hotPosts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_string())
        .collect();
    for (token, held) in &members {
        let feed: HashSet<String> =
            items(&app.gql(Some(token), FEED, json!({ "first": 20 })).await).into_iter().map(|(id, _)| id).collect();
        personal_hits += held.iter().filter(|p| feed.contains(*p)).count();
        hot_hits += held.iter().filter(|p| hot.contains(*p)).count();
        held_total += held.len();
    }
    let personal = personal_hits as f64 / held_total as f64;
    let baseline = hot_hits as f64 / held_total as f64;
    println!(
        "recommended feed: hit rate {personal:.3} ({personal_hits}/{held_total}) vs hot list {baseline:.3} ({hot_hits}/{held_total}) in the first 20"
    );
    assert!(personal >= 2.0 * baseline && personal >= 0.2, "personal {personal:.3} vs hot {baseline:.3}");
}

/// The same measurement on the seed generator's planted interests (200 members, 2,400 posts, each
/// member favouring two of twelve boards): each member's most recent quarter of likes is held out
/// (deleted), as the "next" interactions a feed should anticipate.
#[tokio::test]
async fn on_seeded_planted_interests_the_feed_beats_the_hot_list() {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let app = TestApp::spawn().await;
    let seed = 11;
    ecer_gateway::seed::run_with(
        &app.state.db,
        ecer_gateway::seed::Size { users: 200, posts: 2400 },
        seed,
        ecer_gateway::seed::Interests::Planted,
    )
    .await
    .unwrap();
    let db = &app.state.db;
    let backend = db.get_database_backend();
    let p = |n: usize| if backend == DbBackend::Postgres { format!("${n}") } else { "?".into() };
    let hot_q = "{ hotPosts(first: 20) { edges { node { id } } } }";
    let (mut personal_hits, mut hot_hits, mut held_total) = (0usize, 0usize, 0usize);
    let mut held_by_user = Vec::new();
    for user in 1..=20i64 {
        let boards = ecer_gateway::seed::favourite_boards(user, seed);
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT l.post_id AS post_id FROM post_likes l JOIN posts p ON p.id = l.post_id \
                     WHERE l.user_id = {} AND p.board_id IN ({}, {}) ORDER BY l.post_id DESC",
                    p(1),
                    p(2),
                    p(3)
                ),
                [user.into(), boards[0].into(), boards[1].into()],
            ))
            .await
            .unwrap();
        let liked: Vec<i64> = rows.iter().map(|r| r.try_get::<i64>("", "post_id").unwrap()).collect();
        let held: Vec<i64> = liked.iter().copied().take((liked.len() / 4).max(1)).collect();
        for post in &held {
            db.execute_raw(Statement::from_sql_and_values(
                backend,
                format!("DELETE FROM post_likes WHERE user_id = {} AND post_id = {}", p(1), p(2)),
                [user.into(), (*post).into()],
            ))
            .await
            .unwrap();
        }
        held_by_user.push((user, held));
    }
    let hot: std::collections::HashSet<String> = app.gql(None, hot_q, json!({})).await["hotPosts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_string())
        .collect();
    let login = "mutation($p: String!) { login(input: { phone: $p, password: \"ecer-demo-password\" }) { token } }";
    for (user, held) in held_by_user {
        let token = app.gql(None, login, json!({ "p": format!("+86139{user:08}") })).await["login"]["token"]
            .as_str()
            .unwrap()
            .to_string();
        let feed: std::collections::HashSet<String> =
            items(&app.gql(Some(&token), FEED, json!({ "first": 20 })).await).into_iter().map(|(id, _)| id).collect();
        let ids: Vec<String> = held
            .iter()
            .map(|p| ecer_gateway::graphql::ids::encode(ecer_gateway::graphql::ids::Kind::Post, *p).0)
            .collect();
        personal_hits += ids.iter().filter(|id| feed.contains(*id)).count();
        hot_hits += ids.iter().filter(|id| hot.contains(*id)).count();
        held_total += ids.len();
    }
    let personal = personal_hits as f64 / held_total as f64;
    let baseline = hot_hits as f64 / held_total as f64;
    println!(
        "seeded planted interests: feed hit rate {personal:.3} ({personal_hits}/{held_total}) vs hot list {baseline:.3} ({hot_hits}/{held_total})"
    );
    assert!(personal >= 2.0 * baseline && personal > 0.1, "personal {personal:.3} vs hot {baseline:.3}");
}

/// Searches bring the posts they found into the feed; those are kept with each search-history entry,
/// so the feed runs no search, and deleting the entry (one or all), switching personalisation off or
/// recording off takes the influence away at once. Entries recorded before the matches were kept
/// are searched once on first read and kept from then on.
#[tokio::test]
async fn searches_shape_the_feed_until_deleted_or_switched_off() {
    use sea_orm::{ConnectionTrait, Statement};
    const SEARCH: &str =
        "query($q: String!, $first: Int) { search(query: $q, first: $first) { edges { node { post { id } } } } }";
    const HISTORY: &str = "{ me { searchHistory(first: 10) { edges { node { id query } } } } }";
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let board = app.create_board(&admin, "trade", "外贸实战").await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let quote = app.create_post(&alice, &board, "FOB 报价 怎么写").await;
    let chat = app.create_post(&alice, &board, "闲聊").await;
    let (carol, _) = app.register(&phone(3), "carol").await;
    let searched = |d: Value| -> Vec<(String, String)> {
        let mut v: Vec<_> = items(&d).into_iter().filter(|(_, r)| r.starts_with("because you searched")).collect();
        v.sort();
        v
    };
    let because = |post: &str, q: &str| (post.to_string(), format!("because you searched \"{q}\""));

    // The first page holds every match: the history keeps it as it is.
    app.gql(Some(&carol), SEARCH, json!({ "q": "报价", "first": 20 })).await;
    assert_eq!(searched(app.gql(Some(&carol), FEED, json!({ "first": 10 })).await), vec![because(&quote, "报价")]);
    // A page of one out of two: the history runs its own search for the best ten.
    app.gql(Some(&carol), SEARCH, json!({ "q": "body", "first": 1 })).await;
    let mut both = vec![because(&quote, "body"), because(&chat, "body")];
    both.sort();
    assert_eq!(searched(app.gql(Some(&carol), FEED, json!({ "first": 10 })).await), both);

    // Deleting one entry takes its posts out at once.
    let history = app.gql(Some(&carol), HISTORY, json!({})).await;
    let newest = history["me"]["searchHistory"]["edges"][0]["node"].clone();
    assert_eq!(newest["query"], "body");
    let del = "mutation($e: ID) { deleteSearchHistory(input: { entryId: $e }) { deletedCount } }";
    app.gql(Some(&carol), del, json!({ "e": newest["id"] })).await;
    assert_eq!(searched(app.gql(Some(&carol), FEED, json!({ "first": 10 })).await), vec![because(&quote, "报价")]);

    // An entry from before matches were kept is searched on first read, then kept.
    let db = &app.state.db;
    db.execute_unprepared("UPDATE search_history SET matched_posts = NULL").await.unwrap();
    assert_eq!(searched(app.gql(Some(&carol), FEED, json!({ "first": 10 })).await), vec![because(&quote, "报价")]);
    let kept = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), "SELECT matched_posts FROM search_history"))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<Option<String>>(0)
        .unwrap();
    assert!(kept.is_some_and(|k| !k.is_empty()));

    // Personalisation off: the visitor's feed.
    let personal = |on: bool| {
        format!("mutation {{ updateSettings(input: {{ personalizedRecommendations: {on} }}) {{ __typename }} }}")
    };
    app.gql(Some(&carol), &personal(false), json!({})).await;
    let off = items(&app.gql(Some(&carol), FEED, json!({ "first": 10 })).await);
    assert_eq!(off, items(&app.gql(None, FEED, json!({ "first": 10 })).await));
    app.gql(Some(&carol), &personal(true), json!({})).await;

    // Deleting all of it: nothing left of the searches.
    app.gql(Some(&carol), del, json!({})).await;
    assert_eq!(searched(app.gql(Some(&carol), FEED, json!({ "first": 10 })).await), vec![]);

    // Recording off: a search leaves no trace in the feed.
    let record_off = "mutation { updateSettings(input: { recordHistory: false }) { __typename } }";
    app.gql(Some(&carol), record_off, json!({})).await;
    app.gql(Some(&carol), SEARCH, json!({ "q": "报价", "first": 20 })).await;
    assert_eq!(searched(app.gql(Some(&carol), FEED, json!({ "first": 10 })).await), vec![]);
}
