//! Private messages, blocks, notification state and live streams.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

use crate::error::AppError;
use crate::graphql::ids::{self, Kind};
use crate::graphql::query::NotificationSetting;
use crate::graphql::types::notification::{NoticeBroadcast, NotificationCategory};
use crate::graphql::types::{
    Conversation, LiveChatMessage, LiveStream, Message, NewEdge, Notification, User, count, edge, load_one,
};
use crate::graphql::{loaders, rate_limit, require_viewer, state};
use crate::ratelimit::Limit;
use crate::services::messaging::{self, Recipient};
use crate::services::page::Cursor;
use crate::services::{live, notifications};

/// Give exactly one of `toUserId` (starts the conversation if needed) and `conversationId`.
#[derive(InputObject)]
pub struct SendMessageInput {
    to_user_id: Option<ID>,
    conversation_id: Option<ID>,
    /// Up to 4000 characters; at least 1 unless the message carries files.
    body: Option<String>,
    /// Up to 9 of your own MESSAGE_PHOTO or MESSAGE_VIDEO uploads (`uploadMedia`), not sent before,
    /// shown in this order. Only the conversation's two members can open them
    /// (`Message.media[].url`).
    media_ids: Option<Vec<ID>>,
    /// The client's own id for this message (1 to 64 letters, digits, `-_.:`; a UUID fits). Sending
    /// again with the same id, after a timeout or a lost answer, returns the message already stored
    /// instead of sending it twice.
    client_message_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct SendMessagePayload {
    message: Message,
    /// The new message as an edge of `Conversation.messages`.
    message_edge: NewEdge<Message>,
    conversation: Conversation,
}

#[derive(InputObject)]
pub struct MarkConversationReadInput {
    conversation_id: ID,
}

#[derive(SimpleObject)]
pub struct MarkConversationReadPayload {
    conversation: Conversation,
}

#[derive(InputObject)]
pub struct BlockUserInput {
    user_id: ID,
}

#[derive(SimpleObject)]
pub struct BlockUserPayload {
    user: User,
}

/// Give `ids`, or leave it out to mark every notification read.
#[derive(InputObject, Default)]
pub struct MarkNotificationsReadInput {
    ids: Option<Vec<ID>>,
}

#[derive(SimpleObject)]
pub struct MarkNotificationsReadPayload {
    unread_count: i32,
    /// The notifications this call marked read (now `read`), newest first: at most 100, so after
    /// marking everything read a client refetches older pages rather than trusting its cache.
    notifications: Vec<Notification>,
}

#[derive(InputObject)]
pub struct NotificationSettingInput {
    category: NotificationCategory,
    enabled: bool,
}

#[derive(InputObject)]
pub struct UpdateNotificationSettingsInput {
    settings: Vec<NotificationSettingInput>,
}

#[derive(SimpleObject)]
pub struct UpdateNotificationSettingsPayload {
    settings: Vec<NotificationSetting>,
    /// The member whose settings changed.
    me: Option<User>,
}

/// Leave `userIds` out to reach every member.
#[derive(InputObject)]
pub struct SendSecurityNoticeInput {
    /// 1 to 2000 characters.
    body: String,
    user_ids: Option<Vec<ID>>,
}

#[derive(SimpleObject)]
pub struct SendSecurityNoticePayload {
    /// Members the notice reached.
    recipients: i32,
    /// The broadcast, to follow its SMS delivery (`noticeBroadcast(id:)` later).
    broadcast: NoticeBroadcast,
}

#[derive(InputObject)]
pub struct CreateLiveStreamInput {
    /// 1 to 100 characters.
    title: String,
    board_id: Option<ID>,
    /// An image the host uploaded (`uploadMedia`, kind POST_IMAGE; its `Media.id`) to show as the
    /// room's cover.
    cover_media_id: Option<ID>,
}

#[derive(InputObject)]
pub struct LiveStreamInput {
    stream_id: ID,
}

#[derive(SimpleObject)]
pub struct LiveStreamPayload {
    live_stream: LiveStream,
}

#[derive(InputObject)]
pub struct SendLiveChatMessageInput {
    stream_id: ID,
    /// 1 to 500 characters, one line.
    body: String,
}

#[derive(SimpleObject)]
pub struct SendLiveChatMessagePayload {
    message: LiveChatMessage,
    /// The new line as an edge of `LiveStream.chat`.
    message_edge: NewEdge<LiveChatMessage>,
}

#[derive(InputObject)]
pub struct DeleteLiveChatMessageInput {
    /// The line's `LiveChatMessage.id`.
    id: ID,
}

#[derive(SimpleObject)]
pub struct DeleteLiveChatMessagePayload {
    /// The tombstone (`isDeleted`, empty body).
    message: LiveChatMessage,
    live_stream: LiveStream,
}

#[derive(InputObject)]
pub struct MuteLiveChatViewerInput {
    stream_id: ID,
    user_id: ID,
    /// How long, 1 to 10080 (a week); 0 lifts the mute.
    minutes: i32,
}

#[derive(SimpleObject)]
pub struct MuteLiveChatViewerPayload {
    /// Until when the viewer cannot say anything in this room; null when the mute was lifted.
    muted_until: Option<chrono::DateTime<chrono::Utc>>,
    user: Option<User>,
}

#[derive(Default)]
pub struct RealtimeMutation;

async fn user(ctx: &Context<'_>, id: i64) -> async_graphql::Result<User> {
    load_one(&loaders(ctx)?.users, id).await?.map(User).ok_or_else(|| AppError::NotFound("user").into())
}

#[Object]
impl RealtimeMutation {
    /// Sends a private message. Pushed to both participants' `messageReceived`.
    async fn send_message(
        &self,
        ctx: &Context<'_>,
        input: SendMessageInput,
    ) -> async_graphql::Result<SendMessagePayload> {
        let viewer = require_viewer(ctx)?;
        rate_limit(ctx, Limit::Messages).await?;
        let to = match (&input.to_user_id, &input.conversation_id) {
            (Some(user), None) => Recipient::User(ids::decode(Kind::User, user, "input.toUserId")?),
            (None, Some(c)) => Recipient::Conversation(ids::decode(Kind::Conversation, c, "input.conversationId")?),
            _ => return Err(AppError::bad_input("input", "give exactly one of toUserId and conversationId").into()),
        };
        let st = state(ctx)?;
        let client_id = input.client_message_id.as_deref();
        let media_ids = input
            .media_ids
            .iter()
            .flatten()
            .map(|id| ids::media_key(id, "input.mediaIds"))
            .collect::<Result<Vec<_>, _>>()?;
        let sent = messaging::send(
            &st.db,
            &st.broker,
            &viewer,
            to,
            input.body.as_deref().unwrap_or_default(),
            client_id,
            &media_ids,
        )
        .await?;
        Ok(SendMessagePayload {
            message_edge: edge(Cursor::Id(sent.message.id), Message(sent.message.clone())),
            message: Message(sent.message),
            conversation: Conversation(sent.conversation),
        })
    }

