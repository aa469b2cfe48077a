//! Verified email through the public API, against a real SMTP server on loopback started by each
//! test (tests/support/smtp_sink.rs): the message as the server received it (envelope, headers, the
//! RFC 2047 subject in Chinese and English, the code in the body), codes that verify once, password
//! reset by email, the enumeration answer, and an SMTP server that refuses for good or for now.

use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::common::{TestApp, phone};

#[path = "../support/smtp_sink.rs"]
pub(crate) mod smtp_sink;
use smtp_sink::{SmtpSink, Stage};

const ADD: &str = "mutation($input: AddEmailInput!) { addEmail(input: $input) { user { email emailVerified pendingEmail } expiresIn resendAfter } }";
const VERIFY: &str =
    "mutation($input: VerifyEmailInput!) { verifyEmail(input: $input) { user { email emailVerified pendingEmail } } }";
const REQUEST: &str =
    "mutation($input: RequestEmailCodeInput!) { requestEmailCode(input: $input) { sent expiresIn resendAfter } }";
const RESET: &str = "mutation($input: ResetPasswordInput!) { resetPassword(input: $input) { reset } }";
const LOGIN: &str = "mutation($input: LoginInput!) { login(input: $input) { token } }";
const ME: &str = "{ me { id email emailVerified } }";
const FROM: &str = "ecer 社区 <no-reply@ecer.example>";

