//! Authorization across transports: one policy (src/authz/), the same answer over HTTP and
//! WebSocket, and a socket that always acts as the member is *now* (current role, not suspended, not
//! erased), also when the change happened on another gateway instance.

use serde_json::{Value, json};

use crate::common::{Ended, TestApp, Ws, phone};

/// Two instances on one database; with `REDIS_URL` set they also share the Redis broker, so a change
/// on one reaches sockets on the other at once (without it, at their next operation).
async fn two_instances() -> (TestApp, TestApp) {
    let redis = std::env::var("REDIS_URL").ok();
    let r = redis.clone();
    let a = TestApp::spawn_with(move |c| c.redis_url = r).await;
    let prefix = a.state.config.redis_prefix.clone();
    let b = a
        .another_instance(move |c| {
            c.redis_url = redis;
            c.redis_prefix = prefix;
        })
        .await;
    (a, b)
}

fn shares_broker(app: &TestApp) -> bool {
    app.state.config.redis_url.is_some()
}

/// Runs one operation on the socket; returns its single result payload (`next`, then `complete`).
async fn op(ws: &mut Ws, id: &str, query: &str) -> Value {
    ws.subscribe(id, query, json!({})).await;
    let msg = ws.recv().await;
    assert_eq!(msg["id"], id, "{msg}");
    if msg["type"] == "next" {
        let done = ws.recv().await;
        assert_eq!(done["type"], "complete", "{done}");
    }
    msg["payload"].clone()
}

fn first_code(payload: &Value) -> &str {
    payload["errors"][0]["extensions"]["code"].as_str().unwrap_or("<none>")
}

/// The socket is refused at its next operation: closed with 4403 (at once, when the broker carried
/// the change; else as the operation re-reads the session).
async fn refused_at_next_operation(ws: &mut Ws) {
    ws.subscribe("after", "{ me { id } }", json!({})).await;
    loop {
        match ws.recv_within(std::time::Duration::from_secs(10)).await {
            Ok(msg) => assert_ne!(msg["type"], "next", "an operation ran after the change: {msg}"),
            Err(Ended::Closed(code, _)) => {
                assert_eq!(code, 4403);
                return;
            }
            Err(Ended::Dropped) => panic!("socket dropped without a close frame"),
        }
    }
}

const QUEUE: &str = "{ identityVerifications { edges { node { id } } } }";

#[tokio::test]
async fn a_demoted_reviewer_is_refused_on_the_open_socket_on_every_instance() {
    let (a, b) = two_instances().await;
    let admin = b.admin().await;
    let (reviewer, reviewer_id) = a.user_with_role(&phone(1), "REVIEWER").await;
    let mut ws = a.ws(Some(&reviewer)).await;
    let payload = op(&mut ws, "q1", QUEUE).await;
    assert!(payload.get("errors").is_none(), "{payload}");
    // A subscription running under the old role.
    ws.subscribe("n", "subscription { notificationReceived { id } }", json!({})).await;
    a.streams_waiting(1).await;

    let set =
        "mutation($u: ID!) { setUserRole(input: { userId: $u, role: USER, reason: \"staffing\" }) { user { role } } }";
    b.gql(Some(&admin), set, json!({ "u": reviewer_id })).await;

    // The running subscription ends, as it was authorised under the old role: at once when the
    // broker carried the change, else when the next operation re-reads the role.
    if !shares_broker(&a) {
        ws.subscribe("q2", QUEUE, json!({})).await;
    }
    let ended = ws.recv().await;
    assert_eq!((ended["type"].as_str(), ended["id"].as_str()), (Some("error"), Some("n")), "{ended}");
    assert_eq!(ended["payload"][0]["extensions"]["code"], "FORBIDDEN");
    let payload = if shares_broker(&a) {
        op(&mut ws, "q2", QUEUE).await
    } else {
        let msg = ws.recv().await;
        assert_eq!((msg["type"].as_str(), msg["id"].as_str()), (Some("next"), Some("q2")), "{msg}");
        assert_eq!(ws.recv().await["type"], "complete");
        msg["payload"].clone()
    };
    assert_eq!(first_code(&payload), "FORBIDDEN", "{payload}");
    // HTTP agrees.
    let (code, _) = a.gql_err(Some(&reviewer), QUEUE, json!({})).await;
    assert_eq!(code, "FORBIDDEN");
    // Still a member: ordinary operations go on.
    let payload = op(&mut ws, "q3", "{ me { role } }").await;
    assert_eq!(payload["data"]["me"]["role"], "USER");
}

