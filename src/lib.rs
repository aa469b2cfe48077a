//! ecer-gateway: the GraphQL gateway of the ecer foreign-trade community.
//!
//! # Layout
//! - [`config`]: the one configuration struct (flags and environment), validated at start-up.
//! - [`app`]: shared state and the axum router (GraphQL HTTP, GraphiQL, health).
//! - [`server`]: the accept loop: connection caps, HTTP timeouts, body deadlines, load shedding,
//!   graceful shutdown.
//! - [`http`]: GraphQL-over-HTTP protocol handling (and HTTP caching of shared answers), the
//!   offline GraphiQL page, probes; [`http::availability`] is the one rule for what runs while the
//!   database is down, on HTTP and WebSocket.
//! - [`auth`]: session tokens, the `Viewer`, roles; [`auth::viewer`] is the ONE token-or-cookie ->
//!   `Viewer` path for HTTP, multipart, media routes, WebSocket init and every socket operation.
//! - [`authz`]: every permission rule, once: roles as capability sets, `authz::require(viewer,
//!   Action)` in services, `authz::can` for `viewerCan*` and null-unless-allowed fields.
//! - [`graphql`]: schema, per-domain query/mutation roots, types, DataLoaders.
//! - [`metrics`]: Prometheus metrics at `/metrics`.
//! - [`response_cache`]: anonymous queries answered from memory, invalidated by a content epoch that
//!   every public-content write moves on every instance ([`graphql::freshness`] says which write is
//!   which).
//! - [`entity_cache`]: posts, members, boards, media and comment pages kept between requests under
//!   the same epoch, so a signed-in page only queries what depends on its viewer.
//! - [`pubsub`]: the broker (in-process or Redis) that tells every instance about new events, and
//!   live-room presence.
//! - [`ratelimit`]: token buckets per user or IP, shared through Redis.
//! - [`services`]: the community's rules (accounts, boards, posts, comments, social graph).
//! - [`db`]: database connection, migrations (under an advisory lock on PostgreSQL), statement
//!   counting, and [`db::breaker`], the circuit breaker that turns an outage into fast
//!   SERVICE_UNAVAILABLE answers.
//! - [`error`]: `AppError` and the `extensions.code` each variant becomes.
//! - [`seal`]: encryption at rest (AES-256-GCM, key ids, rotation) for identity data and private files.
//! - [`media`]: uploads on disk: content-checked types, public and sealed private files, thumbnails and
//!   posters; [`media::probe`] reads sizes from headers at upload, [`media::thumbnail`] makes
//!   thumbnails (run off the request path by `services::thumbnails`).
//! - [`mail`]: email by SMTP (lettre), or to the log in development.
//! - [`sms`]: SMS providers behind one trait (`log` for development, `disabled`, `aliyun`).
//! - [`seed`]: a deterministic demo community for demos and benchmarks.
//! - [`demo`]: `--demo`, the first run that shows a living community (seed + a live stream).
//!
//! A request flows one way: HTTP/WS handler (`auth::viewer`) -> GraphQL resolver (thin) -> service
//! (asks `authz`) -> database. A resolver never builds SQL nor holds a permission rule; a service
//! never knows about HTTP or GraphQL.

pub mod app;
pub mod auth;
pub mod authz;
pub mod config;
pub mod db;
pub mod demo;
pub mod entity_cache;
pub mod error;
pub mod graphql;
pub mod http;
pub mod mail;
pub mod media;
pub mod metrics;
pub mod pubsub;
pub mod ratelimit;
pub mod response_cache;
pub mod seal;
pub mod seed;
pub mod server;
pub mod services;
pub mod sms;
