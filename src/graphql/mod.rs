//! The GraphQL schema: per-domain query and mutation roots merged into one schema, the types clients
//! see, and the DataLoaders behind them. Resolvers are thin: read the viewer, call a service, convert.

pub mod codes;
pub mod freshness;
pub mod ids;
pub mod lean;
pub mod loaders;
pub mod mutation;
pub mod order;
pub mod prefetch;
pub mod query;
pub mod scopes;
pub mod shared;
pub mod subscription;
pub mod types;

use std::sync::Arc;

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationDefinition};
use async_graphql::{Context, Positioned, Schema};
use sea_orm::DatabaseConnection;

use crate::auth::Viewer;
use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::media::MediaStore;
use crate::pubsub::Broker;
use crate::pubsub::presence::Presence;
use crate::ratelimit::{self, Limit, RateLimiter};
use crate::services::activity::{Activity, ClientInfo};
use crate::services::page::{PageArgs, RawPage};

pub type AppSchema = Schema<query::Query, mutation::Mutation, subscription::Subscription>;

/// Shared by every request: the database and the configuration.
#[derive(Clone)]
pub struct GqlState {
    pub db: DatabaseConnection,
    pub config: Arc<Config>,
    pub broker: Broker,
    pub presence: Presence,
    pub limiter: Arc<RateLimiter>,
    pub media: MediaStore,
    pub activity: Activity,
    pub sms: crate::sms::Sms,
    pub mailer: crate::mail::Mailer,
    /// Moved by every write a signed-out reader would see (`freshness`).
    pub epoch: Arc<crate::response_cache::Epoch>,
    /// This instance's in-memory search index.
    pub search: Arc<crate::services::search::Resident>,
    /// Web Push: the VAPID key and what live sockets delivered.
    pub push: Arc<crate::services::push::Push>,
}

/// Facts about one request that resolvers may need.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    pub viewer: Option<Viewer>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// Everything the request log records about the client.
    pub client: Arc<ClientInfo>,
    /// The visitor key daily unique visitors are counted by (cookie, member or address).
    pub visitor: Option<Arc<str>>,
    /// Set by `login` and `register` when they sign someone in: the request log files the request
    /// under that member, as their login history.
    pub signed_in_as: Arc<std::sync::OnceLock<i64>>,
    /// Set by `deleteAccount`: the request that erased an account is not filed under it.
    pub erased: Arc<std::sync::atomic::AtomicBool>,
    /// The board and post pages this request counted a visit to: a cached answer counts them again
    /// for each reader it is served to.
    pub visits: Arc<std::sync::Mutex<Vec<(crate::services::activity::Target, i64)>>>,
    /// On a WebSocket: what its private streams delivered, to be confirmed by the client's pong
    /// before it cancels a push (`services::push::SocketDeliveries`).
    pub socket: Option<Arc<crate::services::push::SocketDeliveries>>,
}

impl RequestInfo {
    /// A request from `client`, acting as `viewer`, counted as `visitor`.
    pub fn new(viewer: Option<Viewer>, client: Arc<ClientInfo>, visitor: Option<Arc<str>>) -> RequestInfo {
        RequestInfo {
            viewer,
            user_agent: client.user_agent.clone(),
            ip: client.ip.clone(),
            client,
            visitor,
            signed_in_as: Default::default(),
            erased: Default::default(),
            visits: Default::default(),
            socket: None,
        }
    }
}

/// A request for `query` with its variables, naming the operation to run when the document holds
/// several: how each WebSocket path (own execution, shared feed, private stream) starts one.
pub fn request(
    query: String,
    operation: Option<String>,
    variables: async_graphql::Variables,
) -> async_graphql::Request {
    let request = async_graphql::Request::new(query).variables(variables);
    match operation {
        Some(name) => request.operation_name(name),
        None => request,
    }
}

/// The schema `lean` runs HTTP queries on: the same types, data and limits, and no extensions.
pub fn build_lean_schema(state: GqlState) -> AppSchema {
    let config = state.config.clone();
    let mut builder = Schema::build(query::Query::default(), mutation::Mutation::default(), subscription::Subscription)
        .limit_depth(config.max_query_depth)
        .limit_complexity(config.max_query_complexity);
    if !config.introspection {
        builder = builder.disable_introspection();
    }
    builder.data(state).finish()
}

pub fn build_schema(state: GqlState) -> AppSchema {
    build_full_schema(state, false)
}

/// The schema third-party apps' tokens run on: the full one, plus the scope check on every field
/// (`graphql::scopes`).
pub fn build_app_schema(state: GqlState) -> AppSchema {
    build_full_schema(state, true)
}

fn build_full_schema(state: GqlState, app_scopes: bool) -> AppSchema {
    let config = state.config.clone();
    let mut builder = Schema::build(query::Query::default(), mutation::Mutation::default(), subscription::Subscription);
    if app_scopes {
        builder = builder.extension(scopes::AppScopes);
    }
    let mut builder = builder
        .extension(codes::RequestErrorCodes { max_aliases: config.max_aliases })
        .extension(order::DocumentOrder)
        .extension(freshness::Freshness)
        .limit_depth(config.max_query_depth)
        .limit_complexity(config.max_query_complexity);
    if !config.introspection {
        builder = builder.disable_introspection();
    }
    builder.data(state).finish()
}

