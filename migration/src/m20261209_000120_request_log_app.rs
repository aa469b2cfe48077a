//! The request log names the third-party app that acted for the member (an OAuth access token), so
//! `me.activity` tells the member's own requests from those an app made in their name.
//!
//! No foreign key: rows are written in batches off the request path, and an app erased between a
//! request and its batch must not fail the batch. A developer deleting an app leaves a tombstone
//! (`developer_apps.deleted_at`), so members' logs keep naming it; only the developer's erasure
//! removes the row, and a dangling id then reads as "an app since erased".

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("request_log"))
                    .add_column(ColumnDef::new(Alias::new("app_id")).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("developer_apps"))
                    .add_column(ColumnDef::new(Alias::new("deleted_at")).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(Alias::new("developer_apps")).drop_column(Alias::new("deleted_at")).to_owned(),
            )
            .await?;
        manager
            .alter_table(Table::alter().table(Alias::new("request_log")).drop_column(Alias::new("app_id")).to_owned())
            .await
    }
}
