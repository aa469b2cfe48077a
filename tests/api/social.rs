use serde_json::{Value, json};

use crate::common::{Community, TestApp, phone};

fn m(name: &str, input: &str, sel: &str) -> String {
    let cap = format!("{}{}", name[..1].to_uppercase(), &name[1..]);
    format!("mutation($input: {cap}Input!) {{ {name}(input: $input) {{ {sel} }} }}").replace("{input}", input)
}

#[tokio::test]
async fn likes_and_favourites_are_idempotent_and_counted() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let board = app.create_board(&admin, "b1", "Board").await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    let post = app.create_post(&alice, &board, "t").await;
    let sel = "post { likeCount favoriteCount viewerHasLiked viewerHasFavorited }";
    let vars = json!({ "input": { "postId": post } });

    for _ in 0..2 {
        let d = app.gql(Some(&bob), &m("likePost", "", sel), vars.clone()).await;
        assert_eq!(d["likePost"]["post"]["likeCount"], 1);
        assert_eq!(d["likePost"]["post"]["viewerHasLiked"], true);
    }
    app.gql(Some(&alice), &m("likePost", "", sel), vars.clone()).await;
    for _ in 0..2 {
        let d = app.gql(Some(&bob), &m("favoritePost", "", sel), vars.clone()).await;
        assert_eq!(d["favoritePost"]["post"]["favoriteCount"], 1);
        assert_eq!(d["favoritePost"]["post"]["viewerHasFavorited"], true);
    }
    let seen = app
        .gql(
            Some(&bob),
            "query($id: ID!) { post(id: $id) { likeCount viewerHasLiked viewerHasFavorited } }",
            json!({ "id": post }),
        )
        .await;
    assert_eq!(seen["post"], json!({ "likeCount": 2, "viewerHasLiked": true, "viewerHasFavorited": true }));
    let anon =
        app.gql(None, "query($id: ID!) { post(id: $id) { likeCount viewerHasLiked } }", json!({ "id": post })).await;
    assert_eq!(anon["post"], json!({ "likeCount": 2, "viewerHasLiked": false }));

    // Favourites are listed for their owner and private to everyone else.
    let mine = app.gql(Some(&bob), "{ me { favorites { edges { node { id } } } } }", json!({})).await;
    assert_eq!(mine["me"]["favorites"]["edges"][0]["node"]["id"], post.as_str());
    let (bob_token, bob_id) = (bob.clone(), app.gql(Some(&bob), "{ me { id } }", json!({})).await["me"]["id"].clone());
    let (code, _) = app
        .gql_err(
            Some(&alice),
            "query($id: ID!) { user(id: $id) { favorites { edges { cursor } } } }",
            json!({ "id": bob_id }),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");

    for _ in 0..2 {
        let d = app.gql(Some(&bob_token), &m("unlikePost", "", sel), vars.clone()).await;
        assert_eq!(d["unlikePost"]["post"]["likeCount"], 1);
        assert_eq!(d["unlikePost"]["post"]["viewerHasLiked"], false);
        let d = app.gql(Some(&bob_token), &m("unfavoritePost", "", sel), vars.clone()).await;
        assert_eq!(d["unfavoritePost"]["post"]["favoriteCount"], 0);
    }
    let mine = app.gql(Some(&bob), "{ me { favorites { edges { node { id } } } } }", json!({})).await;
    assert_eq!(mine["me"]["favorites"]["edges"], json!([]));

    // Comment likes work the same way.
    let comment = app.comment(&alice, &post, None, "c").await;
    let cvars = json!({ "input": { "commentId": comment } });
    for _ in 0..2 {
        let d = app.gql(Some(&bob), &m("likeComment", "", "comment { likeCount viewerHasLiked }"), cvars.clone()).await;
        assert_eq!(d["likeComment"]["comment"], json!({ "likeCount": 1, "viewerHasLiked": true }));
    }
    let d = app.gql(Some(&bob), &m("unlikeComment", "", "comment { likeCount viewerHasLiked }"), cvars.clone()).await;
    assert_eq!(d["unlikeComment"]["comment"], json!({ "likeCount": 0, "viewerHasLiked": false }));

    // A deleted post cannot be liked; a missing one neither.
    app.gql(
        Some(&alice),
        "mutation($input: DeletePostInput!) { deletePost(input: $input) { deletedPostId } }",
        vars.clone(),
    )
    .await;
    let (code, _) = app.gql_err(Some(&bob), &m("likePost", "", sel), vars.clone()).await;
    assert_eq!(code, "NOT_FOUND");
}

