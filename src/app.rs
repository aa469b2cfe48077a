//! The application: shared state and the axum router.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::get;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::config::Config;
use crate::db::{self, DbStats};
use crate::graphql::{self, AppSchema};
use crate::http;
use crate::http::documents::Documents;
use crate::media::MediaStore;
use crate::pubsub::Broker;
use crate::pubsub::presence::Presence;
use crate::ratelimit::RateLimiter;
use crate::server;
use crate::server::Capacity;
use crate::services::activity::Activity;

const REDIS_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Everything a handler needs; cheap to clone (all shared pointers).
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub schema: AppSchema,
    /// The same schema without extensions, for HTTP queries (`graphql::lean`).
    pub query_schema: AppSchema,
    /// The full schema plus the scope check, for third-party apps' tokens (`graphql::scopes`).
    pub app_schema: AppSchema,
    pub config: Arc<Config>,
    pub db_stats: Arc<DbStats>,
    /// Present when `REDIS_URL` is set: the shared broker of a multi-instance deployment.
    pub redis: Option<redis::aio::ConnectionManager>,
    pub broker: Broker,
    pub presence: Presence,
    pub documents: Arc<Documents>,
    pub limiter: Arc<RateLimiter>,
    pub media: MediaStore,
    pub activity: Activity,
    /// The SMS provider; with `log`, tests read the codes it sent from here (`sms.last_code`).
    pub sms: crate::sms::Sms,
    /// Anonymous query answers kept in memory; `None` when `RESPONSE_CACHE_TTL_MS` is 0.
    pub response_cache: Option<Arc<crate::response_cache::ResponseCache>>,
    /// Entities queries read, kept between requests (`None` when turned off).
    pub entities: Option<Arc<crate::entity_cache::EntityCache>>,
    /// The in-memory search index (`services::search::resident`).
    pub search: Arc<crate::services::search::Resident>,
    /// Web Push to offline devices (`services::push`).
    pub push: Arc<crate::services::push::Push>,
    /// Connections, WebSockets and requests in flight this instance has room for.
    pub capacity: Arc<Capacity>,
    /// Subscriptions executed once for all the sockets subscribed to them (`http::shared_feed`).
    pub shared_feeds: Arc<crate::http::shared_feed::SharedFeeds>,
    /// This instance's private streams waiting for an event with no execution held.
    pub private_streams: Arc<crate::http::private_stream::Waiting>,
    /// Flips to true when the gateway shuts down: open WebSockets tell their clients to reconnect.
    pub shutting_down: tokio::sync::watch::Receiver<bool>,
    shutdown_tx: Arc<tokio::sync::watch::Sender<bool>>,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("{0}")]
    Config(String),
}

impl AppState {
    /// The schema an operation for `viewer` runs on: a third-party app's token gets the one that
    /// checks its scopes on every field.
    pub fn schema_for(&self, viewer: Option<&crate::auth::Viewer>) -> &AppSchema {
        match viewer {
            Some(v) if v.app.is_some() => &self.app_schema,
            _ => &self.schema,
        }
    }

