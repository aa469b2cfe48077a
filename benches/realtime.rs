//! Realtime benchmark: memory per idle subscription, live chat fan-out, cross-instance private
//! message latency. It drives real release gateway processes (`target/release/ecer-gateway serve`)
//! over loopback; see docs/BENCHMARKS.md for the commands and the results.
//!
//! ```sh
//! cargo build --release
//! cargo bench --bench realtime -- all                       # A, B and C with the default sizes
//! cargo bench --bench realtime -- memory --conns 10000,19000
//! cargo bench --bench realtime -- fanout --fanout-conns 10000 --lines 20 --interval-ms 250
//! cargo bench --bench realtime -- private --messages 200
//! ```
//!
//! The sockets live in child processes (this binary re-executed with `client` first), at most
//! `--per-client` each, because one process may hold at most 20,000 file descriptors here. Children
//! talk to the parent in lines on stdout (`ready`, `event`, `lat`, `stats`, `done`) and take commands
//! on stdin (`count`, `report`, `quit`).
//!
//! Every run creates its own PostgreSQL database (`bench_<uuid>`, dropped at the end) and its own
//! Redis prefix (keys deleted at the end); users and sessions are inserted directly (argon2 would
//! make 19,000 registrations take minutes).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::Utc;
use ecer_gateway::auth::hash_token;
use ecer_gateway::graphql::ids::{self, Kind};
use entity::{sessions, users};
use futures_util::{SinkExt as _, StreamExt as _};
use sea_orm::{ConnectionTrait as _, Database, DatabaseConnection, EntityTrait as _, Set};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;
type Ws = WebSocketStream<TcpStream>;

const NOTIFICATIONS: &str = "subscription { notificationReceived { id } }";
const LIVE_CHAT: &str = "subscription($s: ID!) { liveChat(streamId: $s) { skipped message { seq body } } }";
const MESSAGES: &str = "subscription { messageReceived { body } }";

fn main() -> Res<()> {
    // `cargo bench` appends `--bench` to the arguments of a harness-less bench.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.first().map(String::as_str) == Some("client") {
        let cfg = ClientCfg::parse(&args[1..])?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        return rt.block_on(client_main(cfg));
    }
    let opts = Opts::parse(&args)?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(parent_main(opts))
}

// ---------------------------------------------------------------------------------------------
// Options

struct Opts {
    scenarios: Vec<String>,
    conns: Vec<usize>,
    fanout_conns: usize,
    lines: usize,
    interval_ms: Vec<u64>,
    messages: usize,
    /// `private-rate`: messages per second over all pairs, sender/recipient pairs, seconds.
    rate: usize,
    pairs: usize,
    rate_secs: u64,
    per_client: usize,
    batch: usize,
    pg: String,
    pg_admin_db: String,
    redis: String,
    redis_everywhere: bool,
    gateway: PathBuf,
    /// Extra environment for the gateway processes (`--server-env K=V`, repeatable).
    server_env: Vec<(String, String)>,
    /// The subscription scenario A holds on each socket; empty: none (sockets past
    /// `connection_ack` only, to tell the socket's cost from the subscription's).
    memory_query: String,
}

const USAGE: &str = "usage: cargo bench --bench realtime -- [memory|fanout|private|private-rate|all]... \
[--conns 10000,19000] [--fanout-conns 10000] [--lines 20] [--interval-ms 250,1000] [--messages 200] \
[--rate 1000] [--pairs 50] [--rate-secs 10] \
[--per-client 5000] [--batch 500] [--pg postgres://postgres@127.0.0.1:5432] [--pg-admin-db test] \
[--redis redis://127.0.0.1:6379] [--redis-everywhere] [--gateway target/release/ecer-gateway] \
[--server-env KEY=VALUE]... [--memory-query 'subscription { ... }' | none]";

