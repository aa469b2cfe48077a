//! The privacy policy's promises about a member's own data: deleting the account.
//!
//! Deletion erases who the member was, not what the community said: the account row stays (posts,
//! comments and messages point at it) but every identifying field is emptied, the phone number is
//! free to register again, and everything private (sessions, favourites, likes, follows, blocks,
//! notifications and their settings, history, policy acceptances, devices, sign-in failures, the
//! request log, identity data and its photos, avatars and unattached uploads, data exports) is
//! removed. Lists by author answer nothing for an erased id, so public content cannot be gathered
//! back into one person's. docs/PRIVACY.md lists every kind of personal data and its fate. Public posts and comments stay readable and show no
//! author. All of it happens in one transaction; then every socket of the account closes.

use chrono::Utc;
use entity::{
    board_follows, comment_likes, comments, favorites, live_streams, notification_mutes, notifications,
    policy_acceptances, post_likes, sessions, user_blocks, user_follows, users,
};
use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect, QueryTrait, TransactionTrait};

use crate::auth::Viewer;
use crate::error::{AppError, AppResult};
use crate::pubsub::{Broker, Event, Topic};
use crate::services::{accounts, live, posts};

/// What a deleted account is called where its posts still show (the API shows no author at all).
pub const ERASED_NICKNAME: &str = "";

