//! The SMS outbox: every SMS is a row of `sms_outbox` first, written in the transaction of what it
//! announces, then sent by whoever claims it.
//!
//! - [`enqueue`] writes the row (number and message sealed, the number's keyed hash beside them).
//! - [`attempt`] claims a row with one conditional UPDATE (due and `PENDING`, or `SENDING` with a
//!   lapsed claim after a crash), so of two instances racing for a row exactly one sends it; it then
//!   asks the provider and records the outcome: `SENT` once, `PENDING` again with an exponential
//!   backoff after a retryable failure, `FAILED` after a permanent one, after [`MAX_ATTEMPTS`], or
//!   once the message has expired (a code nobody can use any more is not worth sending).
//! - [`spawn`] is each instance's sender: it polls for due rows and attempts them. `requestPhoneCode`
//!   writes its row already claimed and tries it at once ([`send_claimed`]), so a healthy provider
//!   delivers without waiting for a poll and no poller races the request for the first try.
//! - The retention purge removes rows a day after they were written.

use chrono::{DateTime, Duration, Utc};
use entity::sms_outbox;
use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use crate::error::{AppError, AppResult};
use crate::seal::Sealer;
use crate::sms::{SendError, Sms, SmsMessage};

/// Tries one message gets before it is given up.
pub const MAX_ATTEMPTS: i32 = 5;
/// How long a claim holds: longer than one provider call can take, so a live sender is never
/// overtaken, and short enough that a crashed one's row is soon retried.
pub const CLAIM_FOR: Duration = Duration::seconds(30);
/// The longest wait between two tries.
pub const MAX_BACKOFF: Duration = Duration::seconds(60);
/// Due rows one poll attempts.
const BATCH: u64 = 50;
/// `last_error` is cut to this many characters.
const MAX_ERROR_CHARS: usize = 200;
const AAD_PHONE: &str = "sms_outbox.phone";
const AAD_BODY: &str = "sms_outbox.body";

/// Where a row is; stored as its upper-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Sending,
    Sent,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Sending => "SENDING",
            Status::Sent => "SENT",
            Status::Failed => "FAILED",
        }
    }
}

/// When to try again after `attempts` tries: `base * 2^(attempts-1)`, at most [`MAX_BACKOFF`].
pub fn backoff(base: Duration, attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.clamp(1, 16) - 1).unwrap_or(0);
    let ms = Ord::max(base.num_milliseconds(), 1).saturating_mul(1_i64 << exp);
    Ord::min(Duration::milliseconds(ms), MAX_BACKOFF)
}

