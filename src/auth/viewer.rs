//! The one path from a request to the [`Viewer`] it acts as, for every transport: GraphQL over HTTP
//! (JSON and multipart), a WebSocket's `connection_init` and each operation after it, and the media
//! routes. Each of them asks here, so "who is asking" has one answer:
//! - the token comes from the bearer header, or the session cookie when the request proves it is
//!   same-origin ([`super::token_for_request`]), or a WebSocket `connection_init` payload;
//! - the session must be live, and the account neither suspended nor erased;
//! - the role is read with the session, in the same single query keyed by the token's hash, so a role
//!   change, a suspension or an erasure applies to the next request or socket operation everywhere.

use chrono::{Duration, Utc};
use entity::{sessions, users};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, JoinType, QueryFilter, QuerySelect};
use serde_json::{Map, Value};

use super::{Role, Viewer, hash_token, token_for_request};
use crate::config::Config;
use crate::error::{AppError, AppResult};

/// How stale `last_seen_at` may get before a request refreshes it; bounds writes to one per session
/// per interval instead of one per request.
const LAST_SEEN_GRANULARITY: Duration = Duration::minutes(5);

/// The token a request carries, as this gateway's configuration accepts it.
pub fn request_token(config: &Config, headers: &http::HeaderMap) -> Option<String> {
    token_for_request(headers, &config.session_cookie_name, super::Origins::of(config))
}

/// The viewer of an HTTP request (GraphQL, multipart, media): `None` when it carries no token or one
/// that no longer opens a live session.
pub async fn for_request(
    db: &impl ConnectionTrait,
    config: &Config,
    headers: &http::HeaderMap,
) -> AppResult<Option<Viewer>> {
    match request_token(config, headers) {
        Some(token) => for_token(db, &token).await,
        None => Ok(None),
    }
}

/// Like [`for_request`], for routes that need a member: UNAUTHENTICATED without one.
pub async fn require_for_request(
    db: &impl ConnectionTrait,
    config: &Config,
    headers: &http::HeaderMap,
) -> AppResult<Viewer> {
    for_request(db, config, headers).await?.ok_or(AppError::Unauthenticated)
}

/// The token in a WebSocket `connection_init` payload: `authToken` (our clients), `token`, or an
/// `Authorization`/`authorization` entry with or without `Bearer ` (Apollo conventions).
/// `Some(Err(()))` when a token entry is present but unusable (the socket is refused).
pub fn payload_token(payload: &Map<String, Value>) -> Option<Result<String, ()>> {
    for key in ["authToken", "token", "Authorization", "authorization"] {
        if let Some(value) = payload.get(key) {
            return Some(match value.as_str() {
                Some(s) => {
                    let s = s.trim();
                    let s = s.strip_prefix("Bearer ").or_else(|| s.strip_prefix("bearer ")).unwrap_or(s).trim();
                    if s.is_empty() { Err(()) } else { Ok(s.to_string()) }
                }
                None => Err(()),
            });
        }
    }
    None
}

/// Resolves a presented token to the viewer it authenticates, if the session is live and the account
/// is neither suspended nor erased. One query; a stored role this build does not know is an error
/// (INTERNAL, logged), never a silent guess.
pub async fn for_token(db: &impl ConnectionTrait, token: &str) -> AppResult<Option<Viewer>> {
    if token.starts_with(crate::services::oauth::ACCESS_PREFIX) {
        return crate::services::oauth::viewer_for_token(db, token).await;
    }
    let now = Utc::now();
    let row: Option<(i64, i64, String, chrono::DateTime<Utc>)> = sessions::Entity::find()
        .select_only()
        .column(sessions::Column::Id)
        .column(sessions::Column::UserId)
        .column(users::Column::Role)
        .column(sessions::Column::LastSeenAt)
        .join(JoinType::InnerJoin, session_user())
        .filter(sessions::Column::TokenHash.eq(hash_token(token)))
        .filter(sessions::Column::ExpiresAt.gt(now))
        .filter(users::Column::DeletedAt.is_null())
        .filter(crate::services::accounts::not_suspended(now))
        .into_tuple()
        .one(db)
        .await?;
    let Some((session_id, user_id, role, last_seen)) = row else {
        return Ok(None);
    };
    if now - last_seen > LAST_SEEN_GRANULARITY {
        sessions::Entity::update_many()
            .col_expr(sessions::Column::LastSeenAt, Expr::value(now))
            .filter(sessions::Column::Id.eq(session_id))
            .exec(db)
            .await?;
    }
    Ok(Some(Viewer { user_id, role: Role::parse(&role)?, session_id, app: None }))
}

fn session_user() -> sea_orm::RelationDef {
    sessions::Entity::belongs_to(users::Entity).from(sessions::Column::UserId).to(users::Column::Id).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn init_payload_tokens() {
        let m = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(payload_token(&m(json!({"authToken": "a"}))), Some(Ok("a".into())));
        assert_eq!(payload_token(&m(json!({"Authorization": "Bearer b"}))), Some(Ok("b".into())));
        assert_eq!(payload_token(&m(json!({"authToken": 5}))), Some(Err(())));
        assert_eq!(payload_token(&m(json!({}))), None);
    }
}
