//! The social graph: likes, favourites and follows, and where the viewer stands with another member. Each is an edge (actor -> target) with a counter on
//! the target; adding or removing an edge is idempotent, and the counter moves only when the edge
//! really appeared or disappeared, in the same transaction.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use entity::{boards, comments, posts, user_blocks, users};
use sea_orm::sea_query::{Alias, Expr, ExprTrait as _, OnConflict, Order, Query, UnionType};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};

use crate::auth::Viewer;
use crate::error::{AppError, AppResult};
use crate::pubsub::{Broker, Event, Outbox, Topic};
use crate::services::notifications::{self, Kind, NewNotification};
use crate::services::page::{Cursor, Page, PageArgs};
use crate::services::posts as post_service;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Edge {
    PostLike,
    CommentLike,
    Favorite,
    UserFollow,
    BoardFollow,
}

impl Edge {
    fn table(self) -> &'static str {
        match self {
            Edge::PostLike => "post_likes",
            Edge::CommentLike => "comment_likes",
            Edge::Favorite => "favorites",
            Edge::UserFollow => "user_follows",
            Edge::BoardFollow => "board_follows",
        }
    }

    fn actor(self) -> &'static str {
        match self {
            Edge::UserFollow => "follower_id",
            _ => "user_id",
        }
    }

    fn target(self) -> &'static str {
        match self {
            Edge::PostLike | Edge::Favorite => "post_id",
            Edge::CommentLike => "comment_id",
            Edge::UserFollow => "followee_id",
            Edge::BoardFollow => "board_id",
        }
    }

    fn target_name(self) -> &'static str {
        match self {
            Edge::PostLike | Edge::Favorite => "post",
            Edge::CommentLike => "comment",
            Edge::UserFollow => "user",
            Edge::BoardFollow => "board",
        }
    }
}

/// Makes sure the target can take a new edge: it exists and is not deleted.
async fn check_target(db: &DatabaseConnection, viewer: &Viewer, edge: Edge, target: i64) -> AppResult<()> {
    let exists = match edge {
        Edge::PostLike | Edge::Favorite => post_service::live(db, target).await.map(|_| true)?,
        Edge::CommentLike => {
            comments::Entity::find_by_id(target).filter(comments::Column::DeletedAt.is_null()).one(db).await?.is_some()
        }
        Edge::UserFollow => {
            if target == viewer.user_id {
                return Err(AppError::bad_input("input.userId", "you cannot follow yourself"));
            }
            users::Entity::find_by_id(target).filter(users::Column::DeletedAt.is_null()).one(db).await?.is_some()
        }
        Edge::BoardFollow => boards::Entity::find_by_id(target).one(db).await?.is_some(),
    };
    if exists { Ok(()) } else { Err(AppError::NotFound(edge.target_name())) }
}

/// Adds the edge if it is not there yet. Returns whether it was added.
pub async fn add(
    db: &DatabaseConnection,
    broker: &Broker,
    viewer: &Viewer,
    edge: Edge,
    target: i64,
) -> AppResult<bool> {
    check_target(db, viewer, edge, target).await?;
    let insert = Query::insert()
        .into_table(Alias::new(edge.table()))
        .columns([Alias::new(edge.actor()), Alias::new(edge.target()), Alias::new("created_at")])
        .values([viewer.user_id.into(), target.into(), Utc::now().into()])
        .map_err(AppError::internal)?
        .on_conflict(OnConflict::columns([Alias::new(edge.actor()), Alias::new(edge.target())]).do_nothing().to_owned())
        .to_owned();
    let txn = db.begin().await?;
    let added = txn.execute(&insert).await?.rows_affected() == 1;
    if added && !move_counters(&txn, edge, viewer.user_id, target, 1).await? {
        // The post was deleted after the check above: the edge must not outlive it.
        txn.rollback().await?;
        return Err(AppError::NotFound(edge.target_name()));
    }
    let mut outbox = Outbox::default();
    if added {
        notify(&txn, viewer, edge, target, &mut outbox).await?;
        announce(&txn, edge, target, &mut outbox).await?;
    }
    txn.commit().await?;
    broker.publish_all(outbox).await;
    Ok(added)
}

/// Tells the owner of what was liked or followed. Favourites and board follows are private.
async fn notify<C: ConnectionTrait>(
    txn: &C,
    viewer: &Viewer,
    edge: Edge,
    target: i64,
    outbox: &mut Outbox,
) -> AppResult<()> {
    let (owner, kind, post_id, comment_id) = match edge {
        Edge::PostLike => {
            let owner = posts::Entity::find_by_id(target).one(txn).await?.map(|p| p.author_id);
            (owner, Kind::PostLiked, Some(target), None)
        }
        Edge::CommentLike => {
            let comment = comments::Entity::find_by_id(target).one(txn).await?;
            (comment.as_ref().map(|c| c.author_id), Kind::CommentLiked, comment.map(|c| c.post_id), Some(target))
        }
        Edge::UserFollow => (Some(target), Kind::NewFollower, None, None),
        Edge::Favorite | Edge::BoardFollow => return Ok(()),
    };
    let Some(user_id) = owner else { return Ok(()) };
    let n = NewNotification { user_id, kind, actor_id: Some(viewer.user_id), post_id, comment_id, body: None };
    notifications::record(txn, n, outbox).await
}

