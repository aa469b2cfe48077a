//! Email delivery by SMTP (lettre), behind one small type the outbox calls: [`Mailer::deliver`]
//! sends one message and says whether trying again may help.
//!
//! - `SMTP_URL` unset (the development default): nothing leaves; the message (code included) is
//!   written to the log at INFO with the address masked, like the `log` SMS provider. Refused at
//!   start-up with production settings ([`crate::config::Config::production_setting`]).
//! - `SMTP_URL=disabled`: no email leaves; `addEmail` answers `EMAIL_UNAVAILABLE`.
//! - `SMTP_URL=smtp://host:port`, `smtp://…?tls=required` (STARTTLS), `smtps://user:pass@host:465`:
//!   lettre's `AsyncSmtpTransport` on tokio with rustls (ring) and the webpki roots, one
//!   connection per message (no pool: the outbox sends a few messages a second at most).
//!
//! Every message is UTF-8 plain text: the subject RFC 2047 encoded by lettre, the body base64 (a
//! transfer encoding every relay passes unchanged, whatever the mix of Chinese and ASCII).

use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::error::{AppError, AppResult};

/// The value of `SMTP_URL` that switches email off.
pub const DISABLED: &str = "disabled";
/// The longest one SMTP conversation may take (connect, each command): under the outbox's claim.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// One message to deliver.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// Why a message did not leave. `code` is short and stable (`SMTP_550`, `SMTP_451`, `CONNECTION`,
/// `TIMEOUT`, `TLS`, `ADDRESS`, `DISABLED`), stored as the start of the outbox row's `last_error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The server could not take it now (4xx, connection refused or dropped, timeout): the same
    /// message may go through later.
    #[error("{code} (retryable): {detail}")]
    Retryable { code: String, detail: String },
    /// Refused for a reason that does not pass (5xx: unknown mailbox, policy; a malformed address;
    /// email disabled): retrying is pointless.
    #[error("{code} (permanent): {detail}")]
    Permanent { code: String, detail: String },
}

impl SendError {
    fn permanent(code: &str, detail: impl Into<String>) -> SendError {
        SendError::Permanent { code: code.into(), detail: detail.into() }
    }

    /// `CODE: detail`, for the outbox row.
    pub fn stored(&self) -> String {
        match self {
            SendError::Retryable { code, detail } | SendError::Permanent { code, detail } => {
                format!("{code}: {detail}")
            }
        }
    }
}

/// How mail leaves this instance.
#[derive(Clone)]
enum Transport {
    Log,
    Disabled,
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// The configured transport and sender address; cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    from: Arc<Mailbox>,
}

/// Parses `SMTP_URL` into a transport, without connecting. The error never contains the URL (it
/// may hold a password).
fn smtp_transport(url: &str) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let parsed = url::Url::parse(url).map_err(|_| "SMTP_URL is not a URL".to_string())?;
    let tls_param = parsed.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
    match (parsed.scheme(), tls_param.as_deref()) {
        ("smtps", None) | ("smtp", None | Some("required" | "opportunistic")) => {}
        _ => {
            return Err("SMTP_URL must be smtp://host[:port], smtp://host[:port]?tls=required or smtps://host[:port] \
                 (user:password@ before the host when the server wants them)"
                .into());
        }
    }
    // Credentials never cross a connection that may stay plain.
    let plain = parsed.scheme() == "smtp" && tls_param.as_deref() != Some("required");
    if plain && (!parsed.username().is_empty() || parsed.password().is_some()) {
        return Err("SMTP_URL with a user and password needs smtps:// or ?tls=required".into());
    }
    let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map_err(|e| format!("SMTP_URL cannot be used: {}", e.to_string().replace(url, "***")))?;
    Ok(builder.timeout(Some(SMTP_TIMEOUT)).build())
}

