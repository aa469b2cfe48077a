//! Subscriptions. Each takes an optional `after` cursor (the `cursor` of the last event the client
//! saw): the server first replays what was missed, then continues live, with no gap and no duplicate.
//! Without `after`, a subscription starts from now.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Context, ID, Subscription as SubscriptionObject};
use futures_util::{Stream, StreamExt as _};

use crate::error::{AppError, AppResult};
use crate::graphql::ids::{self, Kind};
use crate::graphql::types::{Comment, LiveChatEvent, LiveStream, Message, Notification, Post, count};
use crate::graphql::{loaders, require_viewer, state, viewer};
use crate::pubsub::hub::Received;
use crate::pubsub::{Event, Subscription as BrokerSubscription, Topic};
use crate::services::page::Cursor;
use crate::services::push::Stream as PrivateStream;
use crate::services::replay::{self, BATCH};
use crate::services::{comments, live, messaging, notifications, posts};

#[derive(Default)]
pub struct Subscription;

/// How long `unreadCountsChanged` lets a burst of changes settle before it counts.
const UNREAD_SETTLE: std::time::Duration = std::time::Duration::from_millis(100);

/// How often `liveStreamUpdated` looks at the viewer count.
const VIEWER_COUNT_TICK: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a post page's changes gather before they go out as one event each: counters pushed by
/// `postUpdated` and `commentUpdated` lag by at most this, and a burst of likes costs one reload.
const POST_PAGE_TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// What happened to the object an event carries; events may grow kinds.
#[derive(async_graphql::Enum, Copy, Clone, Eq, PartialEq)]
pub enum EventKind {
    Created,
    Updated,
    Deleted,
}

/// A live room changed: `node` is the room as it is now (select `status`, `viewerCount`).
#[derive(async_graphql::SimpleObject)]
pub struct LiveStreamEvent {
    kind: EventKind,
    node: LiveStream,
}

/// A comment or reply on a post page.
#[derive(async_graphql::SimpleObject)]
pub struct CommentEvent {
    kind: EventKind,
    node: Comment,
    /// Pass as `after` to resume right after this comment.
    cursor: String,
}

/// A post changed: `node` is the post as it is now (`UPDATED`), or was deleted (`DELETED`).
#[derive(async_graphql::SimpleObject)]
pub struct PostEvent {
    kind: EventKind,
    node: Post,
}

/// A member's unread counts.
#[derive(async_graphql::SimpleObject)]
pub struct UnreadCounts {
    /// Unread notifications (`unreadNotificationCount`).
    notifications: i32,
    /// Unread messages from others, all conversations (`unreadMessageCount`).
    messages: i32,
}

fn cursor(after: Option<&str>, field: &str) -> AppResult<Option<i64>> {
    after
        .map(|c| match Cursor::decode(c) {
            Some(Cursor::Id(id)) => Ok(id),
            _ => Err(AppError::bad_input(field, "is not a valid cursor")),
        })
        .transpose()
}

/// What a stream heard while it waited: the events it cares about, and whether it may have missed
/// some (a lagging receiver, or a broker reconnect).
struct Heard {
    events: Vec<Arc<Event>>,
    missed: bool,
}

/// Waits for the first event `relevant` accepts (or a sign of missed events), then keeps listening
/// for `window`, so a burst becomes one batch.
async fn gather(sub: &mut BrokerSubscription, relevant: impl Fn(&Event) -> bool, window: Duration) -> Heard {
    let mut heard = Heard { events: Vec::new(), missed: false };
    let note = |received: Received, heard: &mut Heard| match received {
        Received::Lagged(_) => heard.missed = true,
        Received::Event(e) if matches!(*e, Event::Resync) => heard.missed = true,
        Received::Event(e) if relevant(&e) => heard.events.push(e),
        Received::Event(_) => {}
    };
    while heard.events.is_empty() && !heard.missed {
        let received = sub.recv().await;
        note(received, &mut heard);
    }
    let until = tokio::time::Instant::now() + window;
    while let Ok(received) = tokio::time::timeout_at(until, sub.recv()).await {
        note(received, &mut heard);
    }
    heard
}

/// Each event is resolved with fresh loader caches: a subscription lives for hours, and what it
/// shows (a sender's nickname, say) must be as current as a query would be.
fn fresh<T>(ctx: &Context<'_>, stream: impl Stream<Item = T> + Send + 'static) -> AppResult<impl Stream<Item = T>> {
    let loaders = loaders(ctx)?.clone();
    Ok(stream.map(move |item| {
        loaders.clear();
        item
    }))
}

/// What a hint on the member's topic announces for `messageReceived`.
fn message_cursor(e: &Event) -> Option<i64> {
    match e {
        Event::Message { id } => Some(*id),
        _ => None,
    }
}

