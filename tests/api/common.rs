#![allow(dead_code)]

use std::net::SocketAddr;

use ecer_gateway::app::{self, AppState};
use ecer_gateway::config::Config;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

/// A running gateway with a database of its own.
pub struct TestApp {
    pub addr: SocketAddr,
    pub state: AppState,
    pub http: reqwest::Client,
    _db: TestDb,
    /// Where media go: a folder (shared with `another_instance`s, as a shared volume would be), or a
    /// local S3-compatible server storing its bucket `media` in that folder.
    pub media_dir: std::sync::Arc<MediaHome>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The test's own database; dropped with the test.
pub enum TestDb {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    /// Owned by another `TestApp`.
    Shared,
    Postgres {
        admin_url: String,
        name: String,
    },
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs outside any runtime we may block: use a thread with its own.
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

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The database URL the suite runs against: `DATABASE_URL` if it is PostgreSQL, else SQLite.
fn postgres_base() -> Option<String> {
    std::env::var("DATABASE_URL").ok().filter(|u| u.starts_with("postgres"))
}

pub fn backend_is_postgres() -> bool {
    postgres_base().is_some()
}

pub async fn fresh_database() -> (String, TestDb) {
    match postgres_base() {
        Some(base) => {
            let name = format!("test_{}", uuid::Uuid::new_v4().simple());
            let admin = Database::connect(&base).await.expect("connect to PostgreSQL (DATABASE_URL)");
            admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.expect("create test database");
            admin.close().await.ok();
            let mut url = url::Url::parse(&base).expect("DATABASE_URL is a URL");
            url.set_path(&format!("/{name}"));
            (url.to_string(), TestDb::Postgres { admin_url: base, name })
        }
        None => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}/test.db?mode=rwc", dir.path().display());
            (url, TestDb::Sqlite(dir))
        }
    }
}

/// The media of a test's gateways: a temporary folder, served by an S3-compatible server on
/// loopback when the test runs on object storage. Either way the files of area `a` sit in
/// `path()/media/a/`, so a test can look at what reached the disk.
pub struct MediaHome {
    dir: tempfile::TempDir,
    /// The S3 server's address (its bucket `media` is `dir/media`).
    pub s3: Option<SocketAddr>,
}

/// The S3 server's credentials (it checks every request's SigV4 signature).
pub const S3_KEY: &str = "test-access-key";
pub const S3_SECRET: &str = "test-secret-key";

