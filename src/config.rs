//! Configuration: one struct, every field settable by flag and by environment variable, validated at
//! start-up so a bad value stops the process with a message instead of failing on the first request.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// ecer-gateway: the GraphQL gateway of the ecer foreign-trade community.
#[derive(Debug, Parser)]
#[command(name = "ecer-gateway", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve GraphQL over HTTP and GraphiQL (the default when no subcommand is given).
    Serve,
    /// Print the schema as SDL on stdout (this is how `schema.graphql` is produced).
    ExportSchema,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print a new random key for `SEAL_KEYS` (`id:base64`); put it first to rotate.
    GenerateSealKey {
        /// The id the key is known by (written into every value it seals).
        #[arg(long)]
        id: String,
    },
    /// Print a new VAPID key pair for Web Push: the private key for `PUSH_VAPID_PRIVATE_KEY`, and its
    /// public key (what `pushPublicKey` will answer).
    GenerateVapidKey,
    /// Re-seal identity data, ID photos and exports with the first key of `SEAL_KEYS`, after a
    /// rotation; the old key can be removed once this reports nothing left.
    Reseal,
    /// Create an ADMIN account, or promote an existing account with that phone to ADMIN.
    /// The password is read from `ECER_ADMIN_PASSWORD` so it never lands in shell history.
    CreateAdmin {
        /// Phone number of the administrator (E.164, or a mainland number without +86).
        #[arg(long)]
        phone: String,
        #[arg(long, env = "ECER_ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
        /// Display name of the administrator.
        #[arg(long, default_value = "admin")]
        nickname: String,
    },
    /// Fill the database with a deterministic demo community (boards, users, posts, comments, likes).
    Seed {
        /// Number of users; posts, comments and likes scale with it.
        #[arg(long, default_value_t = 1000)]
        users: u32,
        /// Number of posts.
        #[arg(long, default_value_t = 5000)]
        posts: u32,
        /// Seed of the pseudo-random generator: the same seed and sizes give the same data.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Give every member two favourite boards that draw most of their likes (for measuring the
        /// recommended feed offline).
        #[arg(long, default_value_t = false)]
        planted_interests: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Database URL: `sqlite://path?mode=rwc` (embedded default) or `postgres://user@host/db`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://data/ecer.db?mode=rwc")]
    pub database_url: String,

    /// Maximum database connections per gateway instance.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,

    /// Milliseconds a request waits for a pooled database connection (a new one included) before it
    /// is answered 503 SERVICE_UNAVAILABLE: a full pool or a database that refuses connections is
    /// told to the client instead of queueing it.
    #[arg(long, env = "DATABASE_ACQUIRE_TIMEOUT_MS", default_value_t = 2_000)]
    pub database_acquire_timeout_ms: u64,

    /// Milliseconds one SQL statement may run on PostgreSQL (its `statement_timeout`); beyond it the
    /// statement is cancelled and the operation answers QUERY_TIMEOUT. 0 turns it off. SQLite runs
    /// in-process and has none.
    #[arg(long, env = "DATABASE_STATEMENT_TIMEOUT_MS", default_value_t = 5_000)]
    pub database_statement_timeout_ms: u64,

    /// Seconds one GraphQL operation may run in all (QUERY_TIMEOUT beyond): the bound that also
    /// holds when the database stops answering without closing the connection.
    #[arg(long, env = "OPERATION_TIMEOUT_SECS", default_value_t = 15)]
    pub operation_timeout_secs: u64,

    /// Requests in a row that failed to reach the database before the circuit breaker opens and
    /// requests that need it are answered 503 SERVICE_UNAVAILABLE at once.
    #[arg(long, env = "DATABASE_BREAKER_FAILURES", default_value_t = 3)]
    pub database_breaker_failures: u32,

    /// Milliseconds an open breaker waits before probing the database; each failed probe doubles
    /// it, up to 10 s.
    #[arg(long, env = "DATABASE_BREAKER_COOLDOWN_MS", default_value_t = 1_000)]
    pub database_breaker_cooldown_ms: u64,

    /// Redis URL for cross-instance pub/sub (`redis://127.0.0.1:6379`); unset means in-process.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Address the HTTP/WebSocket server listens on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8000")]
    pub listen_addr: SocketAddr,

    /// Lifetime of a login session, in hours.
    #[arg(long, env = "SESSION_TTL_HOURS", default_value_t = 720)]
    pub session_ttl_hours: u32,

    /// Name of the session cookie that web clients receive.
    #[arg(long, env = "SESSION_COOKIE_NAME", default_value = "ecer_session")]
    pub session_cookie_name: String,

    /// Mark the session cookie `Secure` (set this whenever clients reach the gateway over HTTPS).
    #[arg(long, env = "SESSION_COOKIE_SECURE", default_value_t = false)]
    pub session_cookie_secure: bool,

    /// Largest `first` a list field accepts.
    #[arg(long, env = "MAX_PAGE_SIZE", default_value_t = 100)]
    pub max_page_size: u32,

    /// Deepest selection nesting a query may have.
    #[arg(long, env = "MAX_QUERY_DEPTH", default_value_t = 16)]
    pub max_query_depth: usize,

    /// Deepest bracket nesting (`{`, `(`, `[`: selection sets, arguments, list and object values, list
    /// types), followed through fragment spreads, that a document may have (QUERY_TOO_DEEP beyond).
    /// Checked before parsing, because the parser and validator recurse once per level.
    #[arg(long, env = "MAX_DOCUMENT_NESTING", default_value_t = 64)]
    pub max_document_nesting: usize,

    /// Most tokens a document may hold with every fragment spread expanded (QUERY_TOO_COMPLEX
    /// beyond): it bounds the work of parsing and validating, fragment fan-out included.
    #[arg(long, env = "MAX_DOCUMENT_TOKENS", default_value_t = 15_000)]
    pub max_document_tokens: usize,

    /// Highest cost a query may have: every field costs 1, a list field costs its `first` times what
    /// each item selects, so nested lists multiply.
    #[arg(long, env = "MAX_QUERY_COMPLEXITY", default_value_t = 50_000)]
    pub max_query_complexity: usize,

    /// Most operations one batched POST may carry.
    #[arg(long, env = "MAX_BATCH_SIZE", default_value_t = 10)]
    pub max_batch_size: u32,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1_048_576)]
    pub max_body_bytes: usize,

    /// Prefix of every Redis key and channel the gateway uses, so that several deployments can
    /// share one Redis.
    #[arg(long, env = "REDIS_PREFIX", default_value = "ecer")]
    pub redis_prefix: String,

    /// Seconds a WebSocket may stay open without `connection_init` before it is closed (4408).
    #[arg(long, env = "WS_INIT_TIMEOUT_SECS", default_value_t = 10)]
    pub ws_init_timeout_secs: u64,

    /// Seconds between server keep-alive pings; a socket silent for two intervals is closed.
    #[arg(long, env = "WS_KEEPALIVE_SECS", default_value_t = 15)]
    pub ws_keepalive_secs: u64,

    /// Outgoing frames buffered per WebSocket before its subscriptions wait for the client.
    #[arg(long, env = "WS_SEND_QUEUE", default_value_t = 256)]
    pub ws_send_queue: usize,

    /// Seconds a message or notification subscription may wait on a client that does not read before
    /// it is ended with SUBSCRIPTION_LAGGING (the client resubscribes with its last cursor).
    #[arg(long, env = "WS_SLOW_CONSUMER_SECS", default_value_t = 30)]
    pub ws_slow_consumer_secs: u64,

    /// Subscriptions one WebSocket may hold at once.
    #[arg(long, env = "MAX_SUBSCRIPTIONS_PER_CONNECTION", default_value_t = 100)]
    pub max_subscriptions_per_connection: usize,

    /// Events buffered per topic and instance for subscribers that fall behind; beyond it live chat
    /// skips the oldest lines and other subscriptions re-read the database.
    #[arg(long, env = "BROKER_BUFFER", default_value_t = 1024)]
    pub broker_buffer: usize,

    /// Run only the operations of the persisted-query manifest (trusted documents). Turn it on in
    /// production: it refuses every query the published clients do not send.
    #[arg(long, env = "TRUSTED_DOCUMENTS", default_value_t = false, action = clap::ArgAction::Set)]
    pub trusted_documents: bool,

    /// The manifest for TRUSTED_DOCUMENTS (Apollo persisted-query manifest format); default: the
    /// frontend contract's manifest compiled into the binary.
    #[arg(long, env = "TRUSTED_DOCUMENTS_MANIFEST")]
    pub trusted_documents_manifest: Option<std::path::PathBuf>,

    /// Answer introspection queries (`__schema`, `__type`). Switch off in production if the schema
    /// should not be browsable.
    #[arg(long, env = "INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub introspection: bool,

    /// At start, fill an empty database with the demo community (one live stream on air) and print
    /// how to sign in; a database with members is left as it is. Refused with production settings
    /// (SESSION_COOKIE_SECURE or TRUSTED_DOCUMENTS).
    #[arg(long, env = "DEMO", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub demo: bool,

    /// Serve GraphiQL at `/`.
    #[arg(long, env = "GRAPHIQL", default_value_t = true, action = clap::ArgAction::Set)]
    pub graphiql: bool,

    /// Most aliased fields one document may hold (QUERY_TOO_MANY_ALIASES beyond): aliases are how one
    /// request asks for the same expensive field many times.
    #[arg(long, env = "MAX_ALIASES", default_value_t = 30)]
    pub max_aliases: usize,

    /// Where the community's web pages live (`https://ecer.example.com`, no trailing slash): the
    /// base of the permalinks (`url`) on posts, comments, members and boards.
    #[arg(long, env = "PUBLIC_WEB_URL", default_value = "http://127.0.0.1:8000")]
    pub public_web_url: String,

    /// Where clients reach this gateway (`https://api.ecer.example.com`, no trailing slash): the base
    /// of the absolute URLs it hands out for its own routes (`Media.url`, `thumbnailUrl`,
    /// `posterUrl`, uploaded avatars, live covers). Unset: `http://` + LISTEN_ADDR (127.0.0.1 for an
    /// unspecified address), right for `cargo run`; set it behind a proxy or a CDN.
    #[arg(long, env = "PUBLIC_API_URL")]
    pub public_api_url: Option<String>,

    /// Where a live room's host pushes video (the media server's ingest, e.g.
    /// `rtmp://ingest.example.com/live/{stream}?key={key}`): `{stream}` becomes the room's stream
    /// name (`ecer-<n>`), `{key}` its ingest key. Shown to the host only; unset, `ingestUrl` is null.
    #[arg(long, env = "LIVE_INGEST_URL", default_value = "")]
    pub live_ingest_url: String,

    /// The HLS playback URL of a live room, `{stream}` replaced by its stream name (e.g.
    /// `https://play.example.com/live/{stream}.m3u8`); unset, `playback.hls` is null.
    #[arg(long, env = "LIVE_PLAYBACK_HLS_URL", default_value = "")]
    pub live_playback_hls_url: String,

    /// The HTTP-FLV playback URL (low latency, e.g. `https://play.example.com/live/{stream}.flv`).
    #[arg(long, env = "LIVE_PLAYBACK_FLV_URL", default_value = "")]
    pub live_playback_flv_url: String,

    /// Origins (`https://app.example.com`, comma separated) besides the gateway's own whose WebSocket
    /// upgrades may use the session cookie. Bearer tokens work from anywhere.
    #[arg(long, env = "ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// GraphQL operations a user (or, signed out, an IP address) may run per minute, sustained; 0
    /// switches the limit off.
    #[arg(long, env = "RATE_LIMIT_REQUESTS_PER_MINUTE", default_value_t = 1200)]
    pub rate_limit_requests_per_minute: u32,

    /// Operations allowed in a burst above the sustained rate.
    #[arg(long, env = "RATE_LIMIT_REQUESTS_BURST", default_value_t = 200)]
    pub rate_limit_requests_burst: u32,

    /// GraphQL operations per minute one third-party app may send for one member (its own bucket,
    /// apart from the member's; the burst is the same number). 0 switches the limit off.
    #[arg(long, env = "RATE_LIMIT_APP_REQUESTS_PER_MINUTE", default_value_t = 120)]
    pub rate_limit_app_requests_per_minute: u32,

    /// How long a third-party app's OAuth access token works, in seconds (1 to 86400). Short, so a
    /// token a leak exposes dies soon; apps refresh it. A WebSocket it opened closes when it expires.
    #[arg(long, env = "OAUTH_ACCESS_TOKEN_TTL_SECS", default_value_t = 3600)]
    pub oauth_access_token_ttl_secs: u32,

    /// `register` and `login` attempts per IP address per minute (against password guessing).
    #[arg(long, env = "RATE_LIMIT_AUTH_PER_MINUTE", default_value_t = 10)]
    pub rate_limit_auth_per_minute: u32,

    /// Private messages a user may send per minute (against spam).
    #[arg(long, env = "RATE_LIMIT_MESSAGES_PER_MINUTE", default_value_t = 30)]
    pub rate_limit_messages_per_minute: u32,

    /// Live chat lines a user may say per minute.
    #[arg(long, env = "RATE_LIMIT_CHAT_PER_MINUTE", default_value_t = 30)]
    pub rate_limit_chat_per_minute: u32,

    /// Reports (`reportContent`) a member may file per hour; 0 switches the limit off.
    #[arg(long, env = "RATE_LIMIT_REPORTS_PER_HOUR", default_value_t = 20)]
    pub rate_limit_reports_per_hour: u32,

    /// Folder for uploaded files (avatars, post images, videos; ID photos and data exports sealed).
    #[arg(long, env = "MEDIA_DIR", default_value = "data/media")]
    pub media_dir: std::path::PathBuf,

    /// Memory for sealed files (ID photos, message photos and videos, exports) held whole while they
    /// are served, across all downloads at once, in MiB; a download waits up to 10 s for room, then
    /// gets 503.
    #[arg(long, env = "MAX_UNSEALED_MIB", default_value_t = 256)]
    pub max_unsealed_mib: u32,

    /// Object storage for media instead of `MEDIA_DIR`: `s3://bucket[/prefix]` on any S3-compatible
    /// service (AWS S3, MinIO, Aliyun OSS, Cloudflare R2). Instances on different machines then share
    /// media with no shared file system. Credentials: the `S3_*` settings below, else the standard
    /// `AWS_*` variables or the instance's role.
    #[arg(long, env = "MEDIA_STORE_URL")]
    pub media_store_url: Option<String>,

    /// The S3 endpoint for services other than AWS (`https://oss-cn-hangzhou.aliyuncs.com`,
    /// `http://127.0.0.1:9000` for MinIO); unset: AWS for the region.
    #[arg(long, env = "S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// The bucket's region (`us-east-1` when neither this nor `AWS_REGION` is set).
    #[arg(long, env = "S3_REGION")]
    pub s3_region: Option<String>,

    /// The access key id for `MEDIA_STORE_URL`; unset: `AWS_ACCESS_KEY_ID` or the instance's role.
    #[arg(long, env = "S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,

    /// The secret key for `MEDIA_STORE_URL`; unset: `AWS_SECRET_ACCESS_KEY` or the instance's role.
    #[arg(long, env = "S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,

    /// Allow a plain-HTTP `S3_ENDPOINT` (a MinIO on the same private network); refused otherwise.
    #[arg(long, env = "S3_ALLOW_HTTP", default_value_t = false, action = clap::ArgAction::Set)]
    pub s3_allow_http: bool,

    /// Virtual-hosted-style requests (`bucket.endpoint/key`), which Aliyun OSS requires; path style
    /// (`endpoint/bucket/key`) otherwise.
    #[arg(long, env = "S3_VIRTUAL_HOSTED", default_value_t = false, action = clap::ArgAction::Set)]
    pub s3_virtual_hosted: bool,

    /// The VAPID key Web Push is signed with: base64url of a 32-byte P-256 private key
    /// (`ecer-gateway generate-vapid-key`). Unset: derived from the sealing keys (stable while they are).
    #[arg(long, env = "PUSH_VAPID_PRIVATE_KEY", hide_env_values = true)]
    pub push_vapid_private_key: Option<String>,

    /// Who push services contact about this sender (RFC 8292 `sub`): a `mailto:` or `https:` URL.
    #[arg(long, env = "PUSH_SUBJECT", default_value = "mailto:push@ecer.example")]
    pub push_subject: String,

    /// How long a push waits for a live socket to show the message or notification first (then it
    /// is not sent), in milliseconds.
    #[arg(long, env = "PUSH_DELAY_MS", default_value_t = 3000)]
    pub push_delay_ms: u64,

    /// How long a push service keeps trying to reach an offline device, and how long the gateway
    /// retries the push service (the push's `TTL`), in seconds.
    #[arg(long, env = "PUSH_TTL_SECS", default_value_t = 86_400)]
    pub push_ttl_secs: u32,

    /// How often each instance looks for due pushes, in milliseconds.
    #[arg(long, env = "PUSH_POLL_MS", default_value_t = 1000)]
    pub push_poll_ms: u64,

    /// First wait before a push the push service did not take is tried again (doubling, up to 60 s).
    #[arg(long, env = "PUSH_RETRY_BASE_MS", default_value_t = 2000)]
    pub push_retry_base_ms: u64,

    /// Push services a subscription's endpoint may be on (the host or any host under it): the
    /// gateway POSTs to nothing else.
    #[arg(
        long,
        env = "PUSH_ENDPOINT_HOSTS",
        value_delimiter = ',',
        default_value = "fcm.googleapis.com,android.googleapis.com,push.services.mozilla.com,notify.windows.com,push.apple.com"
    )]
    pub push_endpoint_hosts: Vec<String>,

    /// Allow plain-HTTP push endpoints (tests with a local push service only).
    #[arg(long, env = "PUSH_ALLOW_HTTP", default_value_t = false, action = clap::ArgAction::Set)]
    pub push_allow_http: bool,

    /// Largest upload accepted, in bytes (short videos); larger files are refused while streaming.
    #[arg(long, env = "MAX_UPLOAD_BYTES", default_value_t = 50 * 1024 * 1024)]
    pub max_upload_bytes: usize,

    /// Largest image accepted (avatars, post images, ID photos), in bytes.
    #[arg(long, env = "MAX_IMAGE_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_image_bytes: usize,

    /// Most files in one multipart request.
    #[arg(long, env = "MAX_UPLOAD_FILES", default_value_t = 9)]
    pub max_upload_files: usize,

    /// Keys that seal identity data, ID photos and data exports at rest: `id:base64-of-32-bytes`,
    /// comma-separated, the first one sealing new values (`ecer-gateway generate-seal-key` makes one).
    #[arg(long, env = "SEAL_KEYS", value_delimiter = ',', hide_env_values = true)]
    pub seal_keys: Vec<String>,

    /// Where a development key is kept when `SEAL_KEYS` is unset (created on first start). Set
    /// `SEAL_KEYS` in production: a key next to the data it protects protects little.
    #[arg(long, env = "SEAL_KEY_FILE", default_value = "data/seal.key")]
    pub seal_key_file: std::path::PathBuf,

    /// Record every request (time, duration, IP, user agent, language, device, OS, operation).
    #[arg(long, env = "REQUEST_LOG", default_value_t = true, action = clap::ArgAction::Set)]
    pub request_log: bool,

    /// Days the request log and daily visitor rows are kept.
    #[arg(long, env = "REQUEST_LOG_RETENTION_DAYS", default_value_t = 90)]
    pub request_log_retention_days: u32,

    /// Days a member's browse history (posts read) is kept before the hourly purge removes it.
    #[arg(long, env = "BROWSE_HISTORY_RETENTION_DAYS", default_value_t = 180)]
    pub browse_history_retention_days: u32,

    /// Days a member's search history is kept (with the matches that shape their feed).
    #[arg(long, env = "SEARCH_HISTORY_RETENTION_DAYS", default_value_t = 180)]
    pub search_history_retention_days: u32,

    /// Days a notification is kept after its last update, read or not.
    #[arg(long, env = "NOTIFICATION_RETENTION_DAYS", default_value_t = 365)]
    pub notification_retention_days: u32,

    /// Days a known device (for new-device sign-in notices) is remembered.
    #[arg(long, env = "DEVICE_RETENTION_DAYS", default_value_t = 365)]
    pub device_retention_days: u32,

    /// Days a staff audit entry (who read or changed whose data) is kept.
    #[arg(long, env = "AUDIT_LOG_RETENTION_DAYS", default_value_t = 1095)]
    pub audit_log_retention_days: u32,

    /// Days after a real-name verification is decided before its ID photos are deleted (and a
    /// rejected one's sealed name and number with them).
    #[arg(long, env = "ID_PHOTO_RETENTION_DAYS", default_value_t = 30)]
    pub id_photo_retention_days: u32,

    /// Name of the first-party cookie that counts daily unique visitors.
    #[arg(long, env = "VISITOR_COOKIE_NAME", default_value = "ecer_vid")]
    pub visitor_cookie_name: String,

    /// Hours a data export stays downloadable.
    #[arg(long, env = "DATA_EXPORT_TTL_HOURS", default_value_t = 72)]
    pub data_export_ttl_hours: u32,

    /// Seconds a client has to send a complete request head (request line and headers), counted
    /// from when the connection opens, or from when the previous response on it ended. hyper runs one
    /// timer for both, so this is also the keep-alive idle timeout: an idle connection closes after it.
    #[arg(long, env = "HTTP_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub http_header_timeout_secs: u64,

    /// Seconds the whole body of an ordinary request may take to arrive (408 REQUEST_TIMEOUT beyond).
    /// Multipart uploads start with the same allowance and earn more as their bytes arrive (see
    /// UPLOAD_MIN_BYTES_PER_SEC).
    #[arg(long, env = "HTTP_BODY_TIMEOUT_SECS", default_value_t = 30)]
    pub http_body_timeout_secs: u64,

    /// Seconds a write to a client may wait because it stopped reading (its socket buffers are full)
    /// before the connection is closed: a download or WebSocket nobody reads gives back its memory,
    /// its share of MAX_UNSEALED_MIB and its connection place. Any progress restarts the wait (1 to
    /// 3600).
    #[arg(long, env = "HTTP_WRITE_TIMEOUT_SECS", default_value_t = 60)]
    pub http_write_timeout_secs: u64,

    /// The slowest average rate an upload (a multipart body) may arrive at: every byte received
    /// extends its HTTP_BODY_TIMEOUT_SECS allowance by 1/rate seconds, so a large file on a slow link
    /// gets the time it needs, and a client trickling bytes is cut off.
    #[arg(long, env = "UPLOAD_MIN_BYTES_PER_SEC", default_value_t = 8 * 1024)]
    pub upload_min_bytes_per_sec: u64,

    /// Seconds a browser or CDN may reuse the answer to an anonymous GET of a persisted or trusted
    /// document (`Cache-Control: public, max-age`), which also carries an `ETag` for 304 answers. It
    /// is the staleness such a reader may see: a deleted post may show for this long. 0 turns HTTP
    /// caching off.
    #[arg(long, env = "HTTP_CACHE_MAX_AGE_SECS", default_value_t = 5)]
    pub http_cache_max_age_secs: u64,

    /// Milliseconds an anonymous query's answer is served from this instance's memory before it is
    /// recomputed (the response cache; 0 turns it off). Counters (likes, follows, views) seen by
    /// signed-out readers lag by at most twice this; new, edited and deleted content never does:
    /// every such write invalidates every instance's cached answers before it returns.
    #[arg(long, env = "RESPONSE_CACHE_TTL_MS", default_value_t = 1000)]
    pub response_cache_ttl_ms: u64,

    /// Memory the response cache may hold, in MiB (least recently used answers go first).
    #[arg(long, env = "RESPONSE_CACHE_MIB", default_value_t = 64)]
    pub response_cache_mib: u64,

    /// Milliseconds a post, member, board, media list, comment page or post list read by a query is
    /// kept in this instance's memory for the next queries, signed-in ones included (the entity
    /// cache; 0 turns it off). The same rule as the response cache: counters lag by at most this on
    /// other instances, content writes and removals never, and a member's own record is always read
    /// from the database.
    #[arg(long, env = "ENTITY_CACHE_TTL_MS", default_value_t = 1000)]
    pub entity_cache_ttl_ms: u64,

    /// Entries the entity cache holds per kind (posts, members, boards, media lists, comment pages,
    /// post lists); least recently used go first.
    #[arg(long, env = "ENTITY_CACHE_ENTRIES", default_value_t = 50_000)]
    pub entity_cache_entries: u64,

    /// Answer searches from an index each instance holds in memory, kept up to date from the
    /// database's change log before every search (false: every search runs in the database). About
    /// 6 bytes per token per document, loaded in the background at start.
    #[arg(long, env = "SEARCH_INDEX_IN_MEMORY", default_value_t = true, action = clap::ArgAction::Set)]
    pub search_index_in_memory: bool,

    /// Milliseconds between the in-memory search index's background reads of the change log (each
    /// search also reads it first, so this bounds only how far an idle instance falls behind).
    #[arg(long, env = "SEARCH_INDEX_FOLLOW_MS", default_value_t = 1000)]
    pub search_index_follow_ms: u64,

    /// Largest request head (request line and headers), in bytes (431 beyond).
    #[arg(long, env = "HTTP_MAX_HEADER_BYTES", default_value_t = 32 * 1024)]
    pub http_max_header_bytes: usize,

    /// Most connections (WebSockets included) this instance holds at once; beyond it, new connections
    /// are answered 503 TOO_MANY_CONNECTIONS and closed before anything is read. Keep it below the
    /// process's open-file limit, with room for the database pool, Redis, upload spooling and files
    /// being served.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 15_000)]
    pub max_connections: usize,

    /// Most connections one client address holds at once (an IPv6 client counts by its /64); beyond
    /// it, 429 TOO_MANY_CONNECTIONS and closed before reading. 0 switches the cap off. Connections
    /// from a trusted proxy (`TRUSTED_PROXIES`) are not capped per address: they carry many clients.
    #[arg(long, env = "MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: usize,

    /// Reverse proxies and load balancers in front of the gateway: comma-separated addresses and
    /// CIDR blocks (`10.0.0.0/8,192.0.2.7`). For a request whose connection comes from one of them,
    /// the client's address (rate limits, login throttling, WebSocket caps, the request log) is read
    /// from `TRUSTED_PROXY_HEADER`, right to left past the trusted hops; from anyone else it is
    /// ignored. Empty: trust none.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,

    /// The header the trusted proxies write the client's address in: `x-forwarded-for` or
    /// `forwarded` (RFC 7239). Only that one is read: the other may come from the client.
    #[arg(long, env = "TRUSTED_PROXY_HEADER", default_value = "x-forwarded-for")]
    pub trusted_proxy_header: String,

    /// Most WebSockets one client address holds at once (429 TOO_MANY_CONNECTIONS on the upgrade
    /// beyond it); 0 switches the cap off.
    #[arg(long, env = "MAX_WEBSOCKETS_PER_IP", default_value_t = 128)]
    pub max_websockets_per_ip: usize,

    /// GraphQL and media requests this instance works on at once; beyond it a request is answered at
    /// once with 503 OVERLOADED and `Retry-After` instead of queueing, and /readyz reports the
    /// overload. A request counts from when its body has arrived, so slow senders wait in I/O, not in
    /// a work slot. 0 switches shedding off.
    #[arg(long, env = "MAX_REQUESTS_IN_FLIGHT", default_value_t = 256)]
    pub max_requests_in_flight: usize,

    /// Who delivers SMS codes: `log` (development: the code goes to the log and to the development
    /// route `/dev/sms-codes`; refused with production settings) or `disabled` (no SMS; code requests
    /// answer SMS_UNAVAILABLE, so nobody can sign up).
    #[arg(long, env = "SMS_PROVIDER", value_enum, default_value_t = crate::sms::ProviderKind::Log)]
    pub sms_provider: crate::sms::ProviderKind,

    /// With SMS_PROVIDER=aliyun: the dysmsapi endpoint (https; plain http only without production
    /// settings, for a local test server).
    #[arg(long, env = "ALIYUN_SMS_ENDPOINT", default_value = crate::sms::aliyun::DEFAULT_ENDPOINT)]
    pub aliyun_sms_endpoint: String,

    /// With SMS_PROVIDER=aliyun: the AccessKey ID of a RAM user allowed only dysms:SendSms.
    #[arg(long, env = "ALIYUN_ACCESS_KEY_ID", default_value = "")]
    pub aliyun_access_key_id: String,

    /// With SMS_PROVIDER=aliyun: that AccessKey's secret (signs each request; never logged nor shown).
    #[arg(long, env = "ALIYUN_ACCESS_KEY_SECRET", default_value = "", hide_env_values = true)]
    pub aliyun_access_key_secret: Secret,

    /// With SMS_PROVIDER=aliyun: the approved signature name (签名) the message is sent under.
    #[arg(long, env = "ALIYUN_SMS_SIGN_NAME", default_value = "")]
    pub aliyun_sms_sign_name: String,

    /// With SMS_PROVIDER=aliyun: the approved template (e.g. SMS_123456789); it must have one
    /// variable, `${code}`.
    #[arg(long, env = "ALIYUN_SMS_TEMPLATE_CODE", default_value = "")]
    pub aliyun_sms_template_code: String,

    /// With SMS_PROVIDER=aliyun: the approved notice template (one variable, `${content}`) for
    /// security and incident notices; empty sends them in-site (and by email) only.
    #[arg(long, env = "ALIYUN_SMS_NOTICE_TEMPLATE_CODE", default_value = "")]
    pub aliyun_sms_notice_template_code: String,

    /// Milliseconds between two looks of this instance's SMS sender at the outbox for messages due
    /// (a retry after a failure; a new message is tried at once).
    #[arg(long, env = "SMS_OUTBOX_POLL_MS", default_value_t = 1000)]
    pub sms_outbox_poll_ms: u64,

    /// Milliseconds before the first retry of an SMS the provider could not take; each later retry
    /// waits twice as long (at most a minute), 5 tries in all (1 to 60000).
    #[arg(long, env = "SMS_RETRY_BASE_MS", default_value_t = 2000)]
    pub sms_retry_base_ms: u64,

    /// Seconds an SMS code stays valid (1 to 3600).
    #[arg(long, env = "PHONE_CODE_TTL_SECS", default_value_t = 300)]
    pub phone_code_ttl_secs: u64,

    /// Seconds between two codes sent to one number (RATE_LIMITED with retryAfter before), at most
    /// 3600; 0 = off.
    #[arg(long, env = "PHONE_CODE_RESEND_SECS", default_value_t = 60)]
    pub phone_code_resend_secs: u64,

    /// Codes one number may receive in 24 hours (against SMS bombing of a person); 0 = no cap.
    #[arg(long, env = "PHONE_CODE_DAILY_PER_NUMBER", default_value_t = 10)]
    pub phone_code_daily_per_number: u32,

    /// Codes one client address may ask for in 24 hours (against SMS pumping from one place); 0 = no
    /// cap (required behind a proxy until trusted-proxy rules exist, as every request then comes from
    /// the proxy's address).
    #[arg(long, env = "PHONE_CODE_DAILY_PER_IP", default_value_t = 20)]
    pub phone_code_daily_per_ip: u32,

    /// Codes numbers of one foreign country calling code may receive in 24 hours (every code not in
    /// PHONE_CODE_HOME_COUNTRIES): SMS-pumping fraud sends codes to premium-rate ranges abroad, so
    /// one foreign prefix must not spend the budget; 0 = no cap.
    #[arg(long, env = "PHONE_CODE_DAILY_PER_COUNTRY", default_value_t = 200)]
    pub phone_code_daily_per_country: u32,

    /// Country calling codes (comma separated, digits without `+`) the community mostly serves,
    /// bounded only by the global budget, not by PHONE_CODE_DAILY_PER_COUNTRY.
    #[arg(long, env = "PHONE_CODE_HOME_COUNTRIES", value_delimiter = ',', default_value = "86")]
    pub phone_code_home_countries: Vec<String>,

    /// Codes the whole deployment may send in 24 hours: the budget that bounds what SMS pumping from
    /// many addresses can cost; 0 = no cap.
    #[arg(long, env = "PHONE_CODE_DAILY_GLOBAL", default_value_t = 10_000)]
    pub phone_code_daily_global: u32,

    /// The SMTP server that delivers email (codes for `addEmail` and password reset, security
    /// notices): `smtp://host:port` (plain, a local relay), `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS) or `smtps://user:pass@host:465`. Unset in development: nothing is sent and each
    /// message (code included) goes to the log; refused unset with production settings. `disabled`:
    /// no email (`addEmail` answers EMAIL_UNAVAILABLE).
    #[arg(long, env = "SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<Secret>,

    /// The sender of every email, `Name <address>` (the display name may be Chinese).
    #[arg(long, env = "MAIL_FROM", default_value = "ecer <no-reply@ecer.example>")]
    pub mail_from: String,

    /// Milliseconds between two looks of this instance's email sender at the outbox for messages
    /// due (10 to 60000).
    #[arg(long, env = "EMAIL_OUTBOX_POLL_MS", default_value_t = 1000)]
    pub email_outbox_poll_ms: u64,

    /// Milliseconds before the first retry of an email the server could not take now (4xx, no
    /// connection); each later retry waits twice as long (at most a minute), 5 tries in all
    /// (1 to 60000).
    #[arg(long, env = "EMAIL_RETRY_BASE_MS", default_value_t = 2000)]
    pub email_retry_base_ms: u64,

    /// Seconds between two codes sent to one address (RATE_LIMITED with retryAfter before), at most
    /// 3600; 0 = off.
    #[arg(long, env = "EMAIL_CODE_RESEND_SECS", default_value_t = 60)]
    pub email_code_resend_secs: u64,

    /// Log format: `text` for people, `json` for log collectors.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Config {
    /// Checks what clap cannot: URL schemes and ranges. The message names the setting to fix.
    /// `TRUSTED_PROXIES` and `TRUSTED_PROXY_HEADER`, parsed.
    pub fn trusted_proxies(&self) -> Result<crate::server::proxies::TrustedProxies, String> {
        use crate::server::proxies::{Header, TrustedProxies};
        TrustedProxies::parse(&self.trusted_proxies, Header::parse(&self.trusted_proxy_header)?)
    }

    pub fn validate(&self) -> Result<(), String> {
        let db = self.database_url.as_str();
        if !(db.starts_with("sqlite:") || db.starts_with("postgres://") || db.starts_with("postgresql://")) {
            return Err(format!(
                "DATABASE_URL must start with sqlite:, postgres:// or postgresql://, got {:?}",
                redact(db)
            ));
        }
        if let Some(redis) = &self.redis_url
            && !(redis.starts_with("redis://") || redis.starts_with("rediss://"))
        {
            return Err(format!("REDIS_URL must start with redis:// or rediss://, got {:?}", redact(redis)));
        }
        self.trusted_proxies()?;
        let web = self.public_web_url.as_str();
        if !is_base_url(web) {
            return Err(format!(
                "PUBLIC_WEB_URL must be an http(s) origin or base path with no trailing slash, got {web:?}"
            ));
        }
        if let Some(api) = &self.public_api_url
            && !is_base_url(api)
        {
            return Err(format!(
                "PUBLIC_API_URL must be an http(s) origin or base path with no trailing slash, got {api:?}"
            ));
        }
        if self.database_max_connections == 0 {
            return Err("DATABASE_MAX_CONNECTIONS must be at least 1".into());
        }
        if self.database_acquire_timeout_ms == 0 || self.operation_timeout_secs == 0 {
            return Err("DATABASE_ACQUIRE_TIMEOUT_MS and OPERATION_TIMEOUT_SECS must be at least 1".into());
        }
        if self.session_ttl_hours == 0 {
            return Err("SESSION_TTL_HOURS must be at least 1".into());
        }
        if !(1..=1000).contains(&self.max_page_size) {
            return Err("MAX_PAGE_SIZE must be between 1 and 1000".into());
        }
        if self.max_query_depth < 4 {
            return Err("MAX_QUERY_DEPTH must be at least 4".into());
        }
        if self.demo {
            crate::demo::refuse_in_production(self)?;
        }
        if !(16..=512).contains(&self.max_document_nesting) {
            return Err(
                "MAX_DOCUMENT_NESTING must be between 16 and 512 (deeper documents can exhaust a worker's stack)"
                    .into(),
            );
        }
        if self.max_document_tokens < 1_000 {
            return Err("MAX_DOCUMENT_TOKENS must be at least 1000".into());
        }
        if self.max_query_complexity < 100 {
            return Err("MAX_QUERY_COMPLEXITY must be at least 100".into());
        }
        if !(1..=100).contains(&self.max_batch_size) {
            return Err("MAX_BATCH_SIZE must be between 1 and 100".into());
        }
        if self.max_body_bytes < 1024 {
            return Err("MAX_BODY_BYTES must be at least 1024".into());
        }
        if !(1..=86_400).contains(&self.oauth_access_token_ttl_secs) {
            return Err("OAUTH_ACCESS_TOKEN_TTL_SECS must be between 1 and 86400".into());
        }
        if self.ws_init_timeout_secs == 0 || self.ws_keepalive_secs == 0 || self.ws_slow_consumer_secs == 0 {
            return Err("WS_INIT_TIMEOUT_SECS, WS_KEEPALIVE_SECS and WS_SLOW_CONSUMER_SECS must be at least 1".into());
        }
        if self.ws_send_queue == 0 || self.broker_buffer == 0 || self.max_subscriptions_per_connection == 0 {
            return Err("WS_SEND_QUEUE, BROKER_BUFFER and MAX_SUBSCRIPTIONS_PER_CONNECTION must be at least 1".into());
        }
        if self.redis_prefix.is_empty() || self.redis_prefix.contains(['*', '?', '[', ']', ' ']) {
            return Err("REDIS_PREFIX must be non-empty, without spaces or glob characters".into());
        }
        if self.max_upload_files == 0 || self.max_image_bytes == 0 || self.max_upload_bytes < self.max_image_bytes {
            return Err("MAX_UPLOAD_FILES must be at least 1 and MAX_UPLOAD_BYTES at least MAX_IMAGE_BYTES".into());
        }
        if [
            self.browse_history_retention_days,
            self.search_history_retention_days,
            self.notification_retention_days,
            self.device_retention_days,
            self.audit_log_retention_days,
        ]
        .contains(&0)
        {
            return Err("the *_RETENTION_DAYS settings must be at least 1 (ID_PHOTO_RETENTION_DAYS may be 0)".into());
        }
        if self.request_log_retention_days == 0 || self.data_export_ttl_hours == 0 {
            return Err("REQUEST_LOG_RETENTION_DAYS and DATA_EXPORT_TTL_HOURS must be at least 1".into());
        }
        let visitor_ok = !self.visitor_cookie_name.is_empty()
            && self.visitor_cookie_name != self.session_cookie_name
            && self.visitor_cookie_name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !visitor_ok {
            return Err(
                "VISITOR_COOKIE_NAME must be ASCII letters, digits, '_' or '-', unlike SESSION_COOKIE_NAME".into()
            );
        }
        if self.http_header_timeout_secs == 0 || self.http_body_timeout_secs == 0 || self.http_write_timeout_secs == 0 {
            return Err(
                "HTTP_HEADER_TIMEOUT_SECS, HTTP_BODY_TIMEOUT_SECS and HTTP_WRITE_TIMEOUT_SECS must be at least 1"
                    .into(),
            );
        }
        if self.http_write_timeout_secs > 3600 {
            return Err("HTTP_WRITE_TIMEOUT_SECS must be at most 3600".into());
        }
        if self.upload_min_bytes_per_sec == 0 {
            return Err("UPLOAD_MIN_BYTES_PER_SEC must be at least 1".into());
        }
        // Above hyper's read buffer (about 400 KiB) the buffer, not this setting, would be the limit.
        if !(8 * 1024..=256 * 1024).contains(&self.http_max_header_bytes) {
            return Err("HTTP_MAX_HEADER_BYTES must be between 8192 and 262144".into());
        }
        if self.max_connections == 0 {
            return Err("MAX_CONNECTIONS must be at least 1".into());
        }
        if !self.seal_keys.is_empty() {
            crate::seal::Sealer::from_entries(&self.seal_keys).map_err(|e| e.to_string())?;
        }
        if self.phone_code_ttl_secs == 0 || self.phone_code_ttl_secs > 3600 {
            return Err("PHONE_CODE_TTL_SECS must be between 1 and 3600".into());
        }
        if self.phone_code_resend_secs > 3600 {
            return Err("PHONE_CODE_RESEND_SECS must be at most 3600".into());
        }
        if self
            .phone_code_home_countries
            .iter()
            .any(|c| c.is_empty() || c.len() > 3 || !c.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(
                "PHONE_CODE_HOME_COUNTRIES must be country calling codes: 1 to 3 digits, no '+' (e.g. 86,852)".into()
            );
        }
        if self.sms_provider == crate::sms::ProviderKind::Log
            && let Some(setting) = self.production_setting()
        {
            return Err(format!(
                "SMS_PROVIDER=log writes codes to the log and cannot be used with {setting}; set SMS_PROVIDER=disabled until a real provider is configured"
            ));
        }
        if !(10..=60_000).contains(&self.sms_outbox_poll_ms) {
            return Err("SMS_OUTBOX_POLL_MS must be between 10 and 60000".into());
        }
        if !(1..=60_000).contains(&self.sms_retry_base_ms) {
            return Err("SMS_RETRY_BASE_MS must be between 1 and 60000".into());
        }
        if self.sms_provider == crate::sms::ProviderKind::Aliyun {
            self.validate_aliyun()?;
        }
        self.validate_email()?;
        let cookie_ok = !self.session_cookie_name.is_empty()
            && self.session_cookie_name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !cookie_ok {
            return Err("SESSION_COOKIE_NAME must be non-empty ASCII letters, digits, '_' or '-'".into());
        }
        Ok(())
    }

    /// The base of absolute URLs to this gateway's own routes: PUBLIC_API_URL, or the listen address.
    pub fn public_api_base(&self) -> String {
        match &self.public_api_url {
            Some(url) => url.clone(),
            None => {
                let mut addr = self.listen_addr;
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                format!("http://{addr}")
            }
        }
    }

    /// The setting that marks this as a production deployment, if any: `SESSION_COOKIE_SECURE` (the
    /// gateway is served over HTTPS to real people). Development-only features (the `log` SMS
    /// provider, its `/dev/sms-codes` route) are refused with it. `TRUSTED_DOCUMENTS` alone does not
    /// count here, because CI runs the frontend contract in trusted mode over plain HTTP; it does turn
    /// the development route off (see [`Config::dev_routes`]).
    pub fn production_setting(&self) -> Option<&'static str> {
        self.session_cookie_secure.then_some("SESSION_COOKIE_SECURE")
    }

    /// Whether development-only routes (`/dev/sms-codes`) are served: only with the `log` SMS
    /// provider and neither production setting (SESSION_COOKIE_SECURE, TRUSTED_DOCUMENTS).
    pub fn dev_routes(&self) -> bool {
        self.sms_provider == crate::sms::ProviderKind::Log
            && self.production_setting().is_none()
            && !self.trusted_documents
    }

    /// Defaults for tests and tools: every field as if no flag or variable were given.
    /// The Aliyun provider's settings, as [`Config::validate`] checked them.
    pub fn aliyun_settings(&self) -> crate::sms::aliyun::Settings {
        crate::sms::aliyun::Settings {
            endpoint: self.aliyun_sms_endpoint.clone(),
            access_key_id: self.aliyun_access_key_id.clone(),
            access_key_secret: self.aliyun_access_key_secret.clone(),
            sign_name: self.aliyun_sms_sign_name.clone(),
            template_code: self.aliyun_sms_template_code.clone(),
            notice_template_code: self.aliyun_sms_notice_template_code.clone(),
        }
    }

    fn validate_aliyun(&self) -> Result<(), String> {
        for (name, value) in [
            ("ALIYUN_ACCESS_KEY_ID", self.aliyun_access_key_id.as_str()),
            ("ALIYUN_ACCESS_KEY_SECRET", self.aliyun_access_key_secret.expose()),
            ("ALIYUN_SMS_SIGN_NAME", self.aliyun_sms_sign_name.as_str()),
            ("ALIYUN_SMS_TEMPLATE_CODE", self.aliyun_sms_template_code.as_str()),
        ] {
            if value.trim().is_empty() {
                return Err(format!("SMS_PROVIDER=aliyun needs {name}"));
            }
        }
        let endpoint = url::Url::parse(&self.aliyun_sms_endpoint)
            .map_err(|_| format!("ALIYUN_SMS_ENDPOINT is not a URL: {:?}", redact(&self.aliyun_sms_endpoint)))?;
        let plain_ok = self.production_setting().is_none();
        match endpoint.scheme() {
            "https" => {}
            "http" if plain_ok => {}
            _ => {
                return Err(match self.production_setting() {
                    Some(setting) => format!("ALIYUN_SMS_ENDPOINT must be https:// with {setting}"),
                    None => "ALIYUN_SMS_ENDPOINT must be an http(s):// URL".into(),
                });
            }
        }
        if endpoint.query().is_some() || !endpoint.username().is_empty() || endpoint.password().is_some() {
            return Err("ALIYUN_SMS_ENDPOINT must be a bare endpoint (no credentials, no query)".into());
        }
        Ok(())
    }

    /// Like `SMS_PROVIDER=log`, an unset `SMTP_URL` writes codes to the log: refused with a
    /// production setting, where the choice must be explicit (a server, or `disabled`).
    fn validate_email(&self) -> Result<(), String> {
        let unset = self.smtp_url.as_ref().is_none_or(|u| u.expose().trim().is_empty());
        if unset && let Some(setting) = self.production_setting() {
            return Err(format!(
                "SMTP_URL is unset, so email codes would go to the log, which cannot be used with {setting}; set SMTP_URL to the mail server (smtps://user:pass@host:465), or SMTP_URL=disabled"
            ));
        }
        crate::mail::Mailer::from_config(self)?;
        if !(10..=60_000).contains(&self.email_outbox_poll_ms) {
            return Err("EMAIL_OUTBOX_POLL_MS must be between 10 and 60000".into());
        }
        if !(1..=60_000).contains(&self.email_retry_base_ms) {
            return Err("EMAIL_RETRY_BASE_MS must be between 1 and 60000".into());
        }
        if self.email_code_resend_secs > 3600 {
            return Err("EMAIL_CODE_RESEND_SECS must be at most 3600".into());
        }
        Ok(())
    }

    pub fn defaults() -> Self {
        Cli::parse_from(["ecer-gateway"]).config
    }
}

