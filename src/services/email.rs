//! Verified email: a member proves an address with a 6-digit code sent by SMTP, may then reset the
//! password through it, and gets security notices there too.
//!
//! - [`add_email`] stores the address as pending and sends a code; [`verify_email`] proves it. The
//!   code is stored only as a keyed hash bound to its address and purpose, lives [`CODE_TTL`]
//!   (10 minutes), allows [`MAX_ATTEMPTS`] tries, is used once, and a new one replaces the old.
//!   `EMAIL_CODE_RESEND_SECS` (60 s) spaces two codes to one address, and daily caps bound what one
//!   address ([`DAILY_PER_ADDRESS`]) and one member ([`DAILY_PER_MEMBER`]) can ask for.
//! - Enumeration: `addEmail` answers the same whether or not another member has verified the
//!   address; the code is sent all the same, and only its holder learns, at `verifyEmail`, that the
//!   address is taken (`CONFLICT`). `requestEmailCode` answers the same whether or not the address
//!   belongs to a member: the request is counted (spacing, caps) alike, and the message, for a
//!   member only, is left to the outbox's sender instead of being tried in the request, so the
//!   answer's timing does not carry the SMTP conversation either.
//! - [`notice_row`] is a notice to a member's verified address, for `services::notices` to queue.
//! - Every message goes through the outbox ([`email_outbox`]).

use chrono::{DateTime, Duration, Utc};
use entity::{email_codes, users};
use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, Set, TransactionTrait,
};

use crate::auth::Viewer;
use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::mail::{Email, Mailer};
use crate::seal::Sealer;
use crate::services::email_outbox::{self, Kind};
use crate::services::phone_codes::{hex, new_code, same, secs_until};
use crate::services::validate;

/// Tries one code allows; the last wrong one kills it.
pub const MAX_ATTEMPTS: i32 = 5;
/// Lifetime of an email code.
pub const CODE_TTL: Duration = Duration::minutes(10);
/// The window the daily caps count over (rolling), and how long code and outbox rows are kept.
pub const DAY: Duration = Duration::hours(24);
/// Codes one address may receive in 24 hours (against mail bombing someone's inbox).
pub const DAILY_PER_ADDRESS: u64 = 10;
/// `addEmail` codes one member may ask for in 24 hours (against using the gateway to mail strangers).
pub const DAILY_PER_MEMBER: u64 = 10;
/// How long a security notice may wait in the outbox before it is not worth sending.
pub const NOTICE_TTL: Duration = Duration::hours(24);

/// What a code may be used for; a code for one purpose never works for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `verifyEmail`.
    Verify,
    /// `resetPassword` with `email`.
    ResetPassword,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Verify => "VERIFY",
            Purpose::ResetPassword => "RESET_PASSWORD",
        }
    }
}

/// From the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub resend: Duration,
    /// The outbox's first retry wait (doubling after).
    pub retry_base: Duration,
}

impl Settings {
    pub fn from_config(c: &Config) -> Settings {
        // Config::validate bounds both; the clamps keep time arithmetic in range regardless.
        Settings {
            resend: Duration::seconds(i64::try_from(Ord::min(c.email_code_resend_secs, 3600)).unwrap_or(3600)),
            retry_base: Duration::milliseconds(
                i64::try_from(Ord::min(c.email_retry_base_ms, 60_000)).unwrap_or(60_000),
            ),
        }
    }
}

/// The key an address's codes are found under: HMAC of the normalised address (the send log keeps
/// no addresses in the clear).
fn email_key(keys: &Sealer, address: &str) -> String {
    hex(keys.keyed_hash("ecer email keys v1", address.as_bytes()))
}

fn code_hash(keys: &Sealer, email_key: &str, purpose: Purpose, code: &str) -> String {
    let message = format!("{email_key}\n{}\n{code}", purpose.as_str());
    hex(keys.keyed_hash("ecer email codes v1", message.as_bytes()))
}

/// The message that carries a code: Chinese first, then English.
pub fn code_email(to: &str, purpose: Purpose, code: &str) -> Email {
    let minutes = CODE_TTL.num_minutes();
    let (zh, en) = match purpose {
        Purpose::Verify => ("用于验证您的邮箱地址", "to verify your email address"),
        Purpose::ResetPassword => ("用于重置您的密码", "to reset your password"),
    };
    Email {
        to: to.to_string(),
        subject: "ecer 验证码 / verification code".into(),
        body: format!(
            "您的 ecer 验证码是 {code}，{zh}，{minutes} 分钟内有效。\n\
             如果这不是您本人的操作，请忽略此邮件。\n\n\
             Your ecer verification code is {code}, {en}. It is valid for {minutes} minutes.\n\
             If you did not ask for it, you can ignore this email.\n"
        ),
    }
}

