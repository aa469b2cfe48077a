//! GraphQL over HTTP, per the GraphQL-over-HTTP specification:
//! - `POST` with `Content-Type: application/json` (anything else: 415; a body that is not a GraphQL
//!   request: 400); `GET` with URL parameters, queries only (a mutation over GET: 405).
//! - Content negotiation between `application/graphql-response+json` and `application/json`
//!   (no `Accept` means `application/json`; nothing acceptable: 406).
//! - Under `application/graphql-response+json`, a document that cannot be parsed or validated is a
//!   400 with no `data`; under `application/json` it stays a 200, as legacy clients expect.
//!
//! Every error carries `extensions.code`. Requesting JSON also forces browsers to preflight
//! cross-site POSTs, which is what keeps cookie sessions safe from form-post CSRF.

use std::net::SocketAddr;
use std::sync::Arc;

use async_graphql::Variables;
use async_graphql::parser::types::OperationType;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use sha2::Digest as _;

use crate::app::AppState;
use crate::auth;
use crate::error::{AppError, code};
use crate::graphql::RequestInfo;
use crate::http::documents::Refusal;
use crate::http::{availability, client};

use crate::response_cache::{Answer, Filled, Key, Lookup, ResponseCache};
use crate::services::activity::{RequestRecord, Target};

pub const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
pub const JSON: &str = "application/json";

/// The media type the response is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    GraphqlResponseJson,
    Json,
}

impl Media {
    fn content_type(self) -> &'static str {
        match self {
            Media::GraphqlResponseJson => "application/graphql-response+json; charset=utf-8",
            Media::Json => "application/json; charset=utf-8",
        }
    }
}

/// Picks the response media type from `Accept`, honouring q-values; `None` means 406.
fn negotiate(headers: &HeaderMap) -> Option<Media> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(Media::Json);
    };
    let mut best: Option<(f32, Media)> = None;
    for range in accept.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let Ok(mime) = range.parse::<mime::Mime>() else {
            continue;
        };
        if let Some(charset) = mime.get_param(mime::CHARSET)
            && !charset.as_str().eq_ignore_ascii_case("utf-8")
        {
            continue;
        }
        let q = mime.get_param("q").and_then(|q| q.as_str().parse::<f32>().ok()).unwrap_or(1.0);
        let media = match mime.essence_str() {
            GRAPHQL_RESPONSE_JSON => Media::GraphqlResponseJson,
            JSON | "application/*" | "*/*" => Media::Json,
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, media));
        }
    }
    best.map(|(_, m)| m)
}

/// A request the server refuses before GraphQL sees it.
fn reject(status: StatusCode, media: Media, message: &str) -> Response {
    let code = match status {
        s if s.is_server_error() => code::INTERNAL,
        StatusCode::PAYLOAD_TOO_LARGE => code::REQUEST_TOO_LARGE,
        _ => code::BAD_REQUEST,
    };
    reject_with(status, media, code, message)
}

fn reject_with(status: StatusCode, media: Media, code: &str, message: &str) -> Response {
    let mut resp = (status, error_body(code, message)).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(media.content_type()));
    resp
}

/// `{"errors":[{"message":...,"extensions":{"code":...}}]}`, keys in the order the spec lists them.
pub(crate) fn error_body(code: &str, message: &str) -> String {
    #[derive(serde::Serialize)]
    struct Ext<'a> {
        code: &'a str,
    }
    #[derive(serde::Serialize)]
    struct Error<'a> {
        message: &'a str,
        extensions: Ext<'a>,
    }
    #[derive(serde::Serialize)]
    struct Body<'a> {
        errors: [Error<'a>; 1],
    }
    let body = Body { errors: [Error { message, extensions: Ext { code } }] };
    serde_json::to_string(&body).unwrap_or_else(|_| INTERNAL_BODY.to_string())
}

/// What a response says when it cannot be serialised (it always can; this keeps the path panic-free).
const INTERNAL_BODY: &str = r#"{"errors":[{"message":"internal error","extensions":{"code":"INTERNAL"}}]}"#;

/// One GraphQL request's parameters, checked for shape.
struct Params {
    /// Absent when the request names a persisted document instead.
    query: Option<String>,
    document_id: Option<String>,
    operation_name: Option<String>,
    variables: Option<Map<String, Value>>,
    extensions: Option<Map<String, Value>>,
    /// Files of a multipart request, by variable path (`variables.file`).
    uploads: Vec<(String, async_graphql::UploadValue)>,
}

fn params_from_json(value: Value) -> Result<Params, &'static str> {
    let Value::Object(mut obj) = value else {
        return Err("the request body must be a JSON object");
    };
    let query = match obj.remove("query") {
        Some(Value::String(q)) => Some(q),
        None | Some(Value::Null) => None,
        Some(_) => return Err("the `query` parameter must be a string"),
    };
    let document_id = match obj.remove("documentId") {
        Some(Value::String(id)) => Some(id),
        None | Some(Value::Null) => None,
        Some(_) => return Err("the `documentId` parameter must be a string"),
    };
    let operation_name = match obj.remove("operationName") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err("the `operationName` parameter must be a string"),
    };
    let variables = match obj.remove("variables") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => return Err("the `variables` parameter must be an object"),
    };
    let extensions = match obj.remove("extensions") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => return Err("the `extensions` parameter must be an object"),
    };
    if query.is_none() && document_id.is_none() && extensions.as_ref().is_none_or(|e| !e.contains_key("persistedQuery"))
    {
        return Err("the `query` parameter is required");
    }
    Ok(Params { query, document_id, operation_name, variables, extensions, uploads: Vec::new() })
}