/// A gateway whose mail goes to `sink`, with a fast sender.
async fn app_with(sink: &SmtpSink, tweak: impl FnOnce(&mut ecer_gateway::config::Config)) -> TestApp {
    let url = sink.url();
    TestApp::spawn_with(move |c| {
        c.smtp_url = Some(ecer_gateway::config::Secret::new(url));
        c.mail_from = FROM.into();
        c.email_outbox_poll_ms = 20;
        c.email_retry_base_ms = 50;
        tweak(c);
    })
    .await
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let db = &app.state.db;
    let row =
        db.query_one_raw(Statement::from_string(db.get_database_backend(), sql.to_string())).await.unwrap().unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// The 6-digit code in a message body (a run of exactly six digits).
pub(crate) fn code_in(body: &str) -> String {
    let chars: Vec<char> = body.chars().collect();
    let digit = |i: usize| chars.get(i).is_some_and(char::is_ascii_digit);
    for start in 0..chars.len() {
        let run = (start..start + 6).all(digit);
        if run && (start == 0 || !digit(start - 1)) && !digit(start + 6) {
            return chars[start..start + 6].iter().collect();
        }
    }
    panic!("no code in {body:?}");
}

async fn add(app: &TestApp, token: &str, email: &str) -> Value {
    app.gql(Some(token), ADD, json!({ "input": { "email": email } })).await
}

async fn signed_in(app: &TestApp, token: &str) -> bool {
    !app.gql(Some(token), ME, json!({})).await["me"].is_null()
}

/// Registers a member and verifies `email` for them; returns their token.
async fn member_with_email(app: &TestApp, sink: &SmtpSink, n: u32, email: &str) -> String {
    let (token, _) = app.register(&phone(n), "member").await;
    let before = sink.messages().len();
    add(app, &token, email).await;
    let sent = sink.wait_for(before + 1).await;
    let code = code_in(&sent[before].body());
    let data = app.gql(Some(&token), VERIFY, json!({ "input": { "code": code } })).await;
    assert_eq!(data["verifyEmail"]["user"]["emailVerified"], true, "{data}");
    token
}

#[tokio::test]
async fn add_email_sends_a_bilingual_code_that_verifies_once() {
    let sink = SmtpSink::start().await;
    let app = app_with(&sink, |_| {}).await;
    let (token, _) = app.register(&phone(1), "alice").await;

    let data = add(&app, &token, " Alice@Example.COM ").await;
    let user = &data["addEmail"]["user"];
    assert_eq!(user["pendingEmail"], "alice@example.com");
    assert_eq!(user["emailVerified"], false);
    assert_eq!(
        (data["addEmail"]["expiresIn"].as_u64(), data["addEmail"]["resendAfter"].as_u64()),
        (Some(600), Some(60))
    );

    let sent = sink.wait_for(1).await;
    let m = &sent[0];
    assert_eq!(m.mail_from, "no-reply@ecer.example");
    assert_eq!(m.rcpt_to, vec!["alice@example.com".to_string()]);
    assert!(m.header("To").unwrap().contains("alice@example.com"), "{}", m.data);
    let from = smtp_sink::decode_words(&m.header("From").unwrap());
    assert!(from.contains("ecer 社区") && from.contains("<no-reply@ecer.example>"), "{from}");
    let raw_subject = m.header("Subject").unwrap();
    assert!(raw_subject.is_ascii() && raw_subject.to_ascii_lowercase().contains("=?utf-8?"), "RFC 2047: {raw_subject}");
    assert_eq!(m.subject(), "ecer 验证码 / verification code");
    assert!(m.header("Content-Type").unwrap().to_ascii_lowercase().contains("charset=utf-8"));
    let body = m.body();
    let code = code_in(&body);
    assert!(body.contains(&format!("您的 ecer 验证码是 {code}")), "{body}");
    assert!(body.contains(&format!("Your ecer verification code is {code}")), "{body}");
    assert!(!m.data.contains(&code), "the body travels base64 encoded, the code not in the clear");

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (c, err) = app.gql_err(Some(&token), VERIFY, json!({ "input": { "code": wrong } })).await;
    assert_eq!((c.as_str(), &err["extensions"]["field"]), ("INVALID_CODE", &json!("input.code")));
    let data = app.gql(Some(&token), VERIFY, json!({ "input": { "code": code } })).await;
    let user = &data["verifyEmail"]["user"];
    assert_eq!(
        (&user["email"], &user["emailVerified"], &user["pendingEmail"]),
        (&json!("alice@example.com"), &json!(true), &Value::Null)
    );
    let (c, _) = app.gql_err(Some(&token), VERIFY, json!({ "input": { "code": code } })).await;
    assert_eq!(c, "INVALID_CODE", "a used code cannot be replayed");

    // Owner only.
    let (other, _) = app.register(&phone(2), "bob").await;
    let alice_id = app.gql(Some(&token), ME, json!({})).await["me"]["id"].clone();
    let q = "query($id: ID!) { node(id: $id) { ... on User { email emailVerified pendingEmail } } }";
    let seen = app.gql(Some(&other), q, json!({ "id": alice_id })).await;
    assert_eq!(seen["node"], json!({ "email": null, "emailVerified": false, "pendingEmail": null }));
    // Unauthenticated.
    let (c, _) = app.gql_err(None, ADD, json!({ "input": { "email": "x@example.com" } })).await;
    assert_eq!(c, "UNAUTHENTICATED");
    // Nothing in the outbox in the clear.
    let clear =
        format!("SELECT COUNT(*) FROM email_outbox WHERE address_sealed LIKE '%alice%' OR body_sealed LIKE '%{code}%'");
    assert_eq!(count(&app, &clear).await, 0);
}

#[tokio::test]
async fn five_wrong_codes_kill_it_and_a_new_address_replaces_the_pending_one() {
    let sink = SmtpSink::start().await;
    let app = app_with(&sink, |c| c.email_code_resend_secs = 0).await;
    let (token, _) = app.register(&phone(1), "alice").await;
    add(&app, &token, "first@example.com").await;
    let code = code_in(&sink.wait_for(1).await[0].body());
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        assert_eq!(app.gql_err(Some(&token), VERIFY, json!({ "input": { "code": wrong } })).await.0, "INVALID_CODE");
    }
    assert_eq!(app.gql_err(Some(&token), VERIFY, json!({ "input": { "code": code } })).await.0, "INVALID_CODE");

    add(&app, &token, "first@example.com").await;
    let old = code_in(&sink.wait_for(2).await[1].body());
    add(&app, &token, "second@example.com").await;
    let new = code_in(&sink.wait_for(3).await[2].body());
    if old != new {
        assert_eq!(app.gql_err(Some(&token), VERIFY, json!({ "input": { "code": old } })).await.0, "INVALID_CODE");
    }
    let data = app.gql(Some(&token), VERIFY, json!({ "input": { "code": new } })).await;
    assert_eq!(data["verifyEmail"]["user"]["email"], "second@example.com");
}

