//! Alibaba Cloud SMS (`SMS_PROVIDER=aliyun`): the `SendSms` action of dysmsapi (RPC style, API
//! version 2017-05-25), signed with the RPC signature version 1.0 (HMAC-SHA1) as Alibaba Cloud's
//! "Signature mechanism" page describes it:
//!
//! 1. every parameter except `Signature`, sorted by name, name and value percent-encoded
//!    ([`percent_encode`]: RFC 3986 unreserved characters kept, everything else `%XY` in upper-case hex
//!    over UTF-8, a space as `%20`), joined as `name=value` with `&`: the canonicalized query string;
//! 2. `StringToSign = METHOD & percent_encode("/") & percent_encode(canonicalized query string)`;
//! 3. `Signature = Base64(HMAC-SHA1(AccessKeySecret + "&", StringToSign))`.
//!
//! The request is a POST (over hyper and rustls) of those parameters (and `Signature`) as a form body, so the number and the
//! code stay out of URLs that proxies log. The answer's `Code` is `OK` or an error code; a few mean
//! "later" (flow control, throttling, the provider's own failures), the rest need a person
//! ([`SendError`]); the outbox ([`crate::services::sms_outbox`]) retries the first kind.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{KeyInit as _, Mac as _};

use super::{Content, Provider, SendError, SmsMessage};
use crate::config::Secret;

/// The public endpoint (`ALIYUN_SMS_ENDPOINT`'s default).
pub const DEFAULT_ENDPOINT: &str = "https://dysmsapi.aliyuncs.com";
/// The dysmsapi version this client speaks.
pub const API_VERSION: &str = "2017-05-25";
/// A whole request, connection included: a code request waits for it, so it must be short.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The most of an answer read (a real one is a few hundred bytes).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Answer codes that mean "try again later" rather than "a person must fix something".
const RETRYABLE_CODES: &[&str] =
    &["isv.BUSINESS_LIMIT_CONTROL", "isp.SYSTEM_ERROR", "isp.SYSTEM_BUSY", "InternalError", "ServiceUnavailable"];

/// The settings of the provider, validated at start-up ([`crate::config::Config::validate`]).
#[derive(Debug, Clone)]
pub struct Settings {
    pub endpoint: String,
    pub access_key_id: String,
    pub access_key_secret: Secret,
    pub sign_name: String,
    pub template_code: String,
    /// The template notices go out under (one variable, `${content}`); empty: notices to phones
    /// are not sent (each is recorded FAILED, the in-site and email notices still go).
    pub notice_template_code: String,
}

/// Sorts an answer `Code` other than `OK`.
pub fn classify(code: &str, message: &str) -> SendError {
    let what = format!("{code}: {message}");
    if RETRYABLE_CODES.contains(&code) || code.starts_with("Throttling") {
        SendError::Retryable(what)
    } else {
        SendError::Permanent(what)
    }
}

