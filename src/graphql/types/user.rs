use async_graphql::connection::Connection;
use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use entity::users;

use super::enums::{Gender, Role};
use super::{Board, Comment, Counted, Post, connection, connection_via, count, counted, counted_via, load_one};
use crate::auth;
use crate::authz::{self, Action};
use crate::error::AppError;
use crate::graphql::ids::{self, Kind};
use crate::graphql::loaders::EdgeKey;
use crate::graphql::{api_url, loaders, page_args, state, viewer};
use crate::services::social::{self, Edge, Side};
use crate::services::{accounts, audit, comments as comment_service, posts as post_service};

/// A member of the community. Contact details are visible to the member alone.
pub struct User(pub users::Model);

impl User {
    /// Whether the viewer may read what is private to this member.
    fn is_self(&self, ctx: &Context<'_>) -> bool {
        authz::can(viewer(ctx).as_ref(), Action::ReadOwn { owner: self.0.id })
    }
}

#[Object]
impl User {
    pub async fn id(&self) -> ID {
        ids::encode(Kind::User, self.0.id)
    }

    /// The member's page on the web: `PUBLIC_WEB_URL/u/<accountName>`, or `/users/<id>` for a member
    /// without an account name.
    async fn url(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        let path = match &self.0.account_name {
            Some(name) => format!("/u/{name}"),
            None => format!("/users/{}", ids::encode(Kind::User, self.0.id).as_str()),
        };
        crate::graphql::web_url(ctx, &path)
    }

    /// The unique handle, if the member chose one.
    async fn account_name(&self) -> Option<&str> {
        self.0.account_name.as_deref()
    }

    async fn nickname(&self) -> &str {
        &self.0.nickname
    }

    /// The member's picture: an absolute URL (an avatar uploaded with `setAvatar` is served by this
    /// gateway, `PUBLIC_API_URL/media/{uuid}`); null without one.
    async fn avatar_url(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        match self.0.avatar_url.as_deref() {
            // Stored as the route's path, so a change of PUBLIC_API_URL moves every avatar with it.
            Some(path) if path.starts_with("/media/") => Ok(Some(api_url(ctx, path)?)),
            other => Ok(other.map(str::to_string)),
        }
    }

    async fn gender(&self) -> Gender {
        accounts::Gender::parse(&self.0.gender).into()
    }

    async fn signature(&self) -> Option<&str> {
        self.0.signature.as_deref()
    }