/// What a hint on the member's topic announces for `notificationReceived`.
fn notification_cursor(e: &Event) -> Option<i64> {
    match e {
        Event::Notification { seq } => Some(*seq),
        _ => None,
    }
}

/// The private streams a transport may run once per hint on the member's topic instead of holding
/// their execution open ([`replay::Rerun`]), with what a hint announces for each.
pub(crate) fn rerunnable(root_field: &str) -> Option<fn(&Event) -> Option<i64>> {
    match root_field {
        "messageReceived" => Some(message_cursor),
        "notificationReceived" => Some(notification_cursor),
        _ => None,
    }
}

/// Where a private stream starts and how it goes on. Held open: it subscribes to the member's topic
/// first, then reads the head (`head` is not polled before), so nothing committed in between is
/// missed. Re-run by the transport, which holds the topic: from where the last run got to.
async fn private_start(
    ctx: &Context<'_>,
    user_id: i64,
    after: Option<i64>,
    head: impl Future<Output = AppResult<i64>>,
) -> AppResult<(replay::Listen, i64)> {
    // A cursor past the head (another stream's, or made up) would silently skip what comes next.
    let start = |head: i64| after.map_or(head, |c| c.min(head));
    let Some(rerun) = ctx.data_opt::<Arc<replay::Rerun>>() else {
        let sub = state(ctx)?.broker.subscribe(Topic::User(user_id));
        return Ok((replay::Listen::Topic(sub), start(head.await?)));
    };
    let start = match rerun.from {
        Some(from) => from,
        None => start(head.await?),
    };
    rerun.reached.store(start, std::sync::atomic::Ordering::Relaxed);
    Ok((replay::Listen::Once(rerun.clone()), start))
}

/// Where a private stream's deliveries are recorded, so that no push repeats what was shown: the
/// socket's record (confirmed by the client's pong), or straight into [`Seen`] elsewhere.
#[derive(Clone)]
enum DeliveryRecord {
    Socket(Arc<crate::services::push::SocketDeliveries>),
    Direct(Arc<crate::services::push::Push>),
}

impl DeliveryRecord {
    fn record(&self, user: i64, stream: PrivateStream, cursor: i64) {
        match self {
            DeliveryRecord::Socket(s) => s.delivered(user, stream, cursor),
            DeliveryRecord::Direct(p) => p.seen.delivered(user, stream, cursor),
        }
    }
}

fn delivery_record(ctx: &Context<'_>) -> AppResult<DeliveryRecord> {
    Ok(match crate::graphql::request_info(ctx).and_then(|i| i.socket.clone()) {
        Some(socket) => DeliveryRecord::Socket(socket),
        None => DeliveryRecord::Direct(state(ctx)?.push.clone()),
    })
}