#[tokio::test]
async fn following_people_and_boards() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let board = app.create_board(&admin, "b1", "Board").await;
    let (alice, alice_id) = app.register(&phone(1), "alice").await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let (carol, _) = app.register(&phone(3), "carol").await;
    let follow = m("followUser", "", "user { followerCount viewerIsFollowing }");
    for _ in 0..2 {
        let d = app.gql(Some(&bob), &follow, json!({ "input": { "userId": alice_id } })).await;
        assert_eq!(d["followUser"]["user"], json!({ "followerCount": 1, "viewerIsFollowing": true }));
    }
    app.gql(Some(&carol), &follow, json!({ "input": { "userId": alice_id } })).await;
    let (code, err) = app.gql_err(Some(&alice), &follow, json!({ "input": { "userId": alice_id } })).await;
    assert_eq!(code, "BAD_USER_INPUT", "{err}");

    let q = "query($id: ID!) { user(id: $id) { followerCount followingCount followers { edges { node { nickname } } } following { edges { node { nickname } } } } }";
    let a = app.gql(None, q, json!({ "id": alice_id })).await;
    assert_eq!(a["user"]["followerCount"], 2);
    let names: Vec<&str> = a["user"]["followers"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["nickname"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["carol", "bob"], "most recent follower first");
    let b = app.gql(None, q, json!({ "id": bob_id })).await;
    assert_eq!(b["user"]["followingCount"], 1);
    assert_eq!(b["user"]["following"]["edges"][0]["node"]["nickname"], "alice");

    let unfollow = m("unfollowUser", "", "user { followerCount viewerIsFollowing }");
    for _ in 0..2 {
        let d = app.gql(Some(&bob), &unfollow, json!({ "input": { "userId": alice_id } })).await;
        assert_eq!(d["unfollowUser"]["user"], json!({ "followerCount": 1, "viewerIsFollowing": false }));
    }

    let fb = m("followBoard", "", "board { followerCount viewerIsFollowing }");
    for _ in 0..2 {
        let d = app.gql(Some(&bob), &fb, json!({ "input": { "boardId": board } })).await;
        assert_eq!(d["followBoard"]["board"], json!({ "followerCount": 1, "viewerIsFollowing": true }));
    }
    let me = app
        .gql(
            Some(&bob),
            "{ me { followingBoards { edges { node { id } } } following { edges { node { id } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(me["me"]["followingBoards"]["edges"][0]["node"]["id"], board.as_str());
    assert_eq!(me["me"]["following"]["edges"], json!([]));
    let d = app
        .gql(
            Some(&bob),
            &m("unfollowBoard", "", "board { followerCount viewerIsFollowing }"),
            json!({ "input": { "boardId": board } }),
        )
        .await;
    assert_eq!(d["unfollowBoard"]["board"], json!({ "followerCount": 0, "viewerIsFollowing": false }));

    // `me` also lists my comments.
    let post = app.create_post(&alice, &board, "t").await;
    app.comment(&bob, &post, None, "first").await;
    app.comment(&bob, &post, None, "second").await;
    let mine = app.gql(Some(&bob), "{ me { comments { edges { node { body post { id } } } } } }", json!({})).await;
    let bodies: Vec<&Value> =
        mine["me"]["comments"]["edges"].as_array().unwrap().iter().map(|e| &e["node"]["body"]).collect();
    assert_eq!(bodies, [&json!("second"), &json!("first")]);
}

#[tokio::test]
async fn concurrent_likes_count_exactly() {
    let (app, Community { post, .. }) = TestApp::community().await;
    let mut tokens = Vec::new();
    for i in 0..8 {
        tokens.push(app.register(&phone(100 + i), "u").await.0);
    }
    let like = m("likePost", "", "post { id }");
    let mut tasks = Vec::new();
    for t in &tokens {
        for _ in 0..3 {
            let (app, like, t, post) = (&app, like.clone(), t.clone(), post.clone());
            tasks.push(async move { app.gql(Some(&t), &like, json!({ "input": { "postId": post } })).await });
        }
    }
    futures_util::future::join_all(tasks).await;
    let d = app.gql(None, "query($id: ID!) { post(id: $id) { likeCount } }", json!({ "id": post })).await;
    assert_eq!(d["post"]["likeCount"], 8);
}

/// Two mutations in one document: the second payload must not show what the first one cached.
#[tokio::test]
async fn mutation_payloads_never_show_stale_cached_values() {
    let (app, Community { alice, post, .. }) = TestApp::community().await;
    let d = app
        .gql(
            Some(&alice),
            "mutation($id: ID!) {
               a: likePost(input: {postId: $id}) { post { likeCount viewerHasLiked } }
               b: unlikePost(input: {postId: $id}) { post { likeCount viewerHasLiked } } }",
            json!({ "id": post }),
        )
        .await;
    assert_eq!(d["a"]["post"], json!({ "likeCount": 1, "viewerHasLiked": true }));
    assert_eq!(d["b"]["post"], json!({ "likeCount": 0, "viewerHasLiked": false }));
}

/// A follows B while B follows A, many times at once: no deadlock, exact counters.
#[tokio::test]
async fn concurrent_mutual_follows_do_not_deadlock() {
    let app = TestApp::spawn().await;
    let mut people = Vec::new();
    for i in 0..6 {
        people.push(app.register(&phone(i), "p").await);
    }
    let follow = m("followUser", "", "user { id }");
    let mut tasks = Vec::new();
    for (a, (ta, _)) in people.iter().enumerate() {
        for (b, (_, ib)) in people.iter().enumerate() {
            if a != b {
                let (app, follow, ta, ib) = (&app, follow.clone(), ta.clone(), ib.clone());
                tasks.push(async move { app.gql(Some(&ta), &follow, json!({ "input": { "userId": ib } })).await });
            }
        }
    }
    futures_util::future::join_all(tasks).await;
    for (_, id) in &people {
        let d = app
            .gql(None, "query($id: ID!) { user(id: $id) { followerCount followingCount } }", json!({ "id": id }))
            .await;
        assert_eq!(d["user"], json!({ "followerCount": 5, "followingCount": 5 }));
    }
}

