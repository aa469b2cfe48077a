//! Comments and replies: a tree under each post. A reply names its parent comment; deleting a comment
//! blanks it but keeps its place, so the replies under it still make sense.

use std::collections::HashMap;

use chrono::Utc;
use entity::{comments, posts};
use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement, TransactionTrait,
};

use crate::auth::Viewer;
use crate::authz::{self, Action};
use crate::error::{AppError, AppResult};
use crate::pubsub::{Broker, Event, Outbox, Topic};
use crate::services::audit;
use crate::services::notifications::{self, Kind};
use crate::services::page::{Cursor, Page, PageArgs, Sort};
use crate::services::posts as post_service;
use crate::services::validate::{self, Lines};

pub const BODY_MAX: usize = 5_000;

pub struct NewComment {
    pub post_id: i64,
    pub parent_id: Option<i64>,
    pub body: String,
}

pub async fn create(
    db: &DatabaseConnection,
    broker: &Broker,
    viewer: &Viewer,
    input: NewComment,
) -> AppResult<comments::Model> {
    let body = validate::text("input.body", &input.body, 1, BODY_MAX, Lines::Multi)?;
    let txn = db.begin().await?;
    // The counter update doubles as the existence check and takes the post's lock first (the order
    // every transaction touching a post and its comments follows).
    if !post_service::bump_counter(&txn, input.post_id, posts::Column::CommentCount, 1).await? {
        return Err(AppError::NotFound("post"));
    }
    let mut parent_author = None;
    if let Some(parent_id) = input.parent_id {
        let touched = comments::Entity::update_many()
            .col_expr(comments::Column::ReplyCount, Expr::col(comments::Column::ReplyCount).add(1))
            .filter(comments::Column::Id.eq(parent_id))
            .filter(comments::Column::PostId.eq(input.post_id))
            .filter(comments::Column::DeletedAt.is_null())
            .exec(&txn)
            .await?;
        if touched.rows_affected == 0 {
            return Err(AppError::NotFound("parent comment"));
        }
        parent_author = comments::Entity::find_by_id(parent_id).one(&txn).await?.map(|c| c.author_id);
    }
    let comment = comments::ActiveModel {
        post_id: Set(input.post_id),
        author_id: Set(viewer.user_id),
        parent_id: Set(input.parent_id),
        body: Set(body),
        like_count: Set(0),
        reply_count: Set(0),
        created_at: Set(Utc::now()),
        deleted_at: Set(None),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let mut outbox = Outbox::default();
    let post_author = posts::Entity::find_by_id(input.post_id).one(&txn).await?.map(|p| p.author_id);
    let notify = |user_id, kind| notifications::NewNotification {
        user_id,
        kind,
        actor_id: Some(viewer.user_id),
        post_id: Some(input.post_id),
        comment_id: Some(comment.id),
        body: None,
    };
    // Both recipients' streams in one sorted call: two replies crossing between the same two users
    // would otherwise lock them in opposite orders.
    let recipients: Vec<i64> = parent_author.into_iter().chain(post_author).collect();
    crate::services::streams::lock_users(&txn, &recipients).await?;
    if let Some(parent_author) = parent_author {
        notifications::record(&txn, notify(parent_author, Kind::ReplyToComment), &mut outbox).await?;
    }
    // A reply to the post author's own comment already told them; one notification is enough.
    if let Some(post_author) = post_author.filter(|a| Some(*a) != parent_author) {
        notifications::record(&txn, notify(post_author, Kind::CommentOnPost), &mut outbox).await?;
    }
    txn.commit().await?;
    broker.publish_all(outbox).await;
    broker.publish(Topic::Post(comment.post_id), Event::Comment { id: comment.id }).await;
    if let Some(parent) = comment.parent_id {
        // The parent's reply count moved.
        broker.publish(Topic::Post(comment.post_id), Event::CommentChanged { id: parent }).await;
    }
    Ok(comment)
}

/// A post's comments and replies written after comment `after`, oldest first, at most `limit`
/// (`commentAdded` replays them). Ids grow with time, so they are the stream's cursor.
pub async fn after(db: &DatabaseConnection, post_id: i64, after: i64, limit: u64) -> AppResult<Vec<comments::Model>> {
    Ok(comments::Entity::find()
        .filter(comments::Column::PostId.eq(post_id))
        .filter(comments::Column::Id.gt(after))
        .order_by_asc(comments::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// The newest comment id of a post (0 without comments): where a live post page starts.
pub async fn head(db: &DatabaseConnection, post_id: i64) -> AppResult<i64> {
    let newest: Option<Option<i64>> = comments::Entity::find()
        .select_only()
        .column_as(comments::Column::Id.max(), "newest")
        .filter(comments::Column::PostId.eq(post_id))
        .into_tuple()
        .one(db)
        .await?;
    Ok(newest.flatten().unwrap_or(0))
}

/// Soft delete by the author or a moderator. Idempotent for a comment already deleted.
pub async fn delete(
    db: &DatabaseConnection,
    broker: &Broker,
    viewer: &Viewer,
    note: audit::Note<'_>,
    comment_id: i64,
) -> AppResult<i64> {
    let comment = comments::Entity::find_by_id(comment_id).one(db).await?.ok_or(AppError::NotFound("comment"))?;
    authz::require(Some(viewer), Action::DeleteComment(&comment))?;
    // A moderator removing someone else's words says why, on the staff record.
    let staff_entry = if comment.author_id != viewer.user_id && comment.deleted_at.is_none() {
        let target = format!("Comment:{comment_id}");
        let entry = audit::Entry::new(audit::Action::DeleteComment, Some(comment.author_id), target);
        Some(entry.because(Some(note.required_reason()?)))
    } else {
        None
    };
    take_down(db, broker, viewer, note.ip, &comment, staff_entry, false).await?;
    Ok(comment_id)
}

/// A moderator hides a comment (a report's outcome): it shows as deleted, with its words kept in
/// `hidden_content` for an appeal. Idempotent.
pub async fn hide(
    db: &DatabaseConnection,
    broker: &Broker,
    viewer: &Viewer,
    note: audit::Note<'_>,
    comment_id: i64,
) -> AppResult<()> {
    authz::require(Some(viewer), Action::HandleReports)?;
    let reason = note.required_reason()?;
    let comment = comments::Entity::find_by_id(comment_id).one(db).await?.ok_or(AppError::NotFound("comment"))?;
    if comment.deleted_at.is_some() {
        return Ok(());
    }
    let target = format!("Comment:{comment_id}");
    let entry = audit::Entry::new(audit::Action::HideComment, Some(comment.author_id), target).because(Some(reason));
    take_down(db, broker, viewer, note.ip, &comment, Some(entry), true).await
}

/// Marks a comment deleted and blanks it, with its post's counter, in one transaction; `keep` saves
/// its words to `hidden_content` in the same one. Nothing happens to a comment deleted meanwhile.
async fn take_down(
    db: &DatabaseConnection,
    broker: &Broker,
    viewer: &Viewer,
    ip: Option<&str>,
    comment: &comments::Model,
    staff_entry: Option<audit::Entry>,
    keep: bool,
) -> AppResult<()> {
    let comment_id = comment.id;
    let txn = db.begin().await?;
    if let Some(entry) = staff_entry {
        audit::record(&txn, viewer, ip, entry).await?;
    }
    // Post first, then comment: the same lock order as `create`, so the two cannot deadlock.
    post_service::bump_counter(&txn, comment.post_id, posts::Column::CommentCount, -1).await?;
    let res = comments::Entity::update_many()
        .col_expr(comments::Column::DeletedAt, Expr::value(Utc::now()))
        .col_expr(comments::Column::Body, Expr::value(""))
        .filter(comments::Column::Id.eq(comment_id))
        .filter(comments::Column::DeletedAt.is_null())
        .exec(&txn)
        .await?;
    if res.rows_affected == 0 {
        // Already deleted: undo the decrement (and the audit line) by not committing.
        txn.rollback().await?;
        return Ok(());
    }
    if keep {
        let content = serde_json::json!({ "body": comment.body });
        crate::services::reports::keep_hidden(&txn, viewer, "COMMENT", comment_id, comment.author_id, content).await?;
    }
    txn.commit().await?;
    broker.publish(Topic::Post(comment.post_id), Event::CommentChanged { id: comment_id }).await;
    Ok(())
}

/// Whose children a comment list shows: the top-level comments of a post, or the replies to a comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Parent {
    Post(i64),
    Comment(i64),
}

/// One page of children for many parents at once, all with the same page arguments, in one
/// statement: a window function numbers each parent's children from the page's cursor outwards and
/// keeps the first `limit + 1`. This is what keeps a feed of N posts, each showing its first (or
/// latest) comments, at a constant number of queries. Children are listed oldest first.
pub async fn children_batch<C: ConnectionTrait>(
    db: &C,
    parents: &[Parent],
    page: &PageArgs,
) -> AppResult<HashMap<Parent, Page<comments::Model>>> {
    let mut out = HashMap::new();
    let (post_ids, comment_ids): (Vec<_>, Vec<_>) = parents.iter().partition(|p| matches!(p, Parent::Post(_)));
    let keyset = page.keyset(Sort::Asc);
    let scan = if keyset.ascending { "ASC" } else { "DESC" };
    for (group, key_col, top_level) in [(post_ids, "post_id", true), (comment_ids, "parent_id", false)] {
        if group.is_empty() {
            continue;
        }
        let ids: Vec<i64> = group
            .iter()
            .map(|p| match p {
                Parent::Post(id) | Parent::Comment(id) => *id,
            })
            .collect();
        let backend = db.get_database_backend();
        let placeholders = placeholders(backend, 1, ids.len());
        let mut values: Vec<sea_orm::Value> = ids.iter().map(|&id| id.into()).collect();
        let mut sql = format!(
            "SELECT * FROM (SELECT c.*, ROW_NUMBER() OVER (PARTITION BY c.{key_col} ORDER BY c.id {scan}) AS rn \
             FROM comments c WHERE c.{key_col} IN ({placeholders})"
        );
        if top_level {
            sql.push_str(" AND c.parent_id IS NULL");
        }
        for (bound, op) in [(keyset.above, ">"), (keyset.below, "<")] {
            if let Some(bound) = bound {
                sql.push_str(&format!(" AND c.id {op} {}", placeholders_from(backend, values.len() + 1)));
                values.push(bound.into());
            }
        }
        sql.push_str(&format!(
            ") ranked WHERE rn <= {} ORDER BY {key_col}, id {scan}",
            placeholders_from(backend, values.len() + 1)
        ));
        values.push((keyset.limit as i64).into());
        let rows =
            comments::Model::find_by_statement(Statement::from_sql_and_values(backend, sql, values)).all(db).await?;
        let mut grouped: HashMap<i64, Vec<comments::Model>> = HashMap::new();
        for row in rows {
            let key = if top_level { Some(row.post_id) } else { row.parent_id };
            if let Some(key) = key {
                grouped.entry(key).or_default().push(row);
            }
        }
        for id in ids {
            let parent = if top_level { Parent::Post(id) } else { Parent::Comment(id) };
            let rows = grouped.remove(&id).unwrap_or_default();
            out.insert(parent, Page::from_rows(page, rows, |c| Cursor::Id(c.id)));
        }
    }
    Ok(out)
}

/// How far up a reply's chain [`chains`] walks. Replies nest without a limit, so the walk is bounded
/// here, by the server, never by how deep a client chose to reply.
pub const ANCESTORS_MAX: i64 = 64;

/// For each comment, its chain upwards: the comment itself, its parent, its parent's parent ... up
/// to its top-level comment or `ANCESTORS_MAX` steps, whichever comes first, in one recursive
/// statement for all of them. Unknown ids are left out.
pub async fn chains<C: ConnectionTrait>(db: &C, ids: &[i64]) -> AppResult<HashMap<i64, Vec<comments::Model>>> {
    let mut out: HashMap<i64, Vec<comments::Model>> = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let backend = db.get_database_backend();
    let mut values: Vec<sea_orm::Value> = ids.iter().map(|&id| id.into()).collect();
    let max = placeholders_from(backend, values.len() + 1);
    values.push(ANCESTORS_MAX.into());
    let sql = format!(
        "WITH RECURSIVE chain(chain_start, chain_id, chain_depth) AS ( \
           SELECT c.id, c.id, CAST(0 AS BIGINT) FROM comments c WHERE c.id IN ({}) \
           UNION ALL \
           SELECT chain.chain_start, c.parent_id, chain.chain_depth + 1 FROM chain \
           JOIN comments c ON c.id = chain.chain_id \
           WHERE c.parent_id IS NOT NULL AND chain.chain_depth < {max}) \
         SELECT chain.chain_start, chain.chain_depth, c.* FROM chain JOIN comments c ON c.id = chain.chain_id \
         ORDER BY chain.chain_start, chain.chain_depth",
        placeholders(backend, 1, ids.len())
    );
    let rows = db.query_all_raw(Statement::from_sql_and_values(backend, sql, values)).await?;
    for row in rows {
        let start: i64 = row.try_get("", "chain_start")?;
        out.entry(start).or_default().push(comments::Model::from_query_result(&row, "")?);
    }
    Ok(out)
}

/// A page of a post's top-level comments (oldest first) that holds the thread of a linked comment:
/// up to half the page before the thread's top-level comment, the rest from it on; a side that runs
/// short leaves its room to the other. `chain` is the linked comment's [`chains`] entry; a reply is
/// placed by its top-level comment. Its edges carry ordinary cursors, so the client pages on from
/// either end with `after` or `before`.
pub async fn around<C: ConnectionTrait>(
    db: &C,
    post_id: i64,
    chain: &[comments::Model],
    size: u64,
) -> AppResult<Page<comments::Model>> {
    let linked = chain.first().filter(|c| c.post_id == post_id);
    let Some(root) = linked.and_then(|_| chain.last()) else {
        return Err(AppError::bad_input("around", "is not a comment on this post"));
    };
    if root.parent_id.is_some() {
        return Err(AppError::bad_input(
            "around",
            format!("is a reply nested more than {ANCESTORS_MAX} levels deep; open it with `node`"),
        ));
    }
    let top = || {
        comments::Entity::find()
            .filter(comments::Column::PostId.eq(post_id))
            .filter(comments::Column::ParentId.is_null())
            .limit(size + 1)
    };
    let mut before = top().filter(comments::Column::Id.lt(root.id)).order_by_desc(comments::Column::Id).all(db).await?;
    let mut from = top().filter(comments::Column::Id.gte(root.id)).order_by_asc(comments::Column::Id).all(db).await?;
    let (len_before, len_from) = (before.len() as u64, from.len() as u64);
    let (n_before, n_from) = split_around(size, len_before, len_from);
    before.truncate(n_before as usize);
    before.reverse();
    from.truncate(n_from as usize);
    before.append(&mut from);
    Ok(Page {
        items: before.into_iter().map(|c| (Cursor::Id(c.id), c)).collect(),
        has_previous: len_before > n_before,
        has_next: len_from > n_from,
    })
}

/// How many of a page of `size` go before the linked comment and how many from it on, given how
/// many rows each side has: half before, unless the side from it on runs short.
fn split_around(size: u64, len_before: u64, len_from: u64) -> (u64, u64) {
    let n_before = std::cmp::min(len_before, std::cmp::max(size / 2, size.saturating_sub(len_from)));
    (n_before, std::cmp::min(len_from, size - n_before))
}

fn placeholders_from(backend: sea_orm::DbBackend, n: usize) -> String {
    match backend {
        sea_orm::DbBackend::Postgres => format!("${n}"),
        _ => "?".to_string(),
    }
}

fn placeholders(backend: sea_orm::DbBackend, start: usize, count: usize) -> String {
    (start..start + count).map(|n| placeholders_from(backend, n)).collect::<Vec<_>>().join(", ")
}

/// A user's comments, newest first (deleted ones left out).
pub async fn by_author(db: &DatabaseConnection, author_id: i64, page: &PageArgs) -> AppResult<Page<comments::Model>> {
    let mut q = comments::Entity::find()
        .filter(comments::Column::AuthorId.eq(author_id))
        // An erased member's comments are never gathered back into "their" list.
        .filter(comments::Column::AuthorId.in_subquery(crate::services::posts::live_user(author_id)))
        .filter(comments::Column::DeletedAt.is_null())
        .order_by_desc(comments::Column::Id)
        .limit(page.fetch_limit());
    if let Some(after) = page.after_id() {
        q = q.filter(comments::Column::Id.lt(after));
    }
    Ok(Page::from_rows(page, q.all(db).await?, |c| Cursor::Id(c.id)))
}

pub async fn by_ids<C: ConnectionTrait>(db: &C, ids: &[i64]) -> AppResult<Vec<comments::Model>> {
    Ok(comments::Entity::find().filter(comments::Column::Id.is_in(ids.iter().copied())).all(db).await?)
}

#[cfg(test)]
mod tests {
    use super::split_around;

    #[test]
    fn around_pages_split_and_lend_room() {
        assert_eq!(split_around(10, 50, 50), (5, 5), "half before, the linked comment first of the rest");
        assert_eq!(split_around(10, 50, 2), (8, 2), "near the end: the room goes before");
        assert_eq!(split_around(10, 1, 50), (1, 9), "near the start: the room goes after");
        assert_eq!(split_around(10, 3, 2), (3, 2), "short list: everything");
        assert_eq!(split_around(0, 3, 2), (0, 0));
        assert_eq!(split_around(1, 3, 2), (0, 1), "one comment: the linked one");
    }
}
