//! Staff actions carry the reason the staff member gave (ban, role change, removing a member's
//! post...), so the audit log says why as well as who, what, whom and when.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("audit_log"))
                    .add_column(ColumnDef::new(Alias::new("reason")).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Alias::new("audit_log")).drop_column(Alias::new("reason")).to_owned())
            .await
    }
}
