use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

use crate::graphql::ids::{self, Kind};
use crate::graphql::types::{Board, Comment, NewEdge, Post, User, edge, load_one};
use crate::graphql::{loaders, require_viewer, staff_note, state};
use crate::services::comments::{self as comment_service, NewComment};
use crate::services::page::Cursor;
use crate::services::posts::{self as post_service, NewPost, PostPatch};

#[derive(InputObject)]
pub struct CreatePostInput {
    board_id: ID,
    /// 1 to 120 characters, one line.
    title: String,
    /// 1 to 20,000 characters.
    body: String,
    /// Up to 9 http(s) image URLs.
    #[graphql(
        default,
        deprecation = "Upload the pictures with `uploadMedia` and pass `mediaIds`: they are checked, sized, thumbnailed and served by the gateway."
    )]
    image_urls: Vec<String>,
    /// Up to 9 of the viewer's uploads (`uploadMedia` with POST_IMAGE or VIDEO; `Media.id`), in
    /// display order.
    #[graphql(default)]
    media_ids: Vec<ID>,
}

#[derive(SimpleObject)]
pub struct CreatePostPayload {
    post: Post,
    /// The new post as an edge of a newest-first post list (`posts`, `Board.posts`, `User.posts`).
    post_edge: NewEdge<Post>,
}

#[derive(InputObject)]
pub struct UpdatePostInput {
    post_id: ID,
    title: Option<String>,
    body: Option<String>,
    #[graphql(deprecation = "Use `mediaIds`: uploads the gateway checks, sizes, thumbnails and serves.")]
    image_urls: Option<Vec<String>>,
    /// The post's media from now on, in display order: null leaves them as they are; a list (empty
    /// for none) replaces them, with the rules of `createPost(mediaIds)` (the viewer's own uploads,
    /// POST_IMAGE or VIDEO, at most 9, none twice; uploads already on this post may be kept or
    /// reordered). Files taken off the post are deleted.
    media_ids: Option<Vec<ID>>,
}

#[derive(SimpleObject)]
pub struct UpdatePostPayload {
    post: Post,
}

#[derive(InputObject)]
pub struct DeletePostInput {
    post_id: ID,
    /// Required when a moderator removes someone else's post: why, for the staff audit log (1 to
    /// 500 characters).
    reason: Option<String>,
}

#[derive(SimpleObject)]
pub struct DeletePostPayload {
    deleted_post_id: ID,
    /// The post's board, with its `postCount` after the deletion.
    board: Option<Board>,
    /// The post's author, with their `postCount` after the deletion.
    author: Option<User>,
}

#[derive(InputObject)]
pub struct CreateCommentInput {
    post_id: ID,
    /// The comment being replied to, if this is a reply.
    parent_id: Option<ID>,
    /// 1 to 5,000 characters.
    body: String,
}

#[derive(SimpleObject)]
pub struct CreateCommentPayload {
    comment: Comment,
    /// The new comment as an edge of `Post.comments` (or of its parent's `replies`).
    comment_edge: NewEdge<Comment>,
}

#[derive(InputObject)]
pub struct DeleteCommentInput {
    comment_id: ID,
    /// Required when a moderator removes someone else's comment: why, for the staff audit log (1 to
    /// 500 characters).
    reason: Option<String>,
}

#[derive(SimpleObject)]
pub struct DeleteCommentPayload {
    /// The comment as it now shows: deleted, with no body.
    comment: Comment,
}

/// The uploads of a `mediaIds` input, as stored keys.
fn media_keys(ids: &[ID]) -> crate::error::AppResult<Vec<String>> {
    ids.iter().map(|id| ids::media_key(id, "input.mediaIds")).collect()
}

#[derive(Default)]
pub struct PostMutation;