fn params_from_url(raw: &str) -> Result<Params, &'static str> {
    let mut obj = Map::new();
    for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        let value = match key.as_ref() {
            "variables" | "extensions" => {
                serde_json::from_str(&value).map_err(|_| "`variables` and `extensions` must be JSON objects")?
            }
            _ => Value::String(value.into_owned()),
        };
        obj.insert(key.into_owned(), value);
    }
    params_from_json(Value::Object(obj))
}

/// The type of the operation a request would run: the one `operationName` names, or the only one.
/// `None` when the document does not parse or does not say which (execution reports those).
fn selected_operation(query: &str, operation_name: Option<&str>) -> Option<OperationType> {
    crate::graphql::lean::parsed(query)?.operation_type(operation_name)
}

pub async fn get(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let Some(media) = negotiate(&headers) else {
        return reject(StatusCode::NOT_ACCEPTABLE, Media::Json, "none of the accepted media types can be produced");
    };
    let params = match params_from_url(raw.as_deref().unwrap_or("")) {
        Ok(p) => p,
        Err(msg) => return reject(StatusCode::BAD_REQUEST, media, msg),
    };
    let mut params = params;
    // The same answer for every anonymous client: a persisted document named by its id alone, with
    // no credential of any kind on the request.
    let shared = params.query.is_none()
        && (params.document_id.is_some()
            || params.extensions.as_ref().is_some_and(|e| e.contains_key("persistedQuery")))
        && auth::token_from_headers(&headers, &app.config.session_cookie_name).is_none()
        && app.config.http_cache_max_age_secs > 0;
    let document =
        app.documents.resolve(params.query.take(), params.extensions.as_ref(), params.document_id.as_deref()).await;
    // GET only reads (a link or an <img> must not act): decided from the parsed document, whatever
    // the operation's name or position, and for persisted documents too.
    if let Ok(query) = &document
        && selected_operation(query, params.operation_name.as_deref()).is_some_and(|ty| ty != OperationType::Query)
    {
        let mut resp =
            reject(StatusCode::METHOD_NOT_ALLOWED, media, "mutations and subscriptions must be sent with POST");
        resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return resp;
    }
    params.query = document.as_ref().ok().cloned();
    let max_age = app.config.http_cache_max_age_secs;
    let visitor_cookie = format!("{}=", app.config.visitor_cookie_name);
    let resp = execute(app, peer, &headers, vec![(params, document.err())], false, media).await;
    if shared { http_cached(resp, &headers, max_age, &visitor_cookie).await } else { resp }
}

