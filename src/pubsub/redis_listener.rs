//! This instance's one Redis subscription: a `PSUBSCRIBE` on every event channel of the deployment,
//! feeding the local hub. It reconnects by itself with backoff; after a reconnect it tells every local
//! subscriber to resync, because whatever was published meanwhile is gone from pub/sub (not from the
//! database).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt as _;

use super::{Envelope, Hub};

const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How often the instance sends itself a heartbeat through its own subscription. A TCP link that died
/// without a reset (a half-open connection) delivers nothing and reports no error; three missed
/// heartbeats make the listener resubscribe (and its local subscribers resync).
const HEARTBEAT: Duration = Duration::from_secs(5);
const HEARTBEAT_KEY: &str = "~hb:";

struct Heartbeat {
    publisher: redis::aio::ConnectionManager,
    channel: String,
}

impl Heartbeat {
    fn send(&self) {
        let mut conn = self.publisher.clone();
        let channel = self.channel.clone();
        tokio::spawn(async move {
            let mut cmd = redis::cmd("PUBLISH");
            cmd.arg(channel).arg("1");
            let _ = tokio::time::timeout(HEARTBEAT, cmd.query_async::<i64>(&mut conn)).await;
        });
    }
}

pub(super) async fn start(
    client: redis::Client,
    publisher: redis::aio::ConnectionManager,
    hub: Weak<Hub>,
    prefix: String,
    subscribed: Arc<AtomicBool>,
) -> Result<(), redis::RedisError> {
    // The first subscription is made before start-up finishes, so a failure there stops the gateway
    // with a clear message instead of a silent retry loop.
    let first = subscribe(&client, &prefix).await?;
    subscribed.store(true, Ordering::Relaxed);
    let heartbeat =
        Heartbeat { publisher, channel: format!("{prefix}{HEARTBEAT_KEY}{}", uuid::Uuid::new_v4().simple()) };
    tokio::spawn(run(client, hub, prefix, subscribed, first, heartbeat));
    Ok(())
}

async fn subscribe(client: &redis::Client, prefix: &str) -> Result<redis::aio::PubSub, redis::RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.psubscribe(format!("{prefix}*")).await?;
    Ok(pubsub)
}

async fn run(
    client: redis::Client,
    hub: Weak<Hub>,
    prefix: String,
    subscribed: Arc<AtomicBool>,
    first: redis::aio::PubSub,
    heartbeat: Heartbeat,
) {
    let mut pubsub = Some(first);
    let mut reconnected = false;
    let mut backoff = Duration::from_millis(50);
    loop {
        if let Some(conn) = pubsub.take() {
            subscribed.store(true, Ordering::Relaxed);
            backoff = Duration::from_millis(50);
            if std::mem::replace(&mut reconnected, true) {
                tracing::info!("redis subscription restored; local subscribers resync from the database");
                crate::metrics::METRICS.broker_resyncs.inc();
                match hub.upgrade() {
                    Some(hub) => hub.resync_all(),
                    None => return,
                }
            }
            let mut messages = conn.into_on_message();
            let mut beat = tokio::time::interval(HEARTBEAT);
            let mut heard = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    msg = messages.next() => {
                        let Some(msg) = msg else { break };
                        let Some(hub) = hub.upgrade() else { return };
                        let channel = msg.get_channel_name();
                        if channel == heartbeat.channel {
                            heard = tokio::time::Instant::now();
                            continue;
                        }
                        let Some(key) = channel.strip_prefix(&prefix) else { continue };
                        if key.starts_with(HEARTBEAT_KEY) {
                            continue;
                        }
                        let payload: String = match msg.get_payload() {
                            Ok(p) => p,
                            Err(err) => {
                                tracing::warn!(%err, "unreadable broker payload");
                                continue;
                            }
                        };
                        match serde_json::from_str::<Envelope>(&payload) {
                            Ok(envelope) => {
                                let m = &crate::metrics::METRICS;
                                m.broker_events.inc();
                                let lag_ms = chrono::Utc::now().timestamp_millis() - envelope.at;
                                m.broker_lag.observe(lag_ms.max(0) as f64 / 1000.0);
                                hub.dispatch(key, Arc::new(envelope.e));
                            }
                            Err(err) => tracing::warn!(%err, "unknown broker event"),
                        }
                    }
                    _ = beat.tick() => {
                        if heard.elapsed() > HEARTBEAT * 3 {
                            tracing::warn!("redis subscription silent for three heartbeats; resubscribing");
                            break;
                        }
                        heartbeat.send();
                    }
                }
            }
            subscribed.store(false, Ordering::Relaxed);
            tracing::warn!("redis subscription lost; reconnecting");
        }
        if hub.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        match subscribe(&client, &prefix).await {
            Ok(conn) => pubsub = Some(conn),
            Err(err) => tracing::warn!(%err, "redis subscription: reconnect failed"),
        }
    }
}