async fn live_user(db: &impl ConnectionTrait, user_id: i64) -> AppResult<users::Model> {
    users::Entity::find_by_id(user_id)
        .filter(users::Column::DeletedAt.is_null())
        .one(db)
        .await?
        .ok_or(AppError::Unauthenticated)
}

/// The live member whose verified address is `address`.
async fn member_by_verified(db: &impl ConnectionTrait, address: &str) -> AppResult<Option<users::Model>> {
    Ok(users::Entity::find()
        .filter(users::Column::Email.eq(address))
        .filter(users::Column::EmailVerifiedAt.is_not_null())
        .filter(users::Column::DeletedAt.is_null())
        .one(db)
        .await?)
}

/// Refuses when the rows matching `filter` in the last day reach `cap`; retry when the oldest of
/// them leaves the window.
async fn check_cap(db: &DatabaseConnection, filter: Condition, cap: u64, now: DateTime<Utc>) -> AppResult<()> {
    let recent = email_codes::Entity::find().filter(filter).filter(email_codes::Column::CreatedAt.gt(now - DAY));
    if recent.clone().count(db).await? < cap {
        return Ok(());
    }
    let oldest = recent.order_by_asc(email_codes::Column::CreatedAt).one(db).await?;
    let retry_after_secs = oldest.map_or(DAY.num_seconds() as u64, |row| secs_until(row.created_at + DAY, now));
    Err(AppError::RateLimited { retry_after_secs })
}

/// The resend spacing and the per-address cap, the same for every purpose and every address.
async fn check_address_limits(
    db: &DatabaseConnection,
    settings: &Settings,
    key: &str,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let last = email_codes::Entity::find()
        .filter(email_codes::Column::EmailKey.eq(key))
        .order_by_desc(email_codes::Column::CreatedAt)
        .one(db)
        .await?;
    if let Some(last) = last
        && settings.resend > Duration::zero()
        && now < last.created_at + settings.resend
    {
        return Err(AppError::RateLimited { retry_after_secs: secs_until(last.created_at + settings.resend, now) });
    }
    check_cap(db, email_codes::Column::EmailKey.eq(key).into(), DAILY_PER_ADDRESS, now).await
}

/// Stores a new code on `txn` (the caller has retired the one it replaces).
async fn store_code(
    txn: &impl ConnectionTrait,
    keys: &Sealer,
    user_id: Option<i64>,
    key: &str,
    purpose: Purpose,
    code: &str,
    now: DateTime<Utc>,
) -> AppResult<email_codes::Model> {
    Ok(email_codes::ActiveModel {
        user_id: Set(user_id),
        email_key: Set(key.to_string()),
        purpose: Set(purpose.as_str().to_string()),
        code_hash: Set(code_hash(keys, key, purpose, code)),
        attempts: Set(0),
        created_at: Set(now),
        expires_at: Set(now + CODE_TTL),
        used_at: Set(None),
        ..Default::default()
    }
    .insert(txn)
    .await?)
}

