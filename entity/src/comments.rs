use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "comments")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub post_id: i64,
    pub author_id: i64,
    /// The comment this one replies to; `None` for a top-level comment on the post.
    pub parent_id: Option<i64>,
    #[sea_orm(column_type = "Text")]
    pub body: String,
    pub like_count: i64,
    pub reply_count: i64,
    pub created_at: DateTimeUtc,
    /// Soft delete: the row stays so replies keep their place in the thread.
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