/// Makes an anonymous persisted-document answer reusable by browsers and CDNs for `max_age`
/// seconds, with an `ETag` that a revalidation (`If-None-Match`) answers `304` with no body. Only a
/// complete success qualifies: an answer with errors stays private. A shared answer cannot hand out
/// a per-visitor cookie, so the visitor cookie of a first visit is left for the next uncached
/// request (this one is counted by address, as for clients that keep no cookies); any other cookie
/// keeps the answer private. `Vary` keeps a cache from handing it to a signed-in request.
async fn http_cached(mut resp: Response, headers: &HeaderMap, max_age: u64, visitor_cookie: &str) -> Response {
    let other_cookie = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|c| !c.to_str().is_ok_and(|c| c.starts_with(visitor_cookie)));
    if resp.status() != StatusCode::OK || other_cookie {
        return resp;
    }
    resp.headers_mut().remove(header::SET_COOKIE);
    let (mut parts, body) = resp.into_parts();
    // The body is the response just serialised in memory: collecting it cannot wait on anyone.
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, error_body(code::INTERNAL, "internal error")).into_response();
    };
    let complete = serde_json::from_slice::<Value>(&bytes).is_ok_and(|v| v.get("errors").is_none());
    if !complete {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    }
    let digest = sha2::Sha256::digest(&bytes);
    let etag = format!("\"{}\"", digest.iter().take(16).map(|b| format!("{b:02x}")).collect::<String>());
    let h = &mut parts.headers;
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&format!("public, max-age={max_age}")).unwrap_or(HeaderValue::from_static("no-store")),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept, Authorization, Cookie"));
    if let Ok(tag) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, tag);
    }
    let revalidated = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == etag || t.trim() == "*" || t.trim().strip_prefix("W/") == Some(etag.as_str()));
    if revalidated {
        parts.status = StatusCode::NOT_MODIFIED;
        parts.headers.remove(header::CONTENT_TYPE);
        return Response::from_parts(parts, axum::body::Body::empty());
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// A refusal sent before the request body was read whole: the connection cannot carry another
/// request (the server closes it), so the response says so, and a keep-alive client does not send
/// its next request into a connection about to close.
fn closing(mut resp: Response) -> Response {
    resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

pub async fn post(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    req: Request,
) -> Response {
    let Some(media) = negotiate(&headers) else {
        return closing(reject(
            StatusCode::NOT_ACCEPTABLE,
            Media::Json,
            "none of the accepted media types can be produced",
        ));
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.parse::<mime::Mime>().is_ok_and(|m| m.essence_str() == "multipart/form-data") {
        let params = match multipart(&app, &headers, content_type, req.into_body()).await {
            Ok(p) => p,
            Err((status, code, message)) => return closing(reject_with(status, media, code, &message)),
        };
        let (params, batch) = params;
        return run_params(app, peer, &headers, params, batch, media).await;
    }
    let body = match Bytes::from_request(req, &app).await {
        Ok(body) => body,
        Err(rejection) => return reject(rejection.status(), media, "the request body is too large or unreadable"),
    };
    let is_json = content_type.parse::<mime::Mime>().is_ok_and(|m| {
        m.essence_str() == JSON && m.get_param(mime::CHARSET).is_none_or(|c| c.as_str().eq_ignore_ascii_case("utf-8"))
    });
    if !is_json {
        return reject(StatusCode::UNSUPPORTED_MEDIA_TYPE, media, "send the request as application/json");
    }
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return reject(StatusCode::BAD_REQUEST, media, "the request body is not valid JSON");
        }
    };
    let (batch, items) = match value {
        Value::Array(items) => (true, items),
        single => (false, vec![single]),
    };
    let max_batch = app.config.max_batch_size as usize;
    if batch && (items.is_empty() || items.len() > max_batch) {
        let code = if items.is_empty() { code::BAD_REQUEST } else { code::BATCH_TOO_LARGE };
        return reject_with(
            StatusCode::BAD_REQUEST,
            media,
            code,
            "a batch must hold between 1 and MAX_BATCH_SIZE operations",
        );
    }
    let params = match items.into_iter().map(params_from_json).collect::<Result<Vec<_>, _>>() {
        Ok(p) => p,
        Err(msg) => return reject(StatusCode::BAD_REQUEST, media, msg),
    };
    run_params(app, peer, &headers, params, batch, media).await
}

/// Resolves persisted documents, then executes.
async fn run_params(
    app: AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    params: Vec<Params>,
    batch: bool,
    media: Media,
) -> Response {
    let mut resolved = Vec::with_capacity(params.len());
    for mut p in params {
        match app.documents.resolve(p.query.take(), p.extensions.as_ref(), p.document_id.as_deref()).await {
            Ok(query) => {
                p.query = Some(query);
                resolved.push((p, None));
            }
            Err(refusal) => resolved.push((p, Some(refusal))),
        }
    }
    execute(app, peer, headers, resolved, batch, media).await
}

type Refused = (StatusCode, &'static str, String);

fn multipart_error(err: multer::Error) -> Refused {
    match err {
        multer::Error::FieldSizeExceeded { field_name, .. }
            if matches!(field_name.as_deref(), Some("operations" | "map")) =>
        {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                code::REQUEST_TOO_LARGE,
                "the operations are larger than MAX_BODY_BYTES".into(),
            )
        }
        multer::Error::FieldSizeExceeded { .. } => {
            (StatusCode::PAYLOAD_TOO_LARGE, code::UPLOAD_TOO_LARGE, "a file is larger than MAX_UPLOAD_BYTES".into())
        }
        multer::Error::StreamSizeExceeded { .. } => {
            (StatusCode::PAYLOAD_TOO_LARGE, code::REQUEST_TOO_LARGE, "the request body is too large".into())
        }
        _ => (StatusCode::BAD_REQUEST, code::BAD_REQUEST, "the multipart body is malformed".into()),
    }
}

fn bad_multipart(message: &str) -> Refused {
    (StatusCode::BAD_REQUEST, code::BAD_REQUEST, message.to_string())
}

/// A GraphQL multipart request (github.com/jaydenseric/graphql-multipart-request-spec): an
/// `operations` part, a `map` part, then the files, each streamed to a temporary file with the size
/// and count limits enforced while reading. Form posts are a "simple" request a foreign site can make
/// a browser send, so a preflight-forcing header is required, as Apollo Server does.
async fn multipart(
    app: &AppState,
    headers: &HeaderMap,
    content_type: &str,
    body: axum::body::Body,
) -> Result<(Vec<Params>, bool), Refused> {
    const PREFLIGHT: [&str; 3] = ["apollo-require-preflight", "x-apollo-operation-name", "graphql-preflight"];
    if !PREFLIGHT.iter().any(|h| headers.get(*h).is_some_and(|v| !v.is_empty())) {
        return Err((
            StatusCode::BAD_REQUEST,
            code::CSRF_PREFLIGHT_REQUIRED,
            "multipart requests must carry an `Apollo-Require-Preflight: true` (or `GraphQL-Preflight: 1`) header"
                .into(),
        ));
    }
    // Every upload needs a member: refuse a signed-out multipart request before spooling its files.
    let Ok(Some(viewer)) = auth::viewer::for_request(&app.db, &app.config, headers).await else {
        return Err((StatusCode::UNAUTHORIZED, code::UNAUTHENTICATED, "uploads need a signed-in member".into()));
    };
    // An app uploads only for the posts it may write: anything else is refused before the files
    // are read, not after they were spooled.
    if crate::authz::scopes::require(&viewer, Some(crate::authz::scopes::Scope::PostsWrite)).is_err() {
        return Err((StatusCode::FORBIDDEN, code::INSUFFICIENT_SCOPE, "uploads need the posts:write scope".into()));
    }
    let boundary = multer::parse_boundary(content_type).map_err(|_| bad_multipart("multipart boundary missing"))?;
    let cfg = &app.config;
    let limit = multer::SizeLimit::new()
        .per_field(cfg.max_upload_bytes as u64)
        .for_field("operations", cfg.max_body_bytes as u64)
        .for_field("map", cfg.max_body_bytes as u64)
        .whole_stream((cfg.max_body_bytes + cfg.max_upload_bytes.saturating_mul(cfg.max_upload_files)) as u64);
    let mut parts = multer::Multipart::with_constraints(
        body.into_data_stream(),
        boundary,
        multer::Constraints::new().size_limit(limit),
    );
    let mut operations: Option<Value> = None;
    let mut map: Option<std::collections::HashMap<String, Vec<String>>> = None;
    let mut files: Vec<(String, async_graphql::UploadValue)> = Vec::new();
    while let Some(mut field) = parts.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "operations" | "map" => {
                let bytes = field.bytes().await.map_err(multipart_error)?;
                if bytes.len() > cfg.max_body_bytes {
                    return Err((
                        StatusCode::PAYLOAD_TOO_LARGE,
                        code::REQUEST_TOO_LARGE,
                        "operations too large".into(),
                    ));
                }
                if name == "operations" {
                    operations =
                        Some(serde_json::from_slice(&bytes).map_err(|_| bad_multipart("`operations` is not JSON"))?);
                } else {
                    map = Some(
                        serde_json::from_slice(&bytes)
                            .map_err(|_| bad_multipart("`map` must map file fields to lists of paths"))?,
                    );
                }
            }
            _ => {
                let Some(map) = &map else {
                    return Err(bad_multipart("the `operations` and `map` parts must come before the files"));
                };
                if !map.contains_key(&name) {
                    continue;
                }
                if files.len() >= cfg.max_upload_files {
                    return Err((
                        StatusCode::PAYLOAD_TOO_LARGE,
                        code::TOO_MANY_UPLOADS,
                        format!("at most {} files per request", cfg.max_upload_files),
                    ));
                }
                let filename = field.file_name().unwrap_or_default().chars().take(255).collect();
                let content_type = field.content_type().map(|m| m.to_string());
                let file = spool(&mut field).await?;
                files.push((name, async_graphql::UploadValue { filename, content_type, content: file }));
            }
        }
    }
    let operations = operations.ok_or_else(|| bad_multipart("the `operations` part is missing"))?;
    let map = map.ok_or_else(|| bad_multipart("the `map` part is missing"))?;
    let (batch, items) = match operations {
        Value::Array(items) => (true, items),
        single => (false, vec![single]),
    };
    if batch && (items.is_empty() || items.len() > cfg.max_batch_size as usize) {
        return Err((StatusCode::BAD_REQUEST, code::BATCH_TOO_LARGE, "batch size out of range".into()));
    }
    let mut params = items.into_iter().map(params_from_json).collect::<Result<Vec<_>, _>>().map_err(bad_multipart)?;
    if map.len() != files.len() {
        return Err(bad_multipart("every file named in `map` must be sent"));
    }
    for (name, upload) in files {
        for path in map.get(&name).into_iter().flatten() {
            let (index, path) = match (batch, path.split_once('.')) {
                (true, Some((i, rest))) => (i.parse::<usize>().map_err(|_| bad_multipart("bad path in `map`"))?, rest),
                (true, None) => return Err(bad_multipart("bad path in `map`")),
                (false, _) => (0, path.as_str()),
            };
            let target = params.get_mut(index).ok_or_else(|| bad_multipart("bad path in `map`"))?;
            if !path.starts_with("variables.") {
                return Err(bad_multipart("files can only be variables"));
            }
            let copy = upload.try_clone().map_err(|_| bad_multipart("could not read the upload"))?;
            target.uploads.push((path.to_string(), copy));
        }
    }
    Ok((params, batch))
}

