use async_graphql::{Context, InputObject, Object, SimpleObject};

use crate::graphql::types::Board;
use crate::graphql::{require_viewer, state};
use crate::services::boards::{self, NewBoard};

#[derive(InputObject)]
pub struct CreateBoardInput {
    /// 2 to 40 lower-case letters, digits and dashes; unique.
    slug: String,
    /// 1 to 40 characters.
    name: String,
    /// Up to 500 characters.
    #[graphql(default)]
    description: String,
}

#[derive(SimpleObject)]
pub struct CreateBoardPayload {
    board: Board,
}

#[derive(Default)]
pub struct BoardMutation;

#[Object]
impl BoardMutation {
    /// Creates a board: for ADMINs and members with an approved real-name verification
    /// (`VERIFICATION_REQUIRED` otherwise).
    async fn create_board(
        &self,
        ctx: &Context<'_>,
        input: CreateBoardInput,
    ) -> async_graphql::Result<CreateBoardPayload> {
        let viewer = require_viewer(ctx)?;
        let board = boards::create(
            &state(ctx)?.db,
            &viewer,
            NewBoard { slug: input.slug, name: input.name, description: input.description },
        )
        .await?;
        Ok(CreateBoardPayload { board: Board(board) })
    }
}
