//! Web Push to members whose apps are not connected: RFC 8030 delivery, RFC 8291 payload encryption
//! (aes128gcm), RFC 8292 VAPID, through an outbox.
//!
//! - A member registers a device's subscription (`PushSubscription.toJSON()` of a browser, or an
//!   app's relay, docs/API.md) with the categories it wants. It belongs to the session that
//!   registered it: signing out (or any end of that session) ends it, by a foreign key.
//! - [`queue_message`] and [`queue_notification`] write one `push_outbox` row per subscription that
//!   wants the category, in the transaction of what they announce, due after `PUSH_DELAY_MS`.
//! - Live sockets record the newest message and notification they delivered ([`Seen`]). When a row is
//!   due, the sender drops it (`SEEN`) if a socket already delivered it or it was read meanwhile:
//!   no push for what the member already saw.
//! - The sender claims due rows with one `UPDATE … RETURNING` (so of several instances exactly one
//!   sends a row), builds the payload from what the row points at (a message deleted meanwhile is
//!   not pushed), encrypts it for the device and POSTs it with a VAPID signature, `TTL`, `Urgency`
//!   and `Topic`. 201: `SENT`. 404 or 410: the subscription is gone and is deleted (its rows with
//!   it). 429, 5xx or no connection: retried with a backoff until the TTL runs out. Other answers:
//!   `FAILED`.
//!
//! Endpoints must be HTTPS on a known push service (`PUSH_ENDPOINT_HOSTS`), so a member cannot make
//! the gateway POST to an address of its choosing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use chrono::{DateTime, Duration, SubsecRound as _, Utc};
use entity::{conversation_members, messages, notifications, push_outbox, push_subscriptions, users};
use futures_util::StreamExt as _;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use sea_orm::sea_query::{Expr, ExprTrait as _, OnConflict, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait as _, Set,
};
use web_push_native::jwt_simple::algorithms::{ECDSAP256PublicKeyLike, ES256KeyPair};
use web_push_native::{Auth, WebPushBuilder, p256};

use crate::auth::Viewer;
use crate::error::{AppError, AppResult};
use crate::graphql::ids::{self, Kind as IdKind};
use crate::services::notifications::{Category as NotificationCategory, Kind as NotificationKind};

/// What a device can ask to be pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Messages,
    Replies,
    Likes,
    Follows,
    Notices,
}

impl Category {
    pub const ALL: [Category; 5] =
        [Category::Messages, Category::Replies, Category::Likes, Category::Follows, Category::Notices];

    fn column(self) -> push_subscriptions::Column {
        match self {
            Category::Messages => push_subscriptions::Column::Messages,
            Category::Replies => push_subscriptions::Column::Replies,
            Category::Likes => push_subscriptions::Column::Likes,
            Category::Follows => push_subscriptions::Column::Follows,
            Category::Notices => push_subscriptions::Column::Notices,
        }
    }

    pub fn of(s: &push_subscriptions::Model) -> Vec<Category> {
        let on = [s.messages, s.replies, s.likes, s.follows, s.notices];
        Category::ALL.into_iter().zip(on).filter(|(_, on)| *on).map(|(c, _)| c).collect()
    }

    fn for_notification(kind: NotificationKind) -> Option<Category> {
        // Security notices go to every device whatever it asked for, as they reach the member
        // whatever they muted.
        if matches!(
            kind,
            NotificationKind::NewDeviceSignIn
                | NotificationKind::PolicyUpdated
                | NotificationKind::SecurityNotice
                | NotificationKind::IdentityReviewed
        ) {
            return None;
        }
        Some(match kind.category() {
            NotificationCategory::Replies => Category::Replies,
            NotificationCategory::Likes => Category::Likes,
            NotificationCategory::Follows => Category::Follows,
            NotificationCategory::Notices => Category::Notices,
        })
    }
}

/// The stored kinds of outbox rows and their states.
const MESSAGE: &str = "MESSAGE";
const NOTIFICATION: &str = "NOTIFICATION";
const PENDING: &str = "PENDING";
const SENDING: &str = "SENDING";
const SENT: &str = "SENT";
const SEEN: &str = "SEEN";
const FAILED: &str = "FAILED";
/// The states a row ends in (the retention job removes them after a day).
pub const DONE: [&str; 3] = [SENT, SEEN, FAILED];

/// Pushes in flight at once from one instance.
const CONCURRENCY: usize = 16;
/// Rows one poll claims: two rounds of [`CONCURRENCY`].
const BATCH: u64 = 32;
/// The longest one push may take, connection included.
const RESPONSE_TIMEOUT: StdDuration = StdDuration::from_secs(15);
/// Far longer than a batch can take (two rounds of [`RESPONSE_TIMEOUT`] and a few statements), so a
/// live sender is never overtaken.
const CLAIM_FOR: Duration = Duration::seconds(120);
/// Subscriptions per member: the oldest goes when a new device passes this.
const MAX_PER_MEMBER: u64 = 20;
/// How much of a message's text a push carries (the whole message is one tap away).
const PREVIEW_CHARS: usize = 140;
/// Push services lose interest in an endpoint URL longer than this; so do we.
const ENDPOINT_MAX: usize = 1024;

