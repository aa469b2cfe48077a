//! Photos and short videos in private messages: an upload of kind MESSAGE_PHOTO or MESSAGE_VIDEO is
//! sealed like an ID photo and, once sent, belongs to one message.

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
                    .table(a("media"))
                    .add_column(ColumnDef::new(a("message_id")).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(Index::create().name("media_message").table(a("media")).col(a("message_id")).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("media_message").table(a("media")).to_owned()).await?;
        manager.alter_table(Table::alter().table(a("media")).drop_column(a("message_id")).to_owned()).await
    }
}