impl MediaHome {
    pub async fn new(s3: bool) -> MediaHome {
        let dir = tempfile::tempdir().expect("media dir");
        for area in ["public", "thumbnails", "posters", "private", "exports"] {
            std::fs::create_dir_all(dir.path().join("media").join(area)).expect("media area");
        }
        let s3 = if s3 { Some(s3_server(dir.path()).await) } else { None };
        MediaHome { dir, s3 }
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Points a gateway's configuration at this media home.
    pub fn configure(&self, config: &mut Config) {
        config.media_dir = self.dir.path().join("media");
        if let Some(addr) = self.s3 {
            config.media_store_url = Some("s3://media".into());
            config.s3_endpoint = Some(format!("http://{addr}"));
            config.s3_region = Some("us-east-1".into());
            config.s3_access_key_id = Some(S3_KEY.into());
            config.s3_secret_access_key = Some(S3_SECRET.into());
            config.s3_allow_http = true;
        }
    }
}

/// Whether this run puts every test's media on object storage (`TEST_MEDIA_STORE=s3`; CI's
/// PostgreSQL + Redis pass does, the production shape).
pub fn media_on_s3() -> bool {
    std::env::var("TEST_MEDIA_STORE").is_ok_and(|v| v == "s3")
}

/// An S3-compatible server (s3s over files in `root`, one folder per bucket) on a loopback port,
/// for as long as the test's runtime lives.
pub async fn s3_server(root: &std::path::Path) -> SocketAddr {
    use hyper::server::conn::http1;
    let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs root");
    let mut builder = s3s::service::S3ServiceBuilder::new(fs);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(S3_KEY, S3_SECRET));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind S3 server");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else { continue };
            let service = service.clone();
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(socket);
                let _ = http1::Builder::new().serve_connection(io, service).await;
            });
        }
    });
    addr
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
        Self::spawn_media(media_on_s3(), tweak).await
    }

    /// A gateway whose media are on a local S3-compatible server (`true`) or in a folder.
    pub async fn spawn_media(s3: bool, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let (url, db) = fresh_database().await;
        let media = std::sync::Arc::new(MediaHome::new(s3).await);
        let keys = vec![ecer_gateway::seal::Sealer::generate_entry("t1").unwrap()];
        Self::start(url, db, media, keys, tweak).await
    }

    /// Another gateway instance on the same database (and whatever broker `tweak` picks).
    pub async fn another_instance(&self, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let url = self.state.config.database_url.clone();
        let keys = self.state.config.seal_keys.clone();
        Self::start(url, TestDb::Shared, self.media_dir.clone(), keys, tweak).await
    }

    async fn start(
        url: String,
        db: TestDb,
        media: std::sync::Arc<MediaHome>,
        seal_keys: Vec<String>,
        tweak: impl FnOnce(&mut Config),
    ) -> TestApp {
        let mut config = Config::defaults();
        config.database_url = url;
        config.database_max_connections = 5;
        config.listen_addr = "127.0.0.1:0".parse().unwrap();
        // Tests share one Redis: each app gets its own channels and keys.
        config.redis_prefix = format!("test{}", uuid::Uuid::new_v4().simple());
        // Tests sign up many users from one address; the limits have tests of their own.
        config.rate_limit_auth_per_minute = 0;
        config.rate_limit_messages_per_minute = 0;
        config.rate_limit_chat_per_minute = 0;
        config.rate_limit_requests_per_minute = 0;
        config.rate_limit_app_requests_per_minute = 0;
        // Likewise SMS codes: resend spacing and daily caps off (tests/api/phone_codes.rs sets them).
        config.phone_code_resend_secs = 0;
        config.phone_code_daily_per_number = 0;
        config.phone_code_daily_per_ip = 0;
        config.phone_code_daily_global = 0;
        // The SMS sender polls rarely: its statements would otherwise land in the statement counts of
        // tests/api/queries.rs (the outbox tests in sms_aliyun.rs poll fast).
        config.sms_outbox_poll_ms = 60_000;
        // The email sender likewise (tests/api/email.rs polls fast).
        config.email_outbox_poll_ms = 60_000;
        // The Web Push sender likewise (tests/api/push.rs polls fast).
        config.push_poll_ms = 60_000;
        // The search index's background reads likewise (each search reads the change log itself).
        config.search_index_follow_ms = 60_000;
        media.configure(&mut config);
        config.seal_keys = seal_keys;
        // Bound first: the absolute URLs the gateway hands out name the port it really serves on.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        config.public_api_url = Some(format!("http://{addr}"));
        tweak(&mut config);
        config.validate().expect("valid test config");
        let state = AppState::new(config).await.expect("start app");
        // Searches take the in-memory path from the first one, as on a running instance.
        if state.search.is_enabled() {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
            while !state.search.is_ready() {
                assert!(tokio::time::Instant::now() < deadline, "the search index did not load");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serve_state = state.clone();
        tokio::spawn(async move {
            let _ = app::serve(listener, serve_state, async {
                let _ = rx.await;
            })
            .await;
        });
        TestApp { addr, state, http: reqwest::Client::new(), _db: db, media_dir: media, shutdown: Some(tx) }
    }

    /// Starts a graceful shutdown, as SIGTERM does.
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// A path on this gateway as a URL; an absolute URL (as `Media.url` is) is taken as it is.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            return path.to_string();
        }
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs a GraphQL request as JSON; returns the body, whatever the status.
    pub async fn gql_raw(&self, token: Option<&str>, query: &str, variables: Value) -> (reqwest::StatusCode, Value) {
        let mut req = self.http.post(self.url("/graphql")).json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        (status, resp.json().await.expect("json body"))
    }

    /// A GraphQL request that must succeed without errors; returns `data`.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let (status, body) = self.gql_raw(token, query, variables).await;
        assert_eq!(status, 200, "status for {query}: {body}");
        assert!(body.get("errors").is_none(), "unexpected errors for {query}: {body}");
        body["data"].clone()
    }

    /// A GraphQL request that must fail; returns the first error's `extensions.code`.
    pub async fn gql_err(&self, token: Option<&str>, query: &str, variables: Value) -> (String, Value) {
        let (_, body) = self.gql_raw(token, query, variables).await;
        let err = body["errors"][0].clone();
        assert!(!err.is_null(), "expected an error for {query}, got {body}");
        (err["extensions"]["code"].as_str().unwrap_or("<none>").to_string(), err)
    }

    /// Asks for an SMS code through the API and reads it from the `log` provider's ring (the test
    /// harness's view of the member's phone).
    pub async fn phone_code(&self, phone: &str, purpose: &str) -> String {
        self.gql(
            None,
            "mutation($input: RequestPhoneCodeInput!) { requestPhoneCode(input: $input) { sent } }",
            json!({ "input": { "phone": phone, "purpose": purpose } }),
        )
        .await;
        self.sent_code(phone).expect("the log provider kept the code")
    }

    /// The newest code the `log` provider sent to `phone` (any spelling the API accepts).
    pub fn sent_code(&self, phone: &str) -> Option<String> {
        let e164 = ecer_gateway::services::validate::phone("phone", phone).ok()?;
        self.state.sms.last_code(&e164).map(|s| s.code)
    }

    /// Registers a user through the API (asking for a REGISTER code first); returns (token, global id).
    pub async fn register(&self, phone: &str, nickname: &str) -> (String, String) {
        let code = self.phone_code(phone, "REGISTER").await;
        let data = self
            .gql(
                None,
                "mutation($input: RegisterInput!) { register(input: $input) { token user { id } } }",
                json!({ "input": { "phone": phone, "code": code, "password": "correct horse", "nickname": nickname } }),
            )
            .await;
        (
            data["register"]["token"].as_str().unwrap().to_string(),
            data["register"]["user"]["id"].as_str().unwrap().to_string(),
        )
    }

    /// A user with the given role: registered through the API, promoted in the database (quicker than
    /// `setUserRole`, which tests/api/trust.rs covers), then signed in again.
    pub async fn user_with_role(&self, phone: &str, role: &str) -> (String, String) {
        let (_, id) = self.register(phone, role).await;
        let e164 = ecer_gateway::services::validate::phone("phone", phone).unwrap();
        self.state
            .db
            .execute_unprepared(&format!("UPDATE users SET role = '{role}' WHERE phone = '{e164}'"))
            .await
            .unwrap();
        let data = self
            .gql(
                None,
                "mutation($input: LoginInput!) { login(input: $input) { token } }",
                json!({ "input": { "phone": phone, "password": "correct horse" } }),
            )
            .await;
        (data["login"]["token"].as_str().unwrap().to_string(), id)
    }

    /// An ADMIN created the way operators do it (the `create-admin` path), then signed in.
    pub async fn admin(&self) -> String {
        ecer_gateway::services::accounts::create_admin(
            &self.state.db,
            &self.state.broker,
            "+8613900000000",
            "admin password".into(),
            "admin",
        )
        .await
        .map_err(|e| format!("{e:?}"))
        .unwrap();
        let data = self
            .gql(
                None,
                "mutation($input: LoginInput!) { login(input: $input) { token } }",
                json!({ "input": { "phone": "+8613900000000", "password": "admin password" } }),
            )
            .await;
        data["login"]["token"].as_str().unwrap().to_string()
    }

    pub async fn create_board(&self, admin: &str, slug: &str, name: &str) -> String {
        let data = self
            .gql(
                Some(admin),
                "mutation($input: CreateBoardInput!) { createBoard(input: $input) { board { id } } }",
                json!({ "input": { "slug": slug, "name": name, "description": "" } }),
            )
            .await;
        data["createBoard"]["board"]["id"].as_str().unwrap().to_string()
    }

    pub async fn create_post(&self, token: &str, board: &str, title: &str) -> String {
        let data = self
            .gql(
                Some(token),
                "mutation($input: CreatePostInput!) { createPost(input: $input) { post { id } } }",
                json!({ "input": { "boardId": board, "title": title, "body": format!("{title} 的內容 body") } }),
            )
            .await;
        data["createPost"]["post"]["id"].as_str().unwrap().to_string()
    }

    pub async fn comment(&self, token: &str, post: &str, parent: Option<&str>, body: &str) -> String {
        let data = self
            .gql(
                Some(token),
                "mutation($input: CreateCommentInput!) { createComment(input: $input) { comment { id } } }",
                json!({ "input": { "postId": post, "parentId": parent, "body": body } }),
            )
            .await;
        data["createComment"]["comment"]["id"].as_str().unwrap().to_string()
    }

    pub fn statements(&self) -> u64 {
        self.state.db_stats.statements()
    }

    /// Waits until `n` first-party private streams (messageReceived, notificationReceived...) have read their start.
    ///
    /// A subscription without `after` starts at the newest item when the server reads it: an event
    /// sent before that read is never delivered. The count rises once the first run caught up and
    /// the stream waits for the next event (src/http/private_stream.rs).
    pub async fn streams_waiting(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let count = self.state.private_streams.count();
            if count == n {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{count} private streams waiting after 10 s, expected {n}");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

/// The smallest community most tests start from: an admin, board `b1`, member alice and her post.
pub struct Community {
    pub admin: String,
    pub board: String,
    pub alice: String,
    pub post: String,
}

impl TestApp {
    pub async fn community() -> (TestApp, Community) {
        TestApp::community_on(TestApp::spawn().await).await
    }

    /// An instance whose every read reaches the database, for the tests that count the statements
    /// a page costs: the entity cache would answer the second page from the first one's rows.
    pub async fn uncached() -> TestApp {
        TestApp::spawn_with(|c| c.entity_cache_ttl_ms = 0).await
    }

    pub async fn community_on(app: TestApp) -> (TestApp, Community) {
        let admin = app.admin().await;
        let board = app.create_board(&admin, "b1", "Board").await;
        let (alice, _) = app.register(&phone(1), "alice").await;
        let post = app.create_post(&alice, &board, "t").await;
        (app, Community { admin, board, alice, post })
    }
}

#[path = "../support/dev_code.rs"]
mod dev_code_support;
pub use dev_code_support::dev_code;

/// Phone numbers for tests: valid mainland mobile numbers, distinct per `n`.
pub fn phone(n: u32) -> String {
    format!("+86138{n:08}")
}

pub type WsStream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A raw GraphQL-over-WebSocket client: frames in, frames out, nothing hidden.
pub struct Ws {
    pub stream: WsStream,
}

/// How a socket ended, as the client saw it.
#[derive(Debug, PartialEq)]
pub enum Ended {
    Closed(u16, String),
    Dropped,
}

impl TestApp {
    /// Opens a WebSocket on /graphql offering `protocols` (comma separated), with extra headers.
    pub async fn ws_with(&self, protocols: Option<&str>, headers: &[(&str, &str)]) -> Ws {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("ws://{}/graphql", self.addr).into_client_request().unwrap();
        if let Some(p) = protocols {
            req.headers_mut().insert("Sec-WebSocket-Protocol", p.parse().unwrap());
        }
        for (k, v) in headers {
            req.headers_mut().insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        let (stream, _) = tokio_tungstenite::connect_async(req).await.expect("websocket connect");
        Ws { stream }
    }

    /// A graphql-transport-ws socket past `connection_ack`, signed in with `token` if given.
    pub async fn ws(&self, token: Option<&str>) -> Ws {
        let mut ws = self.ws_with(Some("graphql-transport-ws"), &[]).await;
        let payload = match token {
            Some(t) => json!({ "authToken": t }),
            None => json!({}),
        };
        ws.send(json!({ "type": "connection_init", "payload": payload })).await;
        assert_eq!(ws.recv().await["type"], "connection_ack");
        ws
    }
}

impl Ws {
    pub async fn send(&mut self, value: Value) {
        use futures_util::SinkExt;
        self.stream.send(tokio_tungstenite::tungstenite::Message::Text(value.to_string().into())).await.unwrap();
    }

    pub async fn send_raw(&mut self, msg: tokio_tungstenite::tungstenite::Message) {
        use futures_util::SinkExt;
        self.stream.send(msg).await.unwrap();
    }

    /// The next protocol message, skipping server pings (answered) and keep-alives; panics after 10 s.
    pub async fn recv(&mut self) -> Value {
        match self.recv_within(std::time::Duration::from_secs(10)).await {
            Ok(v) => v,
            Err(ended) => panic!("socket ended while waiting for a message: {ended:?}"),
        }
    }

    /// The next protocol message exactly as the server wrote it (pings answered, keep-alives
    /// skipped), for tests of the serialised form itself.
    pub async fn recv_text(&mut self) -> String {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        loop {
            let next = tokio::time::timeout(std::time::Duration::from_secs(10), self.stream.next())
                .await
                .expect("timed out waiting on socket");
            match next {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    match v["type"].as_str() {
                        Some("ping") => {
                            let pong = Message::Text(json!({ "type": "pong" }).to_string().into());
                            let _ = self.stream.send(pong).await;
                        }
                        Some("ka") => {}
                        _ => return t.to_string(),
                    }
                }
                Some(Ok(Message::Close(frame))) => panic!("socket closed: {frame:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("socket failed: {e}"),
                None => panic!("socket ended"),
            }
        }
    }

    pub async fn recv_within(&mut self, limit: std::time::Duration) -> Result<Value, Ended> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let next =
                tokio::time::timeout_at(deadline, self.stream.next()).await.expect("timed out waiting on socket");
            match next {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    match v["type"].as_str() {
                        Some("ping") => {
                            // The server may close right after a ping: a failed pong is not an error.
                            use futures_util::SinkExt;
                            let pong = Message::Text(json!({ "type": "pong" }).to_string().into());
                            let _ = self.stream.send(pong).await;
                        }
                        Some("ka") => {}
                        _ => return Ok(v),
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(frame.map_or(Ended::Dropped, |f| Ended::Closed(f.code.into(), f.reason.to_string())));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Err(Ended::Dropped),
            }
        }
    }

    /// Waits for the server to close the socket; returns the close code.
    pub async fn closed(&mut self) -> u16 {
        loop {
            match self.recv_within(std::time::Duration::from_secs(10)).await {
                Ok(_) => continue,
                Err(Ended::Closed(code, _)) => return code,
                Err(Ended::Dropped) => panic!("socket dropped without a close frame"),
            }
        }
    }

    /// Starts a subscription (or any operation) under `id`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({ "type": "subscribe", "id": id, "payload": { "query": query, "variables": variables } }))
            .await;
    }

    /// The next `next` payload's `data`, asserting it belongs to `id` and has no errors.
    pub async fn next_data(&mut self, id: &str) -> Value {
        let msg = self.recv().await;
        assert_eq!(msg["type"], "next", "expected next, got {msg}");
        assert_eq!(msg["id"], id);
        assert!(msg["payload"].get("errors").is_none(), "errors in {msg}");
        msg["payload"]["data"].clone()
    }

    /// Asserts nothing arrives for a moment (other than keep-alives).
    pub async fn quiet(&mut self, ms: u64) {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(ms);
        while let Ok(next) = tokio::time::timeout_at(deadline, self.stream.next()).await {
            match next {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    assert!(matches!(v["type"].as_str(), Some("ping" | "ka")), "unexpected message {v}");
                }
                Some(Ok(_)) => {}
                _ => panic!("socket ended"),
            }
        }
    }
}

