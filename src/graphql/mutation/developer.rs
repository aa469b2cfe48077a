//! Developer apps: registration by members, review by admins.

use async_graphql::{Context, InputObject, Object, SimpleObject};

use crate::graphql::types::developer_app::DeveloperApp;
use crate::graphql::{require_viewer, staff_note, state};
use crate::services::developer_apps::{self, NewApp};

#[derive(InputObject)]
pub struct RegisterAppInput {
    /// 1 to 60 characters, shown to members on the consent page.
    name: String,
    /// What the app does with members' data, 1 to 1,000 characters, shown on the consent page.
    description: String,
    homepage_url: String,
    /// 1 to 10 exact redirect URIs: https, http on 127.0.0.1 or [::1], or a private-use scheme
    /// (`com.example.app:/oauth`).
    redirect_uris: Vec<String>,
    /// A server-side app that can keep a client secret. Mobile and single-page apps are public
    /// (false) and use PKCE alone.
    confidential: bool,
}

#[derive(SimpleObject)]
pub struct RegisterAppPayload {
    app: DeveloperApp,
    /// The client secret of a confidential app. Shown this once: the gateway keeps only its hash.
    client_secret: Option<String>,
}

#[derive(InputObject)]
pub struct ReviewAppInput {
    /// The app's `clientId`.
    client_id: String,
    approve: bool,
    /// Why, 1 to 500 characters: on the staff record and shown to the developer.
    reason: String,
}

#[derive(SimpleObject)]
pub struct ReviewAppPayload {
    app: DeveloperApp,
}

#[derive(InputObject)]
pub struct RevokeAppAuthorizationInput {
    /// The app's `clientId`, as `me.authorizedApps` lists it.
    client_id: String,
}

#[derive(SimpleObject)]
pub struct RevokeAppAuthorizationPayload {
    /// The app whose access ended.
    client_id: String,
}

#[derive(InputObject)]
pub struct DeleteAppInput {
    /// The app's `clientId`, as `me.developerApps` lists it.
    client_id: String,
}

#[derive(SimpleObject)]
pub struct DeleteAppPayload {
    /// The app that is gone.
    deleted_client_id: String,
}

#[derive(Default)]
pub struct DeveloperMutation;

#[Object]
impl DeveloperMutation {
    /// Registers a third-party app (members with an approved real-name verification, and admins).
    /// It stays PENDING until an admin approves it; only an approved app may ask members for
    /// access to their data.
    async fn register_app(
        &self,
        ctx: &Context<'_>,
        input: RegisterAppInput,
    ) -> async_graphql::Result<RegisterAppPayload> {
        let viewer = require_viewer(ctx)?;
        let new = NewApp {
            name: &input.name,
            description: &input.description,
            homepage_url: &input.homepage_url,
            redirect_uris: &input.redirect_uris,
            confidential: input.confidential,
        };
        let done = developer_apps::register(&state(ctx)?.db, &viewer, new).await?;
        Ok(RegisterAppPayload { app: DeveloperApp(done.app), client_secret: done.client_secret })
    }

    /// Deletes one of the viewer's apps for good (its developer only). Every member's grant to it
    /// ends, on the record as REVOKE_APP: its tokens stop working and its open sockets close, on
    /// every instance. The client id is never valid again.
    async fn delete_app(&self, ctx: &Context<'_>, input: DeleteAppInput) -> async_graphql::Result<DeleteAppPayload> {
        let viewer = require_viewer(ctx)?;
        let gql = state(ctx)?;
        let ip = crate::graphql::request_info(ctx).and_then(|i| i.ip.clone());
        developer_apps::delete(&gql.db, &gql.broker, &viewer, ip.as_deref(), &input.client_id).await?;
        Ok(DeleteAppPayload { deleted_client_id: input.client_id })
    }

    /// Withdraws a third-party app's access to the member's account: every token it holds stops
    /// working and its open sockets close, on every instance. Recorded as REVOKE_APP.
    async fn revoke_app_authorization(
        &self,
        ctx: &Context<'_>,
        input: RevokeAppAuthorizationInput,
    ) -> async_graphql::Result<RevokeAppAuthorizationPayload> {
        let viewer = require_viewer(ctx)?;
        let app = state(ctx)?;
        let ip = crate::graphql::request_info(ctx).and_then(|i| i.ip.clone());
        crate::services::oauth::revoke_for_member(&app.db, &app.broker, &viewer, ip.as_deref(), &input.client_id)
            .await?;
        Ok(RevokeAppAuthorizationPayload { client_id: input.client_id })
    }

    /// ADMIN: approves or rejects an app (never one's own), audited as REVIEW_APP.
    async fn review_app(&self, ctx: &Context<'_>, input: ReviewAppInput) -> async_graphql::Result<ReviewAppPayload> {
        let viewer = require_viewer(ctx)?;
        let note = staff_note(ctx, Some(&input.reason));
        let gql = state(ctx)?;
        let app = developer_apps::review(&gql.db, &gql.broker, &viewer, note, &input.client_id, input.approve).await?;
        Ok(ReviewAppPayload { app: DeveloperApp(app) })
    }
}
