use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// E.164; `None` once the account is erased, so the number can register again.
    #[sea_orm(unique)]
    pub phone: Option<String>,
    pub password_hash: Option<String>,
    #[sea_orm(unique)]
    pub account_name: Option<String>,
    /// The member's address (lower-case): given at sign-up (unverified) or proven with `verifyEmail`.
    pub email: Option<String>,
    pub nickname: String,
    pub avatar_url: Option<String>,
    pub gender: String,
    pub signature: Option<String>,
    pub role: String,
    pub follower_count: i64,
    pub following_count: i64,
    pub post_count: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
    /// Set while the account is suspended by staff.
    pub banned_at: Option<DateTimeUtc>,
    /// When a suspension ends by itself; none while `banned_at` is set means until reinstated.
    pub banned_until: Option<DateTimeUtc>,
    /// When `email` was proven by a code sent to it; null while it is unverified. One live account
    /// at most holds a verified address (a partial unique index).
    pub email_verified_at: Option<DateTimeUtc>,
    /// An address asked for with `addEmail` and not proven yet.
    pub pending_email: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
