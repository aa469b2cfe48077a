//! SMS codes that prove a phone number (sign-up, sign-in by code, password reset). A row per code
//! sent: the number and the sender's address are kept only as keyed hashes (HMAC with a secret
//! derived from the sealing key), the code only as a keyed hash; the country calling code in the
//! clear (it names a country, not a person). The rows are also the send log the
//! daily caps count, so they are kept a day and then purged.

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
                    .table(a("phone_codes"))
                    .if_not_exists()
                    .col(ColumnDef::new(a("id")).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(a("phone_key")).string().not_null())
                    .col(ColumnDef::new(a("purpose")).string().not_null())
                    .col(ColumnDef::new(a("code_hash")).string().not_null())
                    .col(ColumnDef::new(a("attempts")).integer().not_null())
                    .col(ColumnDef::new(a("ip_key")).string().not_null())
                    .col(ColumnDef::new(a("country")).string().not_null())
                    .col(ColumnDef::new(a("created_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(a("expires_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(a("used_at")).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("ix_phone_codes_phone", &["phone_key", "created_at"][..]),
            ("ix_phone_codes_ip", &["ip_key", "created_at"][..]),
            ("ix_phone_codes_country", &["country", "created_at"][..]),
            ("ix_phone_codes_created", &["created_at"][..]),
        ] {
            let mut index = Index::create();
            index.name(name).table(a("phone_codes"));
            for col in cols {
                index.col(a(col));
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(a("phone_codes")).to_owned()).await
    }
}
