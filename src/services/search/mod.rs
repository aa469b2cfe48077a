//! Search over posts, boards and members, for Chinese (Traditional and Simplified) and English alike.
//!
//! [`text`] turns text into tokens; this module keeps the index (`search_documents`, with an FTS5
//! table on SQLite and a GIN-indexed `tsvector` on PostgreSQL) in step with the content, in the same
//! transactions, and answers queries. Every query token must match; ranking is the back end's
//! relevance (bm25 / ts_rank) with a recency term: a document a year older needs about one unit more
//! relevance to rank level, over the [`CANDIDATES`] newest matches only, so that a search's cost does
//! not grow with its match count. No `LIKE '%q%'` anywhere: both back ends answer from an inverted
//! index.
//!
//! Each instance also holds the index in memory ([`memory`], kept in step by [`resident`]) and answers
//! from there once it has loaded, with the same candidates and ranking rule (BM25 on both back ends);
//! the database statements below answer while it loads, when a query is beyond it (a very short
//! prefix), and when it is turned off (`SEARCH_INDEX_IN_MEMORY=false`).

pub mod memory;
pub mod resident;
pub mod text;

pub use resident::Resident;

use entity::search_documents;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, QueryFilter, Set, Statement,
    TransactionSession, TransactionTrait,
};

use crate::error::{AppError, AppResult};
use crate::services::page::{Cursor, Page, PageArgs};

/// What a search looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Post,
    Board,
    User,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Post, Kind::Board, Kind::User];

    fn as_str(self) -> &'static str {
        match self {
            Kind::Post => "post",
            Kind::Board => "board",
            Kind::User => "user",
        }
    }

    /// The kind `search_documents.kind` names.
    fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Matches ranked per search: the newest this many, in an order each back end's index produces
/// without touching the other matches: the document id on SQLite (FTS5 walks its doclists by rowid),
/// the post's, board's or member's own id on PostgreSQL (the `(kind, ref_id)` index). Both are
/// publication order: a document is indexed when its thing is created and keeps its id when edited. Ranking every match instead made a search's cost grow with its match count (a word in
/// every post: 150-180 ms at 100,000 posts); see docs/BENCHMARKS.md ("Discovery").
pub const CANDIDATES: i64 = 1000;

/// Deepest result a search pages to: the candidates are all there is to page through.
pub const MAX_OFFSET: i64 = CANDIDATES;

