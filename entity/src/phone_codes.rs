use sea_orm::entity::prelude::*;

/// One SMS code sent to a number for a purpose. `phone_key` and `ip_key` are keyed hashes (hex
/// HMAC-SHA256), `code_hash` the keyed hash of the code bound to its number and purpose. A code is
/// live while `used_at` is null, `expires_at` is ahead and `attempts` is under the limit.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "phone_codes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub phone_key: String,
    /// `REGISTER`, `LOGIN` or `RESET_PASSWORD`.
    pub purpose: String,
    pub code_hash: String,
    pub attempts: i32,
    pub ip_key: String,
    /// The number's country calling code (`86`), for the per-country daily cap.
    pub country: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// When the code was used, replaced by a newer one, or ran out of attempts.
    pub used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