/// The sender's settings and the VAPID key.
pub struct Push {
    key: ES256KeyPair,
    /// The key's public half, base64url (the `applicationServerKey` clients subscribe with).
    public_key: String,
    subject: String,
    delay: Duration,
    ttl: Duration,
    retry_base: Duration,
    allow_http: bool,
    hosts: Vec<String>,
    http: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    pub seen: Seen,
}

impl std::fmt::Debug for Push {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Push").field("public_key", &self.public_key).field("hosts", &self.hosts).finish()
    }
}

impl Push {
    /// The VAPID key is `PUSH_VAPID_PRIVATE_KEY` when set, else derived from the sealing keys, so
    /// every instance sharing `SEAL_KEYS` signs with the same key and a bare `cargo run` has one.
    pub fn from_config(
        config: &crate::config::Config,
        sealer: &crate::seal::Sealer,
        redis: Option<(redis::aio::ConnectionManager, &str)>,
    ) -> Result<Push, String> {
        let raw = match config.push_vapid_private_key.as_deref().filter(|k| !k.is_empty()) {
            Some(k) => URL_SAFE_NO_PAD
                .decode(k.trim().trim_end_matches('='))
                .map_err(|_| "PUSH_VAPID_PRIVATE_KEY must be base64url of 32 bytes".to_string())?,
            None => sealer.derive("ecer web push vapid v1").to_vec(),
        };
        let key = ES256KeyPair::from_bytes(&raw).map_err(|e| format!("PUSH_VAPID_PRIVATE_KEY: {e}"))?;
        let public_key = URL_SAFE_NO_PAD.encode(key.public_key().public_key().to_bytes_uncompressed());
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| format!("push HTTPS client: {e}"))?;
        let mut plain = HttpConnector::new();
        plain.enforce_http(false);
        plain.set_connect_timeout(Some(StdDuration::from_secs(10)));
        let allow_http = config.push_allow_http;
        let https =
            if allow_http { tls.https_or_http() } else { tls.https_only() }.enable_http1().wrap_connector(plain);
        let http = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(StdDuration::from_secs(60))
            .build(https);
        let ms = |v: u64| Duration::milliseconds(i64::try_from(v).unwrap_or(i64::MAX));
        Ok(Push {
            key,
            public_key,
            subject: config.push_subject.clone(),
            delay: ms(config.push_delay_ms),
            ttl: Duration::seconds(i64::from(Ord::max(config.push_ttl_secs, 1))),
            retry_base: ms(Ord::max(config.push_retry_base_ms, 1)),
            allow_http,
            hosts: config
                .push_endpoint_hosts
                .iter()
                .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            http,
            seen: Seen::new(redis),
        })
    }

    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// An endpoint the gateway will POST to: HTTPS (or HTTP where allowed, for tests) on a host that
    /// is, or is under, one of `PUSH_ENDPOINT_HOSTS`.
    fn check_endpoint(&self, endpoint: &str) -> AppResult<url::Url> {
        let bad = |why: &str| AppError::bad_input("input.endpoint", why);
        if endpoint.len() > ENDPOINT_MAX {
            return Err(bad("is longer than 1024 characters"));
        }
        let url = url::Url::parse(endpoint).map_err(|_| bad("is not a URL"))?;
        match url.scheme() {
            // The standard port only: no push service listens elsewhere, and an odd port would only
            // make the sender wait on connections that never come.
            "https" if url.port().is_none() => {}
            "http" if self.allow_http => {}
            _ => return Err(bad("must be an https URL on the standard port")),
        }
        if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
            return Err(bad("must not carry credentials or a fragment"));
        }
        let host = url.host_str().ok_or_else(|| bad("has no host"))?.to_ascii_lowercase();
        if !known_host(&host, &self.hosts) {
            return Err(bad("is not on a known push service (PUSH_ENDPOINT_HOSTS)"));
        }
        Ok(url)
    }
}

/// A new VAPID key pair, base64url: (private, public).
pub fn generate_key() -> Result<(String, String), String> {
    let key = ES256KeyPair::generate();
    let public = URL_SAFE_NO_PAD.encode(key.public_key().public_key().to_bytes_uncompressed());
    Ok((URL_SAFE_NO_PAD.encode(key.to_bytes()), public))
}

/// `host` is one of `hosts`, or a name under one (`wns2-par02p.notify.windows.com`), never merely
/// ending with the same letters (`evilfcm.googleapis.com`).
fn known_host(host: &str, hosts: &[String]) -> bool {
    !host.ends_with('.')
        && hosts
            .iter()
            .filter(|h| !h.is_empty())
            .any(|h| host == h || host.strip_suffix(h.as_str()).is_some_and(|p| p.len() > 1 && p.ends_with('.')))
}

/// A device's subscription as a browser's `PushSubscription.toJSON()` gives it.
pub struct NewSubscription<'a> {
    pub endpoint: &'a str,
    pub p256dh: &'a str,
    pub auth: &'a str,
    pub categories: &'a [Category],
}

