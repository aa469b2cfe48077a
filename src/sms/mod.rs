//! SMS providers behind one trait: the gateway asks a [`Provider`] to deliver a code and does not
//! know how it travels.
//!
//! - `log` (the development default): the code is written to the log at INFO with the number masked,
//!   and kept in a small in-process ring ([`CodeRing`]) that the test harness reads through
//!   [`Sms::last_code`] and that the development route `GET /dev/sms-codes` shows, so `cargo run` and
//!   the test suite work on a bare machine. Refused at start-up with production settings
//!   ([`crate::config::Config::production_setting`]), and the route is never served then.
//! - `disabled`: no SMS leaves; asking for a code answers `SMS_UNAVAILABLE`. For a production
//!   deployment until a real provider is configured.
//! - `aliyun`: Alibaba Cloud SMS ([`aliyun`]), requests signed as its documentation says; a send that
//!   fails (retryable or not) answers `SMS_UNAVAILABLE` and is logged with the provider's code.

pub mod aliyun;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use clap::ValueEnum;

use crate::error::{AppError, AppResult};

/// Codes the `log` provider remembers (the newest replace the oldest).
pub const RING_SIZE: usize = 64;

/// Which provider delivers SMS (`SMS_PROVIDER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderKind {
    /// Development: the code goes to the log (masked number) and the in-process ring.
    Log,
    /// No SMS is sent; code requests answer SMS_UNAVAILABLE.
    Disabled,
    /// Alibaba Cloud SMS (dysmsapi SendSms), with the ALIYUN_* settings.
    Aliyun,
}

/// One SMS to deliver. `phone` is E.164.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SmsMessage {
    pub phone: String,
    #[serde(flatten)]
    pub content: Content,
}

/// What an SMS says. Providers in China send only approved templates, so each kind has its own.
/// Untagged: outbox rows written before notices existed hold the `Code` fields alone.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// A verification code for `purpose` (`REGISTER`, `LOGIN`, ...).
    Code { purpose: String, code: String, ttl_secs: u64 },
    /// A security or incident notice to the member's phone.
    Notice { notice: String },
}

impl SmsMessage {
    pub fn code(phone: String, purpose: &str, code: String, ttl_secs: u64) -> SmsMessage {
        SmsMessage { phone, content: Content::Code { purpose: purpose.to_string(), code, ttl_secs } }
    }

    pub fn notice(phone: String, notice: String) -> SmsMessage {
        SmsMessage { phone, content: Content::Notice { notice } }
    }
}

/// Why a message did not leave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The provider could not take it now (network, timeout, HTTP 5xx, flow control): the same
    /// message may go through later.
    #[error("retryable: {0}")]
    Retryable(String),
    /// The provider refused it for a reason that does not pass (no provider, signature, template,
    /// sign name, balance, number): retrying is pointless until someone fixes the cause.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// Something that delivers SMS codes.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    fn name(&self) -> &'static str;
    /// Delivers one message, or says whether trying again later may help.
    async fn deliver(&self, message: &SmsMessage) -> Result<(), SendError>;
}

/// A message the `log` provider delivered, as the ring keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub phone: String,
    pub content: Content,
    pub at: DateTime<Utc>,
}

/// A code the `log` provider delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentCode {
    pub phone: String,
    pub purpose: String,
    pub code: String,
    pub at: DateTime<Utc>,
}

/// The last [`RING_SIZE`] messages, in process memory only. A std Mutex, not a tokio one: no `.await`
/// happens while it is held.
#[derive(Default)]
pub struct CodeRing(Mutex<VecDeque<Sent>>);

impl CodeRing {
    fn push(&self, sent: Sent) {
        if let Ok(mut ring) = self.0.lock() {
            if ring.len() >= RING_SIZE {
                ring.pop_front();
            }
            ring.push_back(sent);
        }
    }

    fn last_code(&self, phone: &str) -> Option<SentCode> {
        self.0.lock().ok()?.iter().rev().find_map(|s| match &s.content {
            Content::Code { purpose, code, .. } if s.phone == phone => {
                Some(SentCode { phone: s.phone.clone(), purpose: purpose.clone(), code: code.clone(), at: s.at })
            }
            _ => None,
        })
    }

    fn sent_to(&self, phone: &str) -> Vec<Sent> {
        self.0.lock().map(|ring| ring.iter().filter(|s| s.phone == phone).cloned().collect()).unwrap_or_default()
    }
}

/// The development provider.
pub struct LogProvider {
    ring: Arc<CodeRing>,
}