/// `addEmail`: `address` becomes the member's pending address and a VERIFY code is sent to it (a
/// code sent earlier for another pending address stops working). The answer does not depend on
/// whether another member has verified the address. RATE_LIMITED within the resend spacing or
/// beyond a daily cap; EMAIL_UNAVAILABLE when email is disabled or the server refuses the address
/// for good (then no code is live and nothing is pending).
pub async fn add_email(
    db: &DatabaseConnection,
    keys: &Sealer,
    mailer: &Mailer,
    settings: &Settings,
    viewer: &Viewer,
    address: &str,
    now: DateTime<Utc>,
) -> AppResult<users::Model> {
    let address = validate::email("input.email", address)?;
    mailer.available()?;
    let user = live_user(db, viewer.user_id).await?;
    let key = email_key(keys, &address);
    check_address_limits(db, settings, &key, now).await?;
    let mine = email_codes::Column::UserId.eq(user.id).and(email_codes::Column::Purpose.eq(Purpose::Verify.as_str()));
    check_cap(db, mine.into(), DAILY_PER_MEMBER, now).await?;

    let code = new_code()?;
    let txn = db.begin().await?;
    // Any earlier VERIFY code of this member (for another address) dies with the new one.
    email_codes::Entity::update_many()
        .col_expr(email_codes::Column::UsedAt, Expr::value(Some(now)))
        .filter(email_codes::Column::UserId.eq(user.id))
        .filter(email_codes::Column::Purpose.eq(Purpose::Verify.as_str()))
        .filter(email_codes::Column::UsedAt.is_null())
        .exec(&txn)
        .await?;
    let row = store_code(&txn, keys, Some(user.id), &key, Purpose::Verify, &code, now).await?;
    users::Entity::update_many()
        .col_expr(users::Column::PendingEmail, Expr::value(Some(address.clone())))
        .col_expr(users::Column::UpdatedAt, Expr::value(now))
        .filter(users::Column::Id.eq(user.id))
        .exec(&txn)
        .await?;
    let email = code_email(&address, Purpose::Verify, &code);
    let outbox =
        email_outbox::enqueue(&txn, keys, user.id, Kind::Code, &email, row.expires_at, true, None, now).await?;
    txn.commit().await?;
    // Tried at once (the row is born claimed by this request): the member is told now if the server
    // refuses the address for good. A transient failure leaves the message to the sender.
    if let email_outbox::Outcome::Failed(_) =
        email_outbox::send_claimed(db, keys, mailer, settings.retry_base, outbox, now).await?
    {
        email_codes::Entity::delete_by_id(row.id).exec(db).await?;
        users::Entity::update_many()
            .col_expr(users::Column::PendingEmail, Expr::value(Option::<String>::None))
            .filter(users::Column::Id.eq(user.id))
            .filter(users::Column::PendingEmail.eq(address))
            .exec(db)
            .await?;
        return Err(AppError::EmailUnavailable);
    }
    live_user(db, user.id).await
}

/// Uses up the live code of `address` for `purpose` (and, when given, of member `user_id`) if `code`
/// is it; returns the code row. Every failure is the same INVALID_CODE on `field`.
#[allow(clippy::too_many_arguments)]
async fn consume(
    db: &DatabaseConnection,
    keys: &Sealer,
    user_id: Option<i64>,
    address: &str,
    purpose: Purpose,
    code: &str,
    field: &str,
    now: DateTime<Utc>,
) -> AppResult<email_codes::Model> {
    let invalid = || AppError::InvalidCode { field: field.to_string() };
    let key = email_key(keys, address);
    let mut live = email_codes::Entity::find()
        .filter(email_codes::Column::EmailKey.eq(key.clone()))
        .filter(email_codes::Column::Purpose.eq(purpose.as_str()))
        .filter(email_codes::Column::UsedAt.is_null());
    if let Some(user_id) = user_id {
        live = live.filter(email_codes::Column::UserId.eq(user_id));
    }
    let Some(row) = live.order_by_desc(email_codes::Column::Id).one(db).await? else {
        return Err(invalid());
    };
    if row.expires_at <= now {
        return Err(invalid());
    }
    // The attempt counts before the comparison, and only while attempts are left.
    let counted = email_codes::Entity::update_many()
        .col_expr(email_codes::Column::Attempts, Expr::col(email_codes::Column::Attempts).add(1))
        .filter(email_codes::Column::Id.eq(row.id))
        .filter(email_codes::Column::UsedAt.is_null())
        .filter(email_codes::Column::Attempts.lt(MAX_ATTEMPTS))
        .exec(db)
        .await?;
    if counted.rows_affected == 0 {
        return Err(invalid());
    }
    if !same(&code_hash(keys, &key, purpose, code.trim()), &row.code_hash) {
        email_codes::Entity::update_many()
            .col_expr(email_codes::Column::UsedAt, Expr::value(Some(now)))
            .filter(email_codes::Column::Id.eq(row.id))
            .filter(email_codes::Column::UsedAt.is_null())
            .filter(email_codes::Column::Attempts.gte(MAX_ATTEMPTS))
            .exec(db)
            .await?;
        return Err(invalid());
    }
    // Used once: of two requests racing with the right code, one wins.
    let used = email_codes::Entity::update_many()
        .col_expr(email_codes::Column::UsedAt, Expr::value(Some(now)))
        .filter(email_codes::Column::Id.eq(row.id))
        .filter(email_codes::Column::UsedAt.is_null())
        .exec(db)
        .await?;
    if used.rows_affected == 0 {
        return Err(invalid());
    }
    Ok(row)
}