/// Removes the edge if it is there. Returns whether it was removed.
pub async fn remove(
    db: &DatabaseConnection,
    broker: &Broker,
    viewer: &Viewer,
    edge: Edge,
    target: i64,
) -> AppResult<bool> {
    let delete = Query::delete()
        .from_table(Alias::new(edge.table()))
        .and_where(Expr::col(Alias::new(edge.actor())).eq(viewer.user_id))
        .and_where(Expr::col(Alias::new(edge.target())).eq(target))
        .to_owned();
    let txn = db.begin().await?;
    let removed = txn.execute(&delete).await?.rows_affected() == 1;
    let mut outbox = Outbox::default();
    if removed {
        move_counters(&txn, edge, viewer.user_id, target, -1).await?;
        announce(&txn, edge, target, &mut outbox).await?;
    }
    txn.commit().await?;
    broker.publish_all(outbox).await;
    Ok(removed)
}

/// Tells open post pages that a counter they show moved (`postUpdated`, `commentUpdated`).
async fn announce<C: ConnectionTrait>(txn: &C, edge: Edge, target: i64, outbox: &mut Outbox) -> AppResult<()> {
    match edge {
        Edge::PostLike | Edge::Favorite => outbox.push(Topic::Post(target), Event::PostChanged),
        Edge::CommentLike => {
            let post: Option<i64> = comments::Entity::find_by_id(target)
                .select_only()
                .column(comments::Column::PostId)
                .into_tuple()
                .one(txn)
                .await?;
            if let Some(post) = post {
                outbox.push(Topic::Post(post), Event::CommentChanged { id: target });
            }
        }
        Edge::UserFollow | Edge::BoardFollow => {}
    }
    Ok(())
}

/// Moves the counters an edge feeds. Returns false if the target post is gone (post edges only).
async fn move_counters<C: ConnectionTrait>(db: &C, edge: Edge, actor: i64, target: i64, delta: i64) -> AppResult<bool> {
    match edge {
        Edge::PostLike => post_service::bump_counter(db, target, posts::Column::LikeCount, delta).await,
        Edge::Favorite => post_service::bump_counter(db, target, posts::Column::FavoriteCount, delta).await,
        Edge::CommentLike => {
            comments::Entity::update_many()
                .col_expr(comments::Column::LikeCount, Expr::col(comments::Column::LikeCount).add(delta))
                .filter(comments::Column::Id.eq(target))
                .exec(db)
                .await?;
            Ok(true)
        }
        Edge::UserFollow => {
            // Lock the two user rows in id order, so A following B while B follows A cannot deadlock.
            let mut updates = [(target, users::Column::FollowerCount), (actor, users::Column::FollowingCount)];
            updates.sort_by_key(|(id, _)| *id);
            for (id, column) in updates {
                users::Entity::update_many()
                    .col_expr(column, Expr::col(column).add(delta))
                    .filter(users::Column::Id.eq(id))
                    .exec(db)
                    .await?;
            }
            Ok(true)
        }
        Edge::BoardFollow => {
            boards::Entity::update_many()
                .col_expr(boards::Column::FollowerCount, Expr::col(boards::Column::FollowerCount).add(delta))
                .filter(boards::Column::Id.eq(target))
                .exec(db)
                .await?;
            Ok(true)
        }
    }
}

/// Which way a list walks the edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// What an actor has liked/favourited/followed: returns target ids.
    FromActor,
    /// Who has followed a target: returns actor ids.
    ToTarget,
}

/// Ids on the far side of the edges from `id`, most recent edge first. The cursor is the edge id, so
/// paging follows the order the edges were made.
pub async fn list(db: &DatabaseConnection, edge: Edge, side: Side, id: i64, page: &PageArgs) -> AppResult<Page<i64>> {
    let (near, far) = match side {
        Side::FromActor => (edge.actor(), edge.target()),
        Side::ToTarget => (edge.target(), edge.actor()),
    };
    let mut q = Query::select();
    q.columns([Alias::new("id"), Alias::new(far)])
        .from(Alias::new(edge.table()))
        .and_where(Expr::col(Alias::new(near)).eq(id))
        .order_by(Alias::new("id"), Order::Desc)
        .limit(page.fetch_limit());
    if let Some(after) = page.after_id() {
        q.and_where(Expr::col(Alias::new("id")).lt(after));
    }
    let rows = db.query_all(&q).await?;
    let pairs = rows
        .iter()
        .map(|r| Ok((r.try_get::<i64>("", "id")?, r.try_get::<i64>("", far)?)))
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
    Ok(Page::from_rows(page, pairs, |(edge_id, _)| Cursor::Id(*edge_id)).map(|(_, far_id)| far_id))
}

