//! GraphQL over WebSocket on `/graphql`, written to the letter of two protocols:
//! - `graphql-transport-ws` (the graphql-ws library's protocol, what current clients speak);
//! - `graphql-ws` (the legacy subscriptions-transport-ws protocol) for old clients.
//!
//! The stock async-graphql handler accepts any `connection_init` and does not give the close codes the
//! specification asks for, hence this module. Close codes (graphql-transport-ws):
//! 4400 malformed message, 4401 subscribe before `connection_ack`, 4403 rejected `connection_init`
//! (or a session revoked while connected), 4406 no supported subprotocol, 4408 no `connection_init`
//! in time, 4409 duplicate subscription id, 4429 a second `connection_init`; 1001 when this instance
//! shuts down (the client reconnects elsewhere and resumes with its cursors); 1009, 1007 and 1002 for
//! a frame too big, text that is not UTF-8, or a broken frame (RFC 6455).
//!
//! Authentication: `connection_init` payload `{"authToken": "..."}` (mobile apps), else the bearer
//! header or the session cookie of the upgrade request. The cookie counts only for a same-origin
//! upgrade, so another site cannot open a socket with a visitor's session (cross-site WebSocket
//! hijacking). A socket listens on its user's topic and re-checks its session whenever sessions of
//! that user are revoked, closing with 4403 if its own is gone.
//!
//! Each operation runs in its own task that feeds one bounded queue per socket; a single writer task
//! drains it. A client that stops reading fills the queue, the operations then wait, and after
//! `WS_SLOW_CONSUMER_SECS` an operation ends with `SUBSCRIPTION_LAGGING`: nothing is dropped silently,
//! and the client resubscribes from the cursor of the last event it received.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::Response as GqlResponse;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, Stream, StreamExt as _};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::app::AppState;
use crate::auth::{self, Viewer};
use crate::error::code;
use crate::graphql::RequestInfo;
use crate::pubsub::hub::Received;
use crate::pubsub::{Event, Subscription, Topic};

use super::shared_feed::{self, Delivery, Lagging};
use super::upgrade::{MaybeUpgrade, Socket};

pub const TRANSPORT_WS: &str = "graphql-transport-ws";
pub const LEGACY_WS: &str = "graphql-ws";

/// Error codes for errors only the WebSocket transport produces.
pub const SUBSCRIPTION_LAGGING: &str = "SUBSCRIPTION_LAGGING";
pub const TOO_MANY_SUBSCRIPTIONS: &str = "TOO_MANY_SUBSCRIPTIONS";

/// How long closing a socket may take: flushing what is queued, then the lingering close.
const CLOSING_HANDSHAKE: Duration = Duration::from_secs(5);

/// How often an authenticated socket re-reads its session, to notice expiry without a revocation (at
/// the first keep-alive tick after it).
const SESSION_RECHECK: Duration = Duration::from_secs(600);

/// `GET /graphql`: a WebSocket upgrade, or a GraphQL-over-HTTP query.
pub async fn get_or_upgrade(
    MaybeUpgrade(upgrade): MaybeUpgrade,
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    raw: RawQuery,
) -> Response {
    let Some(upgrade) = upgrade else {
        return super::graphql::get(State(app), ConnectInfo(peer), headers, raw).await;
    };
    // Held by the socket's task: the address's place is given back when the socket closes.
    let Some(ws_place) = app.capacity.admit_websocket(peer.ip()) else {
        return crate::server::admission::refusal(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            code::TOO_MANY_CONNECTIONS,
            "too many WebSockets from your address; close some and retry",
            Some(crate::server::TOO_MANY_CONNECTIONS_RETRY_AFTER_SECS),
        );
    };
    let header_token =
        auth::token_for_request(&headers, &app.config.session_cookie_name, auth::Origins::of(&app.config));
    let client = std::sync::Arc::new(super::client::client_info(&headers, &peer));
    let info = RequestInfo::new(None, client, None);
    // tungstenite zero-fills its whole read buffer before the first read and keeps it for the life
    // of the socket: the 128 KiB default held 128 KiB per idle socket, 4 KiB still 4 KiB (issue 14's
    // heap profile). A client sends a few small frames (init, subscribe, pong); a larger message
    // still arrives, the buffer growing to its length for it and reading 512 bytes per call.
    let config = WebSocketConfig::default()
        .read_buffer_size(512)
        .max_message_size(Some(app.config.max_body_bytes))
        .max_frame_size(Some(app.config.max_body_bytes));
    let selected = upgrade.select(&[TRANSPORT_WS, LEGACY_WS]);
    let proto = match selected {
        Some(TRANSPORT_WS) => Some(Proto::Transport),
        Some(_) => Some(Proto::Legacy),
        None => None,
    };
    // One pointer travels into the socket's task: a future keeps its arguments for its whole life,
    // and passed as they are, the state and the socket were held two and three times over by every
    // idle socket (issue 14's heap profile: a 4.5 KiB task per socket).
    let setup = Box::new(Setup { app, proto, header_token, info, _ws_place: ws_place });
    upgrade.on_upgrade(selected, config, move |socket| {
        let (sink, stream) = socket.split();
        run(sink, stream, setup)
    })
}

