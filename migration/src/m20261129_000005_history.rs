//! What the service records about a member's own use (browse and search history), the switches that
//! turn recording and personalisation off, and post view counts for hot ranking.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn a(name: &str) -> Alias {
    Alias::new(name)
}

fn fk(table: &str, col: &str, target: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create().from(a(table), a(col)).to(a(target), a("id")).on_delete(ForeignKeyAction::Cascade).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(a("posts"))
                    .add_column(ColumnDef::new(a("view_count")).big_integer().not_null().default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(a("user_settings"))
                    .col(ColumnDef::new(a("user_id")).big_integer().not_null().primary_key())
                    .col(ColumnDef::new(a("personalized_recommendations")).boolean().not_null().default(true))
                    .col(ColumnDef::new(a("record_history")).boolean().not_null().default(true))
                    .col(ColumnDef::new(a("updated_at")).timestamp_with_time_zone().not_null())
                    .foreign_key(&mut fk("user_settings", "user_id", "users"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(a("browse_history"))
                    .col(ColumnDef::new(a("id")).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(a("user_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("post_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("duration_ms")).big_integer().null())
                    .col(ColumnDef::new(a("viewed_at")).timestamp_with_time_zone().not_null())
                    .foreign_key(&mut fk("browse_history", "user_id", "users"))
                    .foreign_key(&mut fk("browse_history", "post_id", "posts"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_browse_history_user")
                    .table(a("browse_history"))
                    .col(a("user_id"))
                    .col(a("id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(a("search_history"))
                    .col(ColumnDef::new(a("id")).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(a("user_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("query")).string().not_null())
                    .col(ColumnDef::new(a("searched_at")).timestamp_with_time_zone().not_null())
                    .foreign_key(&mut fk("search_history", "user_id", "users"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_search_history_user")
                    .table(a("search_history"))
                    .col(a("user_id"))
                    .col(a("id"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["search_history", "browse_history", "user_settings"] {
            manager.drop_table(Table::drop().table(a(table)).to_owned()).await?;
        }
        manager.alter_table(Table::alter().table(a("posts")).drop_column(a("view_count")).to_owned()).await
    }
}
