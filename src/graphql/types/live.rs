use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, Object};
use chrono::{DateTime, Utc};
use entity::live_streams;

use super::{Board, User, connection, count, load_one};
use crate::authz::{self, Action};
use crate::graphql::ids::{self, Kind};
use crate::graphql::{loaders, page_args, state, viewer};
use crate::pubsub::ChatLine;
use crate::services::live as service;
use crate::services::page::Cursor;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::services::live::Status")]
pub enum LiveStreamStatus {
    /// Created, not started: the chat room is open, nobody can say anything yet.
    Scheduled,
    Live,
    Ended,
}

/// A live stream: its metadata and chat. The video travels through the operator's media server.
pub struct LiveStream(pub live_streams::Model);

#[Object]
impl LiveStream {
    pub async fn id(&self) -> ID {
        ids::encode(Kind::LiveStream, self.0.id)
    }

    async fn title(&self) -> &str {
        &self.0.title
    }

    async fn status(&self) -> LiveStreamStatus {
        service::Status::parse(&self.0.status).into()
    }

    async fn host(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        Ok(load_one(&loaders(ctx)?.users, self.0.host_id).await?.map(User))
    }

    async fn board(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Board>> {
        let Some(id) = self.0.board_id else { return Ok(None) };
        Ok(load_one(&loaders(ctx)?.boards, id).await?.map(Board))
    }

    /// The key the host's encoder pushes video with. Only the host sees it; null for everyone else.
    async fn ingest_key(&self, ctx: &Context<'_>) -> Option<&str> {
        authz::can(viewer(ctx).as_ref(), Action::ReadIngestKey(&self.0)).then_some(self.0.ingest_key.as_str())
    }

    /// People watching now (subscribed to the chat), on every gateway instance, each counted once.
    async fn viewer_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        Ok(count(load_one(&loaders(ctx)?.viewer_counts, self.0.id).await?.unwrap_or(0)))
    }

    /// Chat history, newest first.
    #[graphql(complexity = "super::list_cost(first, child_complexity)")]
    async fn chat(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, LiveChatMessage>> {
        let page = service::chat_history(&state(ctx)?.db, self.0.id, &page_args(ctx, first, after.as_deref())?).await?;
        Ok(connection(page, LiveChatMessage))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }

    async fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.0.ended_at
    }
}

/// A line said in a live room.
pub struct LiveChatMessage(pub ChatLine);

#[Object]
impl LiveChatMessage {
    async fn id(&self) -> ID {
        ids::encode(Kind::LiveChatMessage, self.0.id)
    }

    /// Position in the room's chat: 1, 2, 3 ... with no holes.
    async fn seq(&self) -> i32 {
        count(self.0.seq)
    }

    /// Pass this as `after` to `liveChat` to resume right after this line.
    async fn cursor(&self) -> String {
        Cursor::Id(self.0.seq).encode()
    }

    async fn body(&self) -> &str {
        &self.0.body
    }

    async fn author(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        Ok(load_one(&loaders(ctx)?.users, self.0.user_id).await?.map(User))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// One event of a live room subscription.
pub struct LiveChatEvent(pub crate::services::replay::ChatEvent);

#[Object]
impl LiveChatEvent {
    async fn message(&self) -> LiveChatMessage {
        LiveChatMessage(self.0.line.clone())
    }

    /// Lines dropped right before this one because this client fell behind (live chat favours the
    /// newest lines over completeness; fetch `chat` to fill the hole if needed).
    async fn skipped(&self) -> i32 {
        count(self.0.skipped)
    }
}
