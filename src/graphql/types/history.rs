use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{browse_history, search_history};

use super::{Post, load_one};
use crate::graphql::ids::{self, Kind};
use crate::graphql::loaders;

/// A post the member opened.
pub struct BrowseEntry(pub browse_history::Model);

#[Object]
impl BrowseEntry {
    async fn id(&self) -> ID {
        ids::encode(Kind::BrowseEntry, self.0.id)
    }

    /// Null if the post was deleted since.
    async fn post(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Post>> {
        Ok(load_one(&loaders(ctx)?.posts, self.0.post_id).await?.filter(|p| p.deleted_at.is_none()).map(Post))
    }

    async fn viewed_at(&self) -> DateTime<Utc> {
        self.0.viewed_at
    }

    /// How long the post stayed open, as the client reported it.
    async fn duration_ms(&self) -> Option<f64> {
        self.0.duration_ms.map(|d| d as f64)
    }
}

/// A search the member ran.
pub struct SearchEntry(pub search_history::Model);

#[Object]
impl SearchEntry {
    async fn id(&self) -> ID {
        ids::encode(Kind::SearchEntry, self.0.id)
    }

    async fn query(&self) -> &str {
        &self.0.query
    }

    async fn searched_at(&self) -> DateTime<Utc> {
        self.0.searched_at
    }
}

/// The member's privacy switches.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Settings {
    #[graphql(skip)]
    pub id: ID,
    /// Whether the recommended feed uses what the member reads, likes, comments and searches. Off:
    /// everyone gets the same feed.
    pub personalized_recommendations: bool,
    /// Whether browse and search history are recorded at all.
    pub record_history: bool,
}

#[async_graphql::ComplexObject]
impl Settings {
    /// One per member: a normalised client cache updates it in place.
    pub async fn id(&self) -> ID {
        self.id.clone()
    }
}

impl Settings {
    pub fn of(user_id: i64, s: crate::services::history::Settings) -> Self {
        Settings {
            id: ids::encode(Kind::Settings, user_id),
            personalized_recommendations: s.personalized_recommendations,
            record_history: s.record_history,
        }
    }
}
