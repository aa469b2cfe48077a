use sea_orm::entity::prelude::*;

/// An authorization code: single use, short-lived, bound to its redirect URI and PKCE challenge.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_codes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Hex SHA-256 of the code; the code itself is never stored.
    #[sea_orm(unique)]
    pub code_hash: String,
    pub grant_id: i64,
    /// The `redirect_uri` the authorization request named, which the token request must repeat
    /// (RFC 6749 §4.1.3); null when it named none (an app with one registered URI).
    pub redirect_uri: Option<String>,
    /// BASE64URL(SHA-256(code_verifier)).
    pub code_challenge: String,
    pub scopes: String,
    pub expires_at: DateTimeUtc,
    /// Set when exchanged; a second exchange is an attack and revokes the grant.
    pub used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::oauth_grants::Entity",
        from = "Column::GrantId",
        to = "super::oauth_grants::Column::Id"
    )]
    Grant,
}

impl Related<super::oauth_grants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Grant.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
