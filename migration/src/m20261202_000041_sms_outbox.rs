//! The SMS outbox: a row per message to send, written in the same transaction as what it announces
//! (a code), sent by whichever instance claims it first (a conditional UPDATE), retried with backoff
//! while the provider is down. The number and the message are sealed (AES-GCM with the sealing key);
//! `phone_key` is the same keyed hash `phone_codes` keeps, so a number's rows can be found without
//! opening any. Rows are purged a day after they were written, sent or not.

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
                    .table(a("sms_outbox"))
                    .if_not_exists()
                    .col(ColumnDef::new(a("id")).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(a("phone_key")).string().not_null())
                    .col(ColumnDef::new(a("phone_sealed")).text().not_null())
                    .col(ColumnDef::new(a("body_sealed")).text().not_null())
                    .col(ColumnDef::new(a("attempts")).integer().not_null())
                    .col(ColumnDef::new(a("next_attempt_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(a("claimed_until")).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(a("status")).string().not_null())
                    .col(ColumnDef::new(a("last_error")).string().null())
                    .col(ColumnDef::new(a("created_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(a("expires_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(a("sent_at")).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("ix_sms_outbox_due", &["status", "next_attempt_at"][..]),
            ("ix_sms_outbox_phone", &["phone_key"][..]),
            ("ix_sms_outbox_created", &["created_at"][..]),
        ] {
            let mut index = Index::create();
            index.name(name).table(a("sms_outbox"));
            for col in cols {
                index.col(a(col));
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(a("sms_outbox")).to_owned()).await
    }
}
