//! The thumbnail worker: images (and videos' posters) get a small JPEG after the upload has been
//! answered, never on the request path.
//!
//! The job lives on the `media` row, as an outbox row does ([`super::sms_outbox`]): an upload writes
//! `thumbnail_status = PENDING`; a worker claims the row with one conditional UPDATE (`PENDING`, or
//! `WORKING` under a claim that lapsed because its instance died), so of several instances sharing
//! the database exactly one makes each thumbnail, and a crash or restart leaves nothing undone.
//! Decoding runs on a blocking thread under [`crate::media::probe::limits`]; a file that cannot be
//! decoded (damaged, a bomb, a decoder that panicked) is `FAILED` at once: logged and counted
//! (`thumbnails_total{outcome="failed"}`), never retried. A row claimed [`MAX_ATTEMPTS`] times
//! without finishing (the process died while decoding it, again and again) is given up too.
//!
//! Each instance's worker is woken by its own uploads ([`crate::media::MediaStore::wake_thumbnailer`])
//! and polls every [`POLL`] for what other instances or a crash left.

use chrono::{DateTime, Duration, Utc};
use entity::media;
use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::error::{AppError, AppResult};
use crate::media::{Area, MediaStore, thumbnail};
use crate::services::media::{Kind, ThumbnailStatus};

/// Claims one row may have before it is given up (each claim that did not finish was a crash).
pub const MAX_ATTEMPTS: i32 = 3;
/// How long a claim holds: far longer than one decode takes, so a live worker is never overtaken.
pub const CLAIM_FOR: Duration = Duration::seconds(120);
/// How often a worker looks for work it was not woken for.
pub const POLL: std::time::Duration = std::time::Duration::from_secs(30);
/// Rows one look takes.
const BATCH: u64 = 20;

/// What one [`attempt`] came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Another worker holds the row, or it is done, or gone.
    NotClaimed,
    Ready,
    Failed(String),
}

/// Rows a worker may take: `PENDING`, or `WORKING` under a claim that lapsed (a crash).
fn claimable(now: DateTime<Utc>) -> Condition {
    Condition::any().add(media::Column::ThumbnailStatus.eq(ThumbnailStatus::Pending.as_str())).add(
        media::Column::ThumbnailStatus
            .eq(ThumbnailStatus::Working.as_str())
            .and(media::Column::ThumbnailClaimedUntil.lt(now)),
    )
}

/// Claims row `id` if it is claimable and makes its thumbnail; see the module notes.
pub async fn attempt(db: &DatabaseConnection, store: &MediaStore, id: &str, now: DateTime<Utc>) -> AppResult<Outcome> {
    let claimed = media::Entity::update_many()
        .col_expr(media::Column::ThumbnailStatus, Expr::value(ThumbnailStatus::Working.as_str()))
        .col_expr(media::Column::ThumbnailClaimedUntil, Expr::value(Some(now + CLAIM_FOR)))
        .col_expr(media::Column::ThumbnailAttempts, Expr::col(media::Column::ThumbnailAttempts).add(1))
        .filter(media::Column::Id.eq(id))
        .filter(claimable(now))
        .exec(db)
        .await?;
    if claimed.rows_affected == 0 {
        return Ok(Outcome::NotClaimed);
    }
    let Some(row) = media::Entity::find_by_id(id.to_string()).one(db).await? else { return Ok(Outcome::NotClaimed) };
    let Ok(uuid) = uuid::Uuid::parse_str(&row.id) else {
        return settle(db, store, &row, Err("not a UUID".into())).await;
    };
    if row.thumbnail_attempts > MAX_ATTEMPTS {
        let why = format!("claimed {MAX_ATTEMPTS} times without finishing");
        return settle(db, store, &row, Err(why)).await;
    }
    // A video's thumbnail is its poster's.
    let source = if Kind::parse(&row.kind) == Kind::Video { Area::Posters } else { Area::Public };
    let made = match store.read(source, &uuid).await.map_err(AppError::internal)? {
        None => Err("the file is gone".to_string()),
        Some(bytes) => match tokio::task::spawn_blocking(move || thumbnail::make(&bytes)).await {
            Ok(made) => made,
            Err(e) => Err(format!("the decoder failed: {e}")),
        },
    };
    settle(db, store, &row, made).await
}

