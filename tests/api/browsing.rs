use serde_json::{Value, json};

use crate::common::{TestApp, phone};

/// Everything a visitor reads works without an account.
#[tokio::test]
async fn anonymous_visitors_browse_boards_posts_threads_and_profiles() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let board = app.create_board(&admin, "trade-talk", "外貿實戰").await;
    let (alice, alice_id) = app.register(&phone(1), "alice").await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    let post = app.create_post(&alice, &board, "詢盤 How to answer an RFQ").await;
    let top = app.comment(&bob, &post, None, "先報 FOB 價").await;
    let reply = app.comment(&alice, &post, Some(&top), "謝謝 thanks").await;
    let reply2 = app.comment(&bob, &post, Some(&reply), "不客氣").await;

    let data = app.gql(None, "{ boards { edges { node { id slug name postCount } } } }", json!({})).await;
    assert_eq!(data["boards"]["edges"][0]["node"]["name"], "外貿實戰");
    assert_eq!(data["boards"]["edges"][0]["node"]["postCount"], 1);

    let by_slug =
        app.gql(None, "{ board(slug: \"trade-talk\") { id posts { edges { node { id } } } } }", json!({})).await;
    assert_eq!(by_slug["board"]["id"], board.as_str());
    assert_eq!(by_slug["board"]["posts"]["edges"][0]["node"]["id"], post.as_str());

    let thread = app
        .gql(
            None,
            "query($id: ID!) { post(id: $id) { title commentCount viewerHasLiked author { nickname } board { slug }
               comments { edges { node { id body author { nickname } replyCount parent { id }
                 replies { edges { node { id body parent { id }
                   replies { edges { node { id body } } } } } } } } } } }",
            json!({ "id": post }),
        )
        .await;
    let p = &thread["post"];
    assert_eq!(p["title"], "詢盤 How to answer an RFQ");
    assert_eq!(p["commentCount"], 3);
    assert_eq!(p["viewerHasLiked"], false);
    assert_eq!(p["author"]["nickname"], "alice");
    let first = &p["comments"]["edges"][0]["node"];
    assert_eq!(first["id"], top.as_str());
    assert_eq!(first["parent"], Value::Null);
    assert_eq!(first["replyCount"], 1);
    let second = &first["replies"]["edges"][0]["node"];
    assert_eq!(second["id"], reply.as_str());
    assert_eq!(second["parent"]["id"], top.as_str());
    assert_eq!(second["replies"]["edges"][0]["node"]["id"], reply2.as_str());
    assert_eq!(p["comments"]["edges"].as_array().unwrap().len(), 1, "replies are not top-level comments");

    let profile = app
        .gql(
            None,
            "query($id: ID!) { user(id: $id) { nickname postCount posts { edges { node { id } } } } }",
            json!({ "id": alice_id }),
        )
        .await;
    assert_eq!(profile["user"]["postCount"], 1);
    assert_eq!(profile["user"]["posts"]["edges"][0]["node"]["id"], post.as_str());

    let node =
        app.gql(None, "query($id: ID!) { node(id: $id) { id ... on Post { title } } }", json!({ "id": post })).await;
    assert_eq!(node["node"]["title"], "詢盤 How to answer an RFQ");
    let node =
        app.gql(None, "query($id: ID!) { node(id: $id) { ... on Comment { body } } }", json!({ "id": reply })).await;
    assert_eq!(node["node"]["body"], "謝謝 thanks");

    let me = app.gql(None, "{ me { id } }", json!({})).await;
    assert_eq!(me["me"], Value::Null);
}

#[tokio::test]
async fn ids_are_typed_and_unknown_ids_are_null() {
    let app = TestApp::spawn().await;
    let (_, user) = app.register(&phone(1), "a").await;
    // A user id where a post id is expected is bad input, not a silent miss.
    let (code, err) = app.gql_err(None, "query($id: ID!) { post(id: $id) { id } }", json!({ "id": user })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert_eq!(err["extensions"]["field"], "id");
    let (code, _) = app.gql_err(None, "{ post(id: \"garbage\") { id } }", json!({})).await;
    assert_eq!(code, "BAD_USER_INPUT");
    // A well-formed id of nothing is simply null.
    let missing = ecer_gateway::graphql::ids::encode(ecer_gateway::graphql::ids::Kind::Post, 999_999);
    let data = app
        .gql(None, "query($id: ID!) { post(id: $id) { id } node(id: $id) { id } }", json!({ "id": missing.0 }))
        .await;
    assert_eq!(data["post"], Value::Null);
    assert_eq!(data["node"], Value::Null);
}
