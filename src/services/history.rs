//! What the service records about a member's own use, and the member's control over it.
//!
//! Post views (with how long the post stayed open, as the client reports it) and search keywords are
//! recorded for signed-in members whose `recordHistory` setting is on and who accepted the privacy
//! policy version that requires consent; otherwise nothing is written.
//! Members read their history as connections and delete one entry or all of it. A search entry also
//! keeps the posts its search found (the recommended feed's search signal), so deleting the entry
//! takes its influence on the feed with it. View counts (for hot ranking) count every view, signed in
//! or not, and identify no one.

use chrono::Utc;
use entity::{browse_history, search_history, user_settings};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use crate::auth::Viewer;
use crate::error::{AppError, AppResult};
use crate::services::page::{Cursor, Page, PageArgs};
use crate::services::{posts, recommend};

/// A member's switches (both on unless switched off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub personalized_recommendations: bool,
    pub record_history: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { personalized_recommendations: true, record_history: true }
    }
}

pub async fn settings<C: ConnectionTrait>(db: &C, user_id: i64) -> AppResult<Settings> {
    Ok(user_settings::Entity::find_by_id(user_id).one(db).await?.map_or_else(Settings::default, |s| Settings {
        personalized_recommendations: s.personalized_recommendations,
        record_history: s.record_history,
    }))
}

