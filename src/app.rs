//! The application: shared state and the axum router.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::db::{self, DbStats};
use crate::graphql::{self, AppSchema};
use crate::http;

/// Everything a handler needs; cheap to clone (all shared pointers).
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub schema: AppSchema,
    pub config: Arc<Config>,
    pub db_stats: Arc<DbStats>,
    /// Present when `REDIS_URL` is set: the shared broker of a multi-instance deployment.
    pub redis: Option<redis::aio::ConnectionManager>,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

impl AppState {
    /// Connects to the database (applying migrations) and, when configured, to Redis, then builds the
    /// schema. An unreachable dependency stops start-up with a message naming it.
    pub async fn new(config: Config) -> Result<AppState, StartError> {
        let config = Arc::new(config);
        let (db, db_stats) = db::connect(&config).await?;
        let redis = match &config.redis_url {
            Some(url) => {
                let client = redis::Client::open(url.as_str())?;
                let mut conn =
                    tokio::time::timeout(std::time::Duration::from_secs(10), client.get_connection_manager())
                        .await
                        .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connection timed out")))??;
                redis::cmd("PING").query_async::<String>(&mut conn).await?;
                Some(conn)
            }
            None => None,
        };
        let schema = graphql::build_schema(db.clone(), config.clone());
        Ok(AppState { db, schema, config, db_stats, redis })
    }
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.config.max_body_bytes;
    Router::new()
        .route("/", get(http::graphiql::index))
        .route("/graphiql/{file}", get(http::graphiql::asset))
        .route("/graphql", get(http::graphql::get).post(http::graphql::post))
        .route("/healthz", get(http::health::healthz))
        .route("/readyz", get(http::health::readyz))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
