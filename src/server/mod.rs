//! The HTTP server: the accept loop, connection caps, HTTP/1.1 timeouts and limits, and graceful
//! shutdown. `axum::serve` offers no header, body or idle timeouts and no connection cap, so
//! connections are served here with hyper directly.
//!
//! - A new connection first takes its place in [`Capacity`]: past `MAX_CONNECTIONS`, or
//!   `MAX_CONNECTIONS_PER_IP` for its address, it gets a canned 503/429 `TOO_MANY_CONNECTIONS`
//!   written without waiting and is closed before anything is read. The place is held by the socket
//!   itself ([`Tracked`]), so a WebSocket keeps it for as long as it is open.
//! - hyper's HTTP/1.1 `header_read_timeout` closes a connection whose request head is not complete
//!   within `HTTP_HEADER_TIMEOUT_SECS`. hyper starts that timer when the connection opens and again
//!   whenever it goes idle after a response, so the same setting is the keep-alive idle timeout.
//!   `HTTP_MAX_HEADER_BYTES` bounds the head (431 beyond).
//! - A write that waits longer than `HTTP_WRITE_TIMEOUT_SECS` for a client that stopped reading
//!   closes the connection (tokio-io-timeout around the socket): hyper never times out a write, so a
//!   response nobody reads would otherwise hold its memory and its place for as long as the peer's
//!   TCP stack keeps the connection up.
//! - Body deadlines and load shedding are request middleware: see [`admission`].
//!
//! HTTP/1.1 only, as before (the build has no HTTP/2 support). hyper-util's `auto` builder is not
//! used: to tell HTTP/2 from HTTP/1 it first reads the opening bytes with no timeout, before hyper's
//! header timer starts, so a client that connects and sends nothing (or one byte) would be held
//! forever.

pub mod admission;
pub mod capacity;
pub mod proxies;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_io_timeout::TimeoutWriter;
use tower::ServiceExt as _;

pub use capacity::{Capacity, ClientKey, Full};

use crate::config::Config;
use crate::error::code;
use crate::metrics::METRICS;

/// Seconds a refused connection is asked to wait before trying again.
pub const TOO_MANY_CONNECTIONS_RETRY_AFTER_SECS: u64 = 5;

/// File descriptors a gateway needs besides client connections (database pool, Redis, listener,
/// logs, spooled uploads, files being served): start-up warns when the open-file limit leaves less.
const RESERVED_FILES: u64 = 1_000;

/// A client socket that holds its connection's place in the caps until it is closed, and fails a
/// write stalled for `HTTP_WRITE_TIMEOUT_SECS`.
pub struct Tracked {
    stream: Pin<Box<TimeoutWriter<TcpStream>>>,
    _permit: capacity::ConnectionPermit,
}

impl Tracked {
    fn new(stream: TcpStream, permit: capacity::ConnectionPermit, write_timeout: Duration) -> Tracked {
        // Reads pass straight through: they have their own deadlines (header, body, WebSocket
        // keepalive), and a timer per read would cost every idle socket.
        let mut stream = TimeoutWriter::new(stream);
        stream.set_timeout(Some(write_timeout));
        Tracked { stream: Box::pin(stream), _permit: permit }
    }
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        self.stream.as_mut().poll_read(cx, buf)
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.stream.as_mut().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.stream.as_mut().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.stream.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.stream.as_mut().poll_shutdown(cx)
    }
}

/// The whole answer to a connection refused at accept: written in one non-blocking write, before the
/// request is read (HTTP clients read an early response), then the socket is closed.
fn canned_refusal(full: Full) -> Vec<u8> {
    let (status, message) = match full {
        Full::Instance => ("503 Service Unavailable", "this server holds too many connections; retry shortly"),
        Full::Address => ("429 Too Many Requests", "too many connections from your address; close some and retry"),
    };
    let body = crate::http::graphql::error_body(code::TOO_MANY_CONNECTIONS, message);
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json; charset=utf-8\r\ncache-control: no-store\r\n\
         retry-after: {TOO_MANY_CONNECTIONS_RETRY_AFTER_SECS}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn http1(config: &Config) -> hyper::server::conn::http1::Builder {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(config.http_header_timeout_secs))
        .max_header_size(config.http_max_header_bytes)
        .keep_alive(true);
    http
}