impl Opts {
    fn parse(args: &[String]) -> Res<Opts> {
        let default_gateway = std::env::current_exe()?
            .parent()
            .and_then(Path::parent)
            .map(|release| release.join("ecer-gateway"))
            .ok_or("cannot locate target/release")?;
        let mut o = Opts {
            scenarios: Vec::new(),
            conns: vec![10_000, 19_000],
            fanout_conns: 10_000,
            lines: 20,
            interval_ms: vec![250],
            messages: 200,
            rate: 1_000,
            pairs: 50,
            rate_secs: 10,
            per_client: 5_000,
            batch: 500,
            pg: "postgres://postgres@127.0.0.1:5432".into(),
            pg_admin_db: "test".into(),
            redis: "redis://127.0.0.1:6379".into(),
            redis_everywhere: false,
            gateway: default_gateway,
            server_env: Vec::new(),
            memory_query: NOTIFICATIONS.to_string(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = || it.next().cloned().ok_or_else(|| format!("{a} needs a value\n{USAGE}"));
            match a.as_str() {
                "memory" | "fanout" | "private" | "private-rate" => o.scenarios.push(a.clone()),
                "all" => o.scenarios.extend(["memory", "fanout", "private", "private-rate"].map(String::from)),
                "--conns" => {
                    o.conns = val()?.split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>()?;
                }
                "--fanout-conns" => o.fanout_conns = val()?.parse()?,
                "--lines" => o.lines = val()?.parse()?,
                "--interval-ms" => {
                    o.interval_ms = val()?.split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>()?;
                }
                "--messages" => o.messages = val()?.parse()?,
                "--rate" => o.rate = val()?.parse()?,
                "--pairs" => o.pairs = val()?.parse()?,
                "--rate-secs" => o.rate_secs = val()?.parse()?,
                "--per-client" => o.per_client = val()?.parse()?,
                "--batch" => o.batch = val()?.parse()?,
                "--pg" => o.pg = val()?.trim_end_matches('/').to_string(),
                "--pg-admin-db" => o.pg_admin_db = val()?,
                "--redis" => o.redis = val()?,
                "--redis-everywhere" => o.redis_everywhere = true,
                "--gateway" => o.gateway = PathBuf::from(val()?),
                "--memory-query" => {
                    let q = val()?;
                    o.memory_query = if q == "none" { String::new() } else { q };
                }
                "--server-env" => {
                    let kv = val()?;
                    let (k, v) = kv.split_once('=').ok_or("--server-env takes KEY=VALUE")?;
                    o.server_env.push((k.to_string(), v.to_string()));
                }
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
            }
        }
        if o.scenarios.is_empty() {
            o.scenarios.extend(["memory", "fanout", "private"].map(String::from));
        }
        if o.per_client == 0 || o.per_client > 9_000 {
            return Err("--per-client must be 1..=9000 (20,000 fds per process)".into());
        }
        if !o.gateway.exists() {
            return Err(format!("{} not found: run `cargo build --release` first", o.gateway.display()).into());
        }
        Ok(o)
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

fn rss_kib(pid: u32) -> Res<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).ok_or("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).ok_or("bad VmRSS")?.parse()?)
}

/// Linux's USER_HZ on every mainstream architecture.
const CLK_TCK: f64 = 100.0;

/// utime + stime of a process, in clock ticks (0 if it is gone).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

fn free_port() -> Res<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Nearest-rank percentile of a sorted slice.
fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// `sh -c 'ulimit -n <hard>; exec ...'`: raises the soft fd limit to the hard one.
fn with_raised_nofile(program: &Path, args: &[String]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(r#"ulimit -n "$(ulimit -Hn)" && exec "$0" "$@""#).arg(program).args(args);
    cmd.kill_on_drop(true);
    cmd
}

// ---------------------------------------------------------------------------------------------
// Database and Redis fixtures

struct BenchDb {
    name: String,
    url: String,
    admin_url: String,
}

impl BenchDb {
    async fn create(opts: &Opts) -> Res<BenchDb> {
        let admin_url = format!("{}/{}", opts.pg, opts.pg_admin_db);
        let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(admin_url.as_str()).await?;
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await?;
        admin.close().await?;
        Ok(BenchDb { url: format!("{}/{name}", opts.pg), name, admin_url })
    }

    async fn drop_db(self) {
        let result = async {
            let admin = Database::connect(self.admin_url.as_str()).await?;
            admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await?;
            admin.close().await?;
            Res::Ok(())
        }
        .await;
        if let Err(e) = result {
            eprintln!("warning: could not drop database {}: {e}", self.name);
        }
    }
}

struct BenchUser {
    id: i64,
    token: String,
}

/// Inserts `n` users with one session each, in multi-row batches. Token of user i: `{prefix}{i}`.
async fn insert_users(db: &DatabaseConnection, prefix: &str, n: usize) -> Res<Vec<BenchUser>> {
    const BATCH: usize = 1_000;
    let now = Utc::now();
    let expires = now + chrono::Duration::days(30);
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(BATCH) {
        let end = (start + BATCH).min(n);
        let rows = (start..end).map(|i| users::ActiveModel {
            nickname: Set(format!("{prefix}{i}")),
            gender: Set("UNSPECIFIED".into()),
            role: Set("USER".into()),
            follower_count: Set(0),
            following_count: Set(0),
            post_count: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        });
        let inserted = users::Entity::insert_many(rows).exec_with_returning(db).await?;
        let by_nick: HashMap<String, i64> = inserted.into_iter().map(|m| (m.nickname, m.id)).collect();
        let mut batch = Vec::with_capacity(end - start);
        for i in start..end {
            let id = *by_nick.get(&format!("{prefix}{i}")).ok_or("inserted user missing")?;
            let token = format!("{prefix}{i}");
            batch.push(sessions::ActiveModel {
                user_id: Set(id),
                token_hash: Set(hash_token(&token)),
                created_at: Set(now),
                expires_at: Set(expires),
                last_seen_at: Set(now),
                ..Default::default()
            });
            out.push(BenchUser { id, token });
        }
        sessions::Entity::insert_many(batch).exec_without_returning(db).await?;
    }
    Ok(out)
}

async fn clear_redis_prefix(url: &str, prefix: &str) -> Res<usize> {
    let client = redis::Client::open(url)?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut con)
            .await?;
        if !keys.is_empty() {
            deleted += keys.len();
            let _: i64 = redis::cmd("DEL").arg(&keys).query_async(&mut con).await?;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

// ---------------------------------------------------------------------------------------------
// Gateway processes

struct Gateway {
    child: Child,
    pid: u32,
    port: u16,
    log: PathBuf,
}

async fn start_gateway(opts: &Opts, db_url: &str, redis_prefix: Option<&str>, log: PathBuf) -> Res<Gateway> {
    let port = free_port()?;
    let log_file = std::fs::File::create(&log)?;
    let mut cmd = with_raised_nofile(&opts.gateway, &["serve".into()]);
    cmd.env("DATABASE_URL", db_url)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("WS_KEEPALIVE_SECS", "60")
        .env("RUST_LOG", "warn")
        // The bench measures capacity, not the abuse limits: 10,000 anonymous sockets share a few
        // source addresses, and scenario C sends 200 messages a minute. 0 switches a limit off
        // (older builds without rate limits ignore these variables).
        .env("RATE_LIMIT_REQUESTS_PER_MINUTE", "0")
        .env("RATE_LIMIT_MESSAGES_PER_MINUTE", "0")
        .env("RATE_LIMIT_CHAT_PER_MINUTE", "0")
        // Likewise the connection caps: up to 19,000 sockets from a few loopback addresses.
        .env("MAX_CONNECTIONS", "19900")
        .env("MAX_CONNECTIONS_PER_IP", "0")
        .env("MAX_WEBSOCKETS_PER_IP", "0")
        .env_remove("REDIS_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file.try_clone()?))
        .stderr(Stdio::from(log_file));
    if let Some(prefix) = redis_prefix {
        cmd.env("REDIS_URL", &opts.redis).env("REDIS_PREFIX", prefix);
    }
    cmd.envs(opts.server_env.iter().map(|(k, v)| (k, v)));
    let mut child = cmd.spawn()?;
    let pid = child.id().ok_or("gateway exited at once")?;
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait()? {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("gateway exited ({status}):\n{tail}").into());
        }
        if let Ok(r) = http.get(format!("http://127.0.0.1:{port}/readyz")).send().await
            && r.status().is_success()
        {
            break;
        }
        if Instant::now() > deadline {
            return Err("gateway not ready after 120 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Gateway { child, pid, port, log })
}

impl Gateway {
    async fn stop(mut self) {
        let _ = self.child.kill().await;
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let noteworthy: Vec<&str> = log.lines().filter(|l| l.contains("ERROR") || l.contains("panicked")).collect();
        if !noteworthy.is_empty() {
            eprintln!("gateway :{} logged {} error lines, first: {}", self.port, noteworthy.len(), noteworthy[0]);
        }
    }

    fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/graphql", self.port)
    }
}

async fn gql(http: &reqwest::Client, port: u16, token: Option<&str>, query: &str, variables: Value) -> Res<Value> {
    let mut req = http
        .post(format!("http://127.0.0.1:{port}/graphql"))
        .header("Accept", "application/json")
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let body: Value = req.send().await?.json().await?;
    if body.get("errors").is_some_and(|e| !e.is_null()) {
        return Err(format!("GraphQL errors: {}", body["errors"]).into());
    }
    Ok(body["data"].clone())
}

// ---------------------------------------------------------------------------------------------
// WebSocket plumbing shared by parent and children

fn ws_config() -> WebSocketConfig {
    // Small buffers: a client process holds thousands of sockets.
    WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0)
}

fn text(v: Value) -> Message {
    Message::Text(v.to_string().into())
}

/// Connects, does `connection_init` (with `authToken` if given), waits for the ack and subscribes.
async fn open_subscription(
    url: &str,
    server: SocketAddr,
    source: Option<IpAddr>,
    token: Option<&str>,
    query: &str,
    variables: &Value,
) -> Res<Ws> {
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let tcp = socket.connect(server).await?;
    tcp.set_nodelay(true)?;
    let mut request = url.into_client_request()?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(request, tcp, Some(ws_config())).await?;
    let payload = match token {
        Some(t) => json!({ "authToken": t }),
        None => json!({}),
    };
    ws.send(text(json!({ "type": "connection_init", "payload": payload }))).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t)?;
                match v["type"].as_str() {
                    Some("connection_ack") => break,
                    Some("ping") => ws.send(text(json!({ "type": "pong" }))).await?,
                    _ => return Err(format!("unexpected before ack: {t}").into()),
                }
            }
            Some(Ok(Message::Close(frame))) => return Err(format!("closed before ack: {frame:?}").into()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Err("socket ended before ack".into()),
        }
    }
    if !query.is_empty() {
        let sub = json!({ "type": "subscribe", "id": "1", "payload": { "query": query, "variables": variables } });
        ws.send(text(sub)).await?;
    }
    Ok(ws)
}

/// The next `next` payload's `data`, answering pings meanwhile.
async fn next_data(ws: &mut Ws, within: Duration) -> Res<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.map_err(|_| "timed out waiting for an event")?;
        match msg {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t)?;
                match v["type"].as_str() {
                    Some("next") => return Ok(v["payload"]["data"].clone()),
                    Some("ping") => ws.send(text(json!({ "type": "pong" }))).await?,
                    Some("pong") => {}
                    _ => return Err(format!("unexpected frame: {t}").into()),
                }
            }
            Some(Ok(Message::Close(frame))) => return Err(format!("socket closed: {frame:?}").into()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Err("socket ended".into()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client child process

struct ClientCfg {
    url: String,
    server: SocketAddr,
    source: Option<IpAddr>,
    first: usize,
    count: usize,
    token_prefix: Option<String>,
    query: String,
    variables: Value,
    batch: usize,
    chat: bool,
}

impl ClientCfg {
    fn parse(args: &[String]) -> Res<ClientCfg> {
        let mut m = HashMap::new();
        let mut it = args.iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            m.insert(k.trim_start_matches("--").to_string(), v.clone());
        }
        let get = |k: &str| m.get(k).cloned().ok_or_else(|| format!("client: missing --{k}"));
        let url = get("url")?;
        let server: SocketAddr = url.trim_start_matches("ws://").split('/').next().ok_or("client: bad url")?.parse()?;
        Ok(ClientCfg {
            server,
            url,
            source: m.get("source").map(|s| s.parse()).transpose()?,
            first: get("first")?.parse()?,
            count: get("count")?.parse()?,
            token_prefix: m.get("token-prefix").cloned(),
            query: get("query")?,
            variables: serde_json::from_str(&get("variables")?)?,
            batch: get("batch")?.parse()?,
            chat: get("kind")? == "chat",
        })
    }
}

#[derive(Default)]
struct Tally {
    /// (chat seq, microseconds from send to receive)
    lat: Vec<(i64, u64)>,
    skipped: u64,
    events: u64,
    closed: u64,
    errors: u64,
}

async fn client_main(cfg: ClientCfg) -> Res<()> {
    let cfg = Arc::new(cfg);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let (mut ok, mut failed) = (0usize, 0usize);
    let mut first_error: Option<String> = None;
    for start in (0..cfg.count).step_by(cfg.batch.max(1)) {
        let end = (start + cfg.batch.max(1)).min(cfg.count);
        let mut waits = Vec::with_capacity(end - start);
        for i in start..end {
            let (tx, rx) = oneshot::channel();
            tokio::spawn(connection(cfg.first + i, cfg.clone(), tally.clone(), tx));
            waits.push(rx);
        }
        for rx in waits {
            match rx.await {
                Ok(Ok(())) => ok += 1,
                Ok(Err(e)) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
                Err(_) => failed += 1,
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(e) = first_error {
        eprintln!("client {}..: {failed} sockets failed, first error: {e}", cfg.first);
    }
    println!("ready {ok} {failed} {}", started.elapsed().as_millis());
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = stdin.next_line().await? {
        match line.trim() {
            "count" => {
                let n = tally.lock().unwrap().lat.len();
                println!("count {n}");
            }
            "report" => {
                let t = tally.lock().unwrap();
                let mut out = String::new();
                for chunk in t.lat.chunks(5_000) {
                    out.push_str("lat");
                    for (seq, us) in chunk {
                        out.push_str(&format!(" {seq}:{us}"));
                    }
                    out.push('\n');
                }
                out.push_str(&format!("stats {} {} {} {}\ndone\n", t.skipped, t.events, t.closed, t.errors));
                use std::io::Write as _;
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(out.as_bytes())?;
                stdout.flush()?;
            }
            "quit" => break,
            _ => {}
        }
    }
    std::process::exit(0);
}

async fn connection(
    idx: usize,
    cfg: Arc<ClientCfg>,
    tally: Arc<Mutex<Tally>>,
    ready: oneshot::Sender<Result<(), String>>,
) {
    let token = cfg.token_prefix.as_ref().map(|p| format!("{p}{idx}"));
    let setup = open_subscription(&cfg.url, cfg.server, cfg.source, token.as_deref(), &cfg.query, &cfg.variables);
    let mut ws = match tokio::time::timeout(Duration::from_secs(60), setup).await {
        Ok(Ok(ws)) => {
            let _ = ready.send(Ok(()));
            ws
        }
        Ok(Err(e)) => {
            let _ = ready.send(Err(e.to_string()));
            return;
        }
        Err(_) => {
            let _ = ready.send(Err("setup timed out".into()));
            return;
        }
    };
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(t) = msg else {
            if matches!(msg, Message::Close(_)) {
                break;
            }
            continue;
        };
        let received = now_us();
        let Ok(v) = serde_json::from_str::<Value>(&t) else { continue };
        match v["type"].as_str() {
            Some("ping") => {
                let _ = ws.send(text(json!({ "type": "pong" }))).await;
            }
            Some("next") if cfg.chat => {
                let event = &v["payload"]["data"]["liveChat"];
                let seq = event["message"]["seq"].as_i64().unwrap_or(-1);
                let sent: Option<u64> =
                    event["message"]["body"].as_str().and_then(|b| b.strip_prefix("t=")).and_then(|s| s.parse().ok());
                let mut t = tally.lock().unwrap();
                t.skipped += event["skipped"].as_u64().unwrap_or(0);
                match sent {
                    Some(sent) => t.lat.push((seq, received.saturating_sub(sent))),
                    None => t.errors += 1,
                }
            }
            Some("next") => {
                tally.lock().unwrap().events += 1;
                println!("event {idx}");
            }
            Some("error") | Some("complete") => {
                let mut t = tally.lock().unwrap();
                if t.errors == 0 {
                    eprintln!("socket {idx}: {v}");
                }
                t.errors += 1;
            }
            _ => {}
        }
    }
    tally.lock().unwrap().closed += 1;
}

// ---------------------------------------------------------------------------------------------
// Client processes, seen from the parent

struct Clients {
    children: Vec<Child>,
    stdins: Vec<ChildStdin>,
    rx: mpsc::UnboundedReceiver<(usize, String)>,
    /// Socket indexes that reported an `event` line.
    events: HashSet<usize>,
}

/// Source addresses for client processes: 127.0.0.2, 127.0.0.3, ... never reused within a run, so
/// ports in TIME_WAIT from an earlier scenario do not count against a later one.
static NEXT_SOURCE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(2);

impl Clients {
    async fn spawn(
        opts: &Opts,
        url: &str,
        total: usize,
        token_prefix: Option<&str>,
        query: &str,
        variables: &Value,
        kind: &str,
    ) -> Res<Clients> {
        let procs = total.div_ceil(opts.per_client).max(1);
        let exe = std::env::current_exe()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut children = Vec::new();
        let mut stdins = Vec::new();
        let mut first = 0;
        for p in 0..procs {
            let count = total / procs + usize::from(p < total % procs);
            let n = NEXT_SOURCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let source = Ipv4Addr::new(127, 0, (n >> 8) as u8, (n & 0xff) as u8);
            let mut args: Vec<String> = vec!["client".into()];
            for (k, v) in [
                ("--url", url.to_string()),
                ("--source", source.to_string()),
                ("--first", first.to_string()),
                ("--count", count.to_string()),
                ("--query", query.to_string()),
                ("--variables", variables.to_string()),
                ("--batch", (opts.batch / procs).max(1).to_string()),
                ("--kind", kind.to_string()),
            ] {
                args.push(k.into());
                args.push(v);
            }
            if let Some(prefix) = token_prefix {
                args.push("--token-prefix".into());
                args.push(prefix.into());
            }
            let mut cmd = with_raised_nofile(&exe, &args);
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
            let mut child = cmd.spawn()?;
            stdins.push(child.stdin.take().ok_or("no stdin")?);
            let stdout = child.stdout.take().ok_or("no stdout")?;
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if tx.send((p, line)).is_err() {
                        break;
                    }
                }
            });
            children.push(child);
            first += count;
        }
        Ok(Clients { children, stdins, rx, events: HashSet::new() })
    }

    /// The next line that is not an `event` (those are recorded).
    async fn line(&mut self, deadline: tokio::time::Instant) -> Res<(usize, String)> {
        loop {
            let got =
                tokio::time::timeout_at(deadline, self.rx.recv()).await.map_err(|_| "timed out waiting for clients")?;
            let (p, line) = got.ok_or("client processes ended")?;
            if let Some(idx) = line.strip_prefix("event ") {
                self.events.insert(idx.parse()?);
                continue;
            }
            return Ok((p, line));
        }
    }

    /// Waits for every child's `ready ok failed ms`; returns (ok, failed).
    async fn wait_ready(&mut self) -> Res<(usize, usize)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
        let (mut ok, mut failed, mut seen) = (0, 0, 0);
        while seen < self.children.len() {
            let (_, line) = self.line(deadline).await?;
            let parts: Vec<&str> = line.split_whitespace().collect();
            if parts.first() == Some(&"ready") && parts.len() == 4 {
                ok += parts[1].parse::<usize>()?;
                failed += parts[2].parse::<usize>()?;
                seen += 1;
            }
        }
        Ok((ok, failed))
    }

    async fn broadcast(&mut self, cmd: &str) -> Res<()> {
        for s in &mut self.stdins {
            s.write_all(format!("{cmd}\n").as_bytes()).await?;
            s.flush().await?;
        }
        Ok(())
    }

    async fn count(&mut self) -> Res<usize> {
        self.broadcast("count").await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let (mut total, mut seen) = (0, 0);
        while seen < self.children.len() {
            let (_, line) = self.line(deadline).await?;
            if let Some(n) = line.strip_prefix("count ") {
                total += n.parse::<usize>()?;
                seen += 1;
            }
        }
        Ok(total)
    }

    /// Latencies (seq, us) and summed stats (skipped, events, closed, errors).
    async fn report(&mut self) -> Res<(Vec<(i64, u64)>, [u64; 4])> {
        self.broadcast("report").await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut lat = Vec::new();
        let mut stats = [0u64; 4];
        let mut seen = 0;
        while seen < self.children.len() {
            let (_, line) = self.line(deadline).await?;
            if let Some(rest) = line.strip_prefix("lat ") {
                for pair in rest.split_whitespace() {
                    let (seq, us) = pair.split_once(':').ok_or("bad lat pair")?;
                    lat.push((seq.parse()?, us.parse()?));
                }
            } else if let Some(rest) = line.strip_prefix("stats ") {
                for (slot, v) in stats.iter_mut().zip(rest.split_whitespace()) {
                    *slot += v.parse::<u64>()?;
                }
            } else if line == "done" {
                seen += 1;
            }
        }
        Ok((lat, stats))
    }

    fn cpu_ticks(&self) -> u64 {
        self.children.iter().filter_map(|c| c.id()).map(cpu_ticks).sum()
    }

    fn rss_kib(&self) -> u64 {
        self.children.iter().filter_map(|c| c.id()).filter_map(|pid| rss_kib(pid).ok()).sum()
    }

    async fn shutdown(mut self) {
        let _ = self.broadcast("quit").await;
        for mut c in self.children.drain(..) {
            if tokio::time::timeout(Duration::from_secs(5), c.wait()).await.is_err() {
                let _ = c.kill().await;
            }
        }
    }
}

