//! HTTP query-path benchmark: the `HomeFeed` and `PostPage` contract operations against a release
//! gateway seeded with `seed --users 1000 --posts 5000 --seed 42`, on SQLite and on PostgreSQL.
//! It builds nothing: it runs `target/release/ecer-gateway` (or `--bin PATH`) as child processes over
//! loopback; see docs/BENCHMARKS.md ("Query path (HTTP)") for the commands and the results.
//!
//! ```sh
//! cargo build --release
//! cargo bench --bench http                                   # both backends, 1 and 50 connections, 10 s each
//! cargo bench --bench http -- --backends postgres --duration 5 --conns 1,10,50
//! cargo bench --bench http -- --sql-dir /tmp/http-sql --pgbench benches/feed-baseline.sql
//! ```
//!
//! Per backend: create the database (PostgreSQL: `bench_<uuid>`, dropped at the end; SQLite: a file in
//! a temporary directory), seed it, then
//! 1. start a gateway with `RUST_LOG=warn,ecer_gateway::sql=trace`, sign in as member 1, and count the
//!    SQL statements of exactly one request of each scenario from `ecer_db_statements_total` on
//!    `/metrics` (idle server, one connection, after one warm-up request); with `--sql-dir` the
//!    statements of that request are written there too;
//! 2. restart the gateway with `RUST_LOG=warn` and run each scenario at each connection count: a
//!    warm-up, then a fixed duration in which every connection sends requests back to back. Every
//!    latency is kept and sorted for p50/p99; a response that is not 200, not JSON, has no `data` or
//!    has `errors` counts as an error;
//! 3. (PostgreSQL, with `--pgbench FILE`) stop the gateway and run `pgbench -n -f FILE` at 1 and at 50
//!    clients against the same database, the "what PostgreSQL itself answers" baseline.
//!
//! The load generator runs in this process (2 tokio workers) on the same 2 cores as the gateway and
//! the database, so absolute numbers are lower than on separate machines.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ecer_gateway::auth::hash_token;
use sea_orm::{ConnectionTrait as _, Database};
use serde_json::{Value, json};

use tokio::process::Command;

#[path = "support/gateway.rs"]
mod gateway;

use gateway::{Res, Server, check, post};

const HOME_FEED: &str = include_str!("../frontend-contract/operations/HomeFeed.graphql");
const POST_PAGE: &str = include_str!("../frontend-contract/operations/PostPage.graphql");
const LOGIN: &str =
    "mutation($phone: String!, $password: String!) { login(input: {phone: $phone, password: $password}) { token } }";
const PHONE: &str = "+8613900000001";
const PASSWORD: &str = "ecer-demo-password";

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
    warmup: Duration,
    users: u32,
    posts: u32,
    seed: u64,
    pg: String,
    pg_admin_db: String,
    sql_dir: Option<PathBuf>,
    pgbench: Option<PathBuf>,
    pgbench_secs: u64,
}

const USAGE: &str = "usage: cargo bench --bench http -- [--bin PATH] [--backends sqlite,postgres] [--conns 1,50] \
[--duration SECS] [--warmup SECS] [--users N] [--posts N] [--seed N] [--pg postgres://postgres@127.0.0.1:5432] \
[--pg-admin-db test] [--sql-dir DIR] [--pgbench SCRIPT.sql] [--pgbench-secs SECS]";

impl Opts {
    fn parse(args: &[String]) -> Res<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut o = Opts {
            bin: root.join("target/release/ecer-gateway"),
            backends: vec!["sqlite".into(), "postgres".into()],
            conns: vec![1, 50],
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            users: 1000,
            posts: 5000,
            seed: 42,
            pg: "postgres://postgres@127.0.0.1:5432".into(),
            pg_admin_db: "test".into(),
            sql_dir: None,
            pgbench: None,
            pgbench_secs: 10,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            if flag == "-h" || flag == "--help" {
                println!("{USAGE}");
                std::process::exit(0);
            }
            let value = it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
            match flag.as_str() {
                "--bin" => o.bin = PathBuf::from(value),
                "--backends" => o.backends = value.split(',').map(str::to_string).collect(),
                "--conns" => o.conns = value.split(',').map(str::parse).collect::<Result<_, _>>()?,
                "--duration" => o.duration = Duration::from_secs_f64(value.parse()?),
                "--warmup" => o.warmup = Duration::from_secs_f64(value.parse()?),
                "--users" => o.users = value.parse()?,
                "--posts" => o.posts = value.parse()?,
                "--seed" => o.seed = value.parse()?,
                "--pg" => o.pg = value.trim_end_matches('/').to_string(),
                "--pg-admin-db" => o.pg_admin_db = value.clone(),
                "--sql-dir" => o.sql_dir = Some(PathBuf::from(value)),
                "--pgbench" => o.pgbench = Some(PathBuf::from(value)),
                "--pgbench-secs" => o.pgbench_secs = value.parse()?,
                _ => return Err(format!("unknown option {flag}\n{USAGE}").into()),
            }
        }
        for b in &o.backends {
            if b != "sqlite" && b != "postgres" {
                return Err(format!("unknown backend {b} (sqlite or postgres)").into());
            }
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenario {
    HomeFeed,
    PostPage,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::HomeFeed => "home feed",
            Scenario::PostPage => "post page",
        }
    }
}

