//! Recording views, and the member's control over what is recorded.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

use crate::error::AppError;
use crate::graphql::ids::{self, Kind};
use crate::graphql::types::history::Settings;
use crate::graphql::types::{Post, count};
use crate::graphql::{require_viewer, state, viewer};
use crate::services::{history, posts};

#[derive(InputObject)]
pub struct RecordPostViewInput {
    post_id: ID,
    /// How long the post stayed open, if the client knows (sent when the reader leaves it).
    duration_ms: Option<f64>,
}

#[derive(SimpleObject)]
pub struct RecordPostViewPayload {
    post: Post,
}

/// Leave `entryId` out to delete everything.
#[derive(InputObject, Default)]
pub struct DeleteHistoryInput {
    entry_id: Option<ID>,
}

#[derive(SimpleObject)]
pub struct DeleteHistoryPayload {
    deleted_count: i32,
}

#[derive(InputObject)]
pub struct UpdateSettingsInput {
    personalized_recommendations: Option<bool>,
    record_history: Option<bool>,
}

#[derive(SimpleObject)]
pub struct UpdateSettingsPayload {
    settings: Settings,
    /// The member, for clients that cache `me.settings`.
    me: Option<crate::graphql::types::User>,
}

#[derive(Default)]
pub struct HistoryMutation;

#[Object]
impl HistoryMutation {
    /// Counts a view of a post (hot ranking) and, for a signed-in member who records history, adds it
    /// to their browse history. Works signed out.
    async fn record_post_view(
        &self,
        ctx: &Context<'_>,
        input: RecordPostViewInput,
    ) -> async_graphql::Result<RecordPostViewPayload> {
        let id = ids::decode(Kind::Post, &input.post_id, "input.postId")?;
        let duration = match input.duration_ms {
            Some(ms) if !ms.is_finite() || ms < 0.0 => {
                return Err(AppError::bad_input("input.durationMs", "must be a non-negative number").into());
            }
            Some(ms) => Some(ms as i64),
            None => None,
        };
        let db = &state(ctx)?.db;
        history::record_view(db, viewer(ctx).as_ref(), id, duration).await?;
        Ok(RecordPostViewPayload { post: Post(posts::live(db, id).await?) })
    }

    async fn delete_browse_history(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] input: DeleteHistoryInput,
    ) -> async_graphql::Result<DeleteHistoryPayload> {
        let v = require_viewer(ctx)?;
        let entry = input.entry_id.map(|e| ids::decode(Kind::BrowseEntry, &e, "input.entryId")).transpose()?;
        let n = history::delete_browse(&state(ctx)?.db, &v, entry).await?;
        Ok(DeleteHistoryPayload { deleted_count: count(n as i64) })
    }

    async fn delete_search_history(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] input: DeleteHistoryInput,
    ) -> async_graphql::Result<DeleteHistoryPayload> {
        let v = require_viewer(ctx)?;
        let entry = input.entry_id.map(|e| ids::decode(Kind::SearchEntry, &e, "input.entryId")).transpose()?;
        let n = history::delete_searches(&state(ctx)?.db, &v, entry).await?;
        Ok(DeleteHistoryPayload { deleted_count: count(n as i64) })
    }

    /// Switches personalised recommendations and history recording on or off. Off means the data is
    /// neither recorded nor used from then on; delete what was recorded with the delete mutations.
    async fn update_settings(
        &self,
        ctx: &Context<'_>,
        input: UpdateSettingsInput,
    ) -> async_graphql::Result<UpdateSettingsPayload> {
        let v = require_viewer(ctx)?;
        let s = history::update_settings(&state(ctx)?.db, &v, input.personalized_recommendations, input.record_history)
            .await?;
        Ok(UpdateSettingsPayload { settings: Settings::of(v.user_id, s), me: crate::graphql::fresh_me(ctx).await? })
    }
}
