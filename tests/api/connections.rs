//! Connection-level defences, against the real binary (`ecer-gateway serve` in a child process, on a
//! loopback port, with short timeouts): slow request heads and bodies are cut off, connection caps
//! hold, overload is shed with OVERLOADED while the probes answer. The binary rather than the
//! in-process app, because what is tested is the process: its accept loop, its sockets, its limits.

use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::{TestDb, fresh_database};

/// A gateway process with a database of its own; killed (and its database dropped) on drop.
struct Gateway {
    child: tokio::process::Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    _db: TestDb,
}

impl Gateway {
    async fn start(env: &[(&str, &str)]) -> Gateway {
        let (url, db) = fresh_database().await;
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let log = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ecer-gateway"));
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &url)
            .env("DATABASE_MAX_CONNECTIONS", "5")
            .env("LISTEN_ADDR", addr.to_string())
            .env("MEDIA_DIR", dir.path().join("media"))
            .env("SEAL_KEYS", ecer_gateway::seal::Sealer::generate_entry("t1").unwrap())
            .env("RATE_LIMIT_REQUESTS_PER_MINUTE", "0")
            .env("RATE_LIMIT_AUTH_PER_MINUTE", "0")
            // Every test client signs up from 127.0.0.1.
            .env("PHONE_CODE_DAILY_PER_IP", "0")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        if let Ok(redis) = std::env::var("REDIS_URL") {
            cmd.env("REDIS_URL", redis).env("REDIS_PREFIX", format!("test{}", uuid::Uuid::new_v4().simple()));
        }
        let child = cmd.spawn().expect("start the gateway binary");
        let mut gw = Gateway { child, addr, dir, _db: db };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // A raw request with `Connection: close`: a pooled client connection would count against
            // the per-address caps the tests set.
            if let Ok(resp) = gw.raw(None, "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await
                && resp.starts_with("HTTP/1.1 200")
            {
                return gw;
            }
            if let Ok(Some(status)) = gw.child.try_wait() {
                panic!("gateway exited at start ({status}): {}", gw.log());
            }
            assert!(Instant::now() < deadline, "gateway did not answer /healthz in 60 s: {}", gw.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A TCP connection from `from` (another loopback address is another client address).
    async fn connect(&self, from: Option<IpAddr>) -> std::io::Result<TcpStream> {
        match from {
            None => TcpStream::connect(self.addr).await,
            Some(ip) => {
                let socket = TcpSocket::new_v4()?;
                socket.bind(SocketAddr::new(ip, 0))?;
                socket.connect(self.addr).await
            }
        }
    }

    /// Sends `request` on a new connection and reads until the server closes it.
    async fn raw(&self, from: Option<IpAddr>, request: &str) -> std::io::Result<String> {
        let mut conn = self.connect(from).await?;
        conn.write_all(request.as_bytes()).await?;
        read_to_close(&mut conn, Duration::from_secs(10)).await
    }
}

/// Reads until EOF (or a reset, which ends a refused connection just as well) within `limit`.
async fn read_to_close(conn: &mut TcpStream, limit: Duration) -> std::io::Result<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read).await.map_err(|_| std::io::Error::other("still open"))?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The `extensions.code` of the first error in a raw response's JSON body.
fn code_of(raw: &str) -> String {
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    v["errors"][0]["extensions"]["code"].as_str().unwrap_or("<none>").to_string()
}

fn header<'r>(raw: &'r str, name: &str) -> Option<&'r str> {
    raw.split("\r\n\r\n").next()?.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

const TYPENAME: &str = r#"{"query":"{ __typename }"}"#;

