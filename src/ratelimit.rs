//! Rate limits: token buckets keyed by user (signed in) or IP address (signed out), shared by every
//! instance through Redis when it is configured, else kept in process.
//!
//! A bucket holds up to `burst` tokens and refills at `per_minute / 60` tokens a second; each request
//! takes one. Redis buckets are updated by one Lua script (atomic, and on Redis's clock, so instance
//! clocks do not matter). A Redis that does not answer lets requests through: limits protect the
//! service, and refusing everyone because Redis is down would be the outage they are meant to prevent.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::AppError;

/// What is being limited; each has its own buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Every GraphQL operation (HTTP requests, WebSocket operations).
    Requests,
    /// `register` and `login`, per IP: stops password guessing and mass sign-ups.
    Auth,
    /// `sendMessage`, per user: stops private-message spam.
    Messages,
    /// `sendLiveChatMessage`, per user.
    Chat,
    /// `reportContent`, per user: reports cost a moderator's time.
    Reports,
    /// Every GraphQL operation a third-party app sends for a member: a bucket per app and member,
    /// apart from the member's own (an app cannot spend the member's allowance, nor they its).
    AppRequests,
}

impl Limit {
    pub fn name(self) -> &'static str {
        match self {
            Limit::Requests => "requests",
            Limit::Auth => "auth",
            Limit::Messages => "messages",
            Limit::Chat => "chat",
            Limit::Reports => "reports",
            Limit::AppRequests => "app_requests",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Rule {
    burst: f64,
    per_second: f64,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

enum Backend {
    Local(Mutex<HashMap<(Limit, String), Bucket>>),
    Redis { conn: redis::aio::ConnectionManager, prefix: String, script: redis::Script },
}

pub struct RateLimiter {
    rules: HashMap<Limit, Rule>,
    backend: Backend,
}

/// Takes one token; returns `{allowed, retry_after_ms}`. Time is Redis's own.
const SCRIPT: &str = r"
local burst = tonumber(ARGV[1])
local per_ms = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * per_ms)
local allowed = 0
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = math.ceil((1 - tokens) / per_ms)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / per_ms) + 1000)
return {allowed, retry}
";

/// Past this many local buckets, full ones (idle clients) are forgotten.
const LOCAL_BUCKETS: usize = 100_000;

impl RateLimiter {
    pub fn new(config: &Config, redis: Option<redis::aio::ConnectionManager>) -> RateLimiter {
        let rule =
            |per_minute: u32, burst: u32| Rule { burst: f64::from(burst), per_second: f64::from(per_minute) / 60.0 };
        let rules = HashMap::from([
            (Limit::Requests, rule(config.rate_limit_requests_per_minute, config.rate_limit_requests_burst)),
            (
                Limit::AppRequests,
                rule(config.rate_limit_app_requests_per_minute, config.rate_limit_app_requests_per_minute.max(1)),
            ),
            (Limit::Auth, rule(config.rate_limit_auth_per_minute, config.rate_limit_auth_per_minute.max(1))),
            (
                Limit::Messages,
                rule(config.rate_limit_messages_per_minute, config.rate_limit_messages_per_minute.max(1)),
            ),
            (Limit::Chat, rule(config.rate_limit_chat_per_minute, config.rate_limit_chat_per_minute.max(1))),
            // An hour's allowance may be spent at once, then refills evenly.
            (
                Limit::Reports,
                Rule {
                    burst: f64::from(config.rate_limit_reports_per_hour.max(1)),
                    per_second: f64::from(config.rate_limit_reports_per_hour) / 3600.0,
                },
            ),
        ]);
        let backend = match redis {
            Some(conn) => Backend::Redis {
                conn,
                prefix: format!("{}:rl:", config.redis_prefix),
                script: redis::Script::new(SCRIPT),
            },
            None => Backend::Local(Mutex::new(HashMap::new())),
        };
        RateLimiter { rules, backend }
    }

