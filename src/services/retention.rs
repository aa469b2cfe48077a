//! How long each kind of personal data is kept, and the job that removes what is older.
//!
//! Every kind has a period (configuration, with the defaults of docs/PRIVACY.md) or ends by itself
//! (an expired session, a passed sign-in lock, an expired export). The purge runs every hour on one
//! instance at a time: it takes the `retention` lease (a conditional UPDATE on `job_leases`, the
//! same on SQLite and PostgreSQL), then deletes in batches of [`BATCH`] rows so no statement holds
//! locks for long, and removes the files that go with the rows (data exports, ID photos).
//!
//! [`purge`] takes the time to purge as of, so tests move the clock instead of waiting.

use chrono::{DateTime, Duration, Utc};
use entity::{
    audit_log, browse_history, data_exports, email_codes, email_outbox, identity_verifications as iv, job_leases,
    login_failures, notifications, phone_codes, request_log, search_history, sessions, sms_outbox, user_devices,
    visitor_views,
};
use sea_orm::sea_query::{Expr, ExprTrait as _, OnConflict};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect, Set};

use crate::error::{AppError, AppResult};
use crate::media::{Area, MediaStore};
use crate::services::identity;

/// Rows deleted per statement.
pub const BATCH: u64 = 1_000;
const LEASE: &str = "retention";
/// Longer than one purge takes, so a crashed holder's lease lapses before the next hour.
const LEASE_FOR: Duration = Duration::minutes(30);
const EVERY: std::time::Duration = std::time::Duration::from_secs(3600);
const FIRST_AFTER: std::time::Duration = std::time::Duration::from_secs(300);

/// Retention periods, in days (from the configuration).
#[derive(Debug, Clone, Copy)]
pub struct Periods {
    pub browse_history: u32,
    pub search_history: u32,
    pub request_log: u32,
    pub notifications: u32,
    pub devices: u32,
    pub audit_log: u32,
    /// After a verification is decided, its ID photos (and a rejected one's sealed details) go.
    pub id_photos: u32,
}

impl Periods {
    pub fn from_config(c: &crate::config::Config) -> Periods {
        Periods {
            browse_history: c.browse_history_retention_days,
            search_history: c.search_history_retention_days,
            request_log: c.request_log_retention_days,
            notifications: c.notification_retention_days,
            devices: c.device_retention_days,
            audit_log: c.audit_log_retention_days,
            id_photos: c.id_photo_retention_days,
        }
    }
}

/// What one purge removed, by kind (rows; files for exports and photos).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purged {
    pub browse_history: u64,
    pub search_history: u64,
    pub request_log: u64,
    pub visitor_days: u64,
    pub notifications: u64,
    pub devices: u64,
    pub audit_log: u64,
    pub sessions: u64,
    pub login_failures: u64,
    /// SMS codes (and the send log the daily caps count) older than a day.
    pub phone_codes: u64,
    /// SMS outbox rows (sent or not) older than a day.
    pub sms_outbox: u64,
    /// Email codes (the send log of the spacing and caps) older than a day.
    pub email_codes: u64,
    /// Email outbox rows (sent or not) older than a day.
    pub email_outbox: u64,
    pub exports: u64,
    pub id_photos: u64,
    /// Message photos and videos uploaded more than a day ago and never sent.
    pub unsent_message_media: u64,
    /// Web Push outbox rows (sent, dropped or given up) older than a day.
    pub push_outbox: u64,
    /// OAuth codes and tokens past their expiry (spent ones included: a spent refresh token is
    /// kept until then so that its replay is still recognised).
    pub oauth: u64,
}

fn days(n: u32) -> Duration {
    Duration::days(i64::from(n))
}

/// Deletes, `BATCH` rows at a time, the rows of `E` whose `key` is among those `select` finds.
macro_rules! purge_batches {
    ($db:expr, $entity:ty, $key:expr, $filter:expr) => {
        purge_batches!($db, $entity, $key, i64, $filter)
    };
    ($db:expr, $entity:ty, $key:expr, $key_ty:ty, $filter:expr) => {{
        let mut total = 0u64;
        loop {
            let keys: Vec<_> = <$entity>::find()
                .select_only()
                .column($key)
                .filter($filter)
                .limit(BATCH)
                .into_tuple::<($key_ty,)>()
                .all($db)
                .await?
                .into_iter()
                .map(|(k,)| k)
                .collect::<Vec<$key_ty>>();
            if keys.is_empty() {
                break;
            }
            let n = keys.len() as u64;
            total += <$entity>::delete_many().filter($key.is_in(keys)).exec($db).await?.rows_affected;
            if n < BATCH {
                break;
            }
        }
        total
    }};
}

