use sea_orm::entity::prelude::*;

/// One email code sent (or, for a reset asked for an address no member verified, counted without a
/// message). `email_key` is the keyed hash of the address, `code_hash` the keyed hash of the code
/// bound to its address and purpose. A code is live while `used_at` is null, `expires_at` is ahead
/// and `attempts` is under the limit.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "email_codes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The member the code is for; null for a reset asked for an unknown address.
    pub user_id: Option<i64>,
    pub email_key: String,
    /// `VERIFY` or `RESET_PASSWORD`.
    pub purpose: String,
    pub code_hash: String,
    pub attempts: i32,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// When the code was used, replaced by a newer one, or ran out of attempts.
    pub used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
