//! Privacy policy versions (archived forever) and members' acceptances.

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
                    .table(a("policy_versions"))
                    .col(ColumnDef::new(a("version")).integer().not_null().primary_key())
                    .col(ColumnDef::new(a("body")).text().not_null())
                    .col(ColumnDef::new(a("major")).boolean().not_null())
                    .col(ColumnDef::new(a("published_at")).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(a("policy_acceptances"))
                    .col(ColumnDef::new(a("id")).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(a("user_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("version")).integer().not_null())
                    .col(ColumnDef::new(a("accepted_at")).timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(a("policy_acceptances"), a("user_id"))
                            .to(a("users"), a("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_policy_acceptances")
                    .table(a("policy_acceptances"))
                    .col(a("user_id"))
                    .col(a("version"))
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(a("policy_acceptances")).to_owned()).await?;
        manager.drop_table(Table::drop().table(a("policy_versions")).to_owned()).await
    }
}
