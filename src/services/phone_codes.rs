//! SMS codes that prove a member holds a phone number: for sign-up, sign-in without a password and
//! password reset.
//!
//! - A code is 6 digits, stored only as a keyed hash bound to its number and purpose; it lives
//!   `PHONE_CODE_TTL_SECS` (5 minutes), allows [`MAX_ATTEMPTS`] tries, and a number has one live code
//!   per purpose (a new one replaces the old).
//! - Sending is bounded: `PHONE_CODE_RESEND_SECS` (60 s) between two codes to a number, daily caps per
//!   number, per client address and per foreign country calling code, and a global daily budget, all counted over the rows of the last
//!   24 hours (the rows are the send log; the retention purge removes them after a day).
//! - The SMS goes through the outbox ([`sms_outbox`]): queued in the transaction that stores the
//!   code, tried at once, retried with backoff while the provider is down.
//! - [`request`] never looks at whether the number is registered: the same work and the same answer
//!   for every number, so neither the payload nor its timing tells who is a member. Whether the
//!   number is registered is only answered after the code is proven (by the operation that uses it).
//! - [`consume`] counts the attempt before comparing, in one conditional UPDATE, and uses the code
//!   up in another, so concurrent guesses cannot exceed the limit and a used code cannot be replayed.

use chrono::{DateTime, Duration, Utc};
use entity::phone_codes;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};

use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::seal::Sealer;
use crate::services::{signin, sms_outbox, validate};
use crate::sms::{Sms, SmsMessage};

/// Tries one code allows; the last wrong one kills it.
pub const MAX_ATTEMPTS: i32 = 5;
/// Digits of a code.
pub const CODE_DIGITS: usize = 6;
/// The window the daily caps count over (rolling), and how long send-log rows are kept.
pub const DAY: Duration = Duration::hours(24);

/// What a code may be used for; a code for one purpose never works for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Register,
    Login,
    ResetPassword,
    ChangePhone,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Register => "REGISTER",
            Purpose::Login => "LOGIN",
            Purpose::ResetPassword => "RESET_PASSWORD",
            Purpose::ChangePhone => "CHANGE_PHONE",
        }
    }
}

/// The sending bounds, from the configuration (a zero switches that bound off).
#[derive(Debug, Clone)]
pub struct Limits {
    pub ttl: Duration,
    pub resend: Duration,
    pub per_number: u64,
    pub per_ip: u64,
    /// Per foreign country calling code (not in `home_countries`).
    pub per_country: u64,
    pub home_countries: Vec<String>,
    pub global: u64,
    /// The outbox's first retry wait (doubling after).
    pub retry_base: Duration,
}

impl Limits {
    pub fn from_config(c: &Config) -> Limits {
        // Config::validate bounds both to an hour; the clamp keeps time arithmetic in range regardless.
        let secs = |s: u64| Duration::seconds(i64::try_from(s.min(3600)).unwrap_or(3600));
        Limits {
            ttl: secs(c.phone_code_ttl_secs),
            resend: secs(c.phone_code_resend_secs),
            per_number: u64::from(c.phone_code_daily_per_number),
            per_ip: u64::from(c.phone_code_daily_per_ip),
            per_country: u64::from(c.phone_code_daily_per_country),
            home_countries: c.phone_code_home_countries.clone(),
            global: u64::from(c.phone_code_daily_global),
            retry_base: Duration::milliseconds(i64::try_from(c.sms_retry_base_ms.min(60_000)).unwrap_or(60_000)),
        }
    }
}

