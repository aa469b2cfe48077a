use sea_orm::entity::prelude::*;

/// A real-name verification. The name and number are sealed (AES-256-GCM, with the id of the key
/// that sealed them); only masked forms are stored in the clear.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "identity_verifications")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    pub document_type: String,
    pub real_name_sealed: String,
    pub id_number_sealed: String,
    pub real_name_masked: String,
    pub id_number_masked: String,
    pub front_media_id: String,
    pub back_media_id: String,
    /// PENDING, APPROVED or REJECTED.
    pub status: String,
    pub reason: Option<String>,
    pub reviewer_id: Option<i64>,
    pub submitted_at: DateTimeUtc,
    pub reviewed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
