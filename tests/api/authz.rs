//! Authorization across transports: one policy (src/authz.rs), the same answer over HTTP and
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
    ws.quiet(200).await;

    let set = "mutation($u: ID!) { setUserRole(input: { userId: $u, role: USER }) { user { role } } }";
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
    let set = "mutation($u: ID!) { setUserRole(input: { userId: $u, role: MODERATOR }) { user { role } } }";
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
    let ban = "mutation($u: ID!) { banUser(input: { userId: $u }) { user { id } } }";
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
