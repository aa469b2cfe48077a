//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: its dependencies answer).

use axum::extract::State;
use axum::http::StatusCode;

use crate::app::AppState;

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(app): State<AppState>) -> (StatusCode, &'static str) {
    if let Err(err) = app.db.ping().await {
        tracing::warn!(error = %err, "readiness check: database unreachable");
        return (StatusCode::SERVICE_UNAVAILABLE, "database unreachable");
    }
    if let Some(mut redis) = app.redis.clone()
        && let Err(err) = redis::cmd("PING").query_async::<String>(&mut redis).await
    {
        tracing::warn!(error = %err, "readiness check: redis unreachable");
        return (StatusCode::SERVICE_UNAVAILABLE, "redis unreachable");
    }
    if !app.broker.is_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, "broker subscription down");
    }
    (StatusCode::OK, "ready")
}
