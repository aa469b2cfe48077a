//! Data export: one JSON archive of everything the service holds about a member, sealed on disk and
//! downloadable by that member alone (`GET /media/exports/{id}` with their session) until it expires.
//!
//! The archive is built table by table from every table that names the member, so a new table that
//! holds personal data needs one line here (the export test lists the sections it expects). Secrets
//! are left out: the password hash, session token hashes, the live-stream ingest key, and the sealed
//! identity fields (the masked forms are included; the full number is never shown again).

use chrono::Utc;
use entity::*;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait};
use serde_json::{Map, Value, json};

use crate::auth::Viewer;
use crate::error::{AppError, AppResult};
use crate::media::{Area, MediaStore};

/// One export per member at a time: a new one is refused this soon after the last.
const MIN_INTERVAL: chrono::Duration = chrono::Duration::minutes(10);

fn strip(mut rows: Vec<Value>, secret: &[&str]) -> Value {
    for row in &mut rows {
        if let Value::Object(obj) = row {
            for key in secret {
                obj.remove(*key);
            }
        }
    }
    Value::Array(rows)
}

macro_rules! rows {
    ($db:expr, $module:ident, $col:ident, $uid:expr) => {
        $module::Entity::find()
            .filter($module::Column::$col.eq($uid))
            .order_by_asc($module::Column::Id)
            .into_json()
            .all($db)
            .await?
    };
}

