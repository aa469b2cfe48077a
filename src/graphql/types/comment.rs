use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use entity::comments;

use super::post::empty;
use super::{Counted, Post, User, count, counted, load_one};
use crate::authz::{self, Action};
use crate::graphql::ids::{self, Kind};
use crate::graphql::loaders::{ChildrenKey, EdgeKey};
use crate::graphql::{loaders, relay_page_args, viewer, web_url};
use crate::services::comments::{ANCESTORS_MAX, Parent};
use crate::services::page::RawPage;
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

    /// Replies to this comment, oldest first; `last: n` gives the latest n. `totalCount` is
    /// `replyCount` (stored, exact): the direct replies this list pages through, deleted ones
    /// included.
    #[graphql(complexity = "crate::graphql::types::list_cost(first.or(last), child_complexity)")]
    async fn replies(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Counted<Comment>> {
        let raw = RawPage { first, after: after.as_deref(), last, before: before.as_deref() };
        let page = relay_page_args(ctx, raw)?;
        let key = ChildrenKey { parent: Parent::Comment(self.0.id), page };
        let replies = load_one(&loaders(ctx)?.children, key).await?.unwrap_or_else(|| empty(&page));
        crate::graphql::prefetch::comments(ctx, &replies).await?;
        Ok(counted(replies, Comment, Some(self.0.reply_count)))
    }

    /// The comments above this one, from its top-level comment down to its parent; empty for a
    /// top-level comment. A linked reply's path: render these, then the reply. At most 64
    /// (`ANCESTORS_MAX`, a server bound; replies may nest deeper): the nearest 64 then.
    #[graphql(complexity = "child_complexity.saturating_mul(ANCESTORS_MAX as usize)")]
    async fn ancestors(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Comment>> {
        if self.0.parent_id.is_none() {
            return Ok(Vec::new());
        }
        let chain = load_one(&loaders(ctx)?.chains, self.0.id).await?.unwrap_or_default();
        // The chain runs from this comment upwards.
        Ok(chain.into_iter().skip(1).rev().map(Comment).collect())
    }
}
