//! Discovery benchmark: full-text search and the recommended feed at 100,000 posts, against a release
//! gateway seeded with `seed --users 10000 --posts 100000 --seed 42`, on SQLite and on PostgreSQL.
//! It builds nothing: it runs `target/release/ecer-gateway` (or `--bin PATH`) as child processes over
//! loopback; see docs/BENCHMARKS.md ("Discovery") for the commands and the results.
//!
//! ```sh
//! cargo build --release
//! cargo bench --bench discovery                               # both backends, 1 and 10 clients
//! cargo bench --bench discovery -- --backends sqlite --query-duration 1 --duration 5
//! cargo bench --bench discovery -- --explain                  # also EXPLAIN a few search statements
//! ```
//!
//! Per backend: create the database (PostgreSQL: `bench_<uuid>`, dropped at the end; SQLite: a file in
//! a temporary directory), seed it (timed), `ANALYZE` it (timed; on PostgreSQL what autovacuum would
//! do where it is on, on SQLite what the gateway's start-up `PRAGMA optimize` does, but before any
//! gateway connection is open; `--no-analyze` skips it, and then a SQLite search can take minutes, see
//! docs/BENCHMARKS.md), count the posts each search query matches directly in the database, then
//! 1. start a gateway with `RUST_LOG=warn,ecer_gateway::sql=trace`; sign in `--members` seeded members
//!    (`+86139000000NN`, the seed's password) and give each of them signals through the API: follow
//!    three members and two boards, like five recent posts, `recordPostView` five more; then profile one
//!    request of each kind (SQL statements and their summed database time, from the gateway's SQL log);
//! 2. restart the gateway with `RUST_LOG=warn` and measure, each with a warm-up first:
//!    - every search query alone, at each client count, for `--query-duration` seconds (anonymous: a
//!      signed-in first-page search also writes the member's search history);
//!    - all the queries mixed (each client walks the list from its own starting point) for `--duration`;
//!    - `hotPosts(first: 20)` and `recommendedFeed(first: 20)`, each client signed in as its own member,
//!      for `--duration`; then every member runs one signed-in search (a feed signal) and the feed is
//!      measured again.
//!
//! A response that is not 200, not JSON, has no `data` or has `errors` counts as an error. Every latency
//! is kept and sorted for p50/p99. The load generator runs in this process (2 tokio workers) on the same
//! 2 cores as the gateway and the database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ecer_gateway::services::search;
use ecer_gateway::services::search::text::query_tokens;
use sea_orm::{ConnectionTrait as _, Database, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};

use tokio::process::Command;

#[path = "support/gateway.rs"]
mod gateway;

use gateway::{Res, Server, SqlLog, check, post};

const PASSWORD: &str = "ecer-demo-password";
const LOGIN: &str =
    "mutation($phone: String!, $password: String!) { login(input: {phone: $phone, password: $password}) { token } }";
const SEARCH: &str = "query($q: String!) { search(query: $q, first: 20) { edges { node { snippet post { id title author { nickname } } } } } }";
const FEED: &str = "query { recommendedFeed(first: 20) { edges { node { reason post { id title author { nickname } board { name } } } } } }";
const HOT: &str = "query { hotPosts(first: 20) { edges { node { id title author { nickname } board { name } } } } }";
const FOLLOW_USER: &str = "mutation($id: ID!) { followUser(input: {userId: $id}) { user { id } } }";
const FOLLOW_BOARD: &str = "mutation($id: ID!) { followBoard(input: {boardId: $id}) { board { id } } }";
const LIKE: &str = "mutation($id: ID!) { likePost(input: {postId: $id}) { post { id } } }";
const VIEW: &str = "mutation($id: ID!) { recordPostView(input: {postId: $id, durationMs: 15000}) { __typename } }";

