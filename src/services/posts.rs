//! Posts: create, edit, soft-delete, list newest or hottest.

use chrono::{DateTime, Utc};
use entity::{boards, posts, users};
use sea_orm::sea_query::{Condition, Expr, ExprTrait as _};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};

use crate::auth::Viewer;
use crate::authz::{self, Action};
use crate::error::{AppError, AppResult};
use crate::pubsub::{Broker, Event, Topic};
use crate::services::page::{Cursor, Page, PageArgs};
use crate::services::validate::{self, Lines};
use crate::services::{audit, search};

pub const TITLE_MAX: usize = 120;
pub const BODY_MAX: usize = 20_000;
pub const IMAGES_MAX: usize = 9;

/// Hot ranking in the manner of Reddit: the order of magnitude of engagement plus the age, where
/// every 45,000 seconds (12.5 hours) of recency is worth a tenfold engagement.
///
/// `score = log10(max(likes + 2*comments + 2*favorites + views/10, 1)) + (created_at - 2026-01-01) / 45000`
///
/// Ten views weigh as much as one like: reading is cheap, and views are easy to inflate.
///
/// The score depends only on counters and the creation time, never on "now", so it is stored and
/// indexed and only changes when a counter does: HOT lists are an index scan, not a sort of all posts.
pub fn hot_score(likes: i64, comments: i64, favorites: i64, views: i64, created_at: DateTime<Utc>) -> f64 {
    const EPOCH: i64 = 1_767_225_600;
    let engagement = ((likes + 2 * comments + 2 * favorites) as f64 + views as f64 / 10.0).max(1.0);
    engagement.log10() + (created_at.timestamp() - EPOCH) as f64 / 45_000.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Latest,
    Hot,
}

/// Which posts a list shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter {
    pub board_id: Option<i64>,
    pub author_id: Option<i64>,
}

pub struct NewPost {
    pub board_id: i64,
    pub title: String,
    pub body: String,
    pub image_urls: Vec<String>,
    /// The author's uploads (`uploadMedia`, POST_IMAGE or VIDEO) to attach, in order.
    pub media_ids: Vec<String>,
}

fn image_urls(urls: Vec<String>) -> AppResult<serde_json::Value> {
    if urls.len() > IMAGES_MAX {
        return Err(AppError::bad_input("input.imageUrls", format!("at most {IMAGES_MAX} images")));
    }
    let urls = urls
        .iter()
        .enumerate()
        .map(|(i, u)| validate::http_url(&format!("input.imageUrls[{i}]"), u))
        .collect::<AppResult<Vec<_>>>()?;
    Ok(serde_json::Value::from(urls))
}

