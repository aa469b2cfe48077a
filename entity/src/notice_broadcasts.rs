use sea_orm::entity::prelude::*;

/// A notice staff sent to many members at once (`kind`: the notification kind, e.g.
/// `SECURITY_NOTICE`). `recipients` counts the members reached in-site; `finished_at` is set once
/// every chunk is written. Its SMS are the `sms_outbox` rows that name it.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "notice_broadcasts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub kind: String,
    pub sent_by: Option<i64>,
    pub recipients: i64,
    pub finished_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
