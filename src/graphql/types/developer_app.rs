//! Developer apps (third-party clients) as their developer and the reviewing admins see them.

use async_graphql::{Context, Enum, Object};
use chrono::{DateTime, Utc};
use entity::developer_apps;

use super::{User, load_one};
use crate::graphql::loaders;
use crate::services::developer_apps::Status;

/// Where an app's review stands. Only an APPROVED app may ask members for access.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum AppStatus {
    Pending,
    Approved,
    Rejected,
}

impl From<AppStatus> for Status {
    fn from(s: AppStatus) -> Status {
        match s {
            AppStatus::Pending => Status::Pending,
            AppStatus::Approved => Status::Approved,
            AppStatus::Rejected => Status::Rejected,
        }
    }
}

impl From<Status> for AppStatus {
    fn from(s: Status) -> AppStatus {
        match s {
            Status::Pending => AppStatus::Pending,
            Status::Approved => AppStatus::Approved,
            Status::Rejected => AppStatus::Rejected,
        }
    }
}

/// A third-party app registered to use the API on members' behalf (an OAuth 2.1 client).
pub struct DeveloperApp(pub developer_apps::Model);

#[Object]
impl DeveloperApp {
    /// The OAuth `client_id` (public).
    async fn client_id(&self) -> &str {
        &self.0.client_id
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn description(&self) -> &str {
        &self.0.description
    }

    async fn homepage_url(&self) -> &str {
        &self.0.homepage_url
    }

    /// The exact redirect URIs an authorization may return to.
    async fn redirect_uris(&self) -> Vec<String> {
        self.0
            .redirect_uris
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }

    /// A server-side app with a client secret; false for a mobile or single-page app (PKCE only).
    async fn confidential(&self) -> bool {
        self.0.confidential
    }

    async fn status(&self) -> async_graphql::Result<AppStatus> {
        Ok(Status::parse(&self.0.status)?.into())
    }

    /// The reviewing admin's words to the developer.
    async fn review_reason(&self) -> Option<&str> {
        self.0.review_reason.as_deref()
    }

    async fn reviewed_at(&self) -> Option<DateTime<Utc>> {
        self.0.reviewed_at
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// The member who registered it.
    async fn developer(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        Ok(load_one(&loaders(ctx)?.users, self.0.owner_id).await?.map(User))
    }
}

/// A member's grant to a third-party app: which app, and what it may do for them.
pub struct AuthorizedApp(pub crate::services::oauth::Authorized);

#[Object]
impl AuthorizedApp {
    /// The app's OAuth `client_id`: what `revokeAppAuthorization` takes.
    async fn client_id(&self) -> &str {
        &self.0.app.client_id
    }

    async fn name(&self) -> &str {
        &self.0.app.name
    }

    async fn homepage_url(&self) -> &str {
        &self.0.app.homepage_url
    }

    /// Who made the app (null once their account is deleted).
    async fn developer(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        Ok(load_one(&loaders(ctx)?.users, self.0.app.owner_id).await?.map(User))
    }

    /// The scopes granted (`posts:read`...), as the consent page showed them.
    async fn scopes(&self) -> Vec<String> {
        self.0.grant.scopes.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect()
    }

    /// When the member first authorized the app.
    async fn granted_at(&self) -> DateTime<Utc> {
        self.0.grant.created_at
    }

    /// When the member last approved a request from it (widening the grant, or again).
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.grant.updated_at
    }
}