pub async fn delete_account(
    db: &DatabaseConnection,
    broker: &Broker,
    media: &crate::media::MediaStore,
    viewer: &Viewer,
    password: String,
) -> AppResult<()> {
    let user = users::Entity::find_by_id(viewer.user_id)
        .filter(users::Column::DeletedAt.is_null())
        .one(db)
        .await?
        .ok_or(AppError::Unauthenticated)?;
    accounts::confirm_password(db, media.sealer(), &user, "input.password", password).await?;
    let id = user.id;
    let now = Utc::now();
    let txn = db.begin().await?;
    users::Entity::update_many()
        .col_expr(users::Column::Phone, Expr::value(Option::<String>::None))
        .col_expr(users::Column::PasswordHash, Expr::value(Option::<String>::None))
        .col_expr(users::Column::AccountName, Expr::value(Option::<String>::None))
        .col_expr(users::Column::Email, Expr::value(Option::<String>::None))
        .col_expr(users::Column::EmailVerifiedAt, Expr::value(Option::<chrono::DateTime<Utc>>::None))
        .col_expr(users::Column::PendingEmail, Expr::value(Option::<String>::None))
        .col_expr(users::Column::Nickname, Expr::value(ERASED_NICKNAME))
        .col_expr(users::Column::AvatarUrl, Expr::value(Option::<String>::None))
        .col_expr(users::Column::Signature, Expr::value(Option::<String>::None))
        .col_expr(users::Column::Gender, Expr::value("UNSPECIFIED"))
        .col_expr(users::Column::FollowerCount, Expr::value(0))
        .col_expr(users::Column::FollowingCount, Expr::value(0))
        .col_expr(users::Column::DeletedAt, Expr::value(now))
        .col_expr(users::Column::UpdatedAt, Expr::value(now))
        .filter(users::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    sessions::Entity::delete_many().filter(sessions::Column::UserId.eq(id)).exec(&txn).await?;
    crate::services::search::remove(&txn, crate::services::search::Kind::User, id).await?;
    crate::services::history::erase(&txn, id).await?;
    crate::services::reports::erase_member(&txn, id).await?;
    crate::services::push::erase_member(&txn, id).await?;
    crate::services::oauth::erase_member(&txn, id).await?;
    let app_users = crate::services::developer_apps::erase_member(&txn, id).await?;
    entity::user_devices::Entity::delete_many().filter(entity::user_devices::Column::UserId.eq(id)).exec(&txn).await?;

    // Follows both ways, with the counters on the other side.
    let followees = user_follows::Entity::find()
        .select_only()
        .column(user_follows::Column::FolloweeId)
        .filter(user_follows::Column::FollowerId.eq(id))
        .into_query();
    users::Entity::update_many()
        .col_expr(users::Column::FollowerCount, Expr::col(users::Column::FollowerCount).sub(1))
        .filter(users::Column::Id.in_subquery(followees))
        .exec(&txn)
        .await?;
    let followers = user_follows::Entity::find()
        .select_only()
        .column(user_follows::Column::FollowerId)
        .filter(user_follows::Column::FolloweeId.eq(id))
        .into_query();
    users::Entity::update_many()
        .col_expr(users::Column::FollowingCount, Expr::col(users::Column::FollowingCount).sub(1))
        .filter(users::Column::Id.in_subquery(followers))
        .exec(&txn)
        .await?;
    user_follows::Entity::delete_many()
        .filter(user_follows::Column::FollowerId.eq(id).or(user_follows::Column::FolloweeId.eq(id)))
        .exec(&txn)
        .await?;
    let boards = board_follows::Entity::find()
        .select_only()
        .column(board_follows::Column::BoardId)
        .filter(board_follows::Column::UserId.eq(id))
        .into_query();
    entity::boards::Entity::update_many()
        .col_expr(entity::boards::Column::FollowerCount, Expr::col(entity::boards::Column::FollowerCount).sub(1))
        .filter(entity::boards::Column::Id.in_subquery(boards))
        .exec(&txn)
        .await?;
    board_follows::Entity::delete_many().filter(board_follows::Column::UserId.eq(id)).exec(&txn).await?;

    // Favourites are private; their counters (and the hot scores they feed) move post by post.
    let saved: Vec<i64> = favorites::Entity::find()
        .select_only()
        .column(favorites::Column::PostId)
        .filter(favorites::Column::UserId.eq(id))
        .into_tuple()
        .all(&txn)
        .await?;
    favorites::Entity::delete_many().filter(favorites::Column::UserId.eq(id)).exec(&txn).await?;
    for post in saved {
        posts::bump_counter(&txn, post, entity::posts::Column::FavoriteCount, -1).await?;
    }
    // Likes name who liked what: gone, with their counters.
    let liked: Vec<i64> = post_likes::Entity::find()
        .select_only()
        .column(post_likes::Column::PostId)
        .filter(post_likes::Column::UserId.eq(id))
        .into_tuple()
        .all(&txn)
        .await?;
    post_likes::Entity::delete_many().filter(post_likes::Column::UserId.eq(id)).exec(&txn).await?;
    for post in liked {
        posts::bump_counter(&txn, post, entity::posts::Column::LikeCount, -1).await?;
    }
    let liked_comments = comment_likes::Entity::find()
        .select_only()
        .column(comment_likes::Column::CommentId)
        .filter(comment_likes::Column::UserId.eq(id))
        .into_query();
    comments::Entity::update_many()
        .col_expr(comments::Column::LikeCount, Expr::col(comments::Column::LikeCount).sub(1))
        .filter(comments::Column::Id.in_subquery(liked_comments))
        .exec(&txn)
        .await?;
    comment_likes::Entity::delete_many().filter(comment_likes::Column::UserId.eq(id)).exec(&txn).await?;
    policy_acceptances::Entity::delete_many().filter(policy_acceptances::Column::UserId.eq(id)).exec(&txn).await?;
    entity::live_chat_mutes::Entity::delete_many()
        .filter(entity::live_chat_mutes::Column::UserId.eq(id))
        .exec(&txn)
        .await?;
    if let Some(phone) = &user.phone {
        let phone_key = crate::services::signin::phone_key(media.sealer(), phone);
        crate::services::signin::clear(&txn, &phone_key).await?;
        // The codes and SMS of the number go too: nothing keyed by it outlives the account.
        entity::phone_codes::Entity::delete_many()
            .filter(entity::phone_codes::Column::PhoneKey.eq(phone_key.clone()))
            .exec(&txn)
            .await?;
        entity::sms_outbox::Entity::delete_many()
            .filter(entity::sms_outbox::Column::PhoneKey.eq(phone_key))
            .exec(&txn)
            .await?;
    }
    // Email codes and messages (sent or waiting) name the member's address: gone.
    crate::services::email::erase(&txn, id).await?;

    user_blocks::Entity::delete_many()
        .filter(user_blocks::Column::BlockerId.eq(id).or(user_blocks::Column::BlockedId.eq(id)))
        .exec(&txn)
        .await?;
    notifications::Entity::delete_many().filter(notifications::Column::UserId.eq(id)).exec(&txn).await?;
    notifications::Entity::update_many()
        .col_expr(notifications::Column::ActorId, Expr::value(Option::<i64>::None))
        .filter(notifications::Column::ActorId.eq(id))
        .exec(&txn)
        .await?;
    notification_mutes::Entity::delete_many().filter(notification_mutes::Column::UserId.eq(id)).exec(&txn).await?;
    let hosting: Vec<i64> = live_streams::Entity::find()
        .select_only()
        .column(live_streams::Column::Id)
        .filter(live_streams::Column::HostId.eq(id))
        .filter(live_streams::Column::Status.ne(live::Status::Ended.as_str()))
        .into_tuple()
        .all(&txn)
        .await?;
    live_streams::Entity::update_many()
        .col_expr(live_streams::Column::Status, Expr::value(live::Status::Ended.as_str()))
        .col_expr(live_streams::Column::EndedAt, Expr::value(now))
        .filter(live_streams::Column::HostId.eq(id))
        .filter(live_streams::Column::Status.ne(live::Status::Ended.as_str()))
        .exec(&txn)
        .await?;
    crate::services::activity::erase(&txn, id).await?;
    entity::identity_verifications::Entity::delete_many()
        .filter(entity::identity_verifications::Column::UserId.eq(id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    broker.publish(Topic::User(id), Event::SessionsRevoked).await;
    // Members who had authorized one of the erased developer's apps: its sockets close.
    for user in app_users {
        broker.publish(Topic::User(user), Event::SessionsRevoked).await;
    }
    // Files last, each step on its own: the account is already gone, so a failing step is logged
    // (for support to finish) rather than stopping the others. Exports first: whole archives.
    let erasures = [
        crate::services::export::erase(db, media, id).await,
        crate::services::identity::erase(db, media, id).await,
        crate::services::media::erase_private(db, media, id).await,
    ];
    for result in erasures {
        if let Err(e) = result {
            let err: async_graphql::Error = e.into();
            tracing::error!(user_id = id, error = %err.message, "account erasure left files behind");
        }
    }
    for stream in hosting {
        broker.publish(Topic::Live(stream), Event::LiveEnded).await;
    }
    Ok(())
}
