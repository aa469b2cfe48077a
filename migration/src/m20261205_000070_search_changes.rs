//! The search index's change log (issue 13): one row per change to `search_documents`, written by
//! triggers so that every writer (services, the seeder, a hand-run statement) is covered. Each
//! gateway instance keeps the index in memory and brings it up to date from this log before a
//! search (`services::search::memory`).
//!
//! On PostgreSQL a row also records its transaction id (`xid8`): rows are read by transaction, not
//! by `id`, because ids are handed out when a row is written and transactions commit in another
//! order; every transaction older than a snapshot's `xmin` has ended, so reading from the last
//! `xmin` onwards misses nothing. SQLite has one writer at a time, so its ids are in commit order.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

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
                    .table(a("search_changes"))
                    .col(ColumnDef::new(a("id")).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(a("kind")).string().not_null())
                    .col(ColumnDef::new(a("ref_id")).big_integer().not_null())
                    // Unix seconds when the row was written (not when its transaction began: a long
                    // transaction's rows must not look older than they are when the log is pruned).
                    .col(ColumnDef::new(a("at")).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("idx_search_changes_at").table(a("search_changes")).col(a("at")).to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        match db.get_database_backend() {
            DbBackend::Postgres => {
                for sql in [
                    "ALTER TABLE search_changes ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id()",
                    "CREATE INDEX idx_search_changes_xid ON search_changes (xid)",
                    "CREATE FUNCTION search_documents_changed() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN \
                       IF TG_OP = 'DELETE' THEN \
                         INSERT INTO search_changes (kind, ref_id, at) VALUES (OLD.kind, OLD.ref_id, extract(epoch FROM clock_timestamp())::bigint); \
                       ELSE \
                         INSERT INTO search_changes (kind, ref_id, at) VALUES (NEW.kind, NEW.ref_id, extract(epoch FROM clock_timestamp())::bigint); \
                       END IF; \
                       RETURN NULL; \
                     END $$",
                    "CREATE TRIGGER search_documents_log AFTER INSERT OR UPDATE OR DELETE ON search_documents \
                     FOR EACH ROW EXECUTE FUNCTION search_documents_changed()",
                ] {
                    db.execute_unprepared(sql).await?;
                }
            }
            _ => {
                for (event, row) in [("INSERT", "new"), ("UPDATE", "new"), ("DELETE", "old")] {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER search_documents_log_{} AFTER {event} ON search_documents BEGIN \
                         INSERT INTO search_changes (kind, ref_id, at) VALUES ({row}.kind, {row}.ref_id, unixepoch()); END",
                        event.to_lowercase()
                    ))
                    .await?;
                }
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match db.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared("DROP TRIGGER IF EXISTS search_documents_log ON search_documents").await?;
                db.execute_unprepared("DROP FUNCTION IF EXISTS search_documents_changed()").await?;
            }
            _ => {
                for event in ["insert", "update", "delete"] {
                    db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS search_documents_log_{event}")).await?;
                }
            }
        }
        manager.drop_table(Table::drop().table(a("search_changes")).to_owned()).await
    }
}
