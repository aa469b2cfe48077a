//! The email outbox: every email is a row of `email_outbox` first, written in the transaction of
//! what it announces (a code, a security notice), then sent by whoever claims it. The same design
//! as the SMS outbox ([`crate::services::sms_outbox`]):
//!
//! - [`enqueue`] writes the row (address, subject and body sealed), either already claimed by the
//!   caller for an immediate first try ([`send_claimed`]) or due at once for the pollers.
//! - [`attempt`] claims a row with one conditional UPDATE (due and `PENDING`, or `SENDING` with a
//!   lapsed claim after a crash), so of two instances racing for a row exactly one sends it; the
//!   outcome is recorded: `SENT` once, `PENDING` again with an exponential backoff after a
//!   transient failure (4xx, no connection), `FAILED` after a permanent one (5xx), after
//!   [`MAX_ATTEMPTS`], or once the message has expired. `last_error` starts with the failure's code.
//! - [`spawn`] is each instance's sender: it polls for due rows and attempts them.
//! - The retention purge removes rows a day after they were written; an erasure, a member's rows.

use chrono::{DateTime, Duration, Utc};
use entity::email_outbox;
use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use crate::error::{AppError, AppResult};
use crate::mail::{Email, Mailer, SendError};
use crate::seal::Sealer;
pub use crate::services::sms_outbox::{MAX_ATTEMPTS, Outcome, Status, backoff, tally};

/// How long a claim holds: longer than one SMTP conversation may take ([`crate::mail::SMTP_TIMEOUT`]
/// for each step), so a live sender is never overtaken.
pub const CLAIM_FOR: Duration = Duration::seconds(90);
/// Due rows one poll attempts.
const BATCH: u64 = 50;
const AAD_ADDRESS: &str = "email_outbox.address";
const AAD_SUBJECT: &str = "email_outbox.subject";
const AAD_BODY: &str = "email_outbox.body";

/// What a message is; stored as its upper-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Carries a code (`addEmail`, password reset).
    Code,
    /// A security notice (new-device sign-in, password changed).
    Notice,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Code => "CODE",
            Kind::Notice => "NOTICE",
        }
    }
}

/// Writes `email` to the outbox (on `db`, which may be a transaction). `claimed`: the caller tries
/// it at once with [`send_claimed`] (should it never try, the claim lapses and a poller sends it);
/// otherwise the row is due now for the pollers.
#[allow(clippy::too_many_arguments)]
pub async fn enqueue(
    db: &impl ConnectionTrait,
    keys: &Sealer,
    user_id: i64,
    kind: Kind,
    email: &Email,
    expires_at: DateTime<Utc>,
    claimed: bool,
    broadcast_id: Option<i64>,
    now: DateTime<Utc>,
) -> AppResult<email_outbox::Model> {
    Ok(row(keys, user_id, kind, email, expires_at, claimed, broadcast_id, now)?.insert(db).await?)
}

/// The row [`enqueue`] writes, for callers that write many in one statement.
#[allow(clippy::too_many_arguments)]
pub fn row(
    keys: &Sealer,
    user_id: i64,
    kind: Kind,
    email: &Email,
    expires_at: DateTime<Utc>,
    claimed: bool,
    broadcast_id: Option<i64>,
    now: DateTime<Utc>,
) -> AppResult<email_outbox::ActiveModel> {
    let seal = |text: &str, aad: &str| keys.seal_text(text, aad).map_err(AppError::internal);
    Ok(email_outbox::ActiveModel {
        user_id: Set(user_id),
        kind: Set(kind.as_str().to_string()),
        address_sealed: Set(seal(&email.to, AAD_ADDRESS)?),
        subject_sealed: Set(seal(&email.subject, AAD_SUBJECT)?),
        body_sealed: Set(seal(&email.body, AAD_BODY)?),
        attempts: Set(i32::from(claimed)),
        next_attempt_at: Set(now),
        claimed_until: Set(claimed.then_some(now + CLAIM_FOR)),
        status: Set(if claimed { Status::Sending } else { Status::Pending }.as_str().to_string()),
        last_error: Set(None),
        created_at: Set(now),
        expires_at: Set(expires_at),
        sent_at: Set(None),
        broadcast_id: Set(broadcast_id),
        ..Default::default()
    })
}

/// Where a broadcast's emails stand: `(pending, sent, failed)`, `SENDING` counted as pending.
pub async fn broadcast_progress(db: &impl ConnectionTrait, broadcast_id: i64) -> AppResult<(i64, i64, i64)> {
    let rows: Vec<(String, i64)> = email_outbox::Entity::find()
        .select_only()
        .column(email_outbox::Column::Status)
        .column_as(email_outbox::Column::Id.count(), "n")
        .filter(email_outbox::Column::BroadcastId.eq(broadcast_id))
        .group_by(email_outbox::Column::Status)
        .into_tuple()
        .all(db)
        .await?;
    Ok(tally(rows))
}