/// Removes everything older than its period as of `now`. Idempotent; safe to run concurrently with
/// traffic (each batch is its own statement).
pub async fn purge(db: &DatabaseConnection, store: &MediaStore, p: &Periods, now: DateTime<Utc>) -> AppResult<Purged> {
    let browse_history = purge_batches!(
        db,
        browse_history::Entity,
        browse_history::Column::Id,
        browse_history::Column::ViewedAt.lt(now - days(p.browse_history))
    );
    let search_history = purge_batches!(
        db,
        search_history::Entity,
        search_history::Column::Id,
        search_history::Column::SearchedAt.lt(now - days(p.search_history))
    );
    let request_log = purge_batches!(
        db,
        request_log::Entity,
        request_log::Column::Id,
        request_log::Column::At.lt(now - days(p.request_log))
    );
    let visitor_days = visitor_views::Entity::delete_many()
        .filter(visitor_views::Column::Day.lt((now - days(p.request_log)).date_naive()))
        .exec(db)
        .await?
        .rows_affected;
    let notifications = purge_batches!(
        db,
        notifications::Entity,
        notifications::Column::Id,
        notifications::Column::UpdatedAt.lt(now - days(p.notifications))
    );
    let devices = purge_batches!(
        db,
        user_devices::Entity,
        user_devices::Column::Id,
        user_devices::Column::FirstSeenAt.lt(now - days(p.devices))
    );
    let audit_log =
        purge_batches!(db, audit_log::Entity, audit_log::Column::Id, audit_log::Column::At.lt(now - days(p.audit_log)));
    // These end by themselves: an expired session, a sign-in window and lock that have both passed.
    let sessions = purge_batches!(db, sessions::Entity, sessions::Column::Id, sessions::Column::ExpiresAt.lt(now));
    let login_failures = purge_batches!(
        db,
        login_failures::Entity,
        login_failures::Column::PhoneHash,
        String,
        login_failures::Column::WindowStart
            .lt(now - crate::services::signin::WINDOW)
            .and(login_failures::Column::LockedUntil.is_null().or(login_failures::Column::LockedUntil.lt(now)))
    );
    let phone_codes = purge_batches!(
        db,
        phone_codes::Entity,
        phone_codes::Column::Id,
        phone_codes::Column::CreatedAt.lt(now - crate::services::phone_codes::DAY)
    );
    let sms_outbox = purge_batches!(
        db,
        sms_outbox::Entity,
        sms_outbox::Column::Id,
        sms_outbox::Column::CreatedAt.lt(now - crate::services::phone_codes::DAY)
    );
    let email_codes = purge_batches!(
        db,
        email_codes::Entity,
        email_codes::Column::Id,
        email_codes::Column::CreatedAt.lt(now - crate::services::email::DAY)
    );
    let email_outbox = purge_batches!(
        db,
        email_outbox::Entity,
        email_outbox::Column::Id,
        email_outbox::Column::CreatedAt.lt(now - crate::services::email::DAY)
    );
    let push_outbox = purge_batches!(
        db,
        entity::push_outbox::Entity,
        entity::push_outbox::Column::Id,
        entity::push_outbox::Column::CreatedAt
            .lt(now - Duration::days(1))
            .and(entity::push_outbox::Column::Status.is_in(crate::services::push::DONE))
    );
    let oauth = purge_batches!(
        db,
        entity::oauth_tokens::Entity,
        entity::oauth_tokens::Column::Id,
        entity::oauth_tokens::Column::ExpiresAt.lt(now)
    ) + purge_batches!(
        db,
        entity::oauth_codes::Entity,
        entity::oauth_codes::Column::Id,
        entity::oauth_codes::Column::ExpiresAt.lt(now)
    );
    let exports = purge_exports(db, store, now).await?;
    let id_photos = purge_id_photos(db, store, now - days(p.id_photos)).await?;
    let unsent_message_media = purge_unsent_message_media(db, store, now - Duration::days(1)).await?;
    Ok(Purged {
        browse_history,
        search_history,
        request_log,
        visitor_days,
        notifications,
        devices,
        audit_log,
        sessions,
        login_failures,
        phone_codes,
        sms_outbox,
        email_codes,
        email_outbox,
        exports,
        id_photos,
        unsent_message_media,
        push_outbox,
        oauth,
    })
}

/// A message's photo or video that was never sent is nobody's message: sealed private storage
/// with no end. A day is long enough for any draft.
async fn purge_unsent_message_media(
    db: &DatabaseConnection,
    store: &MediaStore,
    cutoff: DateTime<Utc>,
) -> AppResult<u64> {
    use crate::services::media::Kind;
    let mut total = 0;
    loop {
        let rows = entity::media::Entity::find()
            .filter(entity::media::Column::Kind.is_in([Kind::MessagePhoto.as_str(), Kind::MessageVideo.as_str()]))
            .filter(entity::media::Column::MessageId.is_null())
            .filter(entity::media::Column::CreatedAt.lt(cutoff))
            .limit(BATCH)
            .all(db)
            .await?;
        let n = rows.len() as u64;
        crate::services::media::remove(db, store, rows).await?;
        total += n;
        if n < BATCH {
            return Ok(total);
        }
    }
}

