use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "live_chat_messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub stream_id: i64,
    pub seq: i64,
    pub user_id: i64,
    /// Emptied when a moderator deletes the line; the row stays so chat cursors stay contiguous.
    pub body: String,
    pub created_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
