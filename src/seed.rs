//! Deterministic demo data. Filled in below.

use sea_orm::DatabaseConnection;

pub struct Size {
    pub users: u32,
    pub posts: u32,
}

pub async fn run(_db: &DatabaseConnection, _size: Size, _seed: u64) -> Result<String, sea_orm::DbErr> {
    Ok(String::new())
}
