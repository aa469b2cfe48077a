//! The types clients see. Each wraps an entity model; storage stays free to change under them.

pub mod board;
pub mod comment;
pub mod developer_app;
pub mod enums;
pub mod history;
pub mod live;
pub mod messaging;
pub mod moderation;
pub mod node;
pub mod notification;
pub mod post;
pub mod push;
pub mod search;
pub mod session;
pub mod trust;
pub mod user;

use std::collections::HashMap;
use std::hash::Hash;

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::dataloader::{CacheFactory, DataLoader, Loader};
use async_graphql::{Object, ObjectType, OutputType};

use crate::error::{AppError, AppResult};
use crate::services::page::Page;

pub use board::Board;
pub use comment::Comment;
pub use live::{LiveChatEvent, LiveChatMessage, LiveStream};
pub use messaging::{Conversation, Message};
pub use notification::Notification;
pub use post::Post;
pub use user::User;

/// A single edge, as create mutations return it.
pub type NewEdge<N> = Edge<String, N, async_graphql::connection::EmptyFields>;

/// The edge a create mutation returns for the new item, with the cursor its lists give it (Relay's
/// `@appendEdge` / `@prependEdge` insert it into a cached connection).
pub fn edge<N: OutputType>(cursor: crate::services::page::Cursor, node: N) -> NewEdge<N> {
    Edge::new(cursor.encode(), node)
}

/// A Relay connection over an already-loaded page.
pub fn connection<T, N: OutputType>(page: Page<T>, node: impl Fn(T) -> N) -> Connection<String, N> {
    with_fields(page, node, EmptyFields)
}

/// A connection whose list keeps a stored counter: `totalCount` comes with it at no extra query.
pub type Counted<N> = Connection<String, N, Totals>;

/// A connection with `totalCount`: `total` is the list's stored counter, `None` where it keeps none.
pub fn counted<T, N: OutputType>(page: Page<T>, node: impl Fn(T) -> N, total: Option<i64>) -> Counted<N> {
    with_fields(page, node, Totals(total))
}

fn with_fields<T, N: OutputType, E: ObjectType>(
    page: Page<T>,
    node: impl Fn(T) -> N,
    fields: E,
) -> Connection<String, N, E> {
    let mut conn = Connection::with_additional_fields(page.has_previous, page.has_next, fields);
    conn.edges.extend(page.items.into_iter().map(|(cursor, item)| Edge::new(cursor.encode(), node(item))));
    conn
}

/// The fields a connection over a counted list adds.
pub struct Totals(pub Option<i64>);

#[Object]
impl Totals {
    /// A count for the whole list, read from a counter stored with the list's owner (it costs no
    /// query). The list field's description says what it counts: usually the items the list holds.
    /// Null on lists that keep no counter, where counting would need a scan.
    async fn total_count(&self) -> Option<i32> {
        self.0.map(count)
    }
}

/// A Relay connection over a page of ids, the nodes fetched in one batch through a loader. Ids whose
/// node no longer exists (an erased user, say) are left out rather than failing the list.
pub async fn connection_via<L, C, V, N>(
    loader: &DataLoader<L, C>,
    page: Page<i64>,
    node: impl Fn(V) -> N,
) -> AppResult<Connection<String, N>>
where
    L: Loader<i64, Value = V, Error = async_graphql::Error>,
    C: CacheFactory,
    V: Clone + Send + Sync + 'static,
    N: OutputType,
{
    via_with_fields(loader, page, node, EmptyFields).await
}

/// [`connection_via`] with `totalCount` (see [`counted`]).
pub async fn counted_via<L, C, V, N>(
    loader: &DataLoader<L, C>,
    page: Page<i64>,
    node: impl Fn(V) -> N,
    total: Option<i64>,
) -> AppResult<Counted<N>>
where
    L: Loader<i64, Value = V, Error = async_graphql::Error>,
    C: CacheFactory,
    V: Clone + Send + Sync + 'static,
    N: OutputType,
{
    via_with_fields(loader, page, node, Totals(total)).await
}

async fn via_with_fields<L, C, V, N, E>(
    loader: &DataLoader<L, C>,
    page: Page<i64>,
    node: impl Fn(V) -> N,
    fields: E,
) -> AppResult<Connection<String, N, E>>
where
    L: Loader<i64, Value = V, Error = async_graphql::Error>,
    C: CacheFactory,
    V: Clone + Send + Sync + 'static,
    N: OutputType,
    E: ObjectType,
{
    let ids: Vec<i64> = page.items.iter().map(|(_, id)| *id).collect();
    let mut found: HashMap<i64, V> = loader.load_many(ids).await.map_err(gql_to_app)?;
    let mut conn = Connection::with_additional_fields(page.has_previous, page.has_next, fields);
    for (cursor, id) in page.items {
        if let Some(v) = found.remove(&id) {
            conn.edges.push(Edge::new(cursor.encode(), node(v)));
        }
    }
    Ok(conn)
}

/// Loads one value through a loader.
pub async fn load_one<K, L, C, V>(loader: &DataLoader<L, C>, key: K) -> AppResult<Option<V>>
where
    K: Send + Sync + Hash + Eq + Clone + 'static,
    L: Loader<K, Value = V, Error = async_graphql::Error>,
    C: CacheFactory,
    V: Send + Sync + Clone + 'static,
{
    loader.load_one(key).await.map_err(gql_to_app)
}

/// Loader errors were already logged when they became GraphQL errors. The ones a client can act on
/// keep their code (a database that cannot be reached stays SERVICE_UNAVAILABLE); the rest are
/// internal.
fn gql_to_app(err: async_graphql::Error) -> AppError {
    use crate::error::code;
    let code = err.extensions.as_ref().and_then(|e| e.get("code")).cloned();
    match code {
        Some(async_graphql::Value::String(c)) if c == code::SERVICE_UNAVAILABLE => {
            AppError::Unavailable { retry_after_secs: 1 }
        }
        Some(async_graphql::Value::String(c)) if c == code::QUERY_TIMEOUT => AppError::QueryTimeout,
        _ => AppError::internal(err.message),
    }
}

/// The cost of a list field for the complexity limit: its page size times what each item selects
/// (GitHub's node-limit model), so nested lists multiply.
///
/// Capped at `u32::MAX`: async-graphql adds sibling costs with plain `+`, so a saturated `usize`
/// next to any other field would overflow (a panic in debug builds, a wrap to a small cost that
/// passes the limit in release). A document has far fewer than 2^32 fields, so capped costs cannot
/// add up to an overflow.
pub fn list_cost(first: Option<i32>, child_complexity: usize) -> usize {
    let first = first.unwrap_or(crate::services::page::DEFAULT_PAGE_SIZE as i32).max(1) as usize;
    first.saturating_mul(child_complexity.max(1)).min(u32::MAX as usize)
}

/// GraphQL `Int` is 32-bit; counters are stored as 64-bit and saturate on the way out.
pub fn count(n: i64) -> i32 {
    i32::try_from(n.max(0)).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod cost_tests {
    use super::list_cost;

    #[test]
    fn list_costs_are_capped_so_sibling_sums_cannot_overflow() {
        let huge = list_cost(Some(i32::MAX), list_cost(Some(i32::MAX), usize::MAX));
        assert_eq!(huge, u32::MAX as usize);
        // What async-graphql does with siblings: plain addition.
        let siblings: usize = (0..1000).map(|_| huge).sum();
        assert!(siblings > huge);
        assert_eq!(list_cost(Some(20), 3), 60);
    }
}