/// The search queries: words the seed writes into titles and bodies (src/seed.rs: TOPICS, PRODUCTS,
/// MARKETS and the body template), in Traditional Chinese as seeded, Simplified, English and mixed.
const QUERIES: &[(&str, &str)] = &[
    ("詢盤", "zh, 2 chars"),
    ("询盘", "zh Simplified for Traditional text"),
    ("報價", "zh, 2 chars"),
    ("驗廠", "zh, 2 chars"),
    ("清關", "zh, 2 chars"),
    ("樣品", "zh, 2 chars"),
    ("家具", "zh, 2 chars"),
    ("陶瓷", "zh, 2 chars"),
    ("中東", "zh, 2 chars"),
    ("信用證", "zh, 3 chars (2 bigrams)"),
    ("海運費上漲", "zh, 5 chars (4 bigrams)"),
    ("燈", "zh, 1 char"),
    ("shipping", "en, stemmed (ship)"),
    ("factory audit", "en, 2 words"),
    ("Canton Fair", "en, 2 words"),
    ("solar", "en"),
    ("electronics", "en"),
    ("negotiation", "en, stemmed"),
    ("Latin America", "en, 2 words"),
    ("furn", "en, unfinished word (prefix)"),
    ("FOB 報價", "mixed"),
    ("LED 燈具 中東", "mixed, 3 terms"),
    ("textiles 紡織品 Africa", "mixed, 3 terms"),
    ("L/C 信用證", "mixed"),
    ("出口", "very common: every post"),
    ("advice", "very common: every post (en)"),
    ("驗廠 陶瓷 東南亞 MOQ Canton Fair", "rare: 7 common tokens, few posts have all"),
    ("bitcoin", "absent"),
];

/// What the members search before the second feed measurement (one each, signed in).
const MEMBER_SEARCHES: &[&str] = &[
    "驗廠",
    "solar panels",
    "Canton Fair",
    "LED 燈具",
    "信用證",
    "container shipping",
    "家具",
    "MOQ",
    "海運費",
    "Africa",
];

fn main() -> Res<()> {
    // `cargo bench` appends `--bench` to the arguments of a harness-less bench.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let opts = Opts::parse(&args)?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(run(opts))
}

// ---------------------------------------------------------------------------------------------
// Options

struct Opts {
    bin: PathBuf,
    backends: Vec<String>,
    conns: Vec<usize>,
    duration: Duration,
    query_duration: Duration,
    warmup: Duration,
    users: u32,
    posts: u32,
    seed: u64,
    members: usize,
    pg: String,
    pg_admin_db: String,
    analyze: bool,
    explain: bool,
    /// Extra gateway environment (`--server-env KEY=VALUE`, repeatable), e.g.
    /// `RESPONSE_CACHE_TTL_MS=0` to measure every search being computed.
    server_env: Vec<(String, String)>,
}

const USAGE: &str = "usage: cargo bench --bench discovery -- [--bin PATH] [--backends sqlite,postgres] \
[--conns 1,10] [--duration SECS] [--query-duration SECS] [--warmup SECS] [--users N] [--posts N] [--seed N] \
[--members N] [--pg postgres://postgres@127.0.0.1:5432] [--pg-admin-db test] [--no-analyze] [--explain] \
[--server-env KEY=VALUE]...";

impl Opts {
    fn env(&self) -> Vec<(&str, &str)> {
        self.server_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    fn parse(args: &[String]) -> Res<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut o = Opts {
            bin: root.join("target/release/ecer-gateway"),
            backends: vec!["sqlite".into(), "postgres".into()],
            conns: vec![1, 10],
            duration: Duration::from_secs(10),
            query_duration: Duration::from_secs(2),
            warmup: Duration::from_secs(1),
            users: 10_000,
            posts: 100_000,
            seed: 42,
            members: 10,
            pg: "postgres://postgres@127.0.0.1:5432".into(),
            pg_admin_db: "test".into(),
            analyze: true,
            explain: false,
            server_env: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            match flag.as_str() {
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                "--no-analyze" => {
                    o.analyze = false;
                    continue;
                }
                "--explain" => {
                    o.explain = true;
                    continue;
                }
                _ => {}
            }
            let value = it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
            match flag.as_str() {
                "--bin" => o.bin = PathBuf::from(value),
                "--backends" => o.backends = value.split(',').map(str::to_string).collect(),
                "--conns" => o.conns = value.split(',').map(str::parse).collect::<Result<_, _>>()?,
                "--duration" => o.duration = Duration::from_secs_f64(value.parse()?),
                "--query-duration" => o.query_duration = Duration::from_secs_f64(value.parse()?),
                "--warmup" => o.warmup = Duration::from_secs_f64(value.parse()?),
                "--users" => o.users = value.parse()?,
                "--posts" => o.posts = value.parse()?,
                "--seed" => o.seed = value.parse()?,
                "--members" => o.members = value.parse()?,
                "--pg" => o.pg = value.trim_end_matches('/').to_string(),
                "--pg-admin-db" => o.pg_admin_db = value.clone(),
                "--server-env" => {
                    let (k, v) = value.split_once('=').ok_or("--server-env takes KEY=VALUE")?;
                    o.server_env.push((k.to_string(), v.to_string()));
                }
                _ => return Err(format!("unknown option {flag}\n{USAGE}").into()),
            }
        }
        for b in &o.backends {
            if b != "sqlite" && b != "postgres" {
                return Err(format!("unknown backend {b} (sqlite or postgres)").into());
            }
        }
        let max_conns = o.conns.iter().copied().max().unwrap_or(1);
        o.members = o.members.max(max_conns);
        if o.members as u32 + 2 > o.users || o.members > 97 {
            return Err("--members must be at most 97 and at most --users - 2".into());
        }
        if o.posts < 2000 {
            return Err("--posts must be at least 2000 (members like and read recent posts)".into());
        }
        if !o.bin.is_file() {
            return Err(
                format!("{} not found: run `cargo build --release` first or pass --bin", o.bin.display()).into()
            );
        }
        Ok(o)
    }
}