impl Mailer {
    /// The transport `SMTP_URL` names (unset: the log) and `MAIL_FROM`, both checked.
    pub fn from_settings(smtp_url: Option<&str>, mail_from: &str) -> Result<Mailer, String> {
        let from: Mailbox = mail_from
            .parse()
            .map_err(|_| format!("MAIL_FROM is not an address (like `ecer <no-reply@ecer.example>`): {mail_from:?}"))?;
        let transport = match smtp_url.map(str::trim) {
            None | Some("") => Transport::Log,
            Some(DISABLED) => Transport::Disabled,
            Some(url) => Transport::Smtp(smtp_transport(url)?),
        };
        Ok(Mailer { transport, from: Arc::new(from) })
    }

    pub fn from_config(config: &crate::config::Config) -> Result<Mailer, String> {
        Mailer::from_settings(config.smtp_url.as_ref().map(|s| s.expose()), &config.mail_from)
    }

    /// Whether any message can leave at all (not `disabled`): asked before a code is stored.
    pub fn available(&self) -> AppResult<()> {
        match self.transport {
            Transport::Disabled => Err(AppError::EmailUnavailable),
            _ => Ok(()),
        }
    }

    /// Builds the message (UTF-8, RFC 2047 subject, base64 body).
    fn message(&self, email: &Email) -> Result<Message, SendError> {
        let to: Mailbox = email.to.parse().map_err(|_| SendError::permanent("ADDRESS", "not a valid address"))?;
        let body = Body::new_with_encoding(email.body.clone(), ContentTransferEncoding::Base64)
            .map_err(|_| SendError::permanent("BUILD", "the body cannot be encoded"))?;
        Message::builder()
            .from((*self.from).clone())
            .to(to)
            .subject(email.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| SendError::permanent("BUILD", e.to_string()))
    }

    /// Delivers one message, or says whether trying again later may help.
    pub async fn deliver(&self, email: &Email) -> Result<(), SendError> {
        match &self.transport {
            Transport::Disabled => Err(SendError::permanent("DISABLED", "SMTP_URL=disabled")),
            Transport::Log => {
                // Built all the same, so development meets the errors production would.
                self.message(email)?;
                tracing::info!(
                    to = %mask(&email.to),
                    subject = %email.subject,
                    body = %email.body,
                    "email (SMTP_URL unset, development only): not sent, logged"
                );
                Ok(())
            }
            Transport::Smtp(smtp) => {
                let message = self.message(email)?;
                smtp.send(message).await.map(|_| ()).map_err(|e| classify(&e))
            }
        }
    }
}

/// 5xx is permanent; 4xx, a dropped connection, a timeout or a TLS failure may pass.
fn classify(err: &lettre::transport::smtp::Error) -> SendError {
    let detail: String = err.to_string().chars().take(160).collect();
    if let Some(status) = err.status() {
        let code = format!("SMTP_{status}");
        return if err.is_permanent() {
            SendError::Permanent { code, detail }
        } else {
            SendError::Retryable { code, detail }
        };
    }
    let code = if err.is_timeout() {
        "TIMEOUT"
    } else if err.is_tls() {
        "TLS"
    } else {
        "CONNECTION"
    };
    SendError::Retryable { code: code.into(), detail }
}

/// `alice@example.com` -> `a***@example.com`: enough to follow a message through a log.
pub fn mask(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        assert!(Mailer::from_settings(None, "ecer <no-reply@ecer.example>").is_ok());
        assert!(Mailer::from_settings(None, "not an address").is_err());
        assert!(Mailer::from_settings(Some("smtp://127.0.0.1:2525"), "a@b.example").is_ok());
        assert!(Mailer::from_settings(Some("smtps://u:p@mail.example:465"), "a@b.example").is_ok());
        assert!(Mailer::from_settings(Some("smtp://u:p@mail.example:587?tls=required"), "a@b.example").is_ok());
        let plain = Mailer::from_settings(Some("smtp://u:secret@mail.example"), "a@b.example").err().unwrap();
        assert!(!plain.contains("secret"), "{plain}");
        assert!(Mailer::from_settings(Some("http://mail.example"), "a@b.example").is_err());
        assert!(Mailer::from_settings(Some(DISABLED), "a@b.example").unwrap().available().is_err());
    }

    #[test]
    fn masks_the_local_part() {
        assert_eq!(mask("alice@example.com"), "a***@example.com");
        assert_eq!(mask("nope"), "***");
    }
}
