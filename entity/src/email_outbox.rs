use sea_orm::entity::prelude::*;

/// One email to send. `address_sealed`, `subject_sealed` and `body_sealed` are sealed with the
/// sealing key. `kind` is `CODE` or `NOTICE`. `status` is `PENDING` (due at `next_attempt_at`),
/// `SENDING` (claimed by an instance until `claimed_until`), `SENT` or `FAILED` (permanent refusal,
/// out of attempts, or expired before it could go); `last_error` starts with a failure code
/// (`SMTP_550`, `SMTP_451`, `CONNECTION`, `EXPIRED`, ...).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "email_outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    pub kind: String,
    pub address_sealed: String,
    pub subject_sealed: String,
    pub body_sealed: String,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub claimed_until: Option<DateTimeUtc>,
    pub status: String,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    /// Past it the message is pointless (the code it carries has expired): not sent any more.
    pub expires_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
    /// The staff broadcast ([`super::notice_broadcasts`]) this notice belongs to, if any.
    pub broadcast_id: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
