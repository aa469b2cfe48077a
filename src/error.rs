//! `AppError`: every failure a client can see, each with one stable `extensions.code`.
//!
//! `AppError` deliberately does not implement `Display`: async-graphql converts any `Display` type into
//! an error *without* extensions, so a stray `?` would silently drop the code. Without `Display` the only
//! conversion is the one below, which always sets the code and never leaks an internal cause.

use async_graphql::ErrorExtensions;
use sea_orm::{DbErr, SqlErr};

/// Stable machine-readable codes, listed for clients in `frontend-contract/ERRORS.md`.
pub mod code {
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    pub const FORBIDDEN: &str = "FORBIDDEN";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    pub const CONFLICT: &str = "CONFLICT";
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    pub const ACCOUNT_LOCKED: &str = "ACCOUNT_LOCKED";
    pub const POLICY_CONSENT_REQUIRED: &str = "POLICY_CONSENT_REQUIRED";
    pub const INTERNAL: &str = "INTERNAL";
    pub const GRAPHQL_PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
    pub const GRAPHQL_VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
    pub const BAD_REQUEST: &str = "BAD_REQUEST";
    pub const QUERY_TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";
    pub const QUERY_TOO_DEEP: &str = "QUERY_TOO_DEEP";
    pub const QUERY_TOO_MANY_ALIASES: &str = "QUERY_TOO_MANY_ALIASES";
    pub const REQUEST_TOO_LARGE: &str = "REQUEST_TOO_LARGE";
    pub const BATCH_TOO_LARGE: &str = "BATCH_TOO_LARGE";
    pub const UPLOAD_TOO_LARGE: &str = "UPLOAD_TOO_LARGE";
    pub const TOO_MANY_UPLOADS: &str = "TOO_MANY_UPLOADS";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "UNSUPPORTED_MEDIA_TYPE";
    pub const CSRF_PREFLIGHT_REQUIRED: &str = "CSRF_PREFLIGHT_REQUIRED";
    pub const VERIFICATION_REQUIRED: &str = "VERIFICATION_REQUIRED";
    /// A third-party app's token lacks the scope this field needs (`extensions.requiredScope`, null
    /// when no scope lets an app reach it).
    pub const INSUFFICIENT_SCOPE: &str = "INSUFFICIENT_SCOPE";
    /// HTTP 503: the instance sheds load; nothing ran.
    pub const OVERLOADED: &str = "OVERLOADED";
    /// HTTP 503 (the instance is full) or 429 (this client address holds too many connections or
    /// WebSockets), before the request was read.
    pub const TOO_MANY_CONNECTIONS: &str = "TOO_MANY_CONNECTIONS";
    /// HTTP 408: the request body did not arrive in time.
    pub const REQUEST_TIMEOUT: &str = "REQUEST_TIMEOUT";
    /// HTTP 503 with `Retry-After`: a dependency (the database) cannot be reached now. Nothing was
    /// done; the same request may be sent again.
    pub const SERVICE_UNAVAILABLE: &str = "SERVICE_UNAVAILABLE";
    /// The operation (or one of its statements) ran past its time budget and was cancelled.
    pub const QUERY_TIMEOUT: &str = "QUERY_TIMEOUT";
    /// An SMS code is wrong, expired, already used, replaced by a newer one, or out of attempts: one
    /// answer for all, so guessing learns nothing.
    pub const INVALID_CODE: &str = "INVALID_CODE";
    /// This deployment cannot send SMS now (no provider configured); nothing was sent.
    pub const SMS_UNAVAILABLE: &str = "SMS_UNAVAILABLE";
    /// This deployment cannot send email now (`SMTP_URL=disabled`), or the mail server refused the
    /// address for good; nothing was sent and no code is live.
    pub const EMAIL_UNAVAILABLE: &str = "EMAIL_UNAVAILABLE";
}

