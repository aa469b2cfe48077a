//! Developer apps (issue 16, item 1, the registration half): members whose real name was checked
//! register third-party apps; an admin reviews each, on the record; the developer sees theirs, with
//! the review; exported and erased with the developer.

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::common::{TestApp, phone};

const REGISTER: &str = "mutation($input: RegisterAppInput!) {
    registerApp(input: $input) { app { clientId name status confidential redirectUris developer { nickname } } clientSecret } }";
const REVIEW: &str = "mutation($c: String!, $ok: Boolean!, $r: String!) {
    reviewApp(input: { clientId: $c, approve: $ok, reason: $r }) { app { status reviewReason reviewedAt } } }";
const MINE: &str = "{ me { developerApps { clientId name status reviewReason } } }";

fn app_input(name: &str, redirects: Value, confidential: bool) -> Value {
    json!({ "input": {
        "name": name,
        "description": "Syncs buyers' inquiries from the community into our CRM.",
        "homepageUrl": "https://crm.example",
        "redirectUris": redirects,
        "confidential": confidential,
    } })
}

/// A member whose real-name verification a reviewer approved.
pub(crate) async fn verified_member(app: &TestApp, admin: &str, n: u32) -> (String, String) {
    let (token, id) = app.register(&phone(n), "developer").await;
    let (status, body) = crate::trust::submit(app, &token, crate::trust::ID_NUMBER).await;
    assert_eq!(status, 200, "{body}");
    let verification = body["data"]["submitIdentityVerification"]["verification"]["id"].clone();
    let reviewer = crate::trust::reviewer(app, admin, n + 100).await;
    let review = "mutation($id: ID!) { reviewIdentityVerification(input: { verificationId: $id, decision: APPROVE }) { verification { status } } }";
    app.gql(Some(&reviewer), review, json!({ "id": verification })).await;
    (token, id)
}