// ---------------------------------------------------------------------------------------------
// Results

#[derive(Default)]
struct Stats {
    requests: usize,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
}

impl Stats {
    fn from(lat: &mut [u64], errors: usize, elapsed: Duration) -> Stats {
        lat.sort_unstable();
        Stats {
            requests: lat.len(),
            rps: lat.len() as f64 / elapsed.as_secs_f64(),
            p50_ms: percentile(lat, 0.50),
            p99_ms: percentile(lat, 0.99),
            errors,
        }
    }
}

struct QueryResult {
    query: &'static str,
    what: &'static str,
    hits: i64,
    page: usize,
    /// One entry per client count, in `opts.conns` order.
    runs: Vec<Stats>,
}

struct Profile {
    what: String,
    statements: usize,
    db_ms: f64,
    slowest_ms: f64,
    slowest: String,
    total_ms: f64,
}

struct BackendResult {
    backend: String,
    seed_secs: f64,
    seed_summary: String,
    analyze_secs: Option<f64>,
    db_bytes: u64,
    queries: Vec<QueryResult>,
    mixed: Vec<(usize, Stats)>,
    feed: Vec<(String, usize, Stats)>,
    profiles: Vec<Profile>,
    reasons: BTreeMap<String, usize>,
    explains: Vec<(String, String)>,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
}

fn global_id(kind: &str, id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{id}"))
}

// ---------------------------------------------------------------------------------------------
// Main flow

async fn run(opts: Opts) -> Res<()> {
    let mut results = Vec::new();
    for backend in opts.backends.clone() {
        eprintln!("== backend {backend}");
        if backend == "sqlite" {
            let dir = tempfile::tempdir()?;
            let file = dir.path().join("discovery.db");
            let url = format!("sqlite://{}?mode=rwc", file.display());
            results.push(bench_backend(&opts, &backend, &url, Some(&file)).await?);
        } else {
            let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
            let admin = Database::connect(format!("{}/{}", opts.pg, opts.pg_admin_db)).await?;
            admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await?;
            eprintln!("created database {name}");
            let url = format!("{}/{}", opts.pg, name);
            let outcome = bench_backend(&opts, &backend, &url, None).await;
            admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
            eprintln!("dropped database {name}");
            results.push(outcome?);
        }
    }
    println!("{}", render(&opts, &results));
    let errors: usize = results
        .iter()
        .flat_map(|r| {
            r.queries
                .iter()
                .flat_map(|q| q.runs.iter())
                .chain(r.mixed.iter().map(|m| &m.1))
                .chain(r.feed.iter().map(|f| &f.2))
        })
        .map(|s| s.errors)
        .sum();
    if errors > 0 {
        return Err(format!("{errors} responses had errors").into());
    }
    Ok(())
}

