//! Browse and search history: recorded for members who allow it, readable and deletable by them only;
//! views count for hot ranking whoever reads.

use serde_json::{Value, json};

use crate::common::{TestApp, phone};

const VIEW: &str =
    "mutation($p: ID!, $ms: Float) { recordPostView(input: { postId: $p, durationMs: $ms }) { post { viewCount } } }";
const MINE: &str = "{ me { settings { recordHistory personalizedRecommendations }
    browseHistory(first: 10) { edges { node { id durationMs post { title } } } }
    searchHistory(first: 10) { edges { node { id query } } } } }";
const SEARCH: &str = "query($q: String!) { search(query: $q) { edges { node { post { title } } } } }";

#[tokio::test]
async fn history_is_recorded_shown_deleted_and_switchable() {
    let (app, c) = TestApp::community().await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;

    // Anonymous views count, and are nobody's history.
    let v = app.gql(None, VIEW, json!({ "p": c.post })).await;
    assert_eq!(v["recordPostView"]["post"]["viewCount"], 1);
    let v = app.gql(Some(&bob), VIEW, json!({ "p": c.post, "ms": 42000.0 })).await;
    assert_eq!(v["recordPostView"]["post"]["viewCount"], 2);
    app.gql(Some(&bob), SEARCH, json!({ "q": "FOB 报价" })).await;
    app.gql(Some(&bob), SEARCH, json!({ "q": "询盘" })).await;

    let mine = app.gql(Some(&bob), MINE, json!({})).await["me"].clone();
    assert_eq!(mine["settings"], json!({ "recordHistory": true, "personalizedRecommendations": true }));
    assert_eq!(mine["browseHistory"]["edges"][0]["node"]["durationMs"], 42000.0);
    assert_eq!(mine["browseHistory"]["edges"][0]["node"]["post"]["title"], "t");
    let queries: Vec<&str> = mine["searchHistory"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["query"].as_str().unwrap())
        .collect();
    assert_eq!(queries, vec!["询盘", "FOB 报价"]);

    // Private to the member.
    let peek = "query($u: ID!) { user(id: $u) { browseHistory(first: 1) { edges { cursor } } } }";
    let (code, _) = app.gql_err(Some(&c.alice), peek, json!({ "u": bob_id })).await;
    assert_eq!(code, "FORBIDDEN");

    // One entry, then all.
    let del_search = "mutation($e: ID) { deleteSearchHistory(input: { entryId: $e }) { deletedCount } }";
    let first = mine["searchHistory"]["edges"][0]["node"]["id"].clone();
    assert_eq!(app.gql(Some(&bob), del_search, json!({ "e": first })).await["deleteSearchHistory"]["deletedCount"], 1);
    // Someone else's entry id deletes nothing.
    assert_eq!(
        app.gql(Some(&c.alice), del_search, json!({ "e": first })).await["deleteSearchHistory"]["deletedCount"],
        0
    );
    assert_eq!(app.gql(Some(&bob), del_search, json!({})).await["deleteSearchHistory"]["deletedCount"], 1);
    let del_browse = "mutation { deleteBrowseHistory(input: {}) { deletedCount } }";
    assert_eq!(app.gql(Some(&bob), del_browse, json!({})).await["deleteBrowseHistory"]["deletedCount"], 1);

    // Switched off: nothing is recorded (views still count).
    let off = "mutation { updateSettings(input: { recordHistory: false }) { settings { recordHistory personalizedRecommendations } } }";
    let s = app.gql(Some(&bob), off, json!({})).await;
    assert_eq!(s["updateSettings"]["settings"], json!({ "recordHistory": false, "personalizedRecommendations": true }));
    let v = app.gql(Some(&bob), VIEW, json!({ "p": c.post })).await;
    assert_eq!(v["recordPostView"]["post"]["viewCount"], 3);
    app.gql(Some(&bob), SEARCH, json!({ "q": "FOB" })).await;
    let mine = app.gql(Some(&bob), MINE, json!({})).await["me"].clone();
    assert_eq!(mine["browseHistory"]["edges"], json!([]));
    assert_eq!(mine["searchHistory"]["edges"], json!([]));

    let (code, _) = app.gql_err(None, VIEW, json!({ "p": c.post, "ms": -1.0 })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    let _ = Value::Null;
}

#[tokio::test]
async fn views_lift_a_post_in_hot_ranking() {
    let (app, c) = TestApp::community().await;
    let older = c.post.clone();
    let newer = app.create_post(&c.alice, &c.board, "newer").await;
    let hot = "{ hotPosts(first: 2) { edges { node { id } } } }";
    let order = |d: Value| -> Vec<String> {
        d["hotPosts"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(order(app.gql(None, hot, json!({})).await), vec![newer.clone(), older.clone()]);
    // Thirty views weigh three likes: enough to beat a few seconds of recency.
    for _ in 0..30 {
        app.gql(None, VIEW, json!({ "p": older })).await;
    }
    // Views move no cache epoch (every page view would empty it): signed-out readers see the new
    // order once the cached answer ages out, within twice RESPONSE_CACHE_TTL_MS.
    let ttl = std::time::Duration::from_millis(app.state.config.response_cache_ttl_ms);
    let deadline = std::time::Instant::now() + 2 * ttl + std::time::Duration::from_secs(1);
    while order(app.gql(None, hot, json!({})).await) != vec![older.clone(), newer.clone()] {
        assert!(std::time::Instant::now() < deadline, "the view counts did not reach the hot list in time");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// While a major policy version awaits the member's consent, nothing of their use is recorded (view
/// counts still count); once accepted, recording resumes.
#[tokio::test]
async fn nothing_is_recorded_while_consent_is_pending() {
    let (app, c) = TestApp::community().await;
    let publish =
        "mutation { publishPolicyVersion(input: { body: \"v2: new purposes\", major: true }) { policy { version } } }";
    let version =
        app.gql(Some(&c.admin), publish, json!({})).await["publishPolicyVersion"]["policy"]["version"].clone();
    let history = "{ me { browseHistory { edges { cursor } } searchHistory { edges { cursor } } } }";
    let view = "mutation($p: ID!) { recordPostView(input: { postId: $p }) { post { viewCount } } }";
    let viewed = app.gql(Some(&c.alice), view, json!({ "p": c.post })).await;
    assert_eq!(viewed["recordPostView"]["post"]["viewCount"], 1, "the count still counts");
    app.gql(Some(&c.alice), SEARCH, json!({ "q": "t" })).await;
    let mine = app.gql(Some(&c.alice), history, json!({})).await;
    assert_eq!(mine["me"], json!({ "browseHistory": { "edges": [] }, "searchHistory": { "edges": [] } }));

    let accept = "mutation($v: Int!) { acceptPrivacyPolicy(input: { version: $v }) { consent { requiredVersion } } }";
    app.gql(Some(&c.alice), accept, json!({ "v": version })).await;
    app.gql(Some(&c.alice), view, json!({ "p": c.post })).await;
    app.gql(Some(&c.alice), SEARCH, json!({ "q": "t" })).await;
    let mine = app.gql(Some(&c.alice), history, json!({})).await;
    assert_eq!(mine["me"]["browseHistory"]["edges"].as_array().unwrap().len(), 1);
    assert_eq!(mine["me"]["searchHistory"]["edges"].as_array().unwrap().len(), 1);
}