/// Writes the thumbnail (or records why there is none) while this worker's claim holds the row.
async fn settle(
    db: &DatabaseConnection,
    store: &MediaStore,
    row: &media::Model,
    made: Result<Vec<u8>, String>,
) -> AppResult<Outcome> {
    let uuid = uuid::Uuid::parse_str(&row.id).ok();
    let (status, outcome) = match (made, uuid) {
        (Ok(bytes), Some(uuid)) => {
            store.put_bytes(Area::Thumbnails, &uuid, &bytes).await.map_err(AppError::internal)?;
            (ThumbnailStatus::Ready, Outcome::Ready)
        }
        (Ok(_), None) => (ThumbnailStatus::Failed, Outcome::Failed("not a UUID".into())),
        (Err(why), _) => (ThumbnailStatus::Failed, Outcome::Failed(why)),
    };
    let settled = media::Entity::update_many()
        .col_expr(media::Column::ThumbnailStatus, Expr::value(status.as_str()))
        .col_expr(media::Column::ThumbnailClaimedUntil, Expr::value(None::<DateTime<Utc>>))
        .filter(media::Column::Id.eq(row.id.clone()))
        .filter(media::Column::ThumbnailStatus.eq(ThumbnailStatus::Working.as_str()))
        .filter(media::Column::ThumbnailAttempts.eq(row.thumbnail_attempts))
        .exec(db)
        .await?;
    if settled.rows_affected == 0 {
        // Erased while we worked (or retaken after our claim lapsed): a thumbnail of a row that no
        // longer exists must not stay on disk.
        let gone = media::Entity::find_by_id(row.id.clone()).one(db).await?.is_none();
        if gone && let Some(uuid) = uuid {
            store.remove(Area::Thumbnails, &uuid).await.map_err(AppError::internal)?;
        }
        return Ok(Outcome::NotClaimed);
    }
    let label = match &outcome {
        Outcome::Ready => "ready",
        Outcome::Failed(why) => {
            tracing::warn!(media = %row.id, mime = %row.mime, error = %why, "no thumbnail: the image cannot be decoded");
            "failed"
        }
        Outcome::NotClaimed => "skipped",
    };
    crate::metrics::METRICS.thumbnails.with_label_values(&[label]).inc();
    Ok(outcome)
}

/// Makes every claimable thumbnail (a batch at a time, until none is left); returns how many.
pub async fn make_due(db: &DatabaseConnection, store: &MediaStore) -> AppResult<usize> {
    let mut made = 0;
    loop {
        let now = Utc::now();
        let due: Vec<String> = media::Entity::find()
            .select_only()
            .column(media::Column::Id)
            .filter(claimable(now))
            .order_by_asc(media::Column::CreatedAt)
            .limit(BATCH)
            .into_tuple()
            .all(db)
            .await?;
        let full = due.len() as u64 == BATCH;
        for id in due {
            if attempt(db, store, &id, Utc::now()).await? == Outcome::Ready {
                made += 1;
            }
        }
        if !full {
            return Ok(made);
        }
    }
}

/// This instance's worker: on every upload that queued a thumbnail, and every [`POLL`].
pub fn spawn(db: DatabaseConnection, store: MediaStore) {
    tokio::spawn(crate::db::background(async move {
        // The first look after one period: a fresh start's backlog is found then, and the statements
        // of an idle worker do not run while the gateway is starting.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + POLL, POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = store.thumbnails_due() => {}
            }
            if let Err(err) = make_due(&db, &store).await {
                tracing::warn!(?err, "thumbnails: a pass failed; retried at the next poll");
            }
        }
    }));
}
