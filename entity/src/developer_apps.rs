use sea_orm::entity::prelude::*;

/// A third-party app a member registered to use the API on members' behalf (OAuth 2.1 client). Only
/// an APPROVED app may ask members for consent.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "developer_apps")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The OAuth `client_id`: random, public.
    #[sea_orm(unique)]
    pub client_id: String,
    /// The member who registered it (its developer).
    pub owner_id: i64,
    pub name: String,
    pub description: String,
    pub homepage_url: String,
    /// The exact redirect URIs (a JSON array of strings).
    pub redirect_uris: Json,
    /// A server-side app that keeps a secret; a public one (a mobile or single-page app) has none.
    pub confidential: bool,
    /// Hex SHA-256 of the client secret (confidential apps); the secret is shown once.
    pub secret_hash: Option<String>,
    /// PENDING, APPROVED, REJECTED, or DELETED (a tombstone: members' activity keeps naming it).
    pub status: String,
    pub review_reason: Option<String>,
    pub reviewer_id: Option<i64>,
    pub reviewed_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    /// When its developer deleted it; it counts toward their cap for a while after.
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
