//! Verified email: the address a member proves with a code sent by SMTP, codes for proving an
//! address and for resetting the password through it, and the email outbox.
//!
//! - `users.email` stays the member's address; `email_verified_at` says it was proven, and a
//!   partial unique index lets one address be verified by one live account only (unverified
//!   addresses given at sign-up may repeat). `pending_email` is an address asked for with
//!   `addEmail` and not proven yet.
//! - `email_codes` is like `phone_codes`: the address only as a keyed hash, the code only as a keyed
//!   hash bound to its address and purpose; the rows are also the send log the resend spacing and
//!   daily caps count, purged after a day. `user_id` is null for a reset asked for an address no
//!   member has verified (no message goes out, but the request counts the same).
//! - `email_outbox` is like `sms_outbox`: the address, subject and body sealed, sent by whichever
//!   instance claims the row, retried with backoff; `user_id` lets an erasure remove a member's rows.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn a(name: &str) -> Alias {
    Alias::new(name)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for col in [
            ColumnDef::new(a("email_verified_at")).timestamp_with_time_zone().null().to_owned(),
            ColumnDef::new(a("pending_email")).string().null().to_owned(),
        ] {
            manager.alter_table(Table::alter().table(a("users")).add_column(col).to_owned()).await?;
        }
        // Partial unique index: the same statement on SQLite and PostgreSQL.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX IF NOT EXISTS ux_users_verified_email ON users (email) \
                 WHERE email_verified_at IS NOT NULL",
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(a("email_codes"))
                    .if_not_exists()
                    .col(ColumnDef::new(a("id")).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(a("user_id")).big_integer().null())
                    .col(ColumnDef::new(a("email_key")).string().not_null())
                    .col(ColumnDef::new(a("purpose")).string().not_null())
                    .col(ColumnDef::new(a("code_hash")).string().not_null())
                    .col(ColumnDef::new(a("attempts")).integer().not_null())
                    .col(ColumnDef::new(a("created_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(a("expires_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(a("used_at")).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(a("email_outbox"))
                    .if_not_exists()
                    .col(ColumnDef::new(a("id")).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(a("user_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("kind")).string().not_null())
                    .col(ColumnDef::new(a("address_sealed")).text().not_null())
                    .col(ColumnDef::new(a("subject_sealed")).text().not_null())
                    .col(ColumnDef::new(a("body_sealed")).text().not_null())
                    .col(ColumnDef::new(a("attempts")).integer().not_null())
                    .col(ColumnDef::new(a("next_attempt_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(a("claimed_until")).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(a("status")).string().not_null())
                    .col(ColumnDef::new(a("last_error")).string().null())
                    .col(ColumnDef::new(a("created_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(a("expires_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(a("sent_at")).timestamp_with_time_zone().null())
                    // The staff broadcast (`notice_broadcasts`) a notice belongs to, if any.
                    .col(ColumnDef::new(a("broadcast_id")).big_integer().null())
                    .to_owned(),
            )
            .await?;
        for (table, name, cols) in [
            ("email_codes", "ix_email_codes_email", &["email_key", "created_at"][..]),
            ("email_codes", "ix_email_codes_user", &["user_id", "created_at"][..]),
            ("email_codes", "ix_email_codes_created", &["created_at"][..]),
            ("email_outbox", "ix_email_outbox_due", &["status", "next_attempt_at"][..]),
            ("email_outbox", "ix_email_outbox_user", &["user_id"][..]),
            ("email_outbox", "ix_email_outbox_created", &["created_at"][..]),
            ("email_outbox", "ix_email_outbox_broadcast", &["broadcast_id"][..]),
        ] {
            let mut index = Index::create();
            index.name(name).table(a(table));
            for col in cols {
                index.col(a(col));
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(a("email_outbox")).to_owned()).await?;
        manager.drop_table(Table::drop().table(a("email_codes")).to_owned()).await?;
        manager.get_connection().execute_unprepared("DROP INDEX IF EXISTS ux_users_verified_email").await?;
        for col in ["pending_email", "email_verified_at"] {
            manager.alter_table(Table::alter().table(a("users")).drop_column(a(col)).to_owned()).await?;
        }
        Ok(())
    }
}
