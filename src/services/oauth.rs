//! The OAuth 2.1 authorization server (issue 16): a member's consent to an approved developer app,
//! authorization codes with PKCE (S256 only), access and refresh tokens, rotation with reuse
//! detection, revocation. The protocol's HTTP face is `http::oauth`; what an app token may touch is
//! `authz::scopes`.
//!
//! Every code and token is random, prefixed by its kind (so a leaked one is recognisable, and the
//! viewer lookup knows which table to read) and stored only as its SHA-256. A grant is one row per
//! member and app; its codes and tokens hang off it by foreign key, so revoking it (the member, a
//! replayed code or refresh token, account deletion) ends all of them in one delete, and the
//! member's topic tells every instance to re-check the sockets those tokens opened.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use entity::{developer_apps, oauth_codes, oauth_grants, oauth_tokens, users};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, JoinType, QueryFilter, QueryOrder, QuerySelect,
    RelationTrait, Set, TransactionTrait,
};
use sha2::{Digest, Sha256};

use crate::auth::{self, AppAccess, Role, Viewer};
use crate::authz::scopes::Scopes;
use crate::error::{AppError, AppResult};
use crate::pubsub::{Broker, Event, Topic};
use crate::services::audit;
use crate::services::developer_apps::Status;

pub const ACCESS_PREFIX: &str = "ecat_";
pub const REFRESH_PREFIX: &str = "ecrt_";
const CODE_PREFIX: &str = "ecac_";
pub const CODE_TTL: Duration = Duration::seconds(60);
pub const REFRESH_TTL: Duration = Duration::days(30);
const ACCESS: &str = "ACCESS";
const REFRESH: &str = "REFRESH";
/// The longest `state` kept and echoed back; clients use a few dozen characters.
const MAX_STATE: usize = 512;

/// An authorization request as it arrives (query string or the consent form).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct AuthRequest {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub ui_locales: Option<String>,
}

/// A request that names a known, approved app and one of its redirect URIs.
#[derive(Debug, Clone)]
pub struct Checked {
    pub app: developer_apps::Model,
    pub developer: Option<String>,
    pub redirect_uri: String,
    /// Whether the request named `redirect_uri` (then the token request must repeat it).
    pub redirect_named: bool,
    pub scopes: Scopes,
    pub state: Option<String>,
    pub code_challenge: String,
}

/// Why an authorization request is refused. Until the client and redirect URI are known good the
/// member is told on our own page (RFC 6749 §4.1.2.1: never redirect to an unverified URI);
/// afterwards the app is told at its redirect URI.
#[derive(Debug)]
pub enum Refusal {
    Here(Problem),
    Redirect { redirect_uri: String, state: Option<String>, error: &'static str, description: String },
}

/// What is wrong with a request that cannot be sent back to the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    NoClient,
    UnknownApp,
    UnregisteredRedirect,
    NoRedirect,
}

/// Checks an authorization request: the app, the redirect URI, PKCE, the scopes.
pub async fn check_request(db: &impl ConnectionTrait, req: &AuthRequest) -> AppResult<Result<Checked, Refusal>> {
    let Some(client_id) = req.client_id.as_deref().filter(|c| !c.is_empty() && c.len() <= 64) else {
        return Ok(Err(Refusal::Here(Problem::NoClient)));
    };
    let Some(app) = approved_app(db, client_id).await? else {
        return Ok(Err(Refusal::Here(Problem::UnknownApp)));
    };
    let registered = registered_uris(&app);
    let redirect_uri = match req.redirect_uri.as_deref() {
        Some(uri) if redirect_matches(&registered, uri) => uri.to_string(),
        Some(_) => return Ok(Err(Refusal::Here(Problem::UnregisteredRedirect))),
        None if registered.len() == 1 => registered[0].clone(),
        None => return Ok(Err(Refusal::Here(Problem::NoRedirect))),
    };
    let state = req.state.clone().filter(|s| !s.is_empty());
    let refuse = |error: &'static str, description: &str| {
        Ok(Err(Refusal::Redirect {
            redirect_uri: redirect_uri.clone(),
            state: state.clone(),
            error,
            description: description.to_string(),
        }))
    };
    if state.as_ref().is_some_and(|s| s.len() > MAX_STATE) {
        // Not echoed back: the app gets a bounded answer.
        return Ok(Err(Refusal::Redirect {
            redirect_uri: redirect_uri.clone(),
            state: None,
            error: "invalid_request",
            description: "state is too long".into(),
        }));
    }
    if req.response_type.as_deref() != Some("code") {
        return refuse("unsupported_response_type", "only response_type=code is supported");
    }
    if req.code_challenge_method.as_deref() != Some("S256") {
        return refuse("invalid_request", "PKCE is required: code_challenge_method=S256");
    }
    let challenge = req.code_challenge.as_deref().unwrap_or_default();
    if challenge.len() != 43 || !challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return refuse("invalid_request", "code_challenge must be BASE64URL(SHA-256(code_verifier))");
    }
    let scopes = match Scopes::parse(req.scope.as_deref().unwrap_or_default()) {
        Ok(s) if s.is_empty() => return refuse("invalid_scope", "ask for at least one scope"),
        Ok(s) => s,
        Err(unknown) => return refuse("invalid_scope", &format!("unknown scope {unknown}")),
    };
    let developer = users::Entity::find_by_id(app.owner_id)
        .filter(users::Column::DeletedAt.is_null())
        .one(db)
        .await?
        .map(|u| u.nickname);
    let redirect_named = req.redirect_uri.is_some();
    Ok(Ok(Checked {
        app,
        developer,
        redirect_uri,
        redirect_named,
        scopes,
        state,
        code_challenge: challenge.to_string(),
    }))
}

