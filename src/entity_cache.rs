//! The entity cache: what queries read most (posts, members, boards, media lists, first comment
//! pages, post lists) kept in memory between requests, so a signed-in page costs only the statements
//! that depend on its viewer.
//!
//! The response cache cannot serve a signed-in page (its answer carries the viewer's own flags), but
//! almost everything the page shows is the same for everyone. The request's DataLoaders look here
//! before they query, and only the misses go to the database, in one batch as before.
//!
//! Freshness follows the response cache's [`Epoch`]: an entry is served only under the epoch it was
//! read in, and only for `ENTITY_CACHE_TTL_MS`. The epoch is read once per request, before anything
//! it stores is read from the database, so a row read before a deletion can never be stored under
//! the epoch that deletion moved to. Three exceptions keep it correct where the epoch cannot:
//! - mutations and subscriptions never read from it (a mutation's payload must show its own write,
//!   whose epoch move only happens once the mutation returns; a subscription reloads on events that
//!   arrive before it);
//! - the viewer's own member record always comes from the database (its private fields move with
//!   writes that change nothing public, so they move no epoch);
//! - when Redis cannot say the shared epoch, nothing is served from here.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use entity::{boards, comments, media, posts, users};
use moka::sync::Cache;

use crate::error::AppResult;
use crate::metrics::METRICS;
use crate::response_cache::{Epoch, Stamp};
use crate::services::comments::Parent;
use crate::services::page::{Page, PageArgs};
use crate::services::posts::{Filter, Order};

/// One list of posts as a query asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListKey {
    pub board_id: Option<i64>,
    pub author_id: Option<i64>,
    pub hot: bool,
    pub page: PageArgs,
}

impl ListKey {
    pub fn new(filter: Filter, order: Order, page: PageArgs) -> ListKey {
        ListKey { board_id: filter.board_id, author_id: filter.author_id, hot: order == Order::Hot, page }
    }
}

/// A page of children of one parent, with the page arguments that shaped it.
pub type ChildrenKey = (Parent, PageArgs);

struct Stamped<V> {
    value: Arc<V>,
    stamp: Stamp,
}

impl<V> Clone for Stamped<V> {
    fn clone(&self) -> Self {
        Stamped { value: self.value.clone(), stamp: self.stamp }
    }
}

type Map<K, V> = Cache<K, Stamped<V>>;

/// The process-wide maps, one per kind of entity.
pub struct EntityCache {
    epoch: Arc<Epoch>,
    users: Map<i64, users::Model>,
    boards: Map<i64, boards::Model>,
    posts: Map<i64, posts::Model>,
    post_media: Map<i64, Vec<media::Model>>,
    children: Map<ChildrenKey, Page<comments::Model>>,
    lists: Map<ListKey, Page<posts::Model>>,
}

impl EntityCache {
    /// `None` when turned off (`ttl_ms` 0).
    pub fn new(ttl_ms: u64, entries: u64, epoch: Arc<Epoch>) -> Option<EntityCache> {
        if ttl_ms == 0 || entries == 0 {
            return None;
        }
        let ttl = Duration::from_millis(ttl_ms);
        fn map<K: Hash + Eq + Send + Sync + 'static, V: Send + Sync + 'static>(
            entries: u64,
            ttl: Duration,
        ) -> Map<K, V> {
            Cache::builder().max_capacity(entries).time_to_live(ttl).build()
        }
        Some(EntityCache {
            epoch,
            users: map(entries, ttl),
            boards: map(entries, ttl),
            posts: map(entries, ttl),
            post_media: map(entries, ttl),
            children: map(entries, ttl),
            lists: map(entries, ttl),
        })
    }
}

/// One request's way into the cache: the epoch it reads under (fetched on first use), and whether
/// it may read at all.
pub struct View {
    cache: Option<Arc<EntityCache>>,
    viewer: Option<i64>,
    /// Cleared for mutations and subscriptions, before any of their fields resolve.
    enabled: AtomicBool,
    stamp: tokio::sync::OnceCell<Option<Stamp>>,
}

impl View {
    pub fn new(cache: Option<Arc<EntityCache>>, viewer: Option<i64>) -> View {
        View { cache, viewer, enabled: AtomicBool::new(true), stamp: tokio::sync::OnceCell::new() }
    }

    /// Every read of this request goes to the database from now on.
    pub fn bypass(&self) {
        self.enabled.store(false, Ordering::Release);
    }