/// An http(s) origin or base path without a trailing slash, query or fragment, that parses as a URL.
fn is_base_url(url: &str) -> bool {
    (url.starts_with("http://") || url.starts_with("https://"))
        && !url.ends_with('/')
        && !url.contains(['?', '#'])
        && url::Url::parse(url).is_ok_and(|u| u.host().is_some())
}

/// Hides a password in a URL before it reaches an error message or a log.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// A secret setting: its `Debug` (and so any dump of the configuration) shows `***`, never the value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that signs with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "***" })
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_needs_an_explicit_smtp_choice() {
        let mut c = Config::defaults();
        c.session_cookie_secure = true;
        c.sms_provider = crate::sms::ProviderKind::Disabled;
        assert!(c.validate().unwrap_err().contains("SMTP_URL"));
        c.smtp_url = Some(Secret::new("disabled"));
        assert_eq!(c.validate(), Ok(()));
        c.smtp_url = Some(Secret::new("smtps://u:pw-secret@mail.example:465"));
        assert_eq!(c.validate(), Ok(()));
        assert!(!format!("{c:?}").contains("pw-secret"), "the password never shows in a dump");
        c.smtp_url = Some(Secret::new("smtp://u:pw-secret@mail.example:25"));
        let refused = c.validate().unwrap_err();
        assert!(refused.contains("SMTP_URL") && !refused.contains("pw-secret"), "{refused}");
    }

    #[test]
    fn the_public_api_base_is_checked_and_defaults_to_the_listen_address() {
        let mut c = Config::defaults();
        assert_eq!(c.public_api_base(), "http://127.0.0.1:8000");
        c.listen_addr = "0.0.0.0:9000".parse().unwrap();
        assert_eq!(c.public_api_base(), "http://127.0.0.1:9000");
        c.public_api_url = Some("https://api.example.com/gw".into());
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.public_api_base(), "https://api.example.com/gw");
        for bad in ["https://api.example.com/", "ftp://x", "https://", "api.example.com", "https://a.example?x=1"] {
            c.public_api_url = Some(bad.into());
            assert!(c.validate().unwrap_err().contains("PUBLIC_API_URL"), "{bad}");
        }
    }

    #[test]
    fn aliyun_needs_its_settings_and_hides_its_secret() {
        let mut c = Config::defaults();
        c.sms_provider = crate::sms::ProviderKind::Aliyun;
        assert!(c.validate().unwrap_err().contains("ALIYUN_ACCESS_KEY_ID"));
        c.aliyun_access_key_id = "id".into();
        c.aliyun_access_key_secret = Secret::new("s3cr3t-value");
        c.aliyun_sms_sign_name = "ecer".into();
        assert!(c.validate().unwrap_err().contains("ALIYUN_SMS_TEMPLATE_CODE"));
        c.aliyun_sms_template_code = "SMS_1".into();
        assert_eq!(c.validate(), Ok(()));
        assert!(!format!("{c:?}").contains("s3cr3t-value"), "the secret never shows in a dump");
        c.aliyun_sms_endpoint = "ftp://x".into();
        assert!(c.validate().is_err());
        c.aliyun_sms_endpoint = "http://127.0.0.1:1".into();
        assert_eq!(c.validate(), Ok(()), "plain http for a local server without production settings");
        c.trusted_documents = true;
        if c.production_setting().is_some() {
            assert!(c.validate().unwrap_err().contains("https"));
        }
    }
}
