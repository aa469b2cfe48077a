//! The first run a newcomer sees: `--demo` plants a living community once, and GraphiQL runs
//! queries, sign-in and a live subscription in a real browser.

use serde_json::{Value, json};

use crate::common::{RealDatabase, RealGateway};

const COUNTS: &str =
    "{ posts(first: 1) { edges { node { id } } } liveStreams(status: LIVE, first: 5) { edges { node { id title } } } }";

#[tokio::test]
async fn demo_plants_a_community_once_and_never_in_production() {
    let db = RealDatabase::new().await;
    let first = RealGateway::start(&db, &["--demo"], &[]).await.unwrap();
    assert!(first.stdout.contains("Sign in as +8613900000001"), "{}", first.stdout);
    let seen = first.gql(None, COUNTS, json!({})).await;
    assert_eq!(seen["data"]["posts"]["edges"].as_array().unwrap().len(), 1, "{seen}");
    assert_eq!(seen["data"]["liveStreams"]["edges"].as_array().unwrap().len(), 1, "one stream on air: {seen}");
    drop(first);

    // A database with members is left as it is: nothing is added the second time.
    let second = RealGateway::start(&db, &[], &[("DEMO", "true")]).await.unwrap();
    assert!(second.stdout.contains("no demo data was added"), "{}", second.stdout);
    assert_eq!(second.gql(None, COUNTS, json!({})).await, seen);
    drop(second);

    // Production settings refuse the demo before anything starts.
    let refused = RealGateway::start(&db, &["--demo"], &[("SESSION_COOKIE_SECURE", "true")]).await;
    let Err(why) = refused else { panic!("the demo started with production settings") };
    assert!(why.contains("DEMO cannot be used with production settings"), "{why}");
}

/// GraphiQL in Debian's chromium (tests/js/graphiql-browser.mjs, puppeteer-core), offline against the
/// real binary: it loads with the contract's tabs and no console errors, runs the home feed, signs in
/// through the Login tab (the page is then signed in by cookie), runs the OnLiveChat subscription and
/// shows a chat line sent from outside as it arrives, with the Headers editor's JSON as the
/// `connection_init` payload; stopping sends `complete`. Screenshot: target/graphiql.png.
#[tokio::test]
async fn graphiql_runs_queries_sign_in_and_a_live_subscription_in_a_real_browser() {
    let db = RealDatabase::new().await;
    let gw = RealGateway::start(&db, &["--demo"], &[]).await.unwrap();
    // The chat line comes from the demo host, signed in with a bearer token (not the browser).
    let login = gw
        .gql(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { token } }",
            json!({ "i": { "phone": "+8613900000001", "password": "ecer-demo-password", "delivery": "BEARER" } }),
        )
        .await;
    let token = login["data"]["login"]["token"].as_str().unwrap().to_string();
    let streams = gw.gql(None, COUNTS, json!({})).await;
    let stream = streams["data"]["liveStreams"]["edges"][0]["node"]["id"].as_str().unwrap().to_string();
    let screenshot = concat!(env!("CARGO_MANIFEST_DIR"), "/target/graphiql.png");
    let mut browser = tokio::process::Command::new("node")
        .arg("tests/js/graphiql-browser.mjs")
        .arg(gw.url("/"))
        .arg(screenshot)
        .arg(&token)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run node (the README's test command installs tests/js)");
    // The script says when its subscription is open; then a line is said in the room.
    use tokio::io::AsyncBufReadExt as _;
    let mut lines = tokio::io::BufReader::new(browser.stdout.take().unwrap()).lines();
    let mut report = String::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        report.push_str(&line);
        report.push('\n');
        if line.starts_with("SUBSCRIBED") {
            let sent = gw
                .gql(
                    Some(&token),
                    "mutation($i: SendLiveChatMessageInput!) { sendLiveChatMessage(input: $i) { message { seq } } }",
                    json!({ "i": { "streamId": stream, "body": "hello from outside the browser" } }),
                )
                .await;
            assert!(sent["errors"].is_null(), "{sent}");
        }
    }
    let status = browser.wait().await.unwrap();
    assert!(status.success(), "the browser test failed:\n{report}");
    let result: Value = serde_json::from_str(report.lines().last().unwrap_or("{}")).unwrap_or(Value::Null);
    assert_eq!(result["consoleErrors"], json!([]), "{report}");
    assert_eq!(result["signedInAs"], "+8613900000001", "{report}");
    assert!(result["homeFeedPosts"].as_u64().unwrap_or(0) > 0, "{report}");
    assert!(result["chatShown"].as_bool().unwrap_or(false), "{report}");
    assert!(result["stopSentComplete"].as_bool().unwrap_or(false), "{report}");
    assert!(result["initCarriedHeaders"].as_bool().unwrap_or(false), "{report}");
}
