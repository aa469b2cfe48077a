use sea_orm::entity::prelude::*;

/// A viewer muted in one live room (by its host or a moderator) until `muted_until`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "live_chat_mutes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub stream_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: i64,
    pub muted_until: DateTimeUtc,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
