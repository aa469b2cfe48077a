//! Shared subscription feeds: one execution per (document, operation, variables) on this instance,
//! serialised once, and the same bytes for every socket subscribed to it. `graphql::shared` decides
//! which subscriptions may share; this module runs them.
//!
//! A feed is a task that drives the operation's stream and broadcasts each result. Sockets join and
//! leave at any time; the feed stops when its stream ends (every member then completes) or when its
//! last member leaves. Members read from a bounded broadcast channel: one that falls a whole channel
//! behind gets `SUBSCRIPTION_LAGGING` and resubscribes, as a slow socket does on an operation of its
//! own, and the others never wait for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::{Stream, StreamExt as _};
use tokio::sync::{Notify, broadcast, watch};

use crate::app::AppState;
use crate::error::code;
use crate::graphql::RequestInfo;
use crate::graphql::shared::{Join, SharedExecution};
use crate::pubsub::presence::Presence;

/// Results a member may fall behind by: a chat member that far behind is told to resubscribe
/// (`SUBSCRIPTION_LAGGING`); a room-state member skips to the latest state.
const MEMBER_BACKLOG: usize = 256;

/// What identifies a feed: the operation exactly as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub query: String,
    pub operation: Option<String>,
    /// The variables as JSON (their names in order; equal values written differently inside a
    /// variable only make another feed, which shares less).
    pub variables: String,
}

/// One result of an operation, serialised once for however many sockets it goes to.
pub struct Delivery {
    /// The `payload` of the frame: the execution result, or the errors of a request error.
    pub payload: Box<str>,
    /// The errors, for metrics and the request log.
    pub errors: Vec<async_graphql::ServerError>,
    /// Errors found before execution: the operation ends with an `error` message.
    pub request_error: bool,
    /// No data, only errors: as a first result, the subscription could not start.
    pub failed: bool,
}

impl Delivery {
    /// `first`: the operation's first result, the only one that can be a request error.
    pub fn new(mut resp: async_graphql::Response, first: bool) -> Delivery {
        super::graphql::code_errors(&mut resp);
        let request_error = first && super::ws::is_request_error(&resp);
        let payload = if request_error {
            serde_json::to_string(&resp.errors)
        } else {
            serde_json::to_string(&super::graphql::Ordered::new(&resp, true))
        };
        let payload = payload.unwrap_or_else(|err| {
            tracing::error!(%err, "could not serialise a subscription result");
            let errors = serde_json::json!([{ "message": "internal error", "extensions": { "code": code::INTERNAL } }]);
            if request_error { errors } else { serde_json::json!({ "data": null, "errors": errors }) }.to_string()
        });
        let failed = resp.data == async_graphql::Value::Null && !resp.errors.is_empty();
        Delivery { payload: payload.into_boxed_str(), errors: resp.errors, request_error, failed }
    }
}

/// An operation's results, with a panic inside it turned into a last INTERNAL result instead of a
/// client left waiting.
pub fn unpanicking(
    stream: impl Stream<Item = async_graphql::Response> + Send,
) -> impl Stream<Item = async_graphql::Response> + Send {
    std::panic::AssertUnwindSafe(stream).catch_unwind().map(|result| {
        result.unwrap_or_else(|_| {
            tracing::error!("a subscription operation panicked");
            async_graphql::Response::from_errors(vec![crate::graphql::codes::with_code(
                async_graphql::ServerError::new("internal error", None),
                code::INTERNAL,
            )])
        })
    })
}

/// The feeds running on this instance.
#[derive(Default)]
pub struct SharedFeeds {
    feeds: Mutex<HashMap<Key, Arc<Feed>>>,
}

struct Feed {
    state: Mutex<FeedState>,
    join: Join,
    /// The live room the execution watches, once it says so.
    room: watch::Receiver<Option<i64>>,
    /// A member left: the feed looks whether any remain.
    left: Notify,
}