fn decode_key(value: &str, field: &str, len: usize) -> AppResult<Vec<u8>> {
    let bytes = URL_SAFE_NO_PAD
        .decode(value.trim().trim_end_matches('='))
        .map_err(|_| AppError::bad_input(field, "is not base64url"))?;
    if bytes.len() != len {
        return Err(AppError::bad_input(field, format!("must be {len} bytes")));
    }
    Ok(bytes)
}

/// Registers (or moves to this member and session, with new keys and categories) a device's
/// subscription. An endpoint is one device: registered again by another member, it is theirs now.
pub async fn register(
    db: &DatabaseConnection,
    push: &Push,
    viewer: &Viewer,
    new: NewSubscription<'_>,
) -> AppResult<push_subscriptions::Model> {
    let url = push.check_endpoint(new.endpoint.trim())?;
    let p256dh = decode_key(new.p256dh, "input.keys.p256dh", 65)?;
    p256::PublicKey::from_sec1_bytes(&p256dh)
        .map_err(|_| AppError::bad_input("input.keys.p256dh", "is not a P-256 public key"))?;
    decode_key(new.auth, "input.keys.auth", 16)?;
    let on = |c: Category| new.categories.contains(&c);
    let row = push_subscriptions::ActiveModel {
        user_id: Set(viewer.user_id),
        session_id: Set(viewer.session_id),
        endpoint: Set(url.to_string()),
        p256dh: Set(URL_SAFE_NO_PAD.encode(&p256dh)),
        auth: Set(new.auth.trim().trim_end_matches('=').to_string()),
        vapid_key: Set(push.public_key.clone()),
        messages: Set(on(Category::Messages)),
        replies: Set(on(Category::Replies)),
        likes: Set(on(Category::Likes)),
        follows: Set(on(Category::Follows)),
        notices: Set(on(Category::Notices)),
        created_at: Set(Utc::now()),
        delivered_at: Set(None),
        ..Default::default()
    };
    use push_subscriptions::Column as C;
    let saved = push_subscriptions::Entity::insert(row)
        .on_conflict(
            OnConflict::column(C::Endpoint)
                .update_columns([
                    C::UserId,
                    C::SessionId,
                    C::P256dh,
                    C::Auth,
                    C::VapidKey,
                    // A new registration: nothing of a previous holder's use of the device shows.
                    C::CreatedAt,
                    C::DeliveredAt,
                    C::Messages,
                    C::Replies,
                    C::Likes,
                    C::Follows,
                    C::Notices,
                ])
                .to_owned(),
        )
        .exec_with_returning(db)
        .await?;
    // A member with more devices than anyone has: the oldest registrations go.
    let keep: Vec<i64> = push_subscriptions::Entity::find()
        .select_only()
        .column(C::Id)
        .filter(C::UserId.eq(viewer.user_id))
        .order_by_desc(C::Id)
        .limit(MAX_PER_MEMBER)
        .into_tuple()
        .all(db)
        .await?;
    if keep.len() as u64 == MAX_PER_MEMBER {
        push_subscriptions::Entity::delete_many()
            .filter(C::UserId.eq(viewer.user_id))
            .filter(C::Id.is_not_in(keep))
            .exec(db)
            .await?;
    }
    Ok(saved)
}

/// Removes the viewer's subscription of `endpoint`; false when the viewer has none there.
pub async fn unregister(db: &DatabaseConnection, viewer: &Viewer, endpoint: &str) -> AppResult<bool> {
    let normalised = url::Url::parse(endpoint.trim()).map(|u| u.to_string()).unwrap_or_else(|_| endpoint.to_string());
    let gone = push_subscriptions::Entity::delete_many()
        .filter(push_subscriptions::Column::UserId.eq(viewer.user_id))
        .filter(push_subscriptions::Column::Endpoint.eq(normalised))
        .exec(db)
        .await?;
    Ok(gone.rows_affected > 0)
}

/// A member's subscriptions, newest first.
pub async fn of_member(db: &impl ConnectionTrait, user_id: i64) -> AppResult<Vec<push_subscriptions::Model>> {
    Ok(push_subscriptions::Entity::find()
        .filter(push_subscriptions::Column::UserId.eq(user_id))
        .order_by_desc(push_subscriptions::Column::Id)
        .all(db)
        .await?)
}

/// Erasure: the member's subscriptions and what was waiting for them.
pub async fn erase_member(db: &impl ConnectionTrait, user_id: i64) -> AppResult<()> {
    push_outbox::Entity::delete_many().filter(push_outbox::Column::UserId.eq(user_id)).exec(db).await?;
    push_subscriptions::Entity::delete_many().filter(push_subscriptions::Column::UserId.eq(user_id)).exec(db).await?;
    Ok(())
}

/// A subquery: whether `user` has a device that wants `category` (for reads that decide whether to
/// queue at all, folded into a read they make anyway).
pub fn wants(user: i64, category: Category) -> sea_orm::sea_query::SelectStatement {
    push_subscriptions::Entity::find()
        .select_only()
        .expr(Expr::val(1))
        .filter(push_subscriptions::Column::UserId.eq(user))
        .filter(category.column().eq(true))
        .into_query()
}

