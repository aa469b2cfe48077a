//! Prometheus metrics of this instance, served at `/metrics` in the text exposition format.
//!
//! Metrics are per process by nature (Prometheus sums instances), so they live in one process-wide
//! registry rather than being threaded through every call. Label values are bounded: operation names
//! are labelled only when they belong to the frontend contract (anything else is `other`), so a client
//! cannot mint new time series.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use sea_orm::DatabaseConnection;

pub struct Metrics {
    registry: Registry,
    /// GraphQL operations by transport (`http`, `ws`) and operation name.
    pub requests: IntCounterVec,
    /// Seconds from request to response (HTTP) or to the first result (WebSocket), per operation.
    pub latency: HistogramVec,
    /// Errors returned to clients, by `extensions.code`.
    pub errors: IntCounterVec,
    /// GraphQL operations third-party apps sent, by transport and app (its `client_id`; one series
    /// per approved app in use).
    pub app_requests: IntCounterVec,
    pub ws_connections: IntGauge,
    pub subscriptions: IntGauge,
    pub shared_feeds: IntGauge,
    /// Private streams waiting on their member's topic with no execution held (`http::private_stream`).
    pub private_streams_waiting: IntGauge,
    /// Documents in this instance's in-memory search index; 0 until it has loaded.
    pub search_index_documents: IntGauge,
    /// Searches by the index that answered: memory, or database (loading, turned off, a very short
    /// prefix, or the change log unreadable).
    pub searches: IntCounterVec,
    /// Events received from the broker by this instance's hub.
    pub broker_events: IntCounter,
    /// Anonymous queries by how the response cache answered: hit, stale, miss, bypass; shared_hit for
    /// an answer another instance computed (Redis tier).
    pub response_cache: IntCounterVec,
    /// Entity cache lookups by kind (user, board, post, post_media, children, post_list) and
    /// outcome (hit, miss).
    pub entity_cache: IntCounterVec,
    /// Seconds between a Redis publish and its arrival at this instance.
    pub broker_lag: Histogram,
    /// Times the hub told every subscriber to re-read the database (broker reconnects).
    pub broker_resyncs: IntCounter,
    /// Keys per DataLoader batch, by loader: a list that costs one batch per page shows large batches.
    pub loader_batch: HistogramVec,
    /// Requests refused by the rate limiter, by limit.
    pub rate_limited: IntCounterVec,
    /// SQL statements sent to the database (statements per request = its rate over the request rate).
    pub db_statements: IntCounter,
    /// Request-log and visitor rows dropped because the background writer fell behind.
    pub activity_dropped: IntCounter,
    /// Open client connections (WebSockets included).
    pub connections: IntGauge,
    /// Connections and WebSocket upgrades refused by a cap, by cap (`instance`, `address`, `websocket`).
    pub connections_refused: IntCounterVec,
    /// Requests answered OVERLOADED instead of being worked on.
    pub requests_shed: IntCounter,
    /// Requests whose body did not arrive in time (REQUEST_TIMEOUT).
    pub body_timeouts: IntCounter,
    /// Thumbnails made (`ready`) or given up (`failed`: the image could not be decoded).
    pub thumbnails: IntCounterVec,
    db_pool: IntGaugeVec,
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new_custom(Some("ecer".into()), None)?;
    let requests = IntCounterVec::new(
        Opts::new("graphql_requests_total", "GraphQL operations by transport and operation name"),
        &["transport", "operation"],
    )?;
    let latency = HistogramVec::new(
        HistogramOpts::new("graphql_request_duration_seconds", "GraphQL operation latency")
            .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
        &["operation"],
    )?;
    let errors = IntCounterVec::new(Opts::new("graphql_errors_total", "Errors returned, by code"), &["code"])?;
    let app_requests = IntCounterVec::new(
        Opts::new("app_requests_total", "GraphQL operations sent by third-party apps, by transport and app"),
        &["transport", "app"],
    )?;
    let ws_connections = IntGauge::new("websocket_connections", "Open GraphQL WebSockets")?;
    let subscriptions = IntGauge::new("subscriptions_active", "Operations running on WebSockets")?;
    let shared_feeds =
        IntGauge::new("shared_feeds_active", "Subscription executions shared by the sockets subscribed to them")?;
    let private_streams_waiting = IntGauge::new(
        "private_streams_waiting",
        "Private subscriptions waiting for their next event with no execution held open",
    )?;
    let search_index_documents =
        IntGauge::new("search_index_documents", "Documents in this instance's in-memory search index")?;
    let searches =
        IntCounterVec::new(Opts::new("searches_total", "Searches by the index that answered them"), &["index"])?;
    let broker_events = IntCounter::new("broker_events_received_total", "Events received from the broker")?;
    let response_cache = IntCounterVec::new(
        Opts::new("response_cache_total", "Anonymous queries by how the response cache answered"),
        &["outcome"],
    )?;
    let entity_cache = IntCounterVec::new(
        Opts::new("entity_cache_total", "Entity cache lookups by kind and outcome"),
        &["kind", "outcome"],
    )?;
    let broker_lag = Histogram::with_opts(
        HistogramOpts::new("broker_lag_seconds", "Publish-to-arrival time of broker events")
            .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]),
    )?;
    let broker_resyncs = IntCounter::new("broker_resyncs_total", "Broker reconnects that made subscribers resync")?;
    let loader_batch = HistogramVec::new(
        HistogramOpts::new("dataloader_batch_size", "Keys per DataLoader batch")
            .buckets(vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0]),
        &["loader"],
    )?;
    let rate_limited = IntCounterVec::new(Opts::new("rate_limited_total", "Requests refused, by limit"), &["limit"])?;
    let db_statements = IntCounter::new("db_statements_total", "SQL statements executed")?;
    let activity_dropped =
        IntCounter::new("activity_dropped_total", "Request-log rows dropped because the writer fell behind")?;
    let connections = IntGauge::new("http_connections", "Open client connections, WebSockets included")?;
    let connections_refused = IntCounterVec::new(
        Opts::new("connections_refused_total", "Connections and WebSocket upgrades refused by a cap"),
        &["cap"],
    )?;
    let requests_shed = IntCounter::new("requests_shed_total", "Requests answered OVERLOADED")?;
    let body_timeouts = IntCounter::new("request_body_timeouts_total", "Request bodies that did not arrive in time")?;
    let thumbnails =
        IntCounterVec::new(Opts::new("thumbnails_total", "Thumbnails made or given up, by outcome"), &["outcome"])?;
    let db_pool = IntGaugeVec::new(Opts::new("db_pool_connections", "Database pool connections"), &["state"])?;
    registry.register(Box::new(requests.clone()))?;
    registry.register(Box::new(latency.clone()))?;
    registry.register(Box::new(errors.clone()))?;
    registry.register(Box::new(app_requests.clone()))?;
    registry.register(Box::new(ws_connections.clone()))?;
    registry.register(Box::new(shared_feeds.clone()))?;
    registry.register(Box::new(private_streams_waiting.clone()))?;
    registry.register(Box::new(search_index_documents.clone()))?;
    registry.register(Box::new(searches.clone()))?;
    registry.register(Box::new(subscriptions.clone()))?;
    registry.register(Box::new(broker_events.clone()))?;
    registry.register(Box::new(response_cache.clone()))?;
    registry.register(Box::new(entity_cache.clone()))?;
    registry.register(Box::new(broker_lag.clone()))?;
    registry.register(Box::new(broker_resyncs.clone()))?;
    registry.register(Box::new(loader_batch.clone()))?;
    registry.register(Box::new(rate_limited.clone()))?;
    registry.register(Box::new(db_pool.clone()))?;
    registry.register(Box::new(db_statements.clone()))?;
    registry.register(Box::new(activity_dropped.clone()))?;
    registry.register(Box::new(connections.clone()))?;
    registry.register(Box::new(connections_refused.clone()))?;
    registry.register(Box::new(requests_shed.clone()))?;
    registry.register(Box::new(body_timeouts.clone()))?;
    registry.register(Box::new(thumbnails.clone()))?;
    Ok(Metrics {
        registry,
        app_requests,
        requests,
        latency,
        errors,
        ws_connections,
        shared_feeds,
        private_streams_waiting,
        search_index_documents,
        searches,
        subscriptions,
        broker_events,
        response_cache,
        entity_cache,
        broker_lag,
        broker_resyncs,
        loader_batch,
        rate_limited,
        db_statements,
        activity_dropped,
        connections,
        connections_refused,
        requests_shed,
        body_timeouts,
        thumbnails,
        db_pool,
    })
}

