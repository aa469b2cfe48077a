use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use http::header::SET_COOKIE;

use crate::auth;
use crate::error::{AppError, AppResult};
use crate::graphql::ids::{self, Kind};
use crate::graphql::types::User;
use crate::graphql::types::enums::{Gender, PhoneCodePurpose, SessionDelivery};
use crate::graphql::{rate_limit, request_info, require_viewer, staff_note, state};
use crate::ratelimit::Limit;
use crate::services::accounts::{self, NewSession, ProfilePatch, RegisterInput as NewAccount, SessionMeta};
use crate::services::phone_codes;

#[derive(InputObject)]
pub struct RegisterInput {
    /// Phone number, E.164 (`+8613800138000`); a mainland number may omit `+86`.
    phone: String,
    /// The 6-digit code `requestPhoneCode(purpose: REGISTER)` sent to `phone`.
    code: String,
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

#[derive(InputObject)]
pub struct RequestPhoneCodeInput {
    /// Phone number, E.164 (`+8613800138000`); a mainland number may omit `+86`.
    phone: String,
    purpose: PhoneCodePurpose,
}

/// The same for every number, registered or not.
#[derive(SimpleObject)]
pub struct RequestPhoneCodePayload {
    /// Always true: a code is on its way (handed to the SMS provider, or queued and retried while
    /// the provider cannot take it; it normally arrives within seconds).
    sent: bool,
    /// Seconds the code stays valid.
    expires_in: u64,
    /// Seconds before another code may be sent to this number.
    resend_after: u64,
}

#[derive(InputObject)]
pub struct LoginWithCodeInput {
    phone: String,
    /// The code `requestPhoneCode(purpose: LOGIN)` sent to `phone`.
    code: String,
    #[graphql(default)]
    delivery: SessionDelivery,
}

/// Give `phone` or `email`, not both.
#[derive(InputObject)]
pub struct ResetPasswordInput {
    phone: Option<String>,
    /// The account's verified email address (`User.emailVerified`).
    email: Option<String>,
    /// The code `requestPhoneCode(purpose: RESET_PASSWORD)` sent to `phone`, or
    /// `requestEmailCode(purpose: RESET_PASSWORD)` sent to `email`.
    code: String,
    /// 8 to 128 characters.
    new_password: String,
}

#[derive(SimpleObject)]
pub struct ResetPasswordPayload {
    /// True: the password is set and every session of the account has ended; sign in again.
    reset: bool,
}

#[derive(InputObject)]
pub struct ChangePasswordInput {
    /// A wrong one counts toward the sign-in lock (ACCOUNT_LOCKED after 5 within 15 minutes).
    current_password: String,
    /// 8 to 128 characters.
    new_password: String,
}

#[derive(SimpleObject)]
pub struct ChangePasswordPayload {
    /// True: the password is changed and the member's other sessions have ended.
    changed: bool,
}

#[derive(InputObject)]
pub struct ChangePhoneInput {
    /// The new number, E.164; a mainland number may omit `+86`.
    new_phone: String,
    /// The code `requestPhoneCode(purpose: CHANGE_PHONE)` sent to `newPhone`.
    code: String,
    /// A wrong one counts toward the sign-in lock.
    current_password: String,
}

#[derive(SimpleObject)]
pub struct ChangePhonePayload {
    /// The member, with the new number.
    me: User,
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
    #[graphql(deprecation = "Upload the picture with `setAvatar`: it is checked, stored and served by the gateway.")]
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
    /// Sends a 6-digit code by SMS to prove the number for `purpose`. It lives 5 minutes and allows 5
    /// tries; a new code replaces the number's previous one for the purpose. The answer is the same
    /// whether or not the number is registered. `RATE_LIMITED` (with `retryAfter`) within 60 s of the
    /// last code to the number or beyond the daily caps; `SMS_UNAVAILABLE` when no SMS can be sent.
    async fn request_phone_code(
        &self,
        ctx: &Context<'_>,
        input: RequestPhoneCodeInput,
    ) -> async_graphql::Result<RequestPhoneCodePayload> {
        rate_limit(ctx, Limit::Auth).await?;
        if input.purpose == PhoneCodePurpose::ChangePhone {
            // Only a member moving their own account asks for one: nobody else may make a phone buzz
            // for this purpose.
            require_viewer(ctx)?;
        }
        let st = state(ctx)?;
        let limits = phone_codes::Limits::from_config(&st.config);
        let ip = request_info(ctx).and_then(|i| i.ip.as_deref());
        let result = phone_codes::request(
            &st.db,
            st.media.sealer(),
            &st.sms,
            &limits,
            &input.phone,
            input.purpose.into(),
            ip,
            Utc::now(),
        )
        .await;
        if let Err(crate::error::AppError::RateLimited { retry_after_secs }) = &result {
            ctx.insert_http_header(http::header::RETRY_AFTER, retry_after_secs.to_string());
        }
        result?;
        Ok(RequestPhoneCodePayload {
            sent: true,
            expires_in: st.config.phone_code_ttl_secs,
            resend_after: st.config.phone_code_resend_secs,
        })
    }

