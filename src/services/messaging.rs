//! Private one-to-one messages.
//!
//! A conversation belongs to exactly two users and is created by the first message. Each participant
//! has a member row holding their inbox order and read marker, so "my conversations with unread
//! counts" is one indexed read. Only participants can read a conversation, and a block in either
//! direction stops new messages. Every message is appended under both users' stream locks and pushed
//! on both users' topics (the sender's other devices see it too).

use chrono::Utc;
use entity::{conversation_members, conversations, messages, user_blocks, users};
use sea_orm::sea_query::{Alias, Expr, ExprTrait as _, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Set, TransactionTrait,
};

use crate::auth::Viewer;
use crate::error::{AppError, AppResult};
use crate::pubsub::{Broker, Event, Outbox, Topic};
use crate::services::page::{Cursor, Page, PageArgs, Sort};
use crate::services::validate::{self, Lines};
use crate::services::{media, push, streams};

pub const BODY_MAX: usize = 4_000;

/// Who a message goes to: a user (the conversation is found or made) or an existing conversation.
pub enum Recipient {
    User(i64),
    Conversation(i64),
}

pub struct Sent {
    pub message: messages::Model,
    pub conversation: conversations::Model,
}

fn pair(a: i64, b: i64) -> (i64, i64) {
    if a < b { (a, b) } else { (b, a) }
}

/// Either of the two blocked the other.
fn blocks_between(a: i64, b: i64) -> Condition {
    Condition::any()
        .add(Condition::all().add(user_blocks::Column::BlockerId.eq(a)).add(user_blocks::Column::BlockedId.eq(b)))
        .add(Condition::all().add(user_blocks::Column::BlockerId.eq(b)).add(user_blocks::Column::BlockedId.eq(a)))
}

/// Whether `peer` is a live account, whether either of the two blocked the other, and whether the
/// peer has a device that wants messages pushed, in one read.
async fn peer_state(db: &DatabaseConnection, viewer: i64, peer: i64) -> AppResult<(bool, bool, bool)> {
    let live = users::Entity::find()
        .select_only()
        .expr(Expr::val(1))
        .filter(users::Column::Id.eq(peer))
        .filter(users::Column::DeletedAt.is_null())
        .into_query();
    let blocks =
        user_blocks::Entity::find().select_only().expr(Expr::val(1)).filter(blocks_between(viewer, peer)).into_query();
    let query = Query::select()
        .expr_as(Expr::exists(live), Alias::new("live"))
        .expr_as(Expr::exists(blocks), Alias::new("blocked"))
        .expr_as(Expr::exists(push::wants(peer, push::Category::Messages)), Alias::new("pushing"))
        .to_owned();
    let row = db.query_one(&query).await?.ok_or_else(|| AppError::internal("a SELECT without FROM returned no row"))?;
    Ok((row.try_get("", "live")?, row.try_get("", "blocked")?, row.try_get("", "pushing")?))
}

/// Who may message whom, given whether either has blocked the other: the rule `sendMessage` enforces
/// and `User.viewerCanMessage` shows. (That the peer exists and is not erased is checked on load.)
pub fn may_message(viewer: i64, peer: i64, blocked_either_way: bool) -> AppResult<()> {
    if viewer == peer {
        return Err(AppError::bad_input("input.toUserId", "you cannot message yourself"));
    }
    if blocked_either_way {
        return Err(AppError::Forbidden("you cannot message this user"));
    }
    Ok(())
}

/// A conversation the viewer takes part in.
/// Someone else's is NOT_FOUND, so conversation ids cannot be probed.
pub async fn conversation_for(db: &DatabaseConnection, viewer: &Viewer, id: i64) -> AppResult<conversations::Model> {
    conversations::Entity::find_by_id(id)
        .one(db)
        .await?
        .filter(|c| may_read(viewer, c))
        .ok_or(AppError::NotFound("conversation"))
}

/// The policy's rule for reading a conversation and what is in it.
pub fn may_read(viewer: &Viewer, c: &conversations::Model) -> bool {
    crate::authz::can(Some(viewer), crate::authz::Action::ReadConversation { members: (c.user_low, c.user_high) })
}