#[tokio::test]
async fn profiles_show_where_the_viewer_stands_in_constant_statements() {
    let app = TestApp::spawn().await;
    let (alice, alice_id) = app.register(&phone(1), "alice").await;
    let mut others = Vec::new();
    for n in 2..8 {
        others.push(app.register(&phone(n), &format!("m{n}")).await);
    }
    let block = "mutation($u: ID!) { blockUser(input: { userId: $u }) { user { id } } }";
    let follow = "mutation($u: ID!) { followUser(input: { userId: $u }) { user { id } } }";
    // m2, m5, m6, m7 follow alice, and alice follows m5 back; alice blocked m3; m4 blocked alice.
    for i in [0, 3, 4, 5] {
        app.gql(Some(&others[i].0), follow, json!({ "u": alice_id })).await;
    }
    app.gql(Some(&alice), follow, json!({ "u": others[3].1 })).await;
    app.gql(Some(&alice), block, json!({ "u": others[1].1 })).await;
    app.gql(Some(&others[2].0), block, json!({ "u": alice_id })).await;

    let q = "query($u: ID!) { user(id: $u) { followers(first: 20) { edges { node { nickname viewerHasBlocked followsViewer viewerCanMessage } } } } }";
    app.gql(Some(&alice), "{ me { id } }", json!({})).await;
    let before = app.statements();
    let data = app.gql(Some(&alice), q, json!({ "u": alice_id })).await;
    let used = app.statements() - before;
    let rows: std::collections::HashMap<String, Value> = data["user"]["followers"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["node"]["nickname"].as_str().unwrap().to_string(), e["node"].clone()))
        .collect();
    assert_eq!(rows.len(), 4, "{rows:?}");
    let flags = |r: &Value| {
        (
            r["viewerHasBlocked"].as_bool().unwrap(),
            r["followsViewer"].as_bool().unwrap(),
            r["viewerCanMessage"].as_bool().unwrap(),
        )
    };
    for n in ["m2", "m5", "m6", "m7"] {
        assert_eq!(flags(&rows[n]), (false, true, true), "{n}");
    }
    // session, the member, the follower page, their rows, blocks, follows towards the viewer.
    assert!(used <= 7, "{used} statements");
    let one = "query($u: ID!) { user(id: $u) { viewerHasBlocked followsViewer viewerCanMessage } }";
    let m3 = app.gql(Some(&alice), one, json!({ "u": others[1].1 })).await;
    assert_eq!(flags(&m3["user"]), (true, false, false), "alice blocked m3: she cannot message them");
    let m5_sees = app.gql(Some(&others[3].0), one, json!({ "u": alice_id })).await;
    assert_eq!(flags(&m5_sees["user"]), (false, true, true), "alice follows m5");

    // Seen from m4, who blocked alice: messaging is off both ways.
    let from_m4 = app
        .gql(
            Some(&others[2].0),
            "query($u: ID!) { user(id: $u) { viewerHasBlocked viewerCanMessage } }",
            json!({ "u": alice_id }),
        )
        .await;
    assert_eq!(from_m4["user"], json!({ "viewerHasBlocked": true, "viewerCanMessage": false }));
    let about_m4 = app
        .gql(
            Some(&alice),
            "query($u: ID!) { user(id: $u) { viewerHasBlocked viewerCanMessage } }",
            json!({ "u": others[2].1 }),
        )
        .await;
    assert_eq!(about_m4["user"], json!({ "viewerHasBlocked": false, "viewerCanMessage": false }));
    // Signed out: all false. Oneself: cannot message oneself.
    let anon = app
        .gql(
            None,
            "query($u: ID!) { user(id: $u) { viewerHasBlocked followsViewer viewerCanMessage } }",
            json!({ "u": alice_id }),
        )
        .await;
    assert_eq!(anon["user"], json!({ "viewerHasBlocked": false, "followsViewer": false, "viewerCanMessage": false }));
    let me = app.gql(Some(&alice), "{ me { viewerCanMessage } }", json!({})).await;
    assert_eq!(me["me"]["viewerCanMessage"], false);

    // Her own block list; nobody else's.
    let list = "query($u: ID!) { user(id: $u) { blockedUsers(first: 10) { edges { node { nickname } } } } }";
    let mine = app.gql(Some(&alice), list, json!({ "u": alice_id })).await;
    assert_eq!(mine["user"]["blockedUsers"]["edges"], json!([{ "node": { "nickname": "m3" } }]));
    let (code, _) = app.gql_err(Some(&others[0].0), list, json!({ "u": alice_id })).await;
    assert_eq!(code, "FORBIDDEN");
}