fn post_json(body: &str) -> String {
    format!(
        "POST /graphql HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

async fn register(gw: &Gateway, http: &reqwest::Client, phone: &str) -> reqwest::Response {
    let code = crate::common::dev_code(http, &gw.url(""), phone, "REGISTER").await;
    http.post(gw.url("/graphql"))
        .json(&json!({
            "query": "mutation($input: RegisterInput!) { register(input: $input) { token } }",
            "variables": { "input": { "phone": phone, "code": code, "password": "correct horse", "nickname": "n" } },
        }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn partial_request_heads_are_closed_within_the_header_timeout_while_clients_are_served() {
    const SLOW: usize = 2_000;
    let timeout = Duration::from_secs(2);
    let gw = Gateway::start(&[("HTTP_HEADER_TIMEOUT_SECS", "2"), ("MAX_CONNECTIONS_PER_IP", "0")]).await;

    // A well-behaved client keeps querying throughout.
    let client = {
        let url = gw.url("/graphql");
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let (mut ok, mut slowest) = (0, Duration::ZERO);
            let until = Instant::now() + Duration::from_secs(5);
            while Instant::now() < until {
                let t = Instant::now();
                let resp = http.post(&url).json(&json!({ "query": "{ __typename }" })).send().await.unwrap();
                assert_eq!(resp.status(), 200);
                ok += 1;
                slowest = slowest.max(t.elapsed());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (ok, slowest)
        })
    };

    // Most send the start of a request and stop; some send nothing at all, some a single byte (a
    // server that sniffs the protocol before timing the head would hold those forever).
    let mut slow = tokio::task::JoinSet::new();
    for batch in 0..SLOW / 250 {
        let mut opening = tokio::task::JoinSet::new();
        for i in 0..250 {
            let addr = gw.addr;
            opening.spawn(async move {
                let mut conn = TcpStream::connect(addr).await.unwrap();
                let opened = Instant::now();
                let start: &[u8] = match (batch * 250 + i) % 10 {
                    0 => b"",
                    1 => b"P",
                    _ => b"POST /graphql HTTP/1.1\r\nHost: t\r\n",
                };
                conn.write_all(start).await.unwrap();
                (conn, opened)
            });
        }
        while let Some(opened) = opening.join_next().await {
            let (mut conn, opened) = opened.unwrap();
            slow.spawn(async move {
                let rest = read_to_close(&mut conn, Duration::from_secs(20)).await;
                (rest.is_ok(), opened.elapsed())
            });
        }
        // A breath between batches: a listen queue that overflows on a busy machine makes the kernel
        // complete some connections seconds later, and their timer would start late.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A keep-alive connection that goes idle after one request is closed by the same timer.
    let mut idle = gw.connect(None).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
    let mut first = [0u8; 15];
    idle.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200 OK");
    let idle_since = Instant::now();

    let (mut closed, mut earliest, mut latest) = (0, Duration::MAX, Duration::ZERO);
    while let Some(res) = slow.join_next().await {
        let (was_closed, after) = res.unwrap();
        closed += usize::from(was_closed);
        earliest = earliest.min(after);
        latest = latest.max(after);
    }
    assert_eq!(closed, SLOW, "every partial connection is closed (latest after {latest:?})");
    assert!(earliest >= timeout - Duration::from_millis(300), "closed by the timeout, not at once: {earliest:?}");
    assert!(latest <= timeout + Duration::from_secs(8), "closed soon after the timeout: {latest:?}");
    read_to_close(&mut idle, Duration::from_secs(6)).await.expect("the idle keep-alive connection is closed");
    assert!(idle_since.elapsed() >= timeout - Duration::from_millis(300));

    let (ok, slowest) = client.await.unwrap();
    assert!(ok >= 20, "the well-behaved client was served throughout ({ok} requests)");
    assert!(slowest < Duration::from_secs(2), "and promptly (slowest {slowest:?})");
}

#[tokio::test]
async fn slow_bodies_are_cut_off_at_their_deadline_and_uploads_earn_time_by_rate() {
    let gw = Gateway::start(&[("HTTP_BODY_TIMEOUT_SECS", "2"), ("UPLOAD_MIN_BYTES_PER_SEC", "2000")]).await;
    let http = reqwest::Client::new();
    let token = register(&gw, &http, "13800000001").await.json::<Value>().await.unwrap()["data"]["register"]["token"]
        .as_str()
        .unwrap()
        .to_string();

    // Sends `head`, then `body` in `chunk`-byte pieces every `every`; returns the response and when
    // it came.
    async fn trickle(gw: &Gateway, head: String, body: Vec<u8>, chunk: usize, every: Duration) -> (String, Duration) {
        let mut conn = gw.connect(None).await.unwrap();
        let start = Instant::now();
        conn.write_all(head.as_bytes()).await.unwrap();
        let (mut reader, mut writer) = conn.into_split();
        let feed = tokio::spawn(async move {
            for piece in body.chunks(chunk) {
                tokio::time::sleep(every).await;
                if writer.write_all(piece).await.is_err() {
                    break;
                }
            }
            writer
        });
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(20), reader.read_to_end(&mut out)).await;
        let at = start.elapsed();
        feed.abort();
        (String::from_utf8_lossy(&out).into_owned(), at)
    }

    // A JSON body of 100 bytes arriving one byte every 300 ms: cut off after 2 s.
    let json_head =
        "POST /graphql HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n";
    let slow_json = trickle(&gw, json_head.into(), vec![b' '; 100], 1, Duration::from_millis(300));

    // Uploads: 8,000 bytes. At 4,000 B/s (above the 2,000 B/s floor) it outlives the 2 s allowance
    // and is served; at 200 B/s it falls below the floor and is cut off.
    let multipart = |padding: usize| {
        let boundary = "XyZbound";
        let ops = r#"{"query":"{ __typename }","variables":{"file":null}}"#;
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{ops}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"map\"\r\n\r\n{{\"0\":[\"variables.file\"]}}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"0\"; filename=\"a.txt\"\r\n\
             Content-Type: text/plain\r\n\r\n"
        )
        .into_bytes();
        body.extend(std::iter::repeat_n(b'a', padding));
        body.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
        let head = format!(
            "POST /graphql HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nApollo-Require-Preflight: true\r\n\
             Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        (head, body)
    };
    let (head, body) = multipart(7_600);
    let steady_upload = trickle(&gw, head, body, 400, Duration::from_millis(100));
    let (head, body) = multipart(7_600);
    let trickled_upload = trickle(&gw, head, body, 20, Duration::from_millis(100));

    let ((json_resp, json_at), (steady, steady_at), (trickled, trickled_at)) =
        tokio::join!(slow_json, steady_upload, trickled_upload);

    assert!(json_resp.starts_with("HTTP/1.1 408"), "{json_resp}");
    assert_eq!(code_of(&json_resp), "REQUEST_TIMEOUT");
    assert!(json_at >= Duration::from_millis(1_800) && json_at < Duration::from_secs(5), "{json_at:?}");

    assert!(steady_at > Duration::from_secs(2), "the upload outlived the plain allowance: {steady_at:?}");
    assert!(!steady.starts_with("HTTP/1.1 408"), "a steady upload is served: {steady}");
    assert!(steady.starts_with("HTTP/1.1 200"), "{steady}");

    // 2 s + 1/2000 s per byte received at 200 B/s: about 2.2 s.
    assert!(trickled.starts_with("HTTP/1.1 408"), "{trickled}");
    assert_eq!(code_of(&trickled), "REQUEST_TIMEOUT");
    assert!(trickled_at >= Duration::from_millis(2_000) && trickled_at < Duration::from_secs(6), "{trickled_at:?}");
}

#[tokio::test]
async fn connection_caps_per_address_per_instance_and_for_websockets_hold() {
    let gw = Gateway::start(&[
        ("MAX_CONNECTIONS", "6"),
        ("MAX_CONNECTIONS_PER_IP", "4"),
        ("MAX_WEBSOCKETS_PER_IP", "2"),
        ("HTTP_MAX_HEADER_BYTES", "8192"),
        // Idle connections must stay open while the caps are probed.
        ("HTTP_HEADER_TIMEOUT_SECS", "30"),
    ])
    .await;
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let second: IpAddr = "127.0.0.2".parse().unwrap();
    let third: IpAddr = "127.0.0.3".parse().unwrap();
    let healthz = "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

    // Waits until the server has seen earlier connections close and `from` is let in again.
    async fn served_again(gw: &Gateway, from: IpAddr, request: &str) -> String {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let resp = gw.raw(Some(from), request).await.unwrap();
            if resp.starts_with("HTTP/1.1 200") || Instant::now() > until {
                return resp;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Four idle connections from one address; the fifth is refused before anything is read. The
    // four must really be held: a connection the server refused at accept (an earlier, closing
    // connection can still hold an instance place for a moment on a loaded machine) is replaced.
    let mut held: Vec<TcpStream> = Vec::new();
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        held.retain(|conn| {
            let mut probe = [0u8; 1];
            matches!(conn.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        });
        if held.len() == 4 {
            break;
        }
        assert!(Instant::now() < until, "four idle connections could not be held");
        while held.len() < 4 {
            held.push(gw.connect(Some(lo)).await.unwrap());
        }
        // Give the server the time to accept them (or refuse them, which the next pass sees).
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    let refused = gw.raw(Some(lo), healthz).await.unwrap();
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    assert_eq!(code_of(&refused), "TOO_MANY_CONNECTIONS");
    assert!(header(&refused, "retry-after").is_some(), "{refused}");
    assert!(started.elapsed() < Duration::from_secs(2), "refused at once");

    // Another address still gets in: two more fill the instance (6), and a third address finds it full.
    held.push(gw.connect(Some(second)).await.unwrap());
    held.push(gw.connect(Some(second)).await.unwrap());
    let full = gw.raw(Some(third), healthz).await.unwrap();
    assert!(full.starts_with("HTTP/1.1 503"), "{full}");
    assert_eq!(code_of(&full), "TOO_MANY_CONNECTIONS");

    // Closing connections gives their places back.
    held.clear();
    for from in [lo, second, third] {
        let back = served_again(&gw, from, healthz).await;
        assert!(back.starts_with("HTTP/1.1 200"), "{back}");
    }

    // A request head over HTTP_MAX_HEADER_BYTES: 431.
    let big = format!("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\nConnection: close\r\n\r\n", "a".repeat(10_000));
    let too_big = gw.raw(None, &big).await.unwrap();
    assert!(too_big.starts_with("HTTP/1.1 431"), "{too_big}");

    // WebSockets: two per address; the third upgrade is refused with a coded 429.
    let ws_request = || {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let mut req = format!("ws://{}/graphql", gw.addr).into_client_request().unwrap();
        req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
        req
    };
    let (ws1, _) = tokio_tungstenite::connect_async(ws_request()).await.unwrap();
    let (_ws2, _) = tokio_tungstenite::connect_async(ws_request()).await.unwrap();
    match tokio_tungstenite::connect_async(ws_request()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 429);
            assert!(resp.headers().get("retry-after").is_some());
            let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["errors"][0]["extensions"]["code"], "TOO_MANY_CONNECTIONS");
        }
        other => panic!("a third WebSocket from one address must be refused, got {:?}", other.map(|r| r.1)),
    }
    drop(ws1);
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        match tokio_tungstenite::connect_async(ws_request()).await {
            Ok(_) => break,
            Err(e) => assert!(Instant::now() < until, "a closed WebSocket gives its place back: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn overload_is_shed_with_overloaded_while_the_probes_answer() {
    let gw = Gateway::start(&[("MAX_REQUESTS_IN_FLIGHT", "1"), ("MAX_CONNECTIONS_PER_IP", "0")]).await;
    let http = reqwest::Client::new();

    // Clients still sending their bodies hold no work slot: with three of them stalled mid-body, the
    // single slot still serves a complete request.
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut conn = gw.connect(None).await.unwrap();
        let head =
            "POST /graphql HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{";
        conn.write_all(head.as_bytes()).await.unwrap();
        stalled.push(conn);
    }
    let mut conn = gw.connect(None).await.unwrap();
    conn.write_all(post_json(TYPENAME).replace("HTTP/1.1\r\n", "HTTP/1.1\r\nConnection: close\r\n").as_bytes())
        .await
        .unwrap();
    let served = read_to_close(&mut conn, Duration::from_secs(10)).await.unwrap();
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");

    // Registrations hash a password (tens of milliseconds): 24 at once overlap, and with one slot
    // the excess is refused at once.
    let mut codes = Vec::new();
    for i in 0..24 {
        codes.push(crate::common::dev_code(&http, &gw.url(""), &format!("139{i:08}"), "REGISTER").await);
    }
    let mut burst = tokio::task::JoinSet::new();
    for (i, code) in codes.into_iter().enumerate() {
        let (gw_url, http) = (gw.url("/graphql"), http.clone());
        burst.spawn(async move {
            let started = Instant::now();
            let resp = http
                .post(gw_url)
                .json(&json!({
                    "query": "mutation($input: RegisterInput!) { register(input: $input) { token } }",
                    "variables": { "input": { "phone": format!("139{i:08}"), "code": code, "password": "correct horse", "nickname": "n" } },
                }))
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            let body: Value = resp.json().await.unwrap();
            (status, retry_after, body, started.elapsed())
        });
    }
    // While the burst lasts: /healthz answers, and /readyz steers the balancer away.
    let (mut healthz_ok, mut readyz_overloaded) = (false, false);
    let until = Instant::now() + Duration::from_secs(20);
    while !(healthz_ok && readyz_overloaded) && Instant::now() < until {
        healthz_ok |= http.get(gw.url("/healthz")).send().await.unwrap().status() == 200;
        let readyz = http.get(gw.url("/readyz")).send().await.unwrap();
        readyz_overloaded |= readyz.status() == 503 && readyz.text().await.unwrap().starts_with("overloaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(healthz_ok, "/healthz answers during the burst");
    assert!(readyz_overloaded, "/readyz reports the overload");
    let (mut served, mut shed) = (Vec::new(), Vec::new());
    while let Some(res) = burst.join_next().await {
        let (status, retry_after, body, took) = res.unwrap();
        if status == 503 {
            assert_eq!(body["errors"][0]["extensions"]["code"], "OVERLOADED", "{body}");
            assert_eq!(retry_after.as_deref(), Some("1"));
            shed.push(took);
        } else {
            assert_eq!(status, 200, "{body}");
            served.push(took);
        }
    }
    assert!(!served.is_empty() && !shed.is_empty(), "served {}, shed {}", served.len(), shed.len());
    // Refused at once rather than after waiting their turn: the typical refusal comes before the
    // first registration is done (the machine may be busy, so no absolute bound).
    shed.sort();
    let first_served = served.iter().min().copied().unwrap_or_default();
    assert!(shed[shed.len() / 2] < first_served, "shed {shed:?}, first served after {first_served:?}");

    assert_eq!(http.get(gw.url("/healthz")).send().await.unwrap().status(), 200);
    // And once the burst is over, the instance is ready again.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let readyz = http.get(gw.url("/readyz")).send().await.unwrap();
        if readyz.status() == 200 {
            break;
        }
        assert!(Instant::now() < until, "ready again after the burst");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(stalled);
}

#[tokio::test]
async fn an_answer_given_before_the_body_was_read_says_the_connection_closes() {
    let gw = Gateway::start(&[]).await;
    // A body refused unread (a method the route does not take), still arriving: the answer must tell
    // a pooling client not to send another request on this connection, and the connection ends.
    let mut conn = gw.connect(None).await.unwrap();
    let head = "PUT /graphql HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n";
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&[b'x'; 100]).await.unwrap();
    let answer = read_to_close(&mut conn, Duration::from_secs(10)).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert_eq!(header(&answer, "connection"), Some("close"), "{answer}");

    // A body read to its end keeps the connection for the next request.
    let mut conn = gw.connect(None).await.unwrap();
    conn.write_all(post_json(TYPENAME).as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf)).await.unwrap().unwrap();
    let first = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert_eq!(header(&first, "connection"), None, "{first}");
    conn.write_all(post_json(TYPENAME).as_bytes()).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}