#[tokio::test]
async fn a_demoted_admin_loses_the_audit_log_on_the_open_socket() {
    let (a, b) = two_instances().await;
    let admin = b.admin().await;
    let (other_admin, other_id) = a.user_with_role(&phone(2), "ADMIN").await;
    let mut ws = a.ws(Some(&other_admin)).await;
    let log = "{ auditLog { edges { node { id } } } }";
    assert!(op(&mut ws, "q1", log).await.get("errors").is_none());
    let set = "mutation($u: ID!) { setUserRole(input: { userId: $u, role: MODERATOR, reason: \"staffing\" }) { user { role } } }";
    b.gql(Some(&admin), set, json!({ "u": other_id })).await;
    assert_eq!(first_code(&op(&mut ws, "q2", log).await), "FORBIDDEN");
}

#[tokio::test]
async fn a_suspended_member_is_refused_on_the_open_socket_on_every_instance() {
    let (a, b) = two_instances().await;
    let admin = b.admin().await;
    let (alice, alice_id) = a.register(&phone(3), "alice").await;
    let mut ws = a.ws(Some(&alice)).await;
    assert!(op(&mut ws, "q1", "{ me { id } }").await.get("errors").is_none());
    let ban = "mutation($u: ID!) { banUser(input: { userId: $u, reason: \"rule 3: spam\" }) { user { id } } }";
    b.gql(Some(&admin), ban, json!({ "u": alice_id })).await;
    refused_at_next_operation(&mut ws).await;
}

#[tokio::test]
async fn an_erased_member_is_refused_on_the_open_socket_on_every_instance() {
    let (a, b) = two_instances().await;
    let (alice, _) = a.register(&phone(4), "alice").await;
    let mut ws = a.ws(Some(&alice)).await;
    assert!(op(&mut ws, "q1", "{ me { id } }").await.get("errors").is_none());
    let delete = "mutation { deleteAccount(input: { password: \"correct horse\" }) { deleted } }";
    b.gql(Some(&alice), delete, json!({})).await;
    refused_at_next_operation(&mut ws).await;
}

// ---------------------------------------------------------------------------------------------
// The authorization table: every protected mutation, query field and object field against every
// kind of viewer, over HTTP and over WebSocket.
// ---------------------------------------------------------------------------------------------

/// What a row needs fresh for each cell (a destructive operation consumes it).
#[derive(Debug, Clone, Copy)]
enum Fixture {
    /// `$owner`: the owner's user id.
    Owner,
    /// `$id`: a fresh post of the owner's.
    OwnerPost,
    /// `$id`: a fresh comment of the owner's.
    OwnerComment,
    /// `$id`: a live stream of the owner's (fresh for each cell).
    OwnerStream,
    /// `$id`: a plain member to act on; `$staff`: a REVIEWER.
    Target,
    /// `$id`: a verification id that does not exist (allowed cells reach NOT_FOUND).
    NoVerification,
    /// `$slug`: a fresh board slug.
    Slug,
    /// `$id`: the owner's post (read only).
    Post,
    /// `$id`: the client id of a fresh developer app of the owner's.
    OwnerApp,
    /// `$id`: a conversation between the owner and the target (read only).
    Conversation,
}