/// `verifyEmail`: proves the pending address with its code; it becomes the member's verified
/// `email`. INVALID_CODE for a wrong, used, expired or replaced code (or nothing pending); with a
/// valid code, CONFLICT when another live account has verified the address meanwhile or before.
pub async fn verify_email(
    db: &DatabaseConnection,
    keys: &Sealer,
    viewer: &Viewer,
    code: &str,
    now: DateTime<Utc>,
) -> AppResult<users::Model> {
    let user = live_user(db, viewer.user_id).await?;
    let Some(pending) = user.pending_email.clone() else {
        return Err(AppError::InvalidCode { field: "input.code".into() });
    };
    consume(db, keys, Some(user.id), &pending, Purpose::Verify, code, "input.code", now).await?;
    users::Entity::update_many()
        .col_expr(users::Column::Email, Expr::value(Some(pending)))
        .col_expr(users::Column::EmailVerifiedAt, Expr::value(Some(now)))
        .col_expr(users::Column::PendingEmail, Expr::value(Option::<String>::None))
        .col_expr(users::Column::UpdatedAt, Expr::value(now))
        .filter(users::Column::Id.eq(user.id))
        .exec(db)
        .await
        .map_err(|e| AppError::conflict_on_unique(e, "this email address is verified by another account"))?;
    live_user(db, user.id).await
}

/// `requestEmailCode(purpose: RESET_PASSWORD)`: a code for the member who verified `address`, and
/// for anyone else the same answer with no message (see the module notes). RATE_LIMITED within the
/// resend spacing or beyond the address's daily cap; EMAIL_UNAVAILABLE when email is disabled.
pub async fn request_code(
    db: &DatabaseConnection,
    keys: &Sealer,
    mailer: &Mailer,
    settings: &Settings,
    address: &str,
    purpose: Purpose,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let address = validate::email("input.email", address)?;
    mailer.available()?;
    let key = email_key(keys, &address);
    check_address_limits(db, settings, &key, now).await?;
    let member = member_by_verified(db, &address).await?;
    let code = new_code()?;
    let txn = db.begin().await?;
    // The address's earlier code for the purpose dies with the new one.
    email_codes::Entity::update_many()
        .col_expr(email_codes::Column::UsedAt, Expr::value(Some(now)))
        .filter(email_codes::Column::EmailKey.eq(key.clone()))
        .filter(email_codes::Column::Purpose.eq(purpose.as_str()))
        .filter(email_codes::Column::UsedAt.is_null())
        .exec(&txn)
        .await?;
    let row = store_code(&txn, keys, member.as_ref().map(|m| m.id), &key, purpose, &code, now).await?;
    if let Some(member) = &member {
        let email = code_email(&address, purpose, &code);
        email_outbox::enqueue(&txn, keys, member.id, Kind::Code, &email, row.expires_at, false, None, now).await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Uses up a RESET_PASSWORD code sent to `address` and returns the member who verified it.
/// INVALID_CODE until the code is proven; then NOT_FOUND if no live member holds the address.
pub async fn consume_reset(
    db: &DatabaseConnection,
    keys: &Sealer,
    address: &str,
    code: &str,
    now: DateTime<Utc>,
) -> AppResult<users::Model> {
    let address = validate::email("input.email", address)?;
    consume(db, keys, None, &address, Purpose::ResetPassword, code, "input.code", now).await?;
    member_by_verified(db, &address).await?.ok_or(AppError::NotFound("account with this verified email"))
}

/// The outbox row of a security notice to member `user_id` at `address` (their verified one, which
/// the caller looked up); the caller writes it in the transaction that records what the notice is
/// about, and the outbox's sender delivers it within a poll.
pub fn notice_row(
    keys: &Sealer,
    user_id: i64,
    address: String,
    body: &str,
    broadcast_id: Option<i64>,
    now: chrono::DateTime<Utc>,
) -> AppResult<entity::email_outbox::ActiveModel> {
    let email = Email { to: address, subject: NOTICE_SUBJECT.to_string(), body: body.to_string() };
    email_outbox::row(keys, user_id, Kind::Notice, &email, now + NOTICE_TTL, false, broadcast_id, now)
}

/// The subject of every security notice.
pub const NOTICE_SUBJECT: &str = "ecer 安全提醒 / security notice";

/// Removes a member's codes and outbox rows (account erasure), on `db` (the erasure's transaction).
pub async fn erase(db: &impl ConnectionTrait, user_id: i64) -> AppResult<()> {
    email_codes::Entity::delete_many().filter(email_codes::Column::UserId.eq(user_id)).exec(db).await?;
    entity::email_outbox::Entity::delete_many()
        .filter(entity::email_outbox::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_message_is_bilingual_and_carries_the_code() {
        let m = code_email("a@b.example", Purpose::Verify, "123456");
        assert!(m.subject.contains("验证码") && m.subject.contains("verification code"));
        assert!(m.body.contains("验证码是 123456") && m.body.contains("code is 123456"));
    }
}