/// A file for a multipart upload: (form field, file name, declared content type, bytes).
pub type Part = (&'static str, &'static str, &'static str, Vec<u8>);

impl TestApp {
    /// Sends a GraphQL multipart request (the upload specification): `files` are mapped to the
    /// variable paths in `map`. `preflight` adds the header that proves it is not a form post.
    pub async fn upload_raw(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
        map: Value,
        files: Vec<Part>,
        preflight: bool,
    ) -> (reqwest::StatusCode, Value) {
        let operations = json!({ "query": query, "variables": variables }).to_string();
        let mut form = reqwest::multipart::Form::new().text("operations", operations).text("map", map.to_string());
        for (field, name, mime, bytes) in files {
            let part = reqwest::multipart::Part::bytes(bytes).file_name(name).mime_str(mime).unwrap();
            form = form.part(field, part);
        }
        let mut req = self.http.post(self.url("/graphql")).multipart(form);
        if preflight {
            req = req.header("apollo-require-preflight", "true");
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        (status, resp.json().await.expect("json body"))
    }

    /// One file as `$file`; must succeed. Returns `data`.
    pub async fn upload(&self, token: &str, query: &str, mut variables: Value, file: Part) -> Value {
        // The specification's placeholder: the file's variable is null in `operations`.
        variables["file"] = Value::Null;
        let (status, body) =
            self.upload_raw(Some(token), query, variables, json!({ "0": ["variables.file"] }), vec![file], true).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }
}

/// The smallest content a PNG sniffer accepts, plus some bytes that make each file distinct.
pub fn png(tag: &str) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0".to_vec();
    b.extend_from_slice(tag.as_bytes());
    b
}

/// A real, decodable PNG of `w` x `h` pixels (a gradient with some transparency).
pub fn picture(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(w, h, |x, y| image::Rgba([(x % 256) as u8, (y % 256) as u8, 120, 200]));
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgba8(img).write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// An MP4 (ISO base media) header.
pub fn mp4() -> Vec<u8> {
    let mut b = vec![0, 0, 0, 0x18];
    b.extend_from_slice(b"ftypisom\0\0\x02\0isomiso2mp41");
    b.extend(std::iter::repeat_n(7u8, 4000));
    b
}

/// The real `ecer-gateway` binary, started as an operator would (environment only), on a database
/// of its own (or one another `RealGateway` already used, to test restarts). Killed when dropped.
pub struct RealGateway {
    pub port: u16,
    pub stdout: String,
    child: std::process::Child,
}

/// A database for `RealGateway`s: SQLite in a temporary folder, or a fresh PostgreSQL database.
pub struct RealDatabase {
    pub url: String,
    pub dir: tempfile::TempDir,
    _db: TestDb,
}

impl RealDatabase {
    pub async fn new() -> RealDatabase {
        let (url, db) = fresh_database().await;
        RealDatabase { url, dir: tempfile::tempdir().expect("temp dir"), _db: db }
    }
}

impl RealGateway {
    /// Starts the binary with `args` and `env`, and waits until `/healthz` answers. Returns the
    /// process's exit and output instead when it stops before that.
    pub async fn start(db: &RealDatabase, args: &[&str], env: &[(&str, &str)]) -> Result<RealGateway, String> {
        use std::io::Read as _;
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let out_path = db.dir.path().join(format!("stdout-{port}.txt"));
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ecer-gateway"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &db.url)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("MEDIA_DIR", db.dir.path().join("media"))
            .env("SEAL_KEY_FILE", db.dir.path().join("seal.key"))
            .env("REDIS_PREFIX", format!("test{}", uuid::Uuid::new_v4().simple()))
            .env("RUST_LOG", "warn")
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::process::Stdio::piped());
        if let Ok(redis) = std::env::var("REDIS_URL") {
            cmd.env("REDIS_URL", redis);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start the gateway binary");
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
                let out = std::fs::read_to_string(&out_path).unwrap_or_default();
                return Err(format!("exited with {status}: {out}{err}"));
            }
            if http.get(format!("http://127.0.0.1:{port}/healthz")).send().await.is_ok() {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "the gateway did not start");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
        Ok(RealGateway { port, stdout, child })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut req =
            reqwest::Client::new().post(self.url("/graphql")).json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap().json().await.unwrap()
    }
}

impl Drop for RealGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
