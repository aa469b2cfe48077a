//! Chaos: the real gateway binary against a PostgreSQL cluster and a redis-server of its own, the
//! database behind a TCP proxy written here that can refuse, blackhole or pass traffic. Checks what
//! clients see while a dependency is down (codes, `Retry-After`, how fast), what `/readyz` says,
//! that the gateway recovers by itself, and that no private message is acknowledged and then lost,
//! or delivered twice, across the outages.
//!
//! It brings its own services, so it runs the same in both passes of the suite; where PostgreSQL's
//! server binaries or redis-server are not installed it says so and fails (the machine this project
//! runs on has both). Bounded: every wait has a deadline, and the whole test takes about a minute.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

#[path = "../support/dev_code.rs"]
mod dev_code;

const BIN: &str = env!("CARGO_BIN_EXE_ecer-gateway");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------------------------
// The proxy

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Forward both ways.
    Pass,
    /// Close every connection, new and open: a database that is down.
    Refuse,
    /// Accept and hold connections but forward nothing: a partition, or a hung server.
    Blackhole,
}

struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, _) = watch::channel(Mode::Pass);
        let modes = mode.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream, modes.subscribe()));
            }
        });
        Proxy { addr, mode }
    }

    fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

async fn relay(mut client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let now = *mode.borrow_and_update();
    match now {
        Mode::Refuse => return,
        Mode::Blackhole => {
            let _ = mode.wait_for(|m| *m != Mode::Blackhole).await.map(|_| ());
            return;
        }
        Mode::Pass => {}
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
    let blackhole = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => false,
        changed = mode.wait_for(|m| *m != Mode::Pass) => changed.map(|m| *m == Mode::Blackhole).unwrap_or(false),
    };
    if blackhole {
        // Hold both sockets, silent, until the partition heals; then they are gone.
        let _ = mode.wait_for(|m| *m != Mode::Blackhole).await.map(|_| ());
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL and Redis of the test's own

fn pg_bindir() -> PathBuf {
    let out = std::process::Command::new("pg_config").arg("--bindir").output();
    if let Ok(out) = out
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect())
        .unwrap_or_default();
    found.sort();
    found.pop().expect("PostgreSQL server binaries (initdb) are not installed")
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl Postgres {
    /// A command run as `postgres` when the test runs as root (PostgreSQL refuses root).
    fn command(&self, tool: &str) -> std::process::Command {
        let path = self.bin.join(tool);
        if is_root() {
            let mut cmd = std::process::Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            std::process::Command::new(path)
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn init() -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            let status = std::process::Command::new("chown").arg("postgres").arg(dir.path()).status().unwrap();
            assert!(status.success(), "chown the cluster directory to postgres");
        }
        let pg = Postgres { dir, bin: pg_bindir(), port: free_port() };
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(pg.data())
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        pg.start();
        pg
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-t", "30", "-l"])
            .arg(self.dir.path().join("pg.log"))
            .args(["-o", &options, "start"])
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Stops at once, as a crash would: no clean shutdown for the clients.
    fn crash(&self) {
        let _ = self.command("pg_ctl").arg("-D").arg(self.data()).args(["-m", "immediate", "-w", "stop"]).output();
    }

    fn addr(&self) -> SocketAddr {
        format!("127.0.0.1:{}", self.port).parse().unwrap()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.crash();
    }
}

struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    async fn start(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is not installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Redis { port, child }
    }

    async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// The gateway and its clients

struct Gateway {
    addr: SocketAddr,
    _child: Child,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

/// The settings under test, short so the run is short; the defaults are in the README's table.
const SETTINGS: [(&str, &str); 6] = [
    ("DATABASE_ACQUIRE_TIMEOUT_MS", "500"),
    ("DATABASE_STATEMENT_TIMEOUT_MS", "2000"),
    ("OPERATION_TIMEOUT_SECS", "3"),
    ("DATABASE_BREAKER_FAILURES", "2"),
    ("DATABASE_BREAKER_COOLDOWN_MS", "300"),
    ("DATABASE_MAX_CONNECTIONS", "4"),
];

impl Gateway {
    async fn start(database: SocketAddr, redis: SocketAddr) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
        let child = Command::new(BIN)
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", format!("postgres://postgres@{database}/postgres"))
            .env("REDIS_URL", format!("redis://{redis}"))
            .env("LISTEN_ADDR", addr.to_string())
            .env("MEDIA_DIR", dir.path().join("media"))
            .env("SEAL_KEYS", ecer_gateway::seal::Sealer::generate_entry("t1").unwrap())
            // On, and high: the limiter goes through Redis, which is what a Redis outage tests.
            .env("RATE_LIMIT_REQUESTS_PER_MINUTE", "100000")
            .env("RATE_LIMIT_AUTH_PER_MINUTE", "100000")
            .env("RUST_LOG", "warn")
            .envs(SETTINGS)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let gw = Gateway { addr, _child: child, _dir: dir, http: reqwest::Client::new() };
        let deadline = Instant::now() + Duration::from_secs(60);
        while gw.ready().await.0 != 200 {
            assert!(Instant::now() < deadline, "the gateway never got ready: {}", gw.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        gw
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("gateway.log")).unwrap_or_default()
    }

    async fn ready(&self) -> (u16, String) {
        match self.http.get(format!("http://{}/readyz", self.addr)).timeout(Duration::from_secs(5)).send().await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(_) => (0, "no answer".into()),
        }
    }

    /// POSTs an operation; returns status, `Retry-After`, body and how long the answer took.
    async fn post(&self, token: Option<&str>, query: &str, variables: Value) -> Answer {
        self.post_body(token, json!({ "query": query, "variables": variables })).await
    }

    /// POSTs a raw GraphQL-over-HTTP body; returns as `post` does.
    async fn post_body(&self, token: Option<&str>, body: Value) -> Answer {
        let started = Instant::now();
        let mut req =
            self.http.post(format!("http://{}/graphql", self.addr)).json(&body).timeout(Duration::from_secs(20));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("the gateway answers");
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        Answer { status, retry_after, body, took: started.elapsed() }
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
    took: Duration,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
    }
}

const FEED: &str = "{ posts(first: 5) { edges { node { id } } } }";
const SEND: &str =
    "mutation($to: ID!, $b: String!) { sendMessage(input: { toUserId: $to, body: $b }) { message { id body } } }";
const INBOX: &str = "{ conversations(first: 5) { nodes { id } } }";

async fn register(gw: &Gateway, phone: &str) -> (String, String) {
    // The code the `log` provider sent, read from the development route (the member's phone).
    let code = dev_code::dev_code(&gw.http, &format!("http://{}", gw.addr), phone, "REGISTER").await;
    let q = "mutation($p: String!, $c: String!) { register(input: { phone: $p, code: $c, password: \"correct horse\", nickname: \"n\" }) { token user { id } } }";
    let a = gw.post(None, q, json!({ "p": phone, "c": code })).await;
    assert_eq!(a.status, 200, "{a:?}");
    let data = &a.body["data"]["register"];
    (data["token"].as_str().unwrap().to_string(), data["user"]["id"].as_str().unwrap().to_string())
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn signed_in_socket(gw: &Gateway, token: &str) -> Socket {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{}/graphql", gw.addr).into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let send = |v: Value| Message::Text(v.to_string().into());
    ws.send(send(json!({ "type": "connection_init", "payload": { "authToken": token } }))).await.unwrap();
    assert_eq!(next_frame(&mut ws, Duration::from_secs(10)).await.unwrap()["type"], "connection_ack");
    ws
}

async fn subscribe(gw: &Gateway, token: &str) -> Socket {
    let mut ws = signed_in_socket(gw, token).await;
    // From the start of the member's messages (a new member has none): without `after` it would
    // start at the newest message when the server reads it, maybe after the first one sent.
    let sub = "subscription($a: String) { messageReceived(after: $a) { body } }";
    let after = ecer_gateway::services::page::Cursor::Id(0).encode();
    let msg = json!({ "type": "subscribe", "id": "1", "payload": { "query": sub, "variables": { "a": after } } });
    ws.send(Message::Text(msg.to_string().into())).await.unwrap();
    ws
}

/// How the server closes `ws` within `limit` (answering pings meanwhile); `None` if it stays open.
async fn closed_with(ws: &mut Socket, limit: Duration) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return None,
            Ok(None) | Ok(Some(Err(_))) => return Some(1006),
            Ok(Some(Ok(Message::Close(frame)))) => return Some(frame.map(|f| u16::from(f.code)).unwrap_or(1005)),
            Ok(Some(Ok(Message::Text(t)))) if t.contains("\"ping\"") => {
                let _ = ws.send(Message::Text(json!({ "type": "pong" }).to_string().into())).await;
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// The next protocol message within `limit`, answering pings; `None` if none came.
async fn next_frame(ws: &mut Socket, limit: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.ok()??.ok()?;
        match msg {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                match v["type"].as_str() {
                    Some("ping") => ws.send(Message::Text(json!({ "type": "pong" }).to_string().into())).await.ok()?,
                    Some("pong") | Some("ka") => {}
                    _ => return Some(v),
                }
            }
            Message::Close(frame) => panic!("the socket closed: {frame:?}"),
            _ => {}
        }
    }
}

/// Polls `FEED` until it is served again; returns how long recovery took.
async fn recovered(gw: &Gateway, token: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let a = gw.post(Some(token), FEED, json!({})).await;
        if a.status == 200 && a.body["errors"].is_null() {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "not recovered after {within:?}: {a:?}\n{}", gw.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends feed requests until the breaker has opened (a 503 SERVICE_UNAVAILABLE that came at once);
/// every answer on the way must be coded and bounded by `slowest`. Returns how many it took.
async fn until_unavailable(gw: &Gateway, token: &str, slowest: Duration) -> usize {
    for n in 1..=20 {
        let a = gw.post(Some(token), FEED, json!({})).await;
        assert!(a.took < slowest, "an answer took {:?} (bound {slowest:?}): {a:?}", a.took);
        assert!(["QUERY_TIMEOUT", "SERVICE_UNAVAILABLE"].contains(&a.code()), "{a:?}");
        if a.status == 503 && a.took < Duration::from_millis(100) {
            assert_eq!(a.code(), "SERVICE_UNAVAILABLE", "{a:?}");
            return n;
        }
    }
    panic!("the breaker never opened");
}

/// While the breaker is open: fast 503s with `Retry-After` for what needs the database, while
/// `__typename`, introspection and `/healthz` keep working and `/readyz` names the database.
async fn check_open(gw: &Gateway, token: &str, bob_id: &str) {
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let a = gw.post(Some(token), FEED, json!({})).await;
        assert_eq!((a.status, a.code()), (503, "SERVICE_UNAVAILABLE"), "{a:?}");
        assert!(a.retry_after.as_deref().is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)), "{a:?}");
        slowest = slowest.max(a.took);
    }
    // A request that tried the database would wait for a connection (DATABASE_ACQUIRE_TIMEOUT_MS,
    // 500 ms) first: below that, the breaker refused it; tighter bounds flaked on loaded machines.
    assert!(slowest < Duration::from_millis(500), "refusals while open are immediate (slowest {slowest:?})");
    // A message sent now is refused, never acknowledged.
    let a = gw.post(Some(token), SEND, json!({ "to": bob_id, "b": "lost?" })).await;
    assert_eq!((a.status, a.code()), (503, "SERVICE_UNAVAILABLE"), "{a:?}");
    assert!(a.body["data"].is_null(), "{a:?}");
    for q in ["{ __typename }", "{ __schema { queryType { name } } }"] {
        let a = gw.post(Some(token), q, json!({})).await;
        assert_eq!(a.status, 200, "{q}: {a:?}");
        assert!(a.body["errors"].is_null(), "{q}: {a:?}");
    }
    let health = gw.http.get(format!("http://{}/healthz", gw.addr)).send().await.unwrap();
    assert_eq!(health.status(), 200, "liveness is not readiness");
    let started = Instant::now();
    let (status, body) = gw.ready().await;
    assert_eq!(status, 503);
    assert!(body.contains("database"), "{body}");
    // A readiness check that pinged the database would wait for the ping's 1 s timeout.
    assert!(started.elapsed() < Duration::from_secs(1), "readiness answers at once (took {:?})", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outages_are_answered_fast_and_honestly_and_nothing_is_lost() {
    let overall = Duration::from_secs(240);
    tokio::time::timeout(overall, chaos()).await.expect("the chaos run is bounded");
}

async fn chaos() {
    let pg = tokio::task::spawn_blocking(Postgres::init).await.unwrap();
    let proxy = Proxy::start(pg.addr()).await;
    let redis_port = free_port();
    let mut redis = Redis::start(redis_port).await;
    let redis_proxy = Proxy::start(format!("127.0.0.1:{}", redis.port).parse().unwrap()).await;
    // Two instances: `gw` takes the requests, `other` holds the sockets, so every delivery and
    // revocation below crosses instances through Redis.
    let (gw, other) =
        tokio::join!(Gateway::start(proxy.addr, redis_proxy.addr), Gateway::start(proxy.addr, redis_proxy.addr));

    let (alice, _) = register(&gw, "13900000001").await;
    let (bob, bob_id) = register(&gw, "13900000002").await;
    let (carol, _) = register(&gw, "13900000003").await;
    let mut bob_socket = subscribe(&other, &bob).await;
    let created = gw
        .post(Some(&carol), "mutation { createLiveStream(input: { title: \"LED\" }) { liveStream { id } } }", json!({}))
        .await;
    let stream = created.body["data"]["createLiveStream"]["liveStream"]["id"].clone();
    assert!(stream.is_string(), "{created:?}");
    let mut acked = Vec::new();
    let mut send = async |gw: &Gateway, body: &str| {
        let a = gw.post(Some(&alice), SEND, json!({ "to": bob_id, "b": body })).await;
        assert_eq!(a.status, 200, "{a:?}");
        assert!(a.body["errors"].is_null(), "{a:?}");
        acked.push(body.to_string());
    };
    send(&gw, "before").await;
    let frame = next_frame(&mut bob_socket, Duration::from_secs(10)).await.unwrap();
    assert_eq!(frame["payload"]["data"]["messageReceived"]["body"], "before");

    // 1. The database refuses connections (down, restarting): answers within the acquire timeout
    //    until the breaker opens, then at once.
    proxy.set(Mode::Refuse);
    let n = until_unavailable(&gw, &bob, Duration::from_secs(2)).await;
    println!("chaos: refused connections: the breaker opened at request {n}");
    check_open(&gw, &alice, &bob_id).await;
    proxy.set(Mode::Pass);
    let took = recovered(&gw, &bob, Duration::from_secs(15)).await;
    println!("chaos: recovered {took:?} after the database accepted connections again");
    assert_eq!(gw.ready().await.0, 200);
    send(&gw, "after refusal").await;
    let frame = next_frame(&mut bob_socket, Duration::from_secs(10)).await.unwrap();
    assert_eq!(frame["payload"]["data"]["messageReceived"]["body"], "after refusal", "the subscription lived on");

    // 2. A partition: connections hang without an answer. Bounded by the operation timeout (3 s)
    //    plus the pool wait, until the breaker opens.
    proxy.set(Mode::Blackhole);
    let n = until_unavailable(&gw, &bob, Duration::from_secs(6)).await;
    println!("chaos: partition: the breaker opened at request {n}");
    check_open(&gw, &alice, &bob_id).await;
    proxy.set(Mode::Pass);
    recovered(&gw, &bob, Duration::from_secs(20)).await;
    send(&gw, "after partition").await;
    let frame = next_frame(&mut bob_socket, Duration::from_secs(10)).await.unwrap();
    assert_eq!(frame["payload"]["data"]["messageReceived"]["body"], "after partition");

    // 3. PostgreSQL itself crashes and restarts.
    tokio::task::block_in_place(|| pg.crash());
    let n = until_unavailable(&gw, &bob, Duration::from_secs(2)).await;
    println!("chaos: crash: the breaker opened at request {n}");
    check_open(&gw, &alice, &bob_id).await;
    tokio::task::block_in_place(|| pg.start());
    recovered(&gw, &bob, Duration::from_secs(20)).await;

    // 4. Redis hangs (accepts, never answers): every Redis call is bounded. The rate limiter lets
    //    requests through after 300 ms, a persisted-query lookup is a miss after 300 ms (the client
    //    sends the document) and its registration still runs the query; readiness names Redis.
    redis_proxy.set(Mode::Blackhole);
    let a = gw.post(Some(&bob), FEED, json!({})).await;
    assert_eq!(a.status, 200, "a hung Redis does not stop reads: {a:?}");
    assert!(a.took < Duration::from_millis(1500), "bounded by the limiter's 300 ms: {:?}", a.took);
    // sha256("{ __typename }"), as an APQ client computes it.
    let hash = "7f56e67dd21ab3f30d1ff8b7bed08893f0a0db86449836189b361dd1e56ddb4b";
    let apq = |query: Option<&str>| {
        let mut body = json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } });
        if let Some(q) = query {
            body["query"] = json!(q);
        }
        body
    };
    let a = gw.post_body(None, apq(None)).await;
    assert_eq!(a.code(), "PERSISTED_QUERY_NOT_FOUND", "{a:?}");
    assert!(a.took < Duration::from_millis(1500), "{:?}", a.took);
    let a = gw.post_body(None, apq(Some("{ __typename }"))).await;
    assert_eq!(a.body["data"]["__typename"], "Query", "registration runs the query even unstored: {a:?}");
    // Live viewer counts live in Redis: the field fails, retryable, within its 500 ms bound, and
    // its nullable parent stands in (the stream itself is in the database).
    let count = "query($s: ID!) { liveStream(id: $s) { viewerCount } }";
    let a = gw.post(None, count, json!({ "s": stream })).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["data"]["liveStream"], Value::Null, "{a:?}");
    assert_eq!(a.body["errors"][0]["path"], json!(["liveStream", "viewerCount"]), "{a:?}");
    assert_eq!(a.code(), "SERVICE_UNAVAILABLE", "{a:?}");
    assert!(a.took < Duration::from_millis(1500), "{:?}", a.took);
    let (status, body) = gw.ready().await;
    assert_eq!(status, 503);
    assert!(body.contains("redis"), "{body}");

    // 5. Redis dies. Reads and writes go on; what was published meanwhile reaches the other
    //    instance's sockets when Redis returns: its listener resubscribes and tells every socket to
    //    resync from the database, so a message sent now is delivered, and a sign-out made now
    //    closes the signed-out member's socket there.
    let mut carol_socket = signed_in_socket(&other, &carol).await;
    redis_proxy.set(Mode::Pass);
    redis.kill().await;
    let a = gw.post(Some(&bob), FEED, json!({})).await;
    assert_eq!(a.status, 200, "a Redis outage does not stop reads: {a:?}");
    send(&gw, "while redis was down").await;
    let a = gw.post(Some(&carol), "mutation { logout { loggedOut } }", json!({})).await;
    assert!(a.body["errors"].is_null(), "{a:?}");
    assert!(next_frame(&mut bob_socket, Duration::from_millis(500)).await.is_none(), "Redis is down: no push yet");
    let mut redis = Redis::start(redis_port).await;
    let frame = next_frame(&mut bob_socket, Duration::from_secs(20)).await.expect("resync after Redis returned");
    assert_eq!(frame["payload"]["data"]["messageReceived"]["body"], "while redis was down");
    assert_eq!(
        closed_with(&mut carol_socket, Duration::from_secs(20)).await,
        Some(4403),
        "the sign-out reached the other instance"
    );
    for instance in [&gw, &other] {
        let deadline = Instant::now() + Duration::from_secs(15);
        while instance.ready().await.0 != 200 {
            assert!(Instant::now() < deadline, "readiness never came back after Redis returned");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // The registration made while Redis hung was not stored; made again, the other instance finds it.
    gw.post_body(None, apq(Some("{ __typename }"))).await;
    let a = other.post_body(None, apq(None)).await;
    assert_eq!(a.body["data"]["__typename"], "Query", "{a:?}");

    // Nothing acknowledged was lost, nothing refused was stored, nothing came twice.
    let convo = gw.post(Some(&bob), INBOX, json!({})).await;
    let id = convo.body["data"]["conversations"]["nodes"][0]["id"].clone();
    let q = "query($c: ID!) { messages(conversationId: $c, first: 50) { nodes { body } } }";
    let listed = gw.post(Some(&bob), q, json!({ "c": id })).await;
    let mut bodies: Vec<String> = listed.body["data"]["messages"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["body"].as_str().unwrap().to_string())
        .collect();
    bodies.reverse();
    assert_eq!(bodies, acked);
    assert!(next_frame(&mut bob_socket, Duration::from_millis(500)).await.is_none(), "no duplicate deliveries");
    redis.kill().await;
    drop(pg);
}