fn claimable(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(
            email_outbox::Column::Status.eq(Status::Pending.as_str()).and(email_outbox::Column::NextAttemptAt.lte(now)),
        )
        .add(email_outbox::Column::Status.eq(Status::Sending.as_str()).and(email_outbox::Column::ClaimedUntil.lt(now)))
}

/// Claims row `id` if it is due and sends it; see the module notes.
pub async fn attempt(
    db: &DatabaseConnection,
    keys: &Sealer,
    mailer: &Mailer,
    base: Duration,
    id: i64,
    now: DateTime<Utc>,
) -> AppResult<Outcome> {
    let claimed = email_outbox::Entity::update_many()
        .col_expr(email_outbox::Column::Status, Expr::value(Status::Sending.as_str()))
        .col_expr(email_outbox::Column::ClaimedUntil, Expr::value(Some(now + CLAIM_FOR)))
        .col_expr(email_outbox::Column::Attempts, Expr::col(email_outbox::Column::Attempts).add(1))
        .filter(email_outbox::Column::Id.eq(id))
        .filter(claimable(now))
        .exec(db)
        .await?;
    if claimed.rows_affected == 0 {
        return Ok(Outcome::NotClaimed);
    }
    let Some(row) = email_outbox::Entity::find_by_id(id).one(db).await? else {
        return Ok(Outcome::NotClaimed);
    };
    send_claimed(db, keys, mailer, base, row, now).await
}

/// Sends `row`, which this caller has claimed (its `attempts` already count this try), and records
/// the outcome.
pub async fn send_claimed(
    db: &DatabaseConnection,
    keys: &Sealer,
    mailer: &Mailer,
    base: Duration,
    row: email_outbox::Model,
    now: DateTime<Utc>,
) -> AppResult<Outcome> {
    let id = row.id;
    let result = if row.expires_at <= now {
        Err(SendError::Permanent { code: "EXPIRED".into(), detail: "expired before it could be sent".into() })
    } else {
        let open = |text: &str, aad: &str| keys.open_text(text, aad).map_err(AppError::internal);
        let email = Email {
            to: open(&row.address_sealed, AAD_ADDRESS)?,
            subject: open(&row.subject_sealed, AAD_SUBJECT)?,
            body: open(&row.body_sealed, AAD_BODY)?,
        };
        mailer.deliver(&email).await
    };
    let failure = result.err().map(|e| (matches!(e, SendError::Retryable { .. }), e.stored()));
    let (status, outcome, next, error) = crate::services::sms_outbox::settle(failure, row.attempts, base, now);
    match &outcome {
        Outcome::Retrying(e) => {
            tracing::warn!(id, user_id = row.user_id, attempts = row.attempts, error = %e, "email not sent; retried later")
        }
        Outcome::Failed(e) => {
            tracing::error!(id, user_id = row.user_id, attempts = row.attempts, error = %e, "email given up")
        }
        _ => {}
    }
    // Only while this sender's claim holds the row: a lapsed claim retaken elsewhere is not undone.
    email_outbox::Entity::update_many()
        .col_expr(email_outbox::Column::Status, Expr::value(status.as_str()))
        .col_expr(email_outbox::Column::ClaimedUntil, Expr::value(None::<DateTime<Utc>>))
        .col_expr(email_outbox::Column::NextAttemptAt, Expr::value(next))
        .col_expr(email_outbox::Column::LastError, Expr::value(error))
        .col_expr(email_outbox::Column::SentAt, Expr::value((status == Status::Sent).then_some(now)))
        .filter(email_outbox::Column::Id.eq(id))
        .filter(email_outbox::Column::Status.eq(Status::Sending.as_str()))
        .filter(email_outbox::Column::Attempts.eq(row.attempts))
        .exec(db)
        .await?;
    Ok(outcome)
}

/// Attempts every due row (up to a batch); returns how many were sent.
pub async fn send_due(
    db: &DatabaseConnection,
    keys: &Sealer,
    mailer: &Mailer,
    base: Duration,
    now: DateTime<Utc>,
) -> AppResult<usize> {
    let due = email_outbox::Entity::find()
        .select_only()
        .column(email_outbox::Column::Id)
        .filter(claimable(now))
        .order_by_asc(email_outbox::Column::NextAttemptAt)
        .limit(BATCH)
        .into_tuple::<i64>()
        .all(db)
        .await?;
    let mut sent = 0;
    for id in due {
        if attempt(db, keys, mailer, base, id, Utc::now()).await? == Outcome::Sent {
            sent += 1;
        }
    }
    Ok(sent)
}

/// This instance's sender: every `poll`, the due rows.
pub fn spawn(
    db: DatabaseConnection,
    store: crate::media::MediaStore,
    mailer: Mailer,
    poll: std::time::Duration,
    base: Duration,
) {
    tokio::spawn(crate::db::background(async move {
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(err) = send_due(&db, store.sealer(), &mailer, base, Utc::now()).await {
                tracing::warn!(?err, "email outbox: sending failed; retried at the next poll");
            }
        }
    }));
}