/// Sends a message: text, up to [`media::MAX_PER_MESSAGE`] of the sender's MESSAGE_PHOTO and
/// MESSAGE_VIDEO uploads (`media_ids`, by upload id), or both. A message with files may have no text.
#[allow(clippy::too_many_arguments)]
pub async fn send(
    db: &DatabaseConnection,
    broker: &Broker,
    viewer: &Viewer,
    to: Recipient,
    body: &str,
    client_id: Option<&str>,
    media_ids: &[String],
) -> AppResult<Sent> {
    let min_body = usize::from(media_ids.is_empty());
    let body = validate::text("input.body", body, min_body, BODY_MAX, Lines::Multi)?;
    media::check_message_list(media_ids)?;
    let client_id = client_id.map(client_message_id).transpose()?;
    let (peer, must_be_live) = match to {
        Recipient::User(id) => (id, true),
        Recipient::Conversation(id) => {
            let c = conversation_for(db, viewer, id).await?;
            (if c.user_low == viewer.user_id { c.user_high } else { c.user_low }, false)
        }
    };
    may_message(viewer.user_id, peer, false)?;
    let (live, blocked, pushing) = peer_state(db, viewer.user_id, peer).await?;
    if must_be_live && !live {
        return Err(AppError::NotFound("user"));
    }
    may_message(viewer.user_id, peer, blocked)?;
    let (low, high) = pair(viewer.user_id, peer);
    // A retry of a message already stored: the same message, sent once.
    if let Some(id) = &client_id
        && let Some(sent) = already_sent(db, viewer, id, (low, high)).await?
    {
        return Ok(sent);
    }
    let now = Utc::now();
    // Five statements between BEGIN and COMMIT whether or not the conversation is new: each upsert
    // both creates what is missing and moves what exists.
    let txn = db.begin().await?;
    streams::lock_users(&txn, &[low, high]).await?;
    let conversation = conversations::Entity::insert(conversations::ActiveModel {
        user_low: Set(low),
        user_high: Set(high),
        last_message_id: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::columns([conversations::Column::UserLow, conversations::Column::UserHigh])
            .update_column(conversations::Column::UpdatedAt)
            .to_owned(),
    )
    .exec_with_returning(&txn)
    .await?;
    let inserted = messages::ActiveModel {
        conversation_id: Set(conversation.id),
        sender_id: Set(viewer.user_id),
        body: Set(body),
        client_message_id: Set(client_id.clone()),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await;
    let message = match (inserted, &client_id) {
        (Ok(message), _) => message,
        // Two retries raced and the other one stored it: answer with that one.
        (Err(err), Some(id)) if matches!(err.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => {
            drop(txn);
            return already_sent(db, viewer, id, (low, high))
                .await?
                .ok_or_else(|| AppError::internal("a message clashed on its client id and then vanished"));
        }
        (Err(err), _) => return Err(err.into()),
    };
    if !media_ids.is_empty() {
        media::attach_to_message(&txn, viewer.user_id, message.id, media_ids).await?;
    }
    if pushing {
        push::queue_message(&txn, peer, message.id).await?;
    }
    conversations::Entity::update_many()
        .col_expr(conversations::Column::LastMessageId, Expr::value(message.id))
        .filter(conversations::Column::Id.eq(conversation.id))
        .exec(&txn)
        .await?;
    // Both members point at the new message; the sender has also read it. The peer's read marker
    // stays where it was (a new member starts at 0).
    let member = |user: i64, other: i64| conversation_members::ActiveModel {
        conversation_id: Set(conversation.id),
        user_id: Set(user),
        peer_id: Set(other),
        last_message_id: Set(message.id),
        last_read_message_id: Set(if user == viewer.user_id { message.id } else { 0 }),
        created_at: Set(now),
        ..Default::default()
    };
    let read = conversation_members::Column::LastReadMessageId;
    let (proposed, current) =
        (Expr::col((Alias::new("excluded"), read)), Expr::col((conversation_members::Entity, read)));
    conversation_members::Entity::insert_many([member(low, high), member(high, low)])
        .on_conflict(
            OnConflict::columns([conversation_members::Column::ConversationId, conversation_members::Column::UserId])
                .update_column(conversation_members::Column::LastMessageId)
                .value(read, Expr::case(proposed.clone().gt(current.clone()), proposed).finally(current))
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    let mut outbox = Outbox::default();
    outbox.push(Topic::User(peer), Event::Message { id: message.id });
    outbox.push(Topic::User(viewer.user_id), Event::Message { id: message.id });
    broker.publish_all(outbox).await;
    let conversation = conversations::Model { last_message_id: Some(message.id), updated_at: now, ..conversation };
    Ok(Sent { message, conversation })
}

/// A client's id for a message: 1 to 64 letters, digits, `-`, `_`, `.` or `:` (a UUID fits).
fn client_message_id(id: &str) -> AppResult<String> {
    let ok = (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if !ok {
        return Err(AppError::bad_input("input.clientMessageId", "1 to 64 letters, digits, '-', '_', '.' or ':'"));
    }
    Ok(id.to_string())
}

/// The message the viewer already sent with `client_id`, if any. In another conversation, the id is
/// taken: CONFLICT rather than a silent answer about some other message.
async fn already_sent(
    db: &DatabaseConnection,
    viewer: &Viewer,
    client_id: &str,
    (low, high): (i64, i64),
) -> AppResult<Option<Sent>> {
    let Some(message) = messages::Entity::find()
        .filter(messages::Column::SenderId.eq(viewer.user_id))
        .filter(messages::Column::ClientMessageId.eq(client_id))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let conversation = conversations::Entity::find_by_id(message.conversation_id)
        .one(db)
        .await?
        .filter(|c| c.user_low == low && c.user_high == high)
        .ok_or_else(|| {
            AppError::Conflict("this clientMessageId was used for a message in another conversation".into())
        })?;
    Ok(Some(Sent { message, conversation }))
}

/// The viewer's conversations, the one with the newest message first.
pub async fn conversations(
    db: &DatabaseConnection,
    viewer: &Viewer,
    page: &PageArgs,
) -> AppResult<Page<conversation_members::Model>> {
    let mut query =
        conversation_members::Entity::find().filter(conversation_members::Column::UserId.eq(viewer.user_id));
    if let Some(after) = page.after_id() {
        query = query.filter(conversation_members::Column::LastMessageId.lt(after));
    }
    let rows =
        query.order_by_desc(conversation_members::Column::LastMessageId).limit(page.fetch_limit()).all(db).await?;
    Ok(Page::from_rows(page, rows, |m| Cursor::Id(m.last_message_id)))
}

/// A conversation's messages, newest first: `after` pages back into history, `before` towards the
/// present (what a client that was away fills its gap with).
pub async fn messages(
    db: &DatabaseConnection,
    viewer: &Viewer,
    conversation_id: i64,
    page: &PageArgs,
) -> AppResult<Page<messages::Model>> {
    conversation_for(db, viewer, conversation_id).await?;
    let query = messages::Entity::find().filter(messages::Column::ConversationId.eq(conversation_id));
    let rows = page.apply(query, messages::Column::Id, Sort::Desc).all(db).await?;
    Ok(Page::from_rows(page, rows, |m| Cursor::Id(m.id)))
}

/// What a subscriber missed: messages in any of the user's conversations after `id`, oldest first.
pub async fn after(db: &DatabaseConnection, user_id: i64, id: i64, limit: u64) -> AppResult<Vec<messages::Model>> {
    let mine = conversation_members::Entity::find()
        .select_only()
        .column(conversation_members::Column::ConversationId)
        .filter(conversation_members::Column::UserId.eq(user_id))
        .into_query();
    Ok(messages::Entity::find()
        .filter(messages::Column::ConversationId.in_subquery(mine))
        .filter(messages::Column::Id.gt(id))
        .order_by_asc(messages::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// The newest message id in the user's conversations: where a subscription without a cursor starts.
pub async fn head(db: &DatabaseConnection, user_id: i64) -> AppResult<i64> {
    let max: Option<i64> = conversation_members::Entity::find()
        .select_only()
        .column_as(conversation_members::Column::LastMessageId.max(), "max")
        .filter(conversation_members::Column::UserId.eq(user_id))
        .into_tuple()
        .one(db)
        .await?
        .flatten();
    Ok(max.unwrap_or(0))
}

/// Marks everything in the conversation up to its newest message as read by the viewer.
/// Marks a conversation read up to its newest message; the member's other devices hear of it
/// (`unreadCountsChanged`).
pub async fn mark_read(
    db: &DatabaseConnection,
    broker: &Broker,
    viewer: &Viewer,
    conversation_id: i64,
) -> AppResult<()> {
    let c = conversation_for(db, viewer, conversation_id).await?;
    let newest = c.last_message_id.unwrap_or(0);
    let moved = conversation_members::Entity::update_many()
        .col_expr(conversation_members::Column::LastReadMessageId, Expr::value(newest))
        .filter(conversation_members::Column::ConversationId.eq(conversation_id))
        .filter(conversation_members::Column::UserId.eq(viewer.user_id))
        // Two devices marking at once must not move the marker backwards.
        .filter(conversation_members::Column::LastReadMessageId.lt(newest))
        .exec(db)
        .await?;
    if moved.rows_affected > 0 {
        broker.publish(Topic::User(viewer.user_id), Event::UnreadChanged).await;
    }
    Ok(())
}

/// Unread messages in all of a member's conversations, in one statement.
pub async fn unread_total(db: &DatabaseConnection, user_id: i64) -> AppResult<i64> {
    use sea_orm::{DbBackend, Statement};
    let backend = db.get_database_backend();
    let p = if backend == DbBackend::Postgres { "$1" } else { "?" };
    let sql = format!(
        "SELECT COUNT(*) AS unread FROM messages m \
         JOIN conversation_members cm ON cm.conversation_id = m.conversation_id AND cm.user_id = {p} \
         WHERE m.id > cm.last_read_message_id AND m.sender_id <> cm.user_id"
    );
    let row = db.query_one_raw(Statement::from_sql_and_values(backend, sql, [user_id.into()])).await?;
    Ok(row.map(|r| r.try_get::<i64>("", "unread")).transpose()?.unwrap_or(0))
}

/// Unread messages per conversation for one user, for a page of conversations in one statement.
pub async fn unread_counts(
    db: &DatabaseConnection,
    user_id: i64,
    conversation_ids: &[i64],
) -> AppResult<std::collections::HashMap<i64, i64>> {
    use sea_orm::{DbBackend, FromQueryResult, Statement};
    if conversation_ids.is_empty() {
        return Ok(Default::default());
    }
    #[derive(FromQueryResult)]
    struct Row {
        conversation_id: i64,
        unread: i64,
    }
    let backend = db.get_database_backend();
    let placeholders: Vec<String> = (0..conversation_ids.len())
        .map(|i| if backend == DbBackend::Postgres { format!("${}", i + 2) } else { "?".into() })
        .collect();
    let first = if backend == DbBackend::Postgres { "$1" } else { "?" };
    let sql = format!(
        "SELECT m.conversation_id AS conversation_id, COUNT(*) AS unread FROM messages m \
         JOIN conversation_members cm ON cm.conversation_id = m.conversation_id AND cm.user_id = {first} \
         WHERE m.conversation_id IN ({}) AND m.id > cm.last_read_message_id AND m.sender_id <> cm.user_id \
         GROUP BY m.conversation_id",
        placeholders.join(", ")
    );
    let mut values: Vec<sea_orm::Value> = vec![user_id.into()];
    values.extend(conversation_ids.iter().map(|id| sea_orm::Value::from(*id)));
    let rows = Row::find_by_statement(Statement::from_sql_and_values(backend, sql, values)).all(db).await?;
    Ok(rows.into_iter().map(|r| (r.conversation_id, r.unread)).collect())
}

pub async fn messages_by_ids<C: ConnectionTrait>(db: &C, ids: &[i64]) -> AppResult<Vec<messages::Model>> {
    Ok(messages::Entity::find().filter(messages::Column::Id.is_in(ids.iter().copied())).all(db).await?)
}

pub async fn conversations_by_ids<C: ConnectionTrait>(db: &C, ids: &[i64]) -> AppResult<Vec<conversations::Model>> {
    Ok(conversations::Entity::find().filter(conversations::Column::Id.is_in(ids.iter().copied())).all(db).await?)
}

/// Blocks `target` for the viewer: no messages either way, no notifications from them. Idempotent.
pub async fn block(db: &DatabaseConnection, viewer: &Viewer, target: i64) -> AppResult<()> {
    if target == viewer.user_id {
        return Err(AppError::bad_input("input.userId", "you cannot block yourself"));
    }
    if users::Entity::find_by_id(target).count(db).await? == 0 {
        return Err(AppError::NotFound("user"));
    }
    user_blocks::Entity::insert(user_blocks::ActiveModel {
        blocker_id: Set(viewer.user_id),
        blocked_id: Set(target),
        created_at: Set(Utc::now()),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::columns([user_blocks::Column::BlockerId, user_blocks::Column::BlockedId]).do_nothing().to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

pub async fn unblock(db: &DatabaseConnection, viewer: &Viewer, target: i64) -> AppResult<()> {
    user_blocks::Entity::delete_many()
        .filter(user_blocks::Column::BlockerId.eq(viewer.user_id))
        .filter(user_blocks::Column::BlockedId.eq(target))
        .exec(db)
        .await?;
    Ok(())
}

/// Which of `targets` the user blocked.
pub async fn blocked_by(db: &DatabaseConnection, user_id: i64, targets: &[i64]) -> AppResult<Vec<i64>> {
    Ok(user_blocks::Entity::find()
        .select_only()
        .column(user_blocks::Column::BlockedId)
        .filter(user_blocks::Column::BlockerId.eq(user_id))
        .filter(user_blocks::Column::BlockedId.is_in(targets.iter().copied()))
        .into_tuple()
        .all(db)
        .await?)
}
