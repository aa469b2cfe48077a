//! Members report posts, comments, private messages, members and live rooms; moderators work through
//! the reports grouped by what they are about. A post or comment can be hidden: taken down like a
//! deleted one, its words kept apart for an appeal. A suspension can end on its own.

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
                    .table(a("reports"))
                    .col(ColumnDef::new(a("id")).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(a("reporter_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("target_kind")).string_len(16).not_null())
                    .col(ColumnDef::new(a("target_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("reason")).string_len(16).not_null())
                    .col(ColumnDef::new(a("note")).text().null())
                    .col(ColumnDef::new(a("status")).string_len(16).not_null())
                    .col(ColumnDef::new(a("outcome")).string_len(16).null())
                    .col(ColumnDef::new(a("handled_by")).big_integer().null())
                    .col(ColumnDef::new(a("handled_at")).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(a("created_at")).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        // The queue: open reports grouped by target; and a target's reports when it is resolved.
        manager
            .create_index(
                Index::create()
                    .name("reports_status_target")
                    .table(a("reports"))
                    .col(a("status"))
                    .col(a("target_kind"))
                    .col(a("target_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("reports_reporter")
                    .table(a("reports"))
                    .col(a("reporter_id"))
                    .col(a("id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(a("hidden_content"))
                    .col(ColumnDef::new(a("id")).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(a("target_kind")).string_len(16).not_null())
                    .col(ColumnDef::new(a("target_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("author_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("content")).json().not_null())
                    .col(ColumnDef::new(a("hidden_by")).big_integer().not_null())
                    .col(ColumnDef::new(a("hidden_at")).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("hidden_content_author").table(a("hidden_content")).col(a("author_id")).to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(a("users"))
                    .add_column(ColumnDef::new(a("banned_until")).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(a("users")).drop_column(a("banned_until")).to_owned()).await?;
        manager.drop_table(Table::drop().table(a("hidden_content")).to_owned()).await?;
        manager.drop_table(Table::drop().table(a("reports")).to_owned()).await
    }
}
