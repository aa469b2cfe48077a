use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use entity::{comments, posts};

use super::{Board, Comment, Counted, User, count, counted, load_one};
use crate::authz::{self, Action};
use crate::error::AppError;
use crate::graphql::ids::{self, Kind};
use crate::graphql::loaders::{ChildrenKey, EdgeKey};
use crate::graphql::{loaders, relay_page_args, state, viewer, web_url};
use crate::services::comments::{self as comment_service, Parent};
use crate::services::page::{Cursor, Page, PageArgs, RawPage};
use crate::services::social::Edge;

/// A topic post on a board.
pub struct Post(pub posts::Model);

impl Post {
    async fn viewer_has(&self, ctx: &Context<'_>, edge: Edge) -> crate::error::AppResult<bool> {
        let Some(v) = viewer(ctx) else {
            return Ok(false);
        };
        let key = EdgeKey { edge, actor: v.user_id, target: self.0.id };
        Ok(load_one(&loaders(ctx)?.edges, key).await?.unwrap_or(false))
    }
}

#[Object]
impl Post {
    pub async fn id(&self) -> ID {
        ids::encode(Kind::Post, self.0.id)
    }

    /// The post's page on the web (`PUBLIC_WEB_URL/posts/<id>`), for sharing.
    async fn url(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        web_url(ctx, &format!("/posts/{}", ids::encode(Kind::Post, self.0.id).as_str()))
    }

    /// When the author last edited it; null if never.
    async fn edited_at(&self) -> Option<DateTime<Utc>> {
        (self.0.updated_at > self.0.created_at).then_some(self.0.updated_at)
    }

    async fn title(&self) -> &str {
        &self.0.title
    }

    async fn body(&self) -> &str {
        &self.0.body
    }

