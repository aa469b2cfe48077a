//! OAuth 2.1 (issue 16): a member's grants to developer apps, the single-use authorization codes,
//! and the access and refresh tokens issued under a grant. Codes and tokens hang off their grant, so
//! revoking a grant (the member, reuse detection, erasure) ends every one of them in one delete.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn a(name: &str) -> Alias {
    Alias::new(name)
}

fn of_grant(table: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("{table}_grant"))
        .from(a(table), a("grant_id"))
        .to(a("oauth_grants"), a("id"))
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(a("oauth_grants"))
                    .col(ColumnDef::new(a("id")).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(a("user_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("app_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("scopes")).string_len(255).not_null())
                    .col(ColumnDef::new(a("created_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(a("updated_at")).timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("oauth_grants_user")
                            .from(a("oauth_grants"), a("user_id"))
                            .to(a("users"), a("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("oauth_grants_app")
                            .from(a("oauth_grants"), a("app_id"))
                            .to(a("developer_apps"), a("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("oauth_grants_member_app")
                    .table(a("oauth_grants"))
                    .col(a("user_id"))
                    .col(a("app_id"))
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(Index::create().name("oauth_grants_app").table(a("oauth_grants")).col(a("app_id")).to_owned())
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(a("oauth_codes"))
                    .col(ColumnDef::new(a("id")).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(a("code_hash")).string_len(64).not_null().unique_key())
                    .col(ColumnDef::new(a("grant_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("redirect_uri")).string_len(600).null())
                    .col(ColumnDef::new(a("code_challenge")).string_len(128).not_null())
                    .col(ColumnDef::new(a("scopes")).string_len(255).not_null())
                    .col(ColumnDef::new(a("expires_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(a("used_at")).timestamp_with_time_zone().null())
                    .foreign_key(&mut of_grant("oauth_codes"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("oauth_codes_grant").table(a("oauth_codes")).col(a("grant_id")).to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(a("oauth_tokens"))
                    .col(ColumnDef::new(a("id")).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(a("token_hash")).string_len(64).not_null().unique_key())
                    .col(ColumnDef::new(a("grant_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("kind")).string_len(16).not_null())
                    .col(ColumnDef::new(a("family")).big_integer().not_null())
                    .col(ColumnDef::new(a("scopes")).string_len(255).not_null())
                    .col(ColumnDef::new(a("created_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(a("expires_at")).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(a("used_at")).timestamp_with_time_zone().null())
                    .foreign_key(&mut of_grant("oauth_tokens"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("oauth_tokens_grant").table(a("oauth_tokens")).col(a("grant_id")).to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("oauth_tokens_expiry").table(a("oauth_tokens")).col(a("expires_at")).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["oauth_tokens", "oauth_codes", "oauth_grants"] {
            manager.drop_table(Table::drop().table(a(table)).to_owned()).await?;
        }
        Ok(())
    }
}
