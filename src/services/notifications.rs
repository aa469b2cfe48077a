//! Notifications: someone replied to me, liked my post or comment, or followed me; notices from staff.
//!
//! Each user's notifications form one stream ordered by `seq`. Likes and follows are coalesced: while
//! a "liked your post" is unread, the next like on that post updates it (actor count + 1, newest actor)
//! and moves it to a new `seq`, so the user sees one line, not one per like, and a subscriber resuming
//! from a cursor receives the updated line again. Muted categories, blocked actors and one's own
//! actions make no notification at all.

use chrono::Utc;
use entity::{notification_mutes, notifications, user_blocks};
use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};

use crate::auth::Viewer;
use crate::error::{AppError, AppResult};
use crate::pubsub::{Event, Outbox, Topic};
use crate::services::page::{Cursor, Page, PageArgs, Sort};
use crate::services::{audit, streams};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    CommentOnPost,
    ReplyToComment,
    PostLiked,
    CommentLiked,
    NewFollower,
    Notice,
    /// A sign-in from a device the member never used: a security notice, which cannot be muted.
    NewDeviceSignIn,
    /// A major privacy policy version needs the member's consent; cannot be muted.
    PolicyUpdated,
    /// A security incident notice from staff; cannot be muted.
    SecurityNotice,
    /// A reviewer decided the member's real-name verification; cannot be muted.
    IdentityReviewed,
    /// A moderator settled a report the member filed (the body says how).
    ReportResolved,
}

/// What a user can switch off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Replies,
    Likes,
    Follows,
    Notices,
}

impl Category {
    pub const ALL: [Category; 4] = [Category::Replies, Category::Likes, Category::Follows, Category::Notices];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Replies => "REPLIES",
            Category::Likes => "LIKES",
            Category::Follows => "FOLLOWS",
            Category::Notices => "NOTICES",
        }
    }
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::CommentOnPost => "COMMENT_ON_POST",
            Kind::ReplyToComment => "REPLY_TO_COMMENT",
            Kind::PostLiked => "POST_LIKED",
            Kind::CommentLiked => "COMMENT_LIKED",
            Kind::NewFollower => "NEW_FOLLOWER",
            Kind::Notice => "NOTICE",
            Kind::NewDeviceSignIn => "NEW_DEVICE_SIGN_IN",
            Kind::PolicyUpdated => "POLICY_UPDATED",
            Kind::SecurityNotice => "SECURITY_NOTICE",
            Kind::IdentityReviewed => "IDENTITY_REVIEWED",
            Kind::ReportResolved => "REPORT_RESOLVED",
        }
    }

    pub fn parse(s: &str) -> Kind {
        match s {
            "COMMENT_ON_POST" => Kind::CommentOnPost,
            "REPLY_TO_COMMENT" => Kind::ReplyToComment,
            "POST_LIKED" => Kind::PostLiked,
            "COMMENT_LIKED" => Kind::CommentLiked,
            "NEW_FOLLOWER" => Kind::NewFollower,
            "NEW_DEVICE_SIGN_IN" => Kind::NewDeviceSignIn,
            "POLICY_UPDATED" => Kind::PolicyUpdated,
            "SECURITY_NOTICE" => Kind::SecurityNotice,
            "IDENTITY_REVIEWED" => Kind::IdentityReviewed,
            "REPORT_RESOLVED" => Kind::ReportResolved,
            _ => Kind::Notice,
        }
    }

    pub fn category(self) -> Category {
        match self {
            Kind::CommentOnPost | Kind::ReplyToComment => Category::Replies,
            Kind::PostLiked | Kind::CommentLiked => Category::Likes,
            Kind::NewFollower => Category::Follows,
            Kind::Notice
            | Kind::NewDeviceSignIn
            | Kind::PolicyUpdated
            | Kind::SecurityNotice
            | Kind::IdentityReviewed
            | Kind::ReportResolved => Category::Notices,
        }
    }
}

pub struct NewNotification {
    pub user_id: i64,
    pub kind: Kind,
    pub actor_id: Option<i64>,
    pub post_id: Option<i64>,
    pub comment_id: Option<i64>,
    pub body: Option<String>,
}

impl NewNotification {
    fn group_key(&self) -> Option<String> {
        match self.kind {
            Kind::PostLiked => self.post_id.map(|p| format!("post_liked:{p}")),
            Kind::CommentLiked => self.comment_id.map(|c| format!("comment_liked:{c}")),
            Kind::NewFollower => Some("new_follower".into()),
            _ => None,
        }
    }
}

