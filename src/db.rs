//! Database connection: connect to SQLite or PostgreSQL, apply migrations, count statements.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};

use crate::config::Config;

/// Running totals of SQL statements, read by `/metrics` and by the tests that prove list queries do
/// not grow with the page size.
#[derive(Debug, Default)]
pub struct DbStats {
    statements: AtomicU64,
}

impl DbStats {
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }
}

/// Connects, applies pending migrations and installs the statement counter.
pub async fn connect(config: &Config) -> Result<(DatabaseConnection, Arc<DbStats>), sea_orm::DbErr> {
    let url = config.database_url.as_str();
    if let Some(path) = sqlite_file(url)
        && let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| sea_orm::DbErr::Custom(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut opts = ConnectOptions::new(url);
    opts.max_connections(config.database_max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        // An in-memory SQLite database lives as long as its connection: never let the pool close it.
        .map_sqlx_sqlite_pool_opts(|o| o.idle_timeout(None).max_lifetime(None))
        // WAL lets readers run beside the one writer; the busy timeout queues writers instead of
        // failing them with SQLITE_BUSY.
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    let mut db = Database::connect(opts).await?;
    let stats = Arc::new(DbStats::default());
    let counter = stats.clone();
    db.set_metric_callback(move |info| {
        // The background request-log writer is not part of any request: leave it out of the
        // per-request count that the N+1 tests read (`/metrics` still counts it).
        if !is_background(&info.statement.sql) {
            counter.statements.fetch_add(1, Ordering::Relaxed);
        }
        crate::metrics::METRICS.db_statements.inc();
        tracing::trace!(target: "ecer_gateway::sql", sql = %info.statement.sql, elapsed_us = info.elapsed.as_micros() as u64);
    });
    Migrator::up(&db, None).await?;
    if db.get_database_backend() == DbBackend::Sqlite {
        db.execute_unprepared("PRAGMA optimize").await?;
    }
    Ok((db, stats))
}

fn is_background(sql: &str) -> bool {
    sql.starts_with(r#"INSERT INTO "request_log""#)
        || sql.starts_with(r#"INSERT INTO "visitor_views""#)
        || sql.starts_with(r#"DELETE FROM "request_log""#)
        || sql.starts_with(r#"DELETE FROM "visitor_views""#)
}

fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then_some(path)
}