/// Everything held about `user_id`, as one JSON document.
pub async fn archive(db: &DatabaseConnection, keys: &crate::seal::Sealer, user_id: i64) -> AppResult<Value> {
    let profile = users::Entity::find_by_id(user_id).into_json().one(db).await?.ok_or(AppError::Unauthenticated)?;
    let phone = profile.get("phone").and_then(Value::as_str).map(str::to_string);
    let mut out = Map::new();
    out.insert("format".into(), json!("ecer-data-export/1"));
    out.insert("generatedAt".into(), json!(Utc::now()));
    out.insert("profile".into(), strip(vec![profile], &["password_hash"]).get(0).cloned().unwrap_or(Value::Null));
    let settings = user_settings::Entity::find_by_id(user_id).into_json().one(db).await?;
    out.insert("settings".into(), settings.unwrap_or(Value::Null));
    out.insert("notificationMutes".into(), Value::Array(rows!(db, notification_mutes, UserId, user_id)));
    out.insert("sessions".into(), strip(rows!(db, sessions, UserId, user_id), &["token_hash"]));
    out.insert("devices".into(), Value::Array(rows!(db, user_devices, UserId, user_id)));
    out.insert("posts".into(), Value::Array(rows!(db, posts, AuthorId, user_id)));
    out.insert("comments".into(), Value::Array(rows!(db, comments, AuthorId, user_id)));
    out.insert("postLikes".into(), Value::Array(rows!(db, post_likes, UserId, user_id)));
    out.insert("commentLikes".into(), Value::Array(rows!(db, comment_likes, UserId, user_id)));
    out.insert("favorites".into(), Value::Array(rows!(db, favorites, UserId, user_id)));
    out.insert("followingUsers".into(), Value::Array(rows!(db, user_follows, FollowerId, user_id)));
    out.insert("followers".into(), Value::Array(rows!(db, user_follows, FolloweeId, user_id)));
    out.insert("followingBoards".into(), Value::Array(rows!(db, board_follows, UserId, user_id)));
    out.insert("blocks".into(), Value::Array(rows!(db, user_blocks, BlockerId, user_id)));
    out.insert("browseHistory".into(), Value::Array(rows!(db, browse_history, UserId, user_id)));
    out.insert("searchHistory".into(), Value::Array(rows!(db, search_history, UserId, user_id)));
    out.insert("notifications".into(), Value::Array(rows!(db, notifications, UserId, user_id)));
    let memberships = rows!(db, conversation_members, UserId, user_id);
    let conversation_ids: Vec<i64> =
        memberships.iter().filter_map(|m| m.get("conversation_id").and_then(Value::as_i64)).collect();
    out.insert("conversations".into(), Value::Array(memberships));
    let messages = messages::Entity::find()
        .filter(messages::Column::ConversationId.is_in(conversation_ids.iter().copied()))
        .order_by_asc(messages::Column::Id)
        .into_json()
        .all(db)
        .await?;
    // The photos and videos of those messages, sent or received (the files open at their `/media/messages/` URLs).
    let of_those = messages::Entity::find()
        .select_only()
        .column(messages::Column::Id)
        .filter(messages::Column::ConversationId.is_in(conversation_ids.iter().copied()))
        .into_query();
    let message_media = media::Entity::find()
        .filter(media::Column::MessageId.in_subquery(of_those))
        .order_by_asc(media::Column::MessageId)
        .order_by_asc(media::Column::Position)
        .into_json()
        .all(db)
        .await?;
    out.insert("messages".into(), Value::Array(messages));
    out.insert("messageMedia".into(), Value::Array(message_media));
    out.insert("liveStreams".into(), strip(rows!(db, live_streams, HostId, user_id), &["ingest_key"]));
    out.insert("liveChatMessages".into(), Value::Array(rows!(db, live_chat_messages, UserId, user_id)));
    out.insert(
        "identityVerifications".into(),
        strip(
            rows!(db, identity_verifications, UserId, user_id),
            &["real_name_sealed", "id_number_sealed", "reviewer_id"],
        ),
    );
    out.insert("policyAcceptances".into(), Value::Array(rows!(db, policy_acceptances, UserId, user_id)));
    out.insert("media".into(), Value::Array(rows!(db, media, OwnerId, user_id)));
    out.insert("requestLog".into(), Value::Array(rows!(db, request_log, UserId, user_id)));
    // The apps behind the log's `app_id`s, so the archive says who acted (deleted apps included).
    let logged_apps = request_log::Entity::find()
        .select_only()
        .column(request_log::Column::AppId)
        .filter(request_log::Column::UserId.eq(user_id))
        .filter(request_log::Column::AppId.is_not_null())
        .into_query();
    let apps = developer_apps::Entity::find()
        .select_only()
        .column(developer_apps::Column::Id)
        .column(developer_apps::Column::ClientId)
        .column(developer_apps::Column::Name)
        .filter(developer_apps::Column::Id.in_subquery(logged_apps))
        .into_json()
        .all(db)
        .await?;
    out.insert("requestLogApps".into(), Value::Array(apps));
    // Which staff role read or did what and when; not who the staff member is, nor their address.
    out.insert("auditLogAboutYou".into(), strip(rows!(db, audit_log, SubjectUserId, user_id), &["ip", "actor_id"]));
    out.insert("dataExports".into(), Value::Array(rows!(db, data_exports, UserId, user_id)));
    // Reports the member filed, and the words of theirs a moderator hid; never which moderator.
    // The device keys stay out: a secret of the device, not something the member told us.
    out.insert("pushSubscriptions".into(), strip(rows!(db, push_subscriptions, UserId, user_id), &["p256dh", "auth"]));
    out.insert(
        "developerApps".into(),
        strip(rows!(db, developer_apps, OwnerId, user_id), &["secret_hash", "reviewer_id"]),
    );
    out.insert("authorizedApps".into(), crate::services::oauth::export(db, user_id).await?);
    out.insert("reportsFiled".into(), strip(rows!(db, reports, ReporterId, user_id), &["handled_by"]));
    out.insert("hiddenContent".into(), strip(rows!(db, hidden_content, AuthorId, user_id), &["hidden_by"]));
    // Emails sent or queued to the member: when and how each went, not the sealed address,
    // subject and body (a code among them). The address itself and any pending one are in the
    // profile (`email`, `email_verified_at`, `pending_email`); codes are never exported.
    out.insert(
        "emailMessages".into(),
        strip(rows!(db, email_outbox, UserId, user_id), &["address_sealed", "subject_sealed", "body_sealed"]),
    );
    // Likewise the SMS to the member's number (kept a day): when and how each went, not the sealed
    // number and text.
    let sms = match phone {
        Some(phone) => {
            entity::sms_outbox::Entity::find()
                .filter(entity::sms_outbox::Column::PhoneKey.eq(crate::services::signin::phone_key(keys, &phone)))
                .order_by_asc(entity::sms_outbox::Column::Id)
                .into_json()
                .all(db)
                .await?
        }
        None => Vec::new(),
    };
    out.insert("smsMessages".into(), strip(sms, &["phone_key", "phone_sealed", "body_sealed"]));
    Ok(Value::Object(out))
}

