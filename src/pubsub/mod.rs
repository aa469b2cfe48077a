//! The broker: tells every gateway instance that something new happened on a stream.
//!
//! Events are stored first (messages, notifications, chat lines live in their tables) and published
//! second, and the broker is allowed to lose them: Redis pub/sub is fire-and-forget. A subscriber
//! therefore treats an event as a hint and reads the database from its last cursor whenever it may have
//! missed something ([`Event::Resync`] after a broker reconnect, a lagging receiver, a gap in `seq`).
//!
//! Two back ends behind one [`Broker`]:
//! - in-process (the embedded default): `publish` hands the event straight to the local [`hub::Hub`];
//! - Redis (`REDIS_URL`): `publish` is a `PUBLISH`, and one pattern subscription per instance feeds the
//!   local hub, which fans each event out to that instance's subscribers. Local subscribers hear their
//!   own instance's events through Redis too, so there is a single delivery path and no duplicates.
//!
//! [`presence`] counts live-room viewers across instances.

pub mod hub;
pub mod presence;
mod redis_listener;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

pub use hub::{Hub, Subscription};

/// User topics carry hints only (their subscribers re-read the database after a lag), and every signed-in
/// member online holds one, so their channels stay small: a heap profile of idle sockets counted
/// 1.1 KiB per member for 32 slots. More than 16 hints arriving while a receiver is busy (a replay
/// in progress) cost it one re-read, nothing more.
const USER_TOPIC_BUFFER: usize = 16;

/// How long a write waits for Redis to take an event before giving up on the announcement.
const PUBLISH_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// A stream that clients can subscribe to. Its key is what the hub and Redis channel names use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Everything addressed to one user: new messages, notifications, session revocations.
    User(i64),
    /// One live room: chat lines and the end of the stream.
    Live(i64),
    /// One post's page: its new comments and replies, edits, counters and deletion.
    Post(i64),
}

impl Topic {
    pub fn key(self) -> String {
        match self {
            Topic::User(id) => format!("u:{id}"),
            Topic::Live(id) => format!("l:{id}"),
            Topic::Post(id) => format!("p:{id}"),
        }
    }
}

/// A live chat line as it travels on the broker: complete, so that ten thousand viewers of one room
/// do not each read it back from the database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatLine {
    pub id: i64,
    pub stream_id: i64,
    pub seq: i64,
    pub user_id: i64,
    /// Empty once deleted.
    pub body: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Deleted by the room's host or a moderator.
    #[serde(default)]
    pub deleted: bool,
}

/// What is published. Ids are cursors within the topic's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Event {
    /// A message was stored in one of the user's conversations.
    Message { id: i64 },
    /// A notification of the user's was stored or moved to a new `seq`.
    Notification { seq: i64 },
    /// Some of the user's sessions were revoked: sockets re-check theirs.
    SessionsRevoked,
    /// The user's role changed (or they were suspended or erased): sockets re-read who they act for
    /// and end what the new state forbids.
    AccessChanged,
    /// A comment or reply was written on the post (`id`: the comment, a cursor of the post's stream).
    Comment { id: i64 },
    /// The post was edited, or one of its counters (likes, favourites, comments) moved.
    PostChanged,
    /// The post was deleted.
    PostDeleted,
    /// A comment on the post was deleted, or its like count moved.
    CommentChanged { id: i64 },
    /// The user read notifications or messages on some device: unread counts changed.
    UnreadChanged,
    /// A line was said in a live room.
    Chat(ChatLine),
    /// A line of a live room was deleted (the tombstone: `deleted`, no body).
    ChatDeleted(ChatLine),
    /// The live stream went LIVE.
    LiveStarted,
    /// The live stream ended: its chat subscriptions complete.
    LiveEnded,
    /// Never published: the hub sends it to every local subscriber when events may have been lost
    /// (the Redis subscription reconnected), so each re-reads the database from its cursor.
    Resync,
}

/// An event as it travels through Redis, stamped so each instance can measure broker lag.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    /// Publish time, milliseconds since the epoch.
    at: i64,
    e: Event,
}

/// Events a service gathered inside a transaction, to publish once it has committed.
#[derive(Debug, Default)]
#[must_use = "events are only delivered by Broker::publish_all after the commit"]
pub struct Outbox(pub Vec<(Topic, Event)>);

impl Outbox {
    pub fn push(&mut self, topic: Topic, event: Event) {
        self.0.push((topic, event));
    }
}

