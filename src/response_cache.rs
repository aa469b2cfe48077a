//! The response cache: anonymous queries answered from memory.
//!
//! Most of the community's traffic is signed-out reads of the same feeds, boards and post pages, and
//! an anonymous answer depends only on the document and its variables. So the serialised answer is
//! kept per (document, operation, variables) for `RESPONSE_CACHE_TTL_MS`, one computation per key at
//! a time, and served stale for at most as long again while one request recomputes it in the
//! background.
//!
//! Freshness comes from an [`Epoch`], not from a list of what each answer contains: every write that
//! changes what a signed-out reader sees (a post, a comment, a profile, a deletion, an erasure, a ban)
//! moves the epoch before its mutation returns, and an answer computed under another epoch is never
//! served. With Redis the epoch lives there (one `INCR` per such write, one `GET` per cached answer),
//! so a deletion on one instance is never served by another after it commits; when Redis cannot
//! answer, the cache is bypassed. Counter-only writes (likes, follows) move only the local epoch:
//! other instances catch up within the TTL. Which mutation is which is decided in
//! `graphql::freshness`.

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;

use crate::metrics::METRICS;
use crate::services::activity::Target;

/// How long a cache lookup waits for Redis to say the epoch before it bypasses the cache.
const EPOCH_TIMEOUT: Duration = Duration::from_millis(200);

/// Which writes an answer was computed after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    local: u64,
    shared: u64,
}

/// The write counter answers are stamped with: local to this instance, and shared through Redis.
pub struct Epoch {
    local: AtomicU64,
    shared: Option<(redis::aio::ConnectionManager, String)>,
}

impl Epoch {
    pub fn new(redis: Option<redis::aio::ConnectionManager>, prefix: &str) -> Epoch {
        Epoch { local: AtomicU64::new(0), shared: redis.map(|r| (r, format!("{prefix}content-epoch"))) }
    }

    /// The current stamp; `None` when Redis cannot say, and nothing cached may be trusted.
    pub async fn stamp(&self) -> Option<Stamp> {
        let local = self.local.load(Ordering::Acquire);
        let shared = match &self.shared {
            None => 0,
            Some((conn, key)) => {
                let mut conn = conn.clone();
                let mut get = redis::cmd("GET");
                get.arg(key);
                match tokio::time::timeout(EPOCH_TIMEOUT, get.query_async::<Option<u64>>(&mut conn)).await {
                    Ok(Ok(v)) => v.unwrap_or(0),
                    _ => return None,
                }
            }
        };
        Some(Stamp { local, shared })
    }

    /// A write only this instance must reflect at once (counters).
    pub fn bump_local(&self) {
        self.local.fetch_add(1, Ordering::AcqRel);
    }

    /// A write no instance may serve an older answer than. If Redis cannot take it, the other
    /// instances cannot read the epoch either and bypass their caches until it can.
    pub async fn bump_shared(&self) {
        self.bump_local();
        if let Some((conn, key)) = &self.shared {
            let mut conn = conn.clone();
            let mut incr = redis::cmd("INCR");
            incr.arg(key);
            match tokio::time::timeout(EPOCH_TIMEOUT, incr.query_async::<u64>(&mut conn)).await {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => tracing::warn!(%err, "could not move the shared content epoch"),
                Err(_) => tracing::warn!("moving the shared content epoch timed out"),
            }
        }
    }
}

/// What a cached query answered: the response body, and the pages it counted a visit to (a visit
/// is counted for every reader the answer is served to, as if the query had run).
#[derive(Debug)]
pub struct Answer {
    pub body: Bytes,
    pub visits: Vec<(Target, i64)>,
}

/// A query as the cache tells it apart: its document, operation and variables (as canonical JSON).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub query: Arc<str>,
    pub operation: Option<Arc<str>>,
    pub variables: Arc<str>,
}

struct Entry {
    answer: Arc<Answer>,
    stamp: Stamp,
    at: Instant,
    /// Set by the one request that recomputes a stale entry.
    refreshing: AtomicBool,
}