/// Viewers the table is written for. BANNED, ERASED and DEMOTED are derived: banned and erased
/// viewers are signed out (HTTP: the anonymous cell; WebSocket: the socket is refused at
/// `connection_init`), and an ADMIN demoted to USER while their socket was open gets the member cell
/// on both transports.
const VIEWERS: [&str; 6] = ["anonymous", "member", "owner", "MODERATOR", "REVIEWER", "ADMIN"];

/// A cell: `ok` (no error), an error code, or the field's value (`null`, `value` = not null, `true`,
/// `false`) where a field reads as null/false instead of failing.
type Cells = [&'static str; 6];

struct Row {
    /// `Type.field` as the schema names it.
    field: &'static str,
    /// The `authz::Action`s the field's resolver or service asks.
    actions: &'static [&'static str],
    fixture: Fixture,
    query: &'static str,
    /// Where the checked value is in `data`.
    path: &'static [&'static str],
    cells: Cells,
}

const U: &str = "UNAUTHENTICATED";
const F: &str = "FORBIDDEN";

fn table() -> Vec<Row> {
    let own = |field, q, path| Row {
        field,
        actions: &["ReadOwn"],
        fixture: Fixture::Owner,
        query: q,
        path,
        cells: [U, F, "ok", F, F, F],
    };
    let own_value = |field, q, path| Row {
        field,
        actions: &["ReadOwn"],
        fixture: Fixture::Owner,
        query: q,
        path,
        cells: ["null", "null", "value", "null", "null", "null"],
    };
    vec![
        Row {
            field: "Mutation.updatePost",
            actions: &["EditPost"],
            fixture: Fixture::OwnerPost,
            query: "mutation($id: ID!) { updatePost(input: { postId: $id, title: \"edited\" }) { post { id } } }",
            path: &["updatePost"],
            cells: [U, F, "ok", F, F, F],
        },
        Row {
            field: "Post.viewerCanEdit",
            actions: &["EditPost"],
            fixture: Fixture::Post,
            query: "query($id: ID!) { post(id: $id) { viewerCanEdit } }",
            path: &["post", "viewerCanEdit"],
            cells: ["false", "false", "true", "false", "false", "false"],
        },
        Row {
            field: "Mutation.deletePost",
            actions: &["DeletePost"],
            fixture: Fixture::OwnerPost,
            query: "mutation($id: ID!) { deletePost(input: { postId: $id, reason: \"off-topic\" }) { deletedPostId } }",
            path: &["deletePost"],
            cells: [U, F, "ok", "ok", F, "ok"],
        },
        Row {
            field: "Post.viewerCanDelete",
            actions: &["DeletePost"],
            fixture: Fixture::Post,
            query: "query($id: ID!) { post(id: $id) { viewerCanDelete } }",
            path: &["post", "viewerCanDelete"],
            cells: ["false", "false", "true", "true", "false", "true"],
        },
        Row {
            field: "Mutation.deleteComment",
            actions: &["DeleteComment"],
            fixture: Fixture::OwnerComment,
            query: "mutation($id: ID!) { deleteComment(input: { commentId: $id, reason: \"off-topic\" }) { comment { id } } }",
            path: &["deleteComment"],
            cells: [U, F, "ok", "ok", F, "ok"],
        },
        Row {
            field: "Comment.viewerCanDelete",
            actions: &["DeleteComment"],
            fixture: Fixture::OwnerComment,
            query: "query($id: ID!) { comment(id: $id) { viewerCanDelete } }",
            path: &["comment", "viewerCanDelete"],
            cells: ["false", "false", "true", "true", "false", "true"],
        },
        Row {
            field: "Mutation.endLiveStream",
            actions: &["HostLive"],
            fixture: Fixture::OwnerStream,
            query: "mutation($id: ID!) { endLiveStream(input: { streamId: $id }) { liveStream { id } } }",
            path: &["endLiveStream"],
            cells: [U, F, "ok", "ok", F, "ok"],
        },
        Row {
            field: "LiveStream.ingestKey",
            actions: &["ReadIngestKey"],
            fixture: Fixture::OwnerStream,
            query: "query($id: ID!) { liveStream(id: $id) { ingestKey } }",
            path: &["liveStream", "ingestKey"],
            cells: ["null", "null", "value", "null", "null", "null"],
        },
        own_value("User.phone", "query($owner: ID!) { user(id: $owner) { phone } }", &["user", "phone"]),
        own(
            "User.favorites",
            "query($owner: ID!) { user(id: $owner) { favorites { edges { cursor } } } }",
            &["user", "favorites"],
        ),
        own("User.sessions", "query($owner: ID!) { user(id: $owner) { sessions { id } } }", &["user", "sessions"]),
        own(
            "User.pushSubscriptions",
            "query($owner: ID!) { user(id: $owner) { pushSubscriptions { endpoint } } }",
            &["user", "pushSubscriptions"],
        ),
        own(
            "User.developerApps",
            "query($owner: ID!) { user(id: $owner) { developerApps { clientId } } }",
            &["user", "developerApps"],
        ),
        own(
            "User.blockedUsers",
            "query($owner: ID!) { user(id: $owner) { blockedUsers { edges { cursor } } } }",
            &["user", "blockedUsers"],
        ),
        own(
            "User.browseHistory",
            "query($owner: ID!) { user(id: $owner) { browseHistory { edges { cursor } } } }",
            &["user", "browseHistory"],
        ),
        own(
            "User.searchHistory",
            "query($owner: ID!) { user(id: $owner) { searchHistory { edges { cursor } } } }",
            &["user", "searchHistory"],
        ),
        own(
            "User.settings",
            "query($owner: ID!) { user(id: $owner) { settings { recordHistory } } }",
            &["user", "settings"],
        ),
        own(
            "User.activity",
            "query($owner: ID!) { user(id: $owner) { activity { edges { cursor } } } }",
            &["user", "activity"],
        ),
        own(
            "User.loginHistory",
            "query($owner: ID!) { user(id: $owner) { loginHistory { edges { cursor } } } }",
            &["user", "loginHistory"],
        ),
        own(
            "User.dataExports",
            "query($owner: ID!) { user(id: $owner) { dataExports { id } } }",
            &["user", "dataExports"],
        ),
        Row {
            field: "User.identityVerification",
            actions: &["ReadIdentity"],
            fixture: Fixture::Owner,
            query: "query($owner: ID!) { user(id: $owner) { identityVerification { id } } }",
            path: &["user", "identityVerification"],
            cells: [U, F, "ok", F, "ok", "ok"],
        },
        Row {
            field: "IdentityVerification.photoUrls",
            actions: &["ReadIdPhotos"],
            fixture: Fixture::Owner,
            query: "query($owner: ID!) { user(id: $owner) { identityVerification { photoUrls } } }",
            path: &["user", "identityVerification", "photoUrls"],
            cells: [U, F, "null", F, "value", "value"],
        },
        Row {
            field: "Query.identityVerifications",
            actions: &["ReviewIdentity"],
            fixture: Fixture::Owner,
            query: "{ identityVerifications { edges { cursor } } }",
            path: &["identityVerifications"],
            cells: [U, F, F, F, "ok", "ok"],
        },
        Row {
            field: "Mutation.reviewIdentityVerification",
            actions: &["ReviewIdentity", "DecideIdentity"],
            fixture: Fixture::NoVerification,
            query: "mutation($id: ID!) { reviewIdentityVerification(input: { verificationId: $id, decision: APPROVE }) { verification { id } } }",
            path: &["reviewIdentityVerification"],
            cells: [U, F, F, F, "NOT_FOUND", "NOT_FOUND"],
        },
        Row {
            field: "Query.auditLog",
            actions: &["ReadAuditLog"],
            fixture: Fixture::Owner,
            query: "{ auditLog { edges { cursor } } }",
            path: &["auditLog"],
            cells: [U, F, F, F, F, "ok"],
        },
        Row {
            field: "Query.visitorStats",
            actions: &["ReadVisitorStats"],
            fixture: Fixture::Post,
            query: "query($id: ID!) { visitorStats(target: $id) { visitors } }",
            path: &["visitorStats"],
            cells: [U, F, F, F, F, "ok"],
        },
        Row {
            field: "Mutation.setUserRole",
            actions: &["SetRole"],
            fixture: Fixture::Target,
            query: "mutation($id: ID!) { setUserRole(input: { userId: $id, role: USER, reason: \"staffing\" }) { user { id } } }",
            path: &["setUserRole"],
            cells: [U, F, F, F, F, "ok"],
        },
        Row {
            field: "Mutation.unbanUser",
            actions: &["Moderate"],
            fixture: Fixture::Target,
            query: "mutation($id: ID!) { unbanUser(input: { userId: $id, reason: \"rule 3: spam\" }) { user { id } } }",
            path: &["unbanUser"],
            cells: [U, F, F, "ok", F, "ok"],
        },
        Row {
            field: "Mutation.unbanUser (staff)",
            actions: &["Moderate"],
            fixture: Fixture::Target,
            query: "mutation($staff: ID!) { unbanUser(input: { userId: $staff, reason: \"rule 3: spam\" }) { user { id } } }",
            path: &["unbanUser"],
            cells: [U, F, F, F, F, "ok"],
        },
        Row {
            field: "User.suspended",
            actions: &["ReadSuspension"],
            fixture: Fixture::Owner,
            query: "query($owner: ID!) { user(id: $owner) { suspended } }",
            path: &["user", "suspended"],
            cells: ["null", "null", "null", "value", "null", "value"],
        },
        Row {
            field: "Mutation.sendSecurityNotice",
            actions: &["SendSecurityNotice"],
            fixture: Fixture::Owner,
            query: "mutation($owner: ID!) { sendSecurityNotice(input: { body: \"rotate\", userIds: [$owner] }) { recipients } }",
            path: &["sendSecurityNotice"],
            cells: [U, F, F, F, F, "ok"],
        },
        Row {
            field: "Mutation.publishPolicyVersion",
            actions: &["PublishPolicy"],
            fixture: Fixture::Owner,
            query: "mutation { publishPolicyVersion(input: { body: \"minor wording\", major: false }) { policy { version } } }",
            path: &["publishPolicyVersion"],
            cells: [U, F, F, F, F, "ok"],
        },
        Row {
            field: "Query.messages",
            actions: &["ReadConversation"],
            fixture: Fixture::Conversation,
            query: "query($id: ID!) { messages(conversationId: $id, first: 1) { edges { node { id } } } }",
            path: &["messages"],
            cells: [U, "NOT_FOUND", "ok", "NOT_FOUND", "NOT_FOUND", "NOT_FOUND"],
        },
        Row {
            field: "Query.moderationQueue",
            actions: &["HandleReports"],
            fixture: Fixture::Owner,
            query: "{ moderationQueue { edges { node { targetId } } } }",
            path: &["moderationQueue"],
            cells: [U, F, F, "ok", F, "ok"],
        },
        Row {
            field: "Mutation.resolveReports",
            actions: &["HandleReports"],
            fixture: Fixture::OwnerPost,
            query: "mutation($id: ID!) { resolveReports(input: { target: $id, action: DISMISS, reason: \"r\" }) { reportsResolved } }",
            path: &["resolveReports"],
            cells: [U, F, F, "NOT_FOUND", F, "NOT_FOUND"],
        },
        Row {
            field: "Mutation.registerApp",
            actions: &["RegisterApp"],
            fixture: Fixture::Owner,
            query: "mutation { registerApp(input: { name: \"Partner CRM\", description: \"syncs leads\", homepageUrl: \"https://crm.example\", redirectUris: [\"https://crm.example/cb\"], confidential: false }) { app { clientId } } }",
            path: &["registerApp"],
            cells: [
                U,
                "VERIFICATION_REQUIRED",
                "VERIFICATION_REQUIRED",
                "VERIFICATION_REQUIRED",
                "VERIFICATION_REQUIRED",
                "ok",
            ],
        },
        Row {
            field: "Query.appReviewQueue",
            actions: &["ReviewApp"],
            fixture: Fixture::Owner,
            query: "{ appReviewQueue { edges { node { clientId } } } }",
            path: &["appReviewQueue"],
            cells: [U, F, F, F, F, "ok"],
        },
        Row {
            field: "Mutation.reviewApp",
            actions: &["ReviewApp"],
            fixture: Fixture::Owner,
            query: "mutation { reviewApp(input: { clientId: \"no-such-app\", approve: true, reason: \"looks fine\" }) { app { status } } }",
            path: &["reviewApp"],
            cells: [U, F, F, F, F, "NOT_FOUND"],
        },
        Row {
            field: "Mutation.deleteApp",
            actions: &["DeleteApp"],
            fixture: Fixture::OwnerApp,
            query: "mutation($id: String!) { deleteApp(input: { clientId: $id }) { deletedClientId } }",
            path: &["deleteApp"],
            cells: [U, F, "ok", F, F, F],
        },
        Row {
            field: "Mutation.createBoard",
            actions: &["CreateBoard"],
            fixture: Fixture::Slug,
            query: "mutation($slug: String!) { createBoard(input: { slug: $slug, name: \"B\", description: \"\" }) { board { id } } }",
            path: &["createBoard"],
            cells: [
                U,
                "VERIFICATION_REQUIRED",
                "VERIFICATION_REQUIRED",
                "VERIFICATION_REQUIRED",
                "VERIFICATION_REQUIRED",
                "ok",
            ],
        },
    ]
}

