//! Live streams: metadata, the host's ingest key, and the room chat.
//!
//! The video itself goes through whatever media server the operator runs; the gateway owns the
//! stream's life cycle (SCHEDULED -> LIVE -> ENDED), the ingest key that only the host sees, and the
//! chat. A chat line takes the next `seq` of its room under the room row's lock, so `seq` has no holes
//! and a viewer can tell a line the broker lost (a jump) from lines it was sent.

use chrono::Utc;
use entity::{boards, live_chat_messages, live_chat_mutes, live_streams};
use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};

use crate::auth::{self, Viewer};
use crate::authz::{self, Action};
use crate::error::{AppError, AppResult};
use crate::pubsub::{Broker, ChatLine, Event, Topic};
use crate::services::page::{Cursor, Page, PageArgs, Sort};
use crate::services::validate::{self, Lines};

pub const TITLE_MAX: usize = 100;
pub const CHAT_MAX: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Scheduled,
    Live,
    Ended,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Scheduled => "SCHEDULED",
            Status::Live => "LIVE",
            Status::Ended => "ENDED",
        }
    }

    pub fn parse(s: &str) -> Status {
        match s {
            "LIVE" => Status::Live,
            "ENDED" => Status::Ended,
            _ => Status::Scheduled,
        }
    }
}

/// The name a room's video has on the media server: public (playback URLs carry it), unlike the
/// ingest key.
pub fn stream_name(id: i64) -> String {
    format!("ecer-{id}")
}

pub fn chat_line(m: live_chat_messages::Model) -> ChatLine {
    ChatLine {
        id: m.id,
        stream_id: m.stream_id,
        seq: m.seq,
        user_id: m.user_id,
        body: m.body,
        created_at: m.created_at,
        deleted: m.deleted_at.is_some(),
    }
}

pub async fn create(
    db: &DatabaseConnection,
    viewer: &Viewer,
    title: &str,
    board_id: Option<i64>,
    cover: Option<&str>,
) -> AppResult<live_streams::Model> {
    let title = validate::text("input.title", title, 1, TITLE_MAX, Lines::Single)?;
    if let Some(board) = board_id
        && boards::Entity::find_by_id(board).one(db).await?.is_none()
    {
        return Err(AppError::NotFound("board"));
    }
    if let Some(cover) = cover {
        // The host's own public image, not one a post shows.
        let usable = entity::media::Entity::find_by_id(cover.to_string())
            .filter(entity::media::Column::OwnerId.eq(viewer.user_id))
            .filter(entity::media::Column::Kind.eq(crate::services::media::Kind::PostImage.as_str()))
            .filter(entity::media::Column::Private.eq(false))
            .filter(entity::media::Column::PostId.is_null())
            .one(db)
            .await?;
        if usable.is_none() {
            return Err(AppError::bad_input("input.coverMediaId", "is not one of your uploaded images"));
        }
    }
    let ingest_key = auth::new_token().map_err(AppError::internal)?;
    Ok(live_streams::ActiveModel {
        host_id: Set(viewer.user_id),
        board_id: Set(board_id),
        title: Set(title),
        status: Set(Status::Scheduled.as_str().to_string()),
        ingest_key: Set(ingest_key),
        chat_seq: Set(0),
        created_at: Set(Utc::now()),
        started_at: Set(None),
        ended_at: Set(None),
        cover_media_id: Set(cover.map(str::to_string)),
        ..Default::default()
    }
    .insert(db)
    .await?)
}

async fn hosted(db: &DatabaseConnection, viewer: &Viewer, id: i64) -> AppResult<live_streams::Model> {
    let stream = live_streams::Entity::find_by_id(id).one(db).await?.ok_or(AppError::NotFound("live stream"))?;
    authz::require(Some(viewer), Action::HostLive(&stream))?;
    Ok(stream)
}

/// SCHEDULED -> LIVE, announced to the room's `liveStreamUpdated` subscribers. Starting a live
/// stream again is a no-op; an ended one cannot restart.
pub async fn start(
    db: &DatabaseConnection,
    broker: &Broker,
    viewer: &Viewer,
    id: i64,
) -> AppResult<live_streams::Model> {
    let stream = hosted(db, viewer, id).await?;
    match Status::parse(&stream.status) {
        Status::Live => Ok(stream),
        Status::Ended => Err(AppError::Conflict("this live stream has ended".into())),
        Status::Scheduled => {
            let now = Utc::now();
            live_streams::Entity::update_many()
                .col_expr(live_streams::Column::Status, Expr::value(Status::Live.as_str()))
                .col_expr(live_streams::Column::StartedAt, Expr::value(now))
                .filter(live_streams::Column::Id.eq(id))
                .filter(live_streams::Column::Status.eq(Status::Scheduled.as_str()))
                .exec(db)
                .await?;
            broker.publish(Topic::Live(id), Event::LiveStarted).await;
            reload(db, id).await
        }
    }
}