/// Attaches what one execution needs besides the query: who asks, and a fresh set of loaders.
pub fn prepare(
    request: async_graphql::Request,
    app: &crate::app::AppState,
    info: RequestInfo,
) -> async_graphql::Request {
    let view = crate::entity_cache::View::new(app.entities.clone(), info.viewer.as_ref().map(|v| v.user_id));
    request.data(info).data(loaders::LoaderSet::new(&app.db, &app.presence, view))
}

/// The schema as SDL, exactly as `export-schema` prints it and `schema.graphql` holds it.
pub fn sdl() -> String {
    let schema =
        Schema::build(query::Query::default(), mutation::Mutation::default(), subscription::Subscription).finish();
    schema.sdl()
}

fn missing(what: &'static str) -> AppError {
    AppError::internal(format!("{what} missing from the GraphQL context"))
}

pub(crate) fn state<'a>(ctx: &Context<'a>) -> AppResult<&'a GqlState> {
    ctx.data::<GqlState>().map_err(|_| missing("GqlState"))
}

pub(crate) fn loaders<'a>(ctx: &Context<'a>) -> AppResult<&'a loaders::Loaders> {
    ctx.data::<loaders::Loaders>().map_err(|_| missing("Loaders"))
}

pub(crate) fn request_info<'a>(ctx: &Context<'a>) -> Option<&'a RequestInfo> {
    ctx.data_opt::<RequestInfo>()
}

/// The request's address and the reason a staff member gave, for the audit log.
pub(crate) fn staff_note<'a>(ctx: &Context<'a>, reason: Option<&'a str>) -> crate::services::audit::Note<'a> {
    crate::services::audit::Note { ip: request_info(ctx).and_then(|i| i.ip.as_deref()), reason }
}

/// The signed-in member as a `User`, read afresh: the `me` of payloads whose mutation changed
/// something a client shows on the member (settings, consent), so its cache entry is replaced.
pub(crate) async fn fresh_me(ctx: &Context<'_>) -> async_graphql::Result<Option<types::User>> {
    let Some(v) = viewer(ctx) else { return Ok(None) };
    let l = loaders(ctx)?;
    l.users.clear::<i64>();
    Ok(types::load_one(&l.users, v.user_id).await?.map(types::User))
}

/// A permalink on the community's web pages (`PUBLIC_WEB_URL` + `path`).
pub(crate) fn web_url(ctx: &Context<'_>, path: &str) -> async_graphql::Result<String> {
    Ok(format!("{}{path}", state(ctx)?.config.public_web_url))
}

/// An absolute URL of one of this gateway's own routes (`PUBLIC_API_URL` + `path`).
pub(crate) fn api_url(ctx: &Context<'_>, path: &str) -> async_graphql::Result<String> {
    Ok(format!("{}{path}", state(ctx)?.config.public_api_base()))
}

/// The operation a request with `name` as its operation name runs, as the spec selects it
/// ("GetOperation"): the only one, or the one named.
pub(crate) fn selected_operation<'d>(
    doc: &'d ExecutableDocument,
    name: Option<&str>,
) -> Option<&'d Positioned<OperationDefinition>> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Some(op),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next(),
        (DocumentOperations::Multiple(_), None) => None,
    }
}

pub(crate) fn viewer(ctx: &Context<'_>) -> Option<Viewer> {
    request_info(ctx).and_then(|r| r.viewer)
}

/// The signed-in viewer, or `UNAUTHENTICATED`.
pub(crate) fn require_viewer(ctx: &Context<'_>) -> AppResult<Viewer> {
    viewer(ctx).ok_or(AppError::Unauthenticated)
}

/// Takes a token of `limit` for this request's user (or IP): `RATE_LIMITED`, with `Retry-After`
/// on HTTP, when the bucket is empty.
pub(crate) async fn rate_limit(ctx: &Context<'_>, limit: Limit) -> AppResult<()> {
    let info = request_info(ctx);
    let key = match limit {
        // Sign-in attempts are per address: the attacker has no account to key on.
        Limit::Auth => ratelimit::key_for(None, info.and_then(|i| i.ip.as_deref())),
        _ => ratelimit::key_for(info.and_then(|i| i.viewer.as_ref()), info.and_then(|i| i.ip.as_deref())),
    };
    let result = state(ctx)?.limiter.check(limit, &key).await;
    if let Err(AppError::RateLimited { retry_after_secs }) = &result {
        ctx.insert_http_header(http::header::RETRY_AFTER, retry_after_secs.to_string());
    }
    result
}

/// A forward-only list's `first`/`after`.
pub(crate) fn page_args(ctx: &Context<'_>, first: Option<i32>, after: Option<&str>) -> AppResult<PageArgs> {
    PageArgs::parse(first, after, state(ctx)?.config.max_page_size)
}

/// A list that reads both ways: `first`/`after` and `last`/`before`, under the same cap.
pub(crate) fn relay_page_args(ctx: &Context<'_>, raw: RawPage<'_>) -> AppResult<PageArgs> {
    PageArgs::parse_relay(raw, state(ctx)?.config.max_page_size)
}