/// Warns when the process may not open `MAX_CONNECTIONS` sockets and still have files to spare
/// (Linux; elsewhere nothing is checked).
fn check_open_file_limit(max_connections: usize) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else { return };
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(soft) = soft
        && (max_connections as u64).saturating_add(RESERVED_FILES) > soft
    {
        tracing::warn!(
            max_connections,
            open_file_limit = soft,
            "MAX_CONNECTIONS leaves fewer than {RESERVED_FILES} of the open-file limit for the database, \
             Redis and files: lower it or raise the limit (ulimit -n, LimitNOFILE=)"
        );
    }
}

/// Serves `router` on `listener` until `shutdown` resolves; then runs `on_shutdown` (which tells
/// WebSockets to go), stops accepting, lets every open request finish, and returns once all
/// connections have closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: &Config,
    capacity: Arc<Capacity>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_shutdown: impl FnOnce(),
) -> std::io::Result<()> {
    check_open_file_limit(capacity.max_connections());
    let http = Arc::new(http1(config));
    let write_timeout = Duration::from_secs(config.http_write_timeout_secs);
    let refusals = [canned_refusal(Full::Instance), canned_refusal(Full::Address)];
    // Checked by `Config::validate`; a list that fails here trusts no one.
    let proxies = Arc::new(config.trusted_proxies().unwrap_or_default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Every connection task holds a clone; `recv` returns `None` once the last one has finished.
    let (open_tx, mut open_rx) = tokio::sync::mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    on_accept_error(err).await;
                    continue;
                }
            },
        };
        // Answers and WebSocket frames go out as soon as they are written: Nagle's algorithm would
        // hold a small frame back until the client's delayed ACK (up to 40 ms on Linux).
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%err, "could not set TCP_NODELAY");
        }
        let permit = match capacity.admit_connection(peer.ip(), !proxies.trusts(peer.ip())) {
            Ok(permit) => permit,
            Err(full) => {
                let (cap, answer) = match full {
                    Full::Instance => ("instance", &refusals[0]),
                    Full::Address => ("address", &refusals[1]),
                };
                METRICS.connections_refused.with_label_values(&[cap]).inc();
                // Never waits on the client: whatever the socket buffer takes now, then close.
                let _ = stream.try_write(answer);
                continue;
            }
        };
        let io = TokioIo::new(Tracked::new(stream, permit, write_timeout));
        let service = hyper::service::service_fn({
            let router = router.clone();
            let proxies = proxies.clone();
            move |mut req: hyper::Request<Incoming>| {
                // What `into_make_service_with_connect_info::<SocketAddr>` did: handlers read the
                // client's address, the peer's unless the peer is a trusted proxy.
                let client = proxies.client(peer, req.headers());
                req.extensions_mut().insert(ConnectInfo(client));
                router.clone().oneshot(req.map(axum::body::Body::new))
            }
        });
        let http = http.clone();
        let mut stop = stop_rx.clone();
        let open = open_tx.clone();
        tokio::spawn(async move {
            let conn = http.serve_connection(io, service).with_upgrades();
            tokio::pin!(conn);
            // The borrow `wait_for` returns must not live across an await (it is not `Send`).
            let stopping = async move {
                let _ = stop.wait_for(|stop| *stop).await.map(|_| ());
            };
            tokio::pin!(stopping);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                () = &mut stopping => {
                    // Idle connections close at once; a request in progress finishes first.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(err) = result {
                // Timeouts, resets and malformed requests: the client's problem, not ours.
                tracing::debug!(%err, %peer, "connection ended with an error");
            }
            drop(open);
        });
    }
    drop(listener);
    on_shutdown();
    let _ = stop_tx.send(true);
    drop(open_tx);
    let _ = open_rx.recv().await;
    Ok(())
}

/// `accept` failed. A connection reset before it was accepted is routine; anything else (out of file
/// descriptors, above all) would fail again at once, so wait a moment rather than spin.
async fn on_accept_error(err: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(err.kind(), ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset) {
        return;
    }
    tracing::error!(%err, "accept failed; pausing before the next accept");
    tokio::time::sleep(Duration::from_millis(250)).await;
}