/// Writes `message` to the outbox (on `db`, which may be a transaction), already claimed by the
/// caller for its first try ([`send_claimed`]): no poller can take it from under the request that
/// wrote it. Should the caller never try, the claim lapses and a poller sends it.
pub async fn enqueue(
    db: &impl ConnectionTrait,
    keys: &Sealer,
    phone_key: &str,
    message: &SmsMessage,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> AppResult<sms_outbox::Model> {
    let body = serde_json::to_string(message).map_err(AppError::internal)?;
    let row = sms_outbox::ActiveModel {
        phone_key: Set(phone_key.to_string()),
        phone_sealed: Set(keys.seal_text(&message.phone, AAD_PHONE).map_err(AppError::internal)?),
        body_sealed: Set(keys.seal_text(&body, AAD_BODY).map_err(AppError::internal)?),
        attempts: Set(1),
        next_attempt_at: Set(now),
        claimed_until: Set(Some(now + CLAIM_FOR)),
        status: Set(Status::Sending.as_str().to_string()),
        last_error: Set(None),
        created_at: Set(now),
        expires_at: Set(expires_at),
        sent_at: Set(None),
        broadcast_id: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(row)
}

/// How long a notice may wait for a provider that cannot take it before it is given up.
pub const NOTICE_LIFETIME: Duration = Duration::hours(12);

/// The row of a notice to `phone` (E.164), due now, for the senders' next poll: a broadcast writes
/// thousands in its transactions (one statement per chunk) and must not wait on the provider.
pub fn notice_row(
    keys: &Sealer,
    phone: &str,
    notice: &str,
    broadcast_id: Option<i64>,
    now: DateTime<Utc>,
) -> AppResult<sms_outbox::ActiveModel> {
    let message = SmsMessage::notice(phone.to_string(), notice.to_string());
    let body = serde_json::to_string(&message).map_err(AppError::internal)?;
    Ok(sms_outbox::ActiveModel {
        phone_key: Set(crate::services::signin::phone_key(keys, phone)),
        phone_sealed: Set(keys.seal_text(phone, AAD_PHONE).map_err(AppError::internal)?),
        body_sealed: Set(keys.seal_text(&body, AAD_BODY).map_err(AppError::internal)?),
        attempts: Set(0),
        next_attempt_at: Set(now),
        claimed_until: Set(None),
        status: Set(Status::Pending.as_str().to_string()),
        last_error: Set(None),
        created_at: Set(now),
        expires_at: Set(now + NOTICE_LIFETIME),
        sent_at: Set(None),
        broadcast_id: Set(broadcast_id),
        ..Default::default()
    })
}

/// Where a broadcast's SMS stand: `(pending, sent, failed)`, `SENDING` counted as pending.
pub async fn broadcast_progress(db: &impl ConnectionTrait, broadcast_id: i64) -> AppResult<(i64, i64, i64)> {
    let rows: Vec<(String, i64)> = sms_outbox::Entity::find()
        .select_only()
        .column(sms_outbox::Column::Status)
        .column_as(sms_outbox::Column::Id.count(), "n")
        .filter(sms_outbox::Column::BroadcastId.eq(broadcast_id))
        .group_by(sms_outbox::Column::Status)
        .into_tuple()
        .all(db)
        .await?;
    Ok(tally(rows))
}

/// `(status, count)` rows of an outbox as `(pending, sent, failed)`.
pub fn tally(rows: Vec<(String, i64)>) -> (i64, i64, i64) {
    let mut counts = (0, 0, 0);
    for (status, n) in rows {
        match status.as_str() {
            "SENT" => counts.1 += n,
            "FAILED" => counts.2 += n,
            _ => counts.0 += n,
        }
    }
    counts
}

/// What one [`attempt`] came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Another sender holds the row, or it is not due, or it is done.
    NotClaimed,
    Sent,
    /// Left `PENDING` for a later try.
    Retrying(String),
    Failed(String),
}

fn cut(s: &str) -> String {
    s.chars().take(MAX_ERROR_CHARS).collect()
}

/// How a try is recorded, for either outbox: `failure` is `None` when delivered, else whether
/// trying again may help and why. Returns the row's new status, the outcome, when it is next due,
/// and its `last_error` (cut to [`MAX_ERROR_CHARS`]).
pub fn settle(
    failure: Option<(bool, String)>,
    attempts: i32,
    base: Duration,
    now: DateTime<Utc>,
) -> (Status, Outcome, DateTime<Utc>, Option<String>) {
    match failure {
        None => (Status::Sent, Outcome::Sent, now, None),
        Some((true, why)) if attempts < MAX_ATTEMPTS => {
            let error = cut(&why);
            (Status::Pending, Outcome::Retrying(why), now + backoff(base, attempts), Some(error))
        }
        Some((_, why)) => {
            let error = cut(&why);
            (Status::Failed, Outcome::Failed(why), now, Some(error))
        }
    }
}

/// Rows a sender may take: due and `PENDING`, or `SENDING` under a claim that lapsed (a crash).
fn claimable(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(sms_outbox::Column::Status.eq(Status::Pending.as_str()).and(sms_outbox::Column::NextAttemptAt.lte(now)))
        .add(sms_outbox::Column::Status.eq(Status::Sending.as_str()).and(sms_outbox::Column::ClaimedUntil.lt(now)))
}

/// Claims row `id` if it is due and sends it; see the module notes.
pub async fn attempt(
    db: &DatabaseConnection,
    keys: &Sealer,
    sms: &Sms,
    base: Duration,
    id: i64,
    now: DateTime<Utc>,
) -> AppResult<Outcome> {
    let claimed = sms_outbox::Entity::update_many()
        .col_expr(sms_outbox::Column::Status, Expr::value(Status::Sending.as_str()))
        .col_expr(sms_outbox::Column::ClaimedUntil, Expr::value(Some(now + CLAIM_FOR)))
        .col_expr(sms_outbox::Column::Attempts, Expr::col(sms_outbox::Column::Attempts).add(1))
        .filter(sms_outbox::Column::Id.eq(id))
        .filter(claimable(now))
        .exec(db)
        .await?;
    if claimed.rows_affected == 0 {
        return Ok(Outcome::NotClaimed);
    }
    let Some(row) = sms_outbox::Entity::find_by_id(id).one(db).await? else {
        return Ok(Outcome::NotClaimed);
    };
    send_claimed(db, keys, sms, base, row, now).await
}

/// Sends `row`, which this caller has claimed (its `attempts` already count this try), and records
/// the outcome.
pub async fn send_claimed(
    db: &DatabaseConnection,
    keys: &Sealer,
    sms: &Sms,
    base: Duration,
    row: sms_outbox::Model,
    now: DateTime<Utc>,
) -> AppResult<Outcome> {
    let id = row.id;
    let result = if row.expires_at <= now {
        Err(SendError::Permanent("expired before it could be sent".into()))
    } else {
        let phone = keys.open_text(&row.phone_sealed, AAD_PHONE).map_err(AppError::internal)?;
        let body = keys.open_text(&row.body_sealed, AAD_BODY).map_err(AppError::internal)?;
        let mut message: SmsMessage = serde_json::from_str(&body).map_err(AppError::internal)?;
        message.phone = phone;
        sms.provider().deliver(&message).await
    };
    let failure = result.err().map(|e| match e {
        SendError::Retryable(why) => (true, why),
        SendError::Permanent(why) => (false, why),
    });
    let (status, outcome, next, error) = settle(failure, row.attempts, base, now);
    match &outcome {
        Outcome::Retrying(e) => {
            tracing::warn!(id, phone = %mask_key(&row.phone_key), attempts = row.attempts, error = %e, "SMS not sent; retried later")
        }
        Outcome::Failed(e) => {
            tracing::error!(id, phone = %mask_key(&row.phone_key), attempts = row.attempts, error = %e, "SMS given up")
        }
        _ => {}
    }
    // Only while this sender's claim holds the row: a lapsed claim retaken elsewhere is not undone.
    sms_outbox::Entity::update_many()
        .col_expr(sms_outbox::Column::Status, Expr::value(status.as_str()))
        .col_expr(sms_outbox::Column::ClaimedUntil, Expr::value(None::<DateTime<Utc>>))
        .col_expr(sms_outbox::Column::NextAttemptAt, Expr::value(next))
        .col_expr(sms_outbox::Column::LastError, Expr::value(error))
        .col_expr(sms_outbox::Column::SentAt, Expr::value((status == Status::Sent).then_some(now)))
        .filter(sms_outbox::Column::Id.eq(id))
        .filter(sms_outbox::Column::Status.eq(Status::Sending.as_str()))
        .filter(sms_outbox::Column::Attempts.eq(row.attempts))
        .exec(db)
        .await?;
    Ok(outcome)
}

/// The first characters of a number's keyed hash: enough to follow one number through the log.
fn mask_key(phone_key: &str) -> String {
    phone_key.chars().take(8).collect()
}

/// Attempts every due row (up to a batch); returns how many were sent.
pub async fn send_due(
    db: &DatabaseConnection,
    keys: &Sealer,
    sms: &Sms,
    base: Duration,
    now: DateTime<Utc>,
) -> AppResult<usize> {
    let due = sms_outbox::Entity::find()
        .select_only()
        .column(sms_outbox::Column::Id)
        .filter(claimable(now))
        .order_by_asc(sms_outbox::Column::NextAttemptAt)
        .limit(BATCH)
        .into_tuple::<i64>()
        .all(db)
        .await?;
    let mut sent = 0;
    for id in due {
        if attempt(db, keys, sms, base, id, now).await? == Outcome::Sent {
            sent += 1;
        }
    }
    Ok(sent)
}

/// This instance's sender: every `poll`, the due rows.
pub fn spawn(
    db: DatabaseConnection,
    store: crate::media::MediaStore,
    sms: Sms,
    poll: std::time::Duration,
    base: Duration,
) {
    tokio::spawn(crate::db::background(async move {
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(err) = send_due(&db, store.sealer(), &sms, base, Utc::now()).await {
                tracing::warn!(?err, "SMS outbox: sending failed; retried at the next poll");
            }
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let base = Duration::seconds(2);
        assert_eq!(backoff(base, 1), Duration::seconds(2));
        assert_eq!(backoff(base, 2), Duration::seconds(4));
        assert_eq!(backoff(base, 4), Duration::seconds(16));
        assert_eq!(backoff(base, 10), MAX_BACKOFF);
    }
}
