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
        // Two taps that raced before this index may have left a member two open reports on one
        // target: keep the first.
        manager
            .get_connection()
            .execute_unprepared(
                "DELETE FROM reports WHERE status = 'OPEN' AND id NOT IN \
                 (SELECT MIN(id) FROM reports WHERE status = 'OPEN' GROUP BY reporter_id, target_kind, target_id)",
            )
            .await?;
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
