//! Web Push against a local push service started by the test: it checks each request's VAPID
//! signature (RFC 8292) against `pushPublicKey` and decrypts the aes128gcm payload (RFC 8291) with
//! the device's private key, as a browser would; it answers what the test scripts (201, 410, 500).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use web_push_native::jwt_simple::prelude::*;
use web_push_native::p256;
use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint;

use crate::common::{TestApp, phone};

/// One push the service accepted, decrypted.
#[derive(Debug, Clone)]
struct Delivered {
    device: String,
    payload: Value,
    ttl: u64,
    urgency: Option<String>,
    topic: Option<String>,
}

/// A device's private key and auth secret (to decrypt), and the answers to give, in order (then 201).
type DeviceState = (p256::SecretKey, [u8; 16], VecDeque<u16>);

#[derive(Default)]
struct Service {
    /// Device name -> its state.
    devices: Mutex<HashMap<String, DeviceState>>,
    delivered: Mutex<Vec<Delivered>>,
    /// Requests answered with something other than 201.
    refused: Mutex<Vec<(String, u16)>>,
    /// The VAPID public key every request must be signed with.
    vapid: Mutex<String>,
}

/// A push service on a loopback port: `POST /push/{device}`.
struct PushService {
    addr: SocketAddr,
    state: Arc<Service>,
}

/// A device's subscription: what a browser's `PushSubscription.toJSON()` gives.
struct Device {
    endpoint: String,
    p256dh: String,
    auth: String,
}

impl PushService {
    async fn start(vapid_public_key: &str) -> PushService {
        let state = Arc::new(Service::default());
        *state.vapid.lock().unwrap() = vapid_public_key.to_string();
        let app = axum::Router::new().route("/push/{device}", axum::routing::post(receive)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        PushService { addr, state }
    }

    /// A new device (a browser profile) with its own keys; `answers` are given before 201s.
    fn device(&self, name: &str, answers: &[u16]) -> Device {
        let secret = loop {
            let bytes: [u8; 32] = rand::random();
            if let Ok(k) = p256::SecretKey::from_slice(&bytes) {
                break k;
            }
        };
        let auth: [u8; 16] = rand::random();
        let public = secret.public_key();
        let p256dh = URL_SAFE_NO_PAD.encode(public.to_encoded_point(false).as_bytes());
        self.state.devices.lock().unwrap().insert(name.into(), (secret, auth, answers.iter().copied().collect()));
        Device {
            endpoint: format!("http://127.0.0.1:{}/push/{name}", self.addr.port()),
            p256dh,
            auth: URL_SAFE_NO_PAD.encode(auth),
        }
    }

    fn delivered(&self) -> Vec<Delivered> {
        self.state.delivered.lock().unwrap().clone()
    }

    fn refused(&self) -> Vec<(String, u16)> {
        self.state.refused.lock().unwrap().clone()
    }

    /// Waits until `n` pushes were accepted (or fails after 15 s).
    async fn wait_for(&self, n: usize) -> Vec<Delivered> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.delivered();
            if got.len() >= n {
                return got;
            }
            assert!(tokio::time::Instant::now() < deadline, "expected {n} pushes, got {got:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn receive(
    State(state): State<Arc<Service>>,
    Path(device): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    // RFC 8292: `vapid t=<JWT>, k=<public key>`, the key being the one the gateway publishes.
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let rest = auth.strip_prefix("vapid ").expect("a VAPID authorization");
    let mut t = "";
    let mut k = "";
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("t=") {
            t = v;
        } else if let Some(v) = part.strip_prefix("k=") {
            k = v;
        }
    }
    assert_eq!(k, state.vapid.lock().unwrap().as_str(), "signed with the key pushPublicKey publishes");
    let key = ES256PublicKey::from_bytes(&URL_SAFE_NO_PAD.decode(k).unwrap()).unwrap();
    let claims = key.verify_token::<NoCustomClaims>(t, None).expect("a valid VAPID signature");
    assert_eq!(claims.audiences.map(|a| a.into_string().unwrap()).as_deref(), Some("http://127.0.0.1"));
    assert_eq!(claims.subject.as_deref(), Some("mailto:push@ecer.example"));
    let expires = claims.expires_at.unwrap().as_secs();
    let now = Clock::now_since_epoch().as_secs();
    assert!(expires > now && expires <= now + 24 * 3600, "RFC 8292: at most 24 hours");
    assert_eq!(headers["content-encoding"], "aes128gcm");

    let answer = {
        let mut devices = state.devices.lock().unwrap();
        let (_, _, answers) = devices.get_mut(&device).expect("a known device");
        answers.pop_front().unwrap_or(201)
    };
    if answer != 201 {
        state.refused.lock().unwrap().push((device, answer));
        let status = StatusCode::from_u16(answer).unwrap();
        // A busy push service says when to come back.
        return if answer == 429 { (status, [("retry-after", "1")]).into_response() } else { status.into_response() };
    }
    let (secret, auth) = {
        let devices = state.devices.lock().unwrap();
        let (s, a, _) = &devices[&device];
        (s.clone(), *a)
    };
    let plain = web_push_native::decrypt(body.to_vec(), &secret, &web_push_native::Auth::clone_from_slice(&auth))
        .expect("a payload encrypted for this device");
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_string());
    state.delivered.lock().unwrap().push(Delivered {
        device,
        payload: serde_json::from_slice(&plain).unwrap(),
        ttl: header("ttl").unwrap().parse().unwrap(),
        urgency: header("urgency"),
        topic: header("topic"),
    });
    StatusCode::CREATED.into_response()
}