/// Queues a push of `kind`/`ref_id` to each of `user`'s devices that wants `category` (all devices
/// for `None`): one statement, inside the caller's transaction. The sender applies the grace period
/// and the TTL from the row's creation time, so writers need no settings.
async fn queue(
    txn: &impl ConnectionTrait,
    user: i64,
    category: Option<Category>,
    kind: &str,
    ref_id: i64,
) -> AppResult<()> {
    use push_outbox::Column as O;
    use push_subscriptions::Column as S;
    let now = Utc::now();
    let mut select = Query::select();
    select
        .column(S::Id)
        .column(S::UserId)
        .expr(Expr::val(kind))
        .expr(Expr::val(ref_id))
        .expr(Expr::val(PENDING))
        .expr(Expr::val(0))
        .expr(Expr::val(now))
        .expr(Expr::val(now))
        .from(push_subscriptions::Entity)
        .and_where(S::UserId.eq(user));
    if let Some(c) = category {
        select.and_where(c.column().eq(true));
    }
    let insert = Query::insert()
        .into_table(push_outbox::Entity)
        .columns([
            O::SubscriptionId,
            O::UserId,
            O::Kind,
            O::RefId,
            O::Status,
            O::Attempts,
            O::NextAttemptAt,
            O::CreatedAt,
        ])
        .select_from(select)
        .map_err(AppError::internal)?
        .to_owned();
    txn.execute(&insert).await?;
    Ok(())
}

/// Queues the push of a private message to its recipient's devices (call when [`wants`] said so).
pub async fn queue_message(txn: &impl ConnectionTrait, recipient: i64, message_id: i64) -> AppResult<()> {
    queue(txn, recipient, Some(Category::Messages), MESSAGE, message_id).await
}

/// Queues the push of a new notification (row `id`) to the member's devices that want its category.
pub async fn queue_notification(
    txn: &impl ConnectionTrait,
    user: i64,
    kind: NotificationKind,
    id: i64,
) -> AppResult<()> {
    queue(txn, user, Category::for_notification(kind), NOTIFICATION, id).await
}

/// Which of a member's private streams a live socket delivered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Messages,
    Notifications,
}

impl Stream {
    fn tag(self) -> &'static str {
        match self {
            Stream::Messages => "m",
            Stream::Notifications => "n",
        }
    }
}

/// How long what a socket delivered is remembered: longer than any push waits.
const SEEN_FOR: StdDuration = StdDuration::from_secs(24 * 3600);
/// Keeps the larger of the stored and the new cursor.
const SEEN_SCRIPT: &str = "local c = tonumber(redis.call('GET', KEYS[1]) or '0') \
    if tonumber(ARGV[1]) > c then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end return 1";

/// The newest message and notification each member's live sockets delivered: in this process, or in
/// Redis for every instance (a socket on one instance, the sender on another).
#[derive(Clone)]
pub struct Seen {
    local: moka::sync::Cache<(i64, Stream), i64>,
    redis: Option<(redis::aio::ConnectionManager, Arc<str>, Arc<redis::Script>)>,
}

impl Seen {
    fn new(redis: Option<(redis::aio::ConnectionManager, &str)>) -> Seen {
        Seen {
            local: moka::sync::Cache::builder().max_capacity(1_000_000).time_to_live(SEEN_FOR).build(),
            redis: redis.map(|(conn, prefix)| {
                (conn, Arc::from(format!("{prefix}:push:seen:")), Arc::new(redis::Script::new(SEEN_SCRIPT)))
            }),
        }
    }

    fn key(prefix: &str, user: i64, stream: Stream) -> String {
        format!("{prefix}{}:{user}", stream.tag())
    }

    /// A live socket delivered `stream` up to `cursor` to `user`. Never waits: the socket goes on.
    pub fn delivered(&self, user: i64, stream: Stream, cursor: i64) {
        self.local.entry((user, stream)).and_compute_with(|e| match e {
            Some(e) if *e.value() >= cursor => moka::ops::compute::Op::Nop,
            _ => moka::ops::compute::Op::Put(cursor),
        });
        if let Some((conn, prefix, script)) = &self.redis {
            let (mut conn, script, key) = (conn.clone(), script.clone(), Self::key(prefix, user, stream));
            tokio::spawn(async move {
                let mut call = script.key(key);
                call.arg(cursor).arg(SEEN_FOR.as_secs());
                let done = tokio::time::timeout(StdDuration::from_secs(2), call.invoke_async::<i64>(&mut conn)).await;
                if let Err(e) = done.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
                    // The push then goes out although a socket showed it: one notification too many.
                    tracing::debug!(error = %e, "push: could not record a live delivery");
                }
            });
        }
    }

    /// The newest cursors delivered for each of `keys` (0 when none).
    async fn get(&self, keys: &[(i64, Stream)]) -> HashMap<(i64, Stream), i64> {
        let mut out: HashMap<(i64, Stream), i64> = keys.iter().map(|k| (*k, self.local.get(k).unwrap_or(0))).collect();
        if let Some((conn, prefix, _)) = &self.redis
            && !keys.is_empty()
        {
            let names: Vec<String> = keys.iter().map(|(u, s)| Self::key(prefix, *u, *s)).collect();
            let mut conn = conn.clone();
            let read = tokio::time::timeout(
                StdDuration::from_secs(2),
                redis::cmd("MGET").arg(&names).query_async::<Vec<Option<i64>>>(&mut conn),
            )
            .await;
            match read {
                Ok(Ok(values)) => {
                    for (k, v) in keys.iter().zip(values) {
                        if let Some(v) = v {
                            out.entry(*k).and_modify(|c| *c = Ord::max(*c, v));
                        }
                    }
                }
                _ => tracing::debug!("push: live deliveries unreadable; pushing what this instance did not see"),
            }
        }
        out
    }
}

