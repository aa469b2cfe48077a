use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use entity::sessions;

use crate::graphql::ids::{self, Kind};
use crate::graphql::viewer;

/// A signed-in device: where and when the account was used. Visible to its owner only.
pub struct Session(pub sessions::Model);

#[Object]
impl Session {
    pub async fn id(&self) -> ID {
        ids::encode(Kind::Session, self.0.id)
    }

    /// Whether this is the session making the request.
    async fn current(&self, ctx: &Context<'_>) -> bool {
        viewer(ctx).is_some_and(|v| v.session_id == self.0.id)
    }

    async fn user_agent(&self) -> Option<&str> {
        self.0.user_agent.as_deref()
    }

    /// The IP address the session signed in from.
    async fn ip(&self) -> Option<&str> {
        self.0.ip.as_deref()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn last_seen_at(&self) -> DateTime<Utc> {
        self.0.last_seen_at
    }

    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }
}
