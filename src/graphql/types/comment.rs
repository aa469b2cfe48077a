use async_graphql::connection::Connection;
use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use entity::comments;

use super::post::empty;
use super::{Post, User, connection, count, load_one};
use crate::authz::{self, Action};
use crate::graphql::ids::{self, Kind};
use crate::graphql::loaders::{ChildrenKey, EdgeKey};
use crate::graphql::{loaders, page_args, viewer, web_url};
use crate::services::comments::Parent;
use crate::services::social::Edge;

/// A comment on a post, or a reply to another comment. A deleted comment keeps its place in the
/// thread with no body and no author.
pub struct Comment(pub comments::Model);

impl Comment {
    fn deleted(&self) -> bool {
        self.0.deleted_at.is_some()
    }
}

#[Object]
impl Comment {
    pub async fn id(&self) -> ID {
        ids::encode(Kind::Comment, self.0.id)
    }

    /// The comment in its post's page (`PUBLIC_WEB_URL/posts/<post id>#comment-<id>`).
    async fn url(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        let post = ids::encode(Kind::Post, self.0.post_id);
        let comment = ids::encode(Kind::Comment, self.0.id);
        web_url(ctx, &format!("/posts/{}#comment-{}", post.as_str(), comment.as_str()))
    }

    /// The text; null once deleted.
    async fn body(&self) -> Option<&str> {
        (!self.deleted()).then_some(self.0.body.as_str())
    }

    async fn is_deleted(&self) -> bool {
        self.deleted()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// The author; null once the comment is deleted or the account erased.
    async fn author(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        if self.deleted() {
            return Ok(None);
        }
        Ok(load_one(&loaders(ctx)?.users, self.0.author_id).await?.map(User))
    }

    /// The post; null if it was deleted.
    async fn post(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Post>> {
        let post = load_one(&loaders(ctx)?.posts, self.0.post_id).await?;
        Ok(post.filter(|p| p.deleted_at.is_none()).map(Post))
    }

    /// The comment this one replies to; null for a top-level comment.
    async fn parent(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Comment>> {
        let Some(parent) = self.0.parent_id else {
            return Ok(None);
        };
        Ok(load_one(&loaders(ctx)?.comments, parent).await?.map(Comment))
    }

    async fn like_count(&self) -> i32 {
        count(self.0.like_count)
    }

    /// Direct replies, deleted ones included (they hold the thread's shape).
    async fn reply_count(&self) -> i32 {
        count(self.0.reply_count)
    }

    async fn viewer_has_liked(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let Some(v) = viewer(ctx) else {
            return Ok(false);
        };
        let key = EdgeKey { edge: Edge::CommentLike, actor: v.user_id, target: self.0.id };
        Ok(load_one(&loaders(ctx)?.edges, key).await?.unwrap_or(false))
    }

    /// Whether the signed-in viewer may delete this comment (its author or a moderator).
    async fn viewer_can_delete(&self, ctx: &Context<'_>) -> bool {
        !self.deleted() && authz::can(viewer(ctx).as_ref(), Action::DeleteComment(&self.0))
    }

    /// Replies to this comment, oldest first.
    #[graphql(complexity = "crate::graphql::types::list_cost(first, child_complexity)")]
    async fn replies(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Comment>> {
        let page = page_args(ctx, first, after.as_deref())?;
        let key = ChildrenKey { parent: Parent::Comment(self.0.id), first: page.first, after: page.after_id() };
        let replies = load_one(&loaders(ctx)?.children, key).await?.unwrap_or_else(|| empty(page.after.is_some()));
        crate::graphql::prefetch::comments(ctx, &replies).await?;
        Ok(connection(replies, Comment))
    }
}