/// What a socket's task starts from.
struct Setup {
    app: AppState,
    proto: Option<Proto>,
    header_token: Option<String>,
    info: RequestInfo,
    /// The address's place among its WebSockets, given back when the socket's task ends.
    _ws_place: crate::server::capacity::AddressPermit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Transport,
    Legacy,
}

impl Proto {
    fn next_type(self) -> &'static str {
        match self {
            Proto::Transport => "next",
            Proto::Legacy => "data",
        }
    }
}

/// Why the server ends a connection.
struct Close(u16, String);

impl Close {
    fn new(code: u16, reason: impl Into<String>) -> Close {
        Close(code, reason.into())
    }
}

fn text(value: Value) -> Message {
    Message::Text(value.to_string().into())
}

/// At most this many queued frames are written together before a flush.
const WRITE_BATCH: usize = 64;

struct Connection {
    app: AppState,
    proto: Proto,
    out: mpsc::Sender<Message>,
    init_received: bool,
    acked: bool,
    header_token: Option<String>,
    /// The token this socket authenticated with, to re-check after a revocation.
    token: Option<String>,
    info: RequestInfo,
    /// Operation id -> its task. Finished tasks are swept at the next `subscribe` and at each
    /// keep-alive tick (a handle keeps its task's allocation), instead of every task reporting its
    /// end over a channel that each idle socket would hold.
    operations: HashMap<String, AbortHandle>,
    revocations: Option<Subscription>,
}

