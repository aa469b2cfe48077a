//! Who is watching a live room, counted once per viewer across every instance.
//!
//! Each instance keeps a local reference count per (room, viewer): two tabs of one user count once.
//! With Redis, every room is a sorted set of viewers scored by when their entry expires; an instance
//! re-stamps its viewers every [`REFRESH`] and removes a viewer when its last local reference goes, so
//! a viewer disappears at once when they leave and within [`TTL`] when their instance dies. The count
//! is `ZCOUNT room now +inf`. A signed-in viewer is their user id; an anonymous one is their connection.
//!
//! Redis writes go through one worker task per instance, in order, so a quick join-then-leave can
//! never arrive as leave-then-join.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::error::{AppError, AppResult};

const REFRESH: Duration = Duration::from_secs(10);
const TTL: Duration = Duration::from_secs(30);
/// A count is a read for a page: better an error on one field than a page waiting on a dead Redis.
const COUNT_TIMEOUT: Duration = Duration::from_millis(500);
/// Joins and leaves written in one pipeline at most.
const WRITE_BATCH: usize = 1000;
/// A hung Redis must not stall the worker: the next refresh repairs a write that timed out.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

type Rooms = HashMap<i64, HashMap<String, usize>>;

enum Command {
    Join(i64, String),
    Leave(i64, String),
}

/// How long a count read from Redis is reused on this instance: ten thousand viewers of one room
/// asking for its count (`liveStreamUpdated` ticks, room pages) cost one Redis read a second.
const COUNT_REUSE: Duration = Duration::from_secs(1);

struct Inner {
    /// A std mutex: no await while held.
    local: Mutex<Rooms>,
    /// Counts read from Redis lately: room -> (when, count).
    counted: Mutex<HashMap<i64, (std::time::Instant, i64)>>,
    redis: Option<(redis::aio::ConnectionManager, String, mpsc::UnboundedSender<Command>)>,
}

#[derive(Clone)]
pub struct Presence {
    inner: Arc<Inner>,
}

/// Who a subscriber counts as in a room: a member once however many sockets they hold, a signed-out
/// visitor once per subscription.
pub fn member_for(viewer: Option<&crate::auth::Viewer>) -> String {
    match viewer {
        Some(v) => format!("u:{}", v.user_id),
        None => format!("a:{}", uuid::Uuid::new_v4().simple()),
    }
}

/// Holds one viewer in one room; dropping it leaves.
pub struct PresenceGuard {
    presence: Presence,
    room: i64,
    member: String,
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        self.presence.leave(self.room, &self.member);
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Presence {
    pub fn in_process() -> Presence {
        Presence {
            inner: Arc::new(Inner { local: Mutex::new(HashMap::new()), counted: Mutex::default(), redis: None }),
        }
    }

    pub fn redis(conn: redis::aio::ConnectionManager, prefix: &str) -> Presence {
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            local: Mutex::new(HashMap::new()),
            counted: Mutex::default(),
            redis: Some((conn.clone(), format!("{prefix}:live:viewers:"), tx)),
        });
        tokio::spawn(worker(Arc::downgrade(&inner), conn, format!("{prefix}:live:viewers:"), rx));
        Presence { inner }
    }

    fn local(&self) -> std::sync::MutexGuard<'_, Rooms> {
        self.inner.local.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn join(&self, room: i64, member: String) -> PresenceGuard {
        let first = {
            let mut rooms = self.local();
            let count = rooms.entry(room).or_default().entry(member.clone()).or_insert(0);
            *count += 1;
            *count == 1
        };
        if first && let Some((_, _, tx)) = &self.inner.redis {
            let _ = tx.send(Command::Join(room, member.clone()));
        }
        PresenceGuard { presence: self.clone(), room, member }
    }

    fn leave(&self, room: i64, member: &str) {
        let last = {
            let mut rooms = self.local();
            let Some(members) = rooms.get_mut(&room) else { return };
            let last = match members.get_mut(member) {
                Some(count) if *count > 1 => {
                    *count -= 1;
                    false
                }
                Some(_) => {
                    members.remove(member);
                    true
                }
                None => false,
            };
            if members.is_empty() {
                rooms.remove(&room);
            }
            last
        };
        if last && let Some((_, _, tx)) = &self.inner.redis {
            let _ = tx.send(Command::Leave(room, member.to_string()));
        }
    }

    /// Viewers of several rooms, in one round trip.
    pub async fn counts(&self, rooms: &[i64]) -> AppResult<HashMap<i64, i64>> {
        match &self.inner.redis {
            None => {
                let local = self.local();
                Ok(rooms.iter().map(|r| (*r, local.get(r).map_or(0, |m| m.len() as i64))).collect())
            }
            Some((conn, prefix, _)) => {
                let fresh: Option<HashMap<i64, i64>> = {
                    let counted = self.inner.counted.lock().unwrap_or_else(|p| p.into_inner());
                    rooms
                        .iter()
                        .map(|r| counted.get(r).filter(|(at, _)| at.elapsed() < COUNT_REUSE).map(|(_, n)| (*r, *n)))
                        .collect()
                };
                if let Some(fresh) = fresh {
                    return Ok(fresh);
                }
                let now = now_ms();
                let mut pipe = redis::pipe();
                for room in rooms {
                    pipe.cmd("ZCOUNT").arg(format!("{prefix}{room}")).arg(now).arg("+inf");
                }
                let mut conn = conn.clone();
                // Redis down or slow: the count is unavailable for now (a retryable field error),
                // not an internal fault.
                let unavailable = |why: &dyn std::fmt::Display| {
                    tracing::warn!(error = %why, "viewer counts: redis unavailable");
                    AppError::Unavailable { retry_after_secs: 1 }
                };
                let counts: Vec<i64> = tokio::time::timeout(COUNT_TIMEOUT, pipe.query_async(&mut conn))
                    .await
                    .map_err(|e| unavailable(&e))?
                    .map_err(|e| unavailable(&e))?;
                let counts: HashMap<i64, i64> = rooms.iter().copied().zip(counts).collect();
                let mut counted = self.inner.counted.lock().unwrap_or_else(|p| p.into_inner());
                let at = std::time::Instant::now();
                counted.retain(|_, (when, _)| when.elapsed() < COUNT_REUSE);
                counted.extend(counts.iter().map(|(r, n)| (*r, (at, *n))));
                Ok(counts)
            }
        }
    }

    /// Viewers of the room on every instance.
    pub async fn count(&self, room: i64) -> AppResult<i64> {
        Ok(self.counts(&[room]).await?.get(&room).copied().unwrap_or(0))
    }
}