/// The process's metrics. Building them only fails on a programming error (a duplicate or malformed
/// name), which the unit test below catches; start-up is the place to stop for it.
#[allow(clippy::expect_used)]
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| build().expect("metric definitions are valid"));

impl Metrics {
    /// The text exposition, with the pool gauges read now.
    pub fn render(&self, db: &DatabaseConnection) -> String {
        let (size, idle, max) = pool_stats(db);
        self.db_pool.with_label_values(&["open"]).set(size);
        self.db_pool.with_label_values(&["idle"]).set(idle);
        self.db_pool.with_label_values(&["in_use"]).set(size - idle);
        self.db_pool.with_label_values(&["max"]).set(max);
        let mut out = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(%err, "could not encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// Counts the codes of the errors in a response.
    /// Counts an operation a third-party app sent (nothing for the member's own clients).
    pub fn count_app(&self, transport: &str, viewer: Option<&crate::auth::Viewer>) {
        if let Some(app) = viewer.and_then(|v| v.app) {
            self.app_requests.with_label_values(&[transport, app.client_id.as_str()]).inc();
        }
    }

    pub fn count_errors(&self, errors: &[async_graphql::ServerError]) {
        for err in errors {
            let code = err
                .extensions
                .as_ref()
                .and_then(|e| e.get("code"))
                .and_then(|c| match c {
                    async_graphql::Value::String(s) => Some(s.as_str()),
                    _ => None,
                })
                .unwrap_or("NONE");
            self.errors.with_label_values(&[code]).inc();
        }
    }
}

fn pool_stats(db: &DatabaseConnection) -> (i64, i64, i64) {
    match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (i64::from(pool.size()), pool.num_idle() as i64, i64::from(pool.options().get_max_connections()))
        }
        _ => {
            let pool = db.get_sqlite_connection_pool();
            (i64::from(pool.size()), pool.num_idle() as i64, i64::from(pool.options().get_max_connections()))
        }
    }
}

/// `/metrics`.
pub async fn handler(
    axum::extract::State(app): axum::extract::State<crate::app::AppState>,
) -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], METRICS.render(&app.db))
}

/// Decrements a gauge when dropped: an aborted task still gives its slot back.
pub struct GaugeGuard(&'static IntGauge);

impl GaugeGuard {
    pub fn new(gauge: &'static IntGauge) -> GaugeGuard {
        gauge.inc();
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn metric_definitions_are_valid() {
        assert!(super::build().is_ok());
    }
}
