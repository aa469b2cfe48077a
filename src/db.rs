//! Database connection: connect to SQLite or PostgreSQL, apply migrations, count statements, and
//! know when the database cannot be reached ([`breaker`]).

pub mod breaker;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, RuntimeErr};

pub use breaker::{Breaker, Unavailable};

use crate::config::Config;

/// Running totals of SQL statements, read by `/metrics` and by the tests that prove list queries do
/// not grow with the page size.
#[derive(Debug)]
pub struct DbStats {
    statements: AtomicU64,
    /// Opened by requests that could not reach the database; every statement that runs resets it.
    pub breaker: Arc<Breaker>,
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
    // A request waits this long for a connection, a new one included (sqlx retries connecting
    // until then), and is answered SERVICE_UNAVAILABLE after: a wait that grows with the queue
    // helps nobody.
    let acquire = Duration::from_millis(config.database_acquire_timeout_ms);
    opts.max_connections(config.database_max_connections)
        .min_connections(1)
        .connect_timeout(acquire)
        .acquire_timeout(acquire)
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
    if config.database_statement_timeout_ms > 0 {
        // PostgreSQL cancels a statement past it (57014, answered QUERY_TIMEOUT); SQLite ignores it.
        opts.statement_timeout(Duration::from_millis(config.database_statement_timeout_ms));
    }
    let mut db = connect_with_retry(opts).await?;
    // The breaker checks a suspected outage over a connection of its own (PostgreSQL), so a busy
    // pool on a healthy database is not mistaken for one.
    let independent = (db.get_database_backend() == DbBackend::Postgres).then(|| url.to_string());
    let cooldown = Duration::from_millis(config.database_breaker_cooldown_ms);
    let breaker = Breaker::new(config.database_breaker_failures, cooldown, independent);
    let stats = Arc::new(DbStats { statements: AtomicU64::new(0), breaker: Arc::new(breaker) });
    let counter = stats.clone();
    db.set_metric_callback(move |info| {
        if !info.failed {
            counter.breaker.on_success();
        }
        // Background workers are not part of any request: leave them out of the per-request count
        // that the N+1 tests read (`/metrics` still counts them).
        if BACKGROUND.try_with(|_| ()).is_err() {
            counter.statements.fetch_add(1, Ordering::Relaxed);
        }
        crate::metrics::METRICS.db_statements.inc();
        tracing::trace!(target: "ecer_gateway::sql", sql = %info.statement.sql, elapsed_us = info.elapsed.as_micros() as u64);
    });
    migrate(&db).await?;
    if db.get_database_backend() == DbBackend::Sqlite {
        db.execute_unprepared("PRAGMA optimize").await?;
    }
    Ok((db, stats))
}

/// An arbitrary constant naming the migration lock among PostgreSQL advisory locks.
const MIGRATION_LOCK: i64 = 0x0065_6365_726d_6967; // "ecermig"

/// Applies pending migrations. On PostgreSQL, instances that start together (a deployment of N)
/// take turns under an advisory lock, inside one transaction: without it, two of them creating the
/// same tables at once fail on PostgreSQL's catalog constraints; with it, the second finds the
/// work done. The DDL commits with the transaction, so a failed migration leaves nothing half-made.
async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Migrator::up(db, None).await;
    }
    let txn = sea_orm::TransactionTrait::begin(db).await?;
    txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")).await?;
    Migrator::up(&txn, None).await?;
    txn.commit().await
}

/// Start-up connects with the short request-time acquire timeout, so it retries on its own: a
/// gateway started a moment before its database (a common order in orchestrators) waits for it
/// for up to half a minute instead of exiting.
async fn connect_with_retry(opts: ConnectOptions) -> Result<DatabaseConnection, DbErr> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match Database::connect(opts.clone()).await {
            Ok(db) => return Ok(db),
            Err(err) if is_unreachable(&err) && std::time::Instant::now() < deadline => {
                tracing::warn!(error = %err, "database not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Whether `err` says the database could not be reached (refused, reset, timed out waiting for a
/// connection, shutting down) rather than that a statement was wrong: the cases a client may simply
/// retry, and the ones the circuit breaker counts.
pub fn is_unreachable(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as E;
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Query(RuntimeErr::SqlxError(e)) | DbErr::Exec(RuntimeErr::SqlxError(e)) => match e.as_ref() {
            E::Io(_) | E::Tls(_) | E::Protocol(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => true,
            // Class 08 (connection exception), admin/crash shutdown, starting up, too many clients.
            E::Database(d) => {
                d.code().is_some_and(|c| c.starts_with("08") || ["57P01", "57P02", "57P03", "53300"].contains(&&*c))
            }
            _ => false,
        },
        _ => false,
    }
}

tokio::task_local! {
    static BACKGROUND: ();
}

/// Runs `work` (a worker's loop: outboxes, purges, the request log, thumbnails, the search index)
/// as background work. Its statements count in `/metrics` but not in [`DbStats::statements`], which
/// would otherwise change under a test that counts a request's statements whenever a worker ticks.
/// The marker is task-local: it covers `work` and nothing it spawns.
pub fn background<F: std::future::Future>(work: F) -> impl std::future::Future<Output = F::Output> {
    BACKGROUND.scope((), work)
}

fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn statements_of_background_work_stay_out_of_the_request_count() {
        let mut config = Config::defaults();
        config.database_url = "sqlite::memory:".into();
        let (db, stats) = connect(&config).await.unwrap();
        // A statement as the services run them (`execute_unprepared` bypasses the callback).
        let select = || db.query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), "SELECT 1"));
        let before = stats.statements();
        background(select()).await.unwrap();
        assert_eq!(stats.statements(), before, "background work");
        select().await.unwrap();
        assert_eq!(stats.statements(), before + 1, "a request's statement");
    }
}