async fn run(mut sink: SplitSink<Socket, Message>, mut stream: SplitStream<Socket>, setup: Box<Setup>) {
    let Setup { app, proto, header_token, info, _ws_place } = *setup;
    let Some(proto) = proto else {
        let frame = close_frame(4406, "Subprotocol not acceptable".into());
        let _ = sink.send(frame).await;
        let _ = sink.close().await;
        linger(stream, Some(sink), Instant::now() + CLOSING_HANDSHAKE).await;
        return;
    };
    let _open = crate::metrics::GaugeGuard::new(&crate::metrics::METRICS.ws_connections);
    let (out, mut out_rx) = mpsc::channel::<Message>(app.config.ws_send_queue);
    // The server's Close may go ahead of what is queued: a client that floods without reading can
    // fill the queue, and a Close stuck behind it would never reach the client.
    let (close_tx, mut close_rx) = tokio::sync::oneshot::channel::<Message>();
    // The writer gives the sink back once it has sent the Close (or the queue ended), for the
    // lingering close.
    let writer = tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                biased;
                frame = &mut close_rx => match frame {
                    Ok(frame) => frame,
                    Err(_) => break,
                },
                msg = out_rx.recv() => match msg {
                    Some(msg) => msg,
                    None => break,
                },
            };
            // Frames already queued behind this one go out in the same write: a socket with a backlog
            // (a busy live room) costs one flush and one syscall per batch, not one per frame.
            let mut closing = matches!(msg, Message::Close(_));
            let mut failed = sink.feed(msg).await.is_err();
            let mut batched = 1;
            while !failed && !closing && batched < WRITE_BATCH {
                let Ok(next) = out_rx.try_recv() else { break };
                closing = matches!(next, Message::Close(_));
                failed = sink.feed(next).await.is_err();
                batched += 1;
            }
            if failed || sink.flush().await.is_err() || closing {
                break;
            }
        }
        // Sends a Close if none went yet (the peer's Close was answered by tungstenite) and flushes.
        let _ = sink.close().await;
        sink
    });
    let keepalive_every = Duration::from_secs(app.config.ws_keepalive_secs);
    let init_deadline = tokio::time::sleep(Duration::from_secs(app.config.ws_init_timeout_secs));
    tokio::pin!(init_deadline);
    let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + keepalive_every, keepalive_every);
    let mut shutting_down = app.shutting_down.clone();
    let mut conn = Connection {
        app,
        proto,
        out,
        init_received: false,
        acked: false,
        header_token,
        token: None,
        info,
        operations: HashMap::new(),
        revocations: None,
    };
    // What the private streams delivered, confirmed as seen by the client's answer to a ping.
    let deliveries = Arc::new(crate::services::push::SocketDeliveries::default());
    conn.info.socket = Some(deliveries.clone());
    let mut unanswered: Option<Unanswered> = None;
    let mut pings = 0u64;
    let mut last_heard = Instant::now();
    // Checked at keep-alive ticks: one timer per idle socket instead of two.
    let mut last_recheck = Instant::now();
    // Whether the stream still yields frames: tungstenite ends it after its first error.
    let mut readable = true;
    let close = loop {
        tokio::select! {
            frame = stream.next() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(err)) => {
                        readable = false;
                        break close_for_read_error(&err);
                    }
                    None => break None,
                };
                last_heard = Instant::now();
                match frame {
                    Message::Text(t) => {
                        // Boxed, like the session checks below: an idle socket's task holds the
                        // state of this loop, and inline these database and Redis round trips
                        // would make every idle socket as big as its busiest moment.
                        if let Err(close) = Box::pin(conn.on_text(&t)).await {
                            break Some(close);
                        }
                    }
                    Message::Binary(_) => break Some(Close::new(4400, "Binary messages are not supported")),
                    Message::Close(_) => break None,
                    Message::Pong(payload) => {
                        // The answer to the ping that followed deliveries (or a later one: a peer
                        // may answer only the newest of several pings): the app read them.
                        let answered = <[u8; 8]>::try_from(payload.as_ref()).map(u64::from_be_bytes).unwrap_or(0);
                        if let Some(Unanswered { delivered, .. }) = unanswered.take_if(|u| u.ping <= answered) {
                            for (user, stream, cursor) in delivered {
                                conn.app.push.seen.delivered(user, stream, cursor);
                            }
                        }
                    }
                    // tungstenite answers pings itself; both kinds prove the peer is alive.
                    Message::Ping(_) | Message::Frame(_) => {}
                }
            }
            () = deliveries.due(), if unanswered.is_none() => {
                let delivered = deliveries.take();
                if !delivered.is_empty() {
                    pings += 1;
                    if conn.out.try_send(Message::Ping(pings.to_be_bytes().to_vec().into())).is_ok() {
                        unanswered = Some(Unanswered { ping: pings, delivered, sent: Instant::now() });
                    } else {
                        // A full queue: they wait for the next frame or keep-alive to be confirmed.
                        for (user, stream, cursor) in delivered {
                            deliveries.delivered(user, stream, cursor);
                        }
                    }
                }
            }
            () = &mut init_deadline, if !conn.init_received => {
                break Some(Close::new(4408, "Connection initialisation timeout"));
            }
            received = next_revocation(&mut conn.revocations) => {
                let may_be_revoked = matches!(received, Received::Lagged(_))
                    || matches!(&received, Received::Event(e) if matches!(**e, Event::SessionsRevoked | Event::AccessChanged | Event::Resync));
                if may_be_revoked && let Err(close) = Box::pin(conn.recheck_session()).await {
                    break Some(close);
                }
            }
            _ = keepalive.tick() => {
                if last_heard.elapsed() > keepalive_every * 2 {
                    // Nothing heard for two intervals, not even a pong: the peer is gone.
                    break None;
                }
                let ping = match conn.proto {
                    Proto::Transport => text(json!({ "type": "ping" })),
                    Proto::Legacy => text(json!({ "type": "ka" })),
                };
                let _ = conn.out.try_send(ping);
                if conn.proto == Proto::Legacy {
                    // Legacy clients do not answer `ka`; a protocol-level ping gets a pong from any
                    // WebSocket implementation. It carries the newest counter, so its answer also
                    // confirms deliveries if the client answers only the newest ping.
                    let _ = conn.out.try_send(Message::Ping(pings.to_be_bytes().to_vec().into()));
                }
                match &mut unanswered {
                    // A ping lost to a full queue, or an answer that did not come yet: asked again.
                    Some(u) if u.sent.elapsed() >= keepalive_every => {
                        if conn.out.try_send(Message::Ping(u.ping.to_be_bytes().to_vec().into())).is_ok() {
                            u.sent = Instant::now();
                        }
                    }
                    Some(_) => {}
                    None => deliveries.queued(),
                }
                conn.operations.retain(|_, task| !task.is_finished());
                // An app's access token lives an hour at most: its socket ends with it, not at the
                // next periodic re-check.
                let expired = conn.info.viewer.and_then(|v| v.app).is_some_and(|a| a.expires_at <= chrono::Utc::now());
                if conn.token.is_some() && (expired || last_recheck.elapsed() >= SESSION_RECHECK) {
                    last_recheck = Instant::now();
                    if let Err(close) = Box::pin(conn.recheck_session()).await {
                        break Some(close);
                    }
                }
            }
            () = shutdown_requested(&mut shutting_down) => {
                break Some(Close::new(1001, "Server shutting down; reconnect and resume"));
            }
        }
    };
    for (_, task) in conn.operations.drain() {
        task.abort();
    }
    if let Some(Close(code, reason)) = close {
        // Behind what is queued (a `connection_error` must come before it), unless the queue is
        // full: then ahead of it.
        let frame = close_frame(code, reason);
        if let Err(mpsc::error::TrySendError::Full(frame) | mpsc::error::TrySendError::Closed(frame)) =
            conn.out.try_send(frame)
        {
            let _ = close_tx.send(frame);
        }
    }
    drop(conn);
    let deadline = Instant::now() + CLOSING_HANDSHAKE;
    // The client's frames are read (and dropped) while the writer flushes: a client that writes
    // without reading would otherwise block the writer, and the writer it.
    let abort = writer.abort_handle();
    let drain = async {
        while readable && let Some(Ok(_)) = stream.next().await {}
        std::future::pending::<()>().await
    };
    let sink = tokio::select! {
        sink = tokio::time::timeout_at(deadline.into(), writer) => sink.ok().and_then(Result::ok),
        () = drain => None,
    };
    if sink.is_none() {
        // A writer stuck on a peer that stopped reading would hold the socket for as long as TCP
        // lets it.
        abort.abort();
    }
    linger(stream, sink, deadline).await;
}

