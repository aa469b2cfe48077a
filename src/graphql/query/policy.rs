//! The privacy policy, current and archived: readable by everyone.

use async_graphql::{Context, ID, Object, SimpleObject};

use crate::error::AppResult;
use crate::graphql::ids::{self, Kind};
use chrono::{DateTime, Utc};

use crate::graphql::{require_viewer, state};
use crate::services::policy;

/// One published version of the privacy policy.
#[derive(SimpleObject)]
pub struct PolicyVersion {
    pub version: i32,
    pub body: String,
    /// A major version needs every member's consent before they can write again.
    pub major: bool,
    pub published_at: DateTime<Utc>,
}

impl From<entity::policy_versions::Model> for PolicyVersion {
    fn from(m: entity::policy_versions::Model) -> Self {
        PolicyVersion { version: m.version, body: m.body, major: m.major, published_at: m.published_at }
    }
}

/// Where the viewer stands with the policy.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct PolicyConsent {
    #[graphql(skip)]
    pub id: ID,
    /// The newest version the viewer accepted.
    pub accepted_version: Option<i32>,
    /// The major version the viewer must accept before writing again, if any.
    pub required_version: Option<i32>,
}

#[async_graphql::ComplexObject]
impl PolicyConsent {
    /// One per member: a normalised client cache updates it in place.
    pub async fn id(&self) -> ID {
        self.id.clone()
    }
}

pub async fn consent(ctx: &Context<'_>) -> async_graphql::Result<PolicyConsent> {
    let viewer = require_viewer(ctx)?;
    Ok(consent_of(&state(ctx)?.db, viewer.user_id).await?)
}

pub async fn consent_of(db: &sea_orm::DatabaseConnection, user_id: i64) -> AppResult<PolicyConsent> {
    Ok(PolicyConsent {
        id: ids::encode(Kind::PolicyConsent, user_id),
        accepted_version: policy::accepted(db, user_id).await?,
        required_version: policy::consent_required(db, user_id).await?,
    })
}

#[derive(Default)]
pub struct PolicyQuery;

#[Object]
impl PolicyQuery {
    /// The current privacy policy, or an archived `version`; null before the first is published.
    async fn privacy_policy(
        &self,
        ctx: &Context<'_>,
        version: Option<i32>,
    ) -> async_graphql::Result<Option<PolicyVersion>> {
        let db = &state(ctx)?.db;
        let found = match version {
            Some(v) => policy::get(db, v).await?,
            None => policy::current(db).await?,
        };
        Ok(found.map(Into::into))
    }

    /// Every version ever published, newest first.
    async fn privacy_policy_versions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<PolicyVersion>> {
        Ok(policy::all(&state(ctx)?.db).await?.into_iter().map(Into::into).collect())
    }

    /// The signed-in viewer's consent.
    async fn policy_consent(&self, ctx: &Context<'_>) -> async_graphql::Result<PolicyConsent> {
        consent(ctx).await
    }
}