const REGISTER: &str = "mutation($input: RegisterPushSubscriptionInput!) {
    registerPushSubscription(input: $input) { subscription { endpoint categories thisDevice lastDeliveredAt } } }";
const SEND: &str = "mutation($to: ID!, $body: String!) {
    sendMessage(input: { toUserId: $to, body: $body }) { message { id } conversation { id } } }";
const MINE: &str = "{ me { pushSubscriptions { endpoint categories thisDevice lastDeliveredAt } } }";

/// The grace period before a push is due. What must happen inside it (a socket's answer to the ping
/// after a delivery, a read, a device registered again, an event through Redis) takes a few round
/// trips, which a loaded CI machine can stall for a second: 300 ms flaked.
const DELAY_MS: u64 = 3000;

async fn app_with_push() -> TestApp {
    TestApp::spawn_with(|c| {
        c.push_allow_http = true;
        c.push_endpoint_hosts = vec!["127.0.0.1".into()];
        c.push_delay_ms = DELAY_MS;
        c.push_poll_ms = 50;
        c.push_retry_base_ms = 50;
    })
    .await
}

async fn register(app: &TestApp, token: &str, d: &Device, categories: Option<Value>) -> Value {
    let mut input = json!({ "endpoint": d.endpoint, "keys": { "p256dh": d.p256dh, "auth": d.auth } });
    if let Some(c) = categories {
        input["categories"] = c;
    }
    app.gql(Some(token), REGISTER, json!({ "input": input })).await["registerPushSubscription"]["subscription"].clone()
}

