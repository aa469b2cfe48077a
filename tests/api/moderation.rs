//! Reports and the moderation queue: members report, moderators settle cases with one action, the
//! reporters hear the outcome, and a private message reaches a moderator only as a report's target.

use sea_orm::ConnectionTrait as _;
use serde_json::{Value, json};

use crate::common::{TestApp, phone};

const REPORT: &str = "mutation($t: ID!, $r: ReportReason!, $n: String) {
    reportContent(input: { target: $t, reason: $r, note: $n }) { report { id status targetKind targetId reason note } } }";
const QUEUE: &str = "query($s: ReportStatus) { moderationQueue(status: $s, first: 10) { edges { node {
    targetId targetKind status reportCount reasons { reason count } reports { reason note }
    target { __typename ... on Post { title } ... on Message { body sender { nickname } } ... on User { nickname } }
} } } }";
const RESOLVE: &str = "mutation($t: ID!, $a: ModerationAction!, $d: Int) {
    resolveReports(input: { target: $t, action: $a, banDays: $d, reason: \"rule 4: fraud\" }) {
        reportsResolved action bannedUserId } }";
const NOTICES: &str = "{ notifications(first: 10) { edges { node { kind body } } } }";

async fn report(app: &TestApp, token: &str, target: &str, reason: &str, note: Option<&str>) -> Value {
    app.gql(Some(token), REPORT, json!({ "t": target, "r": reason, "n": note })).await["reportContent"]["report"]
        .clone()
}

