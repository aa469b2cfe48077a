//! Leases for background jobs that must run on one gateway instance at a time (the retention
//! purge): a row per job naming its holder until a time. Taking a lease is one conditional UPDATE,
//! which behaves the same on SQLite and PostgreSQL and needs no Redis.

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
            .create_table(
                Table::create()
                    .table(a("job_leases"))
                    .if_not_exists()
                    .col(ColumnDef::new(a("name")).string().not_null().primary_key())
                    .col(ColumnDef::new(a("holder")).string().not_null())
                    .col(ColumnDef::new(a("expires_at")).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(a("job_leases")).to_owned()).await
    }
}
