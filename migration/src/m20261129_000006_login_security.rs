//! Sign-in security: failed attempts per phone number (stored as a hash, so numbers nobody registered
//! are not kept) with a lock-out, and the devices each member has signed in from, to tell them about a
//! new one.

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
                    .table(a("login_failures"))
                    .col(ColumnDef::new(a("phone_hash")).string().not_null().primary_key())
                    .col(ColumnDef::new(a("failures")).integer().not_null())
                    .col(ColumnDef::new(a("window_start")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(a("locked_until")).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(a("user_devices"))
                    .col(ColumnDef::new(a("id")).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(a("user_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("device_key")).string().not_null())
                    .col(ColumnDef::new(a("first_seen_at")).timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(a("user_devices"), a("user_id"))
                            .to(a("users"), a("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_user_devices")
                    .table(a("user_devices"))
                    .col(a("user_id"))
                    .col(a("device_key"))
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(a("user_devices")).to_owned()).await?;
        manager.drop_table(Table::drop().table(a("login_failures")).to_owned()).await
    }
}
