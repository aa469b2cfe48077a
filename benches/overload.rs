//! Overload benchmark: offers a release gateway about three times the load it can serve and reports
//! what load shedding (`MAX_REQUESTS_IN_FLIGHT`) makes of it: accepted throughput, accepted latency,
//! the share refused with OVERLOADED, and whether accepted p99 stays bounded while the overload lasts.
//! The same overload is then offered with shedding off, for comparison. See docs/BENCHMARKS.md
//! ("Overload") for the command and the results.
//!
//! ```sh
//! cargo build --release
//! cargo bench --bench overload                                  # SQLite, factor 3, 10 s per run
//! cargo bench --bench overload -- --backend postgres --factor 3 --duration 10 --limit 64,256
//! ```
//!
//! 1. Seed a database (`seed --users 1000 --posts 5000 --seed 42`, as `benches/http.rs`), start the
//!    gateway, sign in as member 1.
//! 2. Capacity: `--probe-conns` connections send the `HomeFeed` contract operation back to back for
//!    `--probe` seconds (after a warm-up); capacity = completed requests per second.
//! 3. For each `--limit` (a `MAX_REQUESTS_IN_FLIGHT`; 0 = shedding off), restart the gateway with it
//!    and offer `--factor` x capacity as an open loop: requests are started on a fixed schedule
//!    whether or not earlier ones have finished (at most `--max-outstanding` at once; beyond that a
//!    request is counted as not sent). Latency is counted from each request's scheduled start, so
//!    queueing delay is not hidden. Accepted = 200 with `data` and no `errors`; OVERLOADED = 503
//!    with that code; anything else is an error.
//!
//! The load generator runs in this process (2 tokio workers) on the same 2 cores as the gateway.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait as _, Database};
use serde_json::{Value, json};
use tokio::process::Command;

#[path = "support/gateway.rs"]
mod gateway;

use gateway::{Res, Server, check, post};

const HOME_FEED: &str = include_str!("../frontend-contract/operations/HomeFeed.graphql");
const LOGIN: &str =
    "mutation($phone: String!, $password: String!) { login(input: {phone: $phone, password: $password}) { token } }";
const PHONE: &str = "+8613900000001";
const PASSWORD: &str = "ecer-demo-password";

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let opts = Opts::parse(&args)?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(run(opts))
}

struct Opts {
    bin: PathBuf,
    backend: String,
    factor: f64,
    duration: Duration,
    probe: Duration,
    probe_conns: usize,
    limits: Vec<Option<usize>>,
    max_outstanding: usize,
    pg: String,
    pg_admin_db: String,
}

const USAGE: &str = "usage: cargo bench --bench overload -- [--bin PATH] [--backend sqlite|postgres] [--factor 3] \
[--duration SECS] [--probe SECS] [--probe-conns N] [--limit default,0,64,...] [--max-outstanding N] \
[--pg postgres://postgres@127.0.0.1:5432] [--pg-admin-db test]";

impl Opts {
    fn parse(args: &[String]) -> Res<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut o = Opts {
            bin: root.join("target/release/ecer-gateway"),
            backend: "sqlite".into(),
            factor: 3.0,
            duration: Duration::from_secs(10),
            probe: Duration::from_secs(5),
            probe_conns: 32,
            // The gateway's default, then shedding off.
            limits: vec![None, Some(0)],
            max_outstanding: 3000,
            pg: "postgres://postgres@127.0.0.1:5432".into(),
            pg_admin_db: "test".into(),
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
                "--backend" => o.backend = value.clone(),
                "--factor" => o.factor = value.parse()?,
                "--duration" => o.duration = Duration::from_secs_f64(value.parse()?),
                "--probe" => o.probe = Duration::from_secs_f64(value.parse()?),
                "--probe-conns" => o.probe_conns = value.parse()?,
                "--limit" => {
                    o.limits = value
                        .split(',')
                        .map(|v| if v == "default" { Ok(None) } else { v.parse().map(Some) })
                        .collect::<Result<_, _>>()?
                }
                "--max-outstanding" => o.max_outstanding = value.parse()?,
                "--pg" => o.pg = value.trim_end_matches('/').to_string(),
                "--pg-admin-db" => o.pg_admin_db = value.clone(),
                _ => return Err(format!("unknown option {flag}\n{USAGE}").into()),
            }
        }
        if o.backend != "sqlite" && o.backend != "postgres" {
            return Err(format!("unknown backend {} (sqlite or postgres)", o.backend).into());
        }
        if !o.bin.is_file() {
            return Err(
                format!("{} not found: run `cargo build --release` first or pass --bin", o.bin.display()).into()
            );
        }
        Ok(o)
    }
}

