//! The local fan-out: topic key -> a tokio broadcast channel shared by this instance's subscribers.
//!
//! A broadcast channel keeps the newest `buffer` events; a receiver that falls further behind loses
//! the oldest and is told how many (`Lagged`). Subscribers of messages and notifications answer that by
//! re-reading the database; live chat reports the skipped lines to the viewer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::Event;

pub struct Hub {
    /// A std mutex: held only to look up or insert a sender, never across an await.
    topics: Mutex<HashMap<String, broadcast::Sender<Arc<Event>>>>,
}

/// What a subscriber receives.
#[derive(Debug)]
pub enum Received {
    Event(Arc<Event>),
    /// This many events were dropped because the subscriber fell behind.
    Lagged(u64),
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub { topics: Mutex::new(HashMap::new()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, broadcast::Sender<Arc<Event>>>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts and
        // removes), so a poisoned lock is still safe to use.
        self.topics.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Subscribes to `key`; `buffer` sizes the topic's channel if this is its first subscriber (a
    /// channel allocates all its slots up front).
    pub fn subscribe(self: &Arc<Self>, key: String, buffer: usize) -> Subscription {
        let rx = {
            let mut topics = self.lock();
            topics.entry(key.clone()).or_insert_with(|| broadcast::channel(buffer.max(1)).0).subscribe()
        };
        Subscription { rx: Some(rx), key, hub: self.clone() }
    }

    /// Hands an event to this instance's subscribers of `key`, if there are any.
    pub fn dispatch(&self, key: &str, event: Arc<Event>) {
        let sender = self.lock().get(key).cloned();
        if let Some(sender) = sender {
            // An error only means every receiver left since the lookup.
            let _ = sender.send(event);
        }
    }

    /// Tells every local subscriber to re-read the database from its cursor.
    pub fn resync_all(&self) {
        let senders: Vec<_> = self.lock().values().cloned().collect();
        let event = Arc::new(Event::Resync);
        for sender in senders {
            let _ = sender.send(event.clone());
        }
    }

    pub fn topic_count(&self) -> usize {
        self.lock().len()
    }
}

/// One subscriber's receiver; the topic's channel goes away with its last subscriber.
pub struct Subscription {
    rx: Option<broadcast::Receiver<Arc<Event>>>,
    key: String,
    hub: Arc<Hub>,
}

impl Subscription {
    /// The next event, or how many were lost. Pending forever if the hub is gone, which cannot
    /// happen while this subscription holds it.
    pub async fn recv(&mut self) -> Received {
        let Some(rx) = self.rx.as_mut() else {
            return std::future::pending().await;
        };
        match rx.recv().await {
            Ok(event) => Received::Event(event),
            Err(broadcast::error::RecvError::Lagged(n)) => Received::Lagged(n),
            // The hub keeps the sender while any receiver exists, so this is unreachable in
            // practice; waiting forever is the honest answer for "no more events".
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut topics = self.hub.lock();
        // Drop our receiver under the lock, so a concurrent subscribe cannot see a channel about to
        // be removed.
        self.rx.take();
        if topics.get(&self.key).is_some_and(|tx| tx.receiver_count() == 0) {
            topics.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fans_out_and_forgets_empty_topics() {
        let hub = Hub::new();
        let mut a = hub.subscribe("t".into(), 4);
        let mut b = hub.subscribe("t".into(), 4);
        hub.dispatch("t", Arc::new(Event::Message { id: 1 }));
        hub.dispatch("other", Arc::new(Event::Message { id: 2 }));
        for sub in [&mut a, &mut b] {
            match sub.recv().await {
                Received::Event(e) => assert_eq!(*e, Event::Message { id: 1 }),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(hub.topic_count(), 1);
        drop(a);
        assert_eq!(hub.topic_count(), 1);
        drop(b);
        assert_eq!(hub.topic_count(), 0);
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_told_how_much_it_lost() {
        let hub = Hub::new();
        let mut sub = hub.subscribe("t".into(), 2);
        for id in 1..=5 {
            hub.dispatch("t", Arc::new(Event::Message { id }));
        }
        assert!(matches!(sub.recv().await, Received::Lagged(3)));
        assert!(matches!(sub.recv().await, Received::Event(e) if *e == Event::Message { id: 4 }));
    }
}