    async fn role(&self) -> async_graphql::Result<Role> {
        Ok(auth::Role::parse(&self.0.role)?.into())
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// The member's phone number (E.164); null unless you are this member.
    async fn phone(&self, ctx: &Context<'_>) -> Option<&str> {
        self.is_self(ctx).then_some(self.0.phone.as_deref()).flatten()
    }

    /// The member's email; null unless you are this member.
    async fn email(&self, ctx: &Context<'_>) -> Option<&str> {
        self.is_self(ctx).then_some(self.0.email.as_deref()).flatten()
    }

    /// Whether `email` was proven with a code sent to it (`addEmail`, `verifyEmail`): only a verified
    /// address can reset the password and receives security notices. False unless you are this
    /// member.
    async fn email_verified(&self, ctx: &Context<'_>) -> bool {
        self.is_self(ctx) && self.0.email.is_some() && self.0.email_verified_at.is_some()
    }

    /// An address given to `addEmail` and not proven yet (`verifyEmail`); null unless you are this
    /// member.
    async fn pending_email(&self, ctx: &Context<'_>) -> Option<&str> {
        self.is_self(ctx).then_some(self.0.pending_email.as_deref()).flatten()
    }

    /// Whether this is the signed-in viewer.
    async fn is_viewer(&self, ctx: &Context<'_>) -> bool {
        self.is_self(ctx)
    }

    async fn follower_count(&self) -> i32 {
        count(self.0.follower_count)
    }

    async fn following_count(&self) -> i32 {
        count(self.0.following_count)
    }

    async fn post_count(&self) -> i32 {
        count(self.0.post_count)
    }

    /// Whether the signed-in viewer follows this member (false when signed out).
    async fn viewer_is_following(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let Some(v) = viewer(ctx) else {
            return Ok(false);
        };
        let key = EdgeKey { edge: Edge::UserFollow, actor: v.user_id, target: self.0.id };
        Ok(load_one(&loaders(ctx)?.edges, key).await?.unwrap_or(false))
    }

    /// Whether the viewer has blocked this member (false signed out).
    async fn viewer_has_blocked(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(self.relation(ctx).await?.viewer_blocked)
    }

    /// Whether this member follows the viewer (false signed out).
    async fn follows_viewer(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(self.relation(ctx).await?.follows_viewer)
    }

    /// Whether `sendMessage` to this member would be accepted now: signed in, not oneself, and no
    /// block either way (a block by this member shows only as `false` here).
    async fn viewer_can_message(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let Some(v) = viewer(ctx) else { return Ok(false) };
        if v.user_id == self.0.id {
            return Ok(false);
        }
        let r = self.relation(ctx).await?;
        Ok(crate::services::messaging::may_message(v.user_id, self.0.id, r.viewer_blocked || r.blocked_viewer).is_ok())
    }

    /// The member's posts, newest first. `totalCount` is `postCount` (stored).
    #[graphql(complexity = "crate::graphql::types::list_cost(first, child_complexity)")]
    async fn posts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Counted<Post>> {
        let page = page_args(ctx, first, after.as_deref())?;
        let filter = post_service::Filter { author_id: Some(self.0.id), ..Default::default() };
        let posts = crate::graphql::loaders(ctx)?
            .post_list(&state(ctx)?.db, filter, post_service::Order::Latest, &page)
            .await?;
        crate::graphql::prefetch::posts(ctx, &posts).await?;
        Ok(counted(posts, Post, Some(self.0.post_count)))
    }

    /// The member's comments and replies, newest first. No `totalCount` (null): no counter is kept.
    #[graphql(complexity = "crate::graphql::types::list_cost(first, child_complexity)")]
    async fn comments(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Counted<Comment>> {
        let page = page_args(ctx, first, after.as_deref())?;
        let comments = comment_service::by_author(&state(ctx)?.db, self.0.id, &page).await?;
        crate::graphql::prefetch::comments(ctx, &comments).await?;
        Ok(counted(comments, Comment, None))
    }

    /// Who follows this member, most recent first. `totalCount` is `followerCount` (stored).
    #[graphql(complexity = "crate::graphql::types::list_cost(first, child_complexity)")]
    async fn followers(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Counted<User>> {
        let page = page_args(ctx, first, after.as_deref())?;
        let ids = social::list(&state(ctx)?.db, Edge::UserFollow, Side::ToTarget, self.0.id, &page).await?;
        crate::graphql::prefetch::user_ids(ctx, &ids).await?;
        Ok(counted_via(&loaders(ctx)?.users, ids, User, Some(self.0.follower_count)).await?)
    }

    /// Whom this member follows, most recent first. `totalCount` is `followingCount` (stored).
    #[graphql(complexity = "crate::graphql::types::list_cost(first, child_complexity)")]
    async fn following(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Counted<User>> {
        let page = page_args(ctx, first, after.as_deref())?;
        let ids = social::list(&state(ctx)?.db, Edge::UserFollow, Side::FromActor, self.0.id, &page).await?;
        crate::graphql::prefetch::user_ids(ctx, &ids).await?;
        Ok(counted_via(&loaders(ctx)?.users, ids, User, Some(self.0.following_count)).await?)
    }

    /// The same list as `following`, under the name the privacy pages used next to `followingBoards`.
    #[graphql(
        complexity = "crate::graphql::types::list_cost(first, child_complexity)",
        deprecation = "Use `following`: the same list."
    )]
    async fn following_users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Counted<User>> {
        self.following(ctx, first, after).await
    }

    /// Boards this member follows, most recent first.
    #[graphql(complexity = "crate::graphql::types::list_cost(first, child_complexity)")]
    async fn following_boards(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Board>> {
        let page = page_args(ctx, first, after.as_deref())?;
        let ids = social::list(&state(ctx)?.db, Edge::BoardFollow, Side::FromActor, self.0.id, &page).await?;
        crate::graphql::prefetch::board_ids(ctx, &ids).await?;
        Ok(connection_via(&loaders(ctx)?.boards, ids, Board).await?)
    }

    /// Posts this member saved, most recently saved first. Private: only the member may read it.
    #[graphql(complexity = "crate::graphql::types::list_cost(first, child_complexity)")]
    async fn favorites(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Option<Counted<Post>>> {
        authz::require(viewer(ctx).as_ref(), Action::ReadOwn { owner: self.0.id })?;
        let page = page_args(ctx, first, after.as_deref())?;
        let ids = social::list(&state(ctx)?.db, Edge::Favorite, Side::FromActor, self.0.id, &page).await?;
        crate::graphql::prefetch::post_ids(ctx, &ids).await?;
        Ok(Some(counted_via(&loaders(ctx)?.posts, ids, Post, None).await?))
    }

    /// Reports this member filed, newest first, with their status and outcome. Only the member sees
    /// them.
    #[graphql(complexity = "crate::graphql::types::list_cost(first, child_complexity)")]
    async fn reports_filed(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Option<async_graphql::connection::Connection<String, super::moderation::Report>>> {
        let v = self.own(ctx)?;
        let page = page_args(ctx, first, after.as_deref())?;
        let rows = crate::services::reports::mine(&state(ctx)?.db, &v, &page).await?;
        Ok(Some(super::connection(rows, super::moderation::Report)))
    }

    /// Third-party apps this member registered as a developer, newest first. Only the member sees
    /// them.
    async fn developer_apps(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<Vec<super::developer_app::DeveloperApp>>> {
        let v = self.own(ctx)?;
        let rows = crate::services::developer_apps::of_member(&state(ctx)?.db, v.user_id).await?;
        Ok(Some(rows.into_iter().map(super::developer_app::DeveloperApp).collect()))
    }

    /// Third-party apps this member allowed to act for them (OAuth grants), most recently approved
    /// first. Only the member sees them; `revokeAppAuthorization` withdraws one.
    async fn authorized_apps(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<Vec<super::developer_app::AuthorizedApp>>> {
        let v = self.own(ctx)?;
        let rows = crate::services::oauth::authorized(&state(ctx)?.db, v.user_id).await?;
        Ok(Some(rows.into_iter().map(super::developer_app::AuthorizedApp).collect()))
    }

    /// Devices registered for Web Push, newest first. Only the member sees them.
    async fn push_subscriptions(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<Vec<super::push::PushSubscription>>> {
        let v = self.own(ctx)?;
        let rows = crate::services::push::of_member(&state(ctx)?.db, v.user_id).await?;
        Ok(Some(rows.into_iter().map(super::push::PushSubscription).collect()))
    }

    /// Devices signed in to this account, most recently used first. Only the member sees them.
    async fn sessions(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Vec<super::session::Session>>> {
        let v = self.own(ctx)?;
        let rows = accounts::sessions_of(&state(ctx)?.db, &v).await?;
        Ok(Some(rows.into_iter().map(super::session::Session).collect()))
    }

    /// Whether the account is suspended. Staff only; null for everyone else.
    async fn suspended(&self, ctx: &Context<'_>) -> Option<bool> {
        authz::can(viewer(ctx).as_ref(), Action::ReadSuspension)
            .then(|| crate::services::accounts::is_suspended(&self.0, chrono::Utc::now()))
    }

    /// Posts this member opened, most recent first. Only the member sees it.
    #[graphql(complexity = "crate::graphql::types::list_cost(first, child_complexity)")]
    async fn browse_history(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Option<Connection<String, super::history::BrowseEntry>>> {
        let v = self.own(ctx)?;
        let page =
            crate::services::history::browse_history(&state(ctx)?.db, &v, &page_args(ctx, first, after.as_deref())?)
                .await?;
        let ids: Vec<i64> = page.items.iter().map(|(_, e)| e.post_id).collect();
        loaders(ctx)?.posts.load_many(ids).await?;
        Ok(Some(connection(page, super::history::BrowseEntry)))
    }

    /// Searches this member ran, most recent first. Only the member sees it.
    #[graphql(complexity = "crate::graphql::types::list_cost(first, child_complexity)")]
    async fn search_history(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Option<Connection<String, super::history::SearchEntry>>> {
        let v = self.own(ctx)?;
        let page =
            crate::services::history::search_history(&state(ctx)?.db, &v, &page_args(ctx, first, after.as_deref())?)
                .await?;
        Ok(Some(connection(page, super::history::SearchEntry)))
    }

    /// This member's privacy switches. Only the member sees them.
    async fn settings(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<super::history::Settings>> {
        let v = self.own(ctx)?;
        let s = crate::services::history::settings(&state(ctx)?.db, v.user_id).await?;
        Ok(Some(super::history::Settings::of(v.user_id, s)))
    }

    /// This member's latest real-name verification (null if none). The member and REVIEWERs see it.
    async fn identity_verification(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<super::trust::IdentityVerification>> {
        let v = viewer(ctx);
        authz::require(v.as_ref(), Action::ReadIdentity { owner: self.0.id })?;
        let row = crate::services::identity::latest(&state(ctx)?.db, self.0.id).await?;
        if let Some(v) = v.filter(|v| v.user_id != self.0.id)
            && let Some(r) = &row
        {
            let ip = crate::graphql::request_info(ctx).and_then(|i| i.ip.as_deref());
            let target = format!("IdentityVerification:{}", r.id);
            let entry = audit::Entry::new(audit::Action::ViewIdentity, Some(self.0.id), target);
            audit::record(&state(ctx)?.db, &v, ip, entry).await?;
        }
        Ok(row.map(super::trust::IdentityVerification::new))
    }

    /// Every request this member made, as the request log recorded it (time, duration, address,
    /// device, OS, browser, language, operation), newest first. Only the member sees it.
    #[graphql(complexity = "crate::graphql::types::list_cost(first, child_complexity)")]
    async fn activity(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Option<Connection<String, super::trust::ActivityEntry>>> {
        let v = self.own(ctx)?;
        let args = page_args(ctx, first, after.as_deref())?;
        let page = crate::services::activity::for_member(&state(ctx)?.db, &v, false, &args).await?;
        Ok(Some(connection(page, super::trust::ActivityEntry)))
    }

    /// Sign-ins (logins and the registration) with where and on what device, newest first.
    #[graphql(complexity = "crate::graphql::types::list_cost(first, child_complexity)")]
    async fn login_history(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Option<Connection<String, super::trust::ActivityEntry>>> {
        let v = self.own(ctx)?;
        let args = page_args(ctx, first, after.as_deref())?;
        let page = crate::services::activity::for_member(&state(ctx)?.db, &v, true, &args).await?;
        Ok(Some(connection(page, super::trust::ActivityEntry)))
    }

    /// Members this member has blocked, most recently blocked first. Only the member sees it.
    #[graphql(complexity = "crate::graphql::types::list_cost(first, child_complexity)")]
    async fn blocked_users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Option<Counted<User>>> {
        let v = self.own(ctx)?;
        let page = page_args(ctx, first, after.as_deref())?;
        let ids = social::blocked_by(&state(ctx)?.db, v.user_id, &page).await?;
        crate::graphql::prefetch::user_ids(ctx, &ids).await?;
        Ok(Some(counted_via(&loaders(ctx)?.users, ids, User, None).await?))
    }

    /// Data exports that can still be downloaded, newest first. Only the member sees them.
    async fn data_exports(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Vec<super::trust::DataExport>>> {
        let v = self.own(ctx)?;
        let rows = crate::services::export::list(&state(ctx)?.db, v.user_id).await?;
        Ok(Some(rows.into_iter().map(super::trust::DataExport).collect()))
    }
}

/// Owner-only fields (favorites, sessions, histories, settings, activity, exports) are nullable: for
/// anyone but the member they answer `null` with a FORBIDDEN error at their path, so one `User`
/// fragment serves every profile page, and the rest of the profile is never lost with them.
impl User {
    /// Where the viewer stands with this member, through the batched loader (nothing signed out).
    async fn relation(&self, ctx: &Context<'_>) -> async_graphql::Result<social::Relation> {
        let Some(v) = viewer(ctx) else { return Ok(social::Relation::default()) };
        let key = crate::graphql::loaders::RelationKey { viewer: v.user_id, other: self.0.id };
        Ok(load_one(&loaders(ctx)?.relations, key).await?.unwrap_or_default())
    }

    /// The viewer, if this is the viewer's own profile; UNAUTHENTICATED or FORBIDDEN otherwise.
    fn own(&self, ctx: &Context<'_>) -> Result<crate::auth::Viewer, AppError> {
        let v = viewer(ctx);
        authz::require(v.as_ref(), Action::ReadOwn { owner: self.0.id })?;
        v.ok_or(AppError::Unauthenticated)
    }
}
