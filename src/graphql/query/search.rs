//! Search, open to everyone (browsing needs no account).

use std::sync::Arc;

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, Object};

use crate::graphql::ids::{self, Kind};
use crate::graphql::types::{Board, Post, User, connection, list_cost, load_one};
use crate::graphql::{loaders, page_args, state};
use crate::services::recommend;
use crate::services::search::{self, text};

/// What to search.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum SearchType {
    #[default]
    Post,
    Board,
    User,
}

/// One result: the thing found (in the field matching its type) and an excerpt with the matches
/// marked.
pub struct SearchHit {
    kind: SearchType,
    id: i64,
    terms: Arc<Vec<String>>,
}

const SNIPPET_CHARS: usize = 120;

#[Object]
impl SearchHit {
    /// An excerpt around the first match, HTML-escaped, matches wrapped in `<mark>` (safe to render
    /// as HTML). A Simplified query marks Traditional text and the other way round.
    async fn snippet(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        let l = loaders(ctx)?;
        let text = match self.kind {
            SearchType::Post => load_one(&l.posts, self.id).await?.map(|p| format!("{} — {}", p.title, p.body)),
            SearchType::Board => load_one(&l.boards, self.id).await?.map(|b| format!("{} — {}", b.name, b.description)),
            SearchType::User => load_one(&l.users, self.id).await?.map(|u| {
                [Some(u.nickname), u.account_name, u.signature].into_iter().flatten().collect::<Vec<_>>().join(" — ")
            }),
        };
        Ok(text.map(|t| text::snippet(&t, &self.terms, SNIPPET_CHARS)).unwrap_or_default())
    }

    async fn post(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Post>> {
        if self.kind != SearchType::Post {
            return Ok(None);
        }
        Ok(load_one(&loaders(ctx)?.posts, self.id).await?.filter(|p| p.deleted_at.is_none()).map(Post))
    }

    async fn board(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Board>> {
        if self.kind != SearchType::Board {
            return Ok(None);
        }
        Ok(load_one(&loaders(ctx)?.boards, self.id).await?.map(Board))
    }

    async fn user(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        if self.kind != SearchType::User {
            return Ok(None);
        }
        Ok(load_one(&loaders(ctx)?.users, self.id).await?.map(User))
    }
}

#[derive(Default)]
pub struct SearchQuery;

#[Object]
impl SearchQuery {
    /// Full-text search in Chinese (Traditional or Simplified, either finds both) and English (any
    /// inflection, any case; the last word may be unfinished). Every word must match; results are
    /// ranked by relevance and recency.
    #[graphql(complexity = "list_cost(first, child_complexity)")]
    async fn search(
        &self,
        ctx: &Context<'_>,
        query: String,
        #[graphql(name = "type", desc = "POST when left out.")] kind: Option<SearchType>,
        board_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, SearchHit>> {
        let kind = kind.unwrap_or_default();
        let board = board_id.map(|b| ids::decode(Kind::Board, &b, "boardId")).transpose()?;
        let page = page_args(ctx, first, after.as_deref())?;
        let target = match kind {
            SearchType::Post => search::Kind::Post,
            SearchType::Board => search::Kind::Board,
            SearchType::User => search::Kind::User,
        };
        let db = &state(ctx)?.db;
        let results = search::search(db, &query, target, board, &page).await?;
        let found: Vec<i64> = results.page.items.iter().map(|(_, id)| *id).collect();
        // First pages only: paging through results is one search, not several.
        if let Some(viewer) = crate::graphql::viewer(ctx)
            && after.is_none()
        {
            // This page is the feed's search signal when it is a post search over all boards that
            // holds the best few or every match; otherwise the history records its own search.
            let enough = found.len() as u64 >= recommend::SEARCH_MATCHES || !results.page.has_next;
            let reuse = (target == search::Kind::Post && board.is_none() && enough).then_some(found.as_slice());
            crate::services::history::record_search(db, &viewer, &query, reuse).await?;
        }
        let l = loaders(ctx)?;
        // One batch for the things found, before any hit asks for its own.
        match kind {
            SearchType::Post => drop(l.posts.load_many(found).await?),
            SearchType::Board => drop(l.boards.load_many(found).await?),
            SearchType::User => drop(l.users.load_many(found).await?),
        }
        let terms = Arc::new(results.terms);
        Ok(connection(results.page, |id| SearchHit { kind, id, terms: terms.clone() }))
    }
}