struct LoadResult {
    backend: String,
    scenario: Scenario,
    conns: usize,
    requests: usize,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
    statements: i64,
    bytes: usize,
}

struct PgbenchResult {
    clients: usize,
    tps: f64,
    avg_ms: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    failed: u64,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
}

// ---------------------------------------------------------------------------------------------
// Main flow

async fn run(opts: Opts) -> Res<()> {
    let mut results = Vec::new();
    let mut baseline = Vec::new();
    for backend in opts.backends.clone() {
        eprintln!("== backend {backend}");
        if backend == "sqlite" {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
            results.extend(bench_backend(&opts, &backend, &url).await?.0);
        } else {
            let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
            let admin = Database::connect(format!("{}/{}", opts.pg, opts.pg_admin_db)).await?;
            admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await?;
            eprintln!("created database {name}");
            let url = format!("{}/{}", opts.pg, name);
            let outcome = async {
                let (r, token) = bench_backend(&opts, &backend, &url).await?;
                let b = match &opts.pgbench {
                    Some(script) => run_pgbench(&opts, script, &url, &hash_token(&token)).await?,
                    None => Vec::new(),
                };
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>((r, b))
            }
            .await;
            admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
            eprintln!("dropped database {name}");
            let (r, b) = outcome?;
            results.extend(r);
            baseline = b;
        }
    }
    println!("{}", render(&opts, &results, &baseline));
    let errors: usize = results.iter().map(|r| r.errors).sum();
    if errors > 0 {
        return Err(format!("{errors} responses had errors").into());
    }
    Ok(())
}

