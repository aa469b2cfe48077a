//! A circuit breaker in front of the database, so an outage costs each request milliseconds instead
//! of a pool wait.
//!
//! - **Closed**: requests use the database. A request that fails in a way an outage would explain
//!   (a connection refused or reset, the pool wait or the operation's time running out) makes the
//!   breaker *suspect* the database: one check at a time opens a connection of its own, outside the
//!   pool, and pings. Only a failed check counts; `DATABASE_BREAKER_FAILURES` of them in a row, with
//!   no success between, open the breaker. A busy pool on a healthy database therefore never opens
//!   it: the check gets through, and overload stays the business of load shedding.
//! - **Open**: requests that need the database are answered `SERVICE_UNAVAILABLE` (503,
//!   `Retry-After`) at once; requests that need none (`__typename`, introspection) still run.
//! - **Half-open**: once the cool-down has passed, the next request that asks starts one probe (the
//!   same independent check) in the background and is itself refused. The probe's success closes the
//!   breaker; its failure opens it again for a cool-down twice as long, up to [`MAX_COOLDOWN`].
//!
//! Probes are checks rather than a lucky request, so recovery does not depend on what clients happen
//! to send, and `/readyz` polls alone bring an idle instance back.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;

/// The longest an open breaker waits before probing again.
pub const MAX_COOLDOWN: Duration = Duration::from_secs(10);

/// How long a probe's ping may take before it counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Open { until: Instant, cooldown: Duration },
}

#[derive(Debug)]
pub struct Breaker {
    state: Mutex<State>,
    /// Failed checks since the last success.
    failures: AtomicU32,
    failures_to_open: u32,
    cooldown: Duration,
    /// A half-open probe is running.
    probing: AtomicBool,
    /// A check started by a suspicious failure is running.
    checking: AtomicBool,
    /// Where the independent check connects (PostgreSQL); `None` checks through the pool (SQLite,
    /// which is a file in this process and has no outage of its own).
    url: Option<String>,
}

/// Why a request may not use the database now, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable {
    pub retry_after: Duration,
}

impl Unavailable {
    /// Whole seconds for `Retry-After`, at least one.
    pub fn retry_after_secs(self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

impl Breaker {
    pub fn new(failures_to_open: u32, cooldown: Duration, url: Option<String>) -> Breaker {
        Breaker {
            state: Mutex::new(State::Closed),
            failures: AtomicU32::new(0),
            failures_to_open: failures_to_open.max(1),
            cooldown: cooldown.min(MAX_COOLDOWN),
            probing: AtomicBool::new(false),
            checking: AtomicBool::new(false),
            url,
        }
    }

    /// Whether the database answers a new connection of its own (PostgreSQL) or a ping through the
    /// pool (SQLite), within [`PROBE_TIMEOUT`].
    async fn check(&self, db: &DatabaseConnection) -> bool {
        let answer = async {
            match &self.url {
                Some(url) => {
                    let mut opts = sea_orm::ConnectOptions::new(url.as_str());
                    opts.max_connections(1)
                        .min_connections(0)
                        .connect_timeout(PROBE_TIMEOUT)
                        .acquire_timeout(PROBE_TIMEOUT)
                        .sqlx_logging(false);
                    let own = sea_orm::Database::connect(opts).await?;
                    let pinged = own.ping().await;
                    let _ = own.close().await;
                    pinged
                }
                None => db.ping().await,
            }
        };
        matches!(tokio::time::timeout(PROBE_TIMEOUT, answer).await, Ok(Ok(())))
    }

    /// A request failed in a way an outage would explain: check the database (one check at a time,
    /// in the background) and count a failure only if the check fails too.
    pub fn suspect(self: &Arc<Self>, db: &DatabaseConnection) {
        if self.is_open() || self.checking.swap(true, Ordering::AcqRel) {
            return;
        }
        let (this, db) = (self.clone(), db.clone());
        // Bounded by PROBE_TIMEOUT, so the clones it holds are soon released.
        tokio::spawn(async move {
            if this.check(&db).await {
                this.on_success();
            } else {
                this.on_failure();
            }
            this.checking.store(false, Ordering::Release);
        });
    }

    fn state(&self) -> State {
        // Held for a copy, never across an await; a poisoned lock still holds a valid state.
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, state: State) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }

    pub fn is_open(&self) -> bool {
        matches!(self.state(), State::Open { .. })
    }

    /// Whether a request may use the database now. When the cool-down has passed, starts the probe
    /// (on `db`) and still refuses: the probe decides.
    pub fn admit(self: &Arc<Self>, db: &DatabaseConnection) -> Result<(), Unavailable> {
        let State::Open { until, cooldown } = self.state() else { return Ok(()) };
        let now = Instant::now();
        if now >= until && !self.probing.swap(true, Ordering::AcqRel) {
            let (this, db) = (self.clone(), db.clone());
            // Bounded by PROBE_TIMEOUT, so the clones it holds are soon released.
            tokio::spawn(async move {
                let up = this.check(&db).await;
                this.probed(up, cooldown);
            });
        }
        // While a probe runs, `until` has passed: ask for the shortest wait.
        Err(Unavailable { retry_after: until.saturating_duration_since(now).max(Duration::from_secs(1)) })
    }

    fn probed(&self, up: bool, cooldown: Duration) {
        if up {
            self.failures.store(0, Ordering::Relaxed);
            self.set(State::Closed);
            tracing::warn!("database answers again: circuit closed");
        } else {
            let cooldown = (cooldown * 2).min(MAX_COOLDOWN);
            self.set(State::Open { until: Instant::now() + cooldown, cooldown });
        }
        self.probing.store(false, Ordering::Release);
    }

    /// A statement ran: the database answers.
    pub fn on_success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }

    /// The database could not be reached (a failed check).
    fn on_failure(&self) {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        if failures >= self.failures_to_open && !self.is_open() {
            tracing::error!(failures, "database unreachable: circuit open, requests that need it answer 503");
            self.set(State::Open { until: Instant::now() + self.cooldown, cooldown: self.cooldown });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sqlite() -> DatabaseConnection {
        sea_orm::Database::connect("sqlite::memory:").await.unwrap()
    }

    async fn settle(breaker: &Breaker) {
        for _ in 0..100 {
            if !breaker.checking.load(Ordering::Acquire) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn opens_after_consecutive_failures_and_a_successful_probe_closes_it() {
        let db = sqlite().await;
        let breaker = Arc::new(Breaker::new(3, Duration::from_millis(50), None));
        breaker.on_failure();
        breaker.on_failure();
        breaker.on_success();
        breaker.on_failure();
        breaker.on_failure();
        assert!(breaker.admit(&db).is_ok(), "a success between failures starts the count again");
        // A suspicion on a database that answers counts nothing.
        breaker.suspect(&db);
        settle(&breaker).await;
        assert!(breaker.admit(&db).is_ok());
        assert_eq!(breaker.failures.load(Ordering::Relaxed), 0, "the check's success reset the count");
        breaker.on_failure();
        breaker.on_failure();
        breaker.on_failure();
        let refused = breaker.admit(&db).unwrap_err();
        assert_eq!(refused.retry_after_secs(), 1);
        tokio::time::sleep(Duration::from_millis(60)).await;
        // The cool-down has passed: this caller starts the probe and is still refused.
        assert!(breaker.admit(&db).is_err());
        for _ in 0..100 {
            if !breaker.is_open() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(breaker.admit(&db).is_ok(), "the database answered the probe");
    }

    #[tokio::test]
    async fn a_failed_probe_opens_it_again_for_longer() {
        let db = sqlite().await;
        let down = sqlite().await;
        down.clone().close().await.unwrap();
        let breaker = Arc::new(Breaker::new(1, Duration::from_millis(20), None));
        // A suspicion that the check confirms opens it.
        breaker.suspect(&down);
        settle(&breaker).await;
        assert!(breaker.is_open());
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(breaker.admit(&down).is_err());
        for _ in 0..100 {
            if !breaker.probing.load(Ordering::Acquire) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        match breaker.state() {
            State::Open { cooldown, .. } => assert_eq!(cooldown, Duration::from_millis(40)),
            State::Closed => panic!("a failed probe closed the breaker"),
        }
        assert!(breaker.admit(&db).is_err());
    }
}