fn close_frame(code: u16, reason: String) -> Message {
    Message::Close(Some(CloseFrame { code: CloseCode::from(code), reason: reason.into() }))
}

/// The Close for a frame tungstenite refused (RFC 6455, 7.4.1); `None` when the peer is gone.
fn close_for_read_error(err: &WsError) -> Option<Close> {
    match err {
        WsError::Capacity(_) => Some(Close::new(1009, "Message too big")),
        WsError::Utf8(_) => Some(Close::new(1007, "Invalid UTF-8 in a text message")),
        WsError::Protocol(_) => Some(Close::new(1002, "Protocol error")),
        _ => None,
    }
}

/// Ends the connection without a reset: after the Close, the server's half is shut and whatever
/// the client still sends is read until it closes too, or until `deadline` (nginx's lingering
/// close). Dropping a socket with unread data makes the kernel reset the connection, and a reset
/// throws away what the client had not read yet, the Close with its code (4400, 4409, 1009...)
/// among it.
async fn linger(stream: SplitStream<Socket>, sink: Option<SplitSink<Socket, Message>>, deadline: Instant) {
    let Some(Ok(mut socket)) = sink.map(|sink| stream.reunite(sink)) else { return };
    let io = socket.get_mut();
    let _ = tokio::time::timeout_at(deadline.into(), async {
        if io.shutdown().await.is_err() {
            return;
        }
        // On the heap: this future is part of every socket's task, and an array here would make
        // every idle socket carry a buffer only a closing one uses.
        let mut buf = vec![0u8; 4096];
        while matches!(io.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
}

async fn shutdown_requested(rx: &mut tokio::sync::watch::Receiver<bool>) {
    if rx.wait_for(|down| *down).await.is_err() {
        // The sender lives in AppState, which this connection holds: it cannot be dropped first.
        std::future::pending::<()>().await;
    }
}

async fn next_revocation(sub: &mut Option<Subscription>) -> Received {
    match sub {
        Some(sub) => sub.recv().await,
        None => std::future::pending().await,
    }
}

impl Connection {
    async fn send(&self, value: Value) -> Result<(), Close> {
        self.out.send(text(value)).await.map_err(|_| Close::new(1011, "connection writer stopped"))
    }

    async fn on_text(&mut self, raw: &str) -> Result<(), Close> {
        let invalid = || Close::new(4400, "Invalid message received");
        let Ok(Value::Object(mut msg)) = serde_json::from_str::<Value>(raw) else {
            return Err(invalid());
        };
        let Some(Value::String(kind)) = msg.remove("type") else {
            return Err(invalid());
        };
        match (self.proto, kind.as_str()) {
            (_, "connection_init") => self.on_init(msg.remove("payload")).await,
            (Proto::Transport, "ping") => {
                let mut pong = json!({ "type": "pong" });
                if let Some(payload) = msg.remove("payload").filter(Value::is_object) {
                    pong["payload"] = payload;
                }
                // Never wait on a full queue here: a client that does not read gets no pong, and this
                // loop stays free for keep-alive and revocation checks.
                let _ = self.out.try_send(text(pong));
                Ok(())
            }
            (Proto::Transport, "pong") => Ok(()),
            (Proto::Transport, "subscribe") | (Proto::Legacy, "start") => {
                if !self.acked {
                    return Err(Close::new(4401, "Unauthorized"));
                }
                // Every operation acts as the member is now: current role, not suspended, not erased.
                self.recheck_session().await?;
                let Some(Value::String(id)) = msg.remove("id") else {
                    return Err(invalid());
                };
                if id.is_empty() {
                    return Err(invalid());
                }
                let Some(Value::Object(payload)) = msg.remove("payload") else {
                    return Err(invalid());
                };
                let parts = request_from(payload).ok_or_else(invalid)?;
                // A finished operation's id is free again, and it no longer counts against the limit.
                self.operations.retain(|_, task| !task.is_finished());
                if let Some(task) = self.operations.get(&id) {
                    match self.proto {
                        Proto::Transport => {
                            // A close reason holds at most 123 bytes.
                            let shown: String = id.chars().take(64).collect();
                            return Err(Close::new(4409, format!("Subscriber for {shown} already exists")));
                        }
                        // subscriptions-transport-ws replaces an operation that reuses an id.
                        Proto::Legacy => task.abort(),
                    }
                }
                if self.operations.len() >= self.app.config.max_subscriptions_per_connection {
                    let error = json!([{
                        "message": "too many operations on this connection",
                        "extensions": { "code": TOO_MANY_SUBSCRIPTIONS },
                    }]);
                    return self.send(json!({ "type": "error", "id": id, "payload": error })).await;
                }
                let key = crate::ratelimit::request_key_for(self.info.viewer.as_ref(), self.info.ip.as_deref());
                let limit = crate::ratelimit::request_limit(self.info.viewer.as_ref());
                if let Err(err) = self.app.limiter.check(limit, &key).await {
                    let error = serde_json::to_value(vec![err.into_request_error()]).unwrap_or(Value::Null);
                    return self.send(json!({ "type": "error", "id": id, "payload": error })).await;
                }
                let query = self
                    .app
                    .documents
                    .resolve(parts.query, parts.extensions.as_ref(), parts.document_id.as_deref())
                    .await;
                let query = match query {
                    Ok(query) => query,
                    Err(refusal) => {
                        let error = json!([{ "message": refusal.message, "extensions": { "code": refusal.code } }]);
                        return self.send(json!({ "type": "error", "id": id, "payload": error })).await;
                    }
                };
                // The same rule as over HTTP: while the database is down, only what needs none runs.
                if let Err(err) = super::availability::gate(&self.app, &query, parts.operation_name.as_deref()) {
                    let error = serde_json::to_value(vec![err.into_request_error()]).unwrap_or(Value::Null);
                    return self.send(json!({ "type": "error", "id": id, "payload": error })).await;
                }
                let operation =
                    super::graphql::operation_label(&self.app, parts.operation_name.as_deref(), Some(&query));
                // The request log keeps the name the client gave; metrics keep the bounded label.
                let recorded = parts.operation_name.clone().unwrap_or_else(|| operation.clone());
                let variables = parts.variables.unwrap_or_default();
                let labels = Labels { id, operation, recorded };
                let name = parts.operation_name;
                match self.route(&query, name.as_deref(), &variables) {
                    Route::Shared(join, variables_json) => {
                        let key = shared_feed::Key { variables: variables_json, query, operation: name };
                        let membership = self.app.shared_feeds.join(&self.app, key, variables, join);
                        let member = crate::pubsub::presence::member_for(self.info.viewer.as_ref());
                        self.start(labels, shared_feed::member_stream(membership, self.app.presence.clone(), member));
                    }
                    Route::Rerun(user_id, wants) => {
                        let op = super::private_stream::Operation { query, name, variables };
                        let stream =
                            super::private_stream::stream(self.app.clone(), self.info.clone(), user_id, op, wants);
                        self.start(labels, stream);
                    }
                    Route::Own => {
                        let request = crate::graphql::request(query, name, variables);
                        let request = crate::graphql::prepare(request, &self.app, self.info.clone());
                        let schema = self.app.schema_for(self.info.viewer.as_ref());
                        self.start(labels, results(schema.execute_stream(request)));
                    }
                }
                Ok(())
            }
            (Proto::Transport, "complete") | (Proto::Legacy, "stop") => {
                let Some(Value::String(id)) = msg.remove("id") else {
                    return Err(invalid());
                };
                if let Some(task) = self.operations.remove(&id) {
                    task.abort();
                }
                Ok(())
            }
            (Proto::Legacy, "connection_terminate") => Err(Close::new(1000, "Normal closure")),
            _ => Err(invalid()),
        }
    }

    async fn on_init(&mut self, payload: Option<Value>) -> Result<(), Close> {
        if self.init_received {
            return Err(Close::new(4429, "Too many initialisation requests"));
        }
        self.init_received = true;
        let payload = match payload {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => return Err(Close::new(4400, "Invalid connection_init payload")),
        };
        let token = match auth::viewer::payload_token(&payload) {
            Some(Ok(token)) => Some(token),
            Some(Err(())) => return self.reject().await,
            None => self.header_token.clone(),
        };
        if let Some(token) = token {
            if self.app.db_stats.breaker.admit(&self.app.db).is_err() {
                return Err(Close::new(1013, "Try again later: service unavailable"));
            }
            let viewer = match auth::viewer::for_token(&self.app.db, &token).await {
                Ok(Some(viewer)) => viewer,
                Ok(None) => return self.reject().await,
                // 1013 "Try Again Later": the client reconnects with backoff, as after a restart.
                Err(crate::error::AppError::Unavailable { .. }) => {
                    self.app.db_stats.breaker.suspect(&self.app.db);
                    return Err(Close::new(1013, "Try again later: service unavailable"));
                }
                Err(_) => return Err(Close::new(1011, "Internal error")),
            };
            self.authenticate(viewer, token);
            // A logout that landed between the check above and the subscription in `authenticate`
            // was announced to nobody: look once more now that announcements reach this socket.
            self.recheck_session().await?;
        }
        self.acked = true;
        self.send(json!({ "type": "connection_ack" })).await?;
        if self.proto == Proto::Legacy {
            self.send(json!({ "type": "ka" })).await?;
        }
        Ok(())
    }

    fn authenticate(&mut self, viewer: Viewer, token: String) {
        self.revocations = Some(self.app.broker.subscribe(Topic::User(viewer.user_id)));
        self.info.viewer = Some(viewer);
        self.token = Some(token);
    }

    async fn reject(&self) -> Result<(), Close> {
        if self.proto == Proto::Legacy {
            let _ = self.send(json!({ "type": "connection_error", "payload": { "message": "Forbidden" } })).await;
        }
        Err(Close::new(4403, "Forbidden"))
    }

    /// Re-reads who this socket acts for (one query keyed by the session): closes the socket if its
    /// session ended, the account was suspended or erased; takes the current role otherwise. A role
    /// that lost a capability ends every running operation (FORBIDDEN): each was authorised under the
    /// old role, and the client resubscribes under the new one.
    async fn recheck_session(&mut self) -> Result<(), Close> {
        let Some(token) = &self.token else { return Ok(()) };
        let current = match auth::viewer::for_token(&self.app.db, token).await {
            Ok(Some(viewer)) => viewer,
            Ok(None) => return Err(Close::new(4403, "Forbidden: session ended")),
            // The session store is unreachable: keep the socket, the next check decides.
            Err(_) => return Ok(()),
        };
        let before = self.info.viewer.replace(current);
        if before.is_some_and(|b| crate::authz::loses_capabilities(b.role, current.role)) {
            for (id, task) in self.operations.drain() {
                if task.is_finished() {
                    continue;
                }
                task.abort();
                let error = json!([{
                    "message": "your role changed; subscribe again",
                    "extensions": { "code": code::FORBIDDEN },
                }]);
                let _ = self.out.send(text(json!({ "type": "error", "id": id, "payload": error }))).await;
            }
        }
        Ok(())
    }

    /// How an operation runs: once for all its subscribers on this instance (`shared_feed`), again
    /// at each hint on the member's topic (`private_stream`), or as its own execution.
    fn route(&self, query: &str, name: Option<&str>, variables: &async_graphql::Variables) -> Route {
        // An app's token runs every operation itself, on the schema that checks its scopes: the
        // shared and rerun paths execute on the first-party schema.
        if self.info.viewer.is_some_and(|v| v.app.is_some()) {
            return Route::Own;
        }
        let Some(parsed) = crate::graphql::lean::parsed(query) else { return Route::Own };
        let doc = &parsed.document;
        let shared = crate::graphql::shared::sharing(doc, name, variables, self.info.viewer.is_some());
        if let Some(join) = shared
            && let Ok(variables_json) = serde_json::to_string(variables)
        {
            return Route::Shared(join, variables_json);
        }
        let rerun = crate::graphql::shared::subscription_root(doc, name)
            .and_then(|(_, root)| crate::graphql::subscription::rerunnable(root.name.node.as_str()));
        match (rerun, self.info.viewer) {
            (Some(wants), Some(viewer)) => Route::Rerun(viewer.user_id, wants),
            _ => Route::Own,
        }
    }

    fn start(&mut self, labels: Labels, results: impl Stream<Item = Result<Arc<Delivery>, Lagging>> + Send + 'static) {
        let Labels { id, operation, recorded } = labels;
        crate::metrics::METRICS.requests.with_label_values(&["ws", &operation]).inc();
        crate::metrics::METRICS.count_app("ws", self.info.viewer.as_ref());
        let feed = Feed {
            operation,
            id: id.clone(),
            out: self.out.clone(),
            proto: self.proto,
            slow: Duration::from_secs(self.app.config.ws_slow_consumer_secs),
            activity: self.app.activity.clone(),
            recorded,
            erased: self.info.erased.clone(),
            user_id: self.info.viewer.map(|v| v.user_id),
            app_id: self.info.viewer.and_then(|v| v.app).map(|a| a.app_id),
            client: self.info.client.clone(),
            socket: self.info.socket.clone(),
        };
        // The stream boxed, the feed used in place: a future keeps its arguments for its whole life,
        // and moving them into locals held them twice in every idle operation's task.
        let task = tokio::spawn(pump(feed, Box::pin(results)));
        self.operations.insert(id, task.abort_handle());
    }
}

/// Deliveries a ping was sent to confirm, and when.
struct Unanswered {
    ping: u64,
    delivered: Vec<crate::services::push::Delivered>,
    sent: Instant,
}

/// How an operation runs ([`Connection::route`]).
enum Route {
    /// Joins the shared feed of its document and variables (serialised: the feed's key).
    Shared(crate::graphql::shared::Join, String),
    /// The member's private stream, run again at each hint on their topic.
    Rerun(i64, fn(&crate::pubsub::Event) -> Option<i64>),
    Own,
}

/// An operation's id and names, as metrics and the request log file it.
struct Labels {
    id: String,
    /// The bounded metrics label.
    operation: String,
    /// The name the client gave.
    recorded: String,
}

/// An operation's own execution as deliveries, each serialised as it comes.
fn results(
    stream: impl Stream<Item = GqlResponse> + Send,
) -> impl Stream<Item = Result<Arc<Delivery>, Lagging>> + Send {
    let mut first = true;
    shared_feed::unpanicking(stream).map(move |resp| Ok(Arc::new(Delivery::new(resp, std::mem::take(&mut first)))))
}

/// The parts of a `subscribe` payload; `None` when one has the wrong type.
struct RequestParts {
    query: Option<String>,
    document_id: Option<String>,
    operation_name: Option<String>,
    variables: Option<async_graphql::Variables>,
    extensions: Option<Map<String, Value>>,
}

fn request_from(mut payload: Map<String, Value>) -> Option<RequestParts> {
    fn string(v: Option<Value>) -> Option<Option<String>> {
        match v {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(s)) => Some(Some(s)),
            Some(_) => None,
        }
    }
    let query = string(payload.remove("query"))?;
    let document_id = string(payload.remove("documentId"))?;
    let operation_name = string(payload.remove("operationName"))?;
    let variables = match payload.remove("variables") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(async_graphql::Variables::from_json(v)),
        Some(_) => return None,
    };
    let extensions = match payload.remove("extensions") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => return None,
    };
    if query.is_none() && document_id.is_none() && extensions.as_ref().is_none_or(|e| !e.contains_key("persistedQuery"))
    {
        return None;
    }
    Some(RequestParts { query, document_id, operation_name, variables, extensions })
}