#[tokio::test]
async fn resend_spacing_and_enumeration_answers_are_alike_for_every_address() {
    let sink = SmtpSink::start().await;
    // Spacing is per address, whatever the purpose: 2 s here, so the test can wait it out.
    let spacing = std::time::Duration::from_millis(2_100);
    let app = app_with(&sink, |c| c.email_code_resend_secs = 2).await;
    let alice = member_with_email(&app, &sink, 1, "alice@example.com").await;
    let sent_before = sink.messages().len();
    tokio::time::sleep(spacing).await;

    // A reset code: the same answer for a member's address and for an unknown one.
    let ask = |email: &str| json!({ "input": { "email": email, "purpose": "RESET_PASSWORD" } });
    let (s1, known) = app.gql_raw(None, REQUEST, ask("alice@example.com")).await;
    let (s2, unknown) = app.gql_raw(None, REQUEST, ask("nobody@example.com")).await;
    assert_eq!((s1, &known), (s2, &unknown));
    assert_eq!(known["data"]["requestEmailCode"]["sent"], true);
    // And alike again within the resend spacing (counted from the requests, not the sending):
    // RATE_LIMITED for both. Asked at once, so the 2 s spacing has not run out meanwhile.
    let (c1, e1) = app.gql_err(None, REQUEST, ask("alice@example.com")).await;
    let (c2, e2) = app.gql_err(None, REQUEST, ask("nobody@example.com")).await;
    assert_eq!((c1.as_str(), c2.as_str()), ("RATE_LIMITED", "RATE_LIMITED"));
    assert!(
        e1["extensions"]["retryAfter"].as_u64().unwrap() > 0 && e2["extensions"]["retryAfter"].as_u64().unwrap() > 0
    );
    sink.wait_for(sent_before + 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let sent = sink.messages();
    assert_eq!(sent.len(), sent_before + 1, "a message for the member only");
    assert_eq!(sent[sent_before].rcpt_to, vec!["alice@example.com".to_string()]);

    // addEmail of an address another member verified: the same answer and a code as for a free one;
    // the conflict shows only to whoever proves the address.
    tokio::time::sleep(spacing).await;
    let (bob, _) = app.register(&phone(2), "bob").await;
    let taken = add(&app, &bob, "alice@example.com").await;
    let (carol, _) = app.register(&phone(3), "carol").await;
    let free = add(&app, &carol, "carol@example.com").await;
    assert_eq!(taken["addEmail"]["user"]["emailVerified"], free["addEmail"]["user"]["emailVerified"]);
    let sent = sink.wait_for(sent_before + 3).await;
    let to_bob = sent.iter().rev().find(|m| m.rcpt_to == ["alice@example.com"]).unwrap();
    let (c, _) = app.gql_err(Some(&bob), VERIFY, json!({ "input": { "code": code_in(&to_bob.body()) } })).await;
    assert_eq!(c, "CONFLICT");
    assert_eq!(app.gql(Some(&alice), ME, json!({})).await["me"]["email"], "alice@example.com");
    // A malformed address is input, not an answer about membership.
    let (c, err) = app.gql_err(None, REQUEST, ask("not an address")).await;
    assert_eq!((c.as_str(), &err["extensions"]["field"]), ("BAD_USER_INPUT", &json!("input.email")));
}

#[tokio::test]
async fn reset_password_by_email_ends_every_session_and_notices_go_by_email() {
    let sink = SmtpSink::start().await;
    let app = app_with(&sink, |c| c.email_code_resend_secs = 0).await;
    let first = member_with_email(&app, &sink, 1, "alice@example.com").await;
    let login = |pw: &str| json!({ "input": { "phone": phone(1), "password": pw } });
    let second = app.gql(None, LOGIN, login("correct horse")).await["login"]["token"].as_str().unwrap().to_string();

    let n = sink.messages().len();
    let ask = json!({ "input": { "email": "ALICE@example.com", "purpose": "RESET_PASSWORD" } });
    assert_eq!(app.gql(None, REQUEST, ask).await["requestEmailCode"]["sent"], true);
    let sent = sink.wait_for(n + 1).await;
    assert_eq!(sent[n].subject(), "ecer 验证码 / verification code");
    let code = code_in(&sent[n].body());
    assert!(sent[n].body().contains("重置"), "the reset purpose is named");

    let both = json!({ "input": { "phone": phone(1), "email": "alice@example.com", "code": code, "newPassword": "a new horse" } });
    assert_eq!(app.gql_err(None, RESET, both).await.0, "BAD_USER_INPUT");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let bad = json!({ "input": { "email": "alice@example.com", "code": wrong, "newPassword": "a new horse" } });
    assert_eq!(app.gql_err(None, RESET, bad).await.0, "INVALID_CODE");
    let input = json!({ "input": { "email": "alice@example.com", "code": code, "newPassword": "a new horse" } });
    assert_eq!(app.gql(None, RESET, input.clone()).await["resetPassword"]["reset"], true);
    assert!(!signed_in(&app, &first).await && !signed_in(&app, &second).await, "every session ended");
    assert_eq!(app.gql_err(None, LOGIN, login("correct horse")).await.0, "UNAUTHENTICATED");
    assert_eq!(app.gql_err(None, RESET, input).await.0, "INVALID_CODE", "no replay");

    // The reset's security notice reaches the verified address too.
    let sent = sink.wait_for(n + 2).await;
    let notice = &sent[n + 1];
    assert_eq!(notice.subject(), "ecer 安全提醒 / security notice");
    assert!(notice.body().contains("code sent to your email"), "{}", notice.body());

    // And so does a sign-in from a new device.
    let resp: Value = app
        .http
        .post(app.url("/graphql"))
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0")
        .json(&json!({ "query": LOGIN, "variables": login("a new horse") }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(resp["errors"].is_null(), "{resp}");
    let sent = sink.wait_for(n + 3).await;
    assert_eq!(sent[n + 2].subject(), "ecer 安全提醒 / security notice");
    assert!(sent[n + 2].body().contains("Firefox/140.0"));
    // A member without a verified address gets no email.
    app.register(&phone(2), "bob").await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(sink.messages().len(), n + 3);
}

#[tokio::test]
async fn a_permanent_smtp_refusal_fails_the_row_and_answers_email_unavailable() {
    let sink = SmtpSink::start().await;
    let app = app_with(&sink, |_| {}).await;
    let (token, _) = app.register(&phone(1), "alice").await;
    sink.refuse_always(Stage::Rcpt, "550 5.1.1 no such mailbox here");
    let (c, _) = app.gql_err(Some(&token), ADD, json!({ "input": { "email": "ghost@example.com" } })).await;
    assert_eq!(c, "EMAIL_UNAVAILABLE");
    assert_eq!(sink.refused(), 1, "tried once, not retried");
    let failed =
        "SELECT COUNT(*) FROM email_outbox WHERE status = 'FAILED' AND last_error LIKE 'SMTP_550%' AND attempts = 1";
    assert_eq!(count(&app, failed).await, 1);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM email_codes").await, 0, "no code is live");
    let me = app.gql(Some(&token), "{ me { pendingEmail emailVerified } }", json!({})).await;
    assert_eq!(me["me"], json!({ "pendingEmail": null, "emailVerified": false }));
    // Refused at DATA for good: the same.
    sink.heal();
    sink.refuse_always(Stage::Data, "554 5.7.1 message refused");
    let (c, _) = app.gql_err(Some(&token), ADD, json!({ "input": { "email": "other@example.com" } })).await;
    assert_eq!(c, "EMAIL_UNAVAILABLE");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(count(&app, "SELECT COUNT(*) FROM email_outbox WHERE status = 'FAILED'").await, 2);
    assert_eq!(sink.refused(), 2, "a permanent refusal is never retried");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn a_transient_smtp_failure_is_retried_and_delivered_once() {
    let sink = SmtpSink::start().await;
    let app = app_with(&sink, |_| {}).await;
    let (token, _) = app.register(&phone(1), "alice").await;
    sink.refuse_once(Stage::Data, "451 4.3.0 try again later");
    sink.refuse_once(Stage::Rcpt, "450 4.2.1 mailbox busy");
    let data = add(&app, &token, "alice@example.com").await;
    assert_eq!(data["addEmail"]["user"]["pendingEmail"], "alice@example.com", "queued; the sender retries");
    let sent = sink.wait_for(1).await;
    // Recorded SENT after the third try: nothing more will go out.
    let sent_row = "SELECT COUNT(*) FROM email_outbox WHERE status = 'SENT' AND attempts = 3 AND last_error IS NULL";
    crate::trust::until_count(&app, sent_row, 1).await;
    assert_eq!(sink.messages().len(), 1, "delivered once");
    assert_eq!(sink.refused(), 2);
    let code = code_in(&sent[0].body());
    let data = app.gql(Some(&token), VERIFY, json!({ "input": { "code": code } })).await;
    assert_eq!(data["verifyEmail"]["user"]["emailVerified"], true);
}

#[tokio::test]
async fn an_unreachable_server_leaves_the_message_pending_with_a_code() {
    // A port nobody listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("smtp://{}", closed.local_addr().unwrap());
    drop(closed);
    let app = TestApp::spawn_with(move |c| {
        c.smtp_url = Some(ecer_gateway::config::Secret::new(url));
        c.email_retry_base_ms = 60_000;
    })
    .await;
    let (token, _) = app.register(&phone(1), "alice").await;
    let data = add(&app, &token, "alice@example.com").await;
    assert_eq!(data["addEmail"]["user"]["pendingEmail"], "alice@example.com");
    let pending = "SELECT COUNT(*) FROM email_outbox WHERE status = 'PENDING' AND last_error LIKE 'CONNECTION%'";
    assert_eq!(count(&app, pending).await, 1);
}

#[tokio::test]
async fn export_shows_the_address_and_erasure_removes_codes_and_messages() {
    let sink = SmtpSink::start().await;
    let app = app_with(&sink, |c| c.email_code_resend_secs = 0).await;
    let token = member_with_email(&app, &sink, 1, "alice@example.com").await;
    add(&app, &token, "next@example.com").await;
    let code = code_in(&sink.wait_for(2).await[1].body());
    let id = count(&app, "SELECT id FROM users WHERE email = 'alice@example.com'").await;
    let archive = ecer_gateway::services::export::archive(&app.state.db, app.state.media.sealer(), id).await.unwrap();
    assert_eq!(archive["profile"]["email"], "alice@example.com");
    assert!(!archive["profile"]["email_verified_at"].is_null());
    assert_eq!(archive["profile"]["pending_email"], "next@example.com");
    let messages = archive["emailMessages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert!(messages.iter().all(|m| m.get("body_sealed").is_none() && m.get("address_sealed").is_none()));
    // The SMS to the member's number too (the registration code's), without number, text or code.
    let sms = archive["smsMessages"].as_array().unwrap();
    assert_eq!(sms.len(), 1, "{sms:?}");
    assert_eq!(sms[0]["status"], "SENT");
    assert!(sms[0].get("body_sealed").is_none() && sms[0].get("phone_sealed").is_none());
    let text = archive.to_string();
    assert!(!text.contains(&code) && !text.contains("code_hash"), "codes are never exported");

    let delete = "mutation($p: String!) { deleteAccount(input: { password: $p }) { deleted } }";
    assert_eq!(app.gql(Some(&token), delete, json!({ "p": "correct horse" })).await["deleteAccount"]["deleted"], true);
    assert_eq!(count(&app, &format!("SELECT COUNT(*) FROM email_codes WHERE user_id = {id}")).await, 0);
    assert_eq!(count(&app, &format!("SELECT COUNT(*) FROM email_outbox WHERE user_id = {id}")).await, 0);
    let left = format!(
        "SELECT COUNT(*) FROM users WHERE id = {id} AND (email IS NOT NULL OR pending_email IS NOT NULL OR email_verified_at IS NOT NULL)"
    );
    assert_eq!(count(&app, &left).await, 0);
    // The address is free again.
    let other = member_with_email(&app, &sink, 2, "alice@example.com").await;
    assert_eq!(app.gql(Some(&other), ME, json!({})).await["me"]["email"], "alice@example.com");
}

#[tokio::test]
async fn a_staff_broadcast_reaches_verified_emails_and_admins_see_its_delivery() {
    let sink = SmtpSink::start().await;
    let app = app_with(&sink, |c| c.sms_outbox_poll_ms = 20).await;
    let (admin, _) = app.user_with_role(&phone(1), "ADMIN").await;
    let member = member_with_email(&app, &sink, 2, "member@example.com").await;
    let member_id = app.gql(Some(&member), ME, json!({})).await["me"]["id"].clone();
    let before = sink.messages().len();
    let send = "mutation($b: String!, $u: [ID!]) { sendSecurityNotice(input: { body: $b, userIds: $u }) { broadcast { id } } }";
    let sent = app.gql(Some(&admin), send, json!({ "b": "安全事件: rotate your keys.", "u": [member_id] })).await;
    let mail = sink.wait_for(before + 1).await;
    assert!(mail[before].body().contains("安全事件: rotate your keys."), "{}", mail[before].body());

    let progress = "query($id: ID!) { noticeBroadcast(id: $id) { sms { sent } email { pending sent failed } } }";
    let vars = json!({ "id": sent["sendSecurityNotice"]["broadcast"]["id"] });
    let mut seen = Value::Null;
    for _ in 0..200 {
        seen = app.gql(Some(&admin), progress, vars.clone()).await;
        if seen["noticeBroadcast"]["email"]["sent"] == 1 && seen["noticeBroadcast"]["sms"]["sent"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(
        seen["noticeBroadcast"],
        json!({ "sms": { "sent": 1 }, "email": { "pending": 0, "sent": 1, "failed": 0 } }),
        "{seen}"
    );
}
