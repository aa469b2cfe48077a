//! Shared by the test crates that drive a gateway over HTTP (tests/api, tests/chaos, tests/fuzz):
//! signing up needs an SMS code, which the `log` provider shows on the development route.

use serde_json::{Value, json};

/// For tests that run the real binary: asks for a code over GraphQL at `base` (`http://host:port`),
/// then reads it from the development route `/dev/sms-codes` (the `log` provider's ring).
pub async fn dev_code(http: &reqwest::Client, base: &str, phone: &str, purpose: &str) -> String {
    let body: Value = http
        .post(format!("{base}/graphql"))
        .json(&json!({
            "query": "mutation($input: RequestPhoneCodeInput!) { requestPhoneCode(input: $input) { sent } }",
            "variables": { "input": { "phone": phone, "purpose": purpose } },
        }))
        .send()
        .await
        .expect("requestPhoneCode")
        .json()
        .await
        .expect("json body");
    assert_eq!(body["data"]["requestPhoneCode"]["sent"], true, "requestPhoneCode: {body}");
    let sent: Value = http
        .get(format!(
            "{base}/dev/sms-codes?phone={}",
            url::form_urlencoded::byte_serialize(phone.as_bytes()).collect::<String>()
        ))
        .send()
        .await
        .expect("GET /dev/sms-codes")
        .json()
        .await
        .expect("json body");
    sent["code"].as_str().unwrap_or_else(|| panic!("no code for {phone}: {sent}")).to_string()
}
