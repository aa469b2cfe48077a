//! Private messages, notifications and live streams. Messages and notifications need a signed-in
//! viewer and only ever show the viewer's own; live streams are public.

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, Object, SimpleObject};

use crate::error::AppResult;
use crate::graphql::ids::{self, Kind};
use crate::graphql::types::live::LiveStreamStatus;
use crate::graphql::types::notification::NotificationCategory;
use crate::graphql::types::{Conversation, LiveStream, Notification, connection, connection_via, count, list_cost};
use crate::graphql::{loaders, page_args, relay_page_args, require_viewer, state};
use crate::services::page::{Page, RawPage};
use crate::services::{live, messaging, notifications};

#[derive(Default)]
pub struct RealtimeQuery;

/// Whether one notification category is on.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct NotificationSetting {
    #[graphql(skip)]
    pub id: ID,
    pub category: NotificationCategory,
    pub enabled: bool,
}

#[async_graphql::ComplexObject]
impl NotificationSetting {
    /// One per member and category: a normalised client cache updates it in place.
    pub async fn id(&self) -> ID {
        self.id.clone()
    }
}

/// A member's categories share one number space: `user id * CATEGORY_SLOTS + the category's place`.
const CATEGORY_SLOTS: i64 = 64;

pub async fn settings(ctx: &Context<'_>) -> async_graphql::Result<Vec<NotificationSetting>> {
    let viewer = require_viewer(ctx)?;
    Ok(settings_of(&state(ctx)?.db, viewer.user_id).await?)
}

pub async fn settings_of(db: &sea_orm::DatabaseConnection, user_id: i64) -> AppResult<Vec<NotificationSetting>> {
    let muted = notifications::muted(db, user_id).await?;
    Ok(notifications::Category::ALL
        .into_iter()
        .enumerate()
        .map(|(i, c)| NotificationSetting {
            id: ids::encode(Kind::NotificationSetting, user_id * CATEGORY_SLOTS + i as i64),
            category: c.into(),
            enabled: !muted.contains(&c),
        })
        .collect())
}

/// The owner of a `NotificationSetting` id, and the setting itself.
pub async fn setting_by_id(db: &sea_orm::DatabaseConnection, n: i64) -> AppResult<Option<(i64, NotificationSetting)>> {
    let owner = n.div_euclid(CATEGORY_SLOTS);
    let place = n.rem_euclid(CATEGORY_SLOTS) as usize;
    if place >= notifications::Category::ALL.len() {
        return Ok(None);
    }
    Ok(settings_of(db, owner).await?.into_iter().nth(place).map(|s| (owner, s)))
}

#[Object]
impl RealtimeQuery {
    /// The VAPID public key (base64url, an uncompressed P-256 point): pass it as
    /// `applicationServerKey` to `pushManager.subscribe`, then `registerPushSubscription`.
    async fn push_public_key(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        Ok(state(ctx)?.push.public_key().to_string())
    }

    /// The viewer's conversations, the one with the newest message first.
    #[graphql(complexity = "list_cost(first, child_complexity)")]
    async fn conversations(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Conversation>> {
        let viewer = require_viewer(ctx)?;
        let page =
            messaging::conversations(&state(ctx)?.db, &viewer, &page_args(ctx, first, after.as_deref())?).await?;
        let ids: Page<i64> = page.map(|m| m.conversation_id);
        crate::graphql::prefetch::conversation_ids(ctx, &ids).await?;
        Ok(connection_via(&loaders(ctx)?.conversations, ids, Conversation).await?)
    }

    /// One of the viewer's conversations; NOT_FOUND for anyone else's.
    async fn conversation(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Conversation> {
        let viewer = require_viewer(ctx)?;
        let id = ids::decode(Kind::Conversation, &id, "id")?;
        Ok(Conversation(messaging::conversation_for(&state(ctx)?.db, &viewer, id).await?))
    }

    /// Messages of one of the viewer's conversations, newest first; `last`/`before` read towards the
    /// present (see `Conversation.messages`).
    #[graphql(complexity = "list_cost(first.or(last), child_complexity)")]
    async fn messages(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Connection<String, crate::graphql::types::Message>> {
        let viewer = require_viewer(ctx)?;
        let id = ids::decode(Kind::Conversation, &conversation_id, "conversationId")?;
        let raw = RawPage { first, after: after.as_deref(), last, before: before.as_deref() };
        let page = messaging::messages(&state(ctx)?.db, &viewer, id, &relay_page_args(ctx, raw)?).await?;
        Ok(connection(page, crate::graphql::types::Message))
    }

    /// The viewer's notifications, most recent first; `last`/`before` read towards the present.
    #[graphql(complexity = "list_cost(first.or(last), child_complexity)")]
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        #[graphql(default)] unread_only: bool,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Connection<String, Notification>> {
        let viewer = require_viewer(ctx)?;
        let raw = RawPage { first, after: after.as_deref(), last, before: before.as_deref() };
        let page = notifications::list(&state(ctx)?.db, &viewer, unread_only, &relay_page_args(ctx, raw)?).await?;
        Ok(connection(page, Notification))
    }

    async fn unread_notification_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        let viewer = require_viewer(ctx)?;
        Ok(count(notifications::unread_count(&state(ctx)?.db, &viewer).await? as i64))
    }

    /// Messages from others the viewer has not read, in all conversations.
    async fn unread_message_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        let viewer = require_viewer(ctx)?;
        Ok(count(crate::services::messaging::unread_total(&state(ctx)?.db, viewer.user_id).await?))
    }

    /// Which notification categories the viewer receives.
    async fn notification_settings(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<NotificationSetting>> {
        settings(ctx).await
    }

    /// Live streams, newest first; `status: LIVE` for what is on now.
    #[graphql(complexity = "list_cost(first, child_complexity)")]
    async fn live_streams(
        &self,
        ctx: &Context<'_>,
        status: Option<LiveStreamStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, LiveStream>> {
        let page =
            live::list(&state(ctx)?.db, status.map(Into::into), &page_args(ctx, first, after.as_deref())?).await?;
        Ok(connection(page, LiveStream))
    }

    async fn live_stream(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<LiveStream>> {
        let id = ids::decode(Kind::LiveStream, &id, "id")?;
        Ok(live::get(&state(ctx)?.db, id).await?.map(LiveStream))
    }
}
