use async_graphql::connection::Connection;
use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use entity::{conversations, messages};

use super::{User, connection, count, load_one};
use crate::error::AppError;
use crate::graphql::ids::{self, Kind};
use crate::graphql::loaders::UnreadKey;
use crate::graphql::{loaders, relay_page_args, require_viewer, state};
use crate::services::messaging;
use crate::services::page::{Cursor, RawPage};

/// A private one-to-one conversation. Only its two participants can see it.
pub struct Conversation(pub conversations::Model);

#[Object]
impl Conversation {
    pub async fn id(&self) -> ID {
        ids::encode(Kind::Conversation, self.0.id)
    }

    /// The other participant; null if their account was erased.
    async fn peer(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let me = require_viewer(ctx)?.user_id;
        let peer = if self.0.user_low == me { self.0.user_high } else { self.0.user_low };
        Ok(load_one(&loaders(ctx)?.users, peer).await?.map(User))
    }

    async fn last_message(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Message>> {
        let Some(id) = self.0.last_message_id else { return Ok(None) };
        Ok(load_one(&loaders(ctx)?.messages, id).await?.map(Message))
    }

    /// Messages from the other participant that the viewer has not marked read.
    async fn unread_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        let key = UnreadKey { user: require_viewer(ctx)?.user_id, conversation: self.0.id };
        Ok(count(load_one(&loaders(ctx)?.unread, key).await?.unwrap_or(0)))
    }

    /// Newest first: `first`/`after` go back in history; `last`/`before` come towards the present
    /// (`before: <cursor of the newest message you have>` fills a gap after a reconnect).
    #[graphql(complexity = "super::list_cost(first.or(last), child_complexity)")]
    async fn messages(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<Connection<String, Message>> {
        let viewer = require_viewer(ctx)?;
        let raw = RawPage { first, after: after.as_deref(), last, before: before.as_deref() };
        let page = messaging::messages(&state(ctx)?.db, &viewer, self.0.id, &relay_page_args(ctx, raw)?).await?;
        Ok(connection(page, Message))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// A private message.
pub struct Message(pub messages::Model);

#[Object]
impl Message {
    pub async fn id(&self) -> ID {
        ids::encode(Kind::Message, self.0.id)
    }

    /// The same string as this message's edge cursor: pass it as `after` to `messageReceived` to
    /// resume right after this message, or as `after`/`before` to `messages`.
    async fn cursor(&self) -> String {
        Cursor::Id(self.0.id).encode()
    }

    async fn body(&self) -> &str {
        &self.0.body
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// Null if the sender's account was erased.
    async fn sender(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        Ok(load_one(&loaders(ctx)?.users, self.0.sender_id).await?.map(User))
    }

    /// The photos and videos sent with it, in order. Their URLs open for the conversation's two
    /// members only (and for moderators while the message is reported).
    async fn media(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<super::trust::Media>> {
        let list = load_one(&loaders(ctx)?.message_media, self.0.id).await?.unwrap_or_default();
        Ok(list.into_iter().map(super::trust::Media).collect())
    }

    /// Whether the signed-in viewer sent it.
    async fn is_mine(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(require_viewer(ctx)?.user_id == self.0.sender_id)
    }

    /// NOT_FOUND for anyone but its two members: a moderator reading a reported message sees the
    /// message, not the conversation around it.
    async fn conversation(&self, ctx: &Context<'_>) -> async_graphql::Result<Conversation> {
        let viewer = require_viewer(ctx)?;
        load_one(&loaders(ctx)?.conversations, self.0.conversation_id)
            .await?
            .filter(|c| messaging::may_read(&viewer, c))
            .map(Conversation)
            .ok_or_else(|| AppError::NotFound("conversation").into())
    }
}