async fn worker(
    inner: std::sync::Weak<Inner>,
    mut conn: redis::aio::ConnectionManager,
    prefix: String,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut tick = tokio::time::interval(REFRESH);
    loop {
        let result = tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { return };
                // Everything queued meanwhile goes in the same round trip, in order: ten thousand
                // viewers opening a room cost a few pipelines, not ten thousand writes in a row.
                let mut pipe = redis::pipe();
                let mut next = Some(command);
                let mut batched = 0;
                while let Some(command) = next.take() {
                    match command {
                        Command::Join(room, member) => {
                            let expires = now_ms() + TTL.as_millis() as i64;
                            pipe.zadd(format!("{prefix}{room}"), member, expires)
                                .ignore()
                                .pexpire(format!("{prefix}{room}"), TTL.as_millis() as i64 * 2)
                                .ignore();
                        }
                        Command::Leave(room, member) => {
                            pipe.zrem(format!("{prefix}{room}"), member).ignore();
                        }
                    }
                    batched += 1;
                    if batched < WRITE_BATCH {
                        next = commands.try_recv().ok();
                    }
                }
                tokio::time::timeout(WRITE_TIMEOUT, pipe.query_async::<()>(&mut conn)).await
            }
            _ = tick.tick() => {
                let Some(inner) = inner.upgrade() else { return };
                let rooms: Vec<(i64, Vec<String>)> = {
                    let local = inner.local.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    local.iter().map(|(room, members)| (*room, members.keys().cloned().collect())).collect()
                };
                drop(inner);
                tokio::time::timeout(WRITE_TIMEOUT, refresh(&mut conn, &prefix, rooms)).await
            }
        };
        match result {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::warn!(%err, "live viewer presence: redis write failed; the next refresh repairs it")
            }
            Err(_) => tracing::warn!("live viewer presence: redis write timed out; the next refresh repairs it"),
        }
    }
}

/// Re-stamps this instance's viewers and sweeps entries whose instance stopped stamping them.
async fn refresh(
    conn: &mut redis::aio::ConnectionManager,
    prefix: &str,
    rooms: Vec<(i64, Vec<String>)>,
) -> redis::RedisResult<()> {
    if rooms.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let expires = now + TTL.as_millis() as i64;
    let mut pipe = redis::pipe();
    for (room, members) in rooms {
        let key = format!("{prefix}{room}");
        let scored: Vec<(i64, String)> = members.into_iter().map(|m| (expires, m)).collect();
        pipe.zadd_multiple(&key, &scored).ignore();
        pipe.cmd("ZREMRANGEBYSCORE").arg(&key).arg("-inf").arg(now).ignore();
        pipe.pexpire(&key, TTL.as_millis() as i64 * 2).ignore();
    }
    pipe.query_async::<()>(conn).await
}
