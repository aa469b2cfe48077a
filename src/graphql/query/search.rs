//! Search, open to everyone (browsing needs no account).

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Enum, ID, Object};

use crate::graphql::ids::{self, Kind};
use crate::graphql::types::list_cost;
use crate::graphql::types::search::{SearchHit, SearchResult, SearchTotals};
use crate::graphql::{loaders, page_args, state};
use crate::services::recommend;
use crate::services::search;

/// What to search.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum SearchType {
    #[default]
    Post,
    Board,
    User,
}

#[derive(Default)]
pub struct SearchQuery;

#[Object]
impl SearchQuery {
    /// Full-text search in Chinese (Traditional or Simplified, either finds both) and English (any
    /// inflection, any case; the last word may be unfinished). Every word must match; results are
    /// ranked by relevance and recency. Each hit's `result` is the post, board or member found;
    /// `totalCount` counts up to 1,000 (see `totalCountIsCapped`).
    #[graphql(complexity = "list_cost(first, child_complexity)")]
    async fn search(
        &self,
        ctx: &Context<'_>,
        query: String,
        #[graphql(name = "type", desc = "POST when left out.")] kind: Option<SearchType>,
        board_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, SearchHit, SearchTotals>> {
        let kind = kind.unwrap_or_default();
        let board = board_id.map(|b| ids::decode(Kind::Board, &b, "boardId")).transpose()?;
        let page = page_args(ctx, first, after.as_deref())?;
        let target = match kind {
            SearchType::Post => search::Kind::Post,
            SearchType::Board => search::Kind::Board,
            SearchType::User => search::Kind::User,
        };
        let (db, resident) = (&state(ctx)?.db, &state(ctx)?.search);
        let results = search::search(db, Some(resident), &query, target, board, &page).await?;
        let found: Vec<i64> = results.page.items.iter().map(|(_, id)| *id).collect();
        // First pages only: paging through results is one search, not several.
        if let Some(viewer) = crate::graphql::viewer(ctx)
            && after.is_none()
        {
            // This page is the feed's search signal when it is a post search over all boards that
            // holds the best few or every match; otherwise the history records its own search.
            let enough = found.len() as u64 >= recommend::SEARCH_MATCHES || !results.page.has_next;
            let reuse = (target == search::Kind::Post && board.is_none() && enough).then_some(found.as_slice());
            crate::services::history::record_search(db, resident, &viewer, &query, reuse).await?;
        }
        let l = loaders(ctx)?;
        // One batch for the things found; a thing gone since the search (a post deleted a moment
        // ago) leaves no hit rather than an empty one.
        let mut things: HashMap<i64, SearchResult> = match kind {
            SearchType::Post => l
                .posts
                .load_many(found)
                .await?
                .into_iter()
                .filter(|(_, p)| p.deleted_at.is_none())
                .map(|(id, p)| (id, p.into()))
                .collect(),
            SearchType::Board => l.boards.load_many(found).await?.into_iter().map(|(id, b)| (id, b.into())).collect(),
            SearchType::User => l.users.load_many(found).await?.into_iter().map(|(id, u)| (id, u.into())).collect(),
        };
        let terms = Arc::new(results.terms);
        let total = results.total;
        let page = results.page;
        let mut conn = Connection::with_additional_fields(
            page.has_previous,
            page.has_next,
            SearchTotals::new(query, target, board, total),
        );
        for (cursor, id) in page.items {
            if let Some(thing) = things.remove(&id) {
                conn.edges.push(Edge::new(cursor.encode(), SearchHit::new(thing, terms.clone())));
            }
        }
        Ok(conn)
    }
}