/// -> ENDED, which completes every viewer's chat subscription. Idempotent.
pub async fn end(db: &DatabaseConnection, broker: &Broker, viewer: &Viewer, id: i64) -> AppResult<live_streams::Model> {
    let stream = hosted(db, viewer, id).await?;
    if Status::parse(&stream.status) == Status::Ended {
        return Ok(stream);
    }
    live_streams::Entity::update_many()
        .col_expr(live_streams::Column::Status, Expr::value(Status::Ended.as_str()))
        .col_expr(live_streams::Column::EndedAt, Expr::value(Utc::now()))
        .filter(live_streams::Column::Id.eq(id))
        .exec(db)
        .await?;
    broker.publish(Topic::Live(id), Event::LiveEnded).await;
    reload(db, id).await
}

async fn reload(db: &DatabaseConnection, id: i64) -> AppResult<live_streams::Model> {
    live_streams::Entity::find_by_id(id).one(db).await?.ok_or(AppError::NotFound("live stream"))
}

/// Whether the stream has ended (or is gone).
pub async fn has_ended(db: &DatabaseConnection, id: i64) -> AppResult<bool> {
    Ok(get(db, id).await?.is_none_or(|s| Status::parse(&s.status) == Status::Ended))
}

pub async fn by_ids<C: ConnectionTrait>(db: &C, ids: &[i64]) -> AppResult<Vec<live_streams::Model>> {
    Ok(live_streams::Entity::find().filter(live_streams::Column::Id.is_in(ids.iter().copied())).all(db).await?)
}

pub async fn get(db: &DatabaseConnection, id: i64) -> AppResult<Option<live_streams::Model>> {
    Ok(live_streams::Entity::find_by_id(id).one(db).await?)
}

/// Streams newest first, optionally of one status.
pub async fn list(
    db: &DatabaseConnection,
    status: Option<Status>,
    page: &PageArgs,
) -> AppResult<Page<live_streams::Model>> {
    let mut query = live_streams::Entity::find();
    if let Some(status) = status {
        query = query.filter(live_streams::Column::Status.eq(status.as_str()));
    }
    if let Some(after) = page.after_id() {
        query = query.filter(live_streams::Column::Id.lt(after));
    }
    let rows = query.order_by_desc(live_streams::Column::Id).limit(page.fetch_limit()).all(db).await?;
    Ok(Page::from_rows(page, rows, |s| Cursor::Id(s.id)))
}