/// Expired exports: the file first, then the row, so a failure leaves a row to retry, never a file
/// nobody knows about.
async fn purge_exports(db: &DatabaseConnection, store: &MediaStore, now: DateTime<Utc>) -> AppResult<u64> {
    let mut total = 0;
    loop {
        let rows =
            data_exports::Entity::find().filter(data_exports::Column::ExpiresAt.lt(now)).limit(BATCH).all(db).await?;
        for r in &rows {
            if let Ok(id) = uuid::Uuid::parse_str(&r.id) {
                store.remove(Area::Exports, &id).await.map_err(AppError::internal)?;
            }
        }
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        total += data_exports::Entity::delete_many()
            .filter(data_exports::Column::Id.is_in(ids))
            .exec(db)
            .await?
            .rows_affected;
        if (rows.len() as u64) < BATCH {
            return Ok(total);
        }
    }
}

/// ID photos of verifications decided before `cutoff`: the files go and the row forgets them; a
/// rejected verification's sealed name and number go with its photos (nothing needs them), while
/// an approved one keeps them (it is what lets the member create boards).
async fn purge_id_photos(db: &DatabaseConnection, store: &MediaStore, cutoff: DateTime<Utc>) -> AppResult<u64> {
    let mut files = 0;
    loop {
        let rows = iv::Entity::find()
            .filter(iv::Column::ReviewedAt.lt(cutoff))
            .filter(iv::Column::FrontMediaId.ne("").or(iv::Column::BackMediaId.ne("")))
            .limit(BATCH)
            .all(db)
            .await?;
        for r in &rows {
            for media in [&r.front_media_id, &r.back_media_id] {
                if let Ok(id) = uuid::Uuid::parse_str(media) {
                    store.remove(Area::Private, &id).await.map_err(AppError::internal)?;
                    files += 1;
                }
            }
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        iv::Entity::update_many()
            .col_expr(iv::Column::FrontMediaId, Expr::value(""))
            .col_expr(iv::Column::BackMediaId, Expr::value(""))
            .filter(iv::Column::Id.is_in(ids.clone()))
            .exec(db)
            .await?;
        iv::Entity::delete_many()
            .filter(iv::Column::Id.is_in(ids))
            .filter(iv::Column::Status.eq(identity::Status::Rejected.as_str()))
            .exec(db)
            .await?;
        if (rows.len() as u64) < BATCH {
            return Ok(files);
        }
    }
}

/// Takes (or renews) the purge lease for `holder` until `now + LEASE_FOR`; false when another
/// instance holds it.
pub async fn take_lease(db: &DatabaseConnection, holder: &str, now: DateTime<Utc>) -> AppResult<bool> {
    job_leases::Entity::insert(job_leases::ActiveModel {
        name: Set(LEASE.into()),
        holder: Set(String::new()),
        expires_at: Set(now - Duration::seconds(1)),
    })
    .on_conflict(OnConflict::column(job_leases::Column::Name).do_nothing().to_owned())
    .exec_without_returning(db)
    .await?;
    let taken = job_leases::Entity::update_many()
        .col_expr(job_leases::Column::Holder, Expr::value(holder))
        .col_expr(job_leases::Column::ExpiresAt, Expr::value(now + LEASE_FOR))
        .filter(job_leases::Column::Name.eq(LEASE))
        .filter(job_leases::Column::ExpiresAt.lt(now).or(job_leases::Column::Holder.eq(holder)))
        .exec(db)
        .await?;
    Ok(taken.rows_affected == 1)
}

/// The hourly purge of this instance: runs only while it holds the lease.
pub fn spawn(db: DatabaseConnection, store: MediaStore, periods: Periods) {
    let holder = uuid::Uuid::new_v4().to_string();
    tokio::spawn(crate::db::background(async move {
        // Not at once: a fleet that restarts together would all race for the lease at boot.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + FIRST_AFTER, EVERY);
        loop {
            tick.tick().await;
            let now = Utc::now();
            match take_lease(&db, &holder, now).await {
                Ok(true) => match purge(&db, &store, &periods, now).await {
                    Ok(purged) => tracing::info!(?purged, "retention purge"),
                    Err(err) => tracing::warn!(?err, "retention purge failed; retried next hour"),
                },
                Ok(false) => {}
                Err(err) => tracing::warn!(?err, "could not take the retention lease"),
            }
        }
    }));
}