/// Puts (or replaces) a document in the index.
pub async fn index<C: ConnectionTrait>(
    db: &C,
    kind: Kind,
    ref_id: i64,
    board_id: Option<i64>,
    text: &str,
    published_at: chrono::DateTime<chrono::Utc>,
) -> AppResult<()> {
    search_documents::Entity::insert(search_documents::ActiveModel {
        kind: Set(kind.as_str().to_string()),
        ref_id: Set(ref_id),
        board_id: Set(board_id),
        tokens: Set(text::document_tokens(text)),
        published_at: Set(published_at.timestamp()),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::columns([search_documents::Column::Kind, search_documents::Column::RefId])
            .update_columns([search_documents::Column::Tokens, search_documents::Column::BoardId])
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Takes a document out of the index (deleted or erased content disappears from results at once).
pub async fn remove<C: ConnectionTrait>(db: &C, kind: Kind, ref_id: i64) -> AppResult<()> {
    search_documents::Entity::delete_many()
        .filter(search_documents::Column::Kind.eq(kind.as_str()))
        .filter(search_documents::Column::RefId.eq(ref_id))
        .exec(db)
        .await?;
    Ok(())
}

#[derive(FromQueryResult)]
struct Row {
    ref_id: i64,
}

#[derive(FromQueryResult)]
struct CountRow {
    n: i64,
}

/// Runs a search statement. On PostgreSQL it is planned for this query's words every time: the
/// right plan depends on how common they are (walk the newest documents, or collect the matches
/// from the GIN index), and a prepared statement's generic plan, which PostgreSQL adopts after a few
/// runs on a connection, assumes a fixed share of matches and collects them all: 30-90 ms where 4 ms
/// would do.
async fn fetch<C, R>(db: &C, statement: Statement) -> AppResult<Vec<R>>
where
    C: ConnectionTrait + TransactionTrait,
    R: FromQueryResult,
{
    if db.get_database_backend() == DbBackend::Postgres {
        let txn = db.begin().await?;
        txn.execute_unprepared("SET LOCAL plan_cache_mode = force_custom_plan").await?;
        let rows = R::find_by_statement(statement).all(&txn).await?;
        txn.commit().await?;
        Ok(rows)
    } else {
        Ok(R::find_by_statement(statement).all(db).await?)
    }
}

/// One page of results: the ids of the matching things, best first, and the terms to highlight.
pub struct Results {
    pub page: Page<i64>,
    pub terms: Vec<String>,
    /// The search's [`Total`], when it was counted on the way (the in-memory path).
    pub total: Option<Total>,
    pub answered_by: Answered,
}

/// Which index answered a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    Memory,
    Database,
}

impl Answered {
    /// The `index` label of `ecer_searches_total`.
    fn label(self) -> &'static str {
        match self {
            Answered::Memory => "memory",
            Answered::Database => "database",
        }
    }
}

/// Searches the instance's in-memory index when it has loaded (`resident`), else the database.
pub async fn search<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    resident: Option<&Resident>,
    query: &str,
    kind: Kind,
    board_id: Option<i64>,
    page: &PageArgs,
) -> AppResult<Results> {
    let q = text::query_tokens(query);
    if q.all.is_empty() {
        return Err(AppError::bad_input("query", "has no words to search for"));
    }
    let offset = page.after_id().map_or(0, |o| o + 1);
    if !(0..=MAX_OFFSET).contains(&offset) {
        return Err(AppError::bad_input("after", "is not a valid cursor"));
    }
    let limit = page.fetch_limit() as i64;
    let now = chrono::Utc::now().timestamp();
    // The in-memory index also counts the matches (one past the candidates), so a `totalCount` in
    // the same request needs no second look.
    let mut total = None;
    let ranked = match resident {
        Some(r) => r
            .fresh(db, |index| {
                let shard = index.shard(kind);
                let mut found = shard.find(&q, board_id, CANDIDATES as usize + 1)?;
                total = Some(Total::of(found.matches.len()));
                found.matches.truncate(CANDIDATES as usize);
                let ranked = shard.rank(&found, now);
                Some(ranked.into_iter().skip(offset as usize).take(limit as usize).map(i64::from).collect::<Vec<_>>())
            })
            .await
            .flatten(),
        None => None,
    };
    let answered_by = if ranked.is_some() { Answered::Memory } else { Answered::Database };
    crate::metrics::METRICS.searches.with_label_values(&[answered_by.label()]).inc();
    let ids = match ranked {
        Some(ids) => ids,
        None => {
            let statement = statement(db.get_database_backend(), &q, kind, board_id, offset, limit, now);
            fetch::<_, Row>(db, statement).await?.into_iter().map(|r| r.ref_id).collect()
        }
    };
    // Cursors are positions: results are ranked, not keyed, so a page continues at an offset.
    let items: Vec<(i64, i64)> = ids.into_iter().enumerate().map(|(i, id)| (offset + i as i64, id)).collect();
    let page = Page::from_rows(page, items, |(pos, _)| Cursor::Id(*pos)).map(|(_, id)| id);
    Ok(Results { page, terms: q.terms, total, answered_by })
}

/// How many things a search finds, counted no further than [`CANDIDATES`]: exactly the results one
/// can page through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Total {
    /// The matches, at most [`CANDIDATES`].
    pub count: i64,
    /// More than [`CANDIDATES`] things match: `count` is the cap, and only the newest are ranked.
    pub capped: bool,
}

impl Total {
    /// The total of `n` matches counted up to one past [`CANDIDATES`].
    fn of(n: usize) -> Total {
        let n = n as i64;
        Total { count: n.min(CANDIDATES), capped: n > CANDIDATES }
    }
}