/// Percent-encoding of the RPC signature: `A-Z a-z 0-9 - _ . ~` kept, every other byte of the UTF-8
/// form as `%XY` (upper-case hex), so a space is `%20` and `*` is `%2A` (unlike form encoding).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The signature of `params` (which must not hold `Signature`) for a request with `method`.
pub fn signature(method: &str, params: &BTreeMap<String, String>, secret: &str) -> String {
    let canonical = params
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let to_sign = format!("{method}&{}&{}", percent_encode("/"), percent_encode(&canonical));
    // HMAC takes a key of any length: new_from_slice cannot fail for it.
    let mut mac = match hmac::Hmac::<sha1::Sha1>::new_from_slice(format!("{secret}&").as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<hyper::body::Bytes>,
>;

/// The provider: settings and one HTTP client (its connection pool is reused across messages).
pub struct AliyunProvider {
    settings: Settings,
    http: HttpClient,
}

impl AliyunProvider {
    pub fn new(settings: Settings) -> Result<AliyunProvider, String> {
        // rustls on ring with the webpki roots, the provider passed here rather than installed as a
        // process default: nothing else in the process is affected.
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| format!("SMS HTTPS client: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
        Ok(AliyunProvider { settings, http })
    }

    /// The signed parameters of one `SendSms` request (`Signature` included).
    fn params(&self, m: &SmsMessage, now: DateTime<Utc>, nonce: &str) -> Result<BTreeMap<String, String>, SendError> {
        let s = &self.settings;
        let (template, param) = match &m.content {
            Content::Code { code, .. } => (&s.template_code, serde_json::json!({ "code": code })),
            Content::Notice { .. } if s.notice_template_code.is_empty() => {
                return Err(SendError::Permanent("ALIYUN_SMS_NOTICE_TEMPLATE_CODE is not set".into()));
            }
            Content::Notice { notice } => (&s.notice_template_code, serde_json::json!({ "content": notice })),
        };
        let mut p = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            p.insert(k.to_string(), v.to_string());
        };
        put("Action", "SendSms");
        put("Version", API_VERSION);
        put("Format", "JSON");
        put("RegionId", "cn-hangzhou");
        put("AccessKeyId", &s.access_key_id);
        put("SignatureMethod", "HMAC-SHA1");
        put("SignatureVersion", "1.0");
        put("SignatureNonce", nonce);
        put("Timestamp", &now.to_rfc3339_opts(SecondsFormat::Secs, true));
        // The country calling code without '+': mainland numbers may carry 86, others must.
        put("PhoneNumbers", m.phone.trim_start_matches('+'));
        put("SignName", &s.sign_name);
        put("TemplateCode", template);
        put("TemplateParam", &param.to_string());
        let sig = signature("POST", &p, s.access_key_secret.expose());
        p.insert("Signature".into(), sig);
        Ok(p)
    }

    /// Sends one code and says whether a failure is worth retrying.
    pub async fn deliver(&self, m: &SmsMessage) -> Result<(), SendError> {
        let nonce = uuid::Uuid::new_v4().to_string();
        let params = self.params(m, Utc::now(), &nonce)?;
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&params).finish();
        let request = http::Request::post(format!("{}/", self.settings.endpoint.trim_end_matches('/')))
            .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(http::header::ACCEPT, "application/json")
            .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
            .map_err(|e| SendError::Permanent(format!("request: {e}")))?;
        let exchange = async {
            let resp = self.http.request(request).await.map_err(|e| SendError::Retryable(format!("request: {e}")))?;
            let status = resp.status();
            let limited = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER_BYTES);
            let bytes = http_body_util::BodyExt::collect(limited)
                .await
                .map_err(|e| SendError::Retryable(format!("answer: {e}")))?
                .to_bytes();
            Ok::<_, SendError>((status, bytes))
        };
        let (status, body) =
            tokio::time::timeout(TIMEOUT, exchange).await.map_err(|_| SendError::Retryable("timed out".into()))??;
        #[derive(serde::Deserialize)]
        struct Answer {
            #[serde(rename = "Code")]
            code: String,
            #[serde(rename = "Message", default)]
            message: String,
        }
        match serde_json::from_slice::<Answer>(&body) {
            Ok(a) if a.code == "OK" && status.is_success() => Ok(()),
            Ok(a) if a.code != "OK" => Err(classify(&a.code, &a.message)),
            _ if status.is_server_error() => Err(SendError::Retryable(format!("HTTP {status}"))),
            _ => Err(SendError::Permanent(format!("HTTP {status} without an answer code"))),
        }
    }
}

#[async_trait::async_trait]
impl Provider for AliyunProvider {
    fn name(&self) -> &'static str {
        "aliyun"
    }

    async fn deliver(&self, m: &SmsMessage) -> Result<(), SendError> {
        AliyunProvider::deliver(self, m).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_the_signature_rules_say() {
        assert_eq!(percent_encode("a b*c~d-_."), "a%20b%2Ac~d-_.");
        assert_eq!(percent_encode("/"), "%2F");
        assert_eq!(percent_encode("{\"code\":\"1\"}"), "%7B%22code%22%3A%221%22%7D");
        assert_eq!(percent_encode("阿里"), "%E9%98%BF%E9%87%8C");
    }

    /// The worked example of Alibaba Cloud's signature page (a DescribeRegions GET, key id `testid`,
    /// secret `testsecret`, its `TimeStamp` spelling kept), whose published signature is
    /// `CT9X0VtwR86fNWSnsc6v8YGOjuE=`.
    #[test]
    fn matches_the_documented_example() {
        let p: BTreeMap<String, String> = [
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("Format", "XML"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("SignatureVersion", "1.0"),
            ("TimeStamp", "2016-02-23T12:46:24Z"),
            ("Version", "2014-05-26"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(signature("GET", &p, "testsecret"), "CT9X0VtwR86fNWSnsc6v8YGOjuE=");
    }

    #[test]
    fn sorts_answer_codes() {
        assert!(matches!(classify("isv.BUSINESS_LIMIT_CONTROL", ""), SendError::Retryable(_)));
        assert!(matches!(classify("Throttling.User", ""), SendError::Retryable(_)));
        assert!(matches!(classify("SignatureDoesNotMatch", ""), SendError::Permanent(_)));
        assert!(matches!(classify("isv.MOBILE_NUMBER_ILLEGAL", ""), SendError::Permanent(_)));
    }
}
