//! A member's private streams over a WebSocket (`messageReceived`, `notificationReceived`) without
//! a GraphQL execution held open between events (issue 14).
//!
//! A phone keeps these subscriptions for hours and hears an event now and then. Held open,
//! async-graphql's execution of each (its parsed document, query environment, field stream and the
//! request's loaders) was about 9 KiB of the 30 a socket held while idle. Here the socket's operation
//! holds the member's topic and the cursor its stream reached; at a hint past that cursor it runs the
//! client's document again, which replays from the cursor and ends once caught up
//! ([`crate::services::replay::Rerun`]). The client sees the same frames: the same document answers
//! each event, the first run starts at the client's own `after`, and the order of subscribing to the
//! topic before reading the database keeps the gap-free guarantee of `services::replay`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::{Stream, StreamExt as _};

use super::shared_feed::{self, Delivery, Lagging};
use crate::app::AppState;
use crate::graphql::RequestInfo;
use crate::pubsub::{Event, Topic};
use crate::services::replay::{self, Rerun};

/// The operation a `subscribe` asks for, resolved (a persisted id already looked up).
pub struct Operation {
    pub query: String,
    pub name: Option<String>,
    pub variables: async_graphql::Variables,
}

/// Runs `op` for `info`'s member (signed in) now and again after each hint on their topic that
/// `wants` says is past what was sent, as deliveries for the socket's `pump`.
pub fn stream(
    app: AppState,
    info: RequestInfo,
    user_id: i64,
    op: Operation,
    wants: fn(&Event) -> Option<i64>,
) -> impl Stream<Item = Result<Arc<Delivery>, Lagging>> + Send {
    async_stream::stream! {
        // Before the first run reads anything: what is committed meanwhile is announced here.
        let mut topic = app.broker.subscribe(Topic::User(user_id));
        let mut rerun = Arc::new(Rerun::default());
        let mut first = true;
        loop {
            let request = crate::graphql::request(op.query.clone(), op.name.clone(), op.variables.clone());
            let request = crate::graphql::prepare(request, &app, info.clone()).data(rerun.clone());
            // Boxed and dropped after each run: only a run in progress holds an execution.
            let mut run = Box::pin(shared_feed::unpanicking(app.schema.execute_stream(request)));
            while let Some(resp) = run.next().await {
                let delivery = Delivery::new(resp, std::mem::take(&mut first));
                let request_error = delivery.request_error;
                yield Ok(Arc::new(delivery));
                if request_error {
                    return;
                }
            }
            drop(run);
            // Only the first run can answer with a request error, even when it sent nothing.
            first = false;
            // A run that did not catch up failed (its error went out as the last result): the
            // subscription ends there, as a held execution's stream would have.
            if !rerun.caught_up.load(Ordering::Relaxed) {
                return;
            }
            let reached = rerun.reached.load(Ordering::Relaxed);
            {
                let _waiting = app.private_streams.enter();
                replay::heard_after(&mut topic, reached, wants).await;
            }
            rerun = Arc::new(Rerun::after(reached));
        }
    }
}

/// How many private streams of this instance wait for an event with no execution held.
#[derive(Default)]
pub struct Waiting(AtomicUsize);

impl Waiting {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    fn enter(&self) -> WaitingGuard<'_> {
        self.0.fetch_add(1, Ordering::Relaxed);
        crate::metrics::METRICS.private_streams_waiting.inc();
        WaitingGuard(self)
    }
}

struct WaitingGuard<'a>(&'a Waiting);

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::Relaxed);
        crate::metrics::METRICS.private_streams_waiting.dec();
    }
}
