//! Notices reach members by SMS as well as in-site. A staff broadcast gets a row of its own, and
//! each SMS it queues points back at it, so ADMINs can follow its delivery.

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
                    .table(a("notice_broadcasts"))
                    .col(ColumnDef::new(a("id")).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(a("kind")).string_len(32).not_null())
                    .col(ColumnDef::new(a("sent_by")).big_integer().null())
                    .col(ColumnDef::new(a("recipients")).big_integer().not_null().default(0))
                    .col(ColumnDef::new(a("finished_at")).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(a("created_at")).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(a("sms_outbox"))
                    .add_column(ColumnDef::new(a("broadcast_id")).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("sms_outbox_broadcast").table(a("sms_outbox")).col(a("broadcast_id")).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("sms_outbox_broadcast").table(a("sms_outbox")).to_owned()).await?;
        manager.alter_table(Table::alter().table(a("sms_outbox")).drop_column(a("broadcast_id")).to_owned()).await?;
        manager.drop_table(Table::drop().table(a("notice_broadcasts")).to_owned()).await
    }
}