    async fn active(&self) -> Option<(&EntityCache, Stamp)> {
        let cache = self.cache.as_deref().filter(|_| self.enabled.load(Ordering::Acquire))?;
        let stamp = (*self.stamp.get_or_init(|| cache.epoch.stamp()).await)?;
        Some((cache, stamp))
    }

    /// The values for `keys`: hits from `map`, misses from `load` (one call for all of them), which
    /// are then stored. `always_load` keys are never served from the cache.
    async fn through<K, V, F, Fut>(
        &self,
        kind: &'static str,
        map: impl Fn(&EntityCache) -> &Map<K, V>,
        keys: &[K],
        always_load: impl Fn(&K) -> bool,
        load: F,
    ) -> AppResult<HashMap<K, V>>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        F: FnOnce(Vec<K>) -> Fut,
        Fut: Future<Output = AppResult<HashMap<K, V>>>,
    {
        let Some((cache, stamp)) = self.active().await else { return load(keys.to_vec()).await };
        let map = map(cache);
        let mut out = HashMap::with_capacity(keys.len());
        let mut missing = Vec::new();
        for key in keys {
            match map.get(key).filter(|e| e.stamp == stamp && !always_load(key)) {
                Some(hit) => {
                    out.insert(key.clone(), V::clone(&hit.value));
                }
                None => missing.push(key.clone()),
            }
        }
        let hits = out.len();
        METRICS.entity_cache.with_label_values(&[kind, "hit"]).inc_by(hits as u64);
        METRICS.entity_cache.with_label_values(&[kind, "miss"]).inc_by(missing.len() as u64);
        if missing.is_empty() {
            return Ok(out);
        }
        for (key, value) in load(missing).await? {
            map.insert(key.clone(), Stamped { value: Arc::new(value.clone()), stamp });
            out.insert(key, value);
        }
        Ok(out)
    }

    pub async fn users<F, Fut>(&self, keys: &[i64], load: F) -> AppResult<HashMap<i64, users::Model>>
    where
        F: FnOnce(Vec<i64>) -> Fut,
        Fut: Future<Output = AppResult<HashMap<i64, users::Model>>>,
    {
        let viewer = self.viewer;
        self.through("user", |c| &c.users, keys, |&id| Some(id) == viewer, load).await
    }

    pub async fn boards<F, Fut>(&self, keys: &[i64], load: F) -> AppResult<HashMap<i64, boards::Model>>
    where
        F: FnOnce(Vec<i64>) -> Fut,
        Fut: Future<Output = AppResult<HashMap<i64, boards::Model>>>,
    {
        self.through("board", |c| &c.boards, keys, |_| false, load).await
    }

    pub async fn posts<F, Fut>(&self, keys: &[i64], load: F) -> AppResult<HashMap<i64, posts::Model>>
    where
        F: FnOnce(Vec<i64>) -> Fut,
        Fut: Future<Output = AppResult<HashMap<i64, posts::Model>>>,
    {
        self.through("post", |c| &c.posts, keys, |_| false, load).await
    }

    pub async fn post_media<F, Fut>(&self, keys: &[i64], load: F) -> AppResult<HashMap<i64, Vec<media::Model>>>
    where
        F: FnOnce(Vec<i64>) -> Fut,
        Fut: Future<Output = AppResult<HashMap<i64, Vec<media::Model>>>>,
    {
        self.through("post_media", |c| &c.post_media, keys, |_| false, load).await
    }

    pub async fn children<F, Fut>(
        &self,
        keys: &[ChildrenKey],
        load: F,
    ) -> AppResult<HashMap<ChildrenKey, Page<comments::Model>>>
    where
        F: FnOnce(Vec<ChildrenKey>) -> Fut,
        Fut: Future<Output = AppResult<HashMap<ChildrenKey, Page<comments::Model>>>>,
    {
        self.through("children", |c| &c.children, keys, |_| false, load).await
    }

    /// One list of posts (a feed, a board page, a member's posts).
    pub async fn list<Fut>(&self, key: ListKey, load: Fut) -> AppResult<Page<posts::Model>>
    where
        Fut: Future<Output = AppResult<Page<posts::Model>>>,
    {
        let found = self
            .through(
                "post_list",
                |c| &c.lists,
                &[key],
                |_| false,
                |_| async move { Ok(HashMap::from([(key, load.await?)])) },
            )
            .await?;
        found.into_values().next().ok_or_else(|| crate::error::AppError::internal("post list vanished"))
    }
}