/// Builds the archive now, seals it, and returns its record.
pub async fn request(
    db: &DatabaseConnection,
    store: &MediaStore,
    viewer: &Viewer,
    ttl_hours: u32,
) -> AppResult<data_exports::Model> {
    let now = Utc::now();
    let last = data_exports::Entity::find()
        .filter(data_exports::Column::UserId.eq(viewer.user_id))
        .order_by_desc(data_exports::Column::CreatedAt)
        .one(db)
        .await?;
    if let Some(last) = last
        && now - last.created_at < MIN_INTERVAL
    {
        let wait = (MIN_INTERVAL - (now - last.created_at)).num_seconds().max(1) as u64;
        return Err(AppError::RateLimited { retry_after_secs: wait });
    }
    let doc = archive(db, store.sealer(), viewer.user_id).await?;
    // Serialising a large archive is CPU work: keep it off the async workers.
    let bytes = tokio::task::spawn_blocking(move || serde_json::to_vec_pretty(&doc))
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)?;
    let id = uuid::Uuid::new_v4();
    store.put_sealed(Area::Exports, &id, &bytes).await.map_err(AppError::internal)?;
    let row = data_exports::ActiveModel {
        id: sea_orm::Set(id.hyphenated().to_string()),
        user_id: sea_orm::Set(viewer.user_id),
        size_bytes: sea_orm::Set(bytes.len() as i64),
        created_at: sea_orm::Set(now),
        expires_at: sea_orm::Set(now + chrono::Duration::hours(i64::from(ttl_hours))),
    };
    Ok(sea_orm::ActiveModelTrait::insert(row, db).await?)
}

/// The member's exports that can still be downloaded, newest first.
pub async fn list(db: &DatabaseConnection, user_id: i64) -> AppResult<Vec<data_exports::Model>> {
    Ok(data_exports::Entity::find()
        .filter(data_exports::Column::UserId.eq(user_id))
        .filter(data_exports::Column::ExpiresAt.gt(Utc::now()))
        .order_by_desc(data_exports::Column::CreatedAt)
        .all(db)
        .await?)
}

/// The archive for its owner; NOT_FOUND for anyone else and after it expired.
pub async fn download(
    db: &DatabaseConnection,
    store: &MediaStore,
    viewer: &Viewer,
    id: &uuid::Uuid,
) -> AppResult<crate::media::SealedFile> {
    data_exports::Entity::find_by_id(id.hyphenated().to_string())
        .filter(data_exports::Column::UserId.eq(viewer.user_id))
        .filter(data_exports::Column::ExpiresAt.gt(Utc::now()))
        .one(db)
        .await?
        .ok_or(AppError::NotFound("export"))?;
    store
        .open_sealed_file(Area::Exports, id, viewer.user_id)
        .await
        .map_err(crate::media::StoreError::into_app)?
        .ok_or(AppError::NotFound("export"))
}

/// Removes a member's exports and their files (account deletion).
pub async fn erase(db: &impl sea_orm::ConnectionTrait, store: &MediaStore, user_id: i64) -> AppResult<()> {
    let rows = data_exports::Entity::find().filter(data_exports::Column::UserId.eq(user_id)).all(db).await?;
    for r in rows {
        if let Ok(id) = uuid::Uuid::parse_str(&r.id) {
            store.remove(Area::Exports, &id).await.map_err(AppError::internal)?;
        }
    }
    data_exports::Entity::delete_many().filter(data_exports::Column::UserId.eq(user_id)).exec(db).await?;
    Ok(())
}