async fn run(opts: Opts) -> Res<()> {
    if opts.backend == "sqlite" {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
        return bench(&opts, &url).await;
    }
    let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(format!("{}/{}", opts.pg, opts.pg_admin_db)).await?;
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await?;
    let outcome = bench(&opts, &format!("{}/{}", opts.pg, name)).await;
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
    outcome
}

fn gateway_env(limit: Option<usize>) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("DATABASE_MAX_CONNECTIONS", "16".to_string()),
        // Every request comes from this one loopback address.
        ("MAX_CONNECTIONS_PER_IP", "0".to_string()),
        // The request log is a background writer that drops rows when behind; keep it out of the way.
        ("REQUEST_LOG", "false".to_string()),
    ];
    if let Some(limit) = limit {
        env.push(("MAX_REQUESTS_IN_FLIGHT", limit.to_string()));
    }
    env
}

async fn start(opts: &Opts, url: &str, limit: Option<usize>) -> Res<(Server, String)> {
    let env = gateway_env(limit);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (server, base, _) = Server::start(&opts.bin, url, "warn", &env).await?;
    Ok((server, base))
}

async fn bench(opts: &Opts, url: &str) -> Res<()> {
    let started = Instant::now();
    let out = Command::new(&opts.bin)
        .args(["seed", "--users", "1000", "--posts", "5000", "--seed", "42"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .await?;
    if !out.status.success() {
        return Err(format!("seed failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    eprintln!("seeded in {:.1} s", started.elapsed().as_secs_f64());

    let (mut server, base) = start(opts, url, None).await?;
    let http = reqwest::Client::new();
    let login =
        post(&http, &base, None, json!({ "query": LOGIN, "variables": { "phone": PHONE, "password": PASSWORD } }))
            .await?;
    let token = login["data"]["login"]["token"].as_str().ok_or_else(|| format!("login failed: {login}"))?.to_string();
    let body = serde_json::to_vec(&json!({
        "query": HOME_FEED,
        "operationName": "HomeFeed",
        "variables": { "first": 20, "orderBy": "LATEST", "commentsFirst": 3 },
    }))?;
    check(&serde_json::from_slice::<Value>(&send(&http, &base, &token, &body).await?.1)?)?;

    // Capacity, closed loop.
    closed_loop(&base, &token, &body, opts.probe_conns, Duration::from_secs(2)).await?;
    let (done, p99) = closed_loop(&base, &token, &body, opts.probe_conns, opts.probe).await?;
    let capacity = done as f64 / opts.probe.as_secs_f64();
    eprintln!("capacity: {capacity:.0} req/s at {} connections (p99 {p99:.1} ms)", opts.probe_conns);
    server.stop().await;

    let rate = capacity * opts.factor;
    let mut rows = Vec::new();
    for &limit in &opts.limits {
        let (mut server, base) = start(opts, url, limit).await?;
        closed_loop(&base, &token, &body, opts.probe_conns, Duration::from_secs(2)).await?;
        eprintln!("offering {rate:.0} req/s for {:?}, MAX_REQUESTS_IN_FLIGHT {limit:?}", opts.duration);
        let run = open_loop(&base, &token, &body, rate, opts.duration, opts.max_outstanding).await?;
        server.stop().await;
        rows.push((limit, run));
    }
    println!("{}", render(opts, capacity, p99, rate, &rows));
    Ok(())
}

/// One request; returns the status and the body.
async fn send(http: &reqwest::Client, base: &str, token: &str, body: &[u8]) -> Res<(u16, Vec<u8>)> {
    let resp = http
        .post(format!("{base}/graphql"))
        .header("content-type", "application/json")
        .header("accept", "application/graphql-response+json")
        .header("authorization", format!("Bearer {token}"))
        .body(body.to_vec())
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.bytes().await?.to_vec()))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Accepted,
    Overloaded,
    Error,
    NotSent,
}

fn outcome(status: u16, body: &[u8]) -> Outcome {
    #[derive(serde::Deserialize)]
    struct Envelope {
        data: Option<serde::de::IgnoredAny>,
        errors: Option<Vec<Value>>,
    }
    let Ok(env) = serde_json::from_slice::<Envelope>(body) else { return Outcome::Error };
    match (status, env.data, env.errors) {
        (200, Some(_), None) => Outcome::Accepted,
        (503, None, Some(errors)) if errors.first().is_some_and(|e| e["extensions"]["code"] == "OVERLOADED") => {
            Outcome::Overloaded
        }
        _ => Outcome::Error,
    }
}

/// `conns` clients sending back to back for `duration`; returns completed requests and p99 (ms).
async fn closed_loop(base: &str, token: &str, body: &[u8], conns: usize, duration: Duration) -> Res<(usize, f64)> {
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let http = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
        let (base, token, body) = (base.to_string(), token.to_string(), body.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                if let Ok((status, b)) = send(&http, &base, &token, &body).await
                    && outcome(status, &b) == Outcome::Accepted
                {
                    lat.push(t.elapsed().as_micros() as u64);
                }
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await?);
    }
    lat.sort_unstable();
    Ok((lat.len(), percentile(&lat, 0.99)))
}

struct Sample {
    /// Scheduled start, from the beginning of the run.
    at: Duration,
    /// From the scheduled start to the end of the response.
    latency_us: u64,
    outcome: Outcome,
}

/// Starts one request every 1/`rate` seconds for `duration`, whatever the earlier ones are doing.
async fn open_loop(
    base: &str,
    token: &str,
    body: &[u8],
    rate: f64,
    duration: Duration,
    max_outstanding: usize,
) -> Res<Vec<Sample>> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(max_outstanding).build()?;
    let outstanding = Arc::new(tokio::sync::Semaphore::new(max_outstanding));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Sample>();
    let body: Arc<[u8]> = body.into();
    let start = tokio::time::Instant::now();
    let every = Duration::from_secs_f64(1.0 / rate);
    let mut i: u32 = 0;
    loop {
        let at = every * i;
        if at >= duration {
            break;
        }
        tokio::time::sleep_until(start + at).await;
        i += 1;
        let Ok(permit) = outstanding.clone().try_acquire_owned() else {
            let _ = tx.send(Sample { at, latency_us: 0, outcome: Outcome::NotSent });
            continue;
        };
        let (http, base, token, body, tx) =
            (http.clone(), base.to_string(), token.to_string(), body.clone(), tx.clone());
        tokio::spawn(async move {
            let result = send(&http, &base, &token, &body).await;
            let latency_us = (start + at).elapsed().as_micros() as u64;
            let outcome = match result {
                Ok((status, b)) => outcome(status, &b),
                Err(_) => Outcome::Error,
            };
            let _ = tx.send(Sample { at, latency_us, outcome });
            drop(permit);
        });
    }
    drop(tx);
    let mut samples = Vec::new();
    while let Some(s) = rx.recv().await {
        samples.push(s);
    }
    samples.sort_by_key(|s| s.at);
    Ok(samples)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
}

fn accepted_latencies(samples: &[Sample], from: Duration, to: Duration) -> Vec<u64> {
    let mut lat: Vec<u64> = samples
        .iter()
        .filter(|s| s.outcome == Outcome::Accepted && s.at >= from && s.at < to)
        .map(|s| s.latency_us)
        .collect();
    lat.sort_unstable();
    lat
}

fn render(opts: &Opts, capacity: f64, capacity_p99: f64, rate: f64, rows: &[(Option<usize>, Vec<Sample>)]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let secs = opts.duration.as_secs_f64();
    let _ = writeln!(
        out,
        "\nBackend {}; capacity {capacity:.0} req/s (closed loop, {} connections, p99 {capacity_p99:.1} ms); \
         offered {rate:.0} req/s ({:.1}x) for {secs:.0} s.\n",
        opts.backend, opts.probe_conns, opts.factor
    );
    let _ = writeln!(
        out,
        "| MAX_REQUESTS_IN_FLIGHT | offered | accepted req/s | accepted p50 | accepted p99 | OVERLOADED | \
         errors | not sent | accepted p99 per second (ms) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for (limit, samples) in rows {
        let count = |o: Outcome| samples.iter().filter(|s| s.outcome == o).count();
        let all = accepted_latencies(samples, Duration::ZERO, opts.duration);
        let per_second: Vec<String> = (0..secs.ceil() as u64)
            .map(|s| {
                let lat = accepted_latencies(samples, Duration::from_secs(s), Duration::from_secs(s + 1));
                if lat.is_empty() { "-".to_string() } else { format!("{:.0}", percentile(&lat, 0.99)) }
            })
            .collect();
        let limit = match limit {
            None => format!("default ({})", ecer_gateway::config::Config::defaults().max_requests_in_flight),
            Some(0) => "0 (off)".to_string(),
            Some(n) => n.to_string(),
        };
        let _ = writeln!(
            out,
            "| {limit} | {} | {:.0} | {:.1} ms | {:.1} ms | {:.1} % | {} | {} | {} |",
            samples.len(),
            count(Outcome::Accepted) as f64 / secs,
            percentile(&all, 0.50),
            percentile(&all, 0.99),
            100.0 * count(Outcome::Overloaded) as f64 / samples.len().max(1) as f64,
            count(Outcome::Error),
            count(Outcome::NotSent),
            per_second.join(" "),
        );
    }
    out
}
