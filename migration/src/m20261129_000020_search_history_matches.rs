//! Each search-history entry keeps the posts its search found when it was made, so the recommended
//! feed reads them with the entry instead of running the member's recent searches again on every
//! request. They live in the entry's own row: deleting the entry (or all history, or the account)
//! deletes them with it, and every gateway instance reads the same thing.

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
                    .table(a("search_history"))
                    // Post ids, best first, space separated; NULL for entries recorded before this
                    // column existed (the feed fills those in the first time it reads them).
                    .add_column(ColumnDef::new(a("matched_posts")).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(a("search_history")).drop_column(a("matched_posts")).to_owned()).await
    }
}
