//! The search index: one row per searchable thing (post, board, member) holding its tokens (see the
//! gateway's `services::search::text`), indexed by each back end's own full-text machinery: an FTS5
//! table kept in step by triggers on SQLite, a generated `tsvector` with a GIN index on PostgreSQL.
//! Both live in the database every instance shares, and change in the transaction that changes the
//! content.

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
                    .table(a("search_documents"))
                    .col(ColumnDef::new(a("id")).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(a("kind")).string().not_null())
                    .col(ColumnDef::new(a("ref_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("board_id")).big_integer().null())
                    .col(ColumnDef::new(a("tokens")).text().not_null())
                    // Unix seconds: ranking favours recent documents with plain arithmetic on both back ends.
                    .col(ColumnDef::new(a("published_at")).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_search_documents_ref")
                    .table(a("search_documents"))
                    .col(a("kind"))
                    .col(a("ref_id"))
                    .unique()
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        match db.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "ALTER TABLE search_documents ADD COLUMN tsv tsvector \
                     GENERATED ALWAYS AS (array_to_tsvector(string_to_array(tokens, ' '))) STORED",
                )
                .await?;
                db.execute_unprepared("CREATE INDEX idx_search_documents_tsv ON search_documents USING GIN (tsv)")
                    .await?;
            }
            _ => {
                db.execute_unprepared(
                    "CREATE VIRTUAL TABLE search_fts USING fts5(tokens, content='search_documents', \
                     content_rowid='id', tokenize='unicode61 remove_diacritics 0')",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER search_documents_ai AFTER INSERT ON search_documents BEGIN \
                     INSERT INTO search_fts(rowid, tokens) VALUES (new.id, new.tokens); END",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER search_documents_ad AFTER DELETE ON search_documents BEGIN \
                     INSERT INTO search_fts(search_fts, rowid, tokens) VALUES ('delete', old.id, old.tokens); END",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER search_documents_au AFTER UPDATE ON search_documents BEGIN \
                     INSERT INTO search_fts(search_fts, rowid, tokens) VALUES ('delete', old.id, old.tokens); \
                     INSERT INTO search_fts(rowid, tokens) VALUES (new.id, new.tokens); END",
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() != DbBackend::Postgres {
            db.execute_unprepared("DROP TABLE IF EXISTS search_fts").await?;
        }
        manager.drop_table(Table::drop().table(a("search_documents")).to_owned()).await
    }
}
