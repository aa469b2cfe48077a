use sea_orm::entity::prelude::*;

/// An access or refresh token issued under a grant.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_tokens")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Hex SHA-256 of the token; the token itself is never stored.
    #[sea_orm(unique)]
    pub token_hash: String,
    pub grant_id: i64,
    /// ACCESS or REFRESH.
    pub kind: String,
    /// The chain of refreshes a code exchange started (the code's id): revoking a refresh token
    /// ends its chain, not the app's other sessions with the member.
    pub family: i64,
    pub scopes: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// A refresh token is used once (rotation); presenting it again revokes the grant.
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
