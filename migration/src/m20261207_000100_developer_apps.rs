//! Third-party apps (issue 16): verified members register developer apps, an ADMIN reviews them.
//! The OAuth flows build on these rows.

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
                    .table(a("developer_apps"))
                    .col(ColumnDef::new(a("id")).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(a("client_id")).string_len(64).not_null().unique_key())
                    .col(ColumnDef::new(a("owner_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("name")).string_len(128).not_null())
                    .col(ColumnDef::new(a("description")).text().not_null())
                    .col(ColumnDef::new(a("homepage_url")).string_len(512).not_null())
                    .col(ColumnDef::new(a("redirect_uris")).json().not_null())
                    .col(ColumnDef::new(a("confidential")).boolean().not_null())
                    .col(ColumnDef::new(a("secret_hash")).string_len(64).null())
                    .col(ColumnDef::new(a("status")).string_len(16).not_null())
                    .col(ColumnDef::new(a("review_reason")).text().null())
                    .col(ColumnDef::new(a("reviewer_id")).big_integer().null())
                    .col(ColumnDef::new(a("reviewed_at")).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(a("created_at")).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("developer_apps_owner").table(a("developer_apps")).col(a("owner_id")).to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("developer_apps_status")
                    .table(a("developer_apps"))
                    .col(a("status"))
                    .col(a("id"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(a("developer_apps")).to_owned()).await
    }
}