struct FeedState {
    /// `None` once the feed has ended: nobody joins it any more.
    tx: Option<broadcast::Sender<Arc<Delivery>>>,
    /// The last result, for members that join a `LastThenNow` feed.
    last: Option<Arc<Delivery>>,
}

/// One socket's place in a feed. Dropping it leaves.
pub struct Membership {
    feed: Arc<Feed>,
    rx: Option<broadcast::Receiver<Arc<Delivery>>>,
    first: Option<Arc<Delivery>>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        // The receiver goes first, so the feed counts this member gone when it looks.
        self.rx.take();
        self.feed.left.notify_one();
    }
}

/// Why a member's stream ended early.
pub struct Lagging;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SharedFeeds {
    /// Joins the feed of `key`, starting it (signed out) if none runs.
    pub fn join(
        self: &Arc<Self>,
        app: &AppState,
        key: Key,
        variables: async_graphql::Variables,
        join: Join,
    ) -> Membership {
        let mut feeds = lock(&self.feeds);
        if let Some(feed) = feeds.get(&key) {
            let state = lock(&feed.state);
            if let Some(tx) = &state.tx {
                let first = match feed.join {
                    Join::LastThenNow => state.last.clone(),
                    Join::FromNow => None,
                };
                return Membership { feed: feed.clone(), rx: Some(tx.subscribe()), first };
            }
        }
        let (execution, room) = SharedExecution::new();
        let (tx, rx) = broadcast::channel(MEMBER_BACKLOG);
        let feed = Arc::new(Feed {
            state: Mutex::new(FeedState { tx: Some(tx), last: None }),
            join,
            room,
            left: Notify::new(),
        });
        feeds.insert(key.clone(), feed.clone());
        drop(feeds);
        let request = crate::graphql::request(key.query.clone(), key.operation.clone(), variables).data(execution);
        let info = RequestInfo::new(None, Default::default(), None);
        let stream = app.schema.execute_stream(crate::graphql::prepare(request, app, info));
        tokio::spawn(run(self.clone(), key, feed.clone(), stream));
        Membership { feed, rx: Some(rx), first: None }
    }

    /// Ends `feed` if no member is left (under the registry's lock, so no socket joins meanwhile).
    fn end_if_unwatched(&self, key: &Key, feed: &Arc<Feed>) -> bool {
        let mut feeds = lock(&self.feeds);
        let mut state = lock(&feed.state);
        if state.tx.as_ref().is_some_and(|tx| tx.receiver_count() > 0) {
            return false;
        }
        state.tx = None;
        if feeds.get(key).is_some_and(|f| Arc::ptr_eq(f, feed)) {
            feeds.remove(key);
        }
        true
    }

    fn end(&self, key: &Key, feed: &Arc<Feed>) {
        let mut feeds = lock(&self.feeds);
        // Dropping the sender lets every member read what is left, then complete.
        lock(&feed.state).tx = None;
        if feeds.get(key).is_some_and(|f| Arc::ptr_eq(f, feed)) {
            feeds.remove(key);
        }
    }

    /// Feeds running, for tests.
    pub fn len(&self) -> usize {
        lock(&self.feeds).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Ends the feed however `run` stops, a panic included: members then complete instead of waiting
/// on a feed nobody drives, and the next subscriber starts a new one.
struct EndOnDrop {
    feeds: Arc<SharedFeeds>,
    key: Key,
    feed: Arc<Feed>,
}

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        self.feeds.end(&self.key, &self.feed);
    }
}

