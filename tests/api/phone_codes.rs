//! SMS codes through the API, abuse first: guessing, resend flooding and the daily caps, replay,
//! expiry, and the enumeration answer; then what the codes unlock (sign-up, sign-in by code, password
//! reset) and password change with its lock. The `log` provider's ring stands in for the phone.

use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::common::{TestApp, phone};

const ASK: &str =
    "mutation($input: RequestPhoneCodeInput!) { requestPhoneCode(input: $input) { sent expiresIn resendAfter } }";
const REGISTER: &str = "mutation($input: RegisterInput!) { register(input: $input) { token user { id } } }";
const LOGIN: &str = "mutation($input: LoginInput!) { login(input: $input) { token } }";
const LOGIN_WITH_CODE: &str =
    "mutation($input: LoginWithCodeInput!) { loginWithCode(input: $input) { token user { id } } }";
const RESET: &str = "mutation($input: ResetPasswordInput!) { resetPassword(input: $input) { reset } }";
const CHANGE: &str = "mutation($input: ChangePasswordInput!) { changePassword(input: $input) { changed } }";
const ME: &str = "{ me { id } }";

fn ask(phone: &str, purpose: &str) -> Value {
    json!({ "input": { "phone": phone, "purpose": purpose } })
}

fn register_input(phone: &str, code: &str) -> Value {
    json!({ "input": { "phone": phone, "code": code, "password": "correct horse", "nickname": "n" } })
}