/// Seeds, measures statements per request, runs the load; returns the results and the session token.
async fn bench_backend(opts: &Opts, backend: &str, url: &str) -> Res<(Vec<LoadResult>, String)> {
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
    eprintln!("seeded in {:.1} s: {}", started.elapsed().as_secs_f64(), String::from_utf8_lossy(&out.stdout).trim());

    // Phase 1: statements per request, on an idle server that logs its SQL.
    let (mut server, base, sql_log) =
        Server::start(&opts.bin, url, "warn,ecer_gateway::sql=trace", &[("DATABASE_MAX_CONNECTIONS", "16")]).await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
    let login = gql(&http, &base, None, LOGIN, json!({ "phone": PHONE, "password": PASSWORD })).await?;
    let token = login["data"]["login"]["token"].as_str().ok_or_else(|| format!("login failed: {login}"))?.to_string();
    let feed_vars = json!({ "first": 20, "orderBy": "LATEST", "commentsFirst": 3 });
    let feed = gql(&http, &base, Some(&token), HOME_FEED, feed_vars.clone()).await?;
    let edges = feed["data"]["posts"]["edges"].as_array().ok_or_else(|| format!("feed failed: {feed}"))?;
    // The post of the page with the most comments (the seed gives most posts a few).
    let post =
        edges.iter().map(|e| &e["node"]).max_by_key(|n| n["commentCount"].as_i64().unwrap_or(0)).ok_or("empty feed")?;
    let post_id = post["id"].as_str().ok_or("post without id")?.to_string();
    eprintln!("post page: post {post_id} with {} comments", post["commentCount"]);
    if post["commentCount"].as_i64().unwrap_or(0) == 0 {
        return Err("no post with comments on the first feed page".into());
    }
    let page_vars = json!({ "id": post_id, "commentsFirst": 20, "repliesFirst": 3 });
    let scenarios = [
        (Scenario::HomeFeed, HOME_FEED, "HomeFeed", feed_vars),
        (Scenario::PostPage, POST_PAGE, "PostPage", page_vars),
    ];
    let mut statements = Vec::new();
    for (scenario, query, op, vars) in &scenarios {
        check(&gql(&http, &base, Some(&token), query, vars.clone()).await?)?; // warm: caches, pool
        tokio::time::sleep(Duration::from_millis(300)).await;
        let idle = metric(&http, &base).await? - metric(&http, &base).await?;
        assert_eq!(idle, 0, "the server issues statements while idle");
        let before = metric(&http, &base).await?;
        sql_log.lock().unwrap().clear();
        check(&gql_op(&http, &base, Some(&token), query, op, vars.clone()).await?)?;
        let after = metric(&http, &base).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let sql: Vec<(String, u64)> = std::mem::take(&mut *sql_log.lock().unwrap());
        let db_us: u64 = sql.iter().map(|(_, us)| us).sum();
        eprintln!(
            "{}: {} statements ({} logged, {:.2} ms summed database time)",
            scenario.name(),
            after - before,
            sql.len(),
            db_us as f64 / 1000.0
        );
        if let Some(dir) = &opts.sql_dir {
            std::fs::create_dir_all(dir)?;
            let file = dir.join(format!("{backend}-{}.sql", op));
            let mut text = String::new();
            for (s, us) in &sql {
                writeln!(text, "-- {us} us\n{s};")?;
            }
            std::fs::write(&file, text)?;
            eprintln!("  statements written to {}", file.display());
        }
        statements.push(after - before);
    }
    server.stop().await;

    // Phase 2: load, with logs at warn.
    let (mut server, base, _) = Server::start(&opts.bin, url, "warn", &[("DATABASE_MAX_CONNECTIONS", "16")]).await?;
    let mut results = Vec::new();
    for ((scenario, query, op, vars), stmts) in scenarios.iter().zip(&statements) {
        let body = serde_json::to_vec(&json!({ "query": query, "operationName": op, "variables": vars }))?;
        for &conns in &opts.conns {
            eprintln!(
                "{backend} / {} / {conns} conns: warm-up {:?}, run {:?}",
                scenario.name(),
                opts.warmup,
                opts.duration
            );
            load(&base, &token, &body, conns, opts.warmup).await?;
            let r = load(&base, &token, &body, conns, opts.duration).await?;
            let lr = LoadResult {
                backend: backend.to_string(),
                scenario: *scenario,
                conns,
                requests: r.latencies_us.len(),
                rps: r.latencies_us.len() as f64 / r.elapsed.as_secs_f64(),
                p50_ms: percentile(&r.latencies_us, 0.50),
                p99_ms: percentile(&r.latencies_us, 0.99),
                errors: r.errors,
                statements: *stmts,
                bytes: r.bytes,
            };
            eprintln!(
                "  {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors, {} requests, {} bytes/response",
                lr.rps, lr.p50_ms, lr.p99_ms, lr.errors, lr.requests, lr.bytes
            );
            results.push(lr);
        }
    }
    server.stop().await;
    Ok((results, token))
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers

async fn gql(http: &reqwest::Client, base: &str, token: Option<&str>, query: &str, vars: Value) -> Res<Value> {
    post(http, base, token, json!({ "query": query, "variables": vars })).await
}

async fn gql_op(
    http: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    query: &str,
    op: &str,
    vars: Value,
) -> Res<Value> {
    post(http, base, token, json!({ "query": query, "operationName": op, "variables": vars })).await
}

async fn metric(http: &reqwest::Client, base: &str) -> Res<i64> {
    let text = http.get(format!("{base}/metrics")).send().await?.text().await?;
    let line = text
        .lines()
        .find(|l| l.starts_with("ecer_db_statements_total "))
        .ok_or("ecer_db_statements_total missing from /metrics")?;
    Ok(line["ecer_db_statements_total ".len()..].trim().parse::<f64>()? as i64)
}

// ---------------------------------------------------------------------------------------------
// Load

struct Load {
    latencies_us: Vec<u64>,
    errors: usize,
    elapsed: Duration,
    bytes: usize,
}

#[derive(serde::Deserialize)]
struct Envelope {
    data: Option<serde::de::IgnoredAny>,
    errors: Option<serde::de::IgnoredAny>,
}

/// `conns` connections (one client each), each sending the request back to back until `duration`
/// has passed; requests in flight at the deadline finish and count.
async fn load(base: &str, token: &str, body: &[u8], conns: usize, duration: Duration) -> Res<Load> {
    let url = format!("{base}/graphql");
    let auth = format!("Bearer {token}");
    let body = body.to_vec();
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let client = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
        let (url, auth, body) = (url.clone(), auth.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(4096);
            let mut errors = 0usize;
            let mut bytes = 0usize;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let resp = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("accept", "application/graphql-response+json")
                    .header("authorization", &auth)
                    .body(body.clone())
                    .send()
                    .await;
                let ok = match resp {
                    Ok(r) => {
                        let status = r.status();
                        match r.bytes().await {
                            Ok(b) => {
                                bytes = b.len();
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
                lat.push(t0.elapsed().as_micros() as u64);
                if !ok {
                    errors += 1;
                }
            }
            (lat, errors, bytes)
        }));
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    let mut bytes = 0;
    for t in tasks {
        let (lat, e, b) = t.await?;
        latencies_us.extend(lat);
        errors += e;
        bytes = bytes.max(b);
    }
    let elapsed = start.elapsed();
    latencies_us.sort_unstable();
    Ok(Load { latencies_us, errors, elapsed, bytes })
}

// ---------------------------------------------------------------------------------------------
// pgbench baseline

async fn run_pgbench(opts: &Opts, script: &Path, url: &str, token_hash: &str) -> Res<Vec<PgbenchResult>> {
    let mut out = Vec::new();
    for clients in [1usize, 50] {
        let logs = tempfile::tempdir()?;
        let prefix = logs.path().join("pgb");
        let mut cmd = Command::new("pgbench");
        cmd.args(["-n", "-f"]).arg(script).arg("-D").arg(format!("token_hash={token_hash}"));
        cmd.args(["-c", &clients.to_string()]);
        if clients > 1 {
            cmd.args(["-j", "2"]);
        }
        cmd.args(["-T", &opts.pgbench_secs.to_string(), "-l", "--log-prefix"]).arg(&prefix).arg(url);
        eprintln!(
            "pgbench -n -f {} -c {clients}{} -T {} <db>",
            script.display(),
            if clients > 1 { " -j 2" } else { "" },
            opts.pgbench_secs
        );
        let output = cmd.output().await?;
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        if !output.status.success() {
            return Err(format!("pgbench failed: {text}{}", String::from_utf8_lossy(&output.stderr)).into());
        }
        let field = |key: &str| -> Option<f64> {
            text.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l[key.len()..].split_whitespace().next()?.parse().ok())
        };
        // Per-transaction log: `client_id transaction_no time script_no time_epoch time_us`, time in µs.
        let mut lat: Vec<u64> = Vec::new();
        for entry in std::fs::read_dir(logs.path())? {
            let content = std::fs::read_to_string(entry?.path())?;
            lat.extend(content.lines().filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok()));
        }
        lat.sort_unstable();
        let r = PgbenchResult {
            clients,
            tps: field("tps = ").ok_or_else(|| format!("no tps in pgbench output:\n{text}"))?,
            avg_ms: field("latency average = ").unwrap_or(f64::NAN),
            p50_ms: (!lat.is_empty()).then(|| percentile(&lat, 0.50)),
            p99_ms: (!lat.is_empty()).then(|| percentile(&lat, 0.99)),
            failed: field("number of failed transactions: ").unwrap_or(0.0) as u64,
        };
        eprintln!("  {:.0} tps, average {:.2} ms, {} failed", r.tps, r.avg_ms, r.failed);
        out.push(r);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Report

fn render(opts: &Opts, results: &[LoadResult], baseline: &[PgbenchResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nHTTP query path, release gateway, seed --users {} --posts {} --seed {}, {:?} per run after {:?} warm-up\n",
        opts.users, opts.posts, opts.seed, opts.duration, opts.warmup
    );
    let _ = writeln!(
        s,
        "| backend | scenario | connections | requests/s | p50 ms | p99 ms | errors | SQL statements/request |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {} / {} | {} |",
            r.backend,
            r.scenario.name(),
            r.conns,
            r.rps,
            r.p50_ms,
            r.p99_ms,
            r.errors,
            r.requests,
            r.statements
        );
    }
    if !baseline.is_empty() {
        let _ = writeln!(s, "\nPostgreSQL alone (pgbench, the home-feed statements as one transaction)\n");
        let _ = writeln!(
            s,
            "| clients | transactions/s | avg ms | p50 ms | p99 ms | failed | gateway home feed req/s (postgres) | gateway / PostgreSQL |"
        );
        let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|");
        for b in baseline {
            let gw = results
                .iter()
                .find(|r| r.backend == "postgres" && r.scenario == Scenario::HomeFeed && r.conns == b.clients);
            let fmt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.2}"));
            let _ = writeln!(
                s,
                "| {} | {:.0} | {:.2} | {} | {} | {} | {} | {} |",
                b.clients,
                b.tps,
                b.avg_ms,
                fmt(b.p50_ms),
                fmt(b.p99_ms),
                b.failed,
                gw.map_or("-".to_string(), |g| format!("{:.0}", g.rps)),
                gw.map_or("-".to_string(), |g| format!("{:.2}", g.rps / b.tps)),
            );
        }
    }
    s
}