/// Waits until the sender has settled every push (none `PENDING` or `SENDING`; 15 s at most): what
/// was to be sent has been, and nothing more will be. Reads `ws` meanwhile, if given, so that it
/// answers the ping that confirms what it showed.
async fn settled(app: &TestApp, mut ws: Option<&mut crate::common::Ws>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let sql = "SELECT COUNT(*) FROM push_outbox WHERE status IN ('PENDING', 'SENDING')";
        let unsettled = crate::trust::scalar(app, sql).await;
        if unsettled == 0 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{unsettled} pushes still PENDING or SENDING after 15 s");
        match ws.as_deref_mut() {
            Some(ws) => ws.quiet(100).await,
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn service(app: &TestApp) -> PushService {
    let key = app.gql(None, "{ pushPublicKey }", json!({})).await["pushPublicKey"].as_str().unwrap().to_string();
    PushService::start(&key).await
}

#[tokio::test]
async fn an_offline_member_gets_an_encrypted_signed_push_and_a_connected_one_does_not() {
    let app = app_with_push().await;
    let push = service(&app).await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let phone_device = push.device("bob-phone", &[]);
    let sub = register(&app, &bob, &phone_device, None).await;
    assert_eq!(sub["categories"], json!(["MESSAGES", "REPLIES", "LIKES", "FOLLOWS", "NOTICES"]));
    assert_eq!(sub["thisDevice"], true);

    // Bob's app is not connected: the message reaches his phone through the push service.
    let sent = app.gql(Some(&alice), SEND, json!({ "to": bob_id, "body": "FOB Ningbo, 2,000 pcs?" })).await;
    let got = push.wait_for(1).await;
    let p = &got[0];
    assert_eq!(p.device, "bob-phone");
    assert_eq!(p.payload["type"], "MESSAGE");
    assert_eq!(p.payload["title"], "alice");
    assert_eq!(p.payload["body"], "FOB Ningbo, 2,000 pcs?");
    assert_eq!(p.payload["messageId"], sent["sendMessage"]["message"]["id"]);
    assert_eq!(p.payload["conversationId"], sent["sendMessage"]["conversation"]["id"]);
    assert_eq!(p.urgency.as_deref(), Some("high"));
    assert!(p.topic.is_some(), "a conversation's pushes collapse in the push service");
    assert!(p.ttl > 86_000 && p.ttl <= 86_400, "TTL {}", p.ttl);
    // The sender records the delivery once the push service has answered, a moment after the test's
    // push service saw the request.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mine = app.gql(Some(&bob), MINE, json!({})).await;
        if mine["me"]["pushSubscriptions"][0]["lastDeliveredAt"].is_string() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no lastDeliveredAt: {mine}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // Bob opens the app: his socket shows the next message, so his phone does not buzz for it.
    let mut ws = app.ws(Some(&bob)).await;
    ws.subscribe("m", crate::messaging::RECEIVED, json!({})).await;
    app.streams_waiting(1).await;
    app.gql(Some(&alice), SEND, json!({ "to": bob_id, "body": "seen live" })).await;
    assert_eq!(ws.next_data("m").await["messageReceived"]["body"], "seen live");
    // The app keeps reading (and so answers the ping that follows a delivery) until the push is settled.
    settled(&app, Some(&mut ws)).await;
    assert_eq!(push.delivered().len(), 1, "no push for what a live socket showed: {:?}", push.delivered());

    // A phone asleep with its socket still open (it reads nothing, so it answers no ping): the
    // message was written to the socket but never shown, so it is pushed.
    let mut asleep = app.ws(Some(&bob)).await;
    asleep.subscribe("m", crate::messaging::RECEIVED, json!({})).await;
    // Both sockets' streams wait (the message is written to the sleeping one).
    app.streams_waiting(2).await;
    drop(ws);
    app.gql(Some(&alice), SEND, json!({ "to": bob_id, "body": "while asleep" })).await;
    let got = push.wait_for(2).await;
    assert_eq!(got[1].payload["body"], "while asleep");
    drop(asleep);

    // A message read within the grace period (on the web, say) is not pushed either.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let read = app.gql(Some(&alice), SEND, json!({ "to": bob_id, "body": "read on the web" })).await;
    let mark = "mutation($c: ID!) { markConversationRead(input: { conversationId: $c }) { conversation { id } } }";
    app.gql(Some(&bob), mark, json!({ "c": read["sendMessage"]["conversation"]["id"] })).await;
    settled(&app, None).await;
    assert_eq!(push.delivered().len(), 2, "no push for what was read: {:?}", push.delivered());

    // Offline again and unread: pushed.
    app.gql(Some(&alice), SEND, json!({ "to": bob_id, "body": "back offline" })).await;
    let got = push.wait_for(3).await;
    assert_eq!(got[2].payload["body"], "back offline");
}

#[tokio::test]
async fn notifications_follow_the_devices_categories_and_gone_devices_are_removed() {
    let app = app_with_push().await;
    let push = service(&app).await;
    let (alice, alice_id) = app.register(&phone(1), "alice").await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    // Two devices: the tablet wants only messages; the phone wants follows and replies, and will
    // be told the first time by its push service that it is gone... after a transient error.
    let tablet = push.device("tablet", &[]);
    register(&app, &alice, &tablet, Some(json!(["MESSAGES"]))).await;
    let phone_device = push.device("phone", &[500]);
    register(&app, &alice, &phone_device, Some(json!(["FOLLOWS", "REPLIES"]))).await;

    let follow = "mutation($u: ID!) { followUser(input: { userId: $u }) { user { id } } }";
    app.gql(Some(&bob), follow, json!({ "u": alice_id })).await;
    // The 500 is retried; the follow reaches the phone only.
    let got = push.wait_for(1).await;
    assert_eq!(got[0].device, "phone");
    assert_eq!(got[0].payload["type"], "NOTIFICATION");
    assert_eq!(got[0].payload["kind"], "NEW_FOLLOWER");
    assert_eq!(got[0].payload["title"], "bob");
    assert_eq!(got[0].urgency.as_deref(), Some("normal"));
    assert_eq!(push.refused(), vec![("phone".to_string(), 500)]);
    settled(&app, None).await;
    assert_eq!(push.delivered().len(), 1, "the tablet wants messages only");

    // The phone's subscription expires at its push service: 410 removes it here.
    push.state.devices.lock().unwrap().get_mut("phone").unwrap().2.push_back(410);
    // Alice reads her notifications, so the next follower starts a new one (more followers on an
    // unread one only grow it, and do not buzz again).
    app.gql(Some(&alice), "mutation { markNotificationsRead { unreadCount } }", json!({})).await;
    let (carol, _) = app.register(&phone(3), "carol").await;
    let carol_follow = app.gql(Some(&carol), follow, json!({ "u": alice_id })).await;
    assert!(carol_follow["followUser"]["user"]["id"].is_string());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let mine = app.gql(Some(&alice), MINE, json!({})).await;
        let endpoints: Vec<String> = mine["me"]["pushSubscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["endpoint"].as_str().unwrap().to_string())
            .collect();
        if endpoints == vec![tablet.endpoint.clone()] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the gone device was not removed: {endpoints:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(push.refused().contains(&("phone".to_string(), 410)));
}

#[tokio::test]
async fn subscriptions_are_checked_owned_end_with_their_session_and_go_with_the_account() {
    let app = app_with_push().await;
    let push = service(&app).await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    let d = push.device("d", &[]);
    let input = |endpoint: &str, p256dh: &str, auth: &str| json!({ "input": { "endpoint": endpoint, "keys": { "p256dh": p256dh, "auth": auth } } });
    // Only known push services over HTTPS (here: 127.0.0.1 over HTTP, as configured), real keys.
    for (vars, field) in [
        (input("http://169.254.169.254/latest/meta-data", &d.p256dh, &d.auth), "input.endpoint"),
        (input("ftp://127.0.0.1/push/d", &d.p256dh, &d.auth), "input.endpoint"),
        (input("http://user:pw@127.0.0.1/push/d", &d.p256dh, &d.auth), "input.endpoint"),
        (input(&d.endpoint, "AAAA", &d.auth), "input.keys.p256dh"),
        (input(&d.endpoint, &URL_SAFE_NO_PAD.encode([4u8; 65]), &d.auth), "input.keys.p256dh"),
        (input(&d.endpoint, &d.p256dh, "c2hvcnQ"), "input.keys.auth"),
    ] {
        let (status, body) = app.gql_raw(Some(&alice), REGISTER, vars).await;
        assert_eq!(status, 200);
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
    }
    let (code, _) = app.gql_err(None, REGISTER, input(&d.endpoint, &d.p256dh, &d.auth)).await;
    assert_eq!(code, "UNAUTHENTICATED");
    let key = app.gql(None, "{ pushPublicKey }", json!({})).await["pushPublicKey"].as_str().unwrap().to_string();
    assert_eq!(URL_SAFE_NO_PAD.decode(&key).unwrap().len(), 65, "an uncompressed P-256 point");

    // Registered by Alice; Bob cannot remove it; nobody else sees it.
    register(&app, &alice, &d, Some(json!(["MESSAGES"]))).await;
    let unregister = "mutation($e: String!) { unregisterPushSubscription(input: { endpoint: $e }) { removed } }";
    let bobs = app.gql(Some(&bob), unregister, json!({ "e": d.endpoint })).await;
    assert_eq!(bobs["unregisterPushSubscription"]["removed"], false);
    let alice_id = app.gql(Some(&alice), "{ me { id } }", json!({})).await["me"]["id"].clone();
    let theirs = "query($u: ID!) { user(id: $u) { pushSubscriptions { endpoint } } }";
    let (code, _) = app.gql_err(Some(&bob), theirs, json!({ "u": alice_id })).await;
    assert_eq!(code, "FORBIDDEN");

    // In the data export (without the device's keys).
    let request = "mutation { requestDataExport(input: { format: JSON }) { export { downloadUrl } } }";
    let export = app.gql(Some(&alice), request, json!({})).await;
    let url = export["requestDataExport"]["export"]["downloadUrl"].as_str().unwrap().to_string();
    let archive: Value = app.http.get(app.url(&url)).bearer_auth(&alice).send().await.unwrap().json().await.unwrap();
    let subs = archive["pushSubscriptions"].as_array().unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0]["endpoint"], d.endpoint.as_str());
    assert!(subs[0].get("auth").is_none() && subs[0].get("p256dh").is_none());

    // Signing out ends the subscription of that session.
    app.gql(Some(&alice), "mutation { logout { loggedOut } }", json!({})).await;
    assert_eq!(crate::trust::scalar(&app, "SELECT COUNT(*) FROM push_subscriptions").await, 0);

    // Registered again by Bob (the same browser, another member): it is his now, what was queued
    // for Alice's device never reaches it, and it goes with his account.
    let login = "mutation($input: LoginInput!) { login(input: $input) { token } }";
    let again = app.gql(None, login, json!({ "input": { "phone": phone(1), "password": "correct horse" } })).await;
    let alice = again["login"]["token"].as_str().unwrap().to_string();
    register(&app, &alice, &d, None).await;
    let (carol, _) = app.register(&phone(3), "carol").await;
    let alice_id = app.gql(Some(&alice), "{ me { id } }", json!({})).await["me"]["id"].clone();
    app.gql(Some(&carol), SEND, json!({ "to": alice_id, "body": "for alice only" })).await;
    register(&app, &bob, &d, None).await;
    settled(&app, None).await;
    assert!(push.delivered().is_empty(), "{:?}", push.delivered());
    let del = "mutation { deleteAccount(input: { password: \"correct horse\" }) { deleted } }";
    app.gql(Some(&bob), del, json!({})).await;
    assert_eq!(crate::trust::scalar(&app, "SELECT COUNT(*) FROM push_subscriptions").await, 0);
}

#[tokio::test]
async fn security_notices_reach_every_device_and_a_busy_push_service_is_retried_until_the_ttl() {
    let app = TestApp::spawn_with(|c| {
        c.push_allow_http = true;
        c.push_endpoint_hosts = vec!["127.0.0.1".into()];
        c.push_delay_ms = 100;
        c.push_poll_ms = 50;
        c.push_retry_base_ms = 50;
        c.push_ttl_secs = 3;
    })
    .await;
    let push = service(&app).await;
    let admin = app.admin().await;
    let (alice, alice_id) = app.register(&phone(1), "alice").await;
    // Messages only, yet a security notice reaches it; the push service is busy once (429 with
    // Retry-After: 1 s), then takes it.
    let d = push.device("alice-phone", &[429]);
    register(&app, &alice, &d, Some(json!(["MESSAGES"]))).await;
    let started = std::time::Instant::now();
    let notice = "mutation($u: [ID!]) { sendSecurityNotice(input: { body: \"密码泄露风险：请修改密码\", userIds: $u }) { recipients } }";
    app.gql(Some(&admin), notice, json!({ "u": [alice_id] })).await;
    let got = push.wait_for(1).await;
    assert_eq!(got[0].payload["kind"], "SECURITY_NOTICE");
    assert_eq!(got[0].payload["body"], "密码泄露风险：请修改密码");
    assert_eq!(push.refused(), vec![("alice-phone".to_string(), 429)]);
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After was not honoured");

    // A push service that never takes it: retried until the push's TTL (3 s here), then given up.
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let down = push.device("bob-phone", &[503; 200]);
    register(&app, &bob, &down, None).await;
    app.gql(Some(&alice), SEND, json!({ "to": bob_id, "body": "never arrives" })).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let failed = crate::trust::scalar(&app, "SELECT COUNT(*) FROM push_outbox WHERE status = 'FAILED'").await;
        if failed == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the push was not given up at its TTL");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tries = push.refused().iter().filter(|(d, _)| d == "bob-phone").count();
    assert!(tries >= 3, "retried with a backoff, {tries} tries");
    assert_eq!(push.delivered().len(), 1);
}

#[tokio::test]
async fn only_https_endpoints_of_known_push_services_on_their_port_and_twenty_devices_at_most() {
    // The defaults: FCM, Mozilla, Windows and Apple push services over HTTPS. Registering contacts
    // nobody, so this test reaches no network.
    let app = TestApp::spawn().await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let keys = |endpoint: String| {
        let p256dh = "BFW1yJE66NZUty6EfADaz1zq_UvSx74r4ZzhA01Y4aGzR5C_V23-mRuRjTkbiRJRQJWcfxAMQbKB8sI0rjbWGM4";
        json!({ "input": { "endpoint": endpoint, "keys": { "p256dh": p256dh, "auth": "fipxKe5Apch-DRzMxasHzw" } } })
    };
    for endpoint in [
        "http://fcm.googleapis.com/fcm/send/x",
        "https://fcm.googleapis.com:9/fcm/send/x",
        "https://evilfcm.googleapis.com/fcm/send/x",
        "https://fcm.googleapis.com./fcm/send/x",
        "https://127.0.0.1/push",
    ] {
        let (status, body) = app.gql_raw(Some(&alice), REGISTER, keys(endpoint.into())).await;
        assert_eq!(status, 200);
        assert_eq!(body["errors"][0]["extensions"]["field"], "input.endpoint", "{endpoint}: {body}");
    }
    for n in 0..21 {
        let endpoint = format!("https://wns2-par02p.notify.windows.com/w/?token={n}");
        app.gql(Some(&alice), REGISTER, keys(endpoint)).await;
    }
    let mine = app.gql(Some(&alice), MINE, json!({})).await;
    let endpoints = mine["me"]["pushSubscriptions"].as_array().unwrap();
    assert_eq!(endpoints.len(), 20, "a member keeps 20 devices");
    assert!(
        endpoints.iter().all(|e| e["endpoint"] != "https://wns2-par02p.notify.windows.com/w/?token=0"),
        "the oldest went"
    );
}

#[tokio::test]
async fn what_a_socket_on_one_instance_showed_is_not_pushed_by_another() {
    // Two instances sharing the database and a Redis of the test's own; both run push senders.
    let redis = crate::scale_out::OwnRedis::start();
    let url = redis.url();
    let fast = |c: &mut ecer_gateway::config::Config| {
        c.push_allow_http = true;
        c.push_endpoint_hosts = vec!["127.0.0.1".into()];
        c.push_delay_ms = DELAY_MS;
        c.push_poll_ms = 50;
    };
    let a = TestApp::spawn_with(|c| {
        fast(c);
        c.redis_url = Some(url.clone());
    })
    .await;
    let prefix = a.state.config.redis_prefix.clone();
    let b = a
        .another_instance(|c| {
            fast(c);
            c.redis_url = Some(url.clone());
            c.redis_prefix = prefix.clone();
        })
        .await;
    let push = service(&a).await;
    let (alice, _) = a.register(&phone(1), "alice").await;
    let (bob, bob_id) = a.register(&phone(2), "bob").await;
    register(&a, &bob, &push.device("bob-phone", &[]), None).await;

    // Bob's app is open on instance B; Alice writes through A. Whichever instance's sender takes
    // the push knows from Redis that B's socket showed it.
    let mut ws = b.ws(Some(&bob)).await;
    ws.subscribe("m", crate::messaging::RECEIVED, json!({})).await;
    b.streams_waiting(1).await;
    a.gql(Some(&alice), SEND, json!({ "to": bob_id, "body": "seen on B" })).await;
    assert_eq!(ws.next_data("m").await["messageReceived"]["body"], "seen on B");
    settled(&a, Some(&mut ws)).await;
    assert!(push.delivered().is_empty(), "pushed although B's socket showed it: {:?}", push.delivered());

    // Closed: the next one is pushed, by either instance, once.
    drop(ws);
    a.gql(Some(&alice), SEND, json!({ "to": bob_id, "body": "after closing" })).await;
    let got = push.wait_for(1).await;
    assert_eq!(got[0].payload["body"], "after closing");
    settled(&a, None).await;
    assert_eq!(push.delivered().len(), 1, "two instances sent the same push");
}

#[tokio::test]
async fn pushes_that_ended_are_purged_a_day_later_and_those_still_tried_stay() {
    let app = app_with_push().await;
    let push = service(&app).await;
    let (alice, _) = app.register(&phone(1), "alice").await;
    let (bob, bob_id) = app.register(&phone(2), "bob").await;
    let (carol, carol_id) = app.register(&phone(3), "carol").await;
    register(&app, &bob, &push.device("bob-phone", &[]), None).await;
    // Carol's push service is down for the whole test: her push is retried (the TTL is a day).
    register(&app, &carol, &push.device("carol-phone", &[503; 10_000]), None).await;
    app.gql(Some(&alice), SEND, json!({ "to": bob_id, "body": "delivered" })).await;
    app.gql(Some(&alice), SEND, json!({ "to": carol_id, "body": "still trying" })).await;
    push.wait_for(1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while crate::trust::scalar(&app, "SELECT COUNT(*) FROM push_outbox WHERE status = 'SENT'").await != 1 {
        assert!(tokio::time::Instant::now() < deadline, "the sender never recorded bob's push");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let periods = ecer_gateway::services::retention::Periods::from_config(&app.state.config);
    let purge = |at| ecer_gateway::services::retention::purge(&app.state.db, &app.state.media, &periods, at);
    let now = chrono::Utc::now();
    assert_eq!(purge(now).await.unwrap().push_outbox, 0, "nothing is a day old yet");
    assert_eq!(purge(now + chrono::Duration::days(2)).await.unwrap().push_outbox, 1, "bob's sent push");
    let rows = crate::trust::scalar(&app, "SELECT COUNT(*) FROM push_outbox").await;
    let carols =
        crate::trust::scalar(&app, "SELECT COUNT(*) FROM push_outbox WHERE status IN ('PENDING', 'SENDING')").await;
    assert_eq!((rows, carols), (1, 1), "carol's push, still being tried, stays whatever its age");
}
