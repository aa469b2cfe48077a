use sea_orm::entity::prelude::*;

/// The words of a post or comment a moderator hid, kept for an appeal. The post or comment itself is
/// taken down and blanked as a deleted one is, so no read path can show them; erasing the author's
/// account erases these rows too.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "hidden_content")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// POST or COMMENT.
    pub target_kind: String,
    pub target_id: i64,
    pub author_id: i64,
    /// `{"title", "body", "imageUrls"}` of a post, `{"body"}` of a comment.
    pub content: Json,
    pub hidden_by: i64,
    pub hidden_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
