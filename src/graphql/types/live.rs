use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ID, Object};
use chrono::{DateTime, Utc};
use entity::live_streams;

use super::{Board, User, connection, count, load_one};
use crate::authz::{self, Action};
use crate::graphql::ids::{self, Kind};
use crate::graphql::{api_url, loaders, relay_page_args, state, viewer};
use crate::pubsub::ChatLine;
use crate::services::live as service;
use crate::services::page::{Cursor, RawPage};

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

    /// Where the host's encoder pushes video (the operator's media server, `LIVE_INGEST_URL`, with
    /// this room's stream name and key filled in). Only the host sees it; null for everyone else,
    /// and when no media server is configured.
    async fn ingest_url(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        if !authz::can(viewer(ctx).as_ref(), Action::ReadIngestKey(&self.0)) {
            return Ok(None);
        }
        let template = &state(ctx)?.config.live_ingest_url;
        Ok((!template.is_empty()).then(|| {
            template.replace("{stream}", &service::stream_name(self.0.id)).replace("{key}", &self.0.ingest_key)
        }))
    }

    /// The room's cover image (an absolute URL on this gateway, like every media URL); null without
    /// one.
    async fn cover_url(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        self.0.cover_media_id.as_deref().map(|id| api_url(ctx, &crate::services::media::public_path(id))).transpose()
    }

    /// Where viewers watch: the media server's playback URLs for this room (`LIVE_PLAYBACK_*`).
    async fn playback(&self, ctx: &Context<'_>) -> async_graphql::Result<LivePlayback> {
        let config = &state(ctx)?.config;
        let name = service::stream_name(self.0.id);
        let fill = |template: &str| (!template.is_empty()).then(|| template.replace("{stream}", &name));
        Ok(LivePlayback { hls: fill(&config.live_playback_hls_url), flv: fill(&config.live_playback_flv_url) })
    }

    /// The key the host's encoder pushes video with. Only the host sees it; null for everyone else.
    async fn ingest_key(&self, ctx: &Context<'_>) -> Option<&str> {
        authz::can(viewer(ctx).as_ref(), Action::ReadIngestKey(&self.0)).then_some(self.0.ingest_key.as_str())
    }

    /// People watching now (subscribed to the chat), on every gateway instance, each counted once.
    async fn viewer_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        Ok(count(load_one(&loaders(ctx)?.viewer_counts, self.0.id).await?.unwrap_or(0)))
    }

    /// Chat history, newest first: `first`/`after` go back in time; `last`/`before` come towards
    /// the present (`before: <cursor of the newest line you have>` fills the hole `skipped` left).
    #[graphql(complexity = "super::list_cost(first.or(last), child_complexity)")]
    async fn chat(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Connection<String, LiveChatMessage>> {
        let raw = RawPage { first, after: after.as_deref(), last, before: before.as_deref() };
        let page = service::chat_history(&state(ctx)?.db, self.0.id, &relay_page_args(ctx, raw)?).await?;
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

/// A live room's playback URLs; each null when the operator has not configured that format. They
/// play while the stream is LIVE.
#[derive(async_graphql::SimpleObject)]
pub struct LivePlayback {
    /// HLS (`.m3u8`): plays everywhere, a few seconds behind.
    pub hls: Option<String>,
    /// HTTP-FLV: about a second behind, for apps with an FLV player.
    pub flv: Option<String>,
}

/// What a live room event does.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum LiveChatEventKind {
    /// A line was said (replayed lines too; a line deleted before it reached you comes as a
    /// tombstone: `isDeleted`, empty body).
    Created,
    /// A line you have was deleted by the host or a moderator: replace it by the tombstone.
    Deleted,
}

/// A line said in a live room.
pub struct LiveChatMessage(pub ChatLine);

#[Object]
impl LiveChatMessage {
    pub async fn id(&self) -> ID {
        ids::encode(Kind::LiveChatMessage, self.0.id)
    }

    /// Position in the room's chat: 1, 2, 3 ... with no holes.
    async fn seq(&self) -> i32 {
        count(self.0.seq)
    }

    /// The same string as this line's edge cursor in `chat`: pass it as `after` to `liveChat` to
    /// resume right after this line, or as `after`/`before` to `chat`.
    async fn cursor(&self) -> String {
        Cursor::Id(self.0.seq).encode()
    }

    /// Empty once deleted.
    async fn body(&self) -> &str {
        &self.0.body
    }

    /// Deleted by the room's host or a moderator: show a placeholder, not the line.
    async fn is_deleted(&self) -> bool {
        self.0.deleted
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
    async fn kind(&self) -> LiveChatEventKind {
        if self.0.deleted { LiveChatEventKind::Deleted } else { LiveChatEventKind::Created }
    }

    async fn message(&self) -> LiveChatMessage {
        LiveChatMessage(self.0.line.clone())
    }

    /// Lines dropped right before this one because this client fell behind (live chat favours the
    /// newest lines over completeness; fetch `chat` to fill the hole if needed).
    async fn skipped(&self) -> i32 {
        count(self.0.skipped)
    }
}
