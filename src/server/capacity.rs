//! What one instance has room for: connections (in all, and per client address), WebSockets per
//! client address, and requests being worked on. Each is a counter taken with a permit and given back
//! when the permit drops, so a task that ends any way at all (finished, aborted, panicked) frees its
//! place.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::config::Config;
use crate::metrics::{GaugeGuard, METRICS};

/// How long /readyz keeps reporting overload after the last shed request. Long enough for a balancer
/// polling every few seconds to see it; short enough that an instance returns to rotation soon after
/// the burst ends.
pub const OVERLOAD_REPORT_WINDOW: Duration = Duration::from_secs(5);

/// The address per-address caps count by.
///
/// Connections count by the TCP peer (a trusted proxy's are not capped per address); WebSockets by
/// the client's address, which behind a trusted proxy is the one it forwards (`server::proxies`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    /// An IPv4 address as is; an IPv6 address by its /64, because one subscriber usually holds a
    /// whole /64 and could otherwise open every connection from a fresh address.
    pub fn of(peer: IpAddr) -> ClientKey {
        match peer {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => ClientKey(IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1)))),
            },
        }
    }
}

/// Counts per client address, up to `max` each (0: no cap).
struct PerAddress {
    max: usize,
    counts: Mutex<HashMap<ClientKey, usize>>,
}

impl PerAddress {
    fn new(max: usize) -> Arc<PerAddress> {
        Arc::new(PerAddress { max, counts: Mutex::new(HashMap::new()) })
    }

    fn try_take(self: &Arc<Self>, key: ClientKey) -> Option<AddressPermit> {
        if self.max == 0 {
            return Some(AddressPermit(None));
        }
        // A std Mutex, not a tokio one: it is held for one map update and never across an await.
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = counts.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressPermit(Some((self.clone(), key))))
    }
}

/// One place in a per-address count.
pub struct AddressPermit(Option<(Arc<PerAddress>, ClientKey)>);

impl Drop for AddressPermit {
    fn drop(&mut self) {
        let Some((owner, key)) = self.0.take() else { return };
        let mut counts = owner.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = counts.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                // Addresses come and go: the map holds only those with open connections.
                counts.remove(&key);
            }
        }
    }
}

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The instance holds MAX_CONNECTIONS.
    Instance,
    /// The client address holds MAX_CONNECTIONS_PER_IP.
    Address,
}

/// A connection's place in the instance and address counts, held by the socket itself (see
/// `server::Tracked`), so a connection upgraded to a WebSocket keeps it for as long as it is open.
pub struct ConnectionPermit {
    _instance: OwnedSemaphorePermit,
    _address: Option<AddressPermit>,
    _gauge: GaugeGuard,
}