/// Changes the given switches; `None` leaves one as it is.
pub async fn update_settings(
    db: &DatabaseConnection,
    viewer: &Viewer,
    personalized_recommendations: Option<bool>,
    record_history: Option<bool>,
) -> AppResult<Settings> {
    let current = settings(db, viewer.user_id).await?;
    let next = Settings {
        personalized_recommendations: personalized_recommendations.unwrap_or(current.personalized_recommendations),
        record_history: record_history.unwrap_or(current.record_history),
    };
    user_settings::Entity::insert(user_settings::ActiveModel {
        user_id: Set(viewer.user_id),
        personalized_recommendations: Set(next.personalized_recommendations),
        record_history: Set(next.record_history),
        updated_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::column(user_settings::Column::UserId)
            .update_columns([
                user_settings::Column::PersonalizedRecommendations,
                user_settings::Column::RecordHistory,
                user_settings::Column::UpdatedAt,
            ])
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(next)
}

/// Whether the member's use may be written down: their `recordHistory` switch is on, and they
/// accepted the privacy policy version that requires consent (until then nothing is recorded, as
/// nothing else is written; view counts still count, they name no one).
async fn may_record(db: &DatabaseConnection, user_id: i64) -> AppResult<bool> {
    Ok(settings(db, user_id).await?.record_history
        && crate::services::policy::consent_required(db, user_id).await?.is_none())
}

/// Longest view duration recorded; a tab left open for days is not reading.
const MAX_DURATION_MS: i64 = 6 * 3600 * 1000;

/// Counts a view of a live post and, for a member who records history, remembers it.
pub async fn record_view(
    db: &DatabaseConnection,
    viewer: Option<&Viewer>,
    post_id: i64,
    duration_ms: Option<i64>,
) -> AppResult<()> {
    if let Some(ms) = duration_ms
        && ms < 0
    {
        return Err(AppError::bad_input("input.durationMs", "must not be negative"));
    }
    if !posts::bump_counter(db, post_id, entity::posts::Column::ViewCount, 1).await? {
        return Err(AppError::NotFound("post"));
    }
    if let Some(v) = viewer
        && may_record(db, v.user_id).await?
    {
        browse_history::ActiveModel {
            user_id: Set(v.user_id),
            post_id: Set(post_id),
            duration_ms: Set(duration_ms.map(|ms| ms.min(MAX_DURATION_MS))),
            viewed_at: Set(Utc::now()),
            ..Default::default()
        }
        .insert(db)
        .await?;
    }
    Ok(())
}

/// Remembers a search keyword for a member who records history, with the posts it found: the
/// recommended feed's search signal, read from the entry so the feed never runs searches itself.
/// `found` is the first page of the same post search (no board) when the caller has it and it holds
/// the [`recommend::SEARCH_MATCHES`] best or all there are; otherwise the search runs here.
pub async fn record_search(
    db: &DatabaseConnection,
    resident: &crate::services::search::Resident,
    viewer: &Viewer,
    query: &str,
    found: Option<&[i64]>,
) -> AppResult<()> {
    let query: String = query.trim().chars().take(200).collect();
    if query.is_empty() || !may_record(db, viewer.user_id).await? {
        return Ok(());
    }
    let matches = match found {
        Some(ids) => ids.iter().copied().take(recommend::SEARCH_MATCHES as usize).collect(),
        None => recommend::search_matches(db, Some(resident), &query).await?,
    };
    search_history::ActiveModel {
        user_id: Set(viewer.user_id),
        query: Set(query),
        searched_at: Set(Utc::now()),
        matched_posts: Set(Some(encode_matches(&matches))),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Post ids as `search_history.matched_posts` keeps them: best first, space separated.
pub(crate) fn encode_matches(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(" ")
}

pub(crate) fn decode_matches(stored: &str) -> Vec<i64> {
    stored.split_ascii_whitespace().filter_map(|id| id.parse().ok()).collect()
}

/// Fills in the matches of an entry recorded before they were kept (see [`recommend`]).
pub(crate) async fn store_matches<C: ConnectionTrait>(db: &C, entry: i64, ids: &[i64]) -> AppResult<()> {
    search_history::Entity::update_many()
        .col_expr(search_history::Column::MatchedPosts, Expr::value(encode_matches(ids)))
        .filter(search_history::Column::Id.eq(entry))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn browse_history(
    db: &DatabaseConnection,
    viewer: &Viewer,
    page: &PageArgs,
) -> AppResult<Page<browse_history::Model>> {
    let mut q = browse_history::Entity::find().filter(browse_history::Column::UserId.eq(viewer.user_id));
    if let Some(after) = page.after_id() {
        q = q.filter(browse_history::Column::Id.lt(after));
    }
    let rows = q.order_by_desc(browse_history::Column::Id).limit(page.fetch_limit()).all(db).await?;
    Ok(Page::from_rows(page, rows, |r| Cursor::Id(r.id)))
}

pub async fn search_history(
    db: &DatabaseConnection,
    viewer: &Viewer,
    page: &PageArgs,
) -> AppResult<Page<search_history::Model>> {
    let mut q = search_history::Entity::find().filter(search_history::Column::UserId.eq(viewer.user_id));
    if let Some(after) = page.after_id() {
        q = q.filter(search_history::Column::Id.lt(after));
    }
    let rows = q.order_by_desc(search_history::Column::Id).limit(page.fetch_limit()).all(db).await?;
    Ok(Page::from_rows(page, rows, |r| Cursor::Id(r.id)))
}

/// Deletes one browse-history entry of the viewer's, or all of them; returns how many went.
pub async fn delete_browse(db: &DatabaseConnection, viewer: &Viewer, entry: Option<i64>) -> AppResult<u64> {
    let mut q = browse_history::Entity::delete_many().filter(browse_history::Column::UserId.eq(viewer.user_id));
    if let Some(id) = entry {
        q = q.filter(browse_history::Column::Id.eq(id));
    }
    Ok(q.exec(db).await?.rows_affected)
}

pub async fn delete_searches(db: &DatabaseConnection, viewer: &Viewer, entry: Option<i64>) -> AppResult<u64> {
    let mut q = search_history::Entity::delete_many().filter(search_history::Column::UserId.eq(viewer.user_id));
    if let Some(id) = entry {
        q = q.filter(search_history::Column::Id.eq(id));
    }
    Ok(q.exec(db).await?.rows_affected)
}

/// For account deletion: everything recorded about the member.
pub async fn erase<C: ConnectionTrait>(db: &C, user_id: i64) -> AppResult<()> {
    browse_history::Entity::delete_many().filter(browse_history::Column::UserId.eq(user_id)).exec(db).await?;
    search_history::Entity::delete_many().filter(search_history::Column::UserId.eq(user_id)).exec(db).await?;
    user_settings::Entity::delete_many().filter(user_settings::Column::UserId.eq(user_id)).exec(db).await?;
    Ok(())
}

/// The ids of posts a member viewed (for recommendations), newest first, deduplicated by the caller.
pub async fn viewed_posts<C: ConnectionTrait>(db: &C, user_id: i64, limit: u64) -> AppResult<Vec<i64>> {
    Ok(browse_history::Entity::find()
        .select_only()
        .column(browse_history::Column::PostId)
        .filter(browse_history::Column::UserId.eq(user_id))
        .order_by_desc(browse_history::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?)
}