#[derive(Debug)]
pub enum AppError {
    /// The operation needs a signed-in user and the request carries no valid session.
    Unauthenticated,
    /// Signed in, but not allowed to do this.
    Forbidden(&'static str),
    /// The named thing does not exist (or is not visible to this viewer).
    NotFound(&'static str),
    /// An argument is invalid; `field` names it (`input.title`), `message` says why.
    BadUserInput { field: String, message: String },
    /// The request collides with existing data (a taken phone number, say).
    Conflict(String),
    /// Login failed. One error for an unknown phone and a wrong password alike.
    BadCredentials,
    /// Too many attempts; retry after this many seconds.
    RateLimited { retry_after_secs: u64 },
    /// Too many failed sign-ins for this phone number; it is locked for this many seconds.
    AccountLocked { retry_after_secs: u64 },
    /// An uploaded file is larger than its kind allows (`field` names the argument).
    UploadTooLarge { field: String, max_bytes: usize },
    /// An uploaded file's content is not of a type its kind accepts (whatever its name claims).
    UnsupportedMedia { field: String, message: String },
    /// The action needs an approved real-name verification.
    VerificationRequired(&'static str),
    /// A third-party app's token may not reach this field: it needs the named scope, or (`None`)
    /// it is for the member's own apps only.
    InsufficientScope { required: Option<&'static str> },
    /// The database cannot be reached now (or the circuit breaker says so); retry after this many
    /// seconds.
    Unavailable { retry_after_secs: u64 },
    /// A statement or the whole operation ran past its budget.
    QueryTimeout,
    /// The SMS code does not prove the number (wrong, expired, used, replaced or out of attempts);
    /// `field` names the argument.
    InvalidCode { field: String },
    /// No SMS provider can send now.
    SmsUnavailable,
    /// No email can be sent (disabled), or the mail server refused the address for good.
    EmailUnavailable,
    /// Anything else. The cause is logged when the error reaches the client, which sees only
    /// "internal error".
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::BadUserInput { field: field.into(), message: message.into() }
    }

    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        AppError::Internal(cause.into())
    }

    /// Turns a unique-constraint violation into `CONFLICT` with the given message; any other database
    /// error stays internal. The one place constraint names are interpreted.
    pub fn conflict_on_unique(err: DbErr, message: &str) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => AppError::Conflict(message.to_string()),
            _ => AppError::from(err),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated | AppError::BadCredentials => code::UNAUTHENTICATED,
            AppError::Forbidden(_) => code::FORBIDDEN,
            AppError::NotFound(_) => code::NOT_FOUND,
            AppError::BadUserInput { .. } => code::BAD_USER_INPUT,
            AppError::Conflict(_) => code::CONFLICT,
            AppError::RateLimited { .. } => code::RATE_LIMITED,
            AppError::AccountLocked { .. } => code::ACCOUNT_LOCKED,
            AppError::UploadTooLarge { .. } => code::UPLOAD_TOO_LARGE,
            AppError::UnsupportedMedia { .. } => code::UNSUPPORTED_MEDIA_TYPE,
            AppError::VerificationRequired(_) => code::VERIFICATION_REQUIRED,
            AppError::InsufficientScope { .. } => code::INSUFFICIENT_SCOPE,
            AppError::Unavailable { .. } => code::SERVICE_UNAVAILABLE,
            AppError::QueryTimeout => code::QUERY_TIMEOUT,
            AppError::InvalidCode { .. } => code::INVALID_CODE,
            AppError::SmsUnavailable => code::SMS_UNAVAILABLE,
            AppError::EmailUnavailable => code::EMAIL_UNAVAILABLE,
            AppError::Internal(_) => code::INTERNAL,
        }
    }