/// Counts a search's matches, up to one past [`CANDIDATES`], with the match expression and index
/// order of the search itself, so the count costs what ranking the candidates does (without the
/// ranking): an exact count of a word in every post would read every match.
pub async fn total<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    resident: Option<&Resident>,
    query: &str,
    kind: Kind,
    board_id: Option<i64>,
) -> AppResult<Total> {
    let q = text::query_tokens(query);
    if q.all.is_empty() {
        return Err(AppError::bad_input("query", "has no words to search for"));
    }
    let limit = CANDIDATES as usize + 1;
    let counted = match resident {
        Some(r) => {
            r.fresh(db, |index| index.shard(kind).find(&q, board_id, limit).map(|f| f.matches.len())).await.flatten()
        }
        None => None,
    };
    let n = match counted {
        Some(n) => n,
        None => {
            let rows: Vec<CountRow> = fetch(db, count_statement(db.get_database_backend(), &q, kind, board_id)).await?;
            rows.first().map_or(0, |r| r.n as usize)
        }
    };
    Ok(Total::of(n))
}

/// A `tsquery` of every token (PostgreSQL): quoted lexemes, the last a prefix if it may be unfinished.
fn pg_tsquery(q: &text::QueryTokens) -> String {
    let last = q.all.len().saturating_sub(1);
    q.all
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let lexeme = format!("'{}'", t.replace('\\', "\\\\").replace('\'', "''"));
            if i == last && q.last_is_prefix { format!("{lexeme}:*") } else { lexeme }
        })
        .collect::<Vec<_>>()
        .join(" & ")
}