    /// Takes a token from `key`'s bucket for `limit`, or says how long to wait.
    pub async fn check(&self, limit: Limit, key: &str) -> Result<(), AppError> {
        let Some(rule) = self.rules.get(&limit).copied() else { return Ok(()) };
        if rule.per_second <= 0.0 {
            // A limit of 0 per minute switches the limit off.
            return Ok(());
        }
        let retry = match &self.backend {
            Backend::Local(buckets) => local_take(buckets, rule, (limit, key.to_string())),
            Backend::Redis { conn, prefix, script } => {
                let mut conn = conn.clone();
                let mut call = script.key(format!("{prefix}{}:{key}", limit.name()));
                call.arg(rule.burst).arg(rule.per_second / 1000.0);
                match tokio::time::timeout(Duration::from_millis(300), call.invoke_async::<(i64, i64)>(&mut conn)).await
                {
                    Ok(Ok((1, _))) => None,
                    Ok(Ok((_, retry_ms))) => Some(Duration::from_millis(retry_ms.max(0) as u64)),
                    Ok(Err(err)) => {
                        tracing::warn!(%err, "rate limiter: redis failed; letting the request through");
                        None
                    }
                    Err(_) => {
                        tracing::warn!("rate limiter: redis timed out; letting the request through");
                        None
                    }
                }
            }
        };
        match retry {
            None => Ok(()),
            Some(wait) => {
                crate::metrics::METRICS.rate_limited.with_label_values(&[limit.name()]).inc();
                Err(AppError::RateLimited { retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64 })
            }
        }
    }
}

fn local_take(buckets: &Mutex<HashMap<(Limit, String), Bucket>>, rule: Rule, key: (Limit, String)) -> Option<Duration> {
    let now = Instant::now();
    // A std mutex: held for a few arithmetic operations, never across an await.
    let mut buckets = buckets.lock().unwrap_or_else(|p| p.into_inner());
    if buckets.len() > LOCAL_BUCKETS {
        buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rule.per_second < rule.burst);
    }
    let bucket = buckets.entry(key).or_insert(Bucket { tokens: rule.burst, at: now });
    bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rule.per_second).min(rule.burst);
    bucket.at = now;
    if bucket.tokens >= 1.0 {
        bucket.tokens -= 1.0;
        None
    } else {
        Some(Duration::from_secs_f64((1.0 - bucket.tokens) / rule.per_second))
    }
}

/// The bucket of the operation limit (`request_limit`): a third-party app's operations for a member
/// have their own, apart from the member's. Every other limit (messages, chat, reports) is the
/// member's alone whoever sends for them ([`key_for`]), so tokens of several apps never multiply it.
pub fn request_key_for(viewer: Option<&crate::auth::Viewer>, ip: Option<&str>) -> String {
    match viewer {
        Some(crate::auth::Viewer { user_id, app: Some(app), .. }) => format!("a:{}:u:{user_id}", app.app_id),
        _ => key_for(viewer, ip),
    }
}

/// The limit every operation of `viewer` counts against.
pub fn request_limit(viewer: Option<&crate::auth::Viewer>) -> Limit {
    match viewer {
        Some(v) if v.app.is_some() => Limit::AppRequests,
        _ => Limit::Requests,
    }
}

/// The bucket key of a request: the user when signed in, else the IP address.
pub fn key_for(viewer: Option<&crate::auth::Viewer>, ip: Option<&str>) -> String {
    match (viewer, ip) {
        (Some(v), _) => format!("u:{}", v.user_id),
        (None, Some(ip)) => format!("ip:{ip}"),
        (None, None) => "ip:unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bucket_allows_its_burst_then_refuses_with_a_wait() {
        let mut config = Config::defaults();
        config.rate_limit_auth_per_minute = 3;
        let limiter = RateLimiter::new(&config, None);
        for _ in 0..3 {
            assert!(limiter.check(Limit::Auth, "ip:1").await.is_ok());
        }
        match limiter.check(Limit::Auth, "ip:1").await {
            Err(AppError::RateLimited { retry_after_secs }) => assert!((1..=20).contains(&retry_after_secs)),
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Other keys and other limits have their own buckets.
        assert!(limiter.check(Limit::Auth, "ip:2").await.is_ok());
        assert!(limiter.check(Limit::Requests, "ip:1").await.is_ok());
    }
}
