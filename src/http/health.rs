//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: it has room for work and its
//! dependencies answer). Neither is shed under load, so a balancer can always ask.

use axum::extract::State;
use axum::http::StatusCode;

use crate::app::AppState;

pub async fn healthz() -> &'static str {
    "ok"
}

/// How long the database may take to answer the readiness ping: an overloaded pool would otherwise
/// keep the probe waiting for a connection until the balancer's own timeout.
const DB_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

pub async fn readyz(State(app): State<AppState>) -> (StatusCode, &'static str) {
    // First, and without touching the database: an overloaded instance answers at once.
    if let Some(why) = app.capacity.overload() {
        return (StatusCode::SERVICE_UNAVAILABLE, why);
    }
    // Known to be down: say so at once (asking also starts the breaker's probe when one is due, so
    // probes alone bring an idle instance back).
    let breaker = &app.db_stats.breaker;
    if breaker.admit(&app.db).is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "database unreachable (circuit open)");
    }
    match tokio::time::timeout(DB_PING_TIMEOUT, app.db.ping()).await {
        Ok(Ok(())) => breaker.on_success(),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness check: database unreachable");
            breaker.suspect(&app.db);
            return (StatusCode::SERVICE_UNAVAILABLE, "database unreachable");
        }
        Err(_) => {
            tracing::warn!("readiness check: database ping timed out");
            breaker.suspect(&app.db);
            return (StatusCode::SERVICE_UNAVAILABLE, "database slow");
        }
    }
    if let Some(mut redis) = app.redis.clone() {
        // The connection manager keeps reconnecting to a dead Redis: bound the wait like the ping.
        match tokio::time::timeout(DB_PING_TIMEOUT, redis::cmd("PING").query_async::<String>(&mut redis)).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "readiness check: redis unreachable");
                return (StatusCode::SERVICE_UNAVAILABLE, "redis unreachable");
            }
            Err(_) => {
                tracing::warn!("readiness check: redis ping timed out");
                return (StatusCode::SERVICE_UNAVAILABLE, "redis unreachable (ping timed out)");
            }
        }
    }
    if !app.broker.is_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, "broker subscription down");
    }
    (StatusCode::OK, "ready")
}