pub async fn create(db: &DatabaseConnection, viewer: &Viewer, input: NewPost) -> AppResult<posts::Model> {
    let title = validate::text("input.title", &input.title, 1, TITLE_MAX, Lines::Single)?;
    let body = validate::text("input.body", &input.body, 1, BODY_MAX, Lines::Multi)?;
    let images = image_urls(input.image_urls)?;
    let txn = db.begin().await?;
    // Counting first takes the write lock at once (SQLite) and proves the board exists.
    let touched = boards::Entity::update_many()
        .col_expr(boards::Column::PostCount, Expr::col(boards::Column::PostCount).add(1))
        .filter(boards::Column::Id.eq(input.board_id))
        .exec(&txn)
        .await?;
    if touched.rows_affected == 0 {
        return Err(AppError::NotFound("board"));
    }
    users::Entity::update_many()
        .col_expr(users::Column::PostCount, Expr::col(users::Column::PostCount).add(1))
        .filter(users::Column::Id.eq(viewer.user_id))
        .exec(&txn)
        .await?;
    let now = Utc::now();
    let post = posts::ActiveModel {
        board_id: Set(input.board_id),
        author_id: Set(viewer.user_id),
        title: Set(title),
        body: Set(body),
        image_urls: Set(images),
        like_count: Set(0),
        comment_count: Set(0),
        favorite_count: Set(0),
        hot_score: Set(hot_score(0, 0, 0, 0, now)),
        view_count: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    search::index(&txn, search::Kind::Post, post.id, Some(post.board_id), &search_text(&post), post.created_at).await?;
    crate::services::media::attach_to_post(&txn, viewer.user_id, post.id, &input.media_ids).await?;
    txn.commit().await?;
    Ok(post)
}

/// What a post is found by.
pub fn search_text(post: &posts::Model) -> String {
    format!("{}\n{}", post.title, post.body)
}

pub struct PostPatch {
    pub title: Option<String>,
    pub body: Option<String>,
    pub image_urls: Option<Vec<String>>,
    /// The post's uploads from now on, in order (`None`: unchanged).
    pub media_ids: Option<Vec<String>>,
}

/// Only the author edits a post; moderators may remove it but not put words in the author's mouth.
pub async fn update(
    db: &DatabaseConnection,
    broker: &Broker,
    store: &crate::media::MediaStore,
    viewer: &Viewer,
    post_id: i64,
    patch: PostPatch,
) -> AppResult<posts::Model> {
    let post = live(db, post_id).await?;
    authz::require(Some(viewer), Action::EditPost(&post))?;
    let mut update = posts::Entity::update_many()
        .col_expr(posts::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(posts::Column::Id.eq(post_id))
        .filter(posts::Column::DeletedAt.is_null());
    if let Some(title) = patch.title {
        update = update.col_expr(
            posts::Column::Title,
            Expr::value(validate::text("input.title", &title, 1, TITLE_MAX, Lines::Single)?),
        );
    }
    if let Some(body) = patch.body {
        update = update.col_expr(
            posts::Column::Body,
            Expr::value(validate::text("input.body", &body, 1, BODY_MAX, Lines::Multi)?),
        );
    }
    if let Some(urls) = patch.image_urls {
        update = update.col_expr(posts::Column::ImageUrls, Expr::value(image_urls(urls)?));
    }
    let txn = db.begin().await?;
    // Conditional on the post still being live, so an edit racing a delete cannot write into it.
    if update.exec(&txn).await?.rows_affected == 0 {
        return Err(AppError::NotFound("post"));
    }
    let dropped = match &patch.media_ids {
        Some(ids) => crate::services::media::replace_on_post(&txn, viewer.user_id, post_id, ids).await?,
        None => Vec::new(),
    };
    txn.commit().await?;
    // Files taken off the post go once the edit is committed; should that fail, they stay as the
    // author's unattached uploads (erased with the account), not on the post.
    if let Err(err) = crate::services::media::remove(db, store, dropped).await {
        tracing::warn!(?err, post_id, "media taken off a post could not be deleted");
    }
    let post = live(db, post_id).await?;
    search::index(db, search::Kind::Post, post.id, Some(post.board_id), &search_text(&post), post.created_at).await?;
    broker.publish(Topic::Post(post_id), Event::PostChanged).await;
    Ok(post)
}

/// Soft delete by the author or a moderator: the row stays so comments keep their thread, but the
/// content is blanked at once; deleted posts vanish from every list and from `post(id)`.
/// Returns the post as it was, so the caller can show its board's and author's fresh counters.
pub async fn delete(
    db: &DatabaseConnection,
    broker: &Broker,
    viewer: &Viewer,
    note: audit::Note<'_>,
    post_id: i64,
) -> AppResult<posts::Model> {
    let post = live(db, post_id).await?;
    authz::require(Some(viewer), Action::DeletePost(&post))?;
    // A moderator removing someone else's words says why, on the staff record.
    let staff_entry = if post.author_id != viewer.user_id {
        let entry = audit::Entry::new(audit::Action::DeletePost, Some(post.author_id), format!("Post:{post_id}"));
        Some(entry.because(Some(note.required_reason()?)))
    } else {
        None
    };
    take_down(db, broker, viewer, note.ip, &post, staff_entry, None).await?;
    Ok(post)
}

/// A moderator hides a post (a report's outcome): taken down exactly as a deleted one, so no read
/// path can show it, with its words kept in `hidden_content` for an appeal. Idempotent.
pub async fn hide(
    db: &DatabaseConnection,
    broker: &Broker,
    viewer: &Viewer,
    note: audit::Note<'_>,
    post_id: i64,
) -> AppResult<()> {
    authz::require(Some(viewer), Action::HandleReports)?;
    let reason = note.required_reason()?;
    let post = posts::Entity::find_by_id(post_id).one(db).await?.ok_or(AppError::NotFound("post"))?;
    if post.deleted_at.is_some() {
        return Ok(());
    }
    let entry = audit::Entry::new(audit::Action::HidePost, Some(post.author_id), format!("Post:{post_id}"))
        .because(Some(reason));
    let kept = serde_json::json!({ "title": post.title, "body": post.body, "imageUrls": post.image_urls });
    take_down(db, broker, viewer, note.ip, &post, Some(entry), Some(kept)).await
}

/// Blanks a live post, with its counters, favourites and search entry, in one transaction; `kept`
/// words go to `hidden_content` in the same one. A post taken down meanwhile is left as it is.
async fn take_down(
    db: &DatabaseConnection,
    broker: &Broker,
    viewer: &Viewer,
    ip: Option<&str>,
    post: &posts::Model,
    staff_entry: Option<audit::Entry>,
    kept: Option<serde_json::Value>,
) -> AppResult<()> {
    let post_id = post.id;
    let txn = db.begin().await?;
    if let Some(entry) = staff_entry {
        audit::record(&txn, viewer, ip, entry).await?;
    }
    let now = Utc::now();
    let res = posts::Entity::update_many()
        .col_expr(posts::Column::DeletedAt, Expr::value(now))
        .col_expr(posts::Column::Title, Expr::value(""))
        .col_expr(posts::Column::Body, Expr::value(""))
        .col_expr(posts::Column::ImageUrls, Expr::value(serde_json::json!([])))
        .filter(posts::Column::Id.eq(post_id))
        .filter(posts::Column::DeletedAt.is_null())
        .exec(&txn)
        .await?;
    if res.rows_affected == 1 {
        boards::Entity::update_many()
            .col_expr(boards::Column::PostCount, Expr::col(boards::Column::PostCount).sub(1))
            .filter(boards::Column::Id.eq(post.board_id))
            .exec(&txn)
            .await?;
        users::Entity::update_many()
            .col_expr(users::Column::PostCount, Expr::col(users::Column::PostCount).sub(1))
            .filter(users::Column::Id.eq(post.author_id))
            .exec(&txn)
            .await?;
        crate::services::social::drop_favorites_of_post(&txn, post_id).await?;
        search::remove(&txn, search::Kind::Post, post_id).await?;
        if let Some(content) = kept {
            crate::services::reports::keep_hidden(&txn, viewer, "POST", post_id, post.author_id, content).await?;
        }
    } else {
        // Taken down meanwhile: nothing happened here, so nothing goes on the record.
        txn.rollback().await?;
        return Ok(());
    }
    txn.commit().await?;
    if res.rows_affected == 1 {
        broker.publish(Topic::Post(post_id), Event::PostDeleted).await;
    }
    Ok(())
}

/// A post that exists and is not deleted, or `NOT_FOUND`.
pub async fn live<C: ConnectionTrait>(db: &C, post_id: i64) -> AppResult<posts::Model> {
    posts::Entity::find_by_id(post_id)
        .filter(posts::Column::DeletedAt.is_null())
        .one(db)
        .await?
        .ok_or(AppError::NotFound("post"))
}

pub async fn list(
    db: &DatabaseConnection,
    filter: Filter,
    order: Order,
    page: &PageArgs,
) -> AppResult<Page<posts::Model>> {
    let mut q = posts::Entity::find().filter(posts::Column::DeletedAt.is_null()).limit(page.fetch_limit());
    if let Some(board) = filter.board_id {
        q = q.filter(posts::Column::BoardId.eq(board));
    }
    if let Some(author) = filter.author_id {
        // An erased member's posts stay readable one by one, but never as "their" list.
        q = q.filter(posts::Column::AuthorId.eq(author)).filter(posts::Column::AuthorId.in_subquery(live_user(author)));
    }
    match order {
        Order::Latest => {
            if let Some(after) = page.after_id() {
                q = q.filter(posts::Column::Id.lt(after));
            }
            let rows = q.order_by_desc(posts::Column::Id).all(db).await?;
            Ok(Page::from_rows(page, rows, |p| Cursor::Id(p.id)))
        }
        Order::Hot => {
            match page.after {
                Some(Cursor::Hot { score, id }) => {
                    q =
                        q.filter(Condition::any().add(posts::Column::HotScore.lt(score)).add(
                            Condition::all().add(posts::Column::HotScore.eq(score)).add(posts::Column::Id.lt(id)),
                        ));
                }
                Some(Cursor::Id(_)) => {
                    return Err(AppError::bad_input("after", "cursor belongs to another ordering"));
                }
                None => {}
            }
            let rows = q.order_by_desc(posts::Column::HotScore).order_by_desc(posts::Column::Id).all(db).await?;
            Ok(Page::from_rows(page, rows, |p| Cursor::Hot { score: p.hot_score, id: p.id }))
        }
    }
}

/// Posts by id, deleted ones included (callers decide what a deleted post shows).
pub async fn by_ids<C: ConnectionTrait>(db: &C, ids: &[i64]) -> AppResult<Vec<posts::Model>> {
    Ok(posts::Entity::find().filter(posts::Column::Id.is_in(ids.iter().copied())).all(db).await?)
}

/// Adds `delta` to one of a live post's counters and re-derives its hot score, inside the caller's
/// transaction so the counter and the score move together. Returns false, changing nothing, when the
/// post does not exist or was deleted; on PostgreSQL the update also waits for a concurrent delete, so
/// a caller that requires a live post cannot slip past one.
pub async fn bump_counter<C: ConnectionTrait>(
    db: &C,
    post_id: i64,
    column: posts::Column,
    delta: i64,
) -> AppResult<bool> {
    let touched = posts::Entity::update_many()
        .col_expr(column, Expr::col(column).add(delta))
        .filter(posts::Column::Id.eq(post_id))
        .filter(posts::Column::DeletedAt.is_null())
        .exec(db)
        .await?;
    if touched.rows_affected == 0 {
        return Ok(false);
    }
    let counts: Option<(i64, i64, i64, i64, DateTime<Utc>)> = posts::Entity::find_by_id(post_id)
        .select_only()
        .column(posts::Column::LikeCount)
        .column(posts::Column::CommentCount)
        .column(posts::Column::FavoriteCount)
        .column(posts::Column::ViewCount)
        .column(posts::Column::CreatedAt)
        .into_tuple()
        .one(db)
        .await?;
    if let Some((likes, comments, favorites, views, created_at)) = counts {
        let score = hot_score(likes, comments, favorites, views, created_at);
        posts::Entity::update_many()
            .col_expr(posts::Column::HotScore, Expr::value(score))
            .filter(posts::Column::Id.eq(post_id))
            .exec(db)
            .await?;
    }
    Ok(true)
}

/// `SELECT id FROM users WHERE id = ? AND deleted_at IS NULL`: the filter that keeps an erased
/// member's content out of lists by author.
pub(crate) fn live_user(user_id: i64) -> sea_orm::sea_query::SelectStatement {
    use sea_orm::QueryTrait as _;
    users::Entity::find()
        .select_only()
        .column(users::Column::Id)
        .filter(users::Column::Id.eq(user_id))
        .filter(users::Column::DeletedAt.is_null())
        .into_query()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engagement_and_recency_trade_off() {
        let t = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let later = t + chrono::Duration::seconds(45_000);
        assert!(hot_score(10, 0, 0, 0, t) > hot_score(0, 0, 0, 0, t));
        assert!((hot_score(0, 0, 0, 100, t) - hot_score(10, 0, 0, 0, t)).abs() < 1e-9, "ten views = one like");
        // Ten times the engagement is worth exactly 12.5 hours of age.
        assert!((hot_score(10, 0, 0, 0, t) - hot_score(1, 0, 0, 0, later)).abs() < 1e-9);
    }
}
