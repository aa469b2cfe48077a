//! Live rooms are moderated: a line can be deleted (kept as a tombstone, so chat cursors stay
//! contiguous) and a viewer muted in one room until a time. A room may show a cover image.

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
            .alter_table(
                Table::alter()
                    .table(a("live_streams"))
                    .add_column(ColumnDef::new(a("cover_media_id")).string_len(36).null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(a("live_chat_messages"))
                    .add_column(ColumnDef::new(a("deleted_at")).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(a("live_chat_mutes"))
                    .col(ColumnDef::new(a("stream_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("user_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("muted_until")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(a("created_at")).timestamp_with_time_zone().not_null())
                    .primary_key(Index::create().col(a("stream_id")).col(a("user_id")))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("live_chat_mutes_user").table(a("live_chat_mutes")).col(a("user_id")).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(a("live_chat_mutes")).to_owned()).await?;
        manager
            .alter_table(Table::alter().table(a("live_chat_messages")).drop_column(a("deleted_at")).to_owned())
            .await?;
        manager.alter_table(Table::alter().table(a("live_streams")).drop_column(a("cover_media_id")).to_owned()).await
    }
}