/// A code that is not `code`.
fn other_than(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let row = app
        .state
        .db
        .query_one_raw(Statement::from_string(app.state.db.get_database_backend(), sql.to_string()))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

async fn signed_in(app: &TestApp, token: &str) -> bool {
    !app.gql(Some(token), ME, json!({})).await["me"].is_null()
}

#[tokio::test]
async fn five_wrong_tries_kill_a_code_even_for_the_right_one_after() {
    let app = TestApp::spawn().await;
    let code = app.phone_code(&phone(1), "REGISTER").await;
    for _ in 0..5 {
        let (c, err) = app.gql_err(None, REGISTER, register_input(&phone(1), &other_than(&code))).await;
        assert_eq!(c, "INVALID_CODE", "{err}");
        assert_eq!(err["extensions"]["field"], "input.code");
    }
    let (c, _) = app.gql_err(None, REGISTER, register_input(&phone(1), &code)).await;
    assert_eq!(c, "INVALID_CODE", "the code is dead after five wrong tries");
    // A new code works; the code is stored only as a keyed hash.
    let fresh = app.phone_code(&phone(1), "REGISTER").await;
    let stored = count(&app, &format!("SELECT COUNT(*) FROM phone_codes WHERE code_hash LIKE '%{fresh}%'")).await;
    assert_eq!(stored, 0, "no code in the clear");
    app.gql(None, REGISTER, register_input(&phone(1), &fresh)).await;
}

#[tokio::test]
async fn a_used_code_cannot_be_replayed_nor_used_for_another_purpose() {
    let app = TestApp::spawn().await;
    let code = app.phone_code(&phone(1), "REGISTER").await;
    // A REGISTER code does not sign in.
    let (c, _) =
        app.gql_err(None, LOGIN_WITH_CODE, json!({ "input": { "phone": phone(1), "code": code.clone() } })).await;
    assert_eq!(c, "INVALID_CODE");
    app.gql(None, REGISTER, register_input(&phone(1), &code)).await;
    // Replayed: the code is spent (not CONFLICT: nothing is said about the number).
    let (c, _) = app.gql_err(None, REGISTER, register_input(&phone(1), &code)).await;
    assert_eq!(c, "INVALID_CODE");

    let login = app.phone_code(&phone(1), "LOGIN").await;
    let input = json!({ "input": { "phone": phone(1), "code": login } });
    let token =
        app.gql(None, LOGIN_WITH_CODE, input.clone()).await["loginWithCode"]["token"].as_str().unwrap().to_string();
    assert!(signed_in(&app, &token).await);
    let (c, _) = app.gql_err(None, LOGIN_WITH_CODE, input).await;
    assert_eq!(c, "INVALID_CODE", "a sign-in code works once");

    // A newer code replaces the older one for the same purpose.
    let first = app.phone_code(&phone(1), "LOGIN").await;
    let second = app.phone_code(&phone(1), "LOGIN").await;
    if first != second {
        let (c, _) = app.gql_err(None, LOGIN_WITH_CODE, json!({ "input": { "phone": phone(1), "code": first } })).await;
        assert_eq!(c, "INVALID_CODE", "replaced");
    }
    app.gql(None, LOGIN_WITH_CODE, json!({ "input": { "phone": phone(1), "code": second } })).await;
}

#[tokio::test]
async fn the_answer_is_the_same_for_registered_and_unknown_numbers() {
    let app = TestApp::spawn().await;
    app.register(&phone(1), "member").await;
    for purpose in ["REGISTER", "LOGIN", "RESET_PASSWORD"] {
        let known = app.gql_raw(None, ASK, ask(&phone(1), purpose)).await;
        let unknown = app.gql_raw(None, ASK, ask(&phone(2), purpose)).await;
        assert_eq!(known, unknown, "{purpose}");
        assert_eq!(known.1["data"]["requestPhoneCode"]["sent"], true);
        // Both numbers got a code: the same work was done for each.
        assert!(app.sent_code(&phone(2)).is_some());
    }
    // Unproven attempts are refused alike, whoever the number belongs to.
    let known = app.gql_err(None, REGISTER, register_input(&phone(1), "123456")).await;
    let unknown = app.gql_err(None, REGISTER, register_input(&phone(3), "123456")).await;
    assert_eq!((known.0.as_str(), &known.1["message"]), ("INVALID_CODE", &unknown.1["message"]));
    for op in [LOGIN_WITH_CODE, RESET] {
        let vars = |p: String| {
            let mut v = json!({ "input": { "phone": p, "code": "123456" } });
            if op == RESET {
                v["input"]["newPassword"] = json!("new password");
            }
            v
        };
        let known = app.gql_err(None, op, vars(phone(1))).await;
        let unknown = app.gql_err(None, op, vars(phone(4))).await;
        assert_eq!(known.0, "INVALID_CODE");
        assert_eq!(known.1["message"], unknown.1["message"]);
        assert_eq!(known.1["extensions"], unknown.1["extensions"]);
    }
    // A proven holder of an unknown number learns there is no account.
    let code = app.phone_code(&phone(5), "LOGIN").await;
    let (c, _) = app.gql_err(None, LOGIN_WITH_CODE, json!({ "input": { "phone": phone(5), "code": code } })).await;
    assert_eq!(c, "NOT_FOUND");
}

#[tokio::test]
async fn resends_wait_sixty_seconds() {
    let app = TestApp::spawn_with(|c| c.phone_code_resend_secs = 60).await;
    app.gql(None, ASK, ask(&phone(1), "REGISTER")).await;
    let first = app.sent_code(&phone(1)).unwrap();
    // Any purpose, any spelling of the number: the same phone.
    for (number, purpose) in [(phone(1), "REGISTER"), ("13800000001".to_string(), "LOGIN")] {
        let (status, body) = app.gql_raw(None, ASK, ask(&number, purpose)).await;
        let err = &body["errors"][0];
        assert_eq!(err["extensions"]["code"], "RATE_LIMITED", "{body}");
        let wait = err["extensions"]["retryAfter"].as_u64().unwrap();
        assert!((55..=60).contains(&wait), "{wait}");
        assert_eq!(status, 200, "a field error, not a refused request");
    }
    assert_eq!(app.sent_code(&phone(1)).unwrap(), first, "nothing more was sent");
    // Another number is not held up.
    app.gql(None, ASK, ask(&phone(2), "REGISTER")).await;
    // Once the interval has passed (moved back in the database), the number gets a new code.
    use sea_orm::{EntityTrait, sea_query::Expr};
    entity::phone_codes::Entity::update_many()
        .col_expr(
            entity::phone_codes::Column::CreatedAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::seconds(61)),
        )
        .exec(&app.state.db)
        .await
        .unwrap();
    app.gql(None, ASK, ask(&phone(1), "REGISTER")).await;
}