#[tokio::test]
async fn verified_members_register_apps_that_an_admin_reviews_on_the_record() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (member, _) = app.register(&phone(1), "member").await;
    let redirects = json!(["https://crm.example/oauth/callback", "com.crm.app:/oauth"]);

    // Without a checked real name: refused, with the code that says what to do.
    let (code, _) = app.gql_err(Some(&member), REGISTER, app_input("CRM", redirects.clone(), true)).await;
    assert_eq!(code, "VERIFICATION_REQUIRED");

    let (dev, _) = verified_member(&app, &admin, 2).await;
    // Redirect URIs as OAuth 2.1 allows them, each named when refused.
    for (bad, at) in [
        (json!(["https://crm.example/cb", "http://crm.example/cb"]), "input.redirectUris[1]"),
        (json!(["https://crm.example/cb#x"]), "input.redirectUris[0]"),
        (json!(["https://crm.example/cb", "https://crm.example/cb"]), "input.redirectUris[1]"),
        (json!([]), "input.redirectUris"),
    ] {
        let (_, body) = app.gql_raw(Some(&dev), REGISTER, app_input("CRM", bad, true)).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], at, "{body}");
    }

    // A confidential app gets its secret once; only its hash is kept.
    let data = app.gql(Some(&dev), REGISTER, app_input("Partner CRM", redirects.clone(), true)).await;
    let registered = &data["registerApp"];
    assert_eq!(registered["app"]["status"], "PENDING");
    assert_eq!(registered["app"]["redirectUris"], redirects);
    assert_eq!(registered["app"]["developer"]["nickname"], "developer");
    let client_id = registered["app"]["clientId"].as_str().unwrap().to_string();
    let secret = registered["clientSecret"].as_str().unwrap().to_string();
    assert_eq!(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&secret).unwrap().len(), 32);
    let stored = crate::trust::scalar_text(
        &app,
        &format!("SELECT secret_hash FROM developer_apps WHERE client_id = '{client_id}'"),
    )
    .await;
    assert_eq!(stored, hex(&sha2::Sha256::digest(secret.as_bytes())));
    assert!(!stored.contains(&secret));
    // A public app (mobile, single page) has none.
    let public = app.gql(Some(&dev), REGISTER, app_input("CRM mobile", json!(["com.crm.app:/oauth"]), false)).await;
    assert_eq!(public["registerApp"]["clientSecret"], Value::Null);

    // The admins' queue; only admins review, never their own app; the review is on the record.
    let queue = "query($s: AppStatus) { appReviewQueue(status: $s) { edges { node { clientId name } } } }";
    let pending = app.gql(Some(&admin), queue, json!({})).await;
    assert_eq!(pending["appReviewQueue"]["edges"].as_array().unwrap().len(), 2);
    let (code, _) = app.gql_err(Some(&dev), REVIEW, json!({ "c": client_id, "ok": true, "r": "mine" })).await;
    assert_eq!(code, "FORBIDDEN");
    let (code, _) = app.gql_err(Some(&admin), REVIEW, json!({ "c": client_id, "ok": true, "r": "" })).await;
    assert_eq!(code, "BAD_USER_INPUT", "a review says why");
    let reviewed =
        app.gql(Some(&admin), REVIEW, json!({ "c": client_id, "ok": true, "r": "clear purpose, known company" })).await;
    assert_eq!(reviewed["reviewApp"]["app"]["status"], "APPROVED");
    let admins_own =
        app.gql(Some(&admin), REGISTER, app_input("Staff tool", json!(["https://staff.example/cb"]), true)).await;
    let own_id = admins_own["registerApp"]["app"]["clientId"].clone();
    let (code, _) = app.gql_err(Some(&admin), REVIEW, json!({ "c": own_id, "ok": true, "r": "mine" })).await;
    assert_eq!(code, "FORBIDDEN", "nobody reviews an app of their own");
    let approved = app.gql(Some(&admin), queue, json!({ "s": "APPROVED" })).await;
    assert_eq!(approved["appReviewQueue"]["edges"][0]["node"]["clientId"], client_id.as_str());
    let log =
        app.gql(Some(&admin), "{ auditLog(first: 5) { edges { node { action target reason } } } }", json!({})).await;
    let entry = &log["auditLog"]["edges"][0]["node"];
    assert_eq!(entry["action"], "REVIEW_APP");
    assert_eq!(entry["target"], format!("App:{client_id}").as_str());
    assert_eq!(entry["reason"], "APPROVED: clear purpose, known company");

    // The developer sees their apps and the review; nobody else does.
    let mine = app.gql(Some(&dev), MINE, json!({})).await;
    let apps = mine["me"]["developerApps"].as_array().unwrap();
    assert_eq!(apps.len(), 2);
    assert_eq!(apps[1]["status"], "APPROVED");
    assert_eq!(apps[1]["reviewReason"], "clear purpose, known company");

    // In the developer's export (without the secret's hash), and gone with their account.
    let request = "mutation { requestDataExport(input: { format: JSON }) { export { downloadUrl } } }";
    let export = app.gql(Some(&dev), request, json!({})).await;
    let url = export["requestDataExport"]["export"]["downloadUrl"].as_str().unwrap().to_string();
    let archive: Value = app.http.get(app.url(&url)).bearer_auth(&dev).send().await.unwrap().json().await.unwrap();
    let exported = archive["developerApps"].as_array().unwrap();
    assert_eq!(exported.len(), 2);
    assert!(exported.iter().all(|a| a.get("secret_hash").is_none()));
    let del = "mutation { deleteAccount(input: { password: \"correct horse\" }) { deleted } }";
    app.gql(Some(&dev), del, json!({})).await;
    assert_eq!(
        crate::trust::scalar(
            &app,
            "SELECT COUNT(*) FROM developer_apps WHERE name LIKE 'CRM%' OR name = 'Partner CRM'"
        )
        .await,
        0
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn the_twenty_app_cap_holds_under_concurrent_registrations() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (dev, _) = verified_member(&app, &admin, 2).await;
    for i in 0..15 {
        app.gql(Some(&dev), REGISTER, app_input(&format!("CRM {i}"), json!(["https://crm.example/cb"]), false)).await;
    }
    // Ten at once for the last five places: without the lock on the member's row, several would count
    // the same number of apps and all insert.
    let racing = (0..10).map(|i| {
        let input = app_input(&format!("Racer {i}"), json!(["https://crm.example/cb"]), false);
        let dev = dev.clone();
        let app = &app;
        async move { app.gql_raw(Some(&dev), REGISTER, input).await.1 }
    });
    let answers = futures_util::future::join_all(racing).await;
    let codes: Vec<&str> =
        answers.iter().map(|a| a["errors"][0]["extensions"]["code"].as_str().unwrap_or("ok")).collect();
    assert_eq!(codes.iter().filter(|c| **c == "ok").count(), 5, "{answers:?}");
    assert_eq!(
        codes.iter().filter(|c| **c == "BAD_USER_INPUT").count(),
        5,
        "refused as input, never INTERNAL: {answers:?}"
    );
    let mine = app.gql(Some(&dev), MINE, json!({})).await;
    let apps = mine["me"]["developerApps"].as_array().unwrap();
    assert_eq!(apps.len(), 20, "{mine}");

    // A deleted app leaves the list but still counts for 30 days: deleting does not reopen the queue.
    let delete = "mutation($c: String!) { deleteApp(input: { clientId: $c }) { deletedClientId } }";
    app.gql(Some(&dev), delete, json!({ "c": apps[0]["clientId"] })).await;
    let mine = app.gql(Some(&dev), MINE, json!({})).await;
    assert_eq!(mine["me"]["developerApps"].as_array().unwrap().len(), 19, "{mine}");
    let again = app_input("One more", json!(["https://crm.example/cb"]), false);
    let (code, _) = app.gql_err(Some(&dev), REGISTER, again).await;
    assert_eq!(code, "BAD_USER_INPUT");
}