    /// Connects to the database (applying migrations) and, when configured, to Redis, then builds the
    /// schema. An unreachable dependency stops start-up with a message naming it.
    pub async fn new(config: Config) -> Result<AppState, StartError> {
        let config = Arc::new(config);
        let (db, db_stats) = db::connect(&config).await?;
        let (redis, broker, presence) = match &config.redis_url {
            Some(url) => {
                let client = redis::Client::open(url.as_str())?;
                let timed_out = || redis::RedisError::from((redis::ErrorKind::Io, "connection timed out"));
                let mut conn = tokio::time::timeout(REDIS_CONNECT_TIMEOUT, client.get_connection_manager())
                    .await
                    .map_err(|_| timed_out())??;
                redis::cmd("PING").query_async::<String>(&mut conn).await?;
                let broker = tokio::time::timeout(
                    REDIS_CONNECT_TIMEOUT,
                    Broker::redis(client, conn.clone(), &config.redis_prefix, config.broker_buffer),
                )
                .await
                .map_err(|_| timed_out())??;
                let presence = Presence::redis(conn.clone(), &config.redis_prefix);
                (Some(conn), broker, presence)
            }
            None => (None, Broker::in_process(config.broker_buffer), Presence::in_process()),
        };
        let documents = Arc::new(Documents::new(&config, redis.clone()).map_err(StartError::Config)?);
        let limiter = Arc::new(RateLimiter::new(&config, redis.clone()));
        let sealer = crate::media::load_sealer(&config).map_err(StartError::Config)?;
        let visitor_salt = sealer.derive("ecer visitor counts v1");
        let location = crate::media::Location::from_config(&config).map_err(StartError::Config)?;
        let media = MediaStore::open(&location, Arc::new(sealer), config.max_unsealed_mib)
            .map_err(|e| StartError::Config(format!("media storage: {e}")))?;
        let activity = Activity::spawn(db.clone(), config.request_log, visitor_salt);
        crate::services::retention::spawn(
            db.clone(),
            media.clone(),
            crate::services::retention::Periods::from_config(&config),
        );
        crate::services::thumbnails::spawn(db.clone(), media.clone());
        let sms = crate::sms::Sms::from_config(&config).map_err(StartError::Config)?;
        crate::services::sms_outbox::spawn(
            db.clone(),
            media.clone(),
            sms.clone(),
            std::time::Duration::from_millis(config.sms_outbox_poll_ms),
            chrono::Duration::milliseconds(i64::try_from(config.sms_retry_base_ms.min(60_000)).unwrap_or(60_000)),
        );
        let push = Arc::new(
            crate::services::push::Push::from_config(
                &config,
                media.sealer(),
                redis.clone().map(|r| (r, config.redis_prefix.as_str())),
            )
            .map_err(StartError::Config)?,
        );
        crate::services::push::spawn(
            db.clone(),
            push.clone(),
            std::time::Duration::from_millis(config.push_poll_ms.max(10)),
        );
        let mailer = crate::mail::Mailer::from_config(&config).map_err(StartError::Config)?;
        crate::services::email_outbox::spawn(
            db.clone(),
            media.clone(),
            mailer.clone(),
            std::time::Duration::from_millis(config.email_outbox_poll_ms),
            crate::services::email::Settings::from_config(&config).retry_base,
        );
        let epoch = Arc::new(crate::response_cache::Epoch::new(redis.clone(), &config.redis_prefix));
        let response_cache = crate::response_cache::ResponseCache::new(
            config.response_cache_ttl_ms,
            config.response_cache_mib,
            epoch.clone(),
            redis.clone().map(|r| crate::response_cache::SharedTier::new(r, &config.redis_prefix)),
        )
        .map(Arc::new);
        let entities = crate::entity_cache::EntityCache::new(
            config.entity_cache_ttl_ms,
            config.entity_cache_entries,
            epoch.clone(),
        )
        .map(Arc::new);
        let search = Arc::new(crate::services::search::Resident::new(config.search_index_in_memory));
        search.spawn(db.clone(), std::time::Duration::from_millis(config.search_index_follow_ms.max(10)));
        let gql_state = graphql::GqlState {
            db: db.clone(),
            config: config.clone(),
            broker: broker.clone(),
            presence: presence.clone(),
            limiter: limiter.clone(),
            media: media.clone(),
            activity: activity.clone(),
            sms: sms.clone(),
            mailer,
            epoch,
            search: search.clone(),
            push: push.clone(),
        };
        let query_schema = graphql::build_lean_schema(gql_state.clone());
        let app_schema = graphql::build_app_schema(gql_state.clone());
        let schema = graphql::build_schema(gql_state);
        // One request through the extensions hands `graphql::lean` the schema's registry.
        schema.execute("{ __typename }").await;
        let (shutdown_tx, shutting_down) = tokio::sync::watch::channel(false);
        let capacity = Arc::new(Capacity::new(&config));
        Ok(AppState {
            db,
            schema,
            query_schema,
            app_schema,
            config,
            db_stats,
            redis,
            broker,
            presence,
            documents,
            limiter,
            media,
            activity,
            sms,
            response_cache,
            entities,
            search,
            push,
            capacity,
            shared_feeds: Default::default(),
            private_streams: Default::default(),
            shutting_down,
            shutdown_tx: Arc::new(shutdown_tx),
        })
    }