async fn run(
    feeds: Arc<SharedFeeds>,
    key: Key,
    feed: Arc<Feed>,
    stream: impl Stream<Item = async_graphql::Response> + Send,
) {
    let _running = crate::metrics::GaugeGuard::new(&crate::metrics::METRICS.shared_feeds);
    let ending = EndOnDrop { feeds, key, feed };
    let (feeds, key, feed) = (&ending.feeds, &ending.key, &ending.feed);
    let stream = unpanicking(stream);
    tokio::pin!(stream);
    let mut first = true;
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            () = feed.left.notified() => {
                if feeds.end_if_unwatched(key, feed) {
                    return;
                }
                continue;
            }
        };
        let Some(resp) = next else { return };
        // Errors are counted by each member's pump, once per socket they reach.
        let delivery = Arc::new(Delivery::new(resp, first));
        // A subscription that could not start ends here; a socket joining after this result must
        // start its own feed and get the error itself, not a bare `complete`.
        let terminal = delivery.request_error || (first && delivery.failed);
        first = false;
        let heard = {
            let mut state = lock(&feed.state);
            if feed.join == Join::LastThenNow {
                state.last = Some(delivery.clone());
            }
            let heard = state.tx.as_ref().is_some_and(|tx| tx.send(delivery).is_ok());
            if terminal {
                state.tx = None;
            }
            heard
        };
        if terminal {
            return;
        }
        if !heard && feeds.end_if_unwatched(key, feed) {
            return;
        }
    }
}

/// A member's results: the feed's last state when it joins one that keeps it, then every result the
/// feed sends, until the feed ends or the member falls too far behind. While it is a member, it
/// counts as a viewer of the room the execution watches (as `member`).
pub fn member_stream(
    mut membership: Membership,
    presence: Presence,
    member: String,
) -> impl Stream<Item = Result<Arc<Delivery>, Lagging>> + Send {
    async_stream::stream! {
        let mut room = membership.feed.room.clone();
        let mut room_known = true;
        let mut watching = None;
        if let Some(first) = membership.first.take() {
            yield Ok(first);
        }
        loop {
            if watching.is_none() && let Some(id) = *room.borrow_and_update() {
                watching = Some(presence.join(id, member.clone()));
            }
            let Some(rx) = membership.rx.as_mut() else { break };
            tokio::select! {
                biased;
                changed = room.changed(), if watching.is_none() && room_known => room_known = changed.is_ok(),
                received = rx.recv() => match received {
                    Ok(delivery) => yield Ok(delivery),
                    // States: the latest is all a member that fell behind needs.
                    Err(broadcast::error::RecvError::Lagged(_)) if membership.feed.join == Join::LastThenNow => {
                        let last = lock(&membership.feed.state).last.clone();
                        if let Some(last) = last {
                            yield Ok(last);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        yield Err(Lagging);
                        break;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
        drop(watching);
        drop(membership);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(n: usize) -> Arc<Delivery> {
        Arc::new(Delivery { payload: n.to_string().into(), errors: Vec::new(), request_error: false, failed: false })
    }

    /// A member `behind` results behind a feed of `join` kind, with a backlog of 2.
    async fn behind(join: Join, behind: usize) -> Vec<Result<String, ()>> {
        let (tx, rx) = broadcast::channel(2);
        let (_execution, room) = SharedExecution::new();
        let feed = Arc::new(Feed {
            state: Mutex::new(FeedState { tx: Some(tx.clone()), last: None }),
            join,
            room,
            left: Notify::new(),
        });
        let membership = Membership { feed: feed.clone(), rx: Some(rx), first: None };
        for n in 0..behind {
            let d = delivery(n);
            lock(&feed.state).last = Some(d.clone());
            let _ = tx.send(d);
        }
        lock(&feed.state).tx = None;
        drop(tx);
        let stream = member_stream(membership, Presence::in_process(), "a:test".into());
        stream.map(|r| r.map(|d| d.payload.to_string()).map_err(|Lagging| ())).collect().await
    }

    #[tokio::test]
    async fn a_chat_member_too_far_behind_is_told_and_a_room_page_skips_to_the_latest_state() {
        assert_eq!(behind(Join::FromNow, 2).await, vec![Ok("0".into()), Ok("1".into())], "within the backlog");
        assert_eq!(behind(Join::FromNow, 5).await, vec![Err(())], "chat: SUBSCRIPTION_LAGGING, then nothing");
        let states = behind(Join::LastThenNow, 5).await;
        assert_eq!(states.first(), Some(&Ok("4".into())), "the latest state first: {states:?}");
        assert!(states.iter().all(Result::is_ok));
    }
}
