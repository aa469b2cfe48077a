use sea_orm::entity::prelude::*;

/// One push to one subscription, written in the transaction of what it announces and sent by whoever
/// claims it once it is due (after a grace period in which a live socket may show it first). It
/// expires `PUSH_TTL_SECS` after `created_at`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "push_outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub subscription_id: i64,
    pub user_id: i64,
    /// MESSAGE (`ref_id`: the message) or NOTIFICATION (`ref_id`: the notification row).
    pub kind: String,
    pub ref_id: i64,
    /// PENDING, SENDING, SENT, SEEN (shown on a live socket or read first: not sent) or FAILED.
    pub status: String,
    pub attempts: i32,
    /// The first try is due `PUSH_DELAY_MS` after this (written as the creation time); a retry at it.
    pub next_attempt_at: DateTimeUtc,
    pub claimed_until: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