/// Waits until the gateway's RSS stops moving (< 0.5 % over one second), at most 20 s.
async fn settled_rss(pid: u32) -> Res<u64> {
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut last = rss_kib(pid)?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = rss_kib(pid)?;
        if now.abs_diff(last) * 200 < last {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

// ---------------------------------------------------------------------------------------------
// Scenarios

struct Machine {
    cpu: String,
    cores: usize,
    mem_gib: f64,
    kernel: String,
    nofile: String,
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_string();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: f64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .map(|l| l.split_whitespace().skip(3).take(2).collect::<Vec<_>>().join("/"))
        .unwrap_or_default();
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        mem_gib: mem_kib / 1024.0 / 1024.0,
        kernel,
        nofile,
    }
}

struct MemoryRow {
    target: usize,
    ok: usize,
    failed: usize,
    setup_s: f64,
    before_kib: u64,
    after_kib: u64,
    /// Once every socket has closed.
    closed_kib: u64,
    clients_kib: u64,
    probes_sent: usize,
    probes_received: usize,
}

async fn scenario_memory(opts: &Opts, n: usize, logs: &Path) -> Res<MemoryRow> {
    println!("== A. memory: {n} idle authenticated notificationReceived subscriptions");
    let db = BenchDb::create(opts).await?;
    let result = async {
        let prefix = format!("bm{}-", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let redis_prefix = opts.redis_everywhere.then(|| format!("ecer-bench-{}", uuid::Uuid::new_v4().simple()));
        let gw = start_gateway(opts, &db.url, redis_prefix.as_deref(), logs.join(format!("memory-{n}.log"))).await?;
        let out = async {
            let conn = Database::connect(db.url.as_str()).await?;
            let t = Instant::now();
            // n subscribers plus one prober who follows a sample of them.
            let users = insert_users(&conn, &prefix, n + 1).await?;
            println!("   inserted {} users + sessions in {:.1} s", n + 1, t.elapsed().as_secs_f64());
            tokio::time::sleep(Duration::from_secs(2)).await;
            let before = rss_kib(gw.pid)?;
            let t = Instant::now();
            let mut clients =
                Clients::spawn(opts, &gw.ws_url(), n, Some(&prefix), &opts.memory_query, &json!({}), "idle").await?;
            let (ok, failed) = clients.wait_ready().await?;
            let setup_s = t.elapsed().as_secs_f64();
            println!("   {ok} sockets subscribed ({failed} failed) in {setup_s:.1} s");
            let after = settled_rss(gw.pid).await?;
            let clients_kib = clients.rss_kib();
            // Prove the subscriptions are live: the prober follows 20 subscribers, each must get a
            // NEW_FOLLOWER notification on its socket.
            let http = reqwest::Client::new();
            let prober = &users[n];
            let sample: Vec<usize> = (0..20).map(|k| k * n / 20).collect();
            for &i in &sample {
                let id = ids::encode(Kind::User, users[i].id).to_string();
                gql(
                    &http,
                    gw.port,
                    Some(&prober.token),
                    "mutation($u: ID!) { followUser(input: {userId: $u}) { __typename } }",
                    json!({ "u": id }),
                )
                .await?;
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while sample.iter().any(|i| !clients.events.contains(i)) && Instant::now() < deadline {
                let _ = clients.line(tokio::time::Instant::now() + Duration::from_millis(200)).await;
            }
            let probes_received = sample.iter().filter(|i| clients.events.contains(i)).count();
            clients.shutdown().await;
            // What the gateway gives back once every socket has closed.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let closed = settled_rss(gw.pid).await?;
            conn.close().await?;
            Res::Ok(MemoryRow {
                target: n,
                ok,
                failed,
                setup_s,
                before_kib: before,
                after_kib: after,
                closed_kib: closed,
                clients_kib,
                probes_sent: sample.len(),
                probes_received,
            })
        }
        .await;
        gw.stop().await;
        if let Some(p) = &redis_prefix {
            clear_redis_prefix(&opts.redis, p).await?;
        }
        out
    }
    .await;
    db.drop_db().await;
    result
}

struct FanoutRow {
    sockets: usize,
    failed: usize,
    viewer_count: i64,
    lines: usize,
    interval_ms: u64,
    expected: usize,
    delivered: usize,
    skipped: u64,
    p50_us: u64,
    p90_us: u64,
    p99_us: u64,
    max_us: u64,
    burst_rate: f64,
    /// Deliveries per second of time with a line in flight.
    in_flight_rate: f64,
    line_done_p50_us: u64,
    line_done_max_us: u64,
    send_rtt_p50_us: u64,
    cpu_gateway_s: f64,
    cpu_clients_s: f64,
    rss_per_socket_kib: f64,
}

async fn scenario_fanout(opts: &Opts, n: usize, interval_ms: u64, logs: &Path) -> Res<FanoutRow> {
    println!("== B. live chat fan-out: {n} sockets, {} lines every {interval_ms} ms", opts.lines);
    let db = BenchDb::create(opts).await?;
    let result = async {
        let prefix = format!("bf{}-", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let redis_prefix = opts.redis_everywhere.then(|| format!("ecer-bench-{}", uuid::Uuid::new_v4().simple()));
        let gw = start_gateway(opts, &db.url, redis_prefix.as_deref(), logs.join(format!("fanout-{interval_ms}.log"))).await?;
        let out = async {
            let conn = Database::connect(db.url.as_str()).await?;
            let host = insert_users(&conn, &prefix, 1).await?.remove(0);
            conn.close().await?;
            let http = reqwest::Client::new();
            let created = gql(
                &http,
                gw.port,
                Some(&host.token),
                "mutation($t: String!) { createLiveStream(input: {title: $t}) { liveStream { id } } }",
                json!({ "t": "realtime bench" }),
            )
            .await?;
            let stream_id = created["createLiveStream"]["liveStream"]["id"].as_str().ok_or("no stream id")?.to_string();
            gql(
                &http,
                gw.port,
                Some(&host.token),
                "mutation($s: ID!) { startLiveStream(input: {streamId: $s}) { liveStream { status } } }",
                json!({ "s": stream_id }),
            )
            .await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let before = rss_kib(gw.pid)?;
            let mut clients =
                Clients::spawn(opts, &gw.ws_url(), n, None, LIVE_CHAT, &json!({ "s": stream_id }), "chat").await?;
            let (ok, failed) = clients.wait_ready().await?;
            // Every socket's subscription is running once the room counts it as a viewer.
            let deadline = Instant::now() + Duration::from_secs(60);
            let viewer_count = loop {
                let d = gql(
                    &http,
                    gw.port,
                    None,
                    "query($s: ID!) { liveStream(id: $s) { viewerCount } }",
                    json!({ "s": stream_id }),
                )
                .await?;
                let v = d["liveStream"]["viewerCount"].as_i64().unwrap_or(0);
                if v >= ok as i64 || Instant::now() > deadline {
                    break v;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            };
            println!("   {ok} sockets subscribed ({failed} failed), viewerCount {viewer_count}");
            let after = settled_rss(gw.pid).await?;
            let mut sent_at: BTreeMap<i64, u64> = BTreeMap::new();
            let mut rtts = Vec::new();
            let cpu_before = (cpu_ticks(gw.pid), clients.cpu_ticks());
            let mut tick = tokio::time::interval(Duration::from_millis(interval_ms.max(1)));
            for _ in 0..opts.lines {
                tick.tick().await;
                let t = now_us();
                let d = gql(
                    &http,
                    gw.port,
                    Some(&host.token),
                    "mutation($s: ID!, $b: String!) { sendLiveChatMessage(input: {streamId: $s, body: $b}) { message { seq } } }",
                    json!({ "s": stream_id, "b": format!("t={t}") }),
                )
                .await?;
                rtts.push(now_us() - t);
                sent_at.insert(d["sendLiveChatMessage"]["message"]["seq"].as_i64().ok_or("no seq")?, t);
            }
            let expected = ok * opts.lines;
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let got = clients.count().await?;
                if got >= expected || Instant::now() > deadline {
                    break;
                }
            }
            let cpu_gateway_s = cpu_ticks(gw.pid).saturating_sub(cpu_before.0) as f64 / CLK_TCK;
            let cpu_clients_s = clients.cpu_ticks().saturating_sub(cpu_before.1) as f64 / CLK_TCK;
            let (lat, [skipped, _, closed, errors]) = clients.report().await?;
            if closed > 0 || errors > 0 {
                eprintln!("   warning: {closed} sockets closed, {errors} error frames");
            }
            clients.shutdown().await;
            let mut all: Vec<u64> = lat.iter().map(|&(_, us)| us).collect();
            all.sort_unstable();
            let mut per_line: BTreeMap<i64, u64> = BTreeMap::new();
            for &(seq, us) in &lat {
                let e = per_line.entry(seq).or_default();
                *e = (*e).max(us);
            }
            let mut line_done: Vec<u64> = per_line.values().copied().collect();
            line_done.sort_unstable();
            let first_send = sent_at.values().min().copied().unwrap_or(0);
            let last_recv = lat.iter().filter_map(|&(seq, us)| sent_at.get(&seq).map(|t| t + us)).max().unwrap_or(0);
            // Time with at least one line on its way (from its send to its last delivery), merged
            // over overlapping lines: the rate the gateway delivers at while it has work.
            let mut spans: Vec<(u64, u64)> =
                per_line.iter().filter_map(|(seq, &done)| sent_at.get(seq).map(|&t| (t, t + done))).collect();
            spans.sort_unstable();
            let mut busy_us = 0;
            let mut open: Option<(u64, u64)> = None;
            for (start, end) in spans {
                open = match open {
                    Some((s, e)) if start <= e => Some((s, e.max(end))),
                    Some((s, e)) => {
                        busy_us += e - s;
                        Some((start, end))
                    }
                    None => Some((start, end)),
                };
            }
            busy_us += open.map_or(0, |(s, e)| e - s);
            rtts.sort_unstable();
            Res::Ok(FanoutRow {
                in_flight_rate: lat.len() as f64 / (busy_us as f64 / 1e6).max(1e-9),
                sockets: ok,
                failed,
                viewer_count,
                lines: opts.lines,
                interval_ms,
                cpu_gateway_s,
                cpu_clients_s,
                expected,
                delivered: lat.len(),
                skipped,
                p50_us: pct(&all, 50.0),
                p90_us: pct(&all, 90.0),
                p99_us: pct(&all, 99.0),
                max_us: all.last().copied().unwrap_or(0),
                burst_rate: lat.len() as f64 / ((last_recv.saturating_sub(first_send)) as f64 / 1e6).max(1e-9),
                line_done_p50_us: pct(&line_done, 50.0),
                line_done_max_us: line_done.last().copied().unwrap_or(0),
                send_rtt_p50_us: pct(&rtts, 50.0),
                rss_per_socket_kib: after.saturating_sub(before) as f64 / ok.max(1) as f64,
            })
        }
        .await;
        gw.stop().await;
        if let Some(p) = &redis_prefix {
            clear_redis_prefix(&opts.redis, p).await?;
        }
        out
    }
    .await;
    db.drop_db().await;
    result
}

struct PrivateRow {
    path: &'static str,
    messages: usize,
    lost: usize,
    p50_us: u64,
    p90_us: u64,
    p99_us: u64,
    max_us: u64,
    rtt_p50_us: u64,
}

async fn scenario_private(opts: &Opts, logs: &Path) -> Res<Vec<PrivateRow>> {
    println!("== C. private messages: {} sequential sendMessage on A, recipient on B (Redis)", opts.messages);
    let db = BenchDb::create(opts).await?;
    let redis_prefix = format!("ecer-bench-{}", uuid::Uuid::new_v4().simple());
    let result = async {
        let prefix = format!("bp{}-", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        // A first (it applies the migrations), then B.
        let a = start_gateway(opts, &db.url, Some(&redis_prefix), logs.join("private-a.log")).await?;
        let b = match start_gateway(opts, &db.url, Some(&redis_prefix), logs.join("private-b.log")).await {
            Ok(b) => b,
            Err(e) => {
                a.stop().await;
                return Err(e);
            }
        };
        let out = async {
            let conn = Database::connect(db.url.as_str()).await?;
            let mut people = insert_users(&conn, &prefix, 2).await?;
            conn.close().await?;
            let recipient = people.remove(1);
            let sender = people.remove(0);
            let http = reqwest::Client::new();
            let me = gql(&http, b.port, Some(&recipient.token), "{ me { id } }", json!({})).await?;
            let to = me["me"]["id"].as_str().ok_or("no me.id")?.to_string();
            let mut rows = Vec::new();
            for (path, sub_gw) in [("A -> B (two instances, Redis)", &b), ("A -> A (same instance)", &a)] {
                let server: SocketAddr = format!("127.0.0.1:{}", sub_gw.port).parse()?;
                let mut ws =
                    open_subscription(&sub_gw.ws_url(), server, None, Some(&recipient.token), MESSAGES, &json!({}))
                        .await?;
                let mut lat = Vec::new();
                let mut rtts = Vec::new();
                let mut lost = 0;
                // Three warm-up messages (the first creates the conversation; they also prove the
                // subscription is running).
                for i in 0..opts.messages + 3 {
                    let t = now_us();
                    let body = format!("t={t}");
                    gql(
                        &http,
                        a.port,
                        Some(&sender.token),
                        "mutation($u: ID!, $b: String!) { sendMessage(input: {toUserId: $u, body: $b}) { message { id } } }",
                        json!({ "u": to, "b": body }),
                    )
                    .await?;
                    let rtt = now_us() - t;
                    let within = if i < 3 { Duration::from_secs(10) } else { Duration::from_secs(5) };
                    let got = loop {
                        match next_data(&mut ws, within).await {
                            Ok(d) if d["messageReceived"]["body"].as_str() == Some(body.as_str()) => {
                                break Some(now_us() - t);
                            }
                            Ok(_) => continue,
                            Err(e) => {
                                eprintln!("   {path}: message {i} not received: {e}");
                                break None;
                            }
                        }
                    };
                    if i < 3 {
                        if got.is_none() {
                            return Err(format!("{path}: warm-up message not delivered").into());
                        }
                        continue;
                    }
                    rtts.push(rtt);
                    match got {
                        Some(us) => lat.push(us),
                        None => lost += 1,
                    }
                }
                let _ = ws.close(None).await;
                lat.sort_unstable();
                rtts.sort_unstable();
                rows.push(PrivateRow {
                    path,
                    messages: opts.messages,
                    lost,
                    p50_us: pct(&lat, 50.0),
                    p90_us: pct(&lat, 90.0),
                    p99_us: pct(&lat, 99.0),
                    max_us: lat.last().copied().unwrap_or(0),
                    rtt_p50_us: pct(&rtts, 50.0),
                });
            }
            Res::Ok(rows)
        }
        .await;
        a.stop().await;
        b.stop().await;
        out
    }
    .await;
    db.drop_db().await;
    if let Err(e) = clear_redis_prefix(&opts.redis, &redis_prefix).await {
        eprintln!("warning: could not clear Redis prefix {redis_prefix}: {e}");
    }
    result
}

struct RateRow {
    pairs: usize,
    rate: usize,
    achieved: f64,
    sent: usize,
    delivered: usize,
    p50_us: u64,
    p90_us: u64,
    p99_us: u64,
    max_us: u64,
    rtt_p50_us: u64,
    rtt_p99_us: u64,
}

/// C2: `--pairs` senders on A each send to their own recipient on B, open loop, together
/// `--rate` messages per second for `--rate-secs`; each recipient's socket records receive time -
/// send time (the body carries the send time).
async fn scenario_private_rate(opts: &Opts, logs: &Path) -> Res<RateRow> {
    let pairs = opts.pairs.max(1);
    let per_pair = (opts.rate as u64 * opts.rate_secs).div_ceil(pairs as u64) as usize;
    let period = Duration::from_secs_f64(pairs as f64 / opts.rate.max(1) as f64);
    println!(
        "== C2. private messages at {}/s: {pairs} pairs, sender on A, recipient on B (Redis), {} s",
        opts.rate, opts.rate_secs
    );
    let db = BenchDb::create(opts).await?;
    let redis_prefix = format!("ecer-bench-{}", uuid::Uuid::new_v4().simple());
    let result = async {
        let prefix = format!("br{}-", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let a = start_gateway(opts, &db.url, Some(&redis_prefix), logs.join("rate-a.log")).await?;
        let b = match start_gateway(opts, &db.url, Some(&redis_prefix), logs.join("rate-b.log")).await {
            Ok(b) => b,
            Err(e) => {
                a.stop().await;
                return Err(e);
            }
        };
        let out = async {
            let conn = Database::connect(db.url.as_str()).await?;
            let people = insert_users(&conn, &prefix, 2 * pairs).await?;
            conn.close().await?;
            let http = reqwest::Client::new();
            let server: SocketAddr = format!("127.0.0.1:{}", b.port).parse()?;
            let send =
                "mutation($u: ID!, $b: String!) { sendMessage(input: {toUserId: $u, body: $b}) { message { id } } }";
            // Each pair: the recipient's id and socket on B, and one delivered warm-up message (it
            // creates the conversation and proves the subscription runs).
            let mut lanes = Vec::new();
            for pair in people.chunks(2) {
                let (sender, recipient) = (&pair[0], &pair[1]);
                let me = gql(&http, b.port, Some(&recipient.token), "{ me { id } }", json!({})).await?;
                let to = me["me"]["id"].as_str().ok_or("no me.id")?.to_string();
                let mut ws =
                    open_subscription(&b.ws_url(), server, None, Some(&recipient.token), MESSAGES, &json!({})).await?;
                // The socket's subscription may start a moment after the first send: resend until
                // one arrives.
                let mut delivered = false;
                for _ in 0..5 {
                    gql(&http, a.port, Some(&sender.token), send, json!({ "u": to, "b": "warm-up" })).await?;
                    if next_data(&mut ws, Duration::from_secs(2)).await.is_ok() {
                        delivered = true;
                        break;
                    }
                }
                if !delivered {
                    return Err(format!("pair {}: no warm-up message delivered", lanes.len()).into());
                }
                // Later warm-ups may still be on their way: let them arrive before counting.
                while next_data(&mut ws, Duration::from_millis(200)).await.is_ok() {}
                lanes.push((sender.token.clone(), to, ws));
            }
            let started = now_us();
            let mut receivers = Vec::new();
            let mut senders = Vec::new();
            for (i, (token, to, mut ws)) in lanes.into_iter().enumerate() {
                receivers.push(tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(per_pair);
                    while lat.len() < per_pair {
                        match next_data(&mut ws, Duration::from_secs(5)).await {
                            Ok(d) => {
                                let body = d["messageReceived"]["body"].as_str().unwrap_or_default();
                                if let Some(t) = body.strip_prefix("t=").and_then(|t| t.parse::<u64>().ok()) {
                                    lat.push(now_us().saturating_sub(t));
                                }
                            }
                            Err(_) => break,
                        }
                    }
                    let _ = ws.close(None).await;
                    lat
                }));
                let http = http.clone();
                let a_port = a.port;
                senders.push(tokio::spawn(async move {
                    // Pairs start spread over one period, so the rate is even, not 50 at once.
                    tokio::time::sleep(period.mul_f64(i as f64 / pairs as f64)).await;
                    let mut tick = tokio::time::interval(period);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                    let mut rtts = Vec::with_capacity(per_pair);
                    for _ in 0..per_pair {
                        tick.tick().await;
                        let t = now_us();
                        let ok =
                            gql(&http, a_port, Some(&token), send, json!({ "u": to, "b": format!("t={t}") })).await;
                        if ok.is_ok() {
                            rtts.push(now_us() - t);
                        }
                    }
                    rtts
                }));
            }
            let mut rtts = Vec::new();
            for s in senders {
                rtts.extend(s.await?);
            }
            let sent_done = now_us();
            let mut lat = Vec::new();
            for r in receivers {
                lat.extend(r.await?);
            }
            lat.sort_unstable();
            rtts.sort_unstable();
            Res::Ok(RateRow {
                pairs,
                rate: opts.rate,
                achieved: rtts.len() as f64 / ((sent_done - started) as f64 / 1e6),
                sent: rtts.len(),
                delivered: lat.len(),
                p50_us: pct(&lat, 50.0),
                p90_us: pct(&lat, 90.0),
                p99_us: pct(&lat, 99.0),
                max_us: lat.last().copied().unwrap_or(0),
                rtt_p50_us: pct(&rtts, 50.0),
                rtt_p99_us: pct(&rtts, 99.0),
            })
        }
        .await;
        a.stop().await;
        b.stop().await;
        out
    }
    .await;
    db.drop_db().await;
    if let Err(e) = clear_redis_prefix(&opts.redis, &redis_prefix).await {
        eprintln!("warning: could not clear Redis prefix {redis_prefix}: {e}");
    }
    result
}

// ---------------------------------------------------------------------------------------------
// Driver

async fn parent_main(opts: Opts) -> Res<()> {
    let logs = tempfile::tempdir()?;
    let m = machine();
    println!(
        "machine: {} x {}, {:.1} GiB RAM, Linux {}, open files (soft/hard) {}",
        m.cores, m.cpu, m.mem_gib, m.kernel, m.nofile
    );
    println!("gateway: {}; server logs in {}", opts.gateway.display(), logs.path().display());
    if !opts.server_env.is_empty() {
        let env: Vec<String> = opts.server_env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("gateway extra environment: {}", env.join(" "));
    }
    let mut memory = Vec::new();
    let mut fanout = Vec::new();
    let mut private = None;
    let mut rated: Option<RateRow> = None;
    let mut failures = Vec::new();
    for s in opts.scenarios.clone() {
        match s.as_str() {
            "memory" => {
                for &n in &opts.conns {
                    match scenario_memory(&opts, n, logs.path()).await {
                        Ok(row) => memory.push(row),
                        Err(e) => failures.push(format!("memory {n}: {e}")),
                    }
                }
            }
            "fanout" => {
                for &interval in &opts.interval_ms {
                    match scenario_fanout(&opts, opts.fanout_conns, interval, logs.path()).await {
                        Ok(row) => fanout.push(row),
                        Err(e) => failures.push(format!("fanout {interval} ms: {e}")),
                    }
                }
            }
            "private" => match scenario_private(&opts, logs.path()).await {
                Ok(rows) => private = Some(rows),
                Err(e) => failures.push(format!("private: {e}")),
            },
            "private-rate" => match scenario_private_rate(&opts, logs.path()).await {
                Ok(row) => rated = Some(row),
                Err(e) => failures.push(format!("private-rate: {e}")),
            },
            _ => {}
        }
    }
    println!();
    if !memory.is_empty() {
        println!("### A. Memory per idle authenticated subscription");
        println!();
        println!(
            "| target sockets | subscribed (failed) | setup time | gateway RSS before | RSS after | **RSS per socket** | RSS after all closed | client RSS per socket | live probes |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in &memory {
            let per = r.after_kib.saturating_sub(r.before_kib) as f64 / r.ok.max(1) as f64;
            println!(
                "| {} | {} ({}) | {:.1} s ({:.0}/s) | {} MiB | {} MiB | **{:.1} KiB** | {} MiB | {:.1} KiB | {}/{} |",
                r.target,
                r.ok,
                r.failed,
                r.setup_s,
                r.ok as f64 / r.setup_s.max(1e-9),
                mib(r.before_kib),
                mib(r.after_kib),
                per,
                mib(r.closed_kib),
                r.clients_kib as f64 / r.ok.max(1) as f64,
                r.probes_received,
                r.probes_sent
            );
        }
        println!();
    }
    if !fanout.is_empty() {
        println!("### B. Live chat fan-out");
        println!();
        println!(
            "| sockets (failed) | viewerCount | lines x interval | deliveries / expected | lost | skipped | p50 | p90 | p99 | max | line fully fanned out p50 / max | deliveries/s in burst | deliveries/s in flight | send mutation p50 | CPU s gateway / clients | gateway RSS per chat socket |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    }
    for r in &fanout {
        println!(
            "| {} ({}) | {} | {} x {} ms | {} / {} | {} | {} | {} ms | {} ms | {} ms | {} ms | {} / {} ms | {:.0} | {:.0} | {} ms | {:.1} / {:.1} | {:.1} KiB |",
            r.sockets,
            r.failed,
            r.viewer_count,
            r.lines,
            r.interval_ms,
            r.delivered,
            r.expected,
            r.expected.saturating_sub(r.delivered),
            r.skipped,
            ms(r.p50_us),
            ms(r.p90_us),
            ms(r.p99_us),
            ms(r.max_us),
            ms(r.line_done_p50_us),
            ms(r.line_done_max_us),
            r.burst_rate,
            r.in_flight_rate,
            ms(r.send_rtt_p50_us),
            r.cpu_gateway_s,
            r.cpu_clients_s,
            r.rss_per_socket_kib
        );
    }
    if !fanout.is_empty() {
        println!();
    }
    if let Some(rows) = &private {
        println!("### C. Private message latency (sendMessage over HTTP -> messageReceived on a socket)");
        println!();
        println!("| path | messages | lost | p50 | p90 | p99 | max | sendMessage HTTP p50 |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in rows {
            println!(
                "| {} | {} | {} | {} ms | {} ms | {} ms | {} ms | {} ms |",
                r.path,
                r.messages,
                r.lost,
                ms(r.p50_us),
                ms(r.p90_us),
                ms(r.p99_us),
                ms(r.max_us),
                ms(r.rtt_p50_us)
            );
        }
        println!();
    }
    if let Some(r) = &rated {
        println!(
            "### C2. Private messages across two instances under load (sendMessage on A at a fixed rate -> messageReceived on B)"
        );
        println!();
        println!(
            "| pairs | target rate | achieved send rate | sent | delivered | lost | p50 | p90 | p99 | max | sendMessage HTTP p50 / p99 |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        println!(
            "| {} | {}/s | {:.0}/s | {} | {} | {} | {} ms | {} ms | {} ms | {} ms | {} / {} ms |",
            r.pairs,
            r.rate,
            r.achieved,
            r.sent,
            r.delivered,
            r.sent.saturating_sub(r.delivered),
            ms(r.p50_us),
            ms(r.p90_us),
            ms(r.p99_us),
            ms(r.max_us),
            ms(r.rtt_p50_us),
            ms(r.rtt_p99_us)
        );
        println!();
    }
    if failures.is_empty() {
        Ok(())
    } else {
        for f in &failures {
            eprintln!("FAILED {f}");
        }
        Err(format!("{} scenario(s) failed", failures.len()).into())
    }
}