/// Errors found before execution (unparsable, invalid, over a limit) end the operation with an
/// `error` message instead of `next` + `complete`, as graphql-transport-ws asks.
pub(crate) fn is_request_error(resp: &GqlResponse) -> bool {
    const REQUEST_CODES: [&str; 6] = [
        code::GRAPHQL_PARSE_FAILED,
        code::GRAPHQL_VALIDATION_FAILED,
        code::QUERY_TOO_COMPLEX,
        code::QUERY_TOO_DEEP,
        code::QUERY_TOO_MANY_ALIASES,
        code::BAD_REQUEST,
    ];
    resp.data == async_graphql::Value::Null
        && !resp.errors.is_empty()
        && resp.errors.iter().all(|e| {
            e.extensions
                .as_ref()
                .and_then(|x| x.get("code"))
                .is_some_and(|c| matches!(c, async_graphql::Value::String(s) if REQUEST_CODES.contains(&s.as_str())))
        })
}

/// Where one operation's results go, and how it reports that it finished.
struct Feed {
    /// The operation's metrics label.
    operation: String,
    id: String,
    out: mpsc::Sender<Message>,
    proto: Proto,
    /// How long a result may wait for room in the socket's queue.
    slow: Duration,
    activity: crate::services::activity::Activity,
    /// The operation's name as the request log records it.
    recorded: String,
    erased: std::sync::Arc<std::sync::atomic::AtomicBool>,
    user_id: Option<i64>,
    /// The developer app acting for the member, for the request log.
    app_id: Option<i64>,
    client: std::sync::Arc<crate::services::activity::ClientInfo>,
    /// What the socket's private streams delivered, confirmed by the ping queued behind the frames.
    socket: Option<Arc<crate::services::push::SocketDeliveries>>,
}

