//! Boards: the topic areas posts live in.

use chrono::Utc;
use entity::boards;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use crate::auth::Viewer;
use crate::authz::{self, Action};
use crate::error::{AppError, AppResult};
use crate::services::page::{Cursor, Page, PageArgs};
use crate::services::search;
use crate::services::validate::{self, Lines};

pub struct NewBoard {
    pub slug: String,
    pub name: String,
    pub description: String,
}

/// Only ADMIN for now; the verification issue will also admit users with an approved real-name check.
pub async fn create(db: &DatabaseConnection, viewer: &Viewer, input: NewBoard) -> AppResult<boards::Model> {
    // The privacy policy's promise: boards are opened by people whose real name was checked.
    let identity_approved = crate::services::identity::is_approved(db, viewer.user_id).await?;
    authz::require(Some(viewer), Action::CreateBoard { identity_approved })?;
    let slug = validate::slug("input.slug", &input.slug)?;
    let name = validate::text("input.name", &input.name, 1, 40, Lines::Single)?;
    let description = validate::text("input.description", &input.description, 0, 500, Lines::Multi)?;
    let board = boards::ActiveModel {
        slug: Set(slug),
        name: Set(name),
        description: Set(description),
        created_by: Set(Some(viewer.user_id)),
        follower_count: Set(0),
        post_count: Set(0),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await
    .map_err(|e| AppError::conflict_on_unique(e, "a board with this slug already exists"))?;
    let text = format!("{}\n{}\n{}", board.name, board.slug, board.description);
    search::index(db, search::Kind::Board, board.id, None, &text, board.created_at).await?;
    Ok(board)
}

/// Boards in the order they were created, so the list is stable for paging.
pub async fn list(db: &DatabaseConnection, page: &PageArgs) -> AppResult<Page<boards::Model>> {
    let mut q = boards::Entity::find().order_by_asc(boards::Column::Id).limit(page.fetch_limit());
    if let Some(after) = page.after_id() {
        q = q.filter(boards::Column::Id.gt(after));
    }
    Ok(Page::from_rows(page, q.all(db).await?, |b| Cursor::Id(b.id)))
}

pub async fn by_slug(db: &DatabaseConnection, slug: &str) -> AppResult<Option<boards::Model>> {
    Ok(boards::Entity::find().filter(boards::Column::Slug.eq(slug.trim().to_ascii_lowercase())).one(db).await?)
}

pub async fn by_ids<C: ConnectionTrait>(db: &C, ids: &[i64]) -> AppResult<Vec<boards::Model>> {
    Ok(boards::Entity::find().filter(boards::Column::Id.is_in(ids.iter().copied())).all(db).await?)
}
