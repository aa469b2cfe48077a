use sea_orm::entity::prelude::*;

/// One GraphQL operation as the privacy policy says it is recorded.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "request_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub at: DateTimeUtc,
    pub duration_ms: f64,
    pub user_id: Option<i64>,
    /// `http` or `ws`.
    pub transport: String,
    pub operation: String,
    /// The operation signed the member in (login or registration): the login history.
    pub sign_in: bool,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub language: Option<String>,
    /// `pc`, `smartphone`, `mobilephone`, `crawler`, ... as parsed from the user agent or client hints.
    pub device: Option<String>,
    pub os: Option<String>,
    pub browser: Option<String>,
    /// The developer app whose OAuth token made the request; null for the member's own sessions.
    pub app_id: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