/// A member, one of their private streams, and the newest cursor delivered from it.
pub type Delivered = (i64, Stream, i64);

/// What one WebSocket delivered from its member's private streams and the client has not yet
/// answered for. The socket pings after a delivery; only the pong (the app is running and reading,
/// not a phone asleep whose connection has not timed out yet) records it in [`Seen`]. Holds the
/// newest cursor per stream: at most two entries, however many events a dead socket is handed.
#[derive(Debug, Default)]
pub struct SocketDeliveries {
    pending: std::sync::Mutex<Vec<Delivered>>,
    due: tokio::sync::Notify,
}

impl SocketDeliveries {
    /// The socket's stream read `stream` up to `cursor` for `user` (its frames follow).
    pub fn delivered(&self, user: i64, stream: Stream, cursor: i64) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        match pending.iter_mut().find(|(u, s, _)| *u == user && *s == stream) {
            Some(entry) => entry.2 = Ord::max(entry.2, cursor),
            None => pending.push((user, stream, cursor)),
        }
    }

    /// A frame went into the socket's queue: if it carried deliveries, the ping that confirms them
    /// goes behind it, so its answer proves the client read past them.
    pub fn queued(&self) {
        if !self.pending.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
            self.due.notify_one();
        }
    }

    /// Resolves when frames with deliveries were queued since the last [`SocketDeliveries::take`].
    pub async fn due(&self) {
        self.due.notified().await;
    }

    /// What was delivered and not yet answered for, emptied.
    pub fn take(&self) -> Vec<Delivered> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Due: a first try once the grace period after its creation passed, a retry at its time, or a
/// claim that lapsed (a sender died).
fn claimable(now: DateTime<Utc>, delay: Duration) -> Condition {
    use push_outbox::Column as O;
    Condition::any()
        .add(O::Status.eq(PENDING).and(O::Attempts.eq(0)).and(O::NextAttemptAt.lte(now - delay)))
        .add(O::Status.eq(PENDING).and(O::Attempts.gt(0)).and(O::NextAttemptAt.lte(now)))
        .add(O::Status.eq(SENDING).and(O::ClaimedUntil.lt(now)))
}