async fn bench_backend(opts: &Opts, backend: &str, url: &str, sqlite_file: Option<&Path>) -> Res<BackendResult> {
    // Seed.
    let started = Instant::now();
    let out = Command::new(&opts.bin)
        .arg("seed")
        .args(["--users", &opts.users.to_string(), "--posts", &opts.posts.to_string()])
        .args(["--seed", &opts.seed.to_string()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .await?;
    if !out.status.success() {
        return Err(format!("seed failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let seed_secs = started.elapsed().as_secs_f64();
    let seed_summary = String::from_utf8_lossy(&out.stdout).trim().to_string();
    eprintln!("seeded in {seed_secs:.1} s: {seed_summary}");

    let db = Database::connect(url).await?;
    // Statistics first, on both back ends: on PostgreSQL what autovacuum would do (it is off on some
    // servers, this one included); on SQLite what the gateway's `PRAGMA optimize` does at start-up,
    // but before any gateway connection exists. Without statistics SQLite plans the search statement
    // with `search_documents` outside and the FTS table probed once per post (see docs/BENCHMARKS.md),
    // and every pool connection opened before the first `PRAGMA optimize` keeps that plan.
    let mut explains = Vec::new();
    if opts.explain && backend == "sqlite" {
        explains.push(("出口 (no statistics yet)".to_string(), explain_search(&db, "出口").await?));
    }
    let analyze_secs = if opts.analyze {
        let t = Instant::now();
        db.execute_unprepared("ANALYZE").await?;
        let s = t.elapsed().as_secs_f64();
        eprintln!("ANALYZE in {s:.1} s");
        Some(s)
    } else {
        None
    };
    let db_bytes = match sqlite_file {
        Some(f) => std::fs::metadata(f)?.len(),
        None => {
            let row = db
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT pg_database_size(current_database())",
                ))
                .await?
                .ok_or("no size")?;
            row.try_get_by_index::<i64>(0)? as u64
        }
    };

    // Matches per query, straight from the index.
    let mut queries = Vec::new();
    for &(query, what) in QUERIES {
        let hits = count_matches(&db, query).await?;
        queries.push(QueryResult { query, what, hits, page: 0, runs: Vec::new() });
    }
    if opts.explain {
        for q in ["出口", "詢盤", "驗廠 陶瓷 東南亞 MOQ Canton Fair", "bitcoin"] {
            let plan = explain_search(&db, q).await?;
            eprintln!("EXPLAIN search {q:?}:\n{plan}");
            explains.push((q.to_string(), plan));
        }
    }
    db.close().await?;

    // Phase 1: members and their signals, and one profiled request of each kind.
    let (mut server, base, sql_log) =
        Server::start(&opts.bin, url, "warn,ecer_gateway::sql=trace", &opts.env()).await?;
    wait_for_search_index(opts, &base).await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(4).build()?;
    let mut tokens = Vec::new();
    // Two more members than load clients: profiled after a search, without touching the others.
    for m in 1..=opts.members + 2 {
        let phone = format!("+86139{m:08}");
        let r = gql(&http, &base, None, LOGIN, json!({ "phone": phone, "password": PASSWORD })).await?;
        let token = r["data"]["login"]["token"].as_str().ok_or_else(|| format!("login failed: {r}"))?.to_string();
        tokens.push(token);
    }
    let (n_users, n_posts) = (opts.users as i64, opts.posts as i64);
    for (i, token) in tokens.iter().enumerate() {
        let me = i as i64 + 1;
        let t = Some(token.as_str());
        for j in 0..3i64 {
            let mut other = (me * 37 + j * 101 + 500) % n_users + 1;
            if other == me {
                other = other % n_users + 1;
            }
            check(&gql(&http, &base, t, FOLLOW_USER, json!({ "id": global_id("User", other) })).await?)?;
        }
        for b in [i % 12 + 1, (i + 5) % 12 + 1] {
            check(&gql(&http, &base, t, FOLLOW_BOARD, json!({ "id": global_id("Board", b as i64) })).await?)?;
        }
        for j in 0..5i64 {
            let post = n_posts - me * 50 - j * 7;
            check(&gql(&http, &base, t, LIKE, json!({ "id": global_id("Post", post) })).await?)?;
        }
        for j in 0..5i64 {
            let post = n_posts - 1000 - me * 20 - j * 3;
            check(&gql(&http, &base, t, VIEW, json!({ "id": global_id("Post", post) })).await?)?;
        }
    }
    eprintln!("{} members signed in, each followed 3 members and 2 boards, liked 5 posts, read 5", tokens.len());
    let extra: Vec<String> = tokens.split_off(opts.members);

    // How many results the API returns on the first page (a real match, not an empty page).
    for q in &mut queries {
        let r = gql(&http, &base, None, SEARCH, json!({ "q": q.query })).await?;
        check(&r)?;
        q.page = r["data"]["search"]["edges"].as_array().map_or(0, Vec::len);
        let expected = q.hits.min(20) as usize;
        if q.page != expected {
            return Err(
                format!("search {:?}: {} results on the first page, {} matches", q.query, q.page, q.hits).into()
            );
        }
    }
    let first_feed = gql(&http, &base, Some(&tokens[0]), FEED, json!({})).await?;
    check(&first_feed)?;
    eprintln!(
        "member 1's feed: {}",
        first_feed["data"]["recommendedFeed"]["edges"]
            .as_array()
            .map(|e| e.iter().filter_map(|e| e["node"]["reason"].as_str()).collect::<Vec<_>>().join(" | "))
            .unwrap_or_default()
    );

    let mut profiles = Vec::new();
    let hits = |q: &str| queries.iter().find(|r| r.query == q).map_or(0, |r| r.hits);
    let mut plan: Vec<(String, &str, Option<&str>, Value)> =
        ["詢盤", "出口", "驗廠 陶瓷 東南亞 MOQ Canton Fair", "bitcoin"]
            .iter()
            .map(|q| (format!("search \"{q}\" ({} posts)", thousands(hits(q))), SEARCH, None, json!({ "q": q })))
            .collect();
    plan.push(("hotPosts".into(), HOT, Some(&tokens[0]), json!({})));
    plan.push(("recommendedFeed (member 1, no search history)".into(), FEED, Some(&tokens[0]), json!({})));
    for (token, q) in extra.iter().zip(["驗廠", "出口"]) {
        check(&gql(&http, &base, Some(token), SEARCH, json!({ "q": q })).await?)?;
        plan.push((format!("recommendedFeed (a member who searched \"{q}\")"), FEED, Some(token), json!({})));
    }
    for (what, query, token, vars) in &plan {
        profiles.push(profile(&http, &base, &sql_log, what, query, *token, vars).await?);
    }
    server.stop().await;

    // Phase 2: load, with logs at warn.
    let (mut server, base, _) = Server::start(&opts.bin, url, "warn", &opts.env()).await?;
    wait_for_search_index(opts, &base).await?;
    let bodies: Vec<Arc<Vec<u8>>> = QUERIES
        .iter()
        .map(|(q, _)| Arc::new(serde_json::to_vec(&json!({ "query": SEARCH, "variables": { "q": q } })).unwrap()))
        .collect();
    for (qi, q) in queries.iter_mut().enumerate() {
        for &conns in &opts.conns {
            let clients: Vec<Plan> =
                (0..conns).map(|_| Plan { token: None, bodies: vec![bodies[qi].clone()], start: 0 }).collect();
            load(&base, clients.clone(), opts.warmup).await?;
            let mut r = load(&base, clients, opts.query_duration).await?;
            let s = Stats::from(&mut r.latencies_us[0], r.errors, r.elapsed);
            eprintln!(
                "{backend} search {:?} x{conns}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
                q.query, s.rps, s.p50_ms, s.p99_ms, s.errors
            );
            q.runs.push(s);
        }
    }
    let mut mixed = Vec::new();
    for &conns in &opts.conns {
        let clients: Vec<Plan> = (0..conns)
            .map(|c| Plan { token: None, bodies: bodies.clone(), start: c * bodies.len() / conns.max(1) })
            .collect();
        load(&base, clients.clone(), opts.warmup).await?;
        let mut r = load(&base, clients, opts.duration).await?;
        let mut all: Vec<u64> = r.latencies_us.iter_mut().flat_map(|l| l.drain(..)).collect();
        let s = Stats::from(&mut all, r.errors, r.elapsed);
        eprintln!(
            "{backend} search mixed x{conns}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
            s.rps, s.p50_ms, s.p99_ms, s.errors
        );
        mixed.push((conns, s));
    }

    let mut feed = Vec::new();
    let hot = Arc::new(serde_json::to_vec(&json!({ "query": HOT }))?);
    let rec = Arc::new(serde_json::to_vec(&json!({ "query": FEED }))?);
    let scenarios = [("hotPosts", hot.clone()), ("recommendedFeed", rec.clone())];
    for (name, body) in &scenarios {
        feed.extend(feed_load(opts, backend, &base, &tokens, name, body).await?);
    }
    // A search each: the feed now also re-runs the member's recent searches.
    for (i, token) in tokens.iter().enumerate() {
        let q = MEMBER_SEARCHES[i % MEMBER_SEARCHES.len()];
        check(&gql(&http, &base, Some(token), SEARCH, json!({ "q": q })).await?)?;
    }
    feed.extend(feed_load(opts, backend, &base, &tokens, "recommendedFeed after 1 search", &rec).await?);
    let after = gql(&http, &base, Some(&tokens[0]), FEED, json!({})).await?;
    check(&after)?;
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for t in &tokens {
        let r = gql(&http, &base, Some(t), FEED, json!({})).await?;
        check(&r)?;
        for e in r["data"]["recommendedFeed"]["edges"].as_array().into_iter().flatten() {
            let reason = e["node"]["reason"].as_str().unwrap_or("");
            // "because you follow 王偉" -> "because you follow …": the kind of reason, not the name.
            let kind = ["because you follow", "because you read", "because you like posts by", "because you searched"]
                .iter()
                .find(|p| reason.starts_with(*p))
                .map_or_else(|| reason.to_string(), |p| format!("{p} …"));
            *reasons.entry(kind).or_default() += 1;
        }
    }
    server.stop().await;
    Ok(BackendResult {
        backend: backend.to_string(),
        seed_secs,
        seed_summary,
        analyze_secs,
        db_bytes,
        queries,
        mixed,
        feed,
        profiles,
        reasons,
        explains,
    })
}

async fn feed_load(
    opts: &Opts,
    backend: &str,
    base: &str,
    tokens: &[String],
    name: &str,
    body: &Arc<Vec<u8>>,
) -> Res<Vec<(String, usize, Stats)>> {
    let mut out = Vec::new();
    for &conns in &opts.conns {
        let clients: Vec<Plan> =
            (0..conns).map(|c| Plan { token: Some(tokens[c].clone()), bodies: vec![body.clone()], start: 0 }).collect();
        load(base, clients.clone(), opts.warmup).await?;
        let mut r = load(base, clients, opts.duration).await?;
        let s = Stats::from(&mut r.latencies_us[0], r.errors, r.elapsed);
        eprintln!(
            "{backend} {name} x{conns}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors",
            s.rps, s.p50_ms, s.p99_ms, s.errors
        );
        out.push((name.to_string(), conns, s));
    }
    Ok(out)
}

/// One request (after a warm-up one): its SQL statements and their summed time, from the SQL log.
async fn profile(
    http: &reqwest::Client,
    base: &str,
    sql_log: &SqlLog,
    what: &str,
    query: &str,
    token: Option<&str>,
    vars: &Value,
) -> Res<Profile> {
    check(&gql(http, base, token, query, vars.clone()).await?)?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    sql_log.lock().unwrap().clear();
    let t = Instant::now();
    check(&gql(http, base, token, query, vars.clone()).await?)?;
    let total_ms = t.elapsed().as_secs_f64() * 1000.0;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sql = std::mem::take(&mut *sql_log.lock().unwrap());
    let db_us: u64 = sql.iter().map(|(_, us)| us).sum();
    let (slowest, slowest_us) = sql.iter().max_by_key(|(_, us)| *us).cloned().unwrap_or_default();
    let p = Profile {
        what: what.to_string(),
        statements: sql.len(),
        db_ms: db_us as f64 / 1000.0,
        slowest_ms: slowest_us as f64 / 1000.0,
        slowest: slowest.chars().take(160).collect(),
        total_ms,
    };
    eprintln!(
        "profile {what}: {} statements, {:.2} ms in the database of {:.2} ms; slowest {:.2} ms: {}",
        p.statements, p.db_ms, p.total_ms, p.slowest_ms, p.slowest
    );
    Ok(p)
}

// ---------------------------------------------------------------------------------------------
// Direct database look-ups (the same index and match rules as src/services/search/mod.rs)

/// The back end's match expression for a query, built as the gateway builds it.
fn matcher(backend: DbBackend, query: &str) -> String {
    let q = query_tokens(query);
    let last = q.all.len().saturating_sub(1);
    let parts = q.all.iter().enumerate().map(|(i, t)| {
        let prefix = i == last && q.last_is_prefix;
        if backend == DbBackend::Postgres {
            let lexeme = format!("'{}'", t.replace('\\', "\\\\").replace('\'', "''"));
            if prefix { format!("{lexeme}:*") } else { lexeme }
        } else {
            let phrase = format!("\"{}\"", t.replace('"', "\"\""));
            if prefix { format!("{phrase}*") } else { phrase }
        }
    });
    parts.collect::<Vec<_>>().join(if backend == DbBackend::Postgres { " & " } else { " " })
}

async fn count_matches(db: &DatabaseConnection, query: &str) -> Res<i64> {
    let backend = db.get_database_backend();
    let m = matcher(backend, query);
    let sql = if backend == DbBackend::Postgres {
        "SELECT count(*) FROM search_documents WHERE tsv @@ $1::tsquery AND kind = 'post'"
    } else {
        // CROSS JOIN keeps the FTS table outside: SQLite would otherwise walk every post document and
        // probe the FTS table once for each.
        "SELECT count(*) FROM search_fts CROSS JOIN search_documents d ON d.id = search_fts.rowid \
         WHERE search_fts MATCH ? AND d.kind = 'post'"
    };
    let row = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, [m.into()]))
        .await?
        .ok_or("count returned no row")?;
    Ok(row.try_get_by_index::<i64>(0)?)
}

/// The plan of the gateway's search statement for `query` (first page of 20), as the gateway builds it.
async fn explain_search(db: &DatabaseConnection, query: &str) -> Res<String> {
    let backend = db.get_database_backend();
    let now = chrono::Utc::now().timestamp();
    let statement = search::statement(backend, &query_tokens(query), search::Kind::Post, None, 0, 21, now);
    let explain = if backend == DbBackend::Postgres { "EXPLAIN (ANALYZE, BUFFERS)" } else { "EXPLAIN QUERY PLAN" };
    let sql = format!("{explain} {}", statement.sql);
    let values = statement.values.map(|v| v.0).unwrap_or_default();
    let rows = db.query_all_raw(Statement::from_sql_and_values(backend, sql, values)).await?;
    let mut out = String::new();
    for r in rows {
        let line = if backend == DbBackend::Postgres {
            r.try_get_by_index::<String>(0)?
        } else {
            // id, parent, notused, detail
            r.try_get_by_index::<String>(3)?
        };
        let _ = writeln!(out, "{line}");
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers

/// Waits until the gateway's in-memory search index has loaded the seeded documents (it loads in the
/// background; searches before then run in the database), unless the run turned it off.
async fn wait_for_search_index(opts: &Opts, base: &str) -> Res<()> {
    if opts.server_env.iter().any(|(k, v)| k == "SEARCH_INDEX_IN_MEMORY" && v == "false") {
        return Ok(());
    }
    let started = Instant::now();
    loop {
        let metrics = reqwest::get(format!("{base}/metrics")).await?.text().await?;
        let documents = metrics
            .lines()
            .find_map(|l| l.strip_prefix("ecer_search_index_documents "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if documents > 0.0 {
            eprintln!("search index: {documents} documents in memory after {:.1} s", started.elapsed().as_secs_f64());
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(300) {
            return Err("the search index did not load in 300 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn gql(http: &reqwest::Client, base: &str, token: Option<&str>, query: &str, vars: Value) -> Res<Value> {
    post(http, base, token, json!({ "query": query, "variables": vars })).await
}

// ---------------------------------------------------------------------------------------------
// Load

/// What one client sends: its bodies in turn, from `start`, with its own token (if any).
#[derive(Clone)]
struct Plan {
    token: Option<String>,
    bodies: Vec<Arc<Vec<u8>>>,
    start: usize,
}

struct Load {
    /// Latencies per body index (the index in the clients' `bodies`).
    latencies_us: Vec<Vec<u64>>,
    errors: usize,
    elapsed: Duration,
}

#[derive(serde::Deserialize)]
struct Envelope {
    data: Option<serde::de::IgnoredAny>,
    errors: Option<serde::de::IgnoredAny>,
}

/// One connection per client, each sending requests back to back until `duration` has passed;
/// requests in flight at the deadline finish and count.
async fn load(base: &str, clients: Vec<Plan>, duration: Duration) -> Res<Load> {
    let url = format!("{base}/graphql");
    let start = Instant::now();
    let deadline = start + duration;
    let n_bodies = clients.iter().map(|c| c.bodies.len()).max().unwrap_or(0);
    let mut tasks = Vec::new();
    for plan in clients {
        let client = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat: Vec<Vec<u64>> = vec![Vec::new(); plan.bodies.len()];
            let mut errors = 0usize;
            let auth = plan.token.as_ref().map(|t| format!("Bearer {t}"));
            let mut i = plan.start;
            while Instant::now() < deadline {
                let k = i % plan.bodies.len();
                i += 1;
                let t0 = Instant::now();
                let mut req = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("accept", "application/graphql-response+json")
                    .body(plan.bodies[k].as_ref().clone());
                if let Some(a) = &auth {
                    req = req.header("authorization", a);
                }
                let ok = match req.send().await {
                    Ok(r) => {
                        let status = r.status();
                        match r.bytes().await {
                            Ok(b) => {
                                status.is_success()
                                    && serde_json::from_slice::<Envelope>(&b)
                                        .map(|e| e.errors.is_none() && e.data.is_some())
                                        .unwrap_or(false)
                            }
                            Err(_) => false,
                        }
                    }
                    Err(_) => false,
                };
                lat[k].push(t0.elapsed().as_micros() as u64);
                if !ok {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut latencies_us = vec![Vec::new(); n_bodies];
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await?;
        for (k, l) in lat.into_iter().enumerate() {
            latencies_us[k].extend(l);
        }
        errors += e;
    }
    Ok(Load { latencies_us, errors, elapsed: start.elapsed() })
}

// ---------------------------------------------------------------------------------------------
// Report

fn fmt_ms(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn thousands(n: i64) -> String {
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn render(opts: &Opts, results: &[BackendResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nDiscovery, release gateway, seed --users {} --posts {} --seed {}; search: {:?} per query and client count, \
         {:?} mixed; feed: {:?} per run; {:?} warm-up before each run\n",
        opts.users, opts.posts, opts.seed, opts.query_duration, opts.duration, opts.duration, opts.warmup
    );
    let _ = writeln!(s, "**Seeding**\n");
    let _ = writeln!(s, "| backend | seed | ANALYZE | database size | seeded |");
    let _ = writeln!(s, "|---|---:|---:|---:|---|");
    for r in results {
        let _ = writeln!(
            s,
            "| {} | {:.1} s | {} | {:.0} MiB | {} |",
            r.backend,
            r.seed_secs,
            r.analyze_secs.map_or("-".to_string(), |a| format!("{a:.1} s")),
            r.db_bytes as f64 / 1048576.0,
            r.seed_summary.split(" (").next().unwrap_or("")
        );
    }
    let conns = &opts.conns;
    for r in results {
        let _ = writeln!(s, "\n**Search, {}** (`search(query: $q, first: 20)`, anonymous)\n", r.backend);
        let mut head = "| query | kind | posts matching | first page |".to_string();
        let mut rule = "|---|---|---:|---:|".to_string();
        for c in conns {
            let _ = write!(head, " {c} cl. p50 ms | p99 ms | req/s |");
            rule.push_str("---:|---:|---:|");
        }
        let _ = writeln!(s, "{head}\n{rule}");
        for q in &r.queries {
            let mut line = format!("| {} | {} | {} | {} |", q.query, q.what, thousands(q.hits), q.page);
            for st in &q.runs {
                let _ = write!(line, " {} | {} | {:.0} |", fmt_ms(st.p50_ms), fmt_ms(st.p99_ms), st.rps);
            }
            let _ = writeln!(s, "{line}");
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "| all queries mixed | clients | requests | req/s | p50 ms | p99 ms | errors |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
        for (c, st) in &r.mixed {
            let _ = writeln!(
                s,
                "| {} | {c} | {} | {:.0} | {} | {} | {} |",
                r.backend,
                st.requests,
                st.rps,
                fmt_ms(st.p50_ms),
                fmt_ms(st.p99_ms),
                st.errors
            );
        }
    }
    let _ = writeln!(s, "\n**Feeds** (each client signed in as its own member; 20 posts with author and board)\n");
    let _ = writeln!(s, "| backend | operation | clients | requests | req/s | p50 ms | p99 ms | errors |");
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|");
    for r in results {
        for (name, c, st) in &r.feed {
            let _ = writeln!(
                s,
                "| {} | {name} | {c} | {} | {:.0} | {} | {} | {} |",
                r.backend,
                st.requests,
                st.rps,
                fmt_ms(st.p50_ms),
                fmt_ms(st.p99_ms),
                st.errors
            );
        }
    }
    let _ =
        writeln!(s, "\n**One request, idle server** (SQL statements and database time from the gateway's SQL log)\n");
    let _ = writeln!(
        s,
        "| backend | request | total ms | statements | database ms | slowest statement ms | slowest statement |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---|");
    for r in results {
        for p in &r.profiles {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | `{}` |",
                r.backend,
                p.what,
                fmt_ms(p.total_ms),
                p.statements,
                fmt_ms(p.db_ms),
                fmt_ms(p.slowest_ms),
                p.slowest.replace('|', "\\|").replace('`', "'")
            );
        }
    }
    let _ = writeln!(s, "\n**Feed reasons** (first pages of all members, after their search)\n");
    let _ = writeln!(s, "| backend | reason | items |");
    let _ = writeln!(s, "|---|---|---:|");
    for r in results {
        for (reason, n) in &r.reasons {
            let _ = writeln!(s, "| {} | {reason} | {n} |", r.backend);
        }
    }
    for r in results {
        for (q, plan) in &r.explains {
            let _ = writeln!(s, "\nEXPLAIN, {}, search {q:?}:\n```\n{}```", r.backend, plan);
        }
    }
    s
}