#[Object]
impl PostMutation {
    async fn create_post(&self, ctx: &Context<'_>, input: CreatePostInput) -> async_graphql::Result<CreatePostPayload> {
        let viewer = require_viewer(ctx)?;
        let new = NewPost {
            board_id: ids::decode(Kind::Board, &input.board_id, "input.boardId")?,
            title: input.title,
            body: input.body,
            image_urls: input.image_urls,
            media_ids: media_keys(&input.media_ids)?,
        };
        let post = post_service::create(&state(ctx)?.db, &viewer, new).await?;
        Ok(CreatePostPayload { post_edge: edge(Cursor::Id(post.id), Post(post.clone())), post: Post(post) })
    }

    /// Edits a post. Only its author may.
    async fn update_post(&self, ctx: &Context<'_>, input: UpdatePostInput) -> async_graphql::Result<UpdatePostPayload> {
        let viewer = require_viewer(ctx)?;
        let id = ids::decode(Kind::Post, &input.post_id, "input.postId")?;
        let media_ids = input.media_ids.as_deref().map(media_keys).transpose()?;
        let patch = PostPatch { title: input.title, body: input.body, image_urls: input.image_urls, media_ids };
        let st = state(ctx)?;
        let post = post_service::update(&st.db, &st.broker, &st.media, &viewer, id, patch).await?;
        // The post's media were read from the database before this edit if an earlier field asked.
        loaders(ctx)?.clear();
        Ok(UpdatePostPayload { post: Post(post) })
    }

    /// Deletes a post (its author or a moderator). Its comments stay, reachable from their authors.
    async fn delete_post(&self, ctx: &Context<'_>, input: DeletePostInput) -> async_graphql::Result<DeletePostPayload> {
        let viewer = require_viewer(ctx)?;
        let id = ids::decode(Kind::Post, &input.post_id, "input.postId")?;
        let note = staff_note(ctx, input.reason.as_deref());
        let st = state(ctx)?;
        let post = post_service::delete(&st.db, &st.broker, &viewer, note, id).await?;
        let l = loaders(ctx)?;
        // Read after the commit: the counters the client's cache must replace.
        l.clear();
        let (board, author) =
            futures_util::join!(load_one(&l.boards, post.board_id), load_one(&l.users, post.author_id));
        Ok(DeletePostPayload {
            deleted_post_id: ids::encode(Kind::Post, post.id),
            board: board?.map(Board),
            author: author?.map(User),
        })
    }

    /// Comments on a post, or replies to a comment of that post.
    async fn create_comment(
        &self,
        ctx: &Context<'_>,
        input: CreateCommentInput,
    ) -> async_graphql::Result<CreateCommentPayload> {
        let viewer = require_viewer(ctx)?;
        let new = NewComment {
            post_id: ids::decode(Kind::Post, &input.post_id, "input.postId")?,
            parent_id: input.parent_id.map(|id| ids::decode(Kind::Comment, &id, "input.parentId")).transpose()?,
            body: input.body,
        };
        let st = state(ctx)?;
        let comment = comment_service::create(&st.db, &st.broker, &viewer, new).await?;
        Ok(CreateCommentPayload {
            comment_edge: edge(Cursor::Id(comment.id), Comment(comment.clone())),
            comment: Comment(comment),
        })
    }

    /// Deletes a comment (its author or a moderator); replies under it stay.
    async fn delete_comment(
        &self,
        ctx: &Context<'_>,
        input: DeleteCommentInput,
    ) -> async_graphql::Result<DeleteCommentPayload> {
        let viewer = require_viewer(ctx)?;
        let id = ids::decode(Kind::Comment, &input.comment_id, "input.commentId")?;
        let st = state(ctx)?;
        let db = &st.db;
        comment_service::delete(db, &st.broker, &viewer, staff_note(ctx, input.reason.as_deref()), id).await?;
        let comment =
            comment_service::by_ids(db, &[id]).await?.pop().ok_or(crate::error::AppError::NotFound("comment"))?;
        Ok(DeleteCommentPayload { comment: Comment(comment) })
    }
}