/// Records a notification inside the caller's transaction and queues its push. Does nothing for
/// one's own actions, a muted category, or an actor the recipient blocked.
pub async fn record<C: ConnectionTrait>(txn: &C, n: NewNotification, outbox: &mut Outbox) -> AppResult<()> {
    if n.actor_id == Some(n.user_id) {
        return Ok(());
    }
    // Security notices reach the member whatever they switched off.
    let muted =
        !matches!(n.kind, Kind::NewDeviceSignIn | Kind::PolicyUpdated | Kind::SecurityNotice | Kind::IdentityReviewed)
            && notification_mutes::Entity::find()
                .filter(notification_mutes::Column::UserId.eq(n.user_id))
                .filter(notification_mutes::Column::Category.eq(n.kind.category().as_str()))
                .count(txn)
                .await?
                > 0;
    if muted {
        return Ok(());
    }
    if let Some(actor) = n.actor_id {
        let blocked = user_blocks::Entity::find()
            .filter(user_blocks::Column::BlockerId.eq(n.user_id))
            .filter(user_blocks::Column::BlockedId.eq(actor))
            .count(txn)
            .await?
            > 0;
        if blocked {
            return Ok(());
        }
    }
    streams::lock_users(txn, &[n.user_id]).await?;
    let seq = next_seq(txn, n.user_id).await?;
    let now = Utc::now();
    let group_key = n.group_key();
    let unread_group = match &group_key {
        Some(key) => {
            notifications::Entity::find()
                .filter(notifications::Column::UserId.eq(n.user_id))
                .filter(notifications::Column::GroupKey.eq(key.as_str()))
                .filter(notifications::Column::ReadAt.is_null())
                .one(txn)
                .await?
        }
        None => None,
    };
    match unread_group {
        Some(existing) if existing.actor_id == n.actor_id => return Ok(()),
        Some(existing) => {
            notifications::Entity::update_many()
                .col_expr(notifications::Column::Seq, Expr::value(seq))
                .col_expr(notifications::Column::ActorId, Expr::value(n.actor_id))
                .col_expr(notifications::Column::ActorCount, Expr::col(notifications::Column::ActorCount).add(1))
                .col_expr(notifications::Column::UpdatedAt, Expr::value(now))
                .filter(notifications::Column::Id.eq(existing.id))
                .exec(txn)
                .await?;
        }
        None => {
            let created = notifications::ActiveModel {
                user_id: Set(n.user_id),
                seq: Set(seq),
                kind: Set(n.kind.as_str().to_string()),
                group_key: Set(group_key),
                actor_id: Set(n.actor_id),
                actor_count: Set(i64::from(n.actor_id.is_some())),
                post_id: Set(n.post_id),
                comment_id: Set(n.comment_id),
                body: Set(n.body),
                read_at: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            }
            .insert(txn)
            .await?;
            // A new notification may go to the member's offline devices; one that grows (a tenth
            // like) does not buzz the phone again.
            crate::services::push::queue_notification(txn, n.user_id, n.kind, created.id).await?;
        }
    }
    outbox.push(Topic::User(n.user_id), Event::Notification { seq });
    Ok(())
}

async fn next_seq<C: ConnectionTrait>(txn: &C, user_id: i64) -> AppResult<i64> {
    let max: Option<i64> = notifications::Entity::find()
        .select_only()
        .column_as(notifications::Column::Seq.max(), "max")
        .filter(notifications::Column::UserId.eq(user_id))
        .into_tuple()
        .one(txn)
        .await?
        .flatten();
    Ok(max.unwrap_or(0) + 1)
}

/// Members notified per transaction by [`broadcast`].
const BROADCAST_CHUNK: u64 = 500;