fn cases(data: &Value) -> Vec<Value> {
    data["moderationQueue"]["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()).collect()
}

#[tokio::test]
async fn reports_form_one_case_and_hiding_takes_the_post_down_and_tells_the_reporters() {
    let (app, c) = TestApp::community().await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    let (carol, _) = app.register(&phone(3), "carol").await;
    let (moderator, _) = app.user_with_role(&phone(4), "MODERATOR").await;

    let first = report(&app, &bob, &c.post, "SPAM", None).await;
    assert_eq!((first["status"].as_str(), first["targetKind"].as_str()), (Some("OPEN"), Some("POST")));
    // A double tap files once.
    let again = report(&app, &bob, &c.post, "FRAUD", None).await;
    assert_eq!(again["id"], first["id"]);
    report(&app, &carol, &c.post, "FRAUD", Some("  asks for payment to a personal account  ")).await;

    let (code, _) = app.gql_err(Some(&c.alice), REPORT, json!({ "t": c.post, "r": "SPAM" })).await;
    assert_eq!(code, "BAD_USER_INPUT", "reporting one's own post");
    let (code, _) = app.gql_err(None, REPORT, json!({ "t": c.post, "r": "SPAM" })).await;
    assert_eq!(code, "UNAUTHENTICATED");
    let (code, _) = app.gql_err(Some(&bob), REPORT, json!({ "t": c.board, "r": "SPAM" })).await;
    assert_eq!(code, "BAD_USER_INPUT", "a board is not reportable");
    let long = "x".repeat(1001);
    let (code, err) = app.gql_err(Some(&bob), REPORT, json!({ "t": c.post, "r": "SPAM", "n": long })).await;
    assert_eq!((code.as_str(), err["extensions"]["field"].as_str()), ("BAD_USER_INPUT", Some("input.note")));
    let (code, _) = app.gql_err(Some(&bob), QUEUE, json!({})).await;
    assert_eq!(code, "FORBIDDEN");

    let queue = cases(&app.gql(Some(&moderator), QUEUE, json!({})).await);
    assert_eq!(queue.len(), 1);
    let case = &queue[0];
    assert_eq!(case["targetId"], json!(c.post));
    assert_eq!(case["reportCount"], 2);
    assert_eq!(case["target"]["__typename"], "Post");
    let reasons: Vec<_> =
        case["reasons"].as_array().unwrap().iter().map(|r| (r["reason"].clone(), r["count"].clone())).collect();
    assert_eq!(reasons, vec![(json!("FRAUD"), json!(1)), (json!("SPAM"), json!(1))]);
    assert_eq!(case["reports"][0]["note"], "asks for payment to a personal account");

    let (code, _) = app.gql_err(Some(&moderator), RESOLVE, json!({ "t": c.post, "a": "HIDE", "d": 0 })).await;
    assert_eq!(code, "BAD_USER_INPUT", "0 days");
    let done = app.gql(Some(&moderator), RESOLVE, json!({ "t": c.post, "a": "HIDE" })).await;
    assert_eq!(done["resolveReports"]["reportsResolved"], 2);
    assert!(done["resolveReports"]["bannedUserId"].is_null());
    let (code, _) = app.gql_err(Some(&moderator), RESOLVE, json!({ "t": c.post, "a": "HIDE" })).await;
    assert_eq!(code, "NOT_FOUND", "nothing left open");

    // Gone for everyone, as a deleted post is.
    let read = "query($id: ID!) { post(id: $id) { title } }";
    assert!(app.gql(None, read, json!({ "id": c.post })).await["post"].is_null());
    assert!(app.gql(Some(&c.alice), read, json!({ "id": c.post })).await["post"].is_null());
    assert!(cases(&app.gql(Some(&moderator), QUEUE, json!({})).await).is_empty());
    let closed = cases(&app.gql(Some(&moderator), QUEUE, json!({ "s": "ACTIONED" })).await);
    assert_eq!((closed.len(), closed[0]["status"].as_str()), (1, Some("ACTIONED")));

    // Each reporter hears the outcome, and sees it on their report.
    for token in [&bob, &carol] {
        let notes = app.gql(Some(token), NOTICES, json!({})).await;
        let kinds: Vec<_> =
            notes["notifications"]["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()).collect();
        let resolved: Vec<_> = kinds.iter().filter(|n| n["kind"] == "REPORT_RESOLVED").collect();
        assert_eq!(resolved.len(), 1, "{notes}");
        assert!(resolved[0]["body"].as_str().unwrap().contains("hid"));
    }
    let mine = "{ me { reportsFiled(first: 5) { edges { node { status outcome targetId } } } } }";
    let filed = app.gql(Some(&bob), mine, json!({})).await;
    let node = &filed["me"]["reportsFiled"]["edges"][0]["node"];
    assert_eq!((node["status"].as_str(), node["outcome"].as_str()), (Some("ACTIONED"), Some("HIDE")));
    // Only the member sees their reports.
    let theirs = "query($u: ID!) { user(id: $u) { reportsFiled(first: 5) { edges { node { status } } } } }";
    let bob_id = app.gql(Some(&bob), "{ me { id } }", json!({})).await["me"]["id"].clone();
    let (code, _) = app.gql_err(Some(&carol), theirs, json!({ "u": bob_id })).await;
    assert_eq!(code, "FORBIDDEN");

    // The decision and the hiding are on the staff record.
    let log =
        app.gql(Some(&c.admin), "{ auditLog(first: 10) { edges { node { action target reason } } } }", json!({})).await;
    let actions: Vec<_> =
        log["auditLog"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["action"].clone()).collect();
    assert!(actions.contains(&json!("RESOLVE_REPORTS")) && actions.contains(&json!("HIDE_POST")), "{log}");
}

#[tokio::test]
async fn a_reported_message_reaches_moderators_without_its_conversation_and_a_ban_follows() {
    let app = TestApp::spawn().await;
    let (alice, alice_id) = app.register(&phone(1), "alice").await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let (carol, _) = app.register(&phone(3), "carol").await;
    let (moderator, _) = app.user_with_role(&phone(4), "MODERATOR").await;
    let earlier = crate::messaging::send(&app, &alice, &bob_id, "hello, about the FOB price").await;
    let bad = crate::messaging::send(&app, &alice, &bob_id, "send the deposit to my own account").await;
    let bad_id = bad["message"]["id"].as_str().unwrap().to_string();

    // Only a member of the conversation can put a message in front of a moderator.
    let (code, _) = app.gql_err(Some(&carol), REPORT, json!({ "t": bad_id, "r": "FRAUD" })).await;
    assert_eq!(code, "NOT_FOUND");
    let (code, _) = app.gql_err(Some(&alice), REPORT, json!({ "t": bad_id, "r": "FRAUD" })).await;
    assert_eq!(code, "BAD_USER_INPUT", "one's own message");
    report(&app, &bob, &bad_id, "FRAUD", None).await;

    let case = &cases(&app.gql(Some(&moderator), QUEUE, json!({})).await)[0];
    assert_eq!(case["target"]["__typename"], "Message");
    assert_eq!(case["target"]["body"], "send the deposit to my own account");
    assert_eq!(case["target"]["sender"]["nickname"], "alice");
    // Not the conversation around it: not by the message, not by id.
    let around = "{ moderationQueue { edges { node { target { ... on Message { conversation { lastMessage { body } } } } } } } }";
    let (code, _) = app.gql_err(Some(&moderator), around, json!({})).await;
    assert_eq!(code, "NOT_FOUND");
    let node = "query($id: ID!) { node(id: $id) { ... on Message { body } } }";
    let earlier_id = earlier["message"]["id"].clone();
    assert!(app.gql(Some(&moderator), node, json!({ "id": earlier_id })).await["node"].is_null());
    let conv = "query($id: ID!) { messages(conversationId: $id, first: 5) { edges { node { body } } } }";
    let (code, _) = app.gql_err(Some(&moderator), conv, json!({ "id": bad["conversation"]["id"] })).await;
    assert_eq!(code, "NOT_FOUND");

    // A message cannot be hidden; its sender can be suspended.
    let (code, _) = app.gql_err(Some(&moderator), RESOLVE, json!({ "t": bad_id, "a": "HIDE" })).await;
    assert_eq!(code, "BAD_USER_INPUT");
    let (code, _) = app.gql_err(Some(&moderator), RESOLVE, json!({ "t": bad_id, "a": "BAN" })).await;
    assert_eq!(code, "BAD_USER_INPUT", "a ban says for how long");
    let done = app.gql(Some(&moderator), RESOLVE, json!({ "t": bad_id, "a": "BAN", "d": 7 })).await;
    assert_eq!(done["resolveReports"]["bannedUserId"], json!(alice_id));
    // Signed out everywhere, and cannot sign in again while the suspension lasts.
    assert!(app.gql(Some(&alice), "{ me { id } }", json!({})).await["me"].is_null());
    let login = "mutation($p: String!) { login(input: { phone: $p, password: \"correct horse\" }) { token } }";
    let (code, _) = app.gql_err(None, login, json!({ "p": phone(1) })).await;
    assert_eq!(code, "FORBIDDEN");
    let suspended = "query($u: ID!) { user(id: $u) { suspended } }";
    assert_eq!(app.gql(Some(&moderator), suspended, json!({ "u": alice_id })).await["user"]["suspended"], true);

    // A suspension with days ends by itself: here its end is moved into the past (behind the
    // entity cache's back, so only what reads the database is asked: sign-in and the session).
    app.state
        .db
        .execute_unprepared("UPDATE users SET banned_until = banned_at WHERE banned_until IS NOT NULL")
        .await
        .unwrap();
    let token = app.gql(None, login, json!({ "p": phone(1) })).await["login"]["token"].as_str().unwrap().to_string();
    assert!(app.gql(Some(&token), "{ me { id } }", json!({})).await["me"]["id"].is_string());
    let _ = bob;
}

#[tokio::test]
async fn dismissing_hiding_a_comment_and_the_report_limit() {
    let app = TestApp::spawn_with(|c| c.rate_limit_reports_per_hour = 3).await;
    let (app, c) = TestApp::community_on(app).await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let (moderator, _) = app.user_with_role(&phone(4), "MODERATOR").await;
    let comment = app.comment(&bob, &c.post, None, "visit my shop for cheap replicas").await;

    report(&app, &c.alice, &bob_id, "HARASSMENT", None).await;
    let (code, _) = app.gql_err(Some(&moderator), RESOLVE, json!({ "t": bob_id, "a": "DISMISS", "d": 3 })).await;
    assert_eq!(code, "BAD_USER_INPUT", "a dismissal bans nobody");
    let done = app.gql(Some(&moderator), RESOLVE, json!({ "t": bob_id, "a": "DISMISS" })).await;
    assert_eq!(done["resolveReports"]["reportsResolved"], 1);
    let notes = app.gql(Some(&c.alice), NOTICES, json!({})).await;
    assert_eq!(notes["notifications"]["edges"][0]["node"]["kind"], "REPORT_RESOLVED");
    assert!(notes["notifications"]["edges"][0]["node"]["body"].as_str().unwrap().contains("no breach"));

    report(&app, &c.alice, &comment, "ILLEGAL", None).await;
    app.gql(Some(&moderator), RESOLVE, json!({ "t": comment, "a": "HIDE" })).await;
    let read = "query($id: ID!) { node(id: $id) { ... on Comment { isDeleted body } } }";
    let shown = app.gql(None, read, json!({ "id": comment })).await;
    assert_eq!((shown["node"]["isDeleted"].as_bool(), shown["node"]["body"].as_str()), (Some(true), None));

    // The third report of the hour is the last.
    let (_, dave_id) = app.register(&phone(5), "dave").await;
    report(&app, &c.alice, &dave_id, "OTHER", Some("impersonates staff")).await;
    let (code, _) = app.gql_err(Some(&c.alice), REPORT, json!({ "t": bob_id, "r": "SPAM" })).await;
    assert_eq!(code, "RATE_LIMITED");
}

#[tokio::test]
async fn a_case_outlives_its_post_a_ban_never_shortens_and_nobody_settles_their_own() {
    let (app, c) = TestApp::community().await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    let (moderator, moderator_id) = app.user_with_role(&phone(4), "MODERATOR").await;
    let alice_id = app.gql(Some(&c.alice), "{ me { id } }", json!({})).await["me"]["id"].as_str().unwrap().to_string();
    report(&app, &bob, &c.post, "FRAUD", None).await;
    // The author takes the post down before a moderator gets to it: the case can still be settled.
    let delete = "mutation($p: ID!) { deletePost(input: { postId: $p }) { deletedPostId } }";
    app.gql(Some(&c.alice), delete, json!({ "p": c.post })).await;
    let done = app.gql(Some(&moderator), RESOLVE, json!({ "t": c.post, "a": "DELETE", "d": 3 })).await;
    assert_eq!(done["resolveReports"]["bannedUserId"], json!(alice_id));

    // A shorter suspension on top of a permanent one leaves it permanent.
    let ban =
        "mutation($u: ID!, $d: Int) { banUser(input: { userId: $u, reason: \"rule 4\", days: $d }) { user { id } } }";
    app.gql(Some(&moderator), ban, json!({ "u": alice_id })).await;
    app.gql(Some(&moderator), ban, json!({ "u": alice_id, "d": 1 })).await;
    let open_ended = app
        .state
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            app.state.db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM users WHERE banned_at IS NOT NULL AND banned_until IS NULL",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(open_ended, 1);
    // Ten days, then one: still ten.
    let (_, dave_id) = app.register(&phone(6), "dave").await;
    app.gql(Some(&moderator), ban, json!({ "u": dave_id, "d": 10 })).await;
    app.gql(Some(&moderator), ban, json!({ "u": dave_id, "d": 1 })).await;
    let nine_days = (chrono::Utc::now() + chrono::Duration::days(9)).format("%Y-%m-%d").to_string();
    let longer = app
        .state
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            app.state.db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM users WHERE banned_until > '{nine_days}'"),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(longer, 1, "the one-day ban did not shorten the ten-day one");

    // Reports about a moderator go to another moderator.
    report(&app, &bob, &moderator_id, "HARASSMENT", None).await;
    let (code, _) = app.gql_err(Some(&moderator), RESOLVE, json!({ "t": moderator_id, "a": "DISMISS" })).await;
    assert_eq!(code, "FORBIDDEN");
    let queue = cases(&app.gql(Some(&moderator), QUEUE, json!({})).await);
    assert_eq!(queue.len(), 1, "still open");
}

#[tokio::test]
async fn a_failed_action_gives_the_case_back_and_a_case_shows_its_newest_twenty_reports() {
    let (app, c) = TestApp::community().await;
    let (moderator, _) = app.user_with_role(&phone(4), "MODERATOR").await;
    let (_, staff_id) = app.user_with_role(&phone(5), "REVIEWER").await;
    let mut reporters = Vec::new();
    for i in 0..21 {
        let (token, _) = app.register(&phone(100 + i), &format!("m{i}")).await;
        report(&app, &token, &c.post, "SPAM", Some(&format!("note {i}"))).await;
        reporters.push(token);
    }
    let queue = cases(&app.gql(Some(&moderator), QUEUE, json!({})).await);
    assert_eq!(queue[0]["reportCount"], 21);
    let shown = queue[0]["reports"].as_array().unwrap();
    assert_eq!(shown.len(), 20);
    assert_eq!((shown[0]["note"].as_str(), shown[19]["note"].as_str()), (Some("note 20"), Some("note 1")));

    // A moderator cannot suspend staff: the ban fails, and the case is open again, untouched.
    report(&app, &reporters[0], &staff_id, "HARASSMENT", None).await;
    let (code, _) = app.gql_err(Some(&moderator), RESOLVE, json!({ "t": staff_id, "a": "BAN", "d": 3 })).await;
    assert_eq!(code, "FORBIDDEN");
    let queue = cases(&app.gql(Some(&moderator), QUEUE, json!({})).await);
    let staff_case = queue.iter().find(|k| k["targetId"] == json!(staff_id)).expect("the case is open again");
    assert_eq!(staff_case["reportCount"], 1);
    let notes = app.gql(Some(&reporters[0]), NOTICES, json!({})).await;
    assert_eq!(notes["notifications"]["edges"], json!([]), "nobody was told of a settlement that did not happen");
    // An ADMIN can.
    let done = app.gql(Some(&c.admin), RESOLVE, json!({ "t": staff_id, "a": "BAN", "d": 3 })).await;
    assert_eq!(done["resolveReports"]["reportsResolved"], 1);
}
