//! Request-side defences, as axum middleware:
//! - [`body_deadline`] (every route): a request body must arrive within `HTTP_BODY_TIMEOUT_SECS`, an
//!   upload at `UPLOAD_MIN_BYTES_PER_SEC` or faster after that allowance; late ones get 408
//!   REQUEST_TIMEOUT and the connection is closed.
//! - [`shed`] (GraphQL and media routes): a request gets one of `MAX_REQUESTS_IN_FLIGHT` work slots,
//!   or an immediate 503 OVERLOADED. A request with a body is admitted when its body has arrived, so
//!   slow senders wait in I/O and cannot occupy the slots.
//!
//! Both watch the body the handler reads rather than reading it themselves, so the handlers keep
//! their own size limits and error answers.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::capacity::{Capacity, WorkPermit};
use crate::app::AppState;
use crate::error::code;
use crate::metrics::METRICS;

/// Seconds a shed client is asked to wait: long enough to let a burst pass, short enough that a
/// person retrying by hand does not notice.
pub const OVERLOADED_RETRY_AFTER_SECS: u64 = 1;

fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| m.essence_str() == "multipart/form-data")
}

/// The body of a request that took too long, as its handler sees it (an error).
#[derive(Debug)]
struct BodyTooSlow;

impl std::fmt::Display for BodyTooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body arrived too slowly")
    }
}

impl std::error::Error for BodyTooSlow {}

/// An upload's deadline: `allowance` from the start, plus 1/`rate` seconds for every byte received.
/// tower-http's deadline body has a fixed deadline and its timeout body resets on every frame (one
/// byte a minute would keep it alive); neither gives a rate floor.
struct RateFloor {
    body: Body,
    deadline: Instant,
    sleep: Pin<Box<Sleep>>,
    bytes_per_sec: u64,
}

impl RateFloor {
    fn new(allowance: Duration, bytes_per_sec: u64, body: Body) -> RateFloor {
        let deadline = Instant::now() + allowance;
        RateFloor { body, deadline, sleep: Box::pin(tokio::time::sleep_until(deadline)), bytes_per_sec }
    }
}

