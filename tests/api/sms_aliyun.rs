//! The Aliyun SMS provider and the SMS outbox against a stand-in for dysmsapi started by the test:
//! an axum server on 127.0.0.1:0 that recomputes the RPC signature (its own implementation of the
//! documented rules, not the gateway's), checks the common and template parameters, refuses a
//! replayed nonce, keeps the codes it was asked to deliver, and fails on demand (HTTP 500, a non-OK
//! `Code`).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json, Router};
use base64::Engine as _;
use ecer_gateway::config::{Config, Secret};
use ecer_gateway::sms::ProviderKind;
use hmac::{KeyInit as _, Mac as _};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::common::{TestApp, phone};

const ASK: &str =
    "mutation($input: RequestPhoneCodeInput!) { requestPhoneCode(input: $input) { sent expiresIn resendAfter } }";
const REGISTER: &str = "mutation($input: RegisterInput!) { register(input: $input) { token user { id } } }";
const KEY_ID: &str = "LTAI-test-key";
const SECRET: &str = "test secret/with+odd*chars";
const SIGN_NAME: &str = "易测社区";
const TEMPLATE: &str = "SMS_123456789";
/// The notice template: one variable, `${content}`.
const NOTICE_TEMPLATE: &str = "SMS_987654321";

/// How the stand-in answers the next requests.
#[derive(Clone, Debug)]
enum Mode {
    Ok,
    Http500,
    Code(&'static str),
}

struct Fake {
    mode: Mutex<Mode>,
    /// (PhoneNumbers, code) of every request that was answered OK.
    delivered: Mutex<Vec<(String, String)>>,
    /// Why requests were refused (a failed check, not a failure on demand).
    refused: Mutex<Vec<String>>,
    nonces: Mutex<HashSet<String>>,
    /// Requests answered with a failure on demand.
    failed: Mutex<u32>,
}

/// The documented percent-encoding: unreserved characters kept, every other UTF-8 byte `%XY`.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn expected_signature(params: &BTreeMap<String, String>) -> String {
    let canonical: Vec<String> =
        params.iter().filter(|(k, _)| *k != "Signature").map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
    let to_sign = format!("POST&%2F&{}", encode(&canonical.join("&")));
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(format!("{SECRET}&").as_bytes()).unwrap();
    mac.update(to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Every check a real dysmsapi makes that this client can get wrong; the first failure is the answer.
fn check(fake: &Fake, p: &BTreeMap<String, String>) -> Result<(String, String), (&'static str, String)> {
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    if get("Signature") != expected_signature(p) {
        return Err(("SignatureDoesNotMatch", format!("signature {:?}", get("Signature"))));
    }
    for (k, want) in [
        ("Action", "SendSms"),
        ("Version", "2017-05-25"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("Format", "JSON"),
        ("AccessKeyId", KEY_ID),
        ("SignName", SIGN_NAME),
    ] {
        if get(k) != want {
            return Err(("isv.INVALID_PARAMETERS", format!("{k} = {:?}", get(k))));
        }
    }
    let ts = chrono::NaiveDateTime::parse_from_str(get("Timestamp"), "%Y-%m-%dT%H:%M:%SZ")
        .map_err(|_| ("InvalidTimeStamp.Format", format!("Timestamp {:?}", get("Timestamp"))))?;
    if (chrono::Utc::now().naive_utc() - ts).num_seconds().abs() > 900 {
        return Err(("InvalidTimeStamp.Expired", get("Timestamp").to_string()));
    }
    if get("SignatureNonce").is_empty() || !fake.nonces.lock().unwrap().insert(get("SignatureNonce").to_string()) {
        return Err(("SignatureNonceUsed", get("SignatureNonce").to_string()));
    }
    let number = get("PhoneNumbers");
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(("isv.MOBILE_NUMBER_ILLEGAL", number.to_string()));
    }
    let param: Value = serde_json::from_str(get("TemplateParam"))
        .map_err(|_| ("isv.INVALID_JSON_PARAM", get("TemplateParam").to_string()))?;
    let one_variable = param.as_object().map(|o| o.len()) == Some(1);
    match get("TemplateCode") {
        TEMPLATE => {
            let code = param["code"].as_str().unwrap_or("");
            if !one_variable || code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(("isv.TEMPLATE_PARAMS_ILLEGAL", param.to_string()));
            }
            Ok((number.to_string(), code.to_string()))
        }
        NOTICE_TEMPLATE => {
            let content = param["content"].as_str().unwrap_or("");
            if !one_variable || content.is_empty() || content.chars().count() > 500 {
                return Err(("isv.TEMPLATE_PARAMS_ILLEGAL", param.to_string()));
            }
            Ok((number.to_string(), content.to_string()))
        }
        other => Err(("isv.SMS_TEMPLATE_ILLEGAL", format!("TemplateCode = {other:?}"))),
    }
}

async fn send_sms(State(fake): State<Arc<Fake>>, Form(p): Form<BTreeMap<String, String>>) -> Response {
    let answer = |code: &str, message: &str| json!({ "Code": code, "Message": message, "RequestId": "req-1" });
    match check(&fake, &p) {
        Err((code, why)) => {
            fake.refused.lock().unwrap().push(format!("{code}: {why}"));
            (StatusCode::BAD_REQUEST, Json(answer(code, &why))).into_response()
        }
        Ok(delivery) => match fake.mode.lock().unwrap().clone() {
            Mode::Http500 => {
                *fake.failed.lock().unwrap() += 1;
                (StatusCode::INTERNAL_SERVER_ERROR, "upstream trouble").into_response()
            }
            Mode::Code(code) => {
                *fake.failed.lock().unwrap() += 1;
                Json(answer(code, "refused on demand")).into_response()
            }
            Mode::Ok => {
                fake.delivered.lock().unwrap().push(delivery);
                Json(json!({ "Code": "OK", "Message": "OK", "BizId": "biz-1", "RequestId": "req-1" })).into_response()
            }
        },
    }
}

/// Starts the stand-in; returns its state and its base URL.
async fn start_fake() -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake {
        mode: Mutex::new(Mode::Ok),
        delivered: Mutex::default(),
        refused: Mutex::default(),
        nonces: Mutex::default(),
        failed: Mutex::default(),
    });
    let app = Router::new().route("/", axum::routing::post(send_sms)).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (fake, format!("http://{addr}"))
}

