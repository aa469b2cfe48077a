//! Likes, favourites and follows. All idempotent: liking twice leaves one like, unliking what was
//! never liked is fine; the payload always shows the target's current counts.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

use crate::error::{AppError, AppResult};
use crate::graphql::ids::{self, Kind};
use crate::graphql::types::{Board, Comment, Post, User};
use crate::graphql::{require_viewer, state};
use crate::services::social::{self, Edge};
use crate::services::{accounts, boards, comments, posts};

/// One input and one payload type per mutation, all of the same shape.
macro_rules! edge_mutation_types {
    ($($input:ident { $id:ident } => $payload:ident { $field:ident: $ty:ty }),* $(,)?) => {$(
        #[derive(InputObject)]
        pub struct $input {
            $id: ID,
        }

        #[derive(SimpleObject)]
        pub struct $payload {
            $field: $ty,
        }
    )*};
}

edge_mutation_types! {
    LikePostInput { post_id } => LikePostPayload { post: Post },
    UnlikePostInput { post_id } => UnlikePostPayload { post: Post },
    FavoritePostInput { post_id } => FavoritePostPayload { post: Post },
    UnfavoritePostInput { post_id } => UnfavoritePostPayload { post: Post },
    LikeCommentInput { comment_id } => LikeCommentPayload { comment: Comment },
    UnlikeCommentInput { comment_id } => UnlikeCommentPayload { comment: Comment },
    FollowUserInput { user_id } => FollowUserPayload { user: User },
    UnfollowUserInput { user_id } => UnfollowUserPayload { user: User },
    FollowBoardInput { board_id } => FollowBoardPayload { board: Board },
    UnfollowBoardInput { board_id } => UnfollowBoardPayload { board: Board },
}

/// Adds or removes the viewer's edge to `target`.
async fn set_edge(ctx: &Context<'_>, edge: Edge, target: i64, on: bool) -> AppResult<()> {
    let viewer = require_viewer(ctx)?;
    let st = state(ctx)?;
    let db = &st.db;
    if on {
        social::add(db, &st.broker, &viewer, edge, target).await?;
    } else {
        social::remove(db, &st.broker, &viewer, edge, target).await?;
    }
    Ok(())
}

async fn post_after(ctx: &Context<'_>, id: &ID, edge: Edge, on: bool) -> AppResult<Post> {
    let id = ids::decode(Kind::Post, id, "input.postId")?;
    set_edge(ctx, edge, id, on).await?;
    Ok(Post(posts::live(&state(ctx)?.db, id).await?))
}

async fn comment_after(ctx: &Context<'_>, id: &ID, on: bool) -> AppResult<Comment> {
    let id = ids::decode(Kind::Comment, id, "input.commentId")?;
    set_edge(ctx, Edge::CommentLike, id, on).await?;
    let comment = comments::by_ids(&state(ctx)?.db, &[id]).await?.pop();
    Ok(Comment(comment.ok_or(AppError::NotFound("comment"))?))
}

async fn user_after(ctx: &Context<'_>, id: &ID, on: bool) -> AppResult<User> {
    let id = ids::decode(Kind::User, id, "input.userId")?;
    set_edge(ctx, Edge::UserFollow, id, on).await?;
    let user = accounts::users_by_ids(&state(ctx)?.db, &[id]).await?.pop();
    Ok(User(user.ok_or(AppError::NotFound("user"))?))
}

async fn board_after(ctx: &Context<'_>, id: &ID, on: bool) -> AppResult<Board> {
    let id = ids::decode(Kind::Board, id, "input.boardId")?;
    set_edge(ctx, Edge::BoardFollow, id, on).await?;
    let board = boards::by_ids(&state(ctx)?.db, &[id]).await?.pop();
    Ok(Board(board.ok_or(AppError::NotFound("board"))?))
}

#[derive(Default)]
pub struct SocialMutation;

#[Object]
impl SocialMutation {
    async fn like_post(&self, ctx: &Context<'_>, input: LikePostInput) -> async_graphql::Result<LikePostPayload> {
        Ok(LikePostPayload { post: post_after(ctx, &input.post_id, Edge::PostLike, true).await? })
    }

    async fn unlike_post(&self, ctx: &Context<'_>, input: UnlikePostInput) -> async_graphql::Result<UnlikePostPayload> {
        Ok(UnlikePostPayload { post: post_after(ctx, &input.post_id, Edge::PostLike, false).await? })
    }

    /// Saves a post to the viewer's favourites.
    async fn favorite_post(
        &self,
        ctx: &Context<'_>,
        input: FavoritePostInput,
    ) -> async_graphql::Result<FavoritePostPayload> {
        Ok(FavoritePostPayload { post: post_after(ctx, &input.post_id, Edge::Favorite, true).await? })
    }

    async fn unfavorite_post(
        &self,
        ctx: &Context<'_>,
        input: UnfavoritePostInput,
    ) -> async_graphql::Result<UnfavoritePostPayload> {
        Ok(UnfavoritePostPayload { post: post_after(ctx, &input.post_id, Edge::Favorite, false).await? })
    }

    async fn like_comment(
        &self,
        ctx: &Context<'_>,
        input: LikeCommentInput,
    ) -> async_graphql::Result<LikeCommentPayload> {
        Ok(LikeCommentPayload { comment: comment_after(ctx, &input.comment_id, true).await? })
    }

    async fn unlike_comment(
        &self,
        ctx: &Context<'_>,
        input: UnlikeCommentInput,
    ) -> async_graphql::Result<UnlikeCommentPayload> {
        Ok(UnlikeCommentPayload { comment: comment_after(ctx, &input.comment_id, false).await? })
    }

    async fn follow_user(&self, ctx: &Context<'_>, input: FollowUserInput) -> async_graphql::Result<FollowUserPayload> {
        Ok(FollowUserPayload { user: user_after(ctx, &input.user_id, true).await? })
    }

    async fn unfollow_user(
        &self,
        ctx: &Context<'_>,
        input: UnfollowUserInput,
    ) -> async_graphql::Result<UnfollowUserPayload> {
        Ok(UnfollowUserPayload { user: user_after(ctx, &input.user_id, false).await? })
    }

    async fn follow_board(
        &self,
        ctx: &Context<'_>,
        input: FollowBoardInput,
    ) -> async_graphql::Result<FollowBoardPayload> {
        Ok(FollowBoardPayload { board: board_after(ctx, &input.board_id, true).await? })
    }

    async fn unfollow_board(
        &self,
        ctx: &Context<'_>,
        input: UnfollowBoardInput,
    ) -> async_graphql::Result<UnfollowBoardPayload> {
        Ok(UnfollowBoardPayload { board: board_after(ctx, &input.board_id, false).await? })
    }
}