    async fn mark_conversation_read(
        &self,
        ctx: &Context<'_>,
        input: MarkConversationReadInput,
    ) -> async_graphql::Result<MarkConversationReadPayload> {
        let viewer = require_viewer(ctx)?;
        let id = ids::decode(Kind::Conversation, &input.conversation_id, "input.conversationId")?;
        let st = state(ctx)?;
        let db = &st.db;
        messaging::mark_read(db, &st.broker, &viewer, id).await?;
        Ok(MarkConversationReadPayload {
            conversation: Conversation(messaging::conversation_for(db, &viewer, id).await?),
        })
    }

    /// Blocks a user: no private messages either way, no notifications from them. Idempotent.
    async fn block_user(&self, ctx: &Context<'_>, input: BlockUserInput) -> async_graphql::Result<BlockUserPayload> {
        let viewer = require_viewer(ctx)?;
        let id = ids::decode(Kind::User, &input.user_id, "input.userId")?;
        messaging::block(&state(ctx)?.db, &viewer, id).await?;
        Ok(BlockUserPayload { user: user(ctx, id).await? })
    }

    async fn unblock_user(&self, ctx: &Context<'_>, input: BlockUserInput) -> async_graphql::Result<BlockUserPayload> {
        let viewer = require_viewer(ctx)?;
        let id = ids::decode(Kind::User, &input.user_id, "input.userId")?;
        messaging::unblock(&state(ctx)?.db, &viewer, id).await?;
        Ok(BlockUserPayload { user: user(ctx, id).await? })
    }

