//! Search results: each hit carries the thing found (a `SearchResult` union of `Post`, `Board` and
//! `User`) and an excerpt with the matches marked, as HTML and as plain text with ranges; the
//! connection carries a capped total.

use std::sync::{Arc, OnceLock};

use async_graphql::{Context, Object, SimpleObject, Union};
use entity::{boards, posts, users};
use tokio::sync::OnceCell;

use super::{Board, Post, User};
use crate::graphql::state;
use crate::services::search::{self, text};

/// Characters of text shown around the first match.
const SNIPPET_CHARS: usize = 120;

/// What a search found: a post, a board or a member, as the types the rest of the schema uses (so a
/// client's `... on Post { ...PostCard }` fragments and cache entries apply unchanged).
#[derive(Union)]
pub enum SearchResult {
    Post(Post),
    Board(Board),
    User(User),
}

impl SearchResult {
    /// The text a search matched and an excerpt is cut from: what was indexed for the thing.
    fn searched_text(&self) -> String {
        match self {
            SearchResult::Post(Post(p)) => format!("{} — {}", p.title, p.body),
            SearchResult::Board(Board(b)) => format!("{} — {}", b.name, b.description),
            SearchResult::User(User(u)) => {
                [Some(u.nickname.as_str()), u.account_name.as_deref(), u.signature.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" — ")
            }
        }
    }
}

impl From<posts::Model> for SearchResult {
    fn from(m: posts::Model) -> Self {
        SearchResult::Post(Post(m))
    }
}

impl From<boards::Model> for SearchResult {
    fn from(m: boards::Model) -> Self {
        SearchResult::Board(Board(m))
    }
}

impl From<users::Model> for SearchResult {
    fn from(m: users::Model) -> Self {
        SearchResult::User(User(m))
    }
}

/// A stretch of `SearchHit.text`.
#[derive(SimpleObject)]
pub struct TextRange {
    /// Offset of the first code unit, in UTF-16 code units from the start of the text.
    pub start: i32,
    /// Length in UTF-16 code units.
    pub length: i32,
}

/// One result: the thing found (`result`) and an excerpt around the first match, as HTML
/// (`snippet`) or as plain text with the matches as ranges (`text`, `highlights`).
pub struct SearchHit {
    found: SearchResult,
    terms: Arc<Vec<String>>,
    /// The excerpt, marked once for however many of its forms are asked for.
    marked: OnceLock<text::Marked>,
}

impl SearchHit {
    pub fn new(found: SearchResult, terms: Arc<Vec<String>>) -> Self {
        SearchHit { found, terms, marked: OnceLock::new() }
    }

    fn marked(&self) -> &text::Marked {
        self.marked.get_or_init(|| text::mark(&self.found.searched_text(), &self.terms, SNIPPET_CHARS))
    }
}

#[Object]
impl SearchHit {
    /// The post, board or member found.
    async fn result(&self) -> &SearchResult {
        &self.found
    }

    /// An excerpt around the first match, HTML-escaped, matches wrapped in `<mark>`, `…` where text
    /// was cut (safe to render as HTML). A Simplified query marks Traditional text and the other way
    /// round.
    async fn snippet(&self) -> String {
        self.marked().html()
    }

    /// The same excerpt as `snippet` as plain text: not escaped, no markup, line breaks as spaces,
    /// `…` where text was cut. Render it as text and style `highlights`.
    async fn text(&self) -> String {
        self.marked().plain().text
    }

    /// The matches in `text`, in order and not overlapping. Offsets and lengths count UTF-16 code
    /// units, the way JavaScript, Java/Kotlin and Swift's `NSString` index strings: a Chinese
    /// character counts one, an emoji or a CJK Extension B character two.
    async fn highlights(&self) -> Vec<TextRange> {
        self.marked()
            .plain()
            .highlights
            .into_iter()
            .map(|h| TextRange { start: super::count(h.start as i64), length: super::count(h.length as i64) })
            .collect()
    }

    #[graphql(deprecation = "Use `result` (`... on Post`): the union says which kind of thing was found.")]
    async fn post(&self) -> Option<&Post> {
        match &self.found {
            SearchResult::Post(p) => Some(p),
            _ => None,
        }
    }

    #[graphql(deprecation = "Use `result` (`... on Board`): the union says which kind of thing was found.")]
    async fn board(&self) -> Option<&Board> {
        match &self.found {
            SearchResult::Board(b) => Some(b),
            _ => None,
        }
    }

    #[graphql(deprecation = "Use `result` (`... on User`): the union says which kind of thing was found.")]
    async fn user(&self) -> Option<&User> {
        match &self.found {
            SearchResult::User(u) => Some(u),
            _ => None,
        }
    }
}

/// The search connection's own fields: how many results there are. Counted only when asked for,
/// once per search however many of the fields are selected.
pub struct SearchTotals {
    query: String,
    kind: search::Kind,
    board_id: Option<i64>,
    total: OnceCell<search::Total>,
}

impl SearchTotals {
    /// `known`: the total the search counted on its way, if it did.
    pub fn new(query: String, kind: search::Kind, board_id: Option<i64>, known: Option<search::Total>) -> Self {
        SearchTotals { query, kind, board_id, total: OnceCell::new_with(known) }
    }

    async fn total(&self, ctx: &Context<'_>) -> async_graphql::Result<search::Total> {
        let (db, resident) = (&state(ctx)?.db, &state(ctx)?.search);
        let total = self
            .total
            .get_or_try_init(|| search::total(db, Some(resident), &self.query, self.kind, self.board_id))
            .await?;
        Ok(*total)
    }
}

#[Object]
impl SearchTotals {
    /// How many results this search has, counted up to 1,000: the newest 1,000 matches are the ones
    /// ranked and paged through, so this is the number of results a client can reach. When more
    /// things match, it is 1,000 and `totalCountIsCapped` is true (show "1,000+").
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        Ok(super::count(self.total(ctx).await?.count))
    }

    /// More than 1,000 things match; `totalCount` is the cap, not the number of matches.
    async fn total_count_is_capped(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(self.total(ctx).await?.capped)
    }
}
