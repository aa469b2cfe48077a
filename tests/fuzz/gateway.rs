//! The real `ecer-gateway` binary, started for the fuzzer on 127.0.0.1 with a free port and a
//! database of its own (a temporary SQLite file, or a fresh PostgreSQL database when `DATABASE_URL`
//! is PostgreSQL; `REDIS_URL` passes through with a prefix of its own).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};

pub const BIN: &str = env!("CARGO_BIN_EXE_ecer-gateway");

/// Settings the fuzz instance runs with, other than the defaults. Printed with the figures.
///
/// The rate limits are raised so the fuzzer reaches GraphQL instead of being refused at the door
/// (RATE_LIMITED is a coded answer either way); uploads are capped lower so oversized files are
/// cheap to send.
pub const SETTINGS: [(&str, &str); 7] = [
    ("RATE_LIMIT_REQUESTS_PER_MINUTE", "1000000"),
    ("RATE_LIMIT_REQUESTS_BURST", "100000"),
    ("RATE_LIMIT_AUTH_PER_MINUTE", "100000"),
    ("RATE_LIMIT_MESSAGES_PER_MINUTE", "100000"),
    ("RATE_LIMIT_CHAT_PER_MINUTE", "100000"),
    ("MAX_UPLOAD_BYTES", "2097152"),
    ("MAX_IMAGE_BYTES", "1048576"),
];

pub struct Gateway {
    pub addr: SocketAddr,
    child: Child,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

fn free_port() -> u16 {
    // The port is free when we ask; the gateway binds it a moment later.
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Gateway {
    /// Migrates, seeds a small community, then serves; returns once `/readyz` answers.
    pub async fn start() -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let (url, postgres) = match std::env::var("DATABASE_URL").ok().filter(|u| u.starts_with("postgres")) {
            Some(base) => {
                let name = format!("fuzz_{}", uuid::Uuid::new_v4().simple());
                let admin = Database::connect(&base).await.expect("connect to PostgreSQL (DATABASE_URL)");
                admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.unwrap();
                admin.close().await.ok();
                let mut url = url::Url::parse(&base).unwrap();
                url.set_path(&format!("/{name}"));
                (url.to_string(), Some((base, name)))
            }
            None => (format!("sqlite://{}/fuzz.db?mode=rwc", dir.path().display()), None),
        };
        let log = dir.path().join("gateway.log");
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let command = |args: &[&str]| {
            let mut cmd = Command::new(BIN);
            cmd.args(args)
                .env_remove("DATABASE_URL")
                .env("DATABASE_URL", &url)
                .env("LISTEN_ADDR", addr.to_string())
                .env("MEDIA_DIR", dir.path().join("media"))
                .env("SEAL_KEY_FILE", dir.path().join("seal.key"))
                .env("REDIS_PREFIX", format!("fuzz{}", uuid::Uuid::new_v4().simple()))
                .env("RUST_LOG", "warn")
                .env("LOG_FORMAT", "text")
                .stdin(Stdio::null());
            for (k, v) in SETTINGS {
                cmd.env(k, v);
            }
            cmd
        };
        let seeded = command(&["seed", "--users", "8", "--posts", "30", "--seed", "7"]).output().unwrap();
        assert!(seeded.status.success(), "seed failed: {}", String::from_utf8_lossy(&seeded.stderr));
        let file = std::fs::File::create(&log).unwrap();
        let child = command(&["serve"]).stdout(file.try_clone().unwrap()).stderr(file).spawn().unwrap();
        let mut gw = Gateway { addr, child, log, _dir: dir, postgres };
        let http = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(resp) = http.get(gw.url("/readyz")).send().await
                && resp.status() == 200
            {
                return gw;
            }
            assert!(gw.alive(), "the gateway exited at start:\n{}", gw.log_tail());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the gateway did not become ready:\n{}", gw.log_tail());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The end of the gateway's log (what it said before dying, or any panic it logged).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Lines of the log that report a panic or an overflow, however the process fared.
    pub fn log_alarms(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains("panicked") || l.contains("overflow") || l.contains("fatal"))
            .map(|l| l.chars().take(300).collect())
            .collect()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some((admin_url, name)) = self.postgres.take() {
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async {
                    if let Ok(db) = Database::connect(&admin_url).await {
                        let _ =
                            db.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
                    }
                });
            })
            .join();
        }
    }
}