/// `{"type":..,"id":..,"payload":..}` around a payload serialised once (perhaps for many sockets).
fn frame(kind: &str, id_json: &str, payload: &str) -> Message {
    let mut frame = String::with_capacity(payload.len() + id_json.len() + 32);
    frame.push_str(r#"{"type":""#);
    frame.push_str(kind);
    frame.push_str(r#"","id":"#);
    frame.push_str(id_json);
    frame.push_str(r#","payload":"#);
    frame.push_str(payload);
    frame.push('}');
    Message::Text(frame.into())
}

/// Runs one operation, feeding the socket's queue until the operation completes.
async fn pump(feed: Feed, mut results: impl Stream<Item = Result<Arc<Delivery>, Lagging>> + Send + Unpin) {
    let Feed { operation, id, out, proto, slow, activity, recorded, erased, user_id, app_id, client, socket } = &feed;
    let queued = || {
        if let Some(s) = socket {
            s.queued();
        }
    };
    let _running = crate::metrics::GaugeGuard::new(&crate::metrics::METRICS.subscriptions);
    let started = std::time::Instant::now();
    let id_json = serde_json::Value::String(id.clone()).to_string();
    let lagging = |id: &str| {
        let error = json!([{
            "message": "this client fell too far behind; resubscribe with the cursor of the last event received",
            "extensions": { "code": SUBSCRIPTION_LAGGING },
        }]);
        text(json!({ "type": "error", "id": id, "payload": error }))
    };
    let mut first = true;
    while let Some(result) = results.next().await {
        let Ok(delivery) = result else {
            let _ = out.send(lagging(id)).await;
            return;
        };
        if std::mem::take(&mut first) {
            // Latency of an operation over the socket: until its first result (a subscription's
            // replay or first event).
            super::graphql::observe("ws", operation, started, &delivery.errors, id);
            activity.request(crate::services::activity::RequestRecord {
                duration: started.elapsed(),
                // A socket's `deleteAccount` erased the member it would be filed under.
                user_id: user_id.filter(|_| !erased.load(std::sync::atomic::Ordering::Relaxed)),
                transport: "ws",
                operation: recorded.clone(),
                sign_in: false,
                client: client.clone(),
                app_id: *app_id,
            });
            if delivery.request_error {
                let _ = out.send(frame("error", &id_json, &delivery.payload)).await;
                return;
            }
        } else {
            crate::metrics::METRICS.count_errors(&delivery.errors);
        }
        // Room in the queue (the usual case) costs no timer; only a full queue waits, for `slow`.
        let frame = match out.try_send(frame(proto.next_type(), &id_json, &delivery.payload)) {
            Ok(()) => {
                queued();
                continue;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
            Err(mpsc::error::TrySendError::Full(frame)) => frame,
        };
        match tokio::time::timeout(*slow, out.send(frame)).await {
            Ok(Ok(())) => queued(),
            Ok(Err(_)) => return,
            Err(_) => {
                let _ = out.send(lagging(id)).await;
                return;
            }
        }
    }
    let _ = out.send(text(json!({ "type": "complete", "id": id }))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_that_stops_reading_is_told_to_resubscribe_not_silently_dropped() {
        let (out, mut out_rx) = mpsc::channel(1);
        let events = futures_util::stream::iter(
            (0..10).map(|i| GqlResponse::new(async_graphql::Value::from_json(json!({ "n": i })).unwrap())),
        );
        let feed = Feed {
            operation: "test".into(),
            id: "s".into(),
            out,
            proto: Proto::Transport,
            slow: Duration::from_millis(100),
            activity: crate::services::activity::Activity::disabled(),
            recorded: "test".into(),
            erased: Default::default(),
            user_id: None,
            app_id: None,
            client: Default::default(),
            socket: None,
        };
        let task = tokio::spawn(pump(feed, results(events)));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let frame = |m: Message| match m {
            Message::Text(t) => serde_json::from_str::<Value>(&t).unwrap(),
            other => panic!("unexpected {other:?}"),
        };
        let first = frame(out_rx.recv().await.unwrap());
        assert_eq!(first["payload"]["data"], json!({ "n": 0 }));
        let error = frame(out_rx.recv().await.unwrap());
        assert_eq!(error["type"], "error");
        assert_eq!(error["payload"][0]["extensions"]["code"], SUBSCRIPTION_LAGGING);
        task.await.unwrap();
        assert!(out_rx.recv().await.is_none(), "nothing after the error");
    }

    #[tokio::test]
    async fn a_panicking_operation_ends_with_internal_not_silence() {
        let (out, mut out_rx) = mpsc::channel(8);
        let events = futures_util::stream::iter(0..2).map(|i| {
            if i == 1 {
                panic!("resolver bug");
            }
            GqlResponse::new(async_graphql::Value::from(i))
        });
        let feed = Feed {
            operation: "test".into(),
            id: "p".into(),
            out,
            proto: Proto::Transport,
            slow: Duration::from_secs(5),
            activity: crate::services::activity::Activity::disabled(),
            recorded: "test".into(),
            erased: Default::default(),
            user_id: None,
            app_id: None,
            client: Default::default(),
            socket: None,
        };
        tokio::spawn(pump(feed, results(events))).await.unwrap();
        let frame = |m: Message| match m {
            Message::Text(t) => serde_json::from_str::<Value>(&t).unwrap(),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(frame(out_rx.recv().await.unwrap())["payload"]["data"], json!(0));
        let failed = frame(out_rx.recv().await.unwrap());
        assert_eq!(failed["payload"]["errors"][0]["extensions"]["code"], code::INTERNAL, "{failed}");
        assert_eq!(failed["payload"]["errors"][0]["message"], "internal error");
        assert_eq!(frame(out_rx.recv().await.unwrap())["type"], "complete");
    }
}
