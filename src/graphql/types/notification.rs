use async_graphql::{Context, Enum, ID, Object};
use chrono::{DateTime, Utc};
use entity::notifications;

use super::{Comment, Post, User, count, load_one};
use crate::graphql::ids::{self, Kind};
use crate::graphql::loaders;
use crate::services::notifications as service;
use crate::services::page::Cursor;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::services::notifications::Kind")]
pub enum NotificationKind {
    /// Someone commented on the viewer's post.
    CommentOnPost,
    /// Someone replied to the viewer's comment.
    ReplyToComment,
    /// The viewer's post was liked (coalesced: see `actorCount`).
    PostLiked,
    /// The viewer's comment was liked (coalesced).
    CommentLiked,
    /// Someone followed the viewer (coalesced).
    NewFollower,
    /// A notice from the community's staff.
    Notice,
    /// A sign-in from a new device (`body` names it). Security notices cannot be switched off.
    NewDeviceSignIn,
    /// A major privacy policy version awaits the member's consent; writes are refused until then.
    PolicyUpdated,
    /// A security incident notice from staff (`body`); cannot be switched off.
    SecurityNotice,
    /// A reviewer approved or rejected the viewer's real-name verification (`body` says which and
    /// why); cannot be switched off.
    IdentityReviewed,
    /// A moderator settled a report the viewer filed (`body` says how). Under NOTICES.
    ReportResolved,
}

/// What a user can switch off in `updateNotificationSettings`.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::services::notifications::Category")]
pub enum NotificationCategory {
    /// Comments on my posts and replies to my comments.
    Replies,
    /// Likes on my posts and comments.
    Likes,
    /// New followers.
    Follows,
    /// Notices from staff.
    Notices,
}

/// Something that happened to the viewer's content or account.
pub struct Notification(pub notifications::Model);

#[Object]
impl Notification {
    pub async fn id(&self) -> ID {
        ids::encode(Kind::Notification, self.0.id)
    }

    /// The same string as this notification's edge cursor in `notifications`: pass it as `after` to
    /// `notificationReceived` to resume right after this notification, or as `after`/`before` to
    /// `notifications`. A coalesced notification gets a new cursor each time it grows.
    async fn cursor(&self) -> String {
        Cursor::Id(self.0.seq).encode()
    }

    async fn kind(&self) -> NotificationKind {
        service::Kind::parse(&self.0.kind).into()
    }

    /// Who acted most recently; null for notices and erased accounts.
    async fn actor(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(id) = self.0.actor_id else { return Ok(None) };
        Ok(load_one(&loaders(ctx)?.users, id).await?.map(User))
    }

    /// How many people this notification stands for ("Li and 3 others liked your post").
    async fn actor_count(&self) -> i32 {
        count(self.0.actor_count)
    }

    async fn post(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Post>> {
        let Some(id) = self.0.post_id else { return Ok(None) };
        Ok(load_one(&loaders(ctx)?.posts, id).await?.filter(|p| p.deleted_at.is_none()).map(Post))
    }

    async fn comment(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Comment>> {
        let Some(id) = self.0.comment_id else { return Ok(None) };
        Ok(load_one(&loaders(ctx)?.comments, id).await?.map(Comment))
    }

    /// The text of a notice.
    async fn body(&self) -> Option<&str> {
        self.0.body.as_deref()
    }

    async fn read(&self) -> bool {
        self.0.read_at.is_some()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When it last grew (a coalesced like or follow).
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// A notice staff sent to many members at once (ADMIN), and how far its delivery got.
pub struct NoticeBroadcast(pub entity::notice_broadcasts::Model);

/// Messages of one channel by state. `pending` includes those being sent and those waiting to be
/// retried after the provider could not take them.
#[derive(async_graphql::SimpleObject)]
pub struct DeliveryCounts {
    pub pending: i32,
    pub sent: i32,
    pub failed: i32,
}

#[Object]
impl NoticeBroadcast {
    async fn id(&self) -> ID {
        ids::encode(Kind::NoticeBroadcast, self.0.id)
    }

    /// Members it reached in-site (every recipient, once writing finished).
    async fn recipients(&self) -> i32 {
        count(self.0.recipients)
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When every recipient's in-site notice and SMS were written; null while it is still going.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }

    /// Its SMS to members' phones (members without a phone get none). Counts are kept for a day,
    /// as long as the outbox keeps its rows.
    async fn sms(&self, ctx: &Context<'_>) -> async_graphql::Result<DeliveryCounts> {
        let viewer = crate::graphql::require_viewer(ctx)?;
        let (pending, sent, failed) =
            service::broadcast_delivery(&crate::graphql::state(ctx)?.db, &viewer, self.0.id, service::Channel::Sms)
                .await?;
        Ok(DeliveryCounts { pending: count(pending), sent: count(sent), failed: count(failed) })
    }

    /// Its emails to members' verified addresses (members without one get none); kept for a day.
    async fn email(&self, ctx: &Context<'_>) -> async_graphql::Result<DeliveryCounts> {
        let viewer = crate::graphql::require_viewer(ctx)?;
        let (pending, sent, failed) =
            service::broadcast_delivery(&crate::graphql::state(ctx)?.db, &viewer, self.0.id, service::Channel::Email)
                .await?;
        Ok(DeliveryCounts { pending: count(pending), sent: count(sent), failed: count(failed) })
    }
}
