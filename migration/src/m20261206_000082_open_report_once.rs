//! A member has at most one open report on a target: two taps that race insert one row (the second
//! insert fails on this index and the service answers with the first report).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn a(name: &str) -> Alias {
    Alias::new(name)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("reports_open_once")
                    .table(a("reports"))
                    .col(a("reporter_id"))
                    .col(a("target_kind"))
                    .col(a("target_id"))
                    .unique()
                    .and_where(Expr::col(a("status")).eq("OPEN"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("reports_open_once").table(a("reports")).to_owned()).await
    }
}