/// A security incident notice from an ADMIN to `users` (or every member), audited: in-site and to
/// each member's phone. Returns the broadcast, whose delivery [`broadcast_delivery`] follows.
pub async fn security_notice(
    db: &DatabaseConnection,
    broker: &crate::pubsub::Broker,
    keys: &crate::seal::Sealer,
    viewer: &crate::auth::Viewer,
    ip: Option<&str>,
    users: Option<Vec<i64>>,
    body: &str,
) -> AppResult<entity::notice_broadcasts::Model> {
    crate::authz::require(Some(viewer), crate::authz::Action::SendSecurityNotice)?;
    let body = crate::services::validate::text("input.body", body, 1, 2000, crate::services::validate::Lines::Multi)?;
    let target = match &users {
        Some(ids) => format!("Users:{}", ids.len()),
        None => "Users:all".to_string(),
    };
    let subject = users.as_ref().filter(|ids| ids.len() == 1).and_then(|ids| ids.first().copied());
    // The notice is its own reason: the record keeps what was said.
    let entry = audit::Entry::new(audit::Action::SendSecurityNotice, subject, target).because(Some(body.clone()));
    audit::record(db, viewer, ip, entry).await?;
    let row = entity::notice_broadcasts::ActiveModel {
        kind: Set(Kind::SecurityNotice.as_str().to_string()),
        sent_by: Set(Some(viewer.user_id)),
        recipients: Set(0),
        finished_at: Set(None),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    let reached = broadcast(db, broker, users, Kind::SecurityNotice, &body, Some((keys, row.id))).await?;
    let mut done: entity::notice_broadcasts::ActiveModel = row.into();
    done.recipients = Set(i64::try_from(reached).unwrap_or(i64::MAX));
    done.finished_at = Set(Some(Utc::now()));
    Ok(done.update(db).await?)
}

/// A broadcast, for those who may send one.
pub async fn find_broadcast(
    db: &DatabaseConnection,
    viewer: &crate::auth::Viewer,
    id: i64,
) -> AppResult<entity::notice_broadcasts::Model> {
    crate::authz::require(Some(viewer), crate::authz::Action::SendSecurityNotice)?;
    entity::notice_broadcasts::Entity::find_by_id(id).one(db).await?.ok_or(AppError::NotFound("broadcast"))
}

/// A channel notices leave the site by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Sms,
    Email,
}

/// Where a broadcast's messages on `channel` stand: `(pending, sent, failed)`.
pub async fn broadcast_delivery(
    db: &DatabaseConnection,
    viewer: &crate::auth::Viewer,
    id: i64,
    channel: Channel,
) -> AppResult<(i64, i64, i64)> {
    crate::authz::require(Some(viewer), crate::authz::Action::SendSecurityNotice)?;
    match channel {
        Channel::Sms => crate::services::sms_outbox::broadcast_progress(db, id).await,
        Channel::Email => crate::services::email_outbox::broadcast_progress(db, id).await,
    }
}

/// Sends a staff notice (`kind` without an actor) to `users`, or to every member with `None`, in
/// chunks of [`BROADCAST_CHUNK`] members per transaction, pushed as each chunk commits. With
/// `off_site` (the sealing keys and the broadcast's id), each chunk also queues the SMS to its
/// members' phones. Returns how many members it reached.
pub async fn broadcast(
    db: &DatabaseConnection,
    broker: &crate::pubsub::Broker,
    users: Option<Vec<i64>>,
    kind: Kind,
    body: &str,
    off_site: Option<(&crate::seal::Sealer, i64)>,
) -> AppResult<u64> {
    let mut after = 0i64;
    let mut reached = 0u64;
    loop {
        let mut q = entity::users::Entity::find()
            .select_only()
            .column(entity::users::Column::Id)
            .filter(entity::users::Column::Id.gt(after))
            .filter(entity::users::Column::DeletedAt.is_null());
        if let Some(list) = &users {
            q = q.filter(entity::users::Column::Id.is_in(list.iter().copied()));
        }
        let ids: Vec<i64> =
            q.order_by_asc(entity::users::Column::Id).limit(BROADCAST_CHUNK).into_tuple().all(db).await?;
        let Some(last) = ids.last().copied() else { return Ok(reached) };
        let mut outbox = Outbox::default();
        let txn = db.begin().await?;
        for &user_id in &ids {
            let n = NewNotification {
                user_id,
                kind,
                actor_id: None,
                post_id: None,
                comment_id: None,
                body: Some(body.to_string()),
            };
            record(&txn, n, &mut outbox).await?;
            reached += 1;
        }
        if let Some((keys, broadcast_id)) = off_site {
            crate::services::notices::queue_off_site(&txn, keys, &ids, body, Some(broadcast_id)).await?;
        }
        txn.commit().await?;
        broker.publish_all(outbox).await;
        after = last;
    }
}

/// The viewer's notifications, most recent first (`before` reads towards the present).
pub async fn list(
    db: &DatabaseConnection,
    viewer: &Viewer,
    unread_only: bool,
    page: &PageArgs,
) -> AppResult<Page<notifications::Model>> {
    let mut query = notifications::Entity::find().filter(notifications::Column::UserId.eq(viewer.user_id));
    if unread_only {
        query = query.filter(notifications::Column::ReadAt.is_null());
    }
    let rows = page.apply(query, notifications::Column::Seq, Sort::Desc).all(db).await?;
    Ok(Page::from_rows(page, rows, |n| Cursor::Id(n.seq)))
}

