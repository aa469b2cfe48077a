use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use http::header::SET_COOKIE;

use crate::auth;
use crate::error::AppResult;
use crate::graphql::ids::{self, Kind};
use crate::graphql::types::User;
use crate::graphql::types::enums::{Gender, SessionDelivery};
use crate::graphql::{rate_limit, request_info, require_viewer, staff_note, state};
use crate::ratelimit::Limit;
use crate::services::accounts::{self, NewSession, ProfilePatch, RegisterInput as NewAccount, SessionMeta};

#[derive(InputObject)]
pub struct RegisterInput {
    /// Phone number, E.164 (`+8613800138000`); a mainland number may omit `+86`.
    phone: String,
    /// 8 to 128 characters.
    password: String,
    /// Optional unique handle: 3 to 32 letters, digits or underscores.
    account_name: Option<String>,
    email: Option<String>,
    nickname: Option<String>,
    #[graphql(default)]
    delivery: SessionDelivery,
}

#[derive(InputObject)]
pub struct LoginInput {
    phone: String,
    password: String,
    #[graphql(default)]
    delivery: SessionDelivery,
}

/// The new account and its first session. `token` is set for `BEARER` delivery, null for `COOKIE`.
#[derive(SimpleObject)]
pub struct RegisterPayload {
    token: Option<String>,
    expires_at: DateTime<Utc>,
    user: User,
}

/// A new session. `token` is set for `BEARER` delivery, null for `COOKIE`.
#[derive(SimpleObject)]
pub struct LoginPayload {
    token: Option<String>,
    expires_at: DateTime<Utc>,
    user: User,
}

#[derive(InputObject, Default)]
pub struct LogoutInput {
    /// Also end every other session of this account (all devices).
    #[graphql(default)]
    all_devices: bool,
}

#[derive(SimpleObject)]
pub struct LogoutPayload {
    logged_out: bool,
}

#[derive(InputObject)]
pub struct UpdateProfileInput {
    /// 1 to 32 characters.
    nickname: Option<String>,
    /// An http(s) URL; null clears it.
    avatar_url: MaybeUndefined<String>,
    gender: Option<Gender>,
    /// Up to 200 characters; null clears it.
    signature: MaybeUndefined<String>,
}

#[derive(SimpleObject)]
pub struct UpdateProfilePayload {
    user: User,
}

fn session_meta(ctx: &Context<'_>) -> AppResult<SessionMeta> {
    let config = &state(ctx)?.config;
    let info = request_info(ctx);
    Ok(SessionMeta {
        ttl: chrono::Duration::hours(i64::from(config.session_ttl_hours)),
        user_agent: info.and_then(|i| i.user_agent.clone()),
        ip: info.and_then(|i| i.ip.clone()),
    })
}

/// Hands the session over the way the client asked: in the payload, or as an HttpOnly cookie.
fn deliver(ctx: &Context<'_>, session: &NewSession, delivery: SessionDelivery) -> AppResult<Option<String>> {
    match delivery {
        SessionDelivery::Bearer => Ok(Some(session.token.clone())),
        SessionDelivery::Cookie => {
            let config = &state(ctx)?.config;
            let ttl = session.expires_at - Utc::now();
            let cookie =
                auth::session_cookie(&config.session_cookie_name, &session.token, ttl, config.session_cookie_secure);
            ctx.append_http_header(SET_COOKIE, cookie);
            Ok(None)
        }
    }
}