async fn approved_app(db: &impl ConnectionTrait, client_id: &str) -> AppResult<Option<developer_apps::Model>> {
    Ok(developer_apps::Entity::find()
        .filter(developer_apps::Column::ClientId.eq(client_id))
        .filter(developer_apps::Column::Status.eq(Status::Approved.as_str()))
        .one(db)
        .await?)
}

fn registered_uris(app: &developer_apps::Model) -> Vec<String> {
    serde_json::from_value(app.redirect_uris.clone()).unwrap_or_default()
}

/// Exact string match (OAuth 2.1 §2.3.1), except that a loopback redirect may use any port
/// (RFC 8252 §7.3: a native app's local listener gets whatever port is free).
fn redirect_matches(registered: &[String], asked: &str) -> bool {
    if registered.iter().any(|r| r == asked) {
        return true;
    }
    let Ok(asked_url) = url::Url::parse(asked) else { return false };
    // Only URIs written exactly as parsed, so nothing the parser normalises can differ from what
    // the browser will be sent to.
    if asked_url.as_str() != asked
        || asked_url.scheme() != "http"
        || !is_loopback(&asked_url)
        || !asked_url.username().is_empty()
        || asked_url.password().is_some()
    {
        return false;
    }
    registered.iter().filter_map(|r| url::Url::parse(r).ok()).any(|r| {
        r.scheme() == "http"
            && r.host() == asked_url.host()
            && r.path() == asked_url.path()
            && r.query() == asked_url.query()
            && r.fragment().is_none()
            && asked_url.fragment().is_none()
    })
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

fn random(prefix: &str) -> AppResult<String> {
    Ok(format!("{prefix}{}", auth::new_token().map_err(AppError::internal)?))
}

/// The member approved: their grant to the app now covers these scopes too (recorded), and the app
/// gets a single-use code for them.
pub async fn approve(
    db: &DatabaseConnection,
    member: &Viewer,
    ip: Option<&str>,
    request: &Checked,
) -> AppResult<String> {
    if member.app.is_some() {
        return Err(AppError::Forbidden("an app cannot grant access to another app"));
    }
    let now = Utc::now();
    let code = random(CODE_PREFIX)?;
    let txn = db.begin().await?;
    oauth_grants::Entity::insert(oauth_grants::ActiveModel {
        user_id: Set(member.user_id),
        app_id: Set(request.app.id),
        scopes: Set(String::new()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::columns([oauth_grants::Column::UserId, oauth_grants::Column::AppId]).do_nothing().to_owned(),
    )
    .exec_without_returning(&txn)
    .await?;
    let grant = oauth_grants::Entity::find()
        .filter(oauth_grants::Column::UserId.eq(member.user_id))
        .filter(oauth_grants::Column::AppId.eq(request.app.id))
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::internal("grant missing after its upsert"))?;
    let widened = Scopes::parse_stored(&grant.scopes).union(request.scopes);
    oauth_grants::Entity::update_many()
        .col_expr(oauth_grants::Column::Scopes, Expr::value(widened.to_string()))
        .col_expr(oauth_grants::Column::UpdatedAt, Expr::value(now))
        .filter(oauth_grants::Column::Id.eq(grant.id))
        .exec(&txn)
        .await?;
    oauth_codes::Entity::insert(oauth_codes::ActiveModel {
        code_hash: Set(auth::hash_token(&code)),
        grant_id: Set(grant.id),
        redirect_uri: Set(request.redirect_named.then(|| request.redirect_uri.clone())),
        code_challenge: Set(request.code_challenge.clone()),
        scopes: Set(request.scopes.to_string()),
        expires_at: Set(now + CODE_TTL),
        used_at: Set(None),
        ..Default::default()
    })
    .exec_without_returning(&txn)
    .await?;
    let entry = audit::Entry::new(audit::Action::GrantApp, Some(member.user_id), app_target(&request.app))
        .because(Some(format!("scopes: {}", request.scopes)));
    audit::record(&txn, member, ip, entry).await?;
    txn.commit().await?;
    Ok(code)
}

fn app_target(app: &developer_apps::Model) -> String {
    format!("App:{}", app.client_id)
}

/// A token endpoint error (RFC 6749 §5.2).
#[derive(Debug, PartialEq, Eq)]
pub struct TokenError {
    pub error: &'static str,
    pub description: String,
}

impl TokenError {
    fn new(error: &'static str, description: impl Into<String>) -> TokenError {
        TokenError { error, description: description.into() }
    }

    fn grant(description: &str) -> TokenError {
        TokenError::new("invalid_grant", description)
    }
}

pub type TokenResult<T> = Result<Result<T, TokenError>, AppError>;

/// How a client proved who it is at the token or revocation endpoint.
pub struct ClientCredentials {
    pub client_id: String,
    pub secret: Option<String>,
}

/// The app behind the credentials: approved, and a confidential app with its secret, a public one
/// with none.
pub async fn authenticate(db: &impl ConnectionTrait, creds: &ClientCredentials) -> TokenResult<developer_apps::Model> {
    let invalid = || Ok(Err(TokenError::new("invalid_client", "client authentication failed")));
    if creds.client_id.is_empty() || creds.client_id.len() > 64 {
        return invalid();
    }
    let Some(app) = approved_app(db, &creds.client_id).await? else { return invalid() };
    let proven = match (&app.secret_hash, &creds.secret) {
        (Some(stored), Some(secret)) => {
            // Both sides are SHA-256 digests: comparing them leaks nothing about the secret.
            *stored == auth::hash_token(secret)
        }
        (None, None) => true,
        _ => false,
    };
    if !proven {
        return invalid();
    }
    Ok(Ok(app))
}

/// What the token endpoint hands out.
#[derive(Debug)]
pub struct Issued {
    pub access_token: String,
    /// Seconds the access token works (`OAUTH_ACCESS_TOKEN_TTL_SECS`).
    pub expires_in: i64,
    pub refresh_token: String,
    pub scopes: Scopes,
}

/// Exchanges a code (single use; PKCE; the same redirect URI) for tokens. A code presented twice
/// revokes the grant: one of the two presenters stole it (RFC 6749 §4.1.2, OAuth 2.1 §4.1.3).
pub async fn exchange_code(
    db: &DatabaseConnection,
    broker: &Broker,
    app: &developer_apps::Model,
    code: &str,
    redirect_uri: Option<&str>,
    verifier: &str,
    access_ttl: Duration,
) -> TokenResult<Issued> {
    let now = Utc::now();
    let found = oauth_codes::Entity::find()
        .filter(oauth_codes::Column::CodeHash.eq(auth::hash_token(code)))
        .find_also_related(oauth_grants::Entity)
        .one(db)
        .await?;
    let Some((code_row, Some(grant))) = found else {
        return Ok(Err(TokenError::grant("unknown authorization code")));
    };
    if grant.app_id != app.id {
        return Ok(Err(TokenError::grant("the code was issued to another client")));
    }
    if code_row.used_at.is_some() {
        revoke_grant(db, broker, &grant, app, "an authorization code was presented twice").await?;
        return Ok(Err(TokenError::grant("the code was already used; the grant is revoked")));
    }
    if code_row.expires_at <= now {
        return Ok(Err(TokenError::grant("the code expired")));
    }
    // The request must repeat the redirect URI the authorization request named; one that named none
    // (a single registered URI) may still be followed by a token request naming that URI, as many
    // client libraries always send it.
    let repeated = match (code_row.redirect_uri.as_deref(), redirect_uri) {
        (Some(named), given) => given == Some(named),
        (None, Some(given)) => registered_uris(app).iter().any(|r| r == given),
        (None, None) => true,
    };
    if !repeated {
        return Ok(Err(TokenError::grant("redirect_uri must repeat the authorization request's")));
    }
    if !pkce_matches(verifier, &code_row.code_challenge) {
        return Ok(Err(TokenError::grant("code_verifier does not match the code_challenge")));
    }
    let txn = db.begin().await?;
    let claimed = oauth_codes::Entity::update_many()
        .col_expr(oauth_codes::Column::UsedAt, Expr::value(now))
        .filter(oauth_codes::Column::Id.eq(code_row.id))
        .filter(oauth_codes::Column::UsedAt.is_null())
        .exec(&txn)
        .await?;
    if claimed.rows_affected == 0 {
        drop(txn);
        revoke_grant(db, broker, &grant, app, "an authorization code was presented twice").await?;
        return Ok(Err(TokenError::grant("the code was already used; the grant is revoked")));
    }
    let scopes = Scopes::parse_stored(&code_row.scopes);
    let issued = issue(&txn, grant.id, code_row.id, (scopes, access_ttl), scopes, now).await?;
    txn.commit().await?;
    Ok(Ok(issued))
}

/// RFC 7636 §4.6 with S256: BASE64URL(SHA-256(verifier)) == challenge; the verifier is 43 to 128
/// unreserved characters.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    well_formed && URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == challenge
}

/// A new access token with `scopes` for `access_ttl`, and a refresh token keeping `held` (RFC 6749
/// §6: a narrower refresh narrows the access token only), both of the chain `family`.
async fn issue(
    db: &impl ConnectionTrait,
    grant_id: i64,
    family: i64,
    (scopes, access_ttl): (Scopes, Duration),
    held: Scopes,
    now: DateTime<Utc>,
) -> AppResult<Issued> {
    let access_token = random(ACCESS_PREFIX)?;
    let refresh_token = random(REFRESH_PREFIX)?;
    let row = |token: &str, kind: &str, ttl: Duration, scopes: Scopes| oauth_tokens::ActiveModel {
        token_hash: Set(auth::hash_token(token)),
        grant_id: Set(grant_id),
        kind: Set(kind.into()),
        family: Set(family),
        scopes: Set(scopes.to_string()),
        created_at: Set(now),
        expires_at: Set(now + ttl),
        used_at: Set(None),
        ..Default::default()
    };
    oauth_tokens::Entity::insert_many([
        row(&access_token, ACCESS, access_ttl, scopes),
        row(&refresh_token, REFRESH, REFRESH_TTL, held),
    ])
    .exec_without_returning(db)
    .await?;
    Ok(Issued { access_token, expires_in: access_ttl.num_seconds(), refresh_token, scopes })
}

/// Rotates a refresh token: the presented one is spent, a new pair comes back. A spent one presented
/// again means two parties hold it, so the whole grant is revoked (OAuth 2.1 §4.3.1).
pub async fn refresh(
    db: &DatabaseConnection,
    broker: &Broker,
    app: &developer_apps::Model,
    token: &str,
    narrower: Option<&str>,
    access_ttl: Duration,
) -> TokenResult<Issued> {
    let now = Utc::now();
    let found = oauth_tokens::Entity::find()
        .filter(oauth_tokens::Column::TokenHash.eq(auth::hash_token(token)))
        .filter(oauth_tokens::Column::Kind.eq(REFRESH))
        .find_also_related(oauth_grants::Entity)
        .one(db)
        .await?;
    let Some((row, Some(grant))) = found else { return Ok(Err(TokenError::grant("unknown refresh token"))) };
    if grant.app_id != app.id {
        return Ok(Err(TokenError::grant("the refresh token was issued to another client")));
    }
    if row.used_at.is_some() {
        revoke_grant(db, broker, &grant, app, "a spent refresh token was presented again").await?;
        return Ok(Err(TokenError::grant("the refresh token was already used; the grant is revoked")));
    }
    if row.expires_at <= now {
        return Ok(Err(TokenError::grant("the refresh token expired")));
    }
    let held = Scopes::parse_stored(&row.scopes);
    let scopes = match narrower.map(Scopes::parse) {
        None => held,
        Some(Ok(asked)) if !asked.is_empty() && held.covers(asked) => asked,
        Some(_) => return Ok(Err(TokenError::new("invalid_scope", "scope must be within the original grant"))),
    };
    let txn = db.begin().await?;
    let claimed = oauth_tokens::Entity::update_many()
        .col_expr(oauth_tokens::Column::UsedAt, Expr::value(now))
        .filter(oauth_tokens::Column::Id.eq(row.id))
        .filter(oauth_tokens::Column::UsedAt.is_null())
        .exec(&txn)
        .await?;
    if claimed.rows_affected == 0 {
        drop(txn);
        revoke_grant(db, broker, &grant, app, "a spent refresh token was presented again").await?;
        return Ok(Err(TokenError::grant("the refresh token was already used; the grant is revoked")));
    }
    let issued = issue(&txn, grant.id, row.family, (scopes, access_ttl), held, now).await?;
    txn.commit().await?;
    Ok(Ok(issued))
}

/// RFC 7009: a refresh token ends its chain (itself, the refresh tokens it replaced and the access
/// tokens issued along it: the app signing out of one device), an access token ends itself. The
/// member's grant stays until they revoke it. Unknown tokens and other clients' tokens are ignored,
/// as the RFC asks.
pub async fn revoke_token(
    db: &DatabaseConnection,
    broker: &Broker,
    app: &developer_apps::Model,
    token: &str,
) -> AppResult<()> {
    let found = oauth_tokens::Entity::find()
        .filter(oauth_tokens::Column::TokenHash.eq(auth::hash_token(token)))
        .find_also_related(oauth_grants::Entity)
        .one(db)
        .await?;
    let Some((row, Some(grant))) = found else { return Ok(()) };
    if grant.app_id != app.id {
        return Ok(());
    }
    let delete = oauth_tokens::Entity::delete_many().filter(oauth_tokens::Column::GrantId.eq(grant.id));
    let delete = if row.kind == REFRESH {
        delete.filter(oauth_tokens::Column::Family.eq(row.family))
    } else {
        delete.filter(oauth_tokens::Column::Id.eq(row.id))
    };
    delete.exec(db).await?;
    broker.publish(Topic::User(grant.user_id), Event::SessionsRevoked).await;
    Ok(())
}

/// Ends a grant and everything issued under it, on the record, and tells the member's sockets.
async fn revoke_grant(
    db: &DatabaseConnection,
    broker: &Broker,
    grant: &oauth_grants::Model,
    app: &developer_apps::Model,
    why: &str,
) -> AppResult<()> {
    let txn = db.begin().await?;
    let gone = oauth_grants::Entity::delete_by_id(grant.id).exec(&txn).await?;
    if gone.rows_affected > 0 {
        // The member is the subject; the actor is recorded as the member too (there is no staff
        // actor: the gateway acted on the member's behalf).
        let member = Viewer { user_id: grant.user_id, role: Role::User, session_id: 0, app: None };
        let entry = audit::Entry::new(audit::Action::RevokeApp, Some(grant.user_id), app_target(app))
            .because(Some(why.to_string()));
        audit::record(&txn, &member, None, entry).await?;
    }
    txn.commit().await?;
    broker.publish(Topic::User(grant.user_id), Event::SessionsRevoked).await;
    Ok(())
}

/// The member withdraws an app's access: its tokens stop working and its sockets close, on every
/// instance. NOT_FOUND when the member never authorized it.
pub async fn revoke_for_member(
    db: &DatabaseConnection,
    broker: &Broker,
    member: &Viewer,
    ip: Option<&str>,
    client_id: &str,
) -> AppResult<()> {
    let app = developer_apps::Entity::find().filter(developer_apps::Column::ClientId.eq(client_id)).one(db).await?;
    let Some(app) = app else { return Err(AppError::NotFound("authorized app")) };
    let txn = db.begin().await?;
    let gone = oauth_grants::Entity::delete_many()
        .filter(oauth_grants::Column::UserId.eq(member.user_id))
        .filter(oauth_grants::Column::AppId.eq(app.id))
        .exec(&txn)
        .await?;
    if gone.rows_affected == 0 {
        return Err(AppError::NotFound("authorized app"));
    }
    let entry = audit::Entry::new(audit::Action::RevokeApp, Some(member.user_id), app_target(&app))
        .because(Some("the member revoked the app's access".into()));
    audit::record(&txn, member, ip, entry).await?;
    txn.commit().await?;
    broker.publish(Topic::User(member.user_id), Event::SessionsRevoked).await;
    Ok(())
}

/// A grant as the member sees it.
#[derive(Debug, Clone)]
pub struct Authorized {
    pub grant: oauth_grants::Model,
    pub app: developer_apps::Model,
}

/// The apps a member authorized, most recent first.
pub async fn authorized(db: &impl ConnectionTrait, user_id: i64) -> AppResult<Vec<Authorized>> {
    let rows = oauth_grants::Entity::find()
        .filter(oauth_grants::Column::UserId.eq(user_id))
        .find_also_related(developer_apps::Entity)
        .order_by_desc(oauth_grants::Column::UpdatedAt)
        .all(db)
        .await?;
    Ok(rows.into_iter().filter_map(|(grant, app)| Some(Authorized { grant, app: app? })).collect())
}

/// Ends every grant of the member, each on the record (a password reset: whoever held the account
/// may have authorized an app of theirs). In the caller's transaction; the caller tells the sockets.
pub async fn revoke_all(db: &impl ConnectionTrait, user_id: i64, why: &str) -> AppResult<()> {
    let grants = authorized(db, user_id).await?;
    if grants.is_empty() {
        return Ok(());
    }
    oauth_grants::Entity::delete_many().filter(oauth_grants::Column::UserId.eq(user_id)).exec(db).await?;
    let member = Viewer { user_id, role: Role::User, session_id: 0, app: None };
    let entries = grants
        .iter()
        .map(|g| {
            audit::Entry::new(audit::Action::RevokeApp, Some(user_id), app_target(&g.app)).because(Some(why.into()))
        })
        .collect();
    audit::record_many(db, &member, None, entries).await
}

/// The member's grants for their data export: which app, what it may do, since when (never a
/// token or code hash).
pub async fn export(db: &impl ConnectionTrait, user_id: i64) -> AppResult<serde_json::Value> {
    let rows = authorized(db, user_id).await?;
    Ok(serde_json::Value::Array(
        rows.into_iter()
            .map(|a| {
                serde_json::json!({
                    "clientId": a.app.client_id,
                    "name": a.app.name,
                    "homepageUrl": a.app.homepage_url,
                    "scopes": a.grant.scopes,
                    "grantedAt": a.grant.created_at,
                    "updatedAt": a.grant.updated_at,
                })
            })
            .collect(),
    ))
}

/// Erasure: the member's grants, and with them every code and token (foreign keys).
pub async fn erase_member(db: &impl ConnectionTrait, user_id: i64) -> AppResult<()> {
    oauth_grants::Entity::delete_many().filter(oauth_grants::Column::UserId.eq(user_id)).exec(db).await?;
    Ok(())
}

/// What the viewer lookup reads: grant, scopes, expiry, member, app, client id, role.
type TokenRow = (i64, String, DateTime<Utc>, i64, i64, String, String);

/// The viewer an app's access token acts as: the member, with the grant's app and the token's
/// scopes, while the token is live, the app approved and the account neither suspended nor erased.
/// One query, like a session's.
pub async fn viewer_for_token(db: &impl ConnectionTrait, token: &str) -> AppResult<Option<Viewer>> {
    let now = Utc::now();
    let row: Option<TokenRow> = oauth_tokens::Entity::find()
        .select_only()
        .column(oauth_tokens::Column::GrantId)
        .column(oauth_tokens::Column::Scopes)
        .column(oauth_tokens::Column::ExpiresAt)
        .column(oauth_grants::Column::UserId)
        .column(oauth_grants::Column::AppId)
        .column(developer_apps::Column::ClientId)
        .column(users::Column::Role)
        .join(JoinType::InnerJoin, oauth_tokens::Relation::Grant.def())
        .join(JoinType::InnerJoin, oauth_grants::Relation::User.def())
        .join(JoinType::InnerJoin, oauth_grants::Relation::App.def())
        .filter(oauth_tokens::Column::TokenHash.eq(auth::hash_token(token)))
        .filter(oauth_tokens::Column::Kind.eq(ACCESS))
        .filter(oauth_tokens::Column::ExpiresAt.gt(now))
        .filter(developer_apps::Column::Status.eq(Status::Approved.as_str()))
        .filter(users::Column::DeletedAt.is_null())
        .filter(crate::services::accounts::not_suspended(now))
        .into_tuple()
        .one(db)
        .await?;
    let Some((grant_id, scopes, expires_at, user_id, app_id, client_id, role)) = row else { return Ok(None) };
    let scopes = Scopes::parse_stored(&scopes);
    Ok(Some(Viewer {
        user_id,
        role: Role::parse(&role)?,
        session_id: 0,
        app: Some(AppAccess { grant_id, app_id, client_id: auth::ClientId::new(&client_id), scopes, expires_at }),
    }))
}
