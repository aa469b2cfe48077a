//! Gap-free subscriptions: replay from a cursor, then continue live, with nothing lost or repeated.
//!
//! The order matters (see DESIGN.md): the caller subscribes to the topic *first*, then reads the
//! stream's head or takes the client's cursor, then this module reads the database from that cursor
//! and only afterwards waits on the subscription. Whatever is committed while the replay runs is
//! either in the replay or announced on the subscription; an announcement at or below the last emitted
//! cursor is dropped. Broker events are hints: after a resync, a lag or a gap the database is read
//! again from the last emitted cursor.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use futures_util::Stream;

use crate::error::AppResult;
use crate::pubsub::presence::PresenceGuard;
use crate::pubsub::{ChatLine, Event, Subscription, hub::Received};
use crate::services::live;

/// Rows read per database round trip while catching up.
pub const BATCH: u64 = 100;

/// How a user stream goes on once it has caught up.
pub enum Listen {
    /// Waits on the topic (subscribed before the start was read) and reads again at each hint.
    Topic(Subscription),
    /// Ends: the transport holds the topic and runs the stream again at the next hint ([`Rerun`]).
    Once(Arc<Rerun>),
}

/// A private stream that the WebSocket transport runs once per hint instead of holding its
/// execution open between events (`http::private_stream`): an idle subscription then costs its
/// topic and a cursor, not a GraphQL execution (issue 14's heap profile: about 9 KiB of the 30 a
/// socket held). Found in a request's data, it makes the resolver start after `from`, the cursor the
/// previous run reached (the client's own `after` on the first run), and end once caught up.
#[derive(Default)]
pub struct Rerun {
    pub from: Option<i64>,
    /// The cursor of the last item this run yielded (its start until it yields one).
    pub reached: AtomicI64,
    /// Set when the run ended because it had caught up, not because it failed.
    pub caught_up: AtomicBool,
}

impl Rerun {
    /// A run after one that reached `from`: it has reached `from` until it yields.
    pub fn after(from: i64) -> Rerun {
        Rerun { from: Some(from), reached: AtomicI64::new(from), caught_up: AtomicBool::new(false) }
    }
}