#[tokio::test]
async fn daily_caps_per_number_per_address_per_country_and_in_all() {
    let app = TestApp::spawn_with(|c| {
        c.phone_code_daily_per_number = 2;
        c.phone_code_daily_per_ip = 3;
    })
    .await;
    let refused = |body: &Value| {
        assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED", "{body}");
        let wait = body["errors"][0]["extensions"]["retryAfter"].as_u64().unwrap();
        assert!(wait > 86_000 && wait <= 86_400, "until the oldest code leaves the 24 h window: {wait}");
    };
    app.gql(None, ASK, ask(&phone(1), "REGISTER")).await;
    app.gql(None, ASK, ask(&phone(1), "LOGIN")).await;
    refused(&app.gql_raw(None, ASK, ask(&phone(1), "RESET_PASSWORD")).await.1);
    app.gql(None, ASK, ask(&phone(2), "REGISTER")).await;
    // This address has had 3 codes today.
    refused(&app.gql_raw(None, ASK, ask(&phone(3), "REGISTER")).await.1);
    assert!(app.sent_code(&phone(3)).is_none());

    // A foreign country calling code has a cap of its own (SMS pumping goes abroad); home numbers
    // (+86 by default) are bounded by the global budget only.
    let abroad = TestApp::spawn_with(|c| c.phone_code_daily_per_country = 1).await;
    abroad.gql(None, ASK, ask("+85291234567", "REGISTER")).await;
    refused(&abroad.gql_raw(None, ASK, ask("+85291234568", "REGISTER")).await.1);
    abroad.gql(None, ASK, ask("+14155552671", "REGISTER")).await;
    abroad.gql(None, ASK, ask(&phone(1), "REGISTER")).await;
    abroad.gql(None, ASK, ask(&phone(2), "REGISTER")).await;

    let budget = TestApp::spawn_with(|c| c.phone_code_daily_global = 2).await;
    budget.gql(None, ASK, ask(&phone(1), "REGISTER")).await;
    budget.gql(None, ASK, ask(&phone(2), "REGISTER")).await;
    refused(&budget.gql_raw(None, ASK, ask(&phone(3), "REGISTER")).await.1);
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let app = TestApp::spawn_with(|c| c.phone_code_ttl_secs = 1).await;
    let answer = app.gql(None, ASK, ask(&phone(1), "REGISTER")).await;
    assert_eq!(answer["requestPhoneCode"]["expiresIn"], 1);
    let code = app.sent_code(&phone(1)).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let (c, _) = app.gql_err(None, REGISTER, register_input(&phone(1), &code)).await;
    assert_eq!(c, "INVALID_CODE");
}