/// Where the viewer stands with another member, for profile pages and member lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Relation {
    pub viewer_blocked: bool,
    pub blocked_viewer: bool,
    pub follows_viewer: bool,
}

/// The viewer's relation to each of `others`: two statements for a whole page (blocks either
/// way, follows towards the viewer).
pub async fn relations(db: &DatabaseConnection, viewer: i64, others: &[i64]) -> AppResult<HashMap<i64, Relation>> {
    let mut out: HashMap<i64, Relation> = others.iter().map(|o| (*o, Relation::default())).collect();
    if others.is_empty() {
        return Ok(out);
    }
    let blocks = user_blocks::Entity::find()
        .filter(
            Condition::any()
                .add(
                    Condition::all()
                        .add(user_blocks::Column::BlockerId.eq(viewer))
                        .add(user_blocks::Column::BlockedId.is_in(others.iter().copied())),
                )
                .add(
                    Condition::all()
                        .add(user_blocks::Column::BlockedId.eq(viewer))
                        .add(user_blocks::Column::BlockerId.is_in(others.iter().copied())),
                ),
        )
        .all(db)
        .await?;
    for b in blocks {
        if b.blocker_id == viewer {
            out.entry(b.blocked_id).or_default().viewer_blocked = true;
        } else {
            out.entry(b.blocker_id).or_default().blocked_viewer = true;
        }
    }
    let followers = existing_reverse(db, Edge::UserFollow, viewer, others).await?;
    for f in followers {
        out.entry(f).or_default().follows_viewer = true;
    }
    Ok(out)
}

/// Of `actors`, those with an edge to `target` (who among them follows the viewer).
async fn existing_reverse(db: &DatabaseConnection, edge: Edge, target: i64, actors: &[i64]) -> AppResult<HashSet<i64>> {
    let q = Query::select()
        .column(Alias::new(edge.actor()))
        .from(Alias::new(edge.table()))
        .and_where(Expr::col(Alias::new(edge.target())).eq(target))
        .and_where(Expr::col(Alias::new(edge.actor())).is_in(actors.iter().copied()))
        .to_owned();
    let rows = db.query_all(&q).await?;
    rows.iter().map(|r| r.try_get::<i64>("", edge.actor()).map_err(AppError::from)).collect()
}

/// The members `blocker` has blocked, most recently blocked first (their own list).
pub async fn blocked_by(db: &DatabaseConnection, blocker: i64, page: &PageArgs) -> AppResult<Page<i64>> {
    let mut q = user_blocks::Entity::find()
        .filter(user_blocks::Column::BlockerId.eq(blocker))
        .order_by_desc(user_blocks::Column::Id)
        .limit(page.fetch_limit());
    if let Some(after) = page.after_id() {
        q = q.filter(user_blocks::Column::Id.lt(after));
    }
    let rows = q.all(db).await?;
    Ok(Page::from_rows(page, rows, |r| Cursor::Id(r.id)).map(|r| r.blocked_id))
}

/// Of each group's targets, those its actor has an edge to, for several (edge, actor, targets)
/// groups in one statement: a page's `viewerHasLiked` and `viewerHasFavorited` together. Answers (group index, target) for the edges that exist.
pub async fn existing_many(
    db: &DatabaseConnection,
    groups: &[(Edge, i64, Vec<i64>)],
) -> AppResult<HashSet<(usize, i64)>> {
    let mut selects = groups.iter().enumerate().map(|(i, (edge, actor, targets))| {
        Query::select()
            .expr_as(Expr::cust(format!("CAST({i} AS BIGINT)")), Alias::new("g"))
            .expr_as(Expr::col(Alias::new(edge.target())), Alias::new("target"))
            .from(Alias::new(edge.table()))
            .and_where(Expr::col(Alias::new(edge.actor())).eq(*actor))
            .and_where(Expr::col(Alias::new(edge.target())).is_in(targets.iter().copied()))
            .to_owned()
    });
    let Some(mut q) = selects.next() else { return Ok(HashSet::new()) };
    for other in selects {
        q.union(UnionType::All, other);
    }
    let rows = db.query_all(&q).await?;
    rows.iter()
        .map(|r| {
            let group = r.try_get::<i64>("", "g")?;
            let target = r.try_get::<i64>("", "target")?;
            Ok((usize::try_from(group).unwrap_or(usize::MAX), target))
        })
        .collect()
}

/// Removes every favourite of a post, in the transaction that deletes it, so favourite lists never
/// point at deleted posts.
pub async fn drop_favorites_of_post<C: ConnectionTrait>(db: &C, post_id: i64) -> AppResult<()> {
    let delete = Query::delete()
        .from_table(Alias::new(Edge::Favorite.table()))
        .and_where(Expr::col(Alias::new(Edge::Favorite.target())).eq(post_id))
        .to_owned();
    db.execute(&delete).await?;
    Ok(())
}