/// What one due row turned into.
enum Verdict {
    /// Send this payload.
    Send(Vec<u8>, &'static str, Option<String>),
    /// Not sent, and why (shown on a socket, read, deleted).
    Drop(&'static str),
}

/// Sends what is due (claimed by this instance); returns how many the push services accepted.
/// A poll with nothing due reads and writes nothing else. Each group of finished pushes is recorded
/// as it finishes, so a batch never outlives its claim; a sender that dies mid-batch leaves its rows
/// to be claimed again once the claim lapses (at least once, never twice while a claim holds).
pub async fn send_due(db: &DatabaseConnection, push: &Push, now: DateTime<Utc>) -> AppResult<usize> {
    use push_outbox::Column as O;
    let due: Vec<i64> = push_outbox::Entity::find()
        .select_only()
        .column(O::Id)
        .filter(claimable(now, push.delay))
        .order_by_asc(O::NextAttemptAt)
        .limit(BATCH)
        .into_tuple()
        .all(db)
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    // The claim's end is also its token: what this sender records is only what it still holds.
    let claim = (now + CLAIM_FOR).trunc_subsecs(3);
    let claimed: Vec<push_outbox::Model> = push_outbox::Entity::update_many()
        .col_expr(O::Status, Expr::value(SENDING))
        .col_expr(O::ClaimedUntil, Expr::value(Some(claim)))
        .col_expr(O::Attempts, Expr::col(O::Attempts).add(1))
        .filter(O::Id.is_in(due))
        .filter(claimable(now, push.delay))
        .exec_with_returning(db)
        .await?;
    if claimed.is_empty() {
        return Ok(0);
    }
    let verdicts = judge(db, push, &claimed).await?;
    // Only subscriptions whose session is still live: a session that expired ends its pushes even
    // before the retention job deletes it.
    let live_sessions = entity::sessions::Entity::find()
        .select_only()
        .column(entity::sessions::Column::Id)
        .filter(entity::sessions::Column::ExpiresAt.gt(now))
        .into_query();
    let subscriptions: HashMap<i64, push_subscriptions::Model> = push_subscriptions::Entity::find()
        .filter(push_subscriptions::Column::Id.is_in(claimed.iter().map(|r| r.subscription_id)))
        .filter(push_subscriptions::Column::SessionId.in_subquery(live_sessions))
        .all(db)
        .await?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    let mut finished = futures_util::stream::iter(claimed.into_iter().map(|row| {
        let verdict = verdicts.get(&(row.kind.clone(), row.ref_id, row.user_id));
        let subscription = subscriptions.get(&row.subscription_id);
        let expires_at = row.created_at + push.ttl;
        async move {
            let outcome = match (verdict, subscription) {
                (_, None) => Outcome::Dropped("the subscription or its session is gone"),
                // Registered since by another member (a shared browser): what was queued for the
                // previous one never reaches the new one's device.
                (_, Some(s)) if s.user_id != row.user_id => Outcome::Dropped("the device changed hands"),
                // Registered under another VAPID key (the key changed since): the push service would
                // refuse it, every time.
                (_, Some(s)) if s.vapid_key != push.public_key => Outcome::Gone(0),
                (None, _) => Outcome::Dropped("nothing to push"),
                (Some(_), _) if expires_at <= now => Outcome::Failed("EXPIRED: its TTL ran out".into()),
                (Some(Verdict::Drop(why)), _) => Outcome::Dropped(why),
                (Some(Verdict::Send(payload, urgency, topic)), Some(s)) => {
                    let parcel = Parcel { payload, urgency, topic: topic.as_deref(), expires_at };
                    deliver(push, s, parcel, now).await
                }
            };
            (row, outcome)
        }
    }))
    .buffer_unordered(CONCURRENCY)
    .ready_chunks(CONCURRENCY);
    let mut sent = 0;
    while let Some(group) = finished.next().await {
        sent += group.iter().filter(|(_, o)| matches!(o, Outcome::Sent)).count();
        if let Err(err) = settle(db, push, claim, group, Utc::now()).await {
            // The claim lapses and the rows are tried again: a push may then go out twice.
            tracing::warn!(?err, "push outbox: could not record outcomes");
        }
    }
    Ok(sent)
}

/// Reads what the claimed rows point at, in a few batched statements, and decides for each event
/// (kind, id, member) whether it is still news, and its payload.
async fn judge(
    db: &DatabaseConnection,
    push: &Push,
    rows: &[push_outbox::Model],
) -> AppResult<HashMap<(String, i64, i64), Verdict>> {
    let mut out = HashMap::new();
    let message_ids: Vec<i64> = rows.iter().filter(|r| r.kind == MESSAGE).map(|r| r.ref_id).collect();
    let notification_ids: Vec<i64> = rows.iter().filter(|r| r.kind == NOTIFICATION).map(|r| r.ref_id).collect();
    let mut keys: Vec<(i64, Stream)> = Vec::new();
    for r in rows {
        keys.push((r.user_id, if r.kind == MESSAGE { Stream::Messages } else { Stream::Notifications }));
    }
    let seen = push.seen.get(&keys).await;
    let msgs: Vec<messages::Model> = if message_ids.is_empty() {
        Vec::new()
    } else {
        messages::Entity::find().filter(messages::Column::Id.is_in(message_ids)).all(db).await?
    };
    let notes: Vec<notifications::Model> = if notification_ids.is_empty() {
        Vec::new()
    } else {
        notifications::Entity::find().filter(notifications::Column::Id.is_in(notification_ids)).all(db).await?
    };
    let conversations: Vec<i64> = msgs.iter().map(|m| m.conversation_id).collect();
    let read: HashMap<(i64, i64), i64> = if conversations.is_empty() {
        HashMap::new()
    } else {
        conversation_members::Entity::find()
            .filter(conversation_members::Column::ConversationId.is_in(conversations))
            .all(db)
            .await?
            .into_iter()
            .map(|m| ((m.conversation_id, m.user_id), m.last_read_message_id))
            .collect()
    };
    let people: Vec<i64> = msgs.iter().map(|m| m.sender_id).chain(notes.iter().filter_map(|n| n.actor_id)).collect();
    let nicknames: HashMap<i64, String> = if people.is_empty() {
        HashMap::new()
    } else {
        users::Entity::find()
            .select_only()
            .column(users::Column::Id)
            .column(users::Column::Nickname)
            .filter(users::Column::Id.is_in(people))
            .filter(users::Column::DeletedAt.is_null())
            .into_tuple::<(i64, String)>()
            .all(db)
            .await?
            .into_iter()
            .collect()
    };
    let media: HashMap<i64, i64> = if msgs.is_empty() {
        HashMap::new()
    } else {
        entity::media::Entity::find()
            .select_only()
            .column(entity::media::Column::MessageId)
            .column_as(entity::media::Column::Id.count(), "n")
            .filter(entity::media::Column::MessageId.is_in(msgs.iter().map(|m| m.id)))
            .group_by(entity::media::Column::MessageId)
            .into_tuple::<(Option<i64>, i64)>()
            .all(db)
            .await?
            .into_iter()
            .filter_map(|(m, n)| m.map(|m| (m, n)))
            .collect()
    };
    let recipients: HashMap<i64, Vec<i64>> =
        rows.iter().filter(|r| r.kind == MESSAGE).fold(HashMap::new(), |mut acc, r| {
            acc.entry(r.ref_id).or_default().push(r.user_id);
            acc
        });
    for m in &msgs {
        for &user in recipients.get(&m.id).into_iter().flatten() {
            let verdict = if seen.get(&(user, Stream::Messages)).copied().unwrap_or(0) >= m.id {
                Verdict::Drop("delivered on a live socket")
            } else if read.get(&(m.conversation_id, user)).copied().unwrap_or(0) >= m.id {
                Verdict::Drop("read before it was due")
            } else {
                let body: String = m.body.chars().take(PREVIEW_CHARS).collect();
                let payload = serde_json::json!({
                    "type": MESSAGE,
                    "messageId": ids::encode(IdKind::Message, m.id).0,
                    "conversationId": ids::encode(IdKind::Conversation, m.conversation_id).0,
                    "title": nicknames.get(&m.sender_id),
                    "body": body,
                    "truncated": m.body.chars().count() > PREVIEW_CHARS,
                    "mediaCount": media.get(&m.id).copied().unwrap_or(0),
                    "sentAt": m.created_at.to_rfc3339(),
                });
                // One conversation's pushes replace each other while the device is offline.
                let topic = format!("c{}", m.conversation_id);
                Verdict::Send(payload.to_string().into_bytes(), "high", Some(topic))
            };
            out.insert((MESSAGE.to_string(), m.id, user), verdict);
        }
    }
    for n in &notes {
        let verdict = if n.read_at.is_some() {
            Verdict::Drop("read before it was due")
        } else if seen.get(&(n.user_id, Stream::Notifications)).copied().unwrap_or(0) >= n.seq {
            Verdict::Drop("delivered on a live socket")
        } else {
            let payload = serde_json::json!({
                "type": NOTIFICATION,
                "notificationId": ids::encode(IdKind::Notification, n.id).0,
                "kind": n.kind,
                "title": n.actor_id.and_then(|a| nicknames.get(&a)),
                "actorCount": n.actor_count,
                "body": n.body.as_deref().map(|b| b.chars().take(PREVIEW_CHARS).collect::<String>()),
                "postId": n.post_id.map(|p| ids::encode(IdKind::Post, p).0),
                "createdAt": n.created_at.to_rfc3339(),
            });
            Verdict::Send(payload.to_string().into_bytes(), "normal", None)
        };
        out.insert((NOTIFICATION.to_string(), n.id, n.user_id), verdict);
    }
    Ok(out)
}

/// How one push went.
enum Outcome {
    Sent,
    /// Not sent on purpose (`SEEN`).
    Dropped(&'static str),
    /// The push service says the subscription is gone (404, 410).
    Gone(u16),
    /// Try again after this long (no answer, 429, 5xx).
    Retry(String, Option<Duration>),
    Failed(String),
}

/// One push to send: its payload and how the push service should treat it.
struct Parcel<'a> {
    payload: &'a [u8],
    urgency: &'static str,
    topic: Option<&'a str>,
    expires_at: DateTime<Utc>,
}

async fn deliver(push: &Push, s: &push_subscriptions::Model, parcel: Parcel<'_>, now: DateTime<Utc>) -> Outcome {
    let request = match build(push, s, &parcel, now) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(format!("BUILD: {e}")),
    };
    let response = match tokio::time::timeout(RESPONSE_TIMEOUT, push.http.request(request)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Outcome::Retry(format!("NETWORK: {e}"), None),
        Err(_) => return Outcome::Retry("TIMEOUT: no answer".into(), None),
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .map(|s| Duration::seconds(s.clamp(1, 3600)));
    match status {
        200..=299 => Outcome::Sent,
        404 | 410 => Outcome::Gone(status),
        429 | 500..=599 => Outcome::Retry(format!("HTTP {status}"), retry_after),
        _ => Outcome::Failed(format!("HTTP {status}")),
    }
}

/// The encrypted, signed request for one device.
fn build(
    push: &Push,
    s: &push_subscriptions::Model,
    parcel: &Parcel<'_>,
    now: DateTime<Utc>,
) -> Result<http::Request<Full<Bytes>>, String> {
    let Parcel { payload, urgency, topic, expires_at } = *parcel;
    let endpoint: http::Uri = s.endpoint.parse().map_err(|e| format!("endpoint: {e}"))?;
    let p256dh = URL_SAFE_NO_PAD.decode(&s.p256dh).map_err(|e| format!("p256dh: {e}"))?;
    let device = p256::PublicKey::from_sec1_bytes(&p256dh).map_err(|e| format!("p256dh: {e}"))?;
    let auth = URL_SAFE_NO_PAD.decode(&s.auth).map_err(|e| format!("auth: {e}"))?;
    if auth.len() != 16 {
        return Err("auth: not 16 bytes".into());
    }
    // The VAPID token lives 12 hours (RFC 8292 allows 24); the push's own TTL is set below.
    let request = WebPushBuilder::new(endpoint, device, Auth::clone_from_slice(&auth))
        .with_valid_duration(StdDuration::from_secs(12 * 3600))
        .with_vapid(&push.key, &push.subject)
        .build(payload.to_vec())
        .map_err(|e| e.to_string())?;
    let (mut parts, body) = request.into_parts();
    let ttl = Ord::max((expires_at - now).num_seconds(), 0);
    parts.headers.insert("ttl", http::HeaderValue::from(ttl));
    parts.headers.insert("urgency", http::HeaderValue::from_static(if urgency == "high" { "high" } else { "normal" }));
    if let Some(t) = topic.and_then(|t| http::HeaderValue::from_str(t).ok()) {
        parts.headers.insert("topic", t);
    }
    Ok(http::Request::from_parts(parts, Full::new(Bytes::from(body))))
}

/// Records how a group of rows went, while this sender's claim (`claim`) still holds them: one
/// statement per kind of outcome, one per row only for retries and failures (each has its own time
/// or reason).
async fn settle(
    db: &DatabaseConnection,
    push: &Push,
    claim: DateTime<Utc>,
    group: Vec<(push_outbox::Model, Outcome)>,
    now: DateTime<Utc>,
) -> AppResult<()> {
    use push_outbox::Column as O;
    let held = |ids: Vec<i64>| {
        push_outbox::Entity::update_many()
            .col_expr(O::ClaimedUntil, Expr::value(None::<DateTime<Utc>>))
            .filter(O::Id.is_in(ids))
            .filter(O::Status.eq(SENDING))
            .filter(O::ClaimedUntil.eq(claim))
    };
    let mut sent: Vec<(i64, i64)> = Vec::new();
    let mut dropped: HashMap<&'static str, Vec<i64>> = HashMap::new();
    let mut gone: Vec<i64> = Vec::new();
    let mut single: Vec<(i64, &'static str, DateTime<Utc>, String)> = Vec::new();
    for (row, outcome) in group {
        match outcome {
            Outcome::Sent => sent.push((row.id, row.subscription_id)),
            Outcome::Dropped(why) => dropped.entry(why).or_default().push(row.id),
            Outcome::Gone(status) => {
                tracing::info!(subscription = row.subscription_id, status, "push subscription gone; removed");
                gone.push(row.subscription_id);
            }
            Outcome::Retry(e, after) => {
                let next =
                    now + after.unwrap_or_else(|| crate::services::sms_outbox::backoff(push.retry_base, row.attempts));
                if next >= row.created_at + push.ttl {
                    single.push((row.id, FAILED, now, format!("EXPIRED after {e}")));
                } else {
                    tracing::warn!(id = row.id, attempts = row.attempts, error = %e, "push not accepted; retried later");
                    single.push((row.id, PENDING, next, e));
                }
            }
            Outcome::Failed(e) => {
                tracing::warn!(id = row.id, error = %e, "push given up");
                single.push((row.id, FAILED, now, e));
            }
        }
    }
    if !sent.is_empty() {
        held(sent.iter().map(|(id, _)| *id).collect())
            .col_expr(O::Status, Expr::value(SENT))
            .col_expr(O::SentAt, Expr::value(Some(now)))
            .col_expr(O::LastError, Expr::value(None::<String>))
            .exec(db)
            .await?;
        push_subscriptions::Entity::update_many()
            .col_expr(push_subscriptions::Column::DeliveredAt, Expr::value(Some(now)))
            .filter(push_subscriptions::Column::Id.is_in(sent.iter().map(|(_, s)| *s)))
            .exec(db)
            .await?;
    }
    for (why, ids) in dropped {
        held(ids)
            .col_expr(O::Status, Expr::value(SEEN))
            .col_expr(O::LastError, Expr::value(Some(why)))
            .exec(db)
            .await?;
    }
    if !gone.is_empty() {
        // Their rows, these included, go with them.
        push_subscriptions::Entity::delete_many().filter(push_subscriptions::Column::Id.is_in(gone)).exec(db).await?;
    }
    for (id, status, next, error) in single {
        let error: String = error.chars().take(255).collect();
        held(vec![id])
            .col_expr(O::Status, Expr::value(status))
            .col_expr(O::NextAttemptAt, Expr::value(next))
            .col_expr(O::LastError, Expr::value(Some(error)))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// This instance's sender: every `poll`, what is due.
pub fn spawn(db: DatabaseConnection, push: Arc<Push>, poll: StdDuration) {
    tokio::spawn(crate::db::background(async move {
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(err) = send_due(&db, &push, Utc::now()).await {
                tracing::warn!(?err, "push outbox: sending failed; retried at the next poll");
            }
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_on_a_listed_host_or_under_one() {
        let hosts: Vec<String> = ["fcm.googleapis.com", "notify.windows.com"].map(String::from).to_vec();
        assert!(known_host("fcm.googleapis.com", &hosts));
        assert!(known_host("wns2-par02p.notify.windows.com", &hosts));
        assert!(!known_host("evilfcm.googleapis.com", &hosts));
        assert!(!known_host("fcm.googleapis.com.evil.example", &hosts));
        assert!(!known_host("googleapis.com", &hosts));
        assert!(!known_host("169.254.169.254", &hosts));
        // A stray empty entry (a trailing comma) or a fully qualified name never widens the list.
        let sloppy: Vec<String> = ["fcm.googleapis.com", ""].map(String::from).to_vec();
        assert!(!known_host("internal-svc.local.", &sloppy));
        assert!(!known_host("internal-svc.local", &sloppy));
        assert!(!known_host("fcm.googleapis.com.", &hosts));
    }
}