#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Creates an account (a phone number is required) and signs it in.
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> async_graphql::Result<RegisterPayload> {
        rate_limit(ctx, Limit::Auth).await?;
        let new = NewAccount {
            phone: input.phone,
            password: input.password,
            account_name: input.account_name,
            email: input.email,
            nickname: input.nickname,
        };
        let session = accounts::register(&state(ctx)?.db, new, session_meta(ctx)?).await?;
        mark_signed_in(ctx, session.user.id);
        let token = deliver(ctx, &session, input.delivery)?;
        Ok(RegisterPayload { token, expires_at: session.expires_at, user: User(session.user) })
    }

    /// Signs in with phone and password. Wrong credentials give one generic `UNAUTHENTICATED` error.
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> async_graphql::Result<LoginPayload> {
        rate_limit(ctx, Limit::Auth).await?;
        let st = state(ctx)?;
        let session =
            accounts::login(&st.db, &st.broker, st.media.sealer(), &input.phone, input.password, session_meta(ctx)?)
                .await?;
        mark_signed_in(ctx, session.user.id);
        let token = deliver(ctx, &session, input.delivery)?;
        Ok(LoginPayload { token, expires_at: session.expires_at, user: User(session.user) })
    }

    /// Revokes the current session and clears the session cookie.
    async fn logout(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] input: LogoutInput,
    ) -> async_graphql::Result<LogoutPayload> {
        let viewer = require_viewer(ctx)?;
        let st = state(ctx)?;
        accounts::logout(&st.db, &st.broker, &viewer, input.all_devices).await?;
        let config = &state(ctx)?.config;
        ctx.append_http_header(
            SET_COOKIE,
            auth::clear_session_cookie(&config.session_cookie_name, config.session_cookie_secure),
        );
        Ok(LogoutPayload { logged_out: true })
    }

    /// Changes the signed-in user's public profile. Fields left out stay as they are.
    async fn update_profile(
        &self,
        ctx: &Context<'_>,
        input: UpdateProfileInput,
    ) -> async_graphql::Result<UpdateProfilePayload> {
        let viewer = require_viewer(ctx)?;
        let patch = ProfilePatch {
            nickname: input.nickname,
            avatar_url: maybe(input.avatar_url),
            gender: input.gender.map(Into::into),
            signature: maybe(input.signature),
        };
        let user = accounts::update_profile(&state(ctx)?.db, &viewer, patch).await?;
        Ok(UpdateProfilePayload { user: User(user) })
    }

    /// Signs one of the viewer's devices out; its open sockets close at once.
    async fn revoke_session(
        &self,
        ctx: &Context<'_>,
        input: RevokeSessionInput,
    ) -> async_graphql::Result<RevokeSessionPayload> {
        let viewer = require_viewer(ctx)?;
        let id = ids::decode(Kind::Session, &input.session_id, "input.sessionId")?;
        let st = state(ctx)?;
        accounts::revoke_session(&st.db, &st.broker, &viewer, id).await?;
        Ok(RevokeSessionPayload { revoked: true })
    }

    /// Deletes the viewer's account for good: every session ends and every socket closes, the
    /// profile and contact details are erased, private data (favourites, follows, blocks,
    /// notifications) is removed, and the phone number may register again. Public posts and comments
    /// stay, with no author.
    async fn delete_account(
        &self,
        ctx: &Context<'_>,
        input: DeleteAccountInput,
    ) -> async_graphql::Result<DeleteAccountPayload> {
        let viewer = require_viewer(ctx)?;
        let st = state(ctx)?;
        // Rows of this member's earlier requests may still wait in the request-log writer: write them
        // now so the erasure finds them, and sweep once more for any that raced it.
        st.activity.flush().await;
        crate::services::privacy::delete_account(&st.db, &st.broker, &st.media, &viewer, input.password).await?;
        if let Some(info) = crate::graphql::request_info(ctx) {
            info.erased.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        st.activity.flush().await;
        crate::services::activity::erase(&st.db, viewer.user_id).await?;
        let config = &st.config;
        ctx.append_http_header(
            SET_COOKIE,
            auth::clear_session_cookie(&config.session_cookie_name, config.session_cookie_secure),
        );
        Ok(DeleteAccountPayload { deleted: true })
    }

    /// Suspends an account (MODERATOR, ADMIN): it is signed out everywhere and cannot sign in.
    async fn ban_user(&self, ctx: &Context<'_>, input: BanUserInput) -> async_graphql::Result<BanUserPayload> {
        set_banned(ctx, input, true).await
    }

    /// Lifts a suspension (MODERATOR, ADMIN).
    async fn unban_user(&self, ctx: &Context<'_>, input: BanUserInput) -> async_graphql::Result<BanUserPayload> {
        set_banned(ctx, input, false).await
    }
}

/// Files this request in the request log under the member it signed in (their login history).
fn mark_signed_in(ctx: &Context<'_>, user_id: i64) {
    if let Some(info) = crate::graphql::request_info(ctx) {
        let _ = info.signed_in_as.set(user_id);
    }
}

async fn set_banned(ctx: &Context<'_>, input: BanUserInput, banned: bool) -> async_graphql::Result<BanUserPayload> {
    let viewer = require_viewer(ctx)?;
    let id = ids::decode(Kind::User, &input.user_id, "input.userId")?;
    let st = state(ctx)?;
    let note = staff_note(ctx, Some(&input.reason));
    Ok(BanUserPayload { user: User(accounts::ban(&st.db, &st.broker, &viewer, note, id, banned).await?) })
}

#[derive(InputObject)]
pub struct DeleteAccountInput {
    /// The current password, so a borrowed unlocked phone cannot delete the account.
    password: String,
}

#[derive(SimpleObject)]
pub struct DeleteAccountPayload {
    deleted: bool,
}

#[derive(InputObject)]
pub struct RevokeSessionInput {
    session_id: ID,
}

#[derive(SimpleObject)]
pub struct RevokeSessionPayload {
    revoked: bool,
}

#[derive(InputObject)]
pub struct BanUserInput {
    user_id: ID,
    /// Why, for the staff audit log (1 to 500 characters).
    reason: String,
}

#[derive(SimpleObject)]
pub struct BanUserPayload {
    user: User,
}

/// Absent -> leave alone; null -> clear; value -> set.
fn maybe<T>(v: MaybeUndefined<T>) -> Option<Option<T>> {
    match v {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}