/// Says a line in a live room. Only while the stream is LIVE.
pub async fn say(
    db: &DatabaseConnection,
    broker: &Broker,
    viewer: &Viewer,
    stream_id: i64,
    body: &str,
) -> AppResult<ChatLine> {
    let body = validate::text("input.body", body, 1, CHAT_MAX, Lines::Single)?;
    let muted = live_chat_mutes::Entity::find_by_id((stream_id, viewer.user_id))
        .filter(live_chat_mutes::Column::MutedUntil.gt(Utc::now()))
        .one(db)
        .await?;
    if muted.is_some() {
        return Err(AppError::Forbidden("the host or a moderator muted you in this live room for a while"));
    }
    let txn = db.begin().await?;
    // Taking the next seq is the first write: it locks the room row until commit, so lines commit in
    // seq order, and it doubles as the "is it live" check.
    let seq: Option<i64> = live_streams::Entity::update_many()
        .col_expr(live_streams::Column::ChatSeq, Expr::col(live_streams::Column::ChatSeq).add(1))
        .filter(live_streams::Column::Id.eq(stream_id))
        .filter(live_streams::Column::Status.eq(Status::Live.as_str()))
        .exec_with_returning(&txn)
        .await?
        .into_iter()
        .next()
        .map(|s| s.chat_seq);
    let Some(seq) = seq else {
        txn.rollback().await?;
        return match get(db, stream_id).await? {
            Some(_) => Err(AppError::Conflict("this live stream is not live".into())),
            None => Err(AppError::NotFound("live stream")),
        };
    };
    let line = live_chat_messages::ActiveModel {
        stream_id: Set(stream_id),
        seq: Set(seq),
        user_id: Set(viewer.user_id),
        body: Set(body),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    let line = chat_line(line);
    broker.publish(Topic::Live(stream_id), Event::Chat(line.clone())).await;
    Ok(line)
}

/// Deletes a chat line (its host or a moderator): the row stays as a tombstone with no body, so chat
/// cursors stay contiguous; viewers holding the line are told at once.
pub async fn delete_chat_line(
    db: &DatabaseConnection,
    broker: &Broker,
    viewer: &Viewer,
    line_id: i64,
) -> AppResult<(ChatLine, live_streams::Model)> {
    let line = live_chat_messages::Entity::find_by_id(line_id).one(db).await?.ok_or(AppError::NotFound("chat line"))?;
    let stream = get(db, line.stream_id).await?.ok_or(AppError::NotFound("live stream"))?;
    authz::require(Some(viewer), Action::HostLive(&stream))?;
    if line.deleted_at.is_some() {
        return Ok((chat_line(line), stream));
    }
    let mut gone: live_chat_messages::ActiveModel = line.into();
    gone.body = Set(String::new());
    gone.deleted_at = Set(Some(Utc::now()));
    let line = chat_line(gone.update(db).await?);
    broker.publish(Topic::Live(stream.id), Event::ChatDeleted(line.clone())).await;
    Ok((line, stream))
}

/// Mutes `user_id` in a live room for `minutes` (its host or a moderator); 0 lifts the mute.
/// Returns until when.
pub async fn mute(
    db: &DatabaseConnection,
    viewer: &Viewer,
    stream_id: i64,
    user_id: i64,
    minutes: u32,
) -> AppResult<Option<chrono::DateTime<Utc>>> {
    let stream = get(db, stream_id).await?.ok_or(AppError::NotFound("live stream"))?;
    authz::require(Some(viewer), Action::HostLive(&stream))?;
    if user_id == stream.host_id {
        return Err(AppError::bad_input("input.userId", "is the host of this live room"));
    }
    if minutes == 0 {
        live_chat_mutes::Entity::delete_by_id((stream_id, user_id)).exec(db).await?;
        return Ok(None);
    }
    let now = Utc::now();
    let until = now + chrono::Duration::minutes(i64::from(minutes));
    live_chat_mutes::Entity::insert(live_chat_mutes::ActiveModel {
        stream_id: Set(stream_id),
        user_id: Set(user_id),
        muted_until: Set(until),
        created_at: Set(now),
    })
    .on_conflict(
        sea_orm::sea_query::OnConflict::columns([live_chat_mutes::Column::StreamId, live_chat_mutes::Column::UserId])
            .update_column(live_chat_mutes::Column::MutedUntil)
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(Some(until))
}

/// One chat line (a tombstone if deleted); live rooms are public.
pub async fn chat_line_by_id(db: &DatabaseConnection, id: i64) -> AppResult<Option<ChatLine>> {
    Ok(live_chat_messages::Entity::find_by_id(id).one(db).await?.map(chat_line))
}

/// Chat lines after `seq`, oldest first, at most `limit`.
pub async fn chat_after(db: &DatabaseConnection, stream_id: i64, seq: i64, limit: u64) -> AppResult<Vec<ChatLine>> {
    let rows = live_chat_messages::Entity::find()
        .filter(live_chat_messages::Column::StreamId.eq(stream_id))
        .filter(live_chat_messages::Column::Seq.gt(seq))
        .order_by_asc(live_chat_messages::Column::Seq)
        .limit(limit)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(chat_line).collect())
}

/// Chat history newest first, for the room page: `after` pages back, `before` towards the present.
pub async fn chat_history(db: &DatabaseConnection, stream_id: i64, page: &PageArgs) -> AppResult<Page<ChatLine>> {
    let query = live_chat_messages::Entity::find().filter(live_chat_messages::Column::StreamId.eq(stream_id));
    let rows = page.apply(query, live_chat_messages::Column::Seq, Sort::Desc).all(db).await?;
    Ok(Page::from_rows(page, rows.into_iter().map(chat_line).collect(), |l| Cursor::Id(l.seq)))
}
