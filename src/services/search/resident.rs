//! The in-memory index ([`memory`](super::memory)) kept in step with the database.
//!
//! Start-up loads `search_documents` in batches, in the background: searches use the database path
//! until the load is done. From then on the change log (`search_changes`, written by triggers on
//! `search_documents`) is read from where the last read stopped:
//! - before every search, so a search sees every change committed before it began, on any instance
//!   (a deletion or erasure is never found after it commits). Searches that arrive while a read is
//!   under way wait for the next one, so concurrent searches share one statement;
//! - every second in the background, so an idle instance never has far to catch up.
//!
//! Where a read stops: on SQLite the last row's id (one writer at a time, so ids are in commit
//! order). On PostgreSQL the snapshot's `xmin`: every transaction older has ended, so the next read,
//! from that transaction id on, misses nothing; rows of transactions still open at the time are
//! read again next time (applying a change twice is harmless: it reads the document as it is now).
//!
//! The log keeps [`LOG_KEPT`]; an instance that could not read it for [`REBUILD_AFTER`] loads the
//! index again instead of trusting what it missed.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, FromQueryResult, Statement};

use super::Kind;
use super::memory::Index;
use crate::error::{AppError, AppResult};
use crate::metrics::METRICS;

/// Change log rows older than this are deleted.
const LOG_KEPT: Duration = Duration::from_secs(3600);
/// An instance that has not read the log for this long loads the whole index again.
const REBUILD_AFTER: Duration = Duration::from_secs(1800);
/// How often the background task deletes old log rows.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Documents read per statement while loading.
const LOAD_BATCH: u64 = 5_000;

/// Where the last read of the change log stopped.
#[derive(Clone, Debug)]
enum Mark {
    Id(i64),
    /// A PostgreSQL `xid8`, as text.
    Xid(String),
}

struct Follow {
    mark: Option<Mark>,
    /// When the last read's statement was sent: every change committed before then is applied.
    read_at: Option<Instant>,
    last_ok: Instant,
}

/// The resident index of one instance.
pub struct Resident {
    enabled: bool,
    index: RwLock<Index>,
    ready: AtomicBool,
    follow: tokio::sync::Mutex<Follow>,
}

#[derive(FromQueryResult)]
struct DocRow {
    id: i64,
    kind: String,
    ref_id: i64,
    board_id: Option<i64>,
    tokens: String,
    published_at: i64,
}

#[derive(FromQueryResult)]
struct ChangeRow {
    horizon: Option<String>,
    seq: Option<i64>,
    kind: Option<String>,
    ref_id: Option<i64>,
    board_id: Option<i64>,
    tokens: Option<String>,
    published_at: Option<i64>,
}

#[derive(FromQueryResult)]
struct MarkRow {
    mark: Option<String>,
}

/// Puts a document in the index, or takes it out when `tokens` is `None` (the document is gone).
fn apply(index: &mut Index, kind: &str, ref_id: i64, doc: Option<(Option<i64>, &str, i64)>) {
    let Some(kind) = Kind::parse(kind) else { return };
    let shard = index.shard_mut(kind);
    let Ok(id) = u32::try_from(ref_id) else {
        shard.refuse();
        return;
    };
    match doc {
        Some((board, tokens, published_at)) => shard.put(id, board, published_at, tokens),
        None => shard.remove(id),
    }
}

