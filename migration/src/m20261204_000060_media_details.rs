//! Media details (issue 20, item 4): pixel size and duration read at upload, an optional poster for
//! videos, and the thumbnail job of each image (claimed atomically by one instance's worker, like
//! the outboxes). Images uploaded before this migration are queued for a thumbnail too.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn a(name: &str) -> Alias {
    Alias::new(name)
}

/// One column per statement: SQLite alters a table one column at a time.
fn columns() -> Vec<ColumnDef> {
    vec![
        ColumnDef::new(a("width")).integer().null().to_owned(),
        ColumnDef::new(a("height")).integer().null().to_owned(),
        ColumnDef::new(a("duration_ms")).big_integer().null().to_owned(),
        ColumnDef::new(a("poster_mime")).string_len(64).null().to_owned(),
        // NULL: no thumbnail is made for this file (videos without a poster, private files).
        ColumnDef::new(a("thumbnail_status")).string_len(16).null().to_owned(),
        ColumnDef::new(a("thumbnail_attempts")).integer().not_null().default(0).to_owned(),
        ColumnDef::new(a("thumbnail_claimed_until")).timestamp_with_time_zone().null().to_owned(),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for mut column in columns() {
            manager.alter_table(Table::alter().table(a("media")).add_column(&mut column).to_owned()).await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_media_thumbnail_status")
                    .table(a("media"))
                    .col(a("thumbnail_status"))
                    .to_owned(),
            )
            .await?;
        let backfill = Query::update()
            .table(a("media"))
            .value(a("thumbnail_status"), "PENDING")
            .and_where(Expr::col(a("private")).eq(false))
            .and_where(Expr::col(a("kind")).is_in(["AVATAR", "POST_IMAGE"]))
            .to_owned();
        manager.exec_stmt(backfill).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("idx_media_thumbnail_status").table(a("media")).to_owned()).await?;
        for column in columns() {
            let name = a(&column.get_column_name());
            manager.alter_table(Table::alter().table(a("media")).drop_column(name).to_owned()).await?;
        }
        Ok(())
    }
}