    /// Tells every open WebSocket of this instance to close with "going away", so clients reconnect
    /// (to another instance) and resume their subscriptions from their cursors.
    pub fn begin_shutdown(&self) {
        let _ = self.shutdown_tx.send(true);
    }
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.config.max_body_bytes;
    let mut router = Router::new();
    if state.config.graphiql {
        router = router.route("/", get(http::graphiql::index)).route("/graphiql/{file}", get(http::graphiql::asset));
    }
    // The routes that do work are shed under overload; probes and metrics stay answerable.
    let work = Router::new()
        .route("/graphql", get(http::ws::get_or_upgrade).post(http::graphql::post))
        .route("/media/{id}", get(http::media::public))
        .route("/media/{id}/thumbnail", get(http::media::thumbnail))
        .route("/media/{id}/poster", get(http::media::poster))
        .route("/media/private/{id}", get(http::media::private))
        .route("/media/messages/{id}", get(http::media::message))
        .route("/media/exports/{id}", get(http::media::export))
        .merge(
            // OAuth 2.1 (issue 16). Forms and token requests are small: 16 KiB is plenty.
            Router::new()
                .route("/oauth/authorize", get(http::oauth::authorize).post(http::oauth::decide))
                .route("/oauth/sign-in", axum::routing::post(http::oauth::sign_in))
                .route("/oauth/token", axum::routing::post(http::oauth::token))
                .route("/oauth/revoke", axum::routing::post(http::oauth::revoke))
                .route("/.well-known/oauth-authorization-server", get(http::oauth::metadata))
                .layer(DefaultBodyLimit::max(16 * 1024)),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), server::admission::shed));
    if state.config.dev_routes() {
        // Development only (the `log` SMS provider, no production setting): the codes it sent.
        router = router.route("/dev/sms-codes", get(http::dev::sms_codes));
    }
    router
        .merge(work)
        .route("/healthz", get(http::health::healthz))
        .route("/metrics", get(crate::metrics::handler))
        .route("/readyz", get(http::health::readyz))
        // Every refusal carries a code, the router's own too (axum adds `Allow` to the 405).
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        // A bug in a handler answers that one request 500 INTERNAL (logged) instead of taking the
        // connection down with it; GraphQL executions are contained closer in, with a GraphQL body.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(answer_panic))
        .layer(middleware::from_fn_with_state(state.clone(), server::admission::body_deadline))
        .layer(PropagateRequestIdLayer::x_request_id())
        // tower-http logs every 5xx at ERROR. The gateway's 5xx are deliberate refusals (OVERLOADED,
        // SERVICE_UNAVAILABLE, TOO_MANY_CONNECTIONS): at ERROR that is a line per refused request,
        // thousands a second under overload, spent when CPU is scarcest. Internal errors and panics
        // are logged where they happen, with the request id.
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)))
        // Every request gets an id (or keeps the one a proxy gave it): logs and responses carry it.
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// A route asked with a method it does not take (`PUT /graphql`): 405, coded like every refusal.
async fn method_not_allowed() -> axum::response::Response {
    coded(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        crate::error::code::BAD_REQUEST,
        "this route does not take that method",
    )
}

/// A path no route serves: 404, coded.
async fn not_found() -> axum::response::Response {
    coded(axum::http::StatusCode::NOT_FOUND, crate::error::code::NOT_FOUND, "no such route")
}

fn coded(status: axum::http::StatusCode, code: &str, message: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut resp = (status, http::graphql::error_body(code, message)).into_response();
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

fn answer_panic(panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let what = crate::error::panic_message(panic.as_ref());
    tracing::error!(panic = %what, "a request handler panicked");
    let body = http::graphql::error_body(crate::error::code::INTERNAL, "internal error");
    (
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        [(axum::http::header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Serves until `shutdown` resolves, then tells WebSockets to go, lets in-flight requests finish,
/// and writes what the last requests recorded. Connection caps and HTTP timeouts: [`server`].
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    let capacity = state.capacity.clone();
    let config = state.config.clone();
    let activity = state.activity.clone();
    // WebSockets are long-lived: ask them to go first, or graceful shutdown would wait on them.
    server::serve(listener, app, &config, capacity, shutdown, || state.begin_shutdown()).await?;
    // What the last requests recorded reaches the database before the process exits.
    activity.flush().await;
    Ok(())
}
