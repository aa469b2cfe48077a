use sea_orm::entity::prelude::*;

/// One searchable thing (`kind`: post, board, user) and its search tokens. The full-text index over
/// `tokens` is back-end specific (FTS5 table or generated tsvector) and not part of this model.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "search_documents")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub kind: String,
    pub ref_id: i64,
    pub board_id: Option<i64>,
    pub tokens: String,
    /// Unix seconds.
    pub published_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