/// How a lookup went.
pub enum Lookup {
    /// Computed within the TTL under the current epoch.
    Fresh(Arc<Answer>),
    /// Past the TTL but within the stale bound; `refresh` is true for the one caller that should
    /// recompute it in the background.
    Stale { answer: Arc<Answer>, refresh: bool },
    /// Nothing usable: compute it (through [`ResponseCache::fill`]) under this stamp.
    Miss(Stamp),
    /// The epoch cannot be read: run the query and keep nothing.
    Bypass,
}

/// What [`ResponseCache::fill`] got: an answer another caller computed meanwhile, or the caller's own.
pub enum Filled<R> {
    Shared(Arc<Answer>),
    Own(R),
    /// The other caller's answer was evicted before it could be read: compute without the cache.
    Gone,
}

pub struct ResponseCache {
    entries: moka::future::Cache<Key, Arc<Entry>>,
    fresh: Duration,
    epoch: Arc<Epoch>,
}

impl ResponseCache {
    /// `None` when the TTL is 0 (the cache is off).
    pub fn new(ttl_ms: u64, mib: u64, epoch: Arc<Epoch>) -> Option<ResponseCache> {
        if ttl_ms == 0 {
            return None;
        }
        let fresh = Duration::from_millis(ttl_ms);
        let entries = moka::future::Cache::builder()
            .max_capacity(mib.saturating_mul(1024 * 1024))
            .weigher(|k: &Key, e: &Arc<Entry>| {
                let bytes = k.query.len() + k.variables.len() + e.answer.body.len() + 128;
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .time_to_live(fresh * 2)
            .build();
        Some(ResponseCache { entries, fresh, epoch })
    }

    pub async fn lookup(&self, key: &Key) -> Lookup {
        let Some(stamp) = self.epoch.stamp().await else {
            METRICS.response_cache.with_label_values(&["bypass"]).inc();
            return Lookup::Bypass;
        };
        match self.entries.get(key).await {
            Some(e) if e.stamp == stamp && e.at.elapsed() < self.fresh => {
                METRICS.response_cache.with_label_values(&["hit"]).inc();
                Lookup::Fresh(e.answer.clone())
            }
            Some(e) if e.stamp == stamp => {
                METRICS.response_cache.with_label_values(&["stale"]).inc();
                let refresh = !e.refreshing.swap(true, Ordering::AcqRel);
                Lookup::Stale { answer: e.answer.clone(), refresh }
            }
            _ => {
                METRICS.response_cache.with_label_values(&["miss"]).inc();
                Lookup::Miss(stamp)
            }
        }
    }

    /// Computes the answer for `key` unless another caller computed a fresh one meanwhile: callers
    /// with the same key wait for the one computing it (one database round per key, not one per
    /// caller). `compute` returns the caller's own result and, when it may be shared, the answer.
    pub async fn fill<R, Fut>(&self, key: Key, stamp: Stamp, compute: impl FnOnce() -> Fut) -> Filled<R>
    where
        Fut: Future<Output = (R, Option<Answer>)>,
    {
        let mut own = None;
        let fresh = self.fresh;
        let result = self
            .entries
            .entry(key)
            .and_compute_with(|current| {
                let own = &mut own;
                async move {
                    if let Some(e) = current.map(|c| c.into_value())
                        && e.stamp == stamp
                        && e.at.elapsed() < fresh
                    {
                        return moka::ops::compute::Op::Nop;
                    }
                    let (mine, answer) = compute().await;
                    *own = Some(mine);
                    match answer {
                        Some(answer) => moka::ops::compute::Op::Put(Arc::new(Entry {
                            answer: Arc::new(answer),
                            stamp,
                            at: Instant::now(),
                            refreshing: AtomicBool::new(false),
                        })),
                        None => moka::ops::compute::Op::Nop,
                    }
                }
            })
            .await;
        if let Some(mine) = own {
            return Filled::Own(mine);
        }
        match result.into_entry() {
            Some(e) => Filled::Shared(e.into_value().answer.clone()),
            None => Filled::Gone,
        }
    }

    /// The epoch this cache's answers are stamped with.
    pub fn epoch(&self) -> &Arc<Epoch> {
        &self.epoch
    }
}