impl HttpBody for RateFloor {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if self.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(axum::Error::new(BodyTooSlow))));
        }
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref))
            && let Some(data) = data
        {
            let nanos = (data.len() as u128 * 1_000_000_000) / u128::from(self.bytes_per_sec.max(1));
            let earned = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
            self.deadline += earned;
            let deadline = self.deadline;
            self.sleep.as_mut().reset(deadline);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// What became of a request body while its handler ran.
#[derive(Default)]
struct Seen {
    /// It failed because it arrived too late.
    late: AtomicBool,
    /// It was read to its end.
    ended: AtomicBool,
}

/// Passes a body through and notes whether it failed because it was late, or was read to its end.
struct Watched {
    body: Body,
    seen: Arc<Seen>,
}

fn is_lateness(err: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if e.is::<BodyTooSlow>() || e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        match &frame {
            Some(Err(err)) if is_lateness(err) => self.seen.late.store(true, Ordering::Relaxed),
            None => self.seen.ended.store(true, Ordering::Relaxed),
            Some(Ok(_)) if self.body.is_end_stream() => self.seen.ended.store(true, Ordering::Relaxed),
            Some(_) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A JSON refusal with a code, never cached, with `Retry-After` when the client may simply retry.
pub(crate) fn refusal(status: StatusCode, code: &str, message: &str, retry_after_secs: Option<u64>) -> Response {
    let mut resp = Response::new(Body::from(crate::http::graphql::error_body(code, message)));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(secs) = retry_after_secs {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

pub(crate) fn overloaded() -> Response {
    refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        code::OVERLOADED,
        "the server is busy; retry shortly",
        Some(OVERLOADED_RETRY_AFTER_SECS),
    )
}

/// Middleware on every route: bounds the time a request body may take, and closes the connection
/// after a response that left the body unread.
///
/// hyper notices an unread body only after the response head has gone out (so without
/// `Connection: close`), and then closes the connection unless the rest was already buffered. A
/// client that pooled the connection meanwhile sends its next request into a closing socket and
/// sees a reset; saying `close` in the answer keeps it from reusing the connection at all.
pub async fn body_deadline(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let allowance = Duration::from_secs(app.config.http_body_timeout_secs);
    let upload = is_multipart(req.headers());
    let seen = Arc::new(Seen::default());
    let watch = seen.clone();
    let req = req.map(|body| {
        let bounded = if upload {
            Body::new(RateFloor::new(allowance, app.config.upload_min_bytes_per_sec, body))
        } else {
            Body::new(tower_http::timeout::DeadlineBody::new(allowance, body))
        };
        Body::new(Watched { body: bounded, seen: watch })
    });
    let mut resp = next.run(req).await;
    if seen.late.load(Ordering::Relaxed) {
        METRICS.body_timeouts.inc();
        resp = refusal(StatusCode::REQUEST_TIMEOUT, code::REQUEST_TIMEOUT, "the request body arrived too slowly", None);
    } else if seen.ended.load(Ordering::Relaxed) {
        return resp;
    }
    // The rest of the body may still be on its way: this connection cannot carry another request.
    resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// Where a request with a body stands: admitted when its body ended, or shed then.
enum Slot {
    Waiting,
    /// Held, never read: dropping it frees the slot.
    Admitted(#[allow(dead_code)] WorkPermit),
    Shed,
}

/// Takes a work slot at the end of the body; without one, ends the body with an error instead, and
/// the middleware answers OVERLOADED.
struct AdmitAtEnd {
    body: Body,
    capacity: Arc<Capacity>,
    slot: Arc<Mutex<Slot>>,
    decided: bool,
}

/// Why a body ended early: the instance had no work slot for the request.
#[derive(Debug)]
struct Shed;

impl std::fmt::Display for Shed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("overloaded")
    }
}

impl std::error::Error for Shed {}

impl HttpBody for AdmitAtEnd {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        if frame.is_some() || self.decided {
            return Poll::Ready(frame);
        }
        self.decided = true;
        let admitted = self.capacity.admit_work();
        let shed = admitted.is_none();
        // A std Mutex: held for one assignment, never across an await.
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = match admitted {
            Some(permit) => Slot::Admitted(permit),
            None => Slot::Shed,
        };
        Poll::Ready(shed.then(|| Err(axum::Error::new(Shed))))
    }

    fn is_end_stream(&self) -> bool {
        // Not before the decision: a reader that trusted it would stop before the last poll.
        self.decided && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Middleware on the GraphQL and media routes: admits a request to a work slot or sheds it.
pub async fn shed(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let capacity = app.capacity.clone();
    if req.body().is_end_stream() {
        let Some(permit) = capacity.admit_work() else { return overloaded() };
        let resp = next.run(req).await;
        drop(permit);
        return resp;
    }
    if is_multipart(req.headers()) {
        // Admitted on arrival, but holding no slot while the files stream in: a slow link would
        // otherwise occupy a slot for minutes. Uploads need a signed-in member and are few.
        if capacity.admit_work().is_none() {
            return overloaded();
        }
        return next.run(req).await;
    }
    let slot = Arc::new(Mutex::new(Slot::Waiting));
    let watch = slot.clone();
    let req = req.map(|body| Body::new(AdmitAtEnd { body, capacity, slot: watch, decided: false }));
    let resp = next.run(req).await;
    // Taking the slot out drops the work permit now that the response is ready.
    let outcome = std::mem::replace(&mut *slot.lock().unwrap_or_else(|p| p.into_inner()), Slot::Waiting);
    match outcome {
        Slot::Shed => overloaded(),
        Slot::Admitted(_) | Slot::Waiting => resp,
    }
}
