use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use entity::boards;

use super::enums::PostOrder;
use super::{Counted, Post, count, counted, load_one};
use crate::graphql::ids::{self, Kind};
use crate::graphql::loaders::EdgeKey;
use crate::graphql::{loaders, page_args, state, viewer, web_url};
use crate::services::posts as post_service;
use crate::services::social::Edge;

/// A topic area ("外貿實戰", "Logistics & FOB") that posts belong to.
pub struct Board(pub boards::Model);

#[Object]
impl Board {
    pub async fn id(&self) -> ID {
        ids::encode(Kind::Board, self.0.id)
    }

    /// The board's page on the web (`PUBLIC_WEB_URL/boards/<slug>`).
    async fn url(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        web_url(ctx, &format!("/boards/{}", self.0.slug))
    }

    /// Short name used in URLs.
    async fn slug(&self) -> &str {
        &self.0.slug
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn description(&self) -> &str {
        &self.0.description
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn follower_count(&self) -> i32 {
        count(self.0.follower_count)
    }

    async fn post_count(&self) -> i32 {
        count(self.0.post_count)
    }

    /// Whether the signed-in viewer follows this board (false when signed out).
    async fn viewer_is_following(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let Some(v) = viewer(ctx) else {
            return Ok(false);
        };
        let key = EdgeKey { edge: Edge::BoardFollow, actor: v.user_id, target: self.0.id };
        Ok(load_one(&loaders(ctx)?.edges, key).await?.unwrap_or(false))
    }

    /// The board's posts. `totalCount` is `postCount` (stored).
    #[graphql(complexity = "crate::graphql::types::list_cost(first, child_complexity)")]
    async fn posts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] order_by: PostOrder,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Counted<Post>> {
        let page = page_args(ctx, first, after.as_deref())?;
        let filter = post_service::Filter { board_id: Some(self.0.id), ..Default::default() };
        let posts = crate::graphql::loaders(ctx)?.post_list(&state(ctx)?.db, filter, order_by.into(), &page).await?;
        crate::graphql::prefetch::posts(ctx, &posts).await?;
        Ok(counted(posts, Post, Some(self.0.post_count)))
    }
}