    /// Creates an account for a number proven by a REGISTER `code`, and signs it in. Until the code is
    /// proven the answer is `INVALID_CODE` for new and registered numbers alike; with a valid code, a
    /// number (or account name) already taken is `CONFLICT`.
    async fn register(&self, ctx: &Context<'_>, input: RegisterInput) -> async_graphql::Result<RegisterPayload> {
        rate_limit(ctx, Limit::Auth).await?;
        let new = NewAccount {
            phone: input.phone,
            code: input.code,
            password: input.password,
            account_name: input.account_name,
            email: input.email,
            nickname: input.nickname,
        };
        let st = state(ctx)?;
        let session = accounts::register(&st.db, st.media.sealer(), new, session_meta(ctx)?).await?;
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

    /// Signs in without a password, with a LOGIN `code` sent to the phone. `INVALID_CODE` until the code
    /// is proven; then `NOT_FOUND` if no account uses the number.
    async fn login_with_code(
        &self,
        ctx: &Context<'_>,
        input: LoginWithCodeInput,
    ) -> async_graphql::Result<LoginPayload> {
        rate_limit(ctx, Limit::Auth).await?;
        let st = state(ctx)?;
        let session = accounts::login_with_code(
            &st.db,
            &st.broker,
            st.media.sealer(),
            &input.phone,
            &input.code,
            session_meta(ctx)?,
        )
        .await?;
        mark_signed_in(ctx, session.user.id);
        let token = deliver(ctx, &session, input.delivery)?;
        Ok(LoginPayload { token, expires_at: session.expires_at, user: User(session.user) })
    }

    /// Sets a new password with a RESET_PASSWORD `code` sent to the phone or to the verified email;
    /// every session of the account ends (sign in again) and the member gets a security notice.
    /// `INVALID_CODE` until the code is proven.
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        input: ResetPasswordInput,
    ) -> async_graphql::Result<ResetPasswordPayload> {
        rate_limit(ctx, Limit::Auth).await?;
        let st = state(ctx)?;
        let proof = match (input.phone.as_deref(), input.email.as_deref()) {
            (Some(phone), None) => accounts::ResetProof::Phone(phone),
            (None, Some(email)) => accounts::ResetProof::Email(email),
            _ => return Err(AppError::bad_input("input", "give phone or email, not both").into()),
        };
        accounts::reset_password(&st.db, &st.broker, st.media.sealer(), proof, &input.code, input.new_password).await?;
        Ok(ResetPasswordPayload { reset: true })
    }

    /// Changes the signed-in member's password. A wrong `currentPassword` is `BAD_USER_INPUT` and counts
    /// toward the sign-in lock (`ACCOUNT_LOCKED`); on success the member's other sessions end and they
    /// get a security notice.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        input: ChangePasswordInput,
    ) -> async_graphql::Result<ChangePasswordPayload> {
        let viewer = require_viewer(ctx)?;
        let st = state(ctx)?;
        accounts::change_password(
            &st.db,
            &st.broker,
            st.media.sealer(),
            &viewer,
            input.current_password,
            input.new_password,
        )
        .await?;
        Ok(ChangePasswordPayload { changed: true })
    }

    /// Moves the signed-in member to `newPhone`, proven by a CHANGE_PHONE code sent to it, and the
    /// current password. The old number gets an SMS saying so, and the member a security notice.
    /// `INVALID_CODE` until the code is proven; `CONFLICT` if another account uses the number.
    async fn change_phone(
        &self,
        ctx: &Context<'_>,
        input: ChangePhoneInput,
    ) -> async_graphql::Result<ChangePhonePayload> {
        let viewer = require_viewer(ctx)?;
        rate_limit(ctx, Limit::Auth).await?;
        let st = state(ctx)?;
        let user = accounts::change_phone(
            &st.db,
            &st.broker,
            st.media.sealer(),
            &viewer,
            &input.new_phone,
            &input.code,
            input.current_password,
        )
        .await?;
        Ok(ChangePhonePayload { me: User(user) })
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
    let until = match input.days {
        None => None,
        Some(days) if banned && (1..=crate::services::reports::BAN_DAYS_MAX).contains(&i64::from(days)) => {
            Some(chrono::Utc::now() + chrono::Duration::days(days.into()))
        }
        Some(_) if banned => {
            let max = crate::services::reports::BAN_DAYS_MAX;
            return Err(AppError::bad_input("input.days", format!("1 to {max} days")).into());
        }
        Some(_) => return Err(AppError::bad_input("input.days", "only a suspension has days").into()),
    };
    Ok(BanUserPayload { user: User(accounts::ban(&st.db, &st.broker, &viewer, note, id, banned, until).await?) })
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
    /// `banUser` only: the suspension ends by itself after this many days (1 to 3650). Left out, it
    /// lasts until `unbanUser`.
    days: Option<i32>,
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
