//! The privacy policy: versions published by ADMINs and archived forever, members' acceptances, and
//! the rule that after a major version a member can read but not write until they accept it.
//!
//! Registering accepts the version current at that moment. Publishing a major version notifies every
//! member (in-site notification and push).

use chrono::Utc;
use entity::{policy_acceptances, policy_versions};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use crate::auth::Viewer;
use crate::authz;
use crate::error::{AppError, AppResult};
use crate::pubsub::Broker;
use crate::services::notifications::{self, Kind};
use crate::services::validate::{self, Lines};

pub const BODY_MAX: usize = 100_000;

pub async fn current<C: ConnectionTrait>(db: &C) -> AppResult<Option<policy_versions::Model>> {
    Ok(policy_versions::Entity::find().order_by_desc(policy_versions::Column::Version).one(db).await?)
}

pub async fn get(db: &DatabaseConnection, version: i32) -> AppResult<Option<policy_versions::Model>> {
    Ok(policy_versions::Entity::find_by_id(version).one(db).await?)
}

/// Every version, newest first.
pub async fn all(db: &DatabaseConnection) -> AppResult<Vec<policy_versions::Model>> {
    Ok(policy_versions::Entity::find().order_by_desc(policy_versions::Column::Version).all(db).await?)
}

/// Publishes the next version. A major one notifies every member and requires their consent.
pub async fn publish(
    db: &DatabaseConnection,
    broker: &Broker,
    viewer: &Viewer,
    body: &str,
    major: bool,
) -> AppResult<policy_versions::Model> {
    authz::require(Some(viewer), authz::Action::PublishPolicy)?;
    let body = validate::text("input.body", body, 1, BODY_MAX, Lines::Multi)?;
    let next = current(db).await?.map_or(1, |v| v.version + 1);
    let published = policy_versions::ActiveModel {
        version: Set(next),
        body: Set(body),
        major: Set(major),
        published_at: Set(Utc::now()),
    }
    .insert(db)
    .await
    .map_err(|e| AppError::conflict_on_unique(e, "another version was published at the same time; try again"))?;
    if major {
        let body = format!("The privacy policy changed (version {next}). Please read and accept it to keep posting.");
        notifications::broadcast(db, broker, None, Kind::PolicyUpdated, &body, None).await?;
    }
    Ok(published)
}

/// Records the member's acceptance of `version` (idempotent).
pub async fn accept<C: ConnectionTrait>(db: &C, user_id: i64, version: i32) -> AppResult<()> {
    if policy_versions::Entity::find_by_id(version).one(db).await?.is_none() {
        return Err(AppError::NotFound("policy version"));
    }
    policy_acceptances::Entity::insert(policy_acceptances::ActiveModel {
        user_id: Set(user_id),
        version: Set(version),
        accepted_at: Set(Utc::now()),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::columns([policy_acceptances::Column::UserId, policy_acceptances::Column::Version])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// On registration: the member accepts the version current then (if any).
pub async fn accept_current<C: ConnectionTrait>(db: &C, user_id: i64) -> AppResult<()> {
    if let Some(v) = current(db).await? {
        accept(db, user_id, v.version).await?;
    }
    Ok(())
}

/// The newest version the member accepted.
pub async fn accepted(db: &DatabaseConnection, user_id: i64) -> AppResult<Option<i32>> {
    Ok(policy_acceptances::Entity::find()
        .select_only()
        .column_as(policy_acceptances::Column::Version.max(), "v")
        .filter(policy_acceptances::Column::UserId.eq(user_id))
        .into_tuple::<Option<i32>>()
        .one(db)
        .await?
        .flatten())
}

/// The major version the member still has to accept, if any.
pub async fn consent_required(db: &DatabaseConnection, user_id: i64) -> AppResult<Option<i32>> {
    let latest_major: Option<i32> = policy_versions::Entity::find()
        .select_only()
        .column_as(policy_versions::Column::Version.max(), "v")
        .filter(policy_versions::Column::Major.eq(true))
        .into_tuple::<Option<i32>>()
        .one(db)
        .await?
        .flatten();
    let Some(major) = latest_major else { return Ok(None) };
    let accepted = accepted(db, user_id).await?.unwrap_or(0);
    Ok((accepted < major).then_some(major))
}