/// A request's place among those being worked on, given back when dropped (`None`: shedding is off).
pub struct WorkPermit(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

pub struct Capacity {
    connections: Arc<Semaphore>,
    max_connections: usize,
    per_address: Arc<PerAddress>,
    websockets: Arc<PerAddress>,
    /// `None` when shedding is off.
    work: Option<Arc<Semaphore>>,
    started: Instant,
    /// Milliseconds after `started` of the last shed request, plus one (0: never).
    last_shed: AtomicU64,
}

impl Capacity {
    pub fn new(config: &Config) -> Capacity {
        Capacity {
            connections: Arc::new(Semaphore::new(config.max_connections.min(Semaphore::MAX_PERMITS))),
            max_connections: config.max_connections,
            per_address: PerAddress::new(config.max_connections_per_ip),
            websockets: PerAddress::new(config.max_websockets_per_ip),
            work: (config.max_requests_in_flight > 0)
                .then(|| Arc::new(Semaphore::new(config.max_requests_in_flight.min(Semaphore::MAX_PERMITS)))),
            started: Instant::now(),
            last_shed: AtomicU64::new(0),
        }
    }

    /// A place for a new connection from `peer`, or which cap it hit.
    /// `per_address: false` for a trusted proxy's connection, which carries many clients.
    pub fn admit_connection(&self, peer: IpAddr, per_address: bool) -> Result<ConnectionPermit, Full> {
        let instance = self.connections.clone().try_acquire_owned().map_err(|_| Full::Instance)?;
        let address = match per_address {
            true => Some(self.per_address.try_take(ClientKey::of(peer)).ok_or(Full::Address)?),
            false => None,
        };
        Ok(ConnectionPermit { _instance: instance, _address: address, _gauge: GaugeGuard::new(&METRICS.connections) })
    }

    /// A place for one more WebSocket from `peer`; `None` at MAX_WEBSOCKETS_PER_IP.
    pub fn admit_websocket(&self, peer: IpAddr) -> Option<AddressPermit> {
        let permit = self.websockets.try_take(ClientKey::of(peer));
        if permit.is_none() {
            METRICS.connections_refused.with_label_values(&["websocket"]).inc();
        }
        permit
    }

    /// A work slot, or `None` when every slot is taken (the caller sheds the request).
    pub fn admit_work(&self) -> Option<WorkPermit> {
        let Some(work) = &self.work else { return Some(WorkPermit(None)) };
        match work.clone().try_acquire_owned() {
            Ok(permit) => Some(WorkPermit(Some(permit))),
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => {
                let now = self.started.elapsed().as_millis() as u64 + 1;
                self.last_shed.store(now, Ordering::Relaxed);
                METRICS.requests_shed.inc();
                None
            }
        }
    }

    /// Why this instance should be taken out of rotation for now, if it should: /readyz says it.
    pub fn overload(&self) -> Option<&'static str> {
        let last = self.last_shed.load(Ordering::Relaxed);
        if last > 0 {
            let since = self.started.elapsed().saturating_sub(Duration::from_millis(last - 1));
            if since < OVERLOAD_REPORT_WINDOW {
                return Some("overloaded: requests were shed in the last seconds");
            }
        }
        if self.work.as_ref().is_some_and(|w| w.available_permits() == 0) {
            return Some("overloaded: every request slot is busy");
        }
        // The probe itself holds one connection: report when no other would get in.
        if self.connections.available_permits() == 0 {
            return Some("overloaded: at MAX_CONNECTIONS");
        }
        None
    }

    pub fn max_connections(&self) -> usize {
        self.max_connections
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(tweak: impl FnOnce(&mut Config)) -> Config {
        let mut c = Config::defaults();
        tweak(&mut c);
        c
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_v4_as_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ClientKey::of(a), ClientKey::of(b));
        assert_ne!(ClientKey::of(a), ClientKey::of(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(ClientKey::of(mapped), ClientKey::of("192.0.2.7".parse().unwrap()));
    }

    #[test]
    fn caps_hold_and_dropped_permits_give_their_place_back() {
        let cap = Capacity::new(&config(|c| {
            c.max_connections = 3;
            c.max_connections_per_ip = 2;
        }));
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let two: IpAddr = "192.0.2.2".parse().unwrap();
        let a = cap.admit_connection(one, true).unwrap();
        let _b = cap.admit_connection(one, true).unwrap();
        assert_eq!(cap.admit_connection(one, true).err(), Some(Full::Address));
        let _c = cap.admit_connection(two, true).unwrap();
        assert_eq!(cap.admit_connection(two, true).err(), Some(Full::Instance));
        drop(a);
        assert!(cap.admit_connection(one, true).is_ok());
        assert!(cap.per_address.counts.lock().unwrap().len() <= 2);
    }

    #[test]
    fn a_trusted_proxy_is_capped_by_the_instance_only() {
        let cap = Capacity::new(&config(|c| {
            c.max_connections = 3;
            c.max_connections_per_ip = 1;
        }));
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| cap.admit_connection(proxy, false).unwrap()).collect();
        assert_eq!(cap.admit_connection(proxy, false).err(), Some(Full::Instance));
        drop(held);
        let _one = cap.admit_connection(proxy, true).unwrap();
        assert_eq!(cap.admit_connection(proxy, true).err(), Some(Full::Address));
    }

    #[test]
    fn shedding_reports_overload_and_zero_switches_it_off() {
        let cap = Capacity::new(&config(|c| c.max_requests_in_flight = 1));
        assert!(cap.overload().is_none());
        let held = cap.admit_work().unwrap();
        assert!(cap.overload().is_some(), "every slot busy");
        assert!(cap.admit_work().is_none());
        drop(held);
        assert!(cap.overload().is_some(), "recently shed");
        let off = Capacity::new(&config(|c| c.max_requests_in_flight = 0));
        let _many: Vec<_> = (0..1000).map(|_| off.admit_work().unwrap()).collect();
        assert!(off.overload().is_none());
    }
}