    fn message(&self) -> String {
        match self {
            AppError::Unauthenticated => "you must be signed in to do this".into(),
            AppError::Forbidden(why) => (*why).into(),
            AppError::NotFound(what) => format!("{what} not found"),
            AppError::BadUserInput { field, message } => format!("{field}: {message}"),
            AppError::Conflict(message) => message.clone(),
            AppError::BadCredentials => "wrong phone number or password".into(),
            AppError::RateLimited { retry_after_secs } => {
                format!("too many requests, try again in {retry_after_secs} s")
            }
            AppError::AccountLocked { retry_after_secs } => {
                format!("too many failed sign-ins; this number is locked for {retry_after_secs} s")
            }
            AppError::UploadTooLarge { field, max_bytes } => {
                format!("{field}: the file is larger than the {max_bytes} bytes allowed")
            }
            AppError::UnsupportedMedia { field, message } => format!("{field}: {message}"),
            AppError::VerificationRequired(why) => (*why).into(),
            AppError::InsufficientScope { required: Some(scope) } => {
                format!("this app was not given the {scope} scope needed here")
            }
            AppError::InsufficientScope { required: None } => "apps cannot use this; only the member can".into(),
            AppError::Unavailable { retry_after_secs } => {
                format!("the service is temporarily unavailable; retry in {retry_after_secs} s")
            }
            AppError::QueryTimeout => "the operation took too long and was cancelled".into(),
            AppError::InvalidCode { field } => {
                format!("{field}: the code is wrong or no longer valid; request a new one")
            }
            AppError::SmsUnavailable => "text messages cannot be sent now; try again later".into(),
            AppError::EmailUnavailable => "no email can be delivered to this address now".into(),
            AppError::Internal(_) => "internal error".into(),
        }
    }
}

impl AppError {
    /// As an error of the whole request (no location, no path): for refusals before execution.
    pub fn into_request_error(self) -> async_graphql::ServerError {
        let err: async_graphql::Error = self.into();
        let mut server = async_graphql::ServerError::new(err.message, None);
        server.extensions = err.extensions;
        server
    }
}

/// PostgreSQL's "character not in repertoire": text holding U+0000, which PostgreSQL cannot store
/// (SQLite can). The client's input, not a server fault.
const PG_CHARACTER_NOT_IN_REPERTOIRE: &str = "22021";

/// PostgreSQL's "query_canceled": the statement ran past `statement_timeout`.
const PG_QUERY_CANCELED: &str = "57014";

impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        let sqlstate = match &err {
            DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)) | DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e)) => {
                e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned())
            }
            _ => None,
        };
        match sqlstate.as_deref() {
            Some(PG_CHARACTER_NOT_IN_REPERTOIRE) => {
                return AppError::bad_input("input", "text must not contain the NUL character (U+0000)");
            }
            Some(PG_QUERY_CANCELED) => return AppError::QueryTimeout,
            _ => {}
        }
        if crate::db::is_unreachable(&err) {
            tracing::warn!(error = %err, "database unreachable or its pool exhausted");
            return AppError::Unavailable { retry_after_secs: 1 };
        }
        AppError::Internal(Box::new(err))
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        if let AppError::Internal(cause) = &err {
            tracing::error!(error = %cause, "internal error");
        }
        let code = err.code();
        let field = match &err {
            AppError::BadUserInput { field, .. }
            | AppError::UploadTooLarge { field, .. }
            | AppError::UnsupportedMedia { field, .. }
            | AppError::InvalidCode { field } => Some(field.clone()),
            _ => None,
        };
        let retry_after = match &err {
            AppError::RateLimited { retry_after_secs }
            | AppError::AccountLocked { retry_after_secs }
            | AppError::Unavailable { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        let required_scope = match &err {
            AppError::InsufficientScope { required } => Some(*required),
            _ => None,
        };
        async_graphql::Error::new(err.message()).extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(scope) = required_scope {
                ext.set("requiredScope", scope);
            }
            if let Some(field) = field {
                ext.set("field", field);
            }
            if let Some(secs) = retry_after {
                ext.set("retryAfter", secs);
            }
        })
    }
}

/// The message a caught panic carried, for the log line that reports it.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}
