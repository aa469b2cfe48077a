//! The gateway process the benches start and stop: a release `ecer-gateway serve` on a free loopback
//! port with rate limits off, its SQL log captured. Shared by `benches/http.rs` and
//! `benches/discovery.rs` (included with `#[path]`, so Cargo does not take it for a bench of its own).

use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;
/// SQL statements the gateway logged, with their time in microseconds.
pub type SqlLog = Arc<Mutex<Vec<(String, u64)>>>;

pub struct Server {
    child: Child,
}

impl Server {
    /// Starts `bin serve` on `url` with `RUST_LOG=rust_log` and `extra_env`, and waits until
    /// `/healthz` answers. Returns the server, its base URL and its SQL log.
    pub async fn start(
        bin: &Path,
        url: &str,
        rust_log: &str,
        extra_env: &[(&str, &str)],
    ) -> Res<(Server, String, SqlLog)> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut child = Command::new(bin)
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", url)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("RATE_LIMIT_REQUESTS_PER_MINUTE", "0")
            .env("RATE_LIMIT_AUTH_PER_MINUTE", "0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", rust_log)
            .envs(extra_env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        // Keep the SQL statements the server logs (target ecer_gateway::sql, field `sql`); echo
        // anything else (warnings, errors) to our stderr.
        let sql_log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let log = sql_log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) if v["target"] == "ecer_gateway::sql" => {
                        if let Some(sql) = v["fields"]["sql"].as_str() {
                            let us = v["fields"]["elapsed_us"].as_u64().unwrap_or(0);
                            log.lock().unwrap().push((sql.to_string(), us));
                        }
                    }
                    _ => eprintln!("[gateway] {line}"),
                }
            }
        });
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(format!("{base}/healthz")).send().await
                && r.status().is_success()
            {
                break;
            }
            if let Some(status) = child.try_wait()? {
                return Err(format!("gateway exited at start: {status}").into());
            }
            if Instant::now() > deadline {
                return Err("gateway did not become healthy in 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok((Server { child }, base, sql_log))
    }

    pub async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            // SIGTERM for a graceful stop, then make sure.
            let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
            if tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await.is_err() {
                let _ = self.child.kill().await;
            }
        }
    }
}

/// POSTs a GraphQL request body as JSON; an HTTP error status is an error.
pub async fn post(http: &reqwest::Client, base: &str, token: Option<&str>, body: Value) -> Res<Value> {
    let mut req = http
        .post(format!("{base}/graphql"))
        .header("content-type", "application/json")
        .header("accept", "application/graphql-response+json")
        .body(serde_json::to_vec(&body)?);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = req.send().await?;
    let status = resp.status();
    let v: Value = resp.json().await?;
    if !status.is_success() {
        return Err(format!("HTTP {status}: {v}").into());
    }
    Ok(v)
}

/// A response with `errors` or without `data` is an error.
pub fn check(v: &Value) -> Res<()> {
    if v.get("errors").is_some() || v["data"].is_null() {
        return Err(format!("GraphQL errors: {v}").into());
    }
    Ok(())
}
