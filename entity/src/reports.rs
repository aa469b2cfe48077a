use sea_orm::entity::prelude::*;

/// One member's report of a post, comment, private message, member or live room. Reports about the
/// same target form one case in the moderation queue; resolving the case settles all its open reports.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "reports")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub reporter_id: i64,
    /// POST, COMMENT, MESSAGE, USER or LIVE_STREAM.
    pub target_kind: String,
    pub target_id: i64,
    pub reason: String,
    pub note: Option<String>,
    /// OPEN, DISMISSED or ACTIONED.
    pub status: String,
    /// What the moderator did: DISMISS, HIDE, DELETE or BAN.
    pub outcome: Option<String>,
    pub handled_by: Option<i64>,
    pub handled_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