    /// The start of the body for lists and previews: whitespace runs folded to one space, at most
    /// `length` characters (1 to 500), ending in "…" when cut. A feed fetches this, not bodies of up
    /// to 20,000 characters.
    async fn excerpt(&self, #[graphql(default = 140)] length: i32) -> async_graphql::Result<String> {
        let length = usize::try_from(length)
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| crate::error::AppError::bad_input("length", "between 1 and 500"))?;
        Ok(excerpt(&self.0.body, length))
    }

    /// Image URLs given as text when the post was written (the old way to show pictures).
    #[graphql(deprecation = "Use `media`: uploads with their size, thumbnail and absolute URL.")]
    async fn image_urls(&self) -> Vec<String> {
        serde_json::from_value(self.0.image_urls.clone()).unwrap_or_default()
    }

    /// Images and videos uploaded with the post, in display order.
    async fn media(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<super::trust::Media>> {
        let list = load_one(&loaders(ctx)?.post_media, self.0.id).await?.unwrap_or_default();
        Ok(list.into_iter().map(super::trust::Media).collect())
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    /// The author; null if the account was erased.
    async fn author(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        Ok(load_one(&loaders(ctx)?.users, self.0.author_id).await?.map(User))
    }

    async fn board(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Board>> {
        Ok(load_one(&loaders(ctx)?.boards, self.0.board_id).await?.map(Board))
    }

    async fn like_count(&self) -> i32 {
        count(self.0.like_count)
    }

    /// Comments and replies together, deleted ones not counted.
    async fn comment_count(&self) -> i32 {
        count(self.0.comment_count)
    }

    async fn favorite_count(&self) -> i32 {
        count(self.0.favorite_count)
    }

    /// Times the post was opened (`recordPostView`), by anyone.
    async fn view_count(&self) -> i32 {
        count(self.0.view_count)
    }

    /// Whether the signed-in viewer likes this post (false when signed out).
    async fn viewer_has_liked(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(self.viewer_has(ctx, Edge::PostLike).await?)
    }

    /// Whether the signed-in viewer saved this post (false when signed out).
    async fn viewer_has_favorited(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(self.viewer_has(ctx, Edge::Favorite).await?)
    }

    /// Whether the signed-in viewer may edit this post (only its author).
    async fn viewer_can_edit(&self, ctx: &Context<'_>) -> bool {
        authz::can(viewer(ctx).as_ref(), Action::EditPost(&self.0))
    }

    /// Whether the signed-in viewer may delete this post (its author or a moderator).
    async fn viewer_can_delete(&self, ctx: &Context<'_>) -> bool {
        authz::can(viewer(ctx).as_ref(), Action::DeletePost(&self.0))
    }

    /// Top-level comments, oldest first; each has its `replies`. `last: n` gives the latest n, and
    /// `last`/`before` page back towards the first comment.
    ///
    /// `around: <comment id>` opens the page that holds a linked comment (a notification's, say):
    /// up to half of `first` comments before it, the rest from it on, with cursors to page on both
    /// ways. For a reply, the page holds its top-level comment; `ancestors` on the reply
    /// (`node(id:)`) gives the path down to it. Only `first` goes with `around`. An id that is not
    /// a comment on this post is BAD_USER_INPUT on `around`.
    ///
    /// `totalCount` is the post's `commentCount` (stored, exact): comments and replies together,
    /// deleted ones not counted. It is the number to show next to the post, not the number of
    /// top-level edges this list pages through.
    #[graphql(complexity = "crate::graphql::types::list_cost(first.or(last), child_complexity)")]
    async fn comments(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        around: Option<ID>,
    ) -> async_graphql::Result<Counted<Comment>> {
        let raw = RawPage { first, after: after.as_deref(), last, before: before.as_deref() };
        let page = relay_page_args(ctx, raw)?;
        let comments = match around {
            Some(linked) => {
                if raw.after.is_some() || raw.before.is_some() || raw.last.is_some() {
                    return Err(AppError::bad_input("around", "takes only `first` (the page size)").into());
                }
                if self.0.deleted_at.is_some() {
                    return Err(AppError::NotFound("post").into());
                }
                let linked = ids::decode(Kind::Comment, &linked, "around")?;
                let chain = load_one(&loaders(ctx)?.chains, linked).await?.unwrap_or_default();
                comment_service::around(&state(ctx)?.db, self.0.id, &chain, page.size).await?
            }
            None => {
                let key = ChildrenKey { parent: Parent::Post(self.0.id), page };
                load_one(&loaders(ctx)?.children, key).await?.unwrap_or_else(|| empty(&page))
            }
        };
        crate::graphql::prefetch::comments(ctx, &comments).await?;
        Ok(counted(comments, Comment, Some(self.0.comment_count)))
    }
}

/// No children: a parent the children loader did not answer for.
pub(crate) fn empty(page: &PageArgs) -> Page<comments::Model> {
    Page::from_rows(page, Vec::new(), |c: &comments::Model| Cursor::Id(c.id))
}

/// `body` folded to single spaces and cut to `length` characters, with "…" when cut.
fn excerpt(body: &str, length: usize) -> String {
    let mut words = body.split_whitespace();
    let mut out = String::new();
    let mut count = 0;
    let mut cut = false;
    'words: for (i, word) in words.by_ref().enumerate() {
        if i > 0 {
            if count == length {
                cut = true;
                break;
            }
            out.push(' ');
            count += 1;
        }
        for c in word.chars() {
            if count == length {
                cut = true;
                break 'words;
            }
            out.push(c);
            count += 1;
        }
    }
    if cut {
        let kept = out.trim_end().len();
        out.truncate(kept);
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::excerpt;

    #[test]
    fn excerpts_fold_whitespace_and_cut_on_characters() {
        assert_eq!(excerpt("  FOB  price\n\nfor 500 units ", 140), "FOB price for 500 units");
        assert_eq!(excerpt("FOB price for 500 units", 9), "FOB price…");
        assert_eq!(excerpt("FOB price for", 10), "FOB price…", "no space before the ellipsis");
        assert_eq!(excerpt("广交会展位预订", 3), "广交会…");
        assert_eq!(excerpt("广交会", 3), "广交会", "exactly the length is not cut");
        assert_eq!(excerpt("", 5), "");
    }
}
