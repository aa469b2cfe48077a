use sea_orm::entity::prelude::*;

/// A staff member read or decided something about a member's personal data.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub actor_id: i64,
    pub actor_role: String,
    pub action: String,
    pub subject_user_id: Option<i64>,
    pub target: String,
    pub ip: Option<String>,
    /// Why, in the staff member's words; required for actions on a member, absent for reads.
    pub reason: Option<String>,
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