async fn publish_once(publisher: &redis::aio::ConnectionManager, channel: &str, payload: &str) -> bool {
    let mut conn = publisher.clone();
    let mut cmd = redis::cmd("PUBLISH");
    cmd.arg(channel).arg(payload);
    match tokio::time::timeout(PUBLISH_TIMEOUT, cmd.query_async::<i64>(&mut conn)).await {
        Ok(Ok(_)) => true,
        Ok(Err(err)) => {
            tracing::warn!(%err, "redis publish failed; retrying in the background");
            false
        }
        Err(_) => {
            tracing::warn!("redis publish timed out; retrying in the background");
            false
        }
    }
}

/// Retries an announcement for about a minute. Past that, subscribers still recover the event at their
/// next resync (every instance resyncs when its Redis subscription comes back).
async fn retry_publish(publisher: redis::aio::ConnectionManager, channel: String, payload: String) {
    let mut wait = std::time::Duration::from_millis(200);
    for _ in 0..12 {
        tokio::time::sleep(wait).await;
        if publish_once(&publisher, &channel, &payload).await {
            return;
        }
        wait = (wait * 2).min(std::time::Duration::from_secs(10));
    }
}

enum Backend {
    Local,
    Redis { publisher: redis::aio::ConnectionManager },
}

struct Inner {
    hub: Arc<Hub>,
    /// Channel size of live-room topics; user topics use [`USER_TOPIC_BUFFER`].
    buffer: usize,
    backend: Backend,
    /// Redis channel prefix, so that deployments (and parallel tests) can share one Redis.
    prefix: String,
    /// Whether the Redis subscription is up; always true in-process.
    subscribed: Arc<AtomicBool>,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

impl Broker {
    /// The embedded broker: one process, no Redis.
    pub fn in_process(buffer: usize) -> Broker {
        Broker {
            inner: Arc::new(Inner {
                hub: Hub::new(),
                buffer,
                backend: Backend::Local,
                prefix: String::new(),
                subscribed: Arc::new(AtomicBool::new(true)),
            }),
        }
    }

    /// The shared broker: publishes through `publisher` and starts this instance's one pattern
    /// subscription, returning once it is listening (so events published after start-up arrive).
    pub async fn redis(
        client: redis::Client,
        publisher: redis::aio::ConnectionManager,
        prefix: &str,
        buffer: usize,
    ) -> Result<Broker, redis::RedisError> {
        let hub = Hub::new();
        let subscribed = Arc::new(AtomicBool::new(false));
        redis_listener::start(
            client,
            publisher.clone(),
            Arc::downgrade(&hub),
            format!("{prefix}:ev:"),
            subscribed.clone(),
        )
        .await?;
        Ok(Broker {
            inner: Arc::new(Inner {
                hub,
                buffer,
                backend: Backend::Redis { publisher },
                prefix: prefix.to_string(),
                subscribed,
            }),
        })
    }

    /// Subscribes to a topic on this instance. Subscribe before reading the database: see
    /// `services::replay`.
    pub fn subscribe(&self, topic: Topic) -> Subscription {
        let buffer = match topic {
            Topic::User(_) => USER_TOPIC_BUFFER,
            Topic::Live(_) | Topic::Post(_) => self.inner.buffer,
        };
        self.inner.hub.subscribe(topic.key(), buffer)
    }

    /// Publishes one event. Failure is logged, not returned: the event is already stored, and
    /// subscribers recover it from the database when the broker is back.
    pub async fn publish(&self, topic: Topic, event: Event) {
        match &self.inner.backend {
            Backend::Local => {
                crate::metrics::METRICS.broker_events.inc();
                self.inner.hub.dispatch(&topic.key(), Arc::new(event))
            }
            Backend::Redis { publisher } => {
                let envelope = Envelope { at: chrono::Utc::now().timestamp_millis(), e: event };
                let payload = match serde_json::to_string(&envelope) {
                    Ok(p) => p,
                    Err(err) => {
                        tracing::error!(%err, "could not encode a broker event");
                        return;
                    }
                };
                let channel = format!("{}:ev:{}", self.inner.prefix, topic.key());
                // While Redis is down the connection manager keeps retrying; a write must not wait
                // for it, since the event is stored. The announcement is retried in the background
                // (a subscriber whose Redis link never dropped would otherwise not hear of it until
                // the next event on its stream).
                if !publish_once(publisher, &channel, &payload).await {
                    tokio::spawn(retry_publish(publisher.clone(), channel, payload));
                }
            }
        }
    }

    pub async fn publish_all(&self, outbox: Outbox) {
        for (topic, event) in outbox.0 {
            self.publish(topic, event).await;
        }
    }

    /// For `/readyz`: the in-process broker is always ready; the Redis one while subscribed.
    pub fn is_ready(&self) -> bool {
        self.inner.subscribed.load(Ordering::Relaxed)
    }

    /// Local subscriber count, for metrics and tests.
    pub fn local_topics(&self) -> usize {
        self.inner.hub.topic_count()
    }
}
