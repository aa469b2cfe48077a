//! `sendMessage` may carry the client's own id for the message, so a retry after a timeout or a
//! lost answer returns the message already stored instead of sending it twice. Unique per sender;
//! messages sent without one (NULL) are not constrained, on SQLite and PostgreSQL alike.

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
                    .table(a("messages"))
                    .add_column(ColumnDef::new(a("client_message_id")).string_len(64).null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("messages_sender_client_id")
                    .table(a("messages"))
                    .col(a("sender_id"))
                    .col(a("client_message_id"))
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("messages_sender_client_id").table(a("messages")).to_owned()).await?;
        manager.alter_table(Table::alter().table(a("messages")).drop_column(a("client_message_id")).to_owned()).await
    }
}