pub(crate) fn hex(bytes: [u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The key a client address is counted under (HMAC, like phone numbers: the send log keeps no IPs).
fn ip_key(keys: &Sealer, ip: Option<&str>) -> String {
    hex(keys.keyed_hash("ecer sms ip keys v1", ip.unwrap_or("unknown").as_bytes()))
}

/// The stored form of a code: bound to its number and purpose, so a hash means nothing elsewhere.
fn code_hash(keys: &Sealer, phone_key: &str, purpose: Purpose, code: &str) -> String {
    let message = format!("{phone_key}\n{}\n{code}", purpose.as_str());
    hex(keys.keyed_hash("ecer phone codes v1", message.as_bytes()))
}

/// A uniformly random code of [`CODE_DIGITS`] digits from the operating system's generator.
pub(crate) fn new_code() -> AppResult<String> {
    const SPACE: u32 = 1_000_000;
    // Rejection sampling: the largest multiple of SPACE below 2^32, so every code is equally likely.
    let limit = u32::MAX - (u32::MAX % SPACE);
    loop {
        let mut buf = [0u8; 4];
        getrandom::fill(&mut buf).map_err(AppError::internal)?;
        let n = u32::from_le_bytes(buf);
        if n < limit {
            return Ok(format!("{:0width$}", n % SPACE, width = CODE_DIGITS));
        }
    }
}

/// The country calling code of an E.164 number (`+8613800138000` -> `86`).
fn country_code(e164: &str) -> String {
    phonenumber::parse(None, e164).map_or_else(|_| "0".to_string(), |p| p.code().value().to_string())
}

/// Byte-wise comparison whose time does not depend on where the first difference is.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Seconds until `at` (at least 1): the `retryAfter` of a refusal.
pub(crate) fn secs_until(at: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    u64::try_from((at - now).num_seconds()).unwrap_or(0).max(1)
}

/// Refuses when the rows matching `filter` in the last day reach `cap` (0: no cap); retry when the
/// oldest of them leaves the window.
async fn check_cap(db: &DatabaseConnection, filter: sea_orm::Condition, cap: u64, now: DateTime<Utc>) -> AppResult<()> {
    if cap == 0 {
        return Ok(());
    }
    let recent = phone_codes::Entity::find().filter(filter).filter(phone_codes::Column::CreatedAt.gt(now - DAY));
    if recent.clone().count(db).await? < cap {
        return Ok(());
    }
    let oldest = recent.order_by_asc(phone_codes::Column::CreatedAt).one(db).await?;
    let retry_after_secs = oldest.map_or(DAY.num_seconds() as u64, |row| secs_until(row.created_at + DAY, now));
    Err(AppError::RateLimited { retry_after_secs })
}

/// Sends a new code for `purpose` to `phone`, replacing that number's live code for the purpose.
/// RATE_LIMITED (with the wait) within the resend interval or beyond a daily cap; SMS_UNAVAILABLE
/// without a provider. The outcome does not depend on whether the number is registered.
#[allow(clippy::too_many_arguments)]
pub async fn request(
    db: &DatabaseConnection,
    keys: &Sealer,
    sms: &Sms,
    limits: &Limits,
    phone: &str,
    purpose: Purpose,
    ip: Option<&str>,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let phone = validate::phone("input.phone", phone)?;
    sms.available()?;
    let phone_key = signin::phone_key(keys, &phone);
    let ip_key = ip_key(keys, ip);
    // One number, any purpose: the spacing is about the person whose phone buzzes.
    let last = phone_codes::Entity::find()
        .filter(phone_codes::Column::PhoneKey.eq(phone_key.clone()))
        .order_by_desc(phone_codes::Column::CreatedAt)
        .one(db)
        .await?;
    if let Some(last) = last
        && limits.resend > Duration::zero()
        && now < last.created_at + limits.resend
    {
        return Err(AppError::RateLimited { retry_after_secs: secs_until(last.created_at + limits.resend, now) });
    }
    check_cap(db, phone_codes::Column::PhoneKey.eq(phone_key.clone()).into(), limits.per_number, now).await?;
    check_cap(db, phone_codes::Column::IpKey.eq(ip_key.clone()).into(), limits.per_ip, now).await?;
    let country = country_code(&phone);
    if !limits.home_countries.contains(&country) {
        check_cap(db, phone_codes::Column::Country.eq(country.clone()).into(), limits.per_country, now).await?;
    }
    check_cap(db, sea_orm::Condition::all(), limits.global, now).await?;

    let code = new_code()?;
    // The code and its SMS in one transaction: a code is never stored without its message, nor a
    // message queued for a code that was not.
    let txn = db.begin().await?;
    phone_codes::Entity::update_many()
        .col_expr(phone_codes::Column::UsedAt, Expr::value(Some(now)))
        .filter(phone_codes::Column::PhoneKey.eq(phone_key.clone()))
        .filter(phone_codes::Column::Purpose.eq(purpose.as_str()))
        .filter(phone_codes::Column::UsedAt.is_null())
        .exec(&txn)
        .await?;
    let row = phone_codes::ActiveModel {
        phone_key: Set(phone_key.clone()),
        purpose: Set(purpose.as_str().to_string()),
        code_hash: Set(code_hash(keys, &phone_key, purpose, &code)),
        attempts: Set(0),
        ip_key: Set(ip_key),
        country: Set(country),
        created_at: Set(now),
        expires_at: Set(now + limits.ttl),
        used_at: Set(None),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let ttl_secs = u64::try_from(limits.ttl.num_seconds()).unwrap_or(0);
    let message = SmsMessage::code(phone, purpose.as_str(), code, ttl_secs);
    let outbox = sms_outbox::enqueue(&txn, keys, &phone_key, &message, row.expires_at, now).await?;
    txn.commit().await?;
    // At once (the row is born claimed by this request), so a healthy provider does not wait for the
    // sender's poll. A retryable failure leaves
    // the message to the sender (the member waits a little longer for it); a permanent one means no
    // SMS can leave: the code is withdrawn and the member told.
    match sms_outbox::send_claimed(db, keys, sms, limits.retry_base, outbox, now).await? {
        sms_outbox::Outcome::Failed(_) => {
            phone_codes::Entity::delete_by_id(row.id).exec(db).await?;
            Err(AppError::SmsUnavailable)
        }
        _ => Ok(()),
    }
}

/// Uses up `phone`'s live code for `purpose` if `code` is it. Every failure (no code, expired,
/// replaced, used, out of attempts, wrong) is the same INVALID_CODE on `field`. Each call counts one
/// attempt; the [`MAX_ATTEMPTS`]th wrong one kills the code.
pub async fn consume(
    db: &DatabaseConnection,
    keys: &Sealer,
    phone: &str,
    purpose: Purpose,
    code: &str,
    field: &str,
    now: DateTime<Utc>,
) -> AppResult<()> {
    use sea_orm::sea_query::ExprTrait as _;
    let invalid = || AppError::InvalidCode { field: field.to_string() };
    let phone_key = signin::phone_key(keys, phone);
    let Some(row) = phone_codes::Entity::find()
        .filter(phone_codes::Column::PhoneKey.eq(phone_key.clone()))
        .filter(phone_codes::Column::Purpose.eq(purpose.as_str()))
        .filter(phone_codes::Column::UsedAt.is_null())
        .order_by_desc(phone_codes::Column::Id)
        .one(db)
        .await?
    else {
        return Err(invalid());
    };
    if row.expires_at <= now {
        return Err(invalid());
    }
    // The attempt counts before the comparison, and only while attempts are left: concurrent guesses
    // cannot get more than MAX_ATTEMPTS tries between them.
    let counted = phone_codes::Entity::update_many()
        .col_expr(phone_codes::Column::Attempts, Expr::col(phone_codes::Column::Attempts).add(1))
        .filter(phone_codes::Column::Id.eq(row.id))
        .filter(phone_codes::Column::UsedAt.is_null())
        .filter(phone_codes::Column::Attempts.lt(MAX_ATTEMPTS))
        .exec(db)
        .await?;
    if counted.rows_affected == 0 {
        return Err(invalid());
    }
    if !same(&code_hash(keys, &phone_key, purpose, code.trim()), &row.code_hash) {
        // The last attempt used up: the code is dead, whatever comes next.
        phone_codes::Entity::update_many()
            .col_expr(phone_codes::Column::UsedAt, Expr::value(Some(now)))
            .filter(phone_codes::Column::Id.eq(row.id))
            .filter(phone_codes::Column::UsedAt.is_null())
            .filter(phone_codes::Column::Attempts.gte(MAX_ATTEMPTS))
            .exec(db)
            .await?;
        return Err(invalid());
    }
    // Used once: of two requests racing with the right code, one wins.
    let used = phone_codes::Entity::update_many()
        .col_expr(phone_codes::Column::UsedAt, Expr::value(Some(now)))
        .filter(phone_codes::Column::Id.eq(row.id))
        .filter(phone_codes::Column::UsedAt.is_null())
        .exec(db)
        .await?;
    if used.rows_affected == 0 {
        return Err(invalid());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..100 {
            let c = new_code().unwrap();
            assert_eq!(c.len(), CODE_DIGITS);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn country_calling_codes() {
        assert_eq!(country_code("+8613800138000"), "86");
        assert_eq!(country_code("+14155550123"), "1");
        assert_eq!(country_code("+85291234567"), "852");
    }

    #[test]
    fn comparison_is_exact() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