impl Resident {
    /// `enabled: false` (`SEARCH_INDEX=database`) keeps every search on the database path.
    pub fn new(enabled: bool) -> Resident {
        Resident {
            enabled,
            index: RwLock::new(Index::default()),
            ready: AtomicBool::new(false),
            follow: tokio::sync::Mutex::new(Follow { mark: None, read_at: None, last_ok: Instant::now() }),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Loads the index, then keeps it up to date until the process ends.
    pub fn spawn(self: &Arc<Self>, db: DatabaseConnection, every: Duration) {
        if !self.enabled {
            return;
        }
        let this = self.clone();
        tokio::spawn(crate::db::background(async move {
            let mut pruned = Instant::now();
            loop {
                if !this.is_ready()
                    && let Err(err) = this.load(&db).await
                {
                    tracing::warn!(?err, "search index: load failed; searches use the database until it loads");
                }
                if this.is_ready()
                    && let Err(err) = this.catch_up(&db).await
                {
                    tracing::warn!(?err, "search index: reading the change log failed");
                }
                if pruned.elapsed() >= PRUNE_EVERY {
                    pruned = Instant::now();
                    if let Err(err) = prune(&db).await {
                        tracing::warn!(?err, "search index: pruning the change log failed");
                    }
                }
                tokio::time::sleep(every).await;
            }
        }));
    }

    /// Loads every document, replacing the index.
    pub async fn load<C: ConnectionTrait>(&self, db: &C) -> AppResult<()> {
        let mut follow = self.follow.lock().await;
        let started = Instant::now();
        // Read before the documents: a change committed after this point is in the log past it.
        let mark = read_mark(db).await?;
        let mut index = Index::default();
        let mut after = 0i64;
        loop {
            let rows = DocRow::find_by_statement(Statement::from_sql_and_values(
                db.get_database_backend(),
                match db.get_database_backend() {
                    DbBackend::Postgres => {
                        "SELECT id, kind, ref_id, board_id, tokens, published_at FROM search_documents \
                         WHERE id > $1 ORDER BY id LIMIT $2"
                    }
                    _ => {
                        "SELECT id, kind, ref_id, board_id, tokens, published_at FROM search_documents \
                         WHERE id > ? ORDER BY id LIMIT ?"
                    }
                },
                [after.into(), (LOAD_BATCH as i64).into()],
            ))
            .all(db)
            .await?;
            let Some(last) = rows.last() else { break };
            after = last.id;
            for r in &rows {
                apply(&mut index, &r.kind, r.ref_id, Some((r.board_id, &r.tokens, r.published_at)));
            }
        }
        index.shrink();
        let (documents, postings) = (index.documents(), index.postings());
        // The old index is freed after the lock is let go: searches need not wait for that.
        let old = std::mem::replace(&mut *self.write(), index);
        drop(old);
        // A document changed after its batch was read is in the log past `mark`: the first search
        // reads the log before it answers.
        *follow = Follow { mark: Some(mark), read_at: None, last_ok: Instant::now() };
        self.ready.store(true, Ordering::Release);
        METRICS.search_index_documents.set(documents as i64);
        tracing::info!(documents, postings, ms = started.elapsed().as_millis() as u64, "search index loaded");
        Ok(())
    }

    /// Applies every change committed before this call. A read that fails leaves the index as it
    /// was (and the search to the database); after [`REBUILD_AFTER`] without a read, the index is
    /// loaded again by the background task.
    pub async fn catch_up<C: ConnectionTrait>(&self, db: &C) -> AppResult<()> {
        let called = Instant::now();
        let mut follow = self.follow.lock().await;
        if follow.read_at.is_some_and(|at| at >= called) {
            // A read that began after this call did the work.
            return Ok(());
        }
        if follow.last_ok.elapsed() > REBUILD_AFTER {
            // Searches use the database until the background task has loaded the index again.
            self.ready.store(false, Ordering::Release);
            return Ok(());
        }
        let Some(mark) = follow.mark.clone() else { return Ok(()) };
        let read_at = Instant::now();
        let rows = ChangeRow::find_by_statement(changes_statement(db.get_database_backend(), &mark)).all(db).await?;
        let mut next = mark;
        let mut seen = HashSet::new();
        {
            let mut index = self.write();
            for r in &rows {
                if let Some(h) = &r.horizon {
                    next = Mark::Xid(h.clone());
                }
                let (Some(seq), Some(kind), Some(ref_id)) = (r.seq, r.kind.as_deref(), r.ref_id) else { continue };
                if let Mark::Id(_) = next {
                    next = Mark::Id(seq);
                }
                if !seen.insert((kind, ref_id)) {
                    continue;
                }
                let doc = match (&r.tokens, r.published_at) {
                    (Some(tokens), Some(at)) => Some((r.board_id, tokens.as_str(), at)),
                    _ => None,
                };
                apply(&mut index, kind, ref_id, doc);
            }
            for shard in index.shards_mut() {
                if shard.wants_compaction() {
                    shard.compact();
                }
            }
            METRICS.search_index_documents.set(index.documents() as i64);
        }
        *follow = Follow { mark: Some(next), read_at: Some(read_at), last_ok: Instant::now() };
        Ok(())
    }

    /// Runs `f` on the index, up to date with every change committed before this call; `None` while
    /// it is not loaded (or turned off): the caller searches the database.
    /// A change log that cannot be read leaves the search to the database, which answers or fails
    /// on its own.
    pub async fn fresh<C: ConnectionTrait, R>(&self, db: &C, f: impl FnOnce(&Index) -> R) -> Option<R> {
        if !self.is_ready() {
            return None;
        }
        if let Err(err) = self.catch_up(db).await {
            tracing::warn!(?err, "search index: reading the change log failed; searching the database");
            return None;
        }
        if !self.is_ready() {
            return None;
        }
        Some(f(&self.read()))
    }

    fn read(&self) -> RwLockReadGuard<'_, Index> {
        // A panic while the lock was held cannot leave the index half-written in a way a reader
        // trips over (each change is applied whole or not at all), so a poisoned lock is used.
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }
}

async fn read_mark<C: ConnectionTrait>(db: &C) -> AppResult<Mark> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => "SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS mark",
        _ => "SELECT CAST(COALESCE(MAX(id), 0) AS TEXT) AS mark FROM search_changes",
    };
    let row = MarkRow::find_by_statement(Statement::from_string(backend, sql)).one(db).await?;
    let mark = row.and_then(|r| r.mark).ok_or_else(|| AppError::internal("the change log has no mark"))?;
    Ok(match backend {
        DbBackend::Postgres => Mark::Xid(mark),
        _ => Mark::Id(mark.parse().map_err(|_| AppError::internal("the change log's mark is not a number"))?),
    })
}

