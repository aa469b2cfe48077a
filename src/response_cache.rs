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
    /// When the local epoch last moved (ms since the Unix epoch): an answer another instance
    /// computed before then may miss this instance's own write.
    local_moved_ms: AtomicU64,
    shared: Option<(redis::aio::ConnectionManager, String)>,
}

impl Epoch {
    pub fn new(redis: Option<redis::aio::ConnectionManager>, prefix: &str) -> Epoch {
        Epoch {
            local: AtomicU64::new(0),
            local_moved_ms: AtomicU64::new(0),
            shared: redis.map(|r| (r, format!("{prefix}content-epoch"))),
        }
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
        self.local_moved_ms.fetch_max(now_ms(), Ordering::AcqRel);
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
    /// Answers other instances computed, in Redis (when configured).
    shared: Option<SharedTier>,
}

impl ResponseCache {
    /// `None` when the TTL is 0 (the cache is off).
    pub fn new(ttl_ms: u64, mib: u64, epoch: Arc<Epoch>, shared: Option<SharedTier>) -> Option<ResponseCache> {
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
        Some(ResponseCache { entries, fresh, epoch, shared })
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
        let key_ref = &key.clone();
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
                    let entry = |answer: Answer, at: Instant| {
                        moka::ops::compute::Op::Put(Arc::new(Entry {
                            answer: Arc::new(answer),
                            stamp,
                            at,
                            refreshing: AtomicBool::new(false),
                        }))
                    };
                    if let Some(tier) = &self.shared {
                        let not_before = self.epoch.local_moved_ms.load(Ordering::Acquire);
                        if let Some((answer, at)) = tier.get(key_ref, stamp.shared, not_before, fresh).await {
                            return entry(answer, at);
                        }
                    }
                    let (mine, answer) = compute().await;
                    *own = Some(mine);
                    match answer {
                        Some(answer) => {
                            if let Some(tier) = &self.shared {
                                tier.put(key_ref, stamp.shared, &answer, fresh * 2).await;
                            }
                            entry(answer, Instant::now())
                        }
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

fn now_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// The optional second tier: answers kept in Redis for every instance, so N instances compute a hot
/// answer about once per TTL between them instead of once each.
///
/// An answer from there is used only under the same rule as a local one: computed under the
/// current shared epoch, within the TTL, and after this instance's own last counter write (which the
/// other instance may not have seen). Redis that is slow or down only costs a local computation.
pub struct SharedTier {
    conn: redis::aio::ConnectionManager,
    prefix: String,
}

impl SharedTier {
    pub fn new(conn: redis::aio::ConnectionManager, prefix: &str) -> SharedTier {
        SharedTier { conn, prefix: format!("{prefix}response:") }
    }

    fn redis_key(&self, key: &Key) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for part in [key.query.as_bytes(), key.operation.as_deref().unwrap_or("").as_bytes(), key.variables.as_bytes()]
        {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        format!("{}{:x}", self.prefix, h.finalize())
    }

    async fn get(
        &self,
        key: &Key,
        shared_epoch: u64,
        not_before_ms: u64,
        fresh: Duration,
    ) -> Option<(Answer, Instant)> {
        let mut conn = self.conn.clone();
        let mut get = redis::cmd("GET");
        get.arg(self.redis_key(key));
        let raw: Vec<u8> =
            match tokio::time::timeout(EPOCH_TIMEOUT, get.query_async::<Option<Vec<u8>>>(&mut conn)).await {
                Ok(Ok(Some(raw))) => raw,
                _ => return None,
            };
        let stored = Stored::decode(&raw)?;
        let age = Duration::from_millis(now_ms().saturating_sub(stored.at_ms));
        if stored.shared_epoch != shared_epoch || stored.at_ms <= not_before_ms || age >= fresh {
            return None;
        }
        METRICS.response_cache.with_label_values(&["shared_hit"]).inc();
        let at = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        Some((Answer { body: Bytes::copy_from_slice(stored.body), visits: stored.visits }, at))
    }

    /// Stored before the answer is served, so whoever reads next on another instance finds it.
    async fn put(&self, key: &Key, shared_epoch: u64, answer: &Answer, ttl: Duration) {
        let value =
            Stored { shared_epoch, at_ms: now_ms(), visits: answer.visits.clone(), body: &answer.body }.encode();
        let px = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut set = redis::cmd("SET");
        set.arg(self.redis_key(key)).arg(value).arg("PX").arg(px);
        let mut conn = self.conn.clone();
        let _ = tokio::time::timeout(EPOCH_TIMEOUT, set.query_async::<()>(&mut conn)).await;
    }
}

/// An answer as Redis holds it: a header line `<shared epoch> <computed at, ms> <visits>` (visits as
/// `b<id>` or `p<id>`, comma-separated), then the response body.
struct Stored<'a> {
    shared_epoch: u64,
    at_ms: u64,
    visits: Vec<(Target, i64)>,
    body: &'a [u8],
}

impl<'a> Stored<'a> {
    fn encode(&self) -> Vec<u8> {
        let visits: Vec<String> =
            self.visits.iter().map(|(t, id)| format!("{}{id}", if *t == Target::Board { 'b' } else { 'p' })).collect();
        let mut out = format!("{} {} {}\n", self.shared_epoch, self.at_ms, visits.join(",")).into_bytes();
        out.extend_from_slice(self.body);
        out
    }

    fn decode(raw: &'a [u8]) -> Option<Stored<'a>> {
        let newline = raw.iter().position(|&b| b == b'\n')?;
        let head = std::str::from_utf8(&raw[..newline]).ok()?;
        let mut parts = head.split(' ');
        let shared_epoch = parts.next()?.parse().ok()?;
        let at_ms = parts.next()?.parse().ok()?;
        let visits = parts
            .next()?
            .split(',')
            .filter(|v| !v.is_empty())
            .map(|v| {
                let target = match v.as_bytes().first()? {
                    b'b' => Target::Board,
                    b'p' => Target::Post,
                    _ => return None,
                };
                Some((target, v[1..].parse().ok()?))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Stored { shared_epoch, at_ms, visits, body: &raw[newline + 1..] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_answer_reads_back_as_written_and_garbage_reads_as_nothing() {
        let body = br#"{"data":{"post":{"title":"a\nb"}}}"#;
        let visits = vec![(Target::Board, 3), (Target::Post, 42)];
        let raw = Stored { shared_epoch: 7, at_ms: 1_700_000_000_000, visits: visits.clone(), body }.encode();
        let back = Stored::decode(&raw).unwrap();
        assert_eq!((back.shared_epoch, back.at_ms, back.visits, back.body), (7, 1_700_000_000_000, visits, &body[..]));
        let none = Stored { shared_epoch: 1, at_ms: 2, visits: Vec::new(), body: b"{}" }.encode();
        assert_eq!(Stored::decode(&none).unwrap().visits, Vec::new());
        for garbage in [&b""[..], b"no newline", b"x 1 \n{}", b"1 2 q9\n{}", b"1 2 bx\n{}"] {
            assert!(Stored::decode(garbage).is_none(), "{garbage:?}");
        }
    }
}
