//! Trust and privacy: uploaded media, real-name verification (sealed at rest), the staff audit log,
//! the request log, daily unique visitors, and data exports.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn a(name: &str) -> Alias {
    Alias::new(name)
}

fn id() -> ColumnDef {
    ColumnDef::new(a("id")).big_integer().not_null().auto_increment().primary_key().to_owned()
}

fn at(name: &str) -> ColumnDef {
    ColumnDef::new(a(name)).timestamp_with_time_zone().not_null().to_owned()
}

fn fk(table: &str, col: &str, target: &str, on_delete: ForeignKeyAction) -> ForeignKeyCreateStatement {
    ForeignKey::create().from(a(table), a(col)).to(a(target), a("id")).on_delete(on_delete).to_owned()
}

fn index(name: &str, table: &str, cols: &[&str]) -> IndexCreateStatement {
    let mut i = Index::create().name(name).table(a(table)).to_owned();
    for c in cols {
        i.col(a(c));
    }
    i
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A file on disk (or sealed on disk, for private kinds). `post_id` attaches post media.
        manager
            .create_table(
                Table::create()
                    .table(a("media"))
                    .col(ColumnDef::new(a("id")).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(a("owner_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("kind")).string_len(16).not_null())
                    .col(ColumnDef::new(a("mime")).string_len(64).not_null())
                    .col(ColumnDef::new(a("size_bytes")).big_integer().not_null())
                    .col(ColumnDef::new(a("private")).boolean().not_null())
                    .col(ColumnDef::new(a("post_id")).big_integer().null())
                    .col(ColumnDef::new(a("position")).integer().not_null().default(0))
                    .col(at("created_at"))
                    .foreign_key(&mut fk("media", "owner_id", "users", ForeignKeyAction::Cascade))
                    .foreign_key(&mut fk("media", "post_id", "posts", ForeignKeyAction::SetNull))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("idx_media_owner", "media", &["owner_id", "created_at"])).await?;
        manager.create_index(index("idx_media_post", "media", &["post_id", "position"])).await?;

        manager
            .create_table(
                Table::create()
                    .table(a("identity_verifications"))
                    .col(id())
                    .col(ColumnDef::new(a("user_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("document_type")).string_len(32).not_null())
                    .col(ColumnDef::new(a("real_name_sealed")).text().not_null())
                    .col(ColumnDef::new(a("id_number_sealed")).text().not_null())
                    .col(ColumnDef::new(a("real_name_masked")).string_len(64).not_null())
                    .col(ColumnDef::new(a("id_number_masked")).string_len(32).not_null())
                    .col(ColumnDef::new(a("front_media_id")).string_len(36).not_null())
                    .col(ColumnDef::new(a("back_media_id")).string_len(36).not_null())
                    .col(ColumnDef::new(a("status")).string_len(16).not_null())
                    .col(ColumnDef::new(a("reason")).text().null())
                    .col(ColumnDef::new(a("reviewer_id")).big_integer().null())
                    .col(at("submitted_at"))
                    .col(ColumnDef::new(a("reviewed_at")).timestamp_with_time_zone().null())
                    .foreign_key(&mut fk("identity_verifications", "user_id", "users", ForeignKeyAction::Cascade))
                    .foreign_key(&mut fk("identity_verifications", "reviewer_id", "users", ForeignKeyAction::SetNull))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("idx_identity_verifications_user", "identity_verifications", &["user_id", "id"]))
            .await?;
        manager
            .create_index(index("idx_identity_verifications_status", "identity_verifications", &["status", "id"]))
            .await?;
        // At most one open (pending or approved) verification per member, even when two submissions
        // race. A partial index: the same statement works on SQLite and PostgreSQL.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX ux_identity_verifications_open ON identity_verifications (user_id) \
                 WHERE status IN ('PENDING', 'APPROVED')",
            )
            .await?;

        // Who on the staff read or decided what about whom. Rows outlive the people they name (no
        // foreign keys): an audit trail that disappears with an account would not be one.
        manager
            .create_table(
                Table::create()
                    .table(a("audit_log"))
                    .col(id())
                    .col(ColumnDef::new(a("actor_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("actor_role")).string_len(16).not_null())
                    .col(ColumnDef::new(a("action")).string_len(48).not_null())
                    .col(ColumnDef::new(a("subject_user_id")).big_integer().null())
                    .col(ColumnDef::new(a("target")).string_len(128).not_null())
                    .col(ColumnDef::new(a("ip")).string_len(64).null())
                    .col(at("at"))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("idx_audit_log_subject", "audit_log", &["subject_user_id", "id"])).await?;

        manager
            .create_table(
                Table::create()
                    .table(a("request_log"))
                    .col(id())
                    .col(at("at"))
                    .col(ColumnDef::new(a("duration_ms")).double().not_null())
                    .col(ColumnDef::new(a("user_id")).big_integer().null())
                    .col(ColumnDef::new(a("transport")).string_len(8).not_null())
                    .col(ColumnDef::new(a("operation")).string_len(128).not_null())
                    .col(ColumnDef::new(a("sign_in")).boolean().not_null().default(false))
                    .col(ColumnDef::new(a("ip")).string_len(64).null())
                    .col(ColumnDef::new(a("user_agent")).string_len(512).null())
                    .col(ColumnDef::new(a("language")).string_len(64).null())
                    .col(ColumnDef::new(a("device")).string_len(32).null())
                    .col(ColumnDef::new(a("os")).string_len(64).null())
                    .col(ColumnDef::new(a("browser")).string_len(64).null())
                    .foreign_key(&mut fk("request_log", "user_id", "users", ForeignKeyAction::Cascade))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("idx_request_log_user", "request_log", &["user_id", "id"])).await?;
        manager.create_index(index("idx_request_log_at", "request_log", &["at"])).await?;

        // One row per visitor, day and thing seen; only counts ever leave the service.
        manager
            .create_table(
                Table::create()
                    .table(a("visitor_views"))
                    .col(ColumnDef::new(a("day")).date().not_null())
                    .col(ColumnDef::new(a("target_kind")).string_len(8).not_null())
                    .col(ColumnDef::new(a("target_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("visitor")).string_len(64).not_null())
                    .primary_key(
                        Index::create().col(a("day")).col(a("target_kind")).col(a("target_id")).col(a("visitor")),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(a("data_exports"))
                    .col(ColumnDef::new(a("id")).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(a("user_id")).big_integer().not_null())
                    .col(ColumnDef::new(a("size_bytes")).big_integer().not_null())
                    .col(at("created_at"))
                    .col(at("expires_at"))
                    .foreign_key(&mut fk("data_exports", "user_id", "users", ForeignKeyAction::Cascade))
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("idx_data_exports_user", "data_exports", &["user_id", "created_at"])).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in ["data_exports", "visitor_views", "request_log", "audit_log", "identity_verifications", "media"] {
            manager.drop_table(Table::drop().table(a(t)).to_owned()).await?;
        }
        Ok(())
    }
}
