//! Sign-in security: repeated failures lock a phone number for a while, and a sign-in from a device
//! the member never used makes a security notification.
//!
//! The failure count lives in the database (shared by every instance), keyed by a keyed hash (HMAC)
//! of the phone number, so a number nobody registered is never stored in the clear, nor in a form
//! that trying every number would reverse. The lock applies whether
//! or not the number belongs to an account, so it does not tell an attacker which numbers exist.

use chrono::{Duration, Utc};
use entity::{login_failures, user_devices};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, Set};

use crate::error::{AppError, AppResult};
use crate::pubsub::{Broker, Outbox};
use crate::services::notifications::{self, Kind, NewNotification};

/// Failures allowed within [`WINDOW`] before the number locks for [`LOCK`].
pub const MAX_FAILURES: i32 = 5;
pub const WINDOW: Duration = Duration::minutes(15);
pub const LOCK: Duration = Duration::minutes(15);

/// The key a number's sign-in failures are stored under: HMAC-SHA256 of the normalised number with a
/// secret derived from the sealing key. A plain hash of a phone number is reversed by hashing every
/// number there is; without the server's secret the keys reveal nothing. (The key rotates with the
/// sealing key; failure rows live for minutes, so a rotation only forgets recent failures.)
pub fn phone_key(keys: &crate::seal::Sealer, phone: &str) -> String {
    let normal = crate::services::validate::phone("phone", phone).unwrap_or_else(|_| phone.trim().to_string());
    keys.keyed_hash("ecer phone keys v1", normal.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Refuses while the number is locked.
pub async fn check_lock(db: &DatabaseConnection, key: &str) -> AppResult<()> {
    let now = Utc::now();
    if let Some(row) = login_failures::Entity::find_by_id(key.to_string()).one(db).await?
        && let Some(until) = row.locked_until
        && until > now
    {
        let secs = (until - now).num_seconds().max(1) as u64;
        return Err(AppError::AccountLocked { retry_after_secs: secs });
    }
    Ok(())
}

/// Counts a failure; the one that reaches [`MAX_FAILURES`] locks the number.
pub async fn record_failure(db: &DatabaseConnection, key: &str) -> AppResult<()> {
    let now = Utc::now();
    let current = login_failures::Entity::find_by_id(key.to_string()).one(db).await?;
    let (failures, window_start) = match current {
        Some(row) if now - row.window_start < WINDOW && row.locked_until.is_none_or(|u| u <= now) => {
            (row.failures + 1, row.window_start)
        }
        _ => (1, now),
    };
    let locked_until = (failures >= MAX_FAILURES).then(|| now + LOCK);
    login_failures::Entity::insert(login_failures::ActiveModel {
        phone_hash: Set(key.to_string()),
        failures: Set(if locked_until.is_some() { 0 } else { failures }),
        window_start: Set(window_start),
        locked_until: Set(locked_until),
    })
    .on_conflict(
        OnConflict::column(login_failures::Column::PhoneHash)
            .update_columns([
                login_failures::Column::Failures,
                login_failures::Column::WindowStart,
                login_failures::Column::LockedUntil,
            ])
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// A successful sign-in forgets the failures.
pub async fn clear(db: &impl sea_orm::ConnectionTrait, key: &str) -> AppResult<()> {
    login_failures::Entity::delete_by_id(key.to_string()).exec(db).await?;
    Ok(())
}

/// Remembers the device; if the member has signed in before from other devices and never from this
/// one, tells them (in-site notification and push, and their verified email address). The first
/// device of an account is not news.
pub async fn note_device(
    db: &DatabaseConnection,
    broker: &Broker,
    keys: &crate::seal::Sealer,
    user_id: i64,
    user_agent: Option<&str>,
) -> AppResult<()> {
    let device = user_agent.unwrap_or("unknown device");
    let key = crate::auth::hash_token(device);
    let known_before = user_devices::Entity::find().filter(user_devices::Column::UserId.eq(user_id)).count(db).await?;
    let inserted = user_devices::Entity::insert(user_devices::ActiveModel {
        user_id: Set(user_id),
        device_key: Set(key),
        first_seen_at: Set(Utc::now()),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::columns([user_devices::Column::UserId, user_devices::Column::DeviceKey]).do_nothing().to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    if inserted == 1 && known_before > 0 {
        let shown: String = device.chars().take(120).collect();
        let notice =
            format!("New sign-in from {shown}. If this was not you, sign that device out and change your password.");
        let mut outbox = Outbox::default();
        let txn = sea_orm::TransactionTrait::begin(db).await?;
        notifications::record(
            &txn,
            NewNotification {
                user_id,
                kind: Kind::NewDeviceSignIn,
                actor_id: None,
                post_id: None,
                comment_id: None,
                body: Some(notice.clone()),
            },
            &mut outbox,
        )
        .await?;
        crate::services::notices::queue_off_site(&txn, keys, &[user_id], &notice, None).await?;
        txn.commit().await?;
        broker.publish_all(outbox).await;
    }
    Ok(())
}

/// The first sign-in of an account (registration) makes its first known device.
pub async fn first_device(db: &DatabaseConnection, user_id: i64, user_agent: Option<&str>) -> AppResult<()> {
    user_devices::ActiveModel {
        user_id: Set(user_id),
        device_key: Set(crate::auth::hash_token(user_agent.unwrap_or("unknown device"))),
        first_seen_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}