/// Adds the `null` a file variable should have in `operations` when a client left it out (the
/// specification asks for it; some clients skip it), so the file still lands in its variable.
fn placeholder(variables: &mut Variables, path: &str) {
    let Some(name) = path.strip_prefix("variables.") else { return };
    if !name.contains('.') {
        variables.entry(async_graphql::Name::new(name)).or_insert(async_graphql::Value::Null);
    }
}

/// Streams one file part to an anonymous temporary file (deleted when dropped).
async fn spool(field: &mut multer::Field<'_>) -> Result<std::fs::File, Refused> {
    use std::io::Seek;
    use tokio::io::AsyncWriteExt;
    let internal = |e: std::io::Error| {
        tracing::error!(error = %e, "could not spool an upload");
        (StatusCode::INTERNAL_SERVER_ERROR, code::INTERNAL, "internal error".to_string())
    };
    let tmp = tokio::task::spawn_blocking(tempfile::tempfile)
        .await
        .map_err(|e| internal(std::io::Error::other(e)))?
        .map_err(internal)?;
    let mut out = tokio::fs::File::from_std(tmp);
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        out.write_all(&chunk).await.map_err(internal)?;
    }
    out.flush().await.map_err(internal)?;
    let mut file = out.into_std().await;
    file.rewind().map_err(internal)?;
    Ok(file)
}

/// The operation as metrics and logs name it: a contract operation's name, else `other`
/// (client-chosen names must not become label values), or `anonymous`.
pub(crate) fn operation_label(app: &AppState, name: Option<&str>, query: Option<&str>) -> String {
    // Clients often leave `operationName` out for a document with one operation: take its name.
    let from_document = || {
        let doc = async_graphql::parser::parse_query(query?).ok()?;
        match doc.operations {
            async_graphql::parser::types::DocumentOperations::Single(_) => None,
            async_graphql::parser::types::DocumentOperations::Multiple(ops) if ops.len() == 1 => {
                ops.into_keys().next().map(|n| n.to_string())
            }
            async_graphql::parser::types::DocumentOperations::Multiple(_) => None,
        }
    };
    let derived = if name.is_none() { from_document() } else { None };
    match name.or(derived.as_deref()) {
        None => "anonymous".into(),
        Some(n) if app.documents.is_known_operation(n) => n.to_string(),
        Some(_) => "other".into(),
    }
}

