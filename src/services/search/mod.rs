//! Search over posts, boards and members, for Chinese (Traditional and Simplified) and English alike.
//!
//! [`text`] turns text into tokens; this module keeps the index (`search_documents`, with an FTS5
//! table on SQLite and a GIN-indexed `tsvector` on PostgreSQL) in step with the content, in the same
//! transactions, and answers queries. Every query token must match; ranking is the back end's
//! relevance (bm25 / ts_rank) with a recency term: a document a year older needs about one unit more
//! relevance to rank level. No `LIKE '%q%'` anywhere: both back ends answer from an inverted index.

pub mod text;

use entity::search_documents;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, QueryFilter, Set, Statement};

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
    fn as_str(self) -> &'static str {
        match self {
            Kind::Post => "post",
            Kind::Board => "board",
            Kind::User => "user",
        }
    }
}

/// Deepest result a search pages to: ranking past this is noise, and deep offsets cost.
pub const MAX_OFFSET: i64 = 1000;

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

/// One page of results: the ids of the matching things, best first, and the terms to highlight.
pub struct Results {
    pub page: Page<i64>,
    pub terms: Vec<String>,
}

pub async fn search<C: ConnectionTrait>(
    db: &C,
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
    let backend = db.get_database_backend();
    let (sql, values): (String, Vec<sea_orm::Value>) = match backend {
        DbBackend::Postgres => {
            let last = q.all.len() - 1;
            let tsquery = q
                .all
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let lexeme = format!("'{}'", t.replace('\\', "\\\\").replace('\'', "''"));
                    if i == last && q.last_is_prefix { format!("{lexeme}:*") } else { lexeme }
                })
                .collect::<Vec<_>>()
                .join(" & ");
            let board = if board_id.is_some() { " AND board_id = $6" } else { "" };
            let sql = format!(
                "SELECT ref_id FROM search_documents WHERE tsv @@ $1::tsquery AND kind = $2{board} \
                 ORDER BY ts_rank(tsv, $1::tsquery) * -10 + ($3 - published_at) / 31536000.0, id DESC \
                 LIMIT $4 OFFSET $5"
            );
            let mut values = vec![tsquery.into(), kind.as_str().into(), now.into(), limit.into(), offset.into()];
            values.extend(board_id.map(Into::into));
            (sql, values)
        }
        _ => {
            let last = q.all.len() - 1;
            let matcher = q
                .all
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let phrase = format!("\"{}\"", t.replace('"', "\"\""));
                    if i == last && q.last_is_prefix { format!("{phrase}*") } else { phrase }
                })
                .collect::<Vec<_>>()
                .join(" ");
            // `+d.kind` keeps SQLite from driving the join from the `kind` index (one full-text
            // match per document: minutes at 100k posts without table statistics); the FTS match
            // must lead. Measured in docs/BENCHMARKS.md ("Discovery").
            let board = if board_id.is_some() { " AND +d.board_id = ?" } else { "" };
            let sql = format!(
                "SELECT d.ref_id AS ref_id FROM search_fts JOIN search_documents d ON d.id = search_fts.rowid \
                 WHERE search_fts MATCH ? AND +d.kind = ?{board} \
                 ORDER BY bm25(search_fts) + (? - d.published_at) / 31536000.0, d.id DESC LIMIT ? OFFSET ?"
            );
            let mut values: Vec<sea_orm::Value> = vec![matcher.into(), kind.as_str().into()];
            values.extend(board_id.map(Into::into));
            values.extend([now.into(), limit.into(), offset.into()]);
            (sql, values)
        }
    };
    let rows = Row::find_by_statement(Statement::from_sql_and_values(backend, sql, values)).all(db).await?;
    // Cursors are positions: results are ranked, not keyed, so a page continues at an offset.
    let items: Vec<(i64, i64)> = rows.into_iter().enumerate().map(|(i, r)| (offset + i as i64, r.ref_id)).collect();
    let page = Page::from_rows(page, items, |(pos, _)| Cursor::Id(*pos)).map(|(_, id)| id);
    Ok(Results { page, terms: q.terms })
}
