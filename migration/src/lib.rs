//! Database migrations, valid on SQLite and PostgreSQL alike.
//!
//! Every table the gateway owns is created here; the gateway applies pending migrations at start-up,
//! so a fresh `cargo run` and every test database start from the same schema.

pub use sea_orm_migration::prelude::*;

mod m20261129_000001_foundation;
mod m20261129_000002_realtime;
mod m20261129_000003_bans;
mod m20261129_000004_search;
mod m20261129_000005_history;
mod m20261129_000006_login_security;
mod m20261129_000007_policy;
mod m20261129_000008_trust;
mod m20261129_000020_search_history_matches;
mod m20261201_000030_job_leases;
mod m20261202_000031_audit_reason;
mod m20261202_000040_phone_codes;
mod m20261202_000041_sms_outbox;
mod m20261202_000042_message_client_ids;
mod m20261202_000050_notice_broadcasts;
mod m20261202_000051_live_moderation;
mod m20261203_000050_email;
mod m20261204_000060_media_details;
mod m20261205_000070_search_changes;
mod m20261206_000080_reports;
mod m20261206_000081_message_media;
mod m20261206_000082_open_report_once;
mod m20261207_000090_web_push;
mod m20261207_000100_developer_apps;
mod m20261208_000110_oauth;
mod m20261209_000120_request_log_app;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261129_000001_foundation::Migration),
            Box::new(m20261129_000002_realtime::Migration),
            Box::new(m20261129_000003_bans::Migration),
            Box::new(m20261129_000004_search::Migration),
            Box::new(m20261129_000005_history::Migration),
            Box::new(m20261129_000006_login_security::Migration),
            Box::new(m20261129_000007_policy::Migration),
            Box::new(m20261129_000008_trust::Migration),
            Box::new(m20261129_000020_search_history_matches::Migration),
            Box::new(m20261201_000030_job_leases::Migration),
            Box::new(m20261202_000031_audit_reason::Migration),
            Box::new(m20261202_000040_phone_codes::Migration),
            Box::new(m20261202_000041_sms_outbox::Migration),
            Box::new(m20261202_000042_message_client_ids::Migration),
            Box::new(m20261202_000050_notice_broadcasts::Migration),
            Box::new(m20261202_000051_live_moderation::Migration),
            Box::new(m20261203_000050_email::Migration),
            Box::new(m20261204_000060_media_details::Migration),
            Box::new(m20261205_000070_search_changes::Migration),
            Box::new(m20261206_000080_reports::Migration),
            Box::new(m20261206_000081_message_media::Migration),
            Box::new(m20261206_000082_open_report_once::Migration),
            Box::new(m20261207_000090_web_push::Migration),
            Box::new(m20261207_000100_developer_apps::Migration),
            Box::new(m20261208_000110_oauth::Migration),
            Box::new(m20261209_000120_request_log_app::Migration),
        ]
    }
}