/// Records one finished operation: metrics, and one log line without personal data (no variables,
/// no tokens, no bodies).
pub(crate) fn observe(
    transport: &str,
    operation: &str,
    started: std::time::Instant,
    errors: &[async_graphql::ServerError],
    request_id: &str,
) {
    let m = &crate::metrics::METRICS;
    let elapsed = started.elapsed();
    if transport == "http" {
        // WebSocket operations are counted when they start (a subscription may never yield).
        m.requests.with_label_values(&[transport, operation]).inc();
    }
    m.latency.with_label_values(&[operation]).observe(elapsed.as_secs_f64());
    m.count_errors(errors);
    let codes: Vec<String> =
        errors.iter().filter_map(|e| e.extensions.as_ref()?.get("code").map(|c| c.to_string())).collect();
    tracing::info!(
        target: "ecer_gateway::request",
        request_id,
        transport,
        operation,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        errors = codes.join(","),
        "graphql operation"
    );
}

/// A request refused before parsing (persisted-document rules), as a GraphQL response.
fn refused(refusal: &Refusal) -> async_graphql::Response {
    let err = async_graphql::ServerError::new(refusal.message, None);
    async_graphql::Response::from_errors(vec![crate::graphql::codes::with_code(err, refusal.code)])
}

async fn execute(
    app: AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    params: Vec<(Params, Option<Refusal>)>,
    batch: bool,
    media: Media,
) -> Response {
    // While the database is known to be down, only operations that need none run (GraphiQL's
    // schema, `__typename`), and they run signed out: the session store is the database.
    let offline = app.db_stats.breaker.admit(&app.db).err();
    if let Some(down) = offline {
        let needs = |(p, refusal): &(Params, Option<Refusal>)| {
            refusal.is_none()
                && p.query.as_deref().is_some_and(|q| availability::needs_database(q, p.operation_name.as_deref()))
        };
        if params.iter().any(needs) {
            return unavailable(media, down.retry_after_secs());
        }
    }
    let viewer = match offline {
        Some(_) => None,
        None => match auth::viewer::for_request(&app.db, &app.config, headers).await {
            Ok(v) => v,
            // An outage of the session store must not turn into a silent "signed out".
            Err(AppError::Unavailable { retry_after_secs }) => {
                app.db_stats.breaker.suspect(&app.db);
                return unavailable(media, retry_after_secs);
            }
            Err(err) => {
                let gql: async_graphql::Error = err.into();
                return reject(StatusCode::SERVICE_UNAVAILABLE, media, &gql.message);
            }
        },
    };
    // An app's access token that no longer works (expired, revoked) is refused, not run signed out:
    // public queries would answer, and the app would never learn to refresh (RFC 6750 §3.1).
    if viewer.is_none()
        && offline.is_none()
        && auth::viewer::request_token(&app.config, headers)
            .is_some_and(|t| t.starts_with(crate::services::oauth::ACCESS_PREFIX))
    {
        let mut resp = reject_with(
            StatusCode::UNAUTHORIZED,
            media,
            code::UNAUTHENTICATED,
            "the access token is expired or revoked: refresh it",
        );
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\", error_description=\"expired or revoked\""),
        );
        return resp;
    }
    let client = Arc::new(client::client_info(headers, &peer));
    let cookie = client::visitor_cookie(headers, &app.config.visitor_cookie_name);
    // A browser without the visitor cookie gets one; its first request already counts under it.
    let issued = match cookie {
        Some(_) => None,
        None => client::new_visitor_cookie(&app.config.visitor_cookie_name, app.config.session_cookie_secure),
    };
    // The cookie just issued is not trusted to come back (apps keep no cookies): until it does, the
    // visitor is the member, or the address and user agent.
    let visitor = client::visitor_key(cookie.as_deref(), viewer.map(|v| v.user_id), &client);
    let info = RequestInfo::new(viewer, client.clone(), Some(visitor));
    let request_id = headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
    let limit_key = crate::ratelimit::request_key_for(info.viewer.as_ref(), info.ip.as_deref());
    let request_limit = crate::ratelimit::request_limit(info.viewer.as_ref());
    let mut retry_after = None;
    let mut down_retry = None;
    let mut responses = Vec::with_capacity(params.len());
    for (mut p, refusal) in params {
        let started = std::time::Instant::now();
        let operation = operation_label(&app, p.operation_name.as_deref(), p.query.as_deref());
        let operation_name = p.operation_name.clone();
        crate::metrics::METRICS.count_app("http", info.viewer.as_ref());
        // Every operation of a batch takes a token: batching is not a way around the limit.
        if let Err(err) = app.limiter.check(request_limit, &limit_key).await {
            if let crate::error::AppError::RateLimited { retry_after_secs } = &err {
                retry_after = Some(*retry_after_secs);
            }
            let resp = async_graphql::Response::from_errors(vec![err.into_request_error()]);
            observe("http", &operation, started, &resp.errors, &request_id);
            responses.push(Reply::Run(Box::new(resp)));
            continue;
        }
        let query = match (refusal, p.query.take()) {
            (Some(refusal), _) => {
                let resp = refused(&refusal);
                observe("http", &operation, started, &resp.errors, &request_id);
                responses.push(Reply::Run(Box::new(resp)));
                continue;
            }
            (None, Some(query)) => query,
            (None, None) => {
                let refusal = Refusal { code: code::BAD_REQUEST, message: "the `query` parameter is required" };
                responses.push(Reply::Run(Box::new(refused(&refusal))));
                continue;
            }
        };
        // A signed-out query is answered from the response cache when it can be.
        let cache = app.response_cache.as_ref().filter(|_| info.viewer.is_none() && p.uploads.is_empty());
        let key = cache.map(|_| Key {
            query: Arc::from(query.as_str()),
            operation: p.operation_name.as_deref().map(Arc::from),
            variables: Arc::from(
                p.variables.as_ref().map(|v| Value::Object(v.clone()).to_string()).unwrap_or_default(),
            ),
        });
        let run = || run_one(&app, query, p, info.clone(), &request_id);
        let (resp, cached) = match (cache, key) {
            (Some(cache), Some(key)) => answer_cached(&app, cache, key, &info, &request_id, run).await,
            _ => (run().await, None),
        };
        if let Some(answer) = &cached {
            // The visits the answer's computation counted, counted for this reader too.
            if let Some(visitor) = info.visitor.as_deref() {
                for (target, id) in &answer.visits {
                    app.activity.visit(*target, *id, visitor);
                }
            }
        }
        observe("http", &operation, started, &resp.errors, &request_id);
        if let Some(secs) = unavailable_in(&resp) {
            app.db_stats.breaker.suspect(&app.db);
            // Nothing came back: the whole request is answered 503, with when to retry.
            if resp.data == async_graphql::Value::Null && !batch {
                down_retry = Some(secs);
            }
        }
        let signed_in = info.signed_in_as.get().copied();
        let erased = info.erased.load(std::sync::atomic::Ordering::Relaxed);
        app.activity.request(RequestRecord {
            duration: started.elapsed(),
            user_id: signed_in.or(info.viewer.map(|v| v.user_id)).filter(|_| !erased),
            transport: "http",
            operation: operation_name.unwrap_or(operation),
            sign_in: signed_in.is_some(),
            client: client.clone(),
            app_id: info.viewer.and_then(|v| v.app).map(|a| a.app_id),
        });
        responses.push(match cached {
            Some(answer) => Reply::Cached(answer),
            None => Reply::Run(Box::new(resp)),
        });
    }
    let response = if batch {
        Replies::Batch(responses)
    } else {
        match responses.pop() {
            Some(resp) => Replies::Single(resp),
            None => return reject(StatusCode::BAD_REQUEST, media, "empty request"),
        }
    };
    let (status, body, extra_headers) = match response {
        Replies::Single(Reply::Cached(answer)) => (StatusCode::OK, answer.body.clone(), HeaderMap::new()),
        Replies::Single(Reply::Run(resp)) => {
            let (request_error, headers, body) = finish(*resp, media);
            let body = Bytes::from(body);
            let status = if request_error && media == Media::GraphqlResponseJson {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            (status, body, headers)
        }
        Replies::Batch(resps) => {
            let mut headers = HeaderMap::new();
            let mut body = Vec::with_capacity(resps.len() * 256);
            body.push(b'[');
            for (i, resp) in resps.into_iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                match resp {
                    Reply::Cached(answer) => body.extend_from_slice(&answer.body),
                    Reply::Run(resp) => {
                        let (_, h, one) = finish(*resp, media);
                        for (name, value) in h.iter() {
                            headers.append(name, value.clone());
                        }
                        body.extend_from_slice(&one);
                    }
                }
            }
            body.push(b']');
            (StatusCode::OK, Bytes::from(body), headers)
        }
    };
    // A request refused as a whole by the rate limiter is a 429, one that could not reach the
    // database a 503; both say when to come back.
    let status = match (retry_after, down_retry) {
        (Some(_), _) if !batch => StatusCode::TOO_MANY_REQUESTS,
        (_, Some(_)) => StatusCode::SERVICE_UNAVAILABLE,
        _ => status,
    };
    let retry_after = retry_after.or(down_retry);
    let mut resp = (status, body).into_response();
    if let Some(secs) = retry_after {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    for (name, value) in extra_headers.iter() {
        resp.headers_mut().append(name, value.clone());
    }
    if let Some((_, set_cookie)) = issued {
        resp.headers_mut().append(header::SET_COOKIE, set_cookie);
    }
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(media.content_type()));
    resp
}