/// The changes past `mark`, each with its document as it is now (no document: it was removed).
fn changes_statement(backend: DbBackend, mark: &Mark) -> Statement {
    const COLUMNS: &str = "c.id AS seq, c.kind AS kind, c.ref_id AS ref_id, d.board_id AS board_id, \
                           d.tokens AS tokens, d.published_at AS published_at";
    const JOIN: &str = "LEFT JOIN search_documents d ON d.kind = c.kind AND d.ref_id = c.ref_id";
    match mark {
        // One statement, so the horizon and the rows come from the same snapshot; the horizon row
        // is there even when no change is.
        Mark::Xid(xid) => Statement::from_sql_and_values(
            backend,
            format!(
                "WITH h AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS horizon) \
                 SELECT h.horizon AS horizon, {COLUMNS} FROM h \
                 LEFT JOIN search_changes c ON c.xid >= $1::text::xid8 {JOIN} ORDER BY c.id"
            ),
            [xid.clone().into()],
        ),
        Mark::Id(id) => Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT CAST(NULL AS TEXT) AS horizon, {COLUMNS} FROM search_changes c {JOIN} \
                 WHERE c.id > ? ORDER BY c.id"
            ),
            [(*id).into()],
        ),
    }
}

async fn prune(db: &DatabaseConnection) -> AppResult<()> {
    let backend = db.get_database_backend();
    let cutoff = chrono::Utc::now().timestamp() - LOG_KEPT.as_secs() as i64;
    let sql = match backend {
        DbBackend::Postgres => "DELETE FROM search_changes WHERE at < $1",
        _ => "DELETE FROM search_changes WHERE at < ?",
    };
    db.execute_raw(Statement::from_sql_and_values(backend, sql, [cutoff.into()])).await?;
    Ok(())
}