/// The `authz::Action` names that `authz::require(` / `authz::can(` call sites in src/ ask.
fn actions_called_in_src() -> std::collections::BTreeSet<String> {
    fn walk(dir: &std::path::Path, out: &mut std::collections::BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path.components().any(|c| c.as_os_str() == "authz")
            {
                let src = std::fs::read_to_string(&path).unwrap();
                for call in ["authz::require(", "authz::can("] {
                    for (at, _) in src.match_indices(call) {
                        let line_start = src[..at].rfind('\n').map_or(0, |i| i + 1);
                        if src[line_start..at].trim_start().starts_with("//") {
                            continue; // documentation, not a call
                        }
                        let rest: String = src[at..].chars().take(300).collect();
                        let rest = rest.split(';').next().unwrap_or("");
                        let name = rest.split("Action::").nth(1).map(|s| {
                            s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>()
                        });
                        let name = name.unwrap_or_else(|| panic!("{}: no Action in {rest}", path.display()));
                        out.insert(name);
                    }
                }
            }
        }
    }
    let mut out = std::collections::BTreeSet::new();
    walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out
}

#[test]
fn every_action_src_asks_is_in_the_table() {
    let called = actions_called_in_src();
    assert!(called.len() >= 10, "the scan found too little: {called:?}");
    let rows = table();
    for name in &called {
        assert!(
            rows.iter().any(|r| r.actions.contains(&name.as_str())),
            "authz::Action::{name} is asked in src/ but no row of the authorization table exercises it"
        );
    }
    for name in ecer_gateway::authz::Action::NAMES {
        assert!(called.contains(name), "authz::Action::{name} is never asked: remove it or use it");
    }
}