enum Replies {
    Single(Reply),
    Batch(Vec<Reply>),
}

/// One operation's answer: run now, or served from the response cache (already serialised).
enum Reply {
    Run(Box<async_graphql::Response>),
    Cached(Arc<Answer>),
}

/// Runs one operation of a request: `query` with the rest of `p`.
async fn run_one(
    app: &AppState,
    query: String,
    p: Params,
    info: RequestInfo,
    request_id: &str,
) -> async_graphql::Response {
    let app_token = info.viewer.is_some_and(|v| v.app.is_some());
    let lean = if p.uploads.is_empty() && !app_token {
        crate::graphql::lean::document(&query, p.operation_name.as_deref(), app.config.max_aliases)
    } else {
        None
    };
    let operation_name = p.operation_name.clone();
    let info_viewer = info.viewer;
    let mut req = crate::graphql::prepare(async_graphql::Request::new(query), app, info);
    if let Some(name) = p.operation_name {
        req = req.operation_name(name);
    }
    if let Some(vars) = p.variables {
        req = req.variables(Variables::from_json(Value::Object(vars)));
    }
    for (path, upload) in p.uploads {
        placeholder(&mut req.variables, &path);
        req.set_upload(&path, upload);
    }
    if let Some(ext) = p.extensions {
        for (k, v) in ext {
            if let Ok(v) = async_graphql::Value::from_json(v) {
                req.extensions.insert(k, v);
            }
        }
    }
    match lean {
        Some(parsed) => {
            req.set_parsed_query(parsed.document.clone());
            let mut resp = bounded(app, contained(app.query_schema.execute(req), request_id)).await;
            crate::graphql::lean::finish(&mut resp, &parsed, operation_name.as_deref());
            resp
        }
        None => {
            let schema = app.schema_for(info_viewer.as_ref());
            bounded(app, contained(schema.execute(req), request_id)).await
        }
    }
}

