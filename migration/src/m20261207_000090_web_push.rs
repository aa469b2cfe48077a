//! Web Push (RFC 8030/8291/8292): the browser or app subscriptions members register, each tied to the
//! session that registered it (signing out ends its pushes), and the outbox the sender works through.

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
                    .table(a("push_subscriptions"))
                    .col(ColumnDef::new(a("id")).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(a("user_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("session_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("endpoint")).string_len(1024).not_null().unique_key())
                    .col(ColumnDef::new(a("p256dh")).string_len(128).not_null())
                    .col(ColumnDef::new(a("auth")).string_len(64).not_null())
                    .col(ColumnDef::new(a("vapid_key")).string_len(128).not_null())
                    .col(ColumnDef::new(a("messages")).boolean().not_null())
                    .col(ColumnDef::new(a("replies")).boolean().not_null())
                    .col(ColumnDef::new(a("likes")).boolean().not_null())
                    .col(ColumnDef::new(a("follows")).boolean().not_null())
                    .col(ColumnDef::new(a("notices")).boolean().not_null())
                    .col(ColumnDef::new(a("created_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(a("delivered_at")).timestamp_with_time_zone().null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("push_subscriptions_session")
                            .from(a("push_subscriptions"), a("session_id"))
                            .to(a("sessions"), a("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("push_subscriptions_user")
                    .table(a("push_subscriptions"))
                    .col(a("user_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("push_subscriptions_session")
                    .table(a("push_subscriptions"))
                    .col(a("session_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(a("push_outbox"))
                    .col(ColumnDef::new(a("id")).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(a("subscription_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("user_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("kind")).string_len(16).not_null())
                    .col(ColumnDef::new(a("ref_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("status")).string_len(16).not_null())
                    .col(ColumnDef::new(a("attempts")).integer().not_null())
                    .col(ColumnDef::new(a("next_attempt_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(a("claimed_until")).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(a("last_error")).string_len(255).null())
                    .col(ColumnDef::new(a("created_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(a("sent_at")).timestamp_with_time_zone().null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("push_outbox_subscription")
                            .from(a("push_outbox"), a("subscription_id"))
                            .to(a("push_subscriptions"), a("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("push_outbox_due")
                    .table(a("push_outbox"))
                    .col(a("status"))
                    .col(a("next_attempt_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("push_outbox_subscription")
                    .table(a("push_outbox"))
                    .col(a("subscription_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(Index::create().name("push_outbox_user").table(a("push_outbox")).col(a("user_id")).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(a("push_outbox")).to_owned()).await?;
        manager.drop_table(Table::drop().table(a("push_subscriptions")).to_owned()).await
    }
}