#[SubscriptionObject]
impl Subscription {
    /// New messages in any of the viewer's conversations, sent by anyone (the viewer's own messages
    /// from other devices included).
    async fn message_received(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Message>>> {
        let viewer = require_viewer(ctx)?;
        let after = cursor(after.as_deref(), "after")?;
        let db = state(ctx)?.db.clone();
        let seen = delivery_record(ctx)?;
        let (listen, start) = private_start(ctx, viewer.user_id, after, messaging::head(&db, viewer.user_id)).await?;
        let stream = replay::user_stream(listen, start, message_cursor, move |last| {
            let (db, seen) = (db.clone(), seen.clone());
            async move {
                let rows = messaging::after(&db, viewer.user_id, last, BATCH).await?;
                if let Some(newest) = rows.last() {
                    seen.record(viewer.user_id, PrivateStream::Messages, newest.id);
                }
                Ok(rows.into_iter().map(|m| (m.id, Message(m))).collect())
            }
        });
        Ok(fresh(ctx, stream.map(|r| r.map_err(Into::into)))?)
    }

    /// The viewer's new notifications, and coalesced ones as they grow.
    async fn notification_received(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Notification>>> {
        let viewer = require_viewer(ctx)?;
        let after = cursor(after.as_deref(), "after")?;
        let db = state(ctx)?.db.clone();
        let seen = delivery_record(ctx)?;
        let head = notifications::head(&db, viewer.user_id);
        let (listen, start) = private_start(ctx, viewer.user_id, after, head).await?;
        let stream = replay::user_stream(listen, start, notification_cursor, move |last| {
            let (db, seen) = (db.clone(), seen.clone());
            async move {
                let rows = notifications::after(&db, viewer.user_id, last, BATCH).await?;
                if let Some(newest) = rows.iter().map(|n| n.seq).max() {
                    seen.record(viewer.user_id, PrivateStream::Notifications, newest);
                }
                Ok(rows.into_iter().map(|n| (n.seq, Notification(n))).collect())
            }
        });
        Ok(fresh(ctx, stream.map(|r| r.map_err(Into::into)))?)
    }

    /// The viewer's unread counts: now, then whenever they change (a new message or notification, or
    /// something read on any device). Changes close together come as one event.
    async fn unread_counts_changed(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<UnreadCounts>>> {
        let viewer = require_viewer(ctx)?;
        let st = state(ctx)?;
        let db = st.db.clone();
        let mut sub = st.broker.subscribe(Topic::User(viewer.user_id));
        Ok(async_stream::try_stream! {
            let mut last = None;
            loop {
                let notifications = count(notifications::unread_count(&db, &viewer).await? as i64);
                let messages = count(messaging::unread_total(&db, viewer.user_id).await?);
                // The viewer's own message from another device changes nothing: said once.
                if last != Some((notifications, messages)) {
                    last = Some((notifications, messages));
                    yield UnreadCounts { notifications, messages };
                }
                // Wait for a change, then let a burst settle (one event for a page of reads).
                let changes = |e: &Event| {
                    matches!(e, Event::Message { .. } | Event::Notification { .. } | Event::UnreadChanged)
                };
                gather(&mut sub, changes, UNREAD_SETTLE).await;
            }
        })
    }

    /// New comments and replies on a post, for an open post page: `{ kind: CREATED, node, cursor }`.
    /// Resume with `after: <last cursor>` to get what was written meanwhile, with no gap and no
    /// duplicate; without it, from now on.
    async fn comment_added(
        &self,
        ctx: &Context<'_>,
        post_id: ID,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<CommentEvent>>> {
        let post = ids::decode(Kind::Post, &post_id, "postId")?;
        let after = cursor(after.as_deref(), "after")?;
        let st = state(ctx)?;
        let db = st.db.clone();
        let sub = st.broker.subscribe(Topic::Post(post));
        // A deleted post's page hears nothing more; a missing one is NOT_FOUND, as a query says.
        if crate::graphql::types::load_one(&loaders(ctx)?.posts, post).await?.is_none_or(|p| p.deleted_at.is_some()) {
            return Err(AppError::NotFound("post").into());
        }
        let head = comments::head(&db, post).await?;
        let start = after.map_or(head, |c| c.min(head));
        let wants = |e: &Event| match e {
            Event::Comment { id } => Some(*id),
            _ => None,
        };
        let stream = replay::user_stream(replay::Listen::Topic(sub), start, wants, move |last| {
            let db = db.clone();
            async move {
                let rows = comments::after(&db, post, last, BATCH).await?;
                Ok(rows
                    .into_iter()
                    .map(|c| {
                        (
                            c.id,
                            CommentEvent {
                                kind: EventKind::Created,
                                cursor: Cursor::Id(c.id).encode(),
                                node: Comment(c),
                            },
                        )
                    })
                    .collect())
            }
        });
        Ok(fresh(ctx, stream.map(|r| r.map_err(Into::into)))?)
    }

    /// A post's edits, counters (likes, favourites, comments) and deletion, for an open post page.
    /// The first event is the post as it is now, so a page that (re)subscribes never keeps a stale
    /// state; then one `UPDATED` per change, bursts coalesced per second; `DELETED` ends the stream.
    /// `viewCount` is not pushed (every page view would be an event).
    async fn post_updated(
        &self,
        ctx: &Context<'_>,
        post_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<PostEvent>>> {
        let id = ids::decode(Kind::Post, &post_id, "postId")?;
        let st = state(ctx)?;
        let db = st.db.clone();
        let mut sub = st.broker.subscribe(Topic::Post(id));
        let mut post = posts::live(&db, id).await?;
        let events = async_stream::try_stream! {
            yield PostEvent { kind: EventKind::Updated, node: Post(post.clone()) };
            loop {
                let relevant = |e: &Event| {
                    matches!(e, Event::PostChanged | Event::PostDeleted | Event::Comment { .. } | Event::CommentChanged { .. })
                };
                gather(&mut sub, relevant, POST_PAGE_TICK).await;
                let Some(now) = posts::by_ids(&db, &[id]).await?.pop() else { break };
                if now.deleted_at.is_some() {
                    yield PostEvent { kind: EventKind::Deleted, node: Post(now) };
                    break;
                }
                if now != post {
                    post = now;
                    yield PostEvent { kind: EventKind::Updated, node: Post(post.clone()) };
                }
            }
        };
        Ok(fresh(ctx, events)?)
    }

    /// Comments of an open post page that were deleted (`DELETED`: show the placeholder) or whose
    /// counters moved (`UPDATED`: likes, replies), coalesced per second. New comments come through
    /// `commentAdded`. Changes made while the page was disconnected are not replayed: refetch the
    /// comments on screen after a reconnect.
    async fn comment_updated(
        &self,
        ctx: &Context<'_>,
        post_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<CommentEvent>>> {
        let id = ids::decode(Kind::Post, &post_id, "postId")?;
        let st = state(ctx)?;
        let db = st.db.clone();
        let mut sub = st.broker.subscribe(Topic::Post(id));
        posts::live(&db, id).await?;
        let events = async_stream::try_stream! {
            loop {
                let heard = gather(&mut sub, |e| matches!(e, Event::CommentChanged { .. }), POST_PAGE_TICK).await;
                let mut changed: Vec<i64> = heard
                    .events
                    .iter()
                    .filter_map(|e| match **e {
                        Event::CommentChanged { id } => Some(id),
                        _ => None,
                    })
                    .collect();
                changed.sort_unstable();
                changed.dedup();
                if changed.is_empty() {
                    continue;
                }
                for c in comments::by_ids(&db, &changed).await? {
                    let kind = if c.deleted_at.is_some() { EventKind::Deleted } else { EventKind::Updated };
                    yield CommentEvent { kind, cursor: Cursor::Id(c.id).encode(), node: Comment(c) };
                }
            }
        };
        Ok(fresh(ctx, events)?)
    }

    /// A live room's state as it changes: its status (`LIVE`, `ENDED`) and viewer count, at once and
    /// then on each change (the count is looked at every 2 s). Completes after the `ENDED` event.
    async fn live_stream_updated(
        &self,
        ctx: &Context<'_>,
        stream_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<LiveStreamEvent>>> {
        let id = ids::decode(Kind::LiveStream, &stream_id, "streamId")?;
        let st = state(ctx)?;
        let db = st.db.clone();
        let presence = st.presence.clone();
        let mut sub = st.broker.subscribe(Topic::Live(id));
        let mut stream = live::get(&db, id).await?.ok_or(AppError::NotFound("live stream"))?;
        let events = async_stream::try_stream! {
            let mut tick = tokio::time::interval(VIEWER_COUNT_TICK);
            let mut last = None;
            loop {
                // Redis unreachable for a moment: the last known count stands.
                let viewers = presence.count(id).await.ok().or(last.as_ref().map(|(_, v)| *v)).unwrap_or(0);
                let now = (stream.status.clone(), viewers);
                if last.as_ref() != Some(&now) {
                    last = Some(now);
                    yield LiveStreamEvent { kind: EventKind::Updated, node: LiveStream(stream.clone()) };
                }
                if live::Status::parse(&stream.status) == live::Status::Ended {
                    break;
                }
                let reload = tokio::select! {
                    _ = tick.tick() => false,
                    received = sub.recv() => match received {
                        Received::Lagged(_) => true,
                        Received::Event(e) => matches!(*e, Event::LiveStarted | Event::LiveEnded | Event::Resync),
                    },
                };
                if reload {
                    stream = live::get(&db, id).await?.ok_or(AppError::NotFound("live stream"))?;
                }
            }
        };
        Ok(fresh(ctx, events)?)
    }

    /// A live room's chat. Open to everyone; subscribing counts as watching (`viewerCount`).
    /// Completes when the stream ends.
    async fn live_chat(
        &self,
        ctx: &Context<'_>,
        stream_id: ID,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<LiveChatEvent>>> {
        let id = ids::decode(Kind::LiveStream, &stream_id, "streamId")?;
        let after = cursor(after.as_deref(), "after")?;
        let st = state(ctx)?;
        let sub = st.broker.subscribe(Topic::Live(id));
        let stream = live::get(&st.db, id).await?.ok_or(AppError::NotFound("live stream"))?;
        let ended = live::Status::parse(&stream.status) == live::Status::Ended;
        // Live chat favours the present: a cursor further back than MAX_CHAT_REPLAY lines resumes at
        // that limit, and the first line says how many were skipped.
        let head = stream.chat_seq;
        let wanted = after.map_or(head, |c| c.clamp(0, head));
        let start = wanted.max(head - replay::MAX_CHAT_REPLAY);
        let presence = match ctx.data_opt::<crate::graphql::shared::SharedExecution>() {
            _ if ended => None,
            // Run once for many sockets: the feed counts each of them.
            Some(shared) => {
                shared.watching(id);
                None
            }
            None => Some(st.presence.join(id, crate::pubsub::presence::member_for(viewer(ctx).as_ref()))),
        };
        let events = replay::chat_stream(st.db.clone(), sub, id, start, start - wanted, ended, presence);
        Ok(fresh(ctx, events.map(|r| r.map(LiveChatEvent).map_err(Into::into)))?)
    }
}
