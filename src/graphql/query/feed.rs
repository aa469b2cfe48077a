//! The recommended feed.

use async_graphql::connection::Connection;
use async_graphql::{Context, Object, SimpleObject};

use crate::graphql::types::{Post, connection, list_cost};
use crate::graphql::{page_args, state, viewer};
use crate::services::recommend;

/// A post recommended to the viewer, and why.
#[derive(SimpleObject)]
pub struct FeedItem {
    post: Post,
    /// A short explanation, e.g. "because you follow 外贸实战".
    reason: String,
}

#[derive(Default)]
pub struct FeedQuery;

#[Object]
impl FeedQuery {
    /// Posts picked for the signed-in viewer from the authors and boards they follow, read, like and
    /// comment on, and from their searches; hot posts for a new member, for a signed-out visitor, or
    /// when personalised recommendations are switched off.
    #[graphql(complexity = "list_cost(first, child_complexity)")]
    async fn recommended_feed(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, FeedItem>> {
        let page = page_args(ctx, first, after.as_deref())?;
        let items = recommend::feed(&state(ctx)?.db, viewer(ctx).as_ref(), &page).await?;
        let models: Vec<entity::posts::Model> = items.items.iter().map(|(_, (p, _))| p.clone()).collect();
        crate::graphql::prefetch::posts_under(ctx, "post", &models).await?;
        Ok(connection(items, |(p, reason)| FeedItem { post: Post(p), reason: reason.text() }))
    }
}