/// The people the table runs as.
struct Cast {
    tokens: [Option<String>; 6],
    owner_id: String,
    owner: String,
    admin: String,
    target_id: String,
    staff_id: String,
    board: String,
    post: String,
    banned: String,
    erased: String,
    demoted: String,
    conversation: String,
}

async fn cast(app: &TestApp) -> Cast {
    let admin = app.admin().await;
    let board = app.create_board(&admin, "table", "Table").await;
    let (member, _) = app.register(&phone(11), "member").await;
    let (owner, owner_id) = app.register(&phone(12), "owner").await;
    let (moderator, _) = app.user_with_role(&phone(13), "MODERATOR").await;
    let (reviewer, staff_id) = app.user_with_role(&phone(14), "REVIEWER").await;
    let (_, target_id) = app.register(&phone(15), "target").await;
    let (banned, banned_id) = app.register(&phone(16), "banned").await;
    let (erased, _) = app.register(&phone(17), "erased").await;
    let (demoted, _) = app.user_with_role(&phone(18), "ADMIN").await;
    let post = app.create_post(&owner, &board, "owner's post").await;
    let conversation = crate::messaging::send(app, &owner, &target_id, "hello").await["conversation"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The owner's verification awaits review (its photos are what ReadIdPhotos guards).
    let (status, body) = crate::trust::submit(app, &owner, crate::trust::ID_NUMBER).await;
    assert_eq!(status, 200, "{body}");
    app.gql(
        Some(&admin),
        "mutation($u: ID!) { banUser(input: { userId: $u, reason: \"rule 3: spam\" }) { user { id } } }",
        json!({ "u": banned_id }),
    )
    .await;
    app.gql(Some(&erased), "mutation { deleteAccount(input: { password: \"correct horse\" }) { deleted } }", json!({}))
        .await;
    Cast {
        tokens: [None, Some(member), Some(owner.clone()), Some(moderator), Some(reviewer), Some(admin.clone())],
        owner_id,
        owner,
        admin,
        target_id,
        staff_id,
        board,
        post,
        banned,
        erased,
        demoted,
        conversation,
    }
}

async fn variables(app: &TestApp, cast: &Cast, fixture: Fixture, n: &mut u32) -> Value {
    *n += 1;
    let owner = &cast.owner;
    let id = match fixture {
        Fixture::Owner => Value::Null,
        Fixture::OwnerPost => json!(app.create_post(owner, &cast.board, "to act on").await),
        Fixture::OwnerComment => json!(app.comment(owner, &cast.post, None, "to act on").await),
        Fixture::OwnerStream => json!(crate::live::live_stream(app, owner).await),
        Fixture::Target => json!(cast.target_id),
        Fixture::NoVerification => {
            json!(ecer_gateway::graphql::ids::encode(ecer_gateway::graphql::ids::Kind::IdentityVerification, 999_999))
        }
        Fixture::Slug => Value::Null,
        Fixture::Post => json!(cast.post),
        Fixture::Conversation => json!(cast.conversation),
        Fixture::OwnerApp => {
            // Registered through the service: registering has rows of its own (Mutation.registerApp),
            // and the owner has no checked real name, so the viewer is built as an admin's.
            let viewer = ecer_gateway::auth::Viewer {
                user_id: ecer_gateway::graphql::ids::decode_any(&cast.owner_id).unwrap().1,
                role: ecer_gateway::auth::Role::Admin,
                session_id: 0,
                app: None,
            };
            let new = ecer_gateway::services::developer_apps::NewApp {
                name: "Owner's app",
                description: "to delete",
                homepage_url: "https://owner.example",
                redirect_uris: &["https://owner.example/cb".to_string()],
                confidential: false,
            };
            let registered = ecer_gateway::services::developer_apps::register(&app.state.db, &viewer, new).await;
            json!(registered.unwrap().app.client_id)
        }
    };
    json!({ "id": id, "owner": cast.owner_id, "staff": cast.staff_id, "slug": format!("t{n}") })
}

/// Only the variables the operation declares.
fn declared(query: &str, vars: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for (k, v) in vars.as_object().unwrap() {
        if query.contains(&format!("${k}:")) {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

/// The cell a response shows: `ok`, the first error code, or the value at `path`.
fn observed(row: &Row, payload: &Value, expected: &str) -> String {
    // An `error` frame's payload is the list of errors itself.
    let errors = if payload.is_array() { payload } else { &payload["errors"] };
    if let Some(code) = errors[0]["extensions"]["code"].as_str() {
        return code.to_string();
    }
    let mut v = &payload["data"];
    for p in row.path {
        v = &v[*p];
    }
    match expected {
        "null" | "value" => if v.is_null() { "null" } else { "value" }.to_string(),
        "true" | "false" => v.as_bool().map_or_else(|| format!("{v}"), |b| b.to_string()),
        _ => "ok".to_string(),
    }
}

#[tokio::test]
async fn the_authorization_table_holds_over_http_and_websocket() {
    let app = TestApp::spawn().await;
    let cast = cast(&app).await;
    // Open sockets for every viewer, and the soon-demoted ADMIN's, before the demotion.
    let mut sockets = Vec::new();
    for token in &cast.tokens {
        sockets.push(app.ws(token.as_deref()).await);
    }
    let mut demoted_ws = app.ws(Some(&cast.demoted)).await;
    let demoted_id = app.gql(Some(&cast.demoted), "{ me { id } }", json!({})).await["me"]["id"].clone();
    let demote =
        "mutation($u: ID!) { setUserRole(input: { userId: $u, role: USER, reason: \"staffing\" }) { user { id } } }";
    app.gql(Some(&cast.admin), demote, json!({ "u": demoted_id })).await;

    // Banned and erased members cannot open a socket at all.
    for token in [&cast.banned, &cast.erased] {
        let mut ws = app.ws_with(Some("graphql-transport-ws"), &[]).await;
        ws.send(json!({ "type": "connection_init", "payload": { "authToken": token } })).await;
        assert_eq!(ws.closed().await, 4403);
    }

    let mut n = 0;
    let mut failures = Vec::new();
    let mut op_id = 0;
    for row in table() {
        // Columns in VIEWERS order, then the derived ones.
        let mut runs: Vec<(String, Option<String>, &str, Option<usize>)> = Vec::new();
        for (i, who) in VIEWERS.iter().enumerate() {
            runs.push((who.to_string(), cast.tokens[i].clone(), row.cells[i], Some(i)));
        }
        runs.push(("banned".into(), Some(cast.banned.clone()), row.cells[0], None));
        runs.push(("erased".into(), Some(cast.erased.clone()), row.cells[0], None));
        runs.push(("demoted".into(), Some(cast.demoted.clone()), row.cells[1], None));
        for (who, token, expected, socket) in runs {
            // HTTP.
            let vars = declared(row.query, &variables(&app, &cast, row.fixture, &mut n).await);
            let (_, body) = app.gql_raw(token.as_deref(), row.query, vars).await;
            let got = observed(&row, &body, expected);
            if got != expected {
                failures.push(format!("{} as {who} over HTTP: expected {expected}, got {got}: {body}", row.field));
            }
            // WebSocket (banned and erased have none: checked above).
            let ws = match (who.as_str(), socket) {
                ("demoted", _) => &mut demoted_ws,
                (_, Some(i)) => &mut sockets[i],
                _ => continue,
            };
            let vars = declared(row.query, &variables(&app, &cast, row.fixture, &mut n).await);
            op_id += 1;
            let id = format!("op{op_id}");
            ws.send(json!({ "type": "subscribe", "id": id, "payload": { "query": row.query, "variables": vars } }))
                .await;
            let msg = ws.recv().await;
            assert_eq!(msg["id"], id.as_str(), "{msg}");
            if msg["type"] == "next" {
                assert_eq!(ws.recv().await["type"], "complete");
            }
            let got = observed(&row, &msg["payload"], expected);
            if got != expected {
                failures.push(format!("{} as {who} over WebSocket: expected {expected}, got {got}: {msg}", row.field));
            }
        }
    }
    assert!(failures.is_empty(), "{} cells differ:\n{}", failures.len(), failures.join("\n"));
}
