//! The media routes. `GET /media/{id}`: public uploads, to anyone, with range requests (videos) and
//! long caching (a file never changes under its id). `GET /media/{id}/thumbnail` and
//! `GET /media/{id}/poster`: an image's thumbnail (once made) and a video's poster, under the very
//! same check as the file they belong to ([`media::public`]). `GET /media/private/{id}`: an ID photo, to
//! REVIEWERs and ADMINs only, every view audited. `GET /media/messages/{id}`: a private message's
//! photo or video, to the conversation's two members. `GET /media/exports/{id}`: a data export, to its
//! owner only. Private answers are never cached.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::AppState;
use crate::auth::{self, Viewer};
use crate::authz::scopes::Scope;
use crate::error::{AppError, code};
use crate::media::{Area, SealedFile};
use crate::services::{export, identity, media};
use futures_util::TryStreamExt as _;

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn from_error(err: AppError) -> Response {
    let status = match &err {
        AppError::Unauthenticated => StatusCode::UNAUTHORIZED,
        AppError::Forbidden(_) | AppError::InsufficientScope { .. } => StatusCode::FORBIDDEN,
        AppError::NotFound(_) => StatusCode::NOT_FOUND,
        AppError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let retry_after = match &err {
        AppError::Unavailable { retry_after_secs } => Some(*retry_after_secs),
        _ => None,
    };
    let code = err.code();
    let gql: async_graphql::Error = err.into();
    let mut resp = refuse(status, code, &gql.message);
    if let Some(secs) = retry_after {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// HEAD on a private file: refused rather than answered, since answering would open, unseal and
/// (for ID photos) audit the whole file for headers nobody needs.
fn get_only() -> Response {
    let mut resp = refuse(StatusCode::METHOD_NOT_ALLOWED, code::BAD_REQUEST, "private files answer GET only");
    resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET"));
    resp
}

fn not_found() -> Response {
    refuse(StatusCode::NOT_FOUND, code::NOT_FOUND, "file not found")
}

fn protect(headers: &mut HeaderMap) {
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Uploaded content is shown, never run, even if a browser is tricked into rendering it as a page.
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
}

pub async fn public(State(app): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    serve_public(app, id, Variant::File, req).await
}

pub async fn thumbnail(State(app): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    serve_public(app, id, Variant::Thumbnail, req).await
}

pub async fn poster(State(app): State<AppState>, Path(id): Path<String>, req: Request) -> Response {
    serve_public(app, id, Variant::Poster, req).await
}

/// Which file of a public upload a route serves.
#[derive(Clone, Copy)]
enum Variant {
    File,
    Thumbnail,
    Poster,
}

/// The public media route: one check ([`media::public`]) for a file and what derives from it.
async fn serve_public(app: AppState, id: String, variant: Variant, req: Request) -> Response {
    let Ok(id) = uuid::Uuid::parse_str(&id) else { return not_found() };
    let row = match media::public(&app.db, &id).await {
        Ok(Some(row)) => row,
        Ok(None) => return not_found(),
        Err(e) => return from_error(e),
    };
    let (area, mime) = match variant {
        Variant::File => (Area::Public, Some(row.mime.as_str())),
        Variant::Thumbnail => {
            let ready = row.thumbnail_status.as_deref() == Some(media::ThumbnailStatus::Ready.as_str());
            (Area::Thumbnails, ready.then_some(crate::media::thumbnail::MIME))
        }
        Variant::Poster => (Area::Posters, row.poster_mime.as_deref()),
    };
    let Some(mime) = mime.and_then(|m| HeaderValue::from_str(m).ok()) else { return not_found() };
    let mut resp = match stream_file(&app, area, &id, mime, req.method(), req.headers()).await {
        Ok(Some(resp)) => resp,
        Ok(None) => return not_found(),
        Err(e) => return from_error(AppError::internal(e)),
    };
    if resp.status().is_success() || resp.status() == StatusCode::NOT_MODIFIED {
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    }
    protect(resp.headers_mut());
    resp
}

/// Streams a served file from storage (either backend) without holding it in memory: the whole
/// file, one byte range of it (206; 416 outside it), 304 when the client's copy is current, or the
/// headers alone for HEAD. A plain GET is one storage request; HEAD, a revalidation or a range first
/// read the file's size and version, so a 304 or HEAD never fetches the body.
async fn stream_file(
    app: &AppState,
    area: Area,
    id: &uuid::Uuid,
    mime: HeaderValue,
    method: &axum::http::Method,
    headers: &HeaderMap,
) -> Result<Option<Response>, crate::media::StoreError> {
    let head_only = method == axum::http::Method::HEAD;
    let range = headers.get(header::RANGE).and_then(|r| r.to_str().ok());
    let revalidating = headers.contains_key(header::IF_NONE_MATCH) || headers.contains_key(header::IF_MODIFIED_SINCE);
    let meta = if head_only || revalidating || range.is_some() {
        let Some(meta) = app.media.head(area, id).await? else { return Ok(None) };
        let etag = quoted_etag(meta.e_tag.as_deref(), id);
        if unchanged(headers, &etag, meta.last_modified) {
            return Ok(Some(not_modified(&etag)));
        }
        Some(meta)
    } else {
        None
    };
    let wanted = match (range, &meta) {
        (Some(range), Some(meta)) => {
            match http_range_header::parse_range_header(range).and_then(|p| p.validate(meta.size)) {
                Ok(ranges) if ranges.len() == 1 => ranges.first().cloned(),
                Ok(_) => None,
                Err(_) => return Ok(Some(unsatisfiable(meta.size))),
            }
        }
        _ => None,
    };
    let partial = wanted.clone();
    let (meta, span, body) = match (head_only, meta) {
        (true, Some(meta)) => {
            let span = partial.as_ref().map_or(0..meta.size, |r| *r.start()..r.end().saturating_add(1));
            (meta, span, Body::empty())
        }
        _ => {
            let Some(file) = app.media.download(area, id, wanted).await? else { return Ok(None) };
            (file.meta, file.range, Body::from_stream(file.body))
        }
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, mime);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(span.end.saturating_sub(span.start)));
    if let Ok(v) = HeaderValue::from_str(&quoted_etag(meta.e_tag.as_deref(), id)) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&http_date(meta.last_modified)) {
        h.insert(header::LAST_MODIFIED, v);
    }
    if partial.is_some() {
        let (start, end) = (span.start, span.end.saturating_sub(1));
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{}", meta.size)) {
            h.insert(header::CONTENT_RANGE, v);
        }
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(Some(resp))
}

fn http_date(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Whether the client's copy is current (RFC 9110 13.1): `If-None-Match` by weak comparison
/// (`W/"x"` matches `"x"`), else `If-Modified-Since` against the file's time to the second.
fn unchanged(headers: &HeaderMap, etag: &str, modified: chrono::DateTime<chrono::Utc>) -> bool {
    let weak = |t: &str| t.trim().trim_start_matches("W/").to_string();
    if let Some(list) = headers.get(header::IF_NONE_MATCH) {
        let Ok(list) = list.to_str() else { return false };
        return list.split(',').any(|t| t.trim() == "*" || weak(t) == weak(etag));
    }
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
        .is_some_and(|since| modified.timestamp() <= since.timestamp())
}

/// The storage's version tag as an HTTP entity tag; the file's id when the backend gives none (a
/// file never changes under its id).
fn quoted_etag(etag: Option<&str>, id: &uuid::Uuid) -> String {
    match etag.map(|e| e.trim_matches('"')).filter(|e| !e.is_empty() && !e.contains('"')) {
        Some(e) => format!("\"{e}\""),
        None => format!("\"{}\"", id.simple()),
    }
}

fn not_modified(etag: &str) -> Response {
    let mut resp = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(v) = HeaderValue::from_str(etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// What every private route checks first: GET only, a signed-in viewer, and a file id that can be
/// one. The rule for the file itself is the service's.
async fn opening(
    app: &AppState,
    method: &Method,
    headers: &HeaderMap,
    id: &str,
    scope: Option<Scope>,
) -> Result<(Viewer, uuid::Uuid), Response> {
    if method == Method::HEAD {
        return Err(get_only());
    }
    let viewer = auth::viewer::require_for_request(&app.db, &app.config, headers).await.map_err(from_error)?;
    crate::authz::scopes::require(&viewer, scope).map_err(from_error)?;
    let id = uuid::Uuid::parse_str(id).map_err(|_| not_found())?;
    Ok((viewer, id))
}

/// A private file's response. Its body keeps the file's share of the room for unsealed files until
/// the connection has taken the bytes, so memory stays within `MAX_UNSEALED_MIB` however many
/// downloads run at once.
fn private_body(mime: &str, bytes: Vec<u8>, room: crate::media::Room, disposition: Option<String>) -> Response {
    let len = bytes.len();
    let chunks = futures_util::stream::unfold((Some(bytes), Some(room)), |(bytes, room)| async move {
        // The second poll comes once the first chunk was handed on: the room goes back then.
        bytes.map(|b| (Ok::<_, std::convert::Infallible>(bytes::Bytes::from(b)), (None, room)))
    });
    private_response(Body::from_stream(chunks), len as u64, mime, disposition)
}

pub async fn private(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (viewer, id) = match opening(&app, &method, &headers, &id, None).await {
        Ok(opened) => opened,
        Err(resp) => return resp,
    };
    let ip = peer.ip().to_string();
    match identity::photo(&app.db, &app.media, &viewer, Some(&ip), &id, photo_window(&app)).await {
        Ok((mime, file)) => private_body(&mime, file.bytes, file.room, None),
        Err(e) => from_error(e),
    }
}

/// A private message's photo or video, to the conversation's members (and moderators while the
/// message is reported): [`media::message_file`].
pub async fn message(
    State(app): State<AppState>,
    method: Method,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (viewer, id) = match opening(&app, &method, &headers, &id, Some(Scope::MessagesRead)).await {
        Ok(opened) => opened,
        Err(resp) => return resp,
    };
    match media::message_file(&app.db, &app.media, &viewer, &id).await {
        Ok((mime, file)) => ranged(&mime, file, headers.get(header::RANGE)),
        Err(e) => from_error(e),
    }
}

/// A private file that video players can seek in: one satisfiable range is 206 with
/// `Content-Range`, an unsatisfiable one 416; no range (or several, which no player sends) gets the
/// whole file.
fn ranged(mime: &str, file: SealedFile, range: Option<&HeaderValue>) -> Response {
    let total = file.len();
    let wanted = range
        .and_then(|r| r.to_str().ok())
        .map(|r| http_range_header::parse_range_header(r).and_then(|parsed| parsed.validate(total)));
    let mut resp = match wanted {
        // (An empty file has no byte to range over: it is answered whole.)
        Some(Ok(ranges)) if ranges.len() == 1 && total > 0 => {
            let (start, end) = (*ranges[0].start(), *ranges[0].end());
            let mut resp = sealed_body(mime, file, Some(start..=end), None);
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{total}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            resp
        }
        Some(Err(_)) => unsatisfiable(total),
        // No range, or several (answered whole, as RFC 9110 allows).
        _ => sealed_body(mime, file, None, None),
    };
    resp.headers_mut().insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    resp
}

/// A sealed file's response, or one range of it: unsealed a few segments at a time as the
/// connection takes them. A failure mid-way (the storage, a tampered file) ends the connection
/// early, so the client sees a short body rather than wrong bytes; it is logged.
fn sealed_body(
    mime: &str,
    file: SealedFile,
    range: Option<std::ops::RangeInclusive<u64>>,
    disposition: Option<String>,
) -> Response {
    let len = range.as_ref().map_or(file.len(), |r| r.end() - r.start() + 1);
    let body = match (range, file.len()) {
        (Some(r), _) => Body::from_stream(file.stream(r).inspect_err(log_sealed_failure)),
        (None, 0) => Body::empty(),
        (None, total) => Body::from_stream(file.stream(0..=total - 1).inspect_err(log_sealed_failure)),
    };
    private_response(body, len, mime, disposition)
}

/// A private file's response around `body` (`len` bytes): never cached, never sniffed or framed.
fn private_response(body: Body, len: u64, mime: &str, disposition: Option<String>) -> Response {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(mime).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    if let Some(d) = disposition.and_then(|d| HeaderValue::from_str(&d).ok()) {
        h.insert(header::CONTENT_DISPOSITION, d);
    }
    protect(h);
    resp
}

fn log_sealed_failure(e: &crate::media::StoreError) {
    tracing::error!(error = %e, "a sealed download failed after its headers were sent");
}

fn unsatisfiable(total: u64) -> Response {
    let mut resp = refuse(StatusCode::RANGE_NOT_SATISFIABLE, code::BAD_USER_INPUT, "the range is outside the file");
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
        resp.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    resp
}

pub async fn export(
    State(app): State<AppState>,
    method: Method,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (viewer, id) = match opening(&app, &method, &headers, &id, None).await {
        Ok(opened) => opened,
        Err(resp) => return resp,
    };
    match export::download(&app.db, &app.media, &viewer, &id).await {
        Ok(file) => {
            let name =
                format!("attachment; filename=\"ecer-data-export-{}.json\"", chrono::Utc::now().format("%Y%m%d"));
            sealed_body("application/json; charset=utf-8", file, None, Some(name))
        }
        Err(e) => from_error(e),
    }
}

/// How long after a decision reviewers still see a verification's ID photos.
fn photo_window(app: &AppState) -> chrono::Duration {
    chrono::Duration::days(i64::from(app.config.id_photo_retention_days))
}
