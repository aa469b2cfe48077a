//! Gap-free subscriptions: replay from a cursor, then continue live, with nothing lost or repeated.
//!
//! The order matters (see DESIGN.md): the caller subscribes to the topic *first*, then reads the
//! stream's head or takes the client's cursor, then this module reads the database from that cursor
//! and only afterwards waits on the subscription. Whatever is committed while the replay runs is
//! either in the replay or announced on the subscription; an announcement at or below the last emitted
//! cursor is dropped. Broker events are hints: after a resync, a lag or a gap the database is read
//! again from the last emitted cursor.

use std::future::Future;

use futures_util::Stream;

use crate::error::AppResult;
use crate::pubsub::presence::PresenceGuard;
use crate::pubsub::{ChatLine, Event, Subscription, hub::Received};
use crate::services::live;

/// Rows read per database round trip while catching up.
pub const BATCH: u64 = 100;

/// A user stream (messages or notifications): `wants` extracts the cursor an event announces for this
/// stream; `fetch(c)` returns up to [`BATCH`] items after cursor `c`, oldest first, with their cursors.
pub fn user_stream<T, F, Fut>(
    mut sub: Subscription,
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
        loop {
            loop {
                let batch = fetch(last).await?;
                let full = batch.len() as u64 >= BATCH;
                for (cursor, item) in batch {
                    last = cursor;
                    yield item;
                }
                if !full {
                    break;
                }
            }
            // Wait until something after `last` may exist.
            loop {
                match sub.recv().await {
                    Received::Lagged(_) => break,
                    Received::Event(event) => match &*event {
                        Event::Resync => break,
                        other => {
                            if wants(other).is_some_and(|cursor| cursor > last) {
                                break;
                            }
                        }
                    },
                }
            }
        }
    }
}

/// One line of a live room as a viewer receives it.
#[derive(Debug, Clone)]
pub struct ChatEvent {
    pub line: ChatLine,
    /// Lines dropped right before this one because the viewer fell behind.
    pub skipped: i64,
}

/// A live room's chat from `last` on; completes when the stream ends. Lines the broker lost (a jump in
/// `seq`) are read from the database; lines a lagging viewer could not take are skipped and counted.
pub fn chat_stream(
    db: sea_orm::DatabaseConnection,
    mut sub: Subscription,
    stream_id: i64,
    mut last: i64,
    ended: bool,
    presence: Option<PresenceGuard>,
) -> impl Stream<Item = AppResult<ChatEvent>> + Send {
    async_stream::try_stream! {
        let _presence = presence;
        let mut catch_up = true;
        let mut ended = ended;
        let mut lagging = false;
        loop {
            if catch_up {
                loop {
                    let batch = live::chat_after(&db, stream_id, last, BATCH).await?;
                    let full = batch.len() as u64 >= BATCH;
                    for line in batch {
                        last = line.seq;
                        yield ChatEvent { line, skipped: 0 };
                    }
                    if !full {
                        break;
                    }
                }
                catch_up = false;
            }
            if ended {
                break;
            }
            match sub.recv().await {
                Received::Lagged(_) => lagging = true,
                Received::Event(event) => match &*event {
                    Event::Chat(line) if line.seq <= last => {}
                    Event::Chat(line) if line.seq == last + 1 || lagging => {
                        let skipped = line.seq - last - 1;
                        lagging = false;
                        last = line.seq;
                        yield ChatEvent { line: line.clone(), skipped };
                    }
                    Event::Chat(_) | Event::Resync => catch_up = true,
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
