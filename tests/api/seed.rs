use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

use crate::common::TestApp;

async fn fingerprint(app: &TestApp) -> Vec<String> {
    let db = &app.state.db;
    let sql = "SELECT p.id, p.title, p.like_count, p.comment_count, p.board_id, p.author_id, u.nickname \
               FROM posts p JOIN users u ON u.id = p.author_id ORDER BY p.id";
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {} {} {}",
                r.try_get::<i64>("", "id").unwrap(),
                r.try_get::<String>("", "title").unwrap(),
                r.try_get::<i64>("", "like_count").unwrap(),
                r.try_get::<i64>("", "comment_count").unwrap(),
                r.try_get::<i64>("", "board_id").unwrap(),
                r.try_get::<i64>("", "author_id").unwrap(),
                r.try_get::<String>("", "nickname").unwrap()
            )
        })
        .collect()
}

/// The same seed and size give the same community; its counters agree with its rows; seeded members
/// can sign in; and the gateway keeps working on top (new rows get fresh ids).
#[tokio::test]
async fn seed_is_deterministic_consistent_and_usable() {
    use ecer_gateway::seed::{PASSWORD, Size, run};
    let (a, b) = (TestApp::spawn().await, TestApp::spawn().await);
    run(&a.state.db, Size { users: 40, posts: 120 }, 9).await.unwrap();
    run(&b.state.db, Size { users: 40, posts: 120 }, 9).await.unwrap();
    let fa = fingerprint(&a).await;
    assert_eq!(fa.len(), 120);
    assert_eq!(fa, fingerprint(&b).await);
    assert!(run(&a.state.db, Size { users: 1, posts: 1 }, 9).await.is_err(), "seeding twice is refused");

    let db = &a.state.db;
    for (sql, what) in [
        (
            "SELECT COUNT(*) AS n FROM posts p WHERE like_count <> (SELECT COUNT(*) FROM post_likes l WHERE l.post_id = p.id)",
            "likes",
        ),
        (
            "SELECT COUNT(*) AS n FROM posts p WHERE comment_count <> (SELECT COUNT(*) FROM comments c WHERE c.post_id = p.id)",
            "comments",
        ),
        (
            "SELECT COUNT(*) AS n FROM users u WHERE follower_count <> (SELECT COUNT(*) FROM user_follows f WHERE f.followee_id = u.id)",
            "followers",
        ),
        (
            "SELECT COUNT(*) AS n FROM boards b WHERE post_count <> (SELECT COUNT(*) FROM posts p WHERE p.board_id = b.id)",
            "board posts",
        ),
    ] {
        let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
        assert_eq!(row.try_get::<i64>("", "n").unwrap(), 0, "{what} counters disagree with rows");
    }

    let login = a
        .gql(
            None,
            "mutation($input: LoginInput!) { login(input: $input) { token } }",
            json!({ "input": { "phone": "+8613900000001", "password": PASSWORD } }),
        )
        .await;
    let token = login["login"]["token"].as_str().unwrap().to_string();
    let boards = a.gql(None, "{ boards { edges { node { id } } } }", json!({})).await;
    let board = boards["boards"]["edges"][0]["node"]["id"].as_str().unwrap().to_string();
    a.create_post(&token, &board, "after the seed").await;
    let data = a.gql(None, "{ posts(first: 1) { edges { node { title } } } }", json!({})).await;
    assert_eq!(data["posts"]["edges"][0]["node"]["title"], "after the seed");
}