#[async_trait::async_trait]
impl Provider for LogProvider {
    fn name(&self) -> &'static str {
        "log"
    }

    async fn deliver(&self, m: &SmsMessage) -> Result<(), SendError> {
        match &m.content {
            Content::Code { purpose, code, ttl_secs } => tracing::info!(
                phone = %mask(&m.phone),
                purpose = %purpose,
                code = %code,
                ttl_secs,
                "SMS (log provider, development only): verification code"
            ),
            Content::Notice { notice } => {
                tracing::info!(phone = %mask(&m.phone), notice = %notice, "SMS (log provider, development only): notice")
            }
        }
        self.ring.push(Sent { phone: m.phone.clone(), content: m.content.clone(), at: Utc::now() });
        Ok(())
    }
}

/// The provider of a deployment that cannot send SMS yet.
pub struct DisabledProvider;

#[async_trait::async_trait]
impl Provider for DisabledProvider {
    fn name(&self) -> &'static str {
        "disabled"
    }

    async fn deliver(&self, _: &SmsMessage) -> Result<(), SendError> {
        Err(SendError::Permanent("SMS_PROVIDER=disabled".into()))
    }
}

/// The configured provider, and the ring when it is `log`.
#[derive(Clone)]
pub struct Sms {
    provider: Arc<dyn Provider>,
    ring: Option<Arc<CodeRing>>,
}

impl Sms {
    /// A provider that needs no settings (`log`, `disabled`); `aliyun` needs
    /// [`Sms::from_config`] and is `disabled` here.
    pub fn new(kind: ProviderKind) -> Sms {
        match kind {
            ProviderKind::Log => {
                let ring = Arc::new(CodeRing::default());
                Sms { provider: Arc::new(LogProvider { ring: ring.clone() }), ring: Some(ring) }
            }
            ProviderKind::Disabled | ProviderKind::Aliyun => Sms { provider: Arc::new(DisabledProvider), ring: None },
        }
    }

    /// The provider `SMS_PROVIDER` names, with its settings (validated at start-up).
    pub fn from_config(config: &crate::config::Config) -> Result<Sms, String> {
        match config.sms_provider {
            ProviderKind::Aliyun => {
                let provider = aliyun::AliyunProvider::new(config.aliyun_settings())?;
                Ok(Sms { provider: Arc::new(provider), ring: None })
            }
            kind => Ok(Sms::new(kind)),
        }
    }

    pub fn provider(&self) -> &dyn Provider {
        self.provider.as_ref()
    }

    /// Whether any message can leave at all (not `disabled`): asked before a code is stored.
    pub fn available(&self) -> AppResult<()> {
        if self.provider.name() == "disabled" { Err(AppError::SmsUnavailable) } else { Ok(()) }
    }

    /// The newest code the `log` provider sent to `phone` (E.164), for tests and the development
    /// route; always `None` with any other provider.
    pub fn last_code(&self, phone: &str) -> Option<SentCode> {
        self.ring.as_ref()?.last_code(phone)
    }

    /// Everything the `log` provider sent to `phone` that the ring still holds, oldest first.
    pub fn sent_to(&self, phone: &str) -> Vec<Sent> {
        self.ring.as_ref().map(|ring| ring.sent_to(phone)).unwrap_or_default()
    }
}

/// `+8613812345678` -> `+86138****5678`: enough to tell numbers apart in a log, not to dial one.
pub fn mask(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let keep = chars.len() - 8;
    chars.iter().enumerate().map(|(i, c)| if i >= keep && i < keep + 4 { '*' } else { *c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_the_middle_of_a_number() {
        assert_eq!(mask("+8613812345678"), "+86138****5678");
        assert_eq!(mask("123"), "***");
    }

    #[tokio::test]
    async fn the_ring_is_bounded_and_keeps_the_newest() {
        let sms = Sms::new(ProviderKind::Log);
        for i in 0..(RING_SIZE + 5) {
            let m = SmsMessage::code(format!("+86138{i:08}"), "LOGIN", "1".into(), 1);
            sms.provider().deliver(&m).await.unwrap();
        }
        assert!(sms.last_code("+8613800000000").is_none(), "the oldest fell out");
        assert!(sms.last_code(&format!("+86138{:08}", RING_SIZE + 4)).is_some());
        assert!(Sms::new(ProviderKind::Disabled).last_code("+8613800000000").is_none());
    }

    #[test]
    fn outbox_rows_from_before_notices_still_read_as_codes() {
        let old = r#"{"phone":"+8613800000001","purpose":"LOGIN","code":"123456","ttl_secs":300}"#;
        let m: SmsMessage = serde_json::from_str(old).unwrap();
        assert_eq!(m.content, Content::Code { purpose: "LOGIN".into(), code: "123456".into(), ttl_secs: 300 });
        let notice = SmsMessage::notice("+8613800000001".into(), "安全通知".into());
        let back: SmsMessage = serde_json::from_str(&serde_json::to_string(&notice).unwrap()).unwrap();
        assert_eq!(back.content, notice.content);
    }
}