#[tokio::test]
async fn reset_password_sets_it_and_ends_every_session() {
    let app = TestApp::spawn().await;
    let (first, _) = app.register(&phone(1), "forgetful").await;
    let second = app.gql(None, LOGIN, json!({ "input": { "phone": phone(1), "password": "correct horse" } })).await
        ["login"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let code = app.phone_code(&phone(1), "RESET_PASSWORD").await;
    let short = json!({ "input": { "phone": phone(1), "code": code.clone(), "newPassword": "short" } });
    let (c, err) = app.gql_err(None, RESET, short).await;
    assert_eq!((c.as_str(), &err["extensions"]["field"]), ("BAD_USER_INPUT", &json!("input.newPassword")));
    let input = json!({ "input": { "phone": phone(1), "code": code, "newPassword": "a new horse" } });
    assert_eq!(app.gql(None, RESET, input.clone()).await["resetPassword"]["reset"], true);
    assert!(!signed_in(&app, &first).await && !signed_in(&app, &second).await, "every session ended");
    let (c, _) = app.gql_err(None, LOGIN, json!({ "input": { "phone": phone(1), "password": "correct horse" } })).await;
    assert_eq!(c, "UNAUTHENTICATED", "the old password is gone");
    app.gql(None, LOGIN, json!({ "input": { "phone": phone(1), "password": "a new horse" } })).await;
    assert_eq!(app.gql_err(None, RESET, input).await.0, "INVALID_CODE", "no replay");
    let notices = count(&app, "SELECT COUNT(*) FROM notifications WHERE kind = 'SECURITY_NOTICE'").await;
    assert_eq!(notices, 1);
}

#[tokio::test]
async fn change_password_ends_other_sessions_and_wrong_ones_count_toward_the_lock() {
    let app = TestApp::spawn().await;
    let (token, _) = app.register(&phone(1), "careful").await;
    let login = |password: &'static str| json!({ "input": { "phone": phone(1), "password": password } });
    let other = app.gql(None, LOGIN, login("correct horse")).await["login"]["token"].as_str().unwrap().to_string();
    let change = |current: &str, new: &str| json!({ "input": { "currentPassword": current, "newPassword": new } });

    let (c, _) = app.gql_err(None, CHANGE, change("correct horse", "a new horse")).await;
    assert_eq!(c, "UNAUTHENTICATED");
    assert_eq!(
        app.gql(Some(&token), CHANGE, change("correct horse", "a new horse")).await["changePassword"]["changed"],
        true
    );
    assert!(signed_in(&app, &token).await, "this session stays");
    assert!(!signed_in(&app, &other).await, "the other one ended");
    assert_eq!(app.gql_err(None, LOGIN, login("correct horse")).await.0, "UNAUTHENTICATED");
    app.gql(None, LOGIN, login("a new horse")).await;
    let notices = count(&app, "SELECT COUNT(*) FROM notifications WHERE kind = 'SECURITY_NOTICE'").await;
    assert_eq!(notices, 1);

    // Wrong current passwords: BAD_USER_INPUT, counted with sign-in failures; the fifth locks the
    // number for changePassword and login alike, even with the right password.
    for _ in 0..5 {
        let (c, err) = app.gql_err(Some(&token), CHANGE, change("wrong guess", "whatever new")).await;
        assert_eq!(c, "BAD_USER_INPUT", "{err}");
        assert_eq!(err["extensions"]["field"], "input.currentPassword");
    }
    let (c, err) = app.gql_err(Some(&token), CHANGE, change("a new horse", "whatever new")).await;
    assert_eq!(c, "ACCOUNT_LOCKED", "{err}");
    assert!(err["extensions"]["retryAfter"].as_u64().unwrap() > 0);
    assert_eq!(app.gql_err(None, LOGIN, login("a new horse")).await.0, "ACCOUNT_LOCKED");
}

#[tokio::test]
async fn the_log_provider_is_development_only() {
    use ecer_gateway::config::Config;
    use ecer_gateway::sms::ProviderKind;
    let mut config = Config::defaults();
    config.session_cookie_secure = true;
    let refused = config.validate().unwrap_err();
    assert!(refused.contains("SMS_PROVIDER"), "{refused}");
    config.sms_provider = ProviderKind::Disabled;
    // Email has the same rule (tests/api/email.rs): an explicit choice with production settings.
    config.smtp_url = Some(ecer_gateway::config::Secret::new("disabled"));
    config.validate().unwrap();

    // The development route shows the last code; it is not served in trusted-documents mode.
    let app = TestApp::spawn().await;
    let code = app.phone_code(&phone(1), "LOGIN").await;
    let shown: Value = app
        .http
        .get(app.url(&format!("/dev/sms-codes?phone={}", phone(1).replace('+', "%2B"))))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((shown["code"].as_str(), shown["purpose"].as_str()), (Some(code.as_str()), Some("LOGIN")));
    // Only to this machine: a request a proxy forwarded (from anywhere) does not see it.
    for header in ["x-forwarded-for", "forwarded", "x-real-ip"] {
        let resp = app
            .http
            .get(app.url(&format!("/dev/sms-codes?phone={}", phone(1).replace('+', "%2B"))))
            .header(header, "203.0.113.7")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{header}");
    }
    let trusted = app.another_instance(|c| c.trusted_documents = true).await;
    let resp = trusted.http.get(trusted.url("/dev/sms-codes?phone=13800000001")).send().await.unwrap();
    assert_eq!(resp.status(), 404);

    // Without a provider nothing is sent, nothing is stored, and the client is told.
    let off = TestApp::spawn_with(|c| c.sms_provider = ProviderKind::Disabled).await;
    let (c, _) = off.gql_err(None, ASK, ask(&phone(1), "REGISTER")).await;
    assert_eq!(c, "SMS_UNAVAILABLE");
    assert_eq!(count(&off, "SELECT COUNT(*) FROM phone_codes").await, 0);
    let resp = off.http.get(off.url("/dev/sms-codes?phone=13800000001")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

const CHANGE_PHONE: &str = "mutation($input: ChangePhoneInput!) { changePhone(input: $input) { me { phone } } }";

/// The notices the `log` provider delivered to `phone`, waiting up to 10 s for the outbox's sender.
async fn notices_to(app: &TestApp, phone: &str, at_least: usize) -> Vec<String> {
    let e164 = ecer_gateway::services::validate::phone("phone", phone).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let notices: Vec<String> = app
            .state
            .sms
            .sent_to(&e164)
            .into_iter()
            .filter_map(|s| match s.content {
                ecer_gateway::sms::Content::Notice { notice } => Some(notice),
                _ => None,
            })
            .collect();
        if notices.len() >= at_least || std::time::Instant::now() > deadline {
            return notices;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn changing_phone_needs_a_code_to_the_new_number_and_the_password_and_tells_the_old_one() {
    let app = TestApp::spawn_with(|c| c.sms_outbox_poll_ms = 50).await;
    let (token, _) = app.register(&phone(1), "a").await;
    app.register(&phone(3), "b").await;

    // Nobody signed out can make a phone buzz for this purpose.
    let (c, _) = app.gql_err(None, ASK, ask(&phone(2), "CHANGE_PHONE")).await;
    assert_eq!(c, "UNAUTHENTICATED");

    let input = |code: &str, password: &str| json!({ "input": { "newPhone": phone(2), "code": code, "currentPassword": password } });
    app.gql(Some(&token), ASK, ask(&phone(2), "CHANGE_PHONE")).await;
    let code = app.sent_code(&phone(2)).unwrap();
    let (c, _) = app.gql_err(Some(&token), CHANGE_PHONE, input(&other_than(&code), "correct horse")).await;
    assert_eq!(c, "INVALID_CODE");
    // A code for another purpose does not move the account.
    let login_code = app.phone_code(&phone(2), "LOGIN").await;
    let (c, _) = app.gql_err(Some(&token), CHANGE_PHONE, input(&login_code, "correct horse")).await;
    assert_eq!(c, "INVALID_CODE");
    // The session alone is not enough: the password is asked too, and a wrong one is refused.
    let (c, err) = app.gql_err(Some(&token), CHANGE_PHONE, input(&code, "wrong horse")).await;
    assert_eq!(c, "BAD_USER_INPUT", "{err}");
    assert_eq!(err["extensions"]["field"], "input.currentPassword");

    app.gql(Some(&token), ASK, ask(&phone(2), "CHANGE_PHONE")).await;
    let code = app.sent_code(&phone(2)).unwrap();
    let moved = app.gql(Some(&token), CHANGE_PHONE, input(&code, "correct horse")).await;
    assert_eq!(moved["changePhone"]["me"]["phone"], phone(2));
    // Asking again for the number it has now is a mistake the member is told of.
    let (c, err) = app.gql_err(Some(&token), CHANGE_PHONE, input(&code, "correct horse")).await;
    assert_eq!((c.as_str(), &err["extensions"]["field"]), ("BAD_USER_INPUT", &json!("input.newPhone")));

    // The new number signs in; the old one no longer does.
    let new = json!({ "input": { "phone": phone(2), "password": "correct horse" } });
    assert!(app.gql(None, LOGIN, new).await["login"]["token"].is_string());
    let old = json!({ "input": { "phone": phone(1), "password": "correct horse" } });
    assert_eq!(app.gql_err(None, LOGIN, old).await.0, "UNAUTHENTICATED");

    // The old number is told by SMS, the new one too, and the member in-site.
    let told = notices_to(&app, &phone(1), 1).await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].contains("phone number was changed"), "{told:?}");
    assert!(!told[0].contains(&phone(2)), "the new number is masked: {told:?}");
    assert!(notices_to(&app, &phone(2), 1).await.iter().any(|n| n.contains("phone number was changed")));
    let inbox = app.gql(Some(&token), "{ notifications(first: 5) { nodes { kind body } } }", json!({})).await;
    assert!(
        inbox["notifications"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "SECURITY_NOTICE" && n["body"].as_str().unwrap().contains("phone number was changed")),
        "{inbox}"
    );

    // A number another account uses is a conflict, told only to the holder of its code.
    app.gql(Some(&token), ASK, ask(&phone(3), "CHANGE_PHONE")).await;
    let code = app.sent_code(&phone(3)).unwrap();
    let taken = json!({ "input": { "newPhone": phone(3), "code": code, "currentPassword": "correct horse" } });
    assert_eq!(app.gql_err(Some(&token), CHANGE_PHONE, taken).await.0, "CONFLICT");
}

#[tokio::test]
async fn security_notices_reach_phones_and_admins_follow_the_delivery() {
    let app = TestApp::spawn_with(|c| c.sms_outbox_poll_ms = 50).await;
    let (admin, _) = app.user_with_role(&phone(1), "ADMIN").await;
    let (member, member_id) = app.register(&phone(2), "m").await;
    let send = "mutation($b: String!, $u: [ID!]) { sendSecurityNotice(input: { body: $b, userIds: $u }) { recipients broadcast { id recipients finishedAt } } }";
    let sent =
        app.gql(Some(&admin), send, json!({ "b": "数据泄露通知: reset your password.", "u": [member_id] })).await;
    assert_eq!(sent["sendSecurityNotice"]["recipients"], 1);
    let broadcast = sent["sendSecurityNotice"]["broadcast"].clone();
    assert_eq!(broadcast["recipients"], 1);
    assert!(broadcast["finishedAt"].is_string());
    assert_eq!(notices_to(&app, &phone(2), 1).await, vec!["数据泄露通知: reset your password.".to_string()]);

    let progress = "query($id: ID!) { noticeBroadcast(id: $id) { recipients sms { pending sent failed } } }";
    let vars = json!({ "id": broadcast["id"] });
    let seen = app.gql(Some(&admin), progress, vars.clone()).await;
    assert_eq!(seen["noticeBroadcast"]["sms"], json!({ "pending": 0, "sent": 1, "failed": 0 }), "{seen}");
    assert_eq!(app.gql_err(Some(&member), progress, vars).await.0, "FORBIDDEN");
}