fn aliyun(endpoint: &str, secret: &str) -> impl FnOnce(&mut Config) {
    let endpoint = endpoint.to_string();
    let secret = secret.to_string();
    move |c: &mut Config| {
        c.sms_provider = ProviderKind::Aliyun;
        c.aliyun_sms_endpoint = endpoint;
        c.aliyun_access_key_id = KEY_ID.into();
        c.aliyun_access_key_secret = Secret::new(secret);
        c.aliyun_sms_sign_name = SIGN_NAME.into();
        c.aliyun_sms_template_code = TEMPLATE.into();
        // Retries within the test's patience.
        c.sms_outbox_poll_ms = 20;
        c.sms_retry_base_ms = 50;
    }
}

fn ask(phone: &str, purpose: &str) -> Value {
    json!({ "input": { "phone": phone, "purpose": purpose } })
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let db = &app.state.db;
    let row =
        db.query_one_raw(Statement::from_string(db.get_database_backend(), sql.to_string())).await.unwrap().unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

async fn stored_codes(app: &TestApp) -> i64 {
    count(app, "SELECT COUNT(*) FROM phone_codes").await
}

/// Waits (up to 10 s) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_signed_code_reaches_the_provider_and_registers() {
    let (fake, url) = start_fake().await;
    let app = TestApp::spawn_with(aliyun(&url, SECRET)).await;
    let sent = app.gql(None, ASK, ask(&phone(1), "REGISTER")).await;
    assert_eq!(sent["requestPhoneCode"]["sent"], true);
    assert_eq!(fake.refused.lock().unwrap().clone(), Vec::<String>::new());
    let (number, code) = fake.delivered.lock().unwrap().last().cloned().expect("one delivery");
    assert_eq!(number, phone(1).trim_start_matches('+'), "the country code without '+'");
    assert!(app.state.sms.last_code(&phone(1)).is_none(), "no development ring with a real provider");

    let input = json!({ "input": { "phone": phone(1), "code": code, "password": "correct horse", "nickname": "n" } });
    let data = app.gql(None, REGISTER, input).await;
    assert!(data["register"]["token"].is_string());
    // A second code uses a fresh nonce (the stand-in refuses a replayed one).
    app.gql(None, ASK, ask(&phone(2), "REGISTER")).await;
    assert_eq!(fake.delivered.lock().unwrap().len(), 2);
    assert!(fake.refused.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_refusal_answers_sms_unavailable_and_costs_nothing() {
    let (fake, url) = start_fake().await;
    let app = TestApp::spawn_with(aliyun(&url, SECRET)).await;
    *fake.mode.lock().unwrap() = Mode::Code("isv.AMOUNT_NOT_ENOUGH");
    let (c, err) = app.gql_err(None, ASK, ask(&phone(1), "LOGIN")).await;
    assert_eq!(c, "SMS_UNAVAILABLE", "{err}");
    assert!(!err.to_string().contains("AMOUNT"), "the provider's code stays in the log: {err}");
    assert_eq!(stored_codes(&app).await, 0, "an undeliverable code is not kept");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM sms_outbox WHERE status = 'FAILED'").await, 1);
    // Back in order: the next request goes through at once (nothing counted toward spacing or caps).
    *fake.mode.lock().unwrap() = Mode::Ok;
    app.gql(None, ASK, ask(&phone(1), "LOGIN")).await;
    assert_eq!(fake.delivered.lock().unwrap().len(), 1);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM sms_outbox WHERE status = 'SENT'").await, 1);
    // Neither the number nor the code is in the outbox in the clear.
    let (number, code) = fake.delivered.lock().unwrap()[0].clone();
    let sql = format!(
        "SELECT COUNT(*) FROM sms_outbox WHERE phone_sealed LIKE '%{number}%' OR body_sealed LIKE '%{code}%' \
         OR phone_key LIKE '%{number}%'"
    );
    assert_eq!(count(&app, &sql).await, 0);
}

/// HTTP 500, then flow control, then up: the member is told "sent" at once, the outbox retries with
/// backoff, and the code arrives exactly once and works.
#[tokio::test]
async fn a_provider_that_is_down_gets_the_code_later_exactly_once() {
    let (fake, url) = start_fake().await;
    let app = TestApp::spawn_with(aliyun(&url, SECRET)).await;
    *fake.mode.lock().unwrap() = Mode::Http500;
    let sent = app.gql(None, ASK, ask(&phone(1), "REGISTER")).await;
    assert_eq!(sent["requestPhoneCode"]["sent"], true, "queued: the outbox will deliver it");
    until("two failed tries", || *fake.failed.lock().unwrap() >= 2).await;
    *fake.mode.lock().unwrap() = Mode::Code("isv.BUSINESS_LIMIT_CONTROL");
    until("a flow-control refusal", || *fake.failed.lock().unwrap() >= 3).await;
    assert!(fake.delivered.lock().unwrap().is_empty());
    *fake.mode.lock().unwrap() = Mode::Ok;
    until("the delivery", || !fake.delivered.lock().unwrap().is_empty()).await;
    // Recorded SENT: nothing more will go out.
    crate::trust::until_count(&app, "SELECT COUNT(*) FROM sms_outbox WHERE status = 'SENT' AND attempts >= 4", 1).await;
    assert_eq!(fake.delivered.lock().unwrap().len(), 1, "sent once");
    assert!(fake.refused.lock().unwrap().is_empty(), "{:?}", fake.refused.lock().unwrap());
    let (_, code) = fake.delivered.lock().unwrap()[0].clone();
    let input = json!({ "input": { "phone": phone(1), "code": code, "password": "correct horse", "nickname": "n" } });
    assert!(app.gql(None, REGISTER, input).await["register"]["token"].is_string());
}

/// Two instances polling the same outbox while the provider comes back: one delivery per message.
#[tokio::test]
async fn two_instances_send_each_message_once() {
    let (fake, url) = start_fake().await;
    let one = TestApp::spawn_with(aliyun(&url, SECRET)).await;
    let two = one.another_instance(aliyun(&url, SECRET)).await;
    *fake.mode.lock().unwrap() = Mode::Http500;
    for n in 1..=5 {
        let app = if n % 2 == 0 { &two } else { &one };
        app.gql(None, ASK, ask(&phone(n), "LOGIN")).await;
    }
    until("failed tries on every message", || *fake.failed.lock().unwrap() >= 10).await;
    *fake.mode.lock().unwrap() = Mode::Ok;
    until("five deliveries", || fake.delivered.lock().unwrap().len() >= 5).await;
    // All five recorded SENT: nothing more will go out.
    crate::trust::until_count(&one, "SELECT COUNT(*) FROM sms_outbox WHERE status = 'SENT'", 5).await;
    let mut numbers: Vec<String> = fake.delivered.lock().unwrap().iter().map(|(n, _)| n.clone()).collect();
    numbers.sort();
    let expected: Vec<String> = (1..=5).map(|n| phone(n).trim_start_matches('+').to_string()).collect();
    assert_eq!(numbers, expected, "each number exactly once");
}

#[tokio::test]
async fn an_unreachable_provider_leaves_the_message_pending() {
    let down = TestApp::spawn_with(|c| {
        aliyun("http://127.0.0.1:9", SECRET)(c);
        c.sms_outbox_poll_ms = 60_000;
    })
    .await;
    let sent = down.gql(None, ASK, ask(&phone(1), "LOGIN")).await;
    assert_eq!(sent["requestPhoneCode"]["sent"], true);
    let pending =
        "SELECT COUNT(*) FROM sms_outbox WHERE status = 'PENDING' AND attempts = 1 AND last_error IS NOT NULL";
    assert_eq!(count(&down, pending).await, 1);
}

#[tokio::test]
async fn a_wrong_secret_is_refused_by_the_provider() {
    let (fake, url) = start_fake().await;
    let app = TestApp::spawn_with(aliyun(&url, "not the secret")).await;
    let (c, _) = app.gql_err(None, ASK, ask(&phone(1), "REGISTER")).await;
    assert_eq!(c, "SMS_UNAVAILABLE");
    assert!(fake.delivered.lock().unwrap().is_empty());
    let refused = fake.refused.lock().unwrap().clone();
    assert!(refused.len() == 1 && refused[0].starts_with("SignatureDoesNotMatch"), "{refused:?}");
}

/// Signs a member up with the code the stand-in received; returns their token.
async fn register_via(app: &TestApp, fake: &Fake, phone: &str) -> String {
    app.gql(None, ASK, ask(phone, "REGISTER")).await;
    let (_, code) = fake.delivered.lock().unwrap().last().cloned().expect("the code was delivered");
    let input = json!({ "input": { "phone": phone, "code": code, "password": "correct horse", "nickname": "n" } });
    app.gql(None, REGISTER, input).await["register"]["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn notices_go_under_their_own_template_or_are_recorded_failed_without_one() {
    let (fake, url) = start_fake().await;
    let with_notices = |c: &mut Config| {
        aliyun(&url, SECRET)(c);
        c.aliyun_sms_notice_template_code = NOTICE_TEMPLATE.into();
    };
    let app = TestApp::spawn_with(with_notices).await;
    let token = register_via(&app, &fake, &phone(1)).await;
    let change = "mutation($input: ChangePasswordInput!) { changePassword(input: $input) { changed } }";
    let input = json!({ "input": { "currentPassword": "correct horse", "newPassword": "battery staple" } });
    app.gql(Some(&token), change, input.clone()).await;
    until("the notice is delivered", || fake.delivered.lock().unwrap().len() == 2).await;
    let (number, content) = fake.delivered.lock().unwrap().last().cloned().unwrap();
    assert_eq!(number, phone(1).trim_start_matches('+'));
    assert!(content.contains("password was changed"), "{content}");
    assert!(fake.refused.lock().unwrap().is_empty(), "{:?}", fake.refused.lock().unwrap());

    // Without a notice template the SMS cannot go: recorded FAILED with why, the in-site notice stays.
    let (fake, url) = start_fake().await;
    let app = TestApp::spawn_with(aliyun(&url, SECRET)).await;
    let token = register_via(&app, &fake, &phone(1)).await;
    app.gql(Some(&token), change, input).await;
    let failed = "SELECT COUNT(*) FROM sms_outbox WHERE status = 'FAILED' AND last_error LIKE '%ALIYUN_SMS_NOTICE_TEMPLATE_CODE%'";
    crate::trust::until_count(&app, failed, 1).await;
    assert_eq!(fake.delivered.lock().unwrap().len(), 1, "only the registration code went");
    let inbox = app.gql(Some(&token), "{ notifications(first: 1) { nodes { kind } } }", json!({})).await;
    assert_eq!(inbox["notifications"]["nodes"][0]["kind"], "SECURITY_NOTICE");
}