/// An FTS5 match of every token (SQLite): quoted phrases, the last a prefix if it may be unfinished.
fn fts_matcher(q: &text::QueryTokens) -> String {
    let last = q.all.len().saturating_sub(1);
    q.all
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let phrase = format!("\"{}\"", t.replace('"', "\"\""));
            if i == last && q.last_is_prefix { format!("{phrase}*") } else { phrase }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// How many of the newest documents a PostgreSQL search reads before it asks the GIN index.
const WINDOW: i64 = 5 * CANDIDATES;

/// The newest `limit` matches (PostgreSQL): a `WITH` clause to put first and the relation `c`.
///
/// The planner estimates the share of documents that match several words as the product of their
/// shares, so words that nearly always occur together ("Canton Fair": a fifth of the posts) look
/// rare and it collects every match from the GIN index and sorts them: 30 ms at one client, 140 ms at
/// ten. So the newest `window` documents are read first, in `(kind, ref_id)` order (stopping as soon
/// as `limit` match); only when fewer match there does the planner's own choice run, and it then
/// faces words that really are rarer than one in `window / limit`, where the GIN index is the right
/// way. Both branches give the same rows: `limit` matches inside the newest `window` documents are
/// the newest `limit` of all. With a board filter the window would walk other boards' documents, so
/// the planner's choice runs alone.
fn pg_candidates(tsq: &str, kind: &str, board: Option<&str>, limit: &str, window: &str) -> (String, String) {
    let planned = |board: &str| {
        format!(
            "SELECT ref_id, published_at, tsv FROM search_documents \
             WHERE tsv @@ {tsq}::tsquery AND kind = {kind}{board} ORDER BY ref_id DESC LIMIT {limit}"
        )
    };
    if let Some(board) = board {
        return (String::new(), format!("({}) c", planned(&format!(" AND board_id = {board}"))));
    }
    let with = format!(
        "WITH w AS MATERIALIZED (SELECT ref_id, published_at, tsv FROM (SELECT ref_id, published_at, tsv \
         FROM search_documents WHERE kind = {kind} ORDER BY ref_id DESC LIMIT {window}) r \
         WHERE r.tsv @@ {tsq}::tsquery ORDER BY r.ref_id DESC LIMIT {limit}) "
    );
    let candidates = format!(
        "(SELECT ref_id, published_at, tsv FROM w WHERE (SELECT count(*) FROM w) >= {limit} \
         UNION ALL SELECT ref_id, published_at, tsv FROM ({}) o WHERE (SELECT count(*) FROM w) < {limit}) c",
        planned("")
    );
    (with, candidates)
}

/// The count statement: the inner query of [`statement`] with one more row, counted.
pub fn count_statement(backend: DbBackend, q: &text::QueryTokens, kind: Kind, board_id: Option<i64>) -> Statement {
    let mut values: Vec<sea_orm::Value> = Vec::new();
    let mut param = |v: sea_orm::Value| {
        values.push(v);
        if backend == DbBackend::Postgres { format!("${}", values.len()) } else { "?".to_string() }
    };
    let sql = match backend {
        DbBackend::Postgres => {
            let tsq = param(pg_tsquery(q).into());
            let kind = param(kind.as_str().into());
            let board = board_id.map(|b| param(b.into()));
            let limit = param((CANDIDATES + 1).into());
            let window = param(WINDOW.into());
            let (with, candidates) = pg_candidates(&tsq, &kind, board.as_deref(), &limit, &window);
            format!("{with}SELECT COUNT(*) AS n FROM {candidates}")
        }
        _ => {
            let matcher = param(fts_matcher(q).into());
            let kind = param(kind.as_str().into());
            let board = board_id.map_or(String::new(), |b| format!(" AND +d.board_id = {}", param(b.into())));
            let limit = param((CANDIDATES + 1).into());
            format!(
                "SELECT COUNT(*) AS n FROM (SELECT search_fts.rowid FROM search_fts \
                 JOIN search_documents d ON d.id = search_fts.rowid \
                 WHERE search_fts MATCH {matcher} AND +d.kind = {kind}{board} \
                 ORDER BY search_fts.rowid DESC LIMIT {limit})"
            )
        }
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// The search statement: the [`CANDIDATES`] newest matches in index order, then those ranked by
/// relevance and recency, `limit` rows from `offset`. Public so the discovery bench explains exactly
/// what runs.
pub fn statement(
    backend: DbBackend,
    q: &text::QueryTokens,
    kind: Kind,
    board_id: Option<i64>,
    offset: i64,
    limit: i64,
    now: i64,
) -> Statement {
    let mut values: Vec<sea_orm::Value> = Vec::new();
    // Placeholders in the order the values are pushed: `?` on SQLite, `$n` on PostgreSQL.
    let mut param = |v: sea_orm::Value| {
        values.push(v);
        if backend == DbBackend::Postgres { format!("${}", values.len()) } else { "?".to_string() }
    };
    let sql = match backend {
        DbBackend::Postgres => {
            let tsq = param(pg_tsquery(q).into());
            let kind = param(kind.as_str().into());
            let board = board_id.map(|b| param(b.into()));
            let limit_candidates = param(CANDIDATES.into());
            let window = param(WINDOW.into());
            let now = param(now.into());
            let (limit, offset) = (param(limit.into()), param(offset.into()));
            let (with, candidates) = pg_candidates(&tsq, &kind, board.as_deref(), &limit_candidates, &window);
            // Only the candidates are ranked.
            format!(
                "{with}SELECT c.ref_id FROM {candidates} \
                 ORDER BY ts_rank(c.tsv, {tsq}::tsquery) * -10 + ({now} - c.published_at) / 31536000.0, c.ref_id DESC \
                 LIMIT {limit} OFFSET {offset}"
            )
        }
        _ => {
            let matcher = param(fts_matcher(q).into());
            let kind = param(kind.as_str().into());
            // `+d.kind` keeps SQLite from driving the join from the `kind` index (one full-text
            // match per document: minutes at 100k posts without table statistics); the FTS match
            // must lead. Measured in docs/BENCHMARKS.md ("Discovery").
            let board = board_id.map_or(String::new(), |b| format!(" AND +d.board_id = {}", param(b.into())));
            let candidates = param(CANDIDATES.into());
            let now = param(now.into());
            let (limit, offset) = (param(limit.into()), param(offset.into()));
            // FTS5 walks the match's doclists newest rowid first and stops after the candidates;
            // bm25 is computed for those rows only. (Both levels have a LIMIT, so SQLite does not
            // flatten the subquery.)
            format!(
                "SELECT ref_id FROM (SELECT d.id AS id, d.ref_id AS ref_id, d.published_at AS published_at, \
                 bm25(search_fts) AS relevance FROM search_fts JOIN search_documents d ON d.id = search_fts.rowid \
                 WHERE search_fts MATCH {matcher} AND +d.kind = {kind}{board} \
                 ORDER BY search_fts.rowid DESC LIMIT {candidates}) \
                 ORDER BY relevance + ({now} - published_at) / 31536000.0, id DESC LIMIT {limit} OFFSET {offset}"
            )
        }
    };
    Statement::from_sql_and_values(backend, sql, values)
}