    async fn mark_notifications_read(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] input: MarkNotificationsReadInput,
    ) -> async_graphql::Result<MarkNotificationsReadPayload> {
        let viewer = require_viewer(ctx)?;
        let ids = input
            .ids
            .map(|ids| {
                ids.iter().map(|id| ids::decode(Kind::Notification, id, "input.ids")).collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let st = state(ctx)?;
        let marked = notifications::mark_read(&st.db, &st.broker, &viewer, ids).await?;
        Ok(MarkNotificationsReadPayload {
            unread_count: count(marked.unread as i64),
            notifications: marked.changed.into_iter().map(Notification).collect(),
        })
    }

    /// Switches notification categories on or off. Off means none are made, not just hidden.
    async fn update_notification_settings(
        &self,
        ctx: &Context<'_>,
        input: UpdateNotificationSettingsInput,
    ) -> async_graphql::Result<UpdateNotificationSettingsPayload> {
        let viewer = require_viewer(ctx)?;
        let changes: Vec<_> = input.settings.iter().map(|s| (s.category.into(), s.enabled)).collect();
        notifications::set_enabled(&state(ctx)?.db, &viewer, &changes).await?;
        let settings = crate::graphql::query::realtime_settings(ctx).await?;
        Ok(UpdateNotificationSettingsPayload { settings, me: crate::graphql::fresh_me(ctx).await? })
    }

    /// ADMIN only: a security incident notice to every member or to a list of members, as an in-site
    /// notification and a push. Members cannot switch these off.
    async fn send_security_notice(
        &self,
        ctx: &Context<'_>,
        input: SendSecurityNoticeInput,
    ) -> async_graphql::Result<SendSecurityNoticePayload> {
        let viewer = require_viewer(ctx)?;
        let users = input
            .user_ids
            .map(|ids| ids.iter().map(|id| ids::decode(Kind::User, id, "input.userIds")).collect::<Result<Vec<_>, _>>())
            .transpose()?;
        let st = state(ctx)?;
        let ip = crate::graphql::request_info(ctx).and_then(|i| i.ip.as_deref());
        let sent =
            notifications::security_notice(&st.db, &st.broker, st.media.sealer(), &viewer, ip, users, &input.body)
                .await?;
        Ok(SendSecurityNoticePayload { recipients: count(sent.recipients), broadcast: NoticeBroadcast(sent) })
    }

    /// Creates a SCHEDULED stream. Its `ingestKey` is visible to the host only.
    async fn create_live_stream(
        &self,
        ctx: &Context<'_>,
        input: CreateLiveStreamInput,
    ) -> async_graphql::Result<LiveStreamPayload> {
        let viewer = require_viewer(ctx)?;
        let board = input.board_id.map(|b| ids::decode(Kind::Board, &b, "input.boardId")).transpose()?;
        let cover = input.cover_media_id.as_ref().map(|id| ids::media_key(id, "input.coverMediaId")).transpose()?;
        let stream = live::create(&state(ctx)?.db, &viewer, &input.title, board, cover.as_deref()).await?;
        Ok(LiveStreamPayload { live_stream: LiveStream(stream) })
    }

    /// SCHEDULED -> LIVE; host (or a moderator) only.
    async fn start_live_stream(
        &self,
        ctx: &Context<'_>,
        input: LiveStreamInput,
    ) -> async_graphql::Result<LiveStreamPayload> {
        let viewer = require_viewer(ctx)?;
        let id = ids::decode(Kind::LiveStream, &input.stream_id, "input.streamId")?;
        let st = state(ctx)?;
        Ok(LiveStreamPayload { live_stream: LiveStream(live::start(&st.db, &st.broker, &viewer, id).await?) })
    }

    /// -> ENDED; completes every viewer's `liveChat` subscription. Host (or a moderator) only.
    async fn end_live_stream(
        &self,
        ctx: &Context<'_>,
        input: LiveStreamInput,
    ) -> async_graphql::Result<LiveStreamPayload> {
        let viewer = require_viewer(ctx)?;
        let id = ids::decode(Kind::LiveStream, &input.stream_id, "input.streamId")?;
        let st = state(ctx)?;
        Ok(LiveStreamPayload { live_stream: LiveStream(live::end(&st.db, &st.broker, &viewer, id).await?) })
    }

    /// Says a line in a live room (LIVE streams only). Pushed to every `liveChat` subscriber.
    async fn send_live_chat_message(
        &self,
        ctx: &Context<'_>,
        input: SendLiveChatMessageInput,
    ) -> async_graphql::Result<SendLiveChatMessagePayload> {
        let viewer = require_viewer(ctx)?;
        rate_limit(ctx, Limit::Chat).await?;
        let id = ids::decode(Kind::LiveStream, &input.stream_id, "input.streamId")?;
        let st = state(ctx)?;
        let line = live::say(&st.db, &st.broker, &viewer, id, &input.body).await?;
        Ok(SendLiveChatMessagePayload {
            message_edge: edge(Cursor::Id(line.seq), LiveChatMessage(line.clone())),
            message: LiveChatMessage(line),
        })
    }

    /// The room's host or a moderator deletes a chat line. It stays in the chat as a tombstone
    /// (`isDeleted`, empty body), and viewers holding it get a `DELETED` event at once.
    async fn delete_live_chat_message(
        &self,
        ctx: &Context<'_>,
        input: DeleteLiveChatMessageInput,
    ) -> async_graphql::Result<DeleteLiveChatMessagePayload> {
        let viewer = require_viewer(ctx)?;
        let id = ids::decode(Kind::LiveChatMessage, &input.id, "input.id")?;
        let st = state(ctx)?;
        let (line, stream) = live::delete_chat_line(&st.db, &st.broker, &viewer, id).await?;
        Ok(DeleteLiveChatMessagePayload { message: LiveChatMessage(line), live_stream: LiveStream(stream) })
    }

    /// The room's host or a moderator mutes a viewer in this room for `minutes` (0 lifts it):
    /// `sendLiveChatMessage` answers them FORBIDDEN until then. The host cannot be muted.
    async fn mute_live_chat_viewer(
        &self,
        ctx: &Context<'_>,
        input: MuteLiveChatViewerInput,
    ) -> async_graphql::Result<MuteLiveChatViewerPayload> {
        let viewer = require_viewer(ctx)?;
        let stream = ids::decode(Kind::LiveStream, &input.stream_id, "input.streamId")?;
        let user = ids::decode(Kind::User, &input.user_id, "input.userId")?;
        let minutes = u32::try_from(input.minutes)
            .ok()
            .filter(|m| *m <= 10_080)
            .ok_or_else(|| AppError::bad_input("input.minutes", "must be 0 to 10080"))?;
        let muted_until = live::mute(&state(ctx)?.db, &viewer, stream, user, minutes).await?;
        Ok(MuteLiveChatViewerPayload { muted_until, user: load_one(&loaders(ctx)?.users, user).await?.map(User) })
    }
}