/// Answers a signed-out operation from the response cache, or runs it (through `run`) and keeps the
/// answer when it is a complete query answer. Returns the response to observe, and the cached answer
/// when that is what goes out.
async fn answer_cached<Fut>(
    app: &AppState,
    cache: &Arc<ResponseCache>,
    key: Key,
    info: &RequestInfo,
    request_id: &str,
    run: impl FnOnce() -> Fut,
) -> (async_graphql::Response, Option<Arc<Answer>>)
where
    Fut: Future<Output = async_graphql::Response>,
{
    let served = |answer: Arc<Answer>| (async_graphql::Response::new(async_graphql::Value::Null), Some(answer));
    match cache.lookup(&key).await {
        Lookup::Fresh(answer) => served(answer),
        Lookup::Stale { answer, refresh } => {
            if refresh {
                tokio::spawn(refresh_cached(app.clone(), cache.clone(), key, request_id.to_string()));
            }
            served(answer)
        }
        // Only queries are kept; a mutation is run once, here, never through the cache.
        Lookup::Miss(stamp)
            if selected_operation(&key.query, key.operation.as_deref()) == Some(OperationType::Query) =>
        {
            let visits = info.visits.clone();
            let filled = cache
                .fill(key, stamp, || async move {
                    let resp = run().await;
                    let answer = shareable(&resp, &visits);
                    (resp, answer)
                })
                .await;
            match filled {
                Filled::Own(resp) => (resp, None),
                Filled::Shared(answer) => served(answer),
                Filled::Gone => (async_graphql::Response::from_errors(vec![gone()]), None),
            }
        }
        Lookup::Miss(_) | Lookup::Bypass => (run().await, None),
    }
}

/// The error for the rare answer evicted between being computed and being read.
fn gone() -> async_graphql::ServerError {
    let err = async_graphql::ServerError::new("the server is busy; try again", None);
    crate::graphql::codes::with_code(err, code::OVERLOADED)
}

/// A stale answer recomputed in the background by the one request that found it stale.
async fn refresh_cached(app: AppState, cache: Arc<ResponseCache>, key: Key, request_id: String) {
    let Some(stamp) = cache.epoch().stamp().await else { return };
    let p = Params {
        query: None,
        document_id: None,
        operation_name: key.operation.as_deref().map(str::to_string),
        variables: serde_json::from_str::<Map<String, Value>>(&key.variables).ok(),
        extensions: None,
        uploads: Vec::new(),
    };
    let query = key.query.to_string();
    let info = RequestInfo::default();
    let visits = info.visits.clone();
    let _: Filled<()> = cache
        .fill(key, stamp, || async {
            let resp = run_one(&app, query, p, info, &request_id).await;
            ((), shareable(&resp, &visits))
        })
        .await;
}

/// The answer to keep for a response every signed-out reader would get: complete (no error) and
/// setting nothing on the client (no header such as a cookie).
fn shareable(resp: &async_graphql::Response, visits: &std::sync::Mutex<Vec<(Target, i64)>>) -> Option<Answer> {
    if !resp.errors.is_empty() || !resp.http_headers.is_empty() {
        return None;
    }
    let body = serde_json::to_vec(&Ordered::new(resp, true)).ok()?;
    let visits = visits.lock().map(|v| v.clone()).unwrap_or_default();
    Some(Answer { body: Bytes::from(body), visits })
}

/// A request that needs the database while it cannot be reached: 503 with `Retry-After`.
fn unavailable(media: Media, retry_after_secs: u64) -> Response {
    let message = AppError::Unavailable { retry_after_secs }.into_request_error().message;
    let mut resp = reject_with(StatusCode::SERVICE_UNAVAILABLE, media, code::SERVICE_UNAVAILABLE, &message);
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    resp
}

/// The `Retry-After` of a response that failed because the database could not be reached.
fn unavailable_in(resp: &async_graphql::Response) -> Option<u64> {
    let unavailable = async_graphql::Value::from(code::SERVICE_UNAVAILABLE);
    resp.errors.iter().find_map(|e| {
        let ext = e.extensions.as_ref()?;
        if ext.get("code") != Some(&unavailable) {
            return None;
        }
        match ext.get("retryAfter") {
            Some(async_graphql::Value::Number(n)) => n.as_u64(),
            _ => Some(1),
        }
    })
}