/// A user stream (messages or notifications): `wants` extracts the cursor an event announces for this
/// stream; `fetch(c)` returns up to [`BATCH`] items after cursor `c`, oldest first, with their cursors.
pub fn user_stream<T, F, Fut>(
    listen: Listen,
    mut last: i64,
    wants: fn(&Event) -> Option<i64>,
    fetch: F,
) -> impl Stream<Item = AppResult<T>> + Send
where
    T: Send + 'static,
    F: Fn(i64) -> Fut + Send + 'static,
    Fut: Future<Output = AppResult<Vec<(i64, T)>>> + Send,
{
    async_stream::try_stream! {
        let mut listen = listen;
        loop {
            loop {
                // Boxed: a subscription waits on its topic far longer than it reads, and inline the
                // query's state would sit in every idle subscription.
                let batch = Box::pin(fetch(last)).await?;
                let full = batch.len() as u64 >= BATCH;
                for (cursor, item) in batch {
                    last = cursor;
                    if let Listen::Once(rerun) = &listen {
                        rerun.reached.store(cursor, Ordering::Relaxed);
                    }
                    yield item;
                }
                if !full {
                    break;
                }
            }
            match &mut listen {
                // Wait until something after `last` may exist.
                Listen::Topic(sub) => heard_after(sub, last, wants).await,
                Listen::Once(rerun) => {
                    rerun.caught_up.store(true, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
}

/// Waits on `sub` until a hint says something after `last` may exist: an event past it, a resync or
/// a lag.
pub async fn heard_after(sub: &mut Subscription, last: i64, wants: fn(&Event) -> Option<i64>) {
    loop {
        match sub.recv().await {
            Received::Lagged(_) => return,
            Received::Event(event) => match &*event {
                Event::Resync => return,
                other => {
                    if wants(other).is_some_and(|cursor| cursor > last) {
                        return;
                    }
                }
            },
        }
    }
}

/// One line of a live room as a viewer receives it.
#[derive(Debug, Clone)]
pub struct ChatEvent {
    pub line: ChatLine,
    /// Lines dropped right before this one because the viewer fell behind.
    pub skipped: i64,
    /// This event deletes a line the viewer already has (else it brings a new line).
    pub deleted: bool,
}

/// A cursor further back than this many chat lines resumes at the limit (live chat favours the present;
/// the history is a query away).
pub const MAX_CHAT_REPLAY: i64 = 500;

/// How long a chat line that arrived ahead of its predecessor waits for it (two lines said at once can
/// be announced out of order) before the database is asked for the gap.
const REORDER_WINDOW: std::time::Duration = std::time::Duration::from_millis(100);

/// A live room's chat from `last` on; completes when the stream ends. Lines the broker lost (a gap in
/// `seq` that does not fill within [`REORDER_WINDOW`]) are read from the database; lines a lagging
/// viewer could not take are skipped and counted, as are `skipped` lines before `last` that were too
/// old to replay.
pub fn chat_stream(
    db: sea_orm::DatabaseConnection,
    mut sub: Subscription,
    stream_id: i64,
    mut last: i64,
    skipped: i64,
    ended: bool,
    presence: Option<PresenceGuard>,
) -> impl Stream<Item = AppResult<ChatEvent>> + Send {
    async_stream::try_stream! {
        let _presence = presence;
        let mut report = skipped;
        let mut catch_up = true;
        let mut first = true;
        let mut ended = ended;
        let mut lagging = false;
        let mut early: std::collections::BTreeMap<i64, ChatLine> = Default::default();
        let mut deadline = tokio::time::Instant::now();
        loop {
            if catch_up {
                // The end may have been announced and lost: ask, before reading the lines, so that
                // every line said before the end is in the read.
                if !ended && !std::mem::take(&mut first) {
                    ended = live::has_ended(&db, stream_id).await?;
                }
                loop {
                    let batch = live::chat_after(&db, stream_id, last, BATCH).await?;
                    let full = batch.len() as u64 >= BATCH;
                    for line in batch {
                        last = line.seq;
                        yield ChatEvent { line, skipped: std::mem::take(&mut report), deleted: false };
                    }
                    if !full {
                        break;
                    }
                }
                early.retain(|seq, _| *seq > last);
                catch_up = false;
                lagging = false;
            }
            if ended {
                break;
            }
            let received = if early.is_empty() {
                Some(sub.recv().await)
            } else {
                tokio::time::timeout_at(deadline, sub.recv()).await.ok()
            };
            match received {
                // The gap did not fill in time: the broker lost those lines.
                None => catch_up = true,
                Some(Received::Lagged(_)) => {
                    lagging = true;
                    early.clear();
                }
                Some(Received::Event(event)) => match &*event {
                    Event::Chat(line) if line.seq <= last => {}
                    Event::Chat(line) if line.seq == last + 1 || lagging => {
                        let skipped = line.seq - last - 1 + std::mem::take(&mut report);
                        lagging = false;
                        last = line.seq;
                        yield ChatEvent { line: line.clone(), skipped, deleted: false };
                        while let Some(next) = early.remove(&(last + 1)) {
                            last = next.seq;
                            yield ChatEvent { line: next, skipped: 0, deleted: false };
                        }
                    }
                    Event::Chat(line) => {
                        if early.is_empty() {
                            deadline = tokio::time::Instant::now() + REORDER_WINDOW;
                        }
                        early.insert(line.seq, line.clone());
                    }
                    // A line this client has: it learns of the deletion. A later one arrives as the
                    // tombstone in order; one waiting out of order is replaced by it.
                    Event::ChatDeleted(line) if line.seq <= last => {
                        yield ChatEvent { line: line.clone(), skipped: 0, deleted: true };
                    }
                    Event::ChatDeleted(line) => {
                        if let Some(waiting) = early.get_mut(&line.seq) {
                            *waiting = line.clone();
                        }
                    }
                    Event::Resync => catch_up = true,
                    Event::LiveEnded => {
                        ended = true;
                        catch_up = true;
                    }
                    _ => {}
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;
    use futures_util::StreamExt as _;
    use sea_orm::{ActiveModelTrait, Set};

    use super::*;
    use crate::auth::{Role, Viewer};
    use crate::pubsub::{Broker, Hub, Topic};

    async fn db() -> (sea_orm::DatabaseConnection, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config::Config::defaults();
        config.database_url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
        (crate::db::connect(&config).await.unwrap().0, dir)
    }

    async fn host(db: &sea_orm::DatabaseConnection) -> Viewer {
        let now = Utc::now();
        let user = entity::users::ActiveModel {
            nickname: Set("host".into()),
            gender: Set("UNSPECIFIED".into()),
            role: Set("USER".into()),
            follower_count: Set(0),
            following_count: Set(0),
            post_count: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(db)
        .await
        .unwrap();
        Viewer { user_id: user.id, role: Role::User, session_id: 0, app: None }
    }

    fn line(stream_id: i64, seq: i64) -> Arc<Event> {
        Arc::new(Event::Chat(ChatLine {
            id: seq,
            stream_id,
            seq,
            user_id: 1,
            body: format!("line {seq}"),
            created_at: Utc::now(),
            deleted: false,
        }))
    }

    #[tokio::test]
    async fn a_lagging_chat_viewer_skips_the_oldest_lines_and_is_told_how_many() {
        let (db, _dir) = db().await;
        let hub = Hub::new();
        let sub = hub.subscribe(Topic::Live(7).key(), 2);
        let stream = chat_stream(db, sub, 7, 0, 0, false, None);
        tokio::pin!(stream);
        // Ten lines arrive before the viewer reads any; the buffer keeps the newest two.
        for seq in 1..=10 {
            hub.dispatch(&Topic::Live(7).key(), line(7, seq));
        }
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!((first.line.seq, first.skipped), (9, 8));
        let second = stream.next().await.unwrap().unwrap();
        assert_eq!((second.line.seq, second.skipped), (10, 0));
    }

    #[tokio::test]
    async fn lines_announced_out_of_order_are_put_back_in_order_without_the_database() {
        let (db, _dir) = db().await;
        let hub = Hub::new();
        let sub = hub.subscribe(Topic::Live(7).key(), 16);
        // The database holds none of these lines: a catch-up would find nothing and the stream
        // would stall, so getting both proves they came from the reorder buffer.
        let stream = chat_stream(db, sub, 7, 0, 0, false, None);
        tokio::pin!(stream);
        hub.dispatch(&Topic::Live(7).key(), line(7, 2));
        hub.dispatch(&Topic::Live(7).key(), line(7, 1));
        let got: Vec<i64> =
            vec![stream.next().await.unwrap().unwrap().line.seq, stream.next().await.unwrap().unwrap().line.seq];
        assert_eq!(got, vec![1, 2]);
    }

    #[tokio::test]
    async fn lines_the_broker_lost_are_read_from_the_database() {
        let (db, _dir) = db().await;
        let broker = Broker::in_process(16);
        let viewer = host(&db).await;
        let room = live::create(&db, &viewer, "room", None, None).await.unwrap();
        live::start(&db, &broker, &viewer, room.id).await.unwrap();
        let hub = Hub::new();
        let sub = hub.subscribe(Topic::Live(room.id).key(), 16);
        let stream = chat_stream(db.clone(), sub, room.id, 0, 0, false, None);
        tokio::pin!(stream);
        // Three lines are stored (through a broker nobody here listens to, as if it lost them);
        // only the third is announced to this viewer.
        for body in ["a", "b", "c"] {
            live::say(&db, &broker, &viewer, room.id, body).await.unwrap();
        }
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(stream.next().await.unwrap().unwrap());
            if seen.len() == 1 {
                hub.dispatch(&Topic::Live(room.id).key(), line(room.id, 3));
            }
        }
        let got: Vec<_> = seen.iter().map(|e| (e.line.seq, e.line.body.as_str(), e.skipped)).collect();
        assert_eq!(got, vec![(1, "a", 0), (2, "b", 0), (3, "c", 0)]);
    }

    #[tokio::test]
    async fn a_rerun_reads_until_caught_up_then_ends_and_says_how_far_it_got() {
        let rows: Vec<(i64, i64)> = (1..=150).map(|i| (i, i)).collect();
        let fetch = move |after: i64| {
            let page: Vec<_> = rows.iter().copied().filter(|(c, _)| *c > after).take(BATCH as usize).collect();
            async move { Ok(page) }
        };
        let wants = |_: &Event| None;
        let rerun = Arc::new(Rerun::after(20));
        let got: Vec<i64> =
            user_stream(Listen::Once(rerun.clone()), 20, wants, fetch.clone()).map(Result::unwrap).collect().await;
        assert_eq!(got, (21..=150).collect::<Vec<_>>(), "two reads of up to {BATCH}, then the end");
        assert!(rerun.caught_up.load(Ordering::Relaxed));
        assert_eq!(rerun.reached.load(Ordering::Relaxed), 150);

        // Nothing new: the run ends at once, caught up where it started.
        let rerun = Arc::new(Rerun::after(150));
        let got: Vec<i64> =
            user_stream(Listen::Once(rerun.clone()), 150, wants, fetch.clone()).map(Result::unwrap).collect().await;
        assert!(got.is_empty());
        assert!(rerun.caught_up.load(Ordering::Relaxed));
        assert_eq!(rerun.reached.load(Ordering::Relaxed), 150);

        // A failed read is not caught up: the transport ends the subscription.
        let rerun = Arc::new(Rerun::after(0));
        let failing = |_: i64| async { Err::<Vec<(i64, i64)>, _>(crate::error::AppError::internal("down")) };
        let got: Vec<_> = user_stream(Listen::Once(rerun.clone()), 0, wants, failing).collect().await;
        assert!(matches!(got.as_slice(), [Err(_)]));
        assert!(!rerun.caught_up.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn a_waiting_rerun_wakes_for_hints_past_its_cursor_a_resync_or_a_lag_only() {
        let hub = Hub::new();
        let mut sub = hub.subscribe("u:1".into(), 2);
        let wants = |e: &Event| match e {
            Event::Message { id } => Some(*id),
            _ => None,
        };
        let woke = |sub: &mut Subscription| {
            futures_util::FutureExt::now_or_never(Box::pin(heard_after(sub, 10, wants))).is_some()
        };
        // At or below the cursor (already sent), or another stream's: keep waiting.
        for event in [Event::Message { id: 9 }, Event::Message { id: 10 }, Event::UnreadChanged] {
            hub.dispatch("u:1", Arc::new(event));
            assert!(!woke(&mut sub));
        }
        hub.dispatch("u:1", Arc::new(Event::Message { id: 11 }));
        assert!(woke(&mut sub), "a hint past the cursor");
        hub.dispatch("u:1", Arc::new(Event::Resync));
        assert!(woke(&mut sub), "a resync");
        for id in 1..=3 {
            hub.dispatch("u:1", Arc::new(Event::Message { id }));
        }
        assert!(woke(&mut sub), "a lag: hints were lost");
    }

    #[tokio::test]
    async fn user_streams_reread_the_database_on_every_hint() {
        let hub = Hub::new();
        let sub = hub.subscribe("u:1".into(), 1);
        let rows = Arc::new(std::sync::Mutex::new(vec![(5_i64, "e")]));
        let source = rows.clone();
        let wants = |e: &Event| match e {
            Event::Message { id } => Some(*id),
            _ => None,
        };
        let stream = user_stream(Listen::Topic(sub), 4, wants, move |after| {
            let rows = source.lock().unwrap().iter().filter(|(id, _)| *id > after).cloned().collect::<Vec<_>>();
            async move { Ok(rows) }
        });
        tokio::pin!(stream);
        assert_eq!(stream.next().await.unwrap().unwrap(), "e");
        // Two new rows, but the broker only managed to announce one of them after a lag.
        rows.lock().unwrap().extend([(6, "f"), (7, "g")]);
        for id in [6, 7, 8] {
            hub.dispatch("u:1", Arc::new(Event::Message { id }));
        }
        assert_eq!(stream.next().await.unwrap().unwrap(), "f");
        assert_eq!(stream.next().await.unwrap().unwrap(), "g");
    }
}
