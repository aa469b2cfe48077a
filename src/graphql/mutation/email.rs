//! Verified email (`services::email`): add and prove an address, and ask for a password-reset code
//! sent to it. The reset itself is `resetPassword` with `email` (accounts), one path for both proofs.

use async_graphql::{Context, InputObject, Object, SimpleObject};
use chrono::Utc;

use crate::graphql::types::User;
use crate::graphql::types::enums::EmailCodePurpose;
use crate::graphql::{rate_limit, require_viewer, state};
use crate::ratelimit::Limit;
use crate::services::email;

#[derive(InputObject)]
pub struct AddEmailInput {
    /// The address to prove (stored lower-case).
    email: String,
}

/// The viewer, with the address pending (`User.pendingEmail`) until `verifyEmail`.
#[derive(SimpleObject)]
pub struct AddEmailPayload {
    user: User,
    /// Seconds the code stays valid.
    expires_in: u64,
    /// Seconds before another code may be sent to this address.
    resend_after: u64,
}

#[derive(InputObject)]
pub struct VerifyEmailInput {
    /// The 6-digit code `addEmail` sent to the pending address.
    code: String,
}

#[derive(SimpleObject)]
pub struct VerifyEmailPayload {
    /// The viewer: `email` is the proven address, `emailVerified` is true.
    user: User,
}

#[derive(InputObject)]
pub struct RequestEmailCodeInput {
    email: String,
    purpose: EmailCodePurpose,
}

/// The same for every address, a member's or not.
#[derive(SimpleObject)]
pub struct RequestEmailCodePayload {
    /// Always true: if a member verified this address, a code is on its way.
    sent: bool,
    /// Seconds the code stays valid.
    expires_in: u64,
    /// Seconds before another code may be sent to this address.
    resend_after: u64,
}

#[derive(Default)]
pub struct EmailMutation;

fn ttl_secs() -> u64 {
    u64::try_from(email::CODE_TTL.num_seconds()).unwrap_or(0)
}

#[Object]
impl EmailMutation {
    /// Sends a 6-digit code to `email`, which becomes the viewer's pending address until
    /// `verifyEmail` proves it. The code lives 10 minutes and allows 5 tries. The answer is the same
    /// whether or not another member has verified the address (that shows only at `verifyEmail`).
    /// `RATE_LIMITED` (with `retryAfter`) within 60 s of the last code to the address or beyond the
    /// daily caps; `EMAIL_UNAVAILABLE` when no email can be sent there.
    async fn add_email(&self, ctx: &Context<'_>, input: AddEmailInput) -> async_graphql::Result<AddEmailPayload> {
        rate_limit(ctx, Limit::Auth).await?;
        let viewer = require_viewer(ctx)?;
        let st = state(ctx)?;
        let settings = email::Settings::from_config(&st.config);
        let result =
            email::add_email(&st.db, st.media.sealer(), &st.mailer, &settings, &viewer, &input.email, Utc::now()).await;
        if let Err(crate::error::AppError::RateLimited { retry_after_secs }) = &result {
            ctx.insert_http_header(http::header::RETRY_AFTER, retry_after_secs.to_string());
        }
        Ok(AddEmailPayload {
            user: User(result?),
            expires_in: ttl_secs(),
            resend_after: st.config.email_code_resend_secs,
        })
    }

    /// Proves the pending address with the code `addEmail` sent; it becomes the viewer's `email`
    /// (verified). `INVALID_CODE` for a wrong, used, expired or replaced code; with a valid code,
    /// `CONFLICT` if another account has verified the address.
    async fn verify_email(
        &self,
        ctx: &Context<'_>,
        input: VerifyEmailInput,
    ) -> async_graphql::Result<VerifyEmailPayload> {
        rate_limit(ctx, Limit::Auth).await?;
        let viewer = require_viewer(ctx)?;
        let st = state(ctx)?;
        let user = email::verify_email(&st.db, st.media.sealer(), &viewer, &input.code, Utc::now()).await?;
        Ok(VerifyEmailPayload { user: User(user) })
    }

    /// Sends a 6-digit code for `purpose` to `email` if a member has verified that address. The
    /// answer (and its timing) is the same for every address. `RATE_LIMITED` within 60 s of the last
    /// code to the address or beyond its daily cap; `EMAIL_UNAVAILABLE` when email is disabled.
    async fn request_email_code(
        &self,
        ctx: &Context<'_>,
        input: RequestEmailCodeInput,
    ) -> async_graphql::Result<RequestEmailCodePayload> {
        rate_limit(ctx, Limit::Auth).await?;
        let st = state(ctx)?;
        let settings = email::Settings::from_config(&st.config);
        let result = email::request_code(
            &st.db,
            st.media.sealer(),
            &st.mailer,
            &settings,
            &input.email,
            input.purpose.into(),
            Utc::now(),
        )
        .await;
        if let Err(crate::error::AppError::RateLimited { retry_after_secs }) = &result {
            ctx.insert_http_header(http::header::RETRY_AFTER, retry_after_secs.to_string());
        }
        result?;
        Ok(RequestEmailCodePayload {
            sent: true,
            expires_in: ttl_secs(),
            resend_after: st.config.email_code_resend_secs,
        })
    }
}