/// Bounds one operation by `OPERATION_TIMEOUT_SECS`: a database that stops answering without
/// closing its connections would otherwise hold the request (and its pool connection) forever.
/// Running out counts as a failure to reach the database.
pub(crate) async fn bounded(
    app: &AppState,
    execution: impl std::future::Future<Output = async_graphql::Response>,
) -> async_graphql::Response {
    let limit = std::time::Duration::from_secs(app.config.operation_timeout_secs);
    match tokio::time::timeout(limit, execution).await {
        Ok(resp) => resp,
        Err(_) => {
            app.db_stats.breaker.suspect(&app.db);
            tracing::warn!(limit_secs = limit.as_secs(), "operation cancelled at its time limit");
            async_graphql::Response::from_errors(vec![AppError::QueryTimeout.into_request_error()])
        }
    }
}

/// Runs one execution with panics contained: a bug in a resolver answers this request `INTERNAL`
/// (logged with the request id) instead of unwinding into the server. Stack overflows cannot be
/// caught; the document bounds (`http::bounds`) are what prevents those.
pub(crate) async fn contained(
    execution: impl std::future::Future<Output = async_graphql::Response>,
    request_id: &str,
) -> async_graphql::Response {
    use futures_util::FutureExt as _;
    match std::panic::AssertUnwindSafe(execution).catch_unwind().await {
        Ok(resp) => resp,
        Err(panic) => {
            let what = crate::error::panic_message(panic.as_ref());
            tracing::error!(request_id, panic = %what, "a GraphQL execution panicked");
            async_graphql::Response::from_errors(vec![crate::graphql::codes::with_code(
                async_graphql::ServerError::new("internal error", None),
                code::INTERNAL,
            )])
        }
    }
}

/// Gives every error of a response a code: errors async-graphql raises itself carry none. A
/// request-level one is a bad request, a field-level one an argument that failed to coerce;
/// anything else is ours and internal. Returns whether the response failed as a whole request
/// (parse, validation, variables: no field ran).
pub(crate) fn code_errors(resp: &mut async_graphql::Response) -> bool {
    let request_error = resp.data == async_graphql::Value::Null
        && !resp.errors.is_empty()
        && resp.errors.iter().all(|e| e.path.is_empty());
    for err in &mut resp.errors {
        // A required variable the request left out surfaces where a field reads it (async-graphql
        // does not check before execution): the client's input, not a server fault.
        let missing_variable = err.message.starts_with("Variable ") && err.message.ends_with(" is not defined.");
        let coercion = err.message.starts_with("Failed to parse")
            || err.message.starts_with("Invalid value")
            || err.message.starts_with("Expected input type")
            || missing_variable;
        let fallback = match (request_error, coercion) {
            (true, _) => code::BAD_REQUEST,
            (false, true) => code::BAD_USER_INPUT,
            (false, false) => code::INTERNAL,
        };
        *err = crate::graphql::codes::with_code(err.clone(), fallback);
    }
    request_error
}

/// A response as the spec lays it out: `errors` first when present, then `data` (in the order the
/// document selected, as the executor produced it; no detour through an unordered JSON map), then
/// `extensions`.
#[derive(serde::Serialize)]
pub(crate) struct Ordered<'a> {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [async_graphql::ServerError],
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a async_graphql::Value>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    extensions: &'a std::collections::BTreeMap<String, async_graphql::Value>,
}

impl<'a> Ordered<'a> {
    /// `with_data: false` leaves `data` out (a request error under graphql-response+json).
    pub(crate) fn new(resp: &'a async_graphql::Response, with_data: bool) -> Ordered<'a> {
        Ordered { errors: &resp.errors, data: with_data.then_some(&resp.data), extensions: &resp.extensions }
    }
}

/// Serialises one response; returns whether it failed as a whole request, the headers resolvers
/// set, and the body.
fn finish(mut resp: async_graphql::Response, media: Media) -> (bool, HeaderMap, Vec<u8>) {
    let request_error = code_errors(&mut resp);
    let headers = std::mem::take(&mut resp.http_headers);
    let with_data = !(request_error && media == Media::GraphqlResponseJson);
    let body = serde_json::to_vec(&Ordered::new(&resp, with_data)).unwrap_or_else(|err| {
        tracing::error!(%err, "could not serialise a response");
        INTERNAL_BODY.as_bytes().to_vec()
    });
    (request_error, headers, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_execution_answers_internal_and_the_caller_goes_on() {
        let resp = contained(async { panic!("resolver bug") }, "req-1").await;
        assert_eq!(resp.errors.len(), 1);
        assert_eq!(resp.errors[0].message, "internal error", "the panic's text is not leaked");
        let code = resp.errors[0].extensions.as_ref().and_then(|e| e.get("code")).cloned();
        assert_eq!(code, Some(async_graphql::Value::from(code::INTERNAL)));
    }

    #[test]
    fn responses_keep_the_order_the_document_selected() {
        let mut map = async_graphql::indexmap::IndexMap::new();
        map.insert(async_graphql::Name::new("zeta"), async_graphql::Value::from(1));
        map.insert(async_graphql::Name::new("alpha"), async_graphql::Value::from(2));
        let resp = async_graphql::Response::new(async_graphql::Value::Object(map));
        let (_, _, body) = finish(resp, Media::Json);
        assert_eq!(String::from_utf8(body).unwrap(), r#"{"data":{"zeta":1,"alpha":2}}"#);
    }
}