/// What a subscriber missed: the user's notifications after `seq`, oldest first.
pub async fn after(
    db: &DatabaseConnection,
    user_id: i64,
    seq: i64,
    limit: u64,
) -> AppResult<Vec<notifications::Model>> {
    Ok(notifications::Entity::find()
        .filter(notifications::Column::UserId.eq(user_id))
        .filter(notifications::Column::Seq.gt(seq))
        .order_by_asc(notifications::Column::Seq)
        .limit(limit)
        .all(db)
        .await?)
}

/// The newest `seq` of a user's stream: where a subscription without a cursor starts.
pub async fn head(db: &DatabaseConnection, user_id: i64) -> AppResult<i64> {
    Ok(next_seq(db, user_id).await? - 1)
}

pub async fn unread_count(db: &DatabaseConnection, viewer: &Viewer) -> AppResult<u64> {
    Ok(notifications::Entity::find()
        .filter(notifications::Column::UserId.eq(viewer.user_id))
        .filter(notifications::Column::ReadAt.is_null())
        .count(db)
        .await?)
}

/// How many of the notifications a `mark_read` changed it hands back.
pub const MARKED_RETURN_MAX: u64 = 100;

/// What `mark_read` did.
pub struct Marked {
    /// The viewer's unread count afterwards.
    pub unread: u64,
    /// The notifications it marked read, newest first, at most [`MARKED_RETURN_MAX`].
    pub changed: Vec<notifications::Model>,
}

/// Marks the given notifications (or all, when `ids` is `None`) as read. The member's other devices
/// hear of it (`unreadCountsChanged`).
pub async fn mark_read(
    db: &DatabaseConnection,
    broker: &crate::pubsub::Broker,
    viewer: &Viewer,
    ids: Option<Vec<i64>>,
) -> AppResult<Marked> {
    // The exact timestamp written marks this call's rows, so they can be read back without
    // RETURNING every row of a "mark all" over a long history. Microseconds: what PostgreSQL keeps.
    let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
    let mut update = notifications::Entity::update_many()
        .col_expr(notifications::Column::ReadAt, Expr::value(now))
        .filter(notifications::Column::UserId.eq(viewer.user_id))
        .filter(notifications::Column::ReadAt.is_null());
    let mut changed = notifications::Entity::find()
        .filter(notifications::Column::UserId.eq(viewer.user_id))
        .filter(notifications::Column::ReadAt.eq(now));
    if let Some(ids) = ids {
        update = update.filter(notifications::Column::Id.is_in(ids.clone()));
        changed = changed.filter(notifications::Column::Id.is_in(ids));
    }
    let changed = if update.exec(db).await?.rows_affected > 0 {
        broker.publish(Topic::User(viewer.user_id), Event::UnreadChanged).await;
        changed.order_by_desc(notifications::Column::Seq).limit(MARKED_RETURN_MAX).all(db).await?
    } else {
        Vec::new()
    };
    Ok(Marked { unread: unread_count(db, viewer).await?, changed })
}

/// The categories the viewer switched off.
pub async fn muted(db: &DatabaseConnection, user_id: i64) -> AppResult<Vec<Category>> {
    let rows: Vec<String> = notification_mutes::Entity::find()
        .select_only()
        .column(notification_mutes::Column::Category)
        .filter(notification_mutes::Column::UserId.eq(user_id))
        .into_tuple()
        .all(db)
        .await?;
    Ok(Category::ALL.into_iter().filter(|c| rows.iter().any(|r| r == c.as_str())).collect())
}

/// Switches categories on or off; idempotent.
pub async fn set_enabled(db: &DatabaseConnection, viewer: &Viewer, changes: &[(Category, bool)]) -> AppResult<()> {
    let txn = db.begin().await?;
    for (category, enabled) in changes {
        notification_mutes::Entity::delete_many()
            .filter(notification_mutes::Column::UserId.eq(viewer.user_id))
            .filter(notification_mutes::Column::Category.eq(category.as_str()))
            .exec(&txn)
            .await?;
        if !enabled {
            notification_mutes::ActiveModel {
                user_id: Set(viewer.user_id),
                category: Set(category.as_str().to_string()),
                created_at: Set(Utc::now()),
                ..Default::default()
            }
            .insert(&txn)
            .await?;
        }
    }
    txn.commit().await?;
    Ok(())
}

pub async fn by_ids<C: ConnectionTrait>(db: &C, ids: &[i64]) -> AppResult<Vec<notifications::Model>> {
    Ok(notifications::Entity::find().filter(notifications::Column::Id.is_in(ids.iter().copied())).all(db).await?)
}
