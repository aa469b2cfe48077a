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
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The test's own database; dropped with the test.
enum TestDb {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
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

async fn fresh_database() -> (String, TestDb) {
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

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
        let (url, db) = fresh_database().await;
        let mut config = Config::defaults();
        config.database_url = url;
        config.database_max_connections = 5;
        config.listen_addr = "127.0.0.1:0".parse().unwrap();
        tweak(&mut config);
        config.validate().expect("valid test config");
        let state = AppState::new(config).await.expect("start app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serve_state = state.clone();
        tokio::spawn(async move {
            let _ = app::serve(listener, serve_state, async {
                let _ = rx.await;
            })
            .await;
        });
        TestApp { addr, state, http: reqwest::Client::new(), _db: db, shutdown: Some(tx) }
    }

    pub fn url(&self, path: &str) -> String {
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

    /// Registers a user through the API; returns (token, global id).
    pub async fn register(&self, phone: &str, nickname: &str) -> (String, String) {
        let data = self
            .gql(
                None,
                "mutation($input: RegisterInput!) { register(input: $input) { token user { id } } }",
                json!({ "input": { "phone": phone, "password": "correct horse", "nickname": nickname } }),
            )
            .await;
        (
            data["register"]["token"].as_str().unwrap().to_string(),
            data["register"]["user"]["id"].as_str().unwrap().to_string(),
        )
    }

    /// A user with the given role: registered through the API, promoted in the database (there is
    /// deliberately no API for that), then signed in again.
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
        let app = TestApp::spawn().await;
        let admin = app.admin().await;
        let board = app.create_board(&admin, "b1", "Board").await;
        let (alice, _) = app.register(&phone(1), "alice").await;
        let post = app.create_post(&alice, &board, "t").await;
        (app, Community { admin, board, alice, post })
    }
}

/// Phone numbers for tests: valid mainland mobile numbers, distinct per `n`.
pub fn phone(n: u32) -> String {
    format!("+86138{n:08}")
}
