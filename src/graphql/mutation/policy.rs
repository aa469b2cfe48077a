//! Publishing and accepting the privacy policy.

use async_graphql::{Context, InputObject, Object, SimpleObject};

use crate::graphql::query::{PolicyConsent, PolicyVersion, policy_consent};
use crate::graphql::{require_viewer, state};
use crate::services::policy;

#[derive(InputObject)]
pub struct PublishPolicyVersionInput {
    body: String,
    /// Major: every member is notified and must accept before writing again.
    major: bool,
}

#[derive(SimpleObject)]
pub struct PublishPolicyVersionPayload {
    policy: PolicyVersion,
}

#[derive(InputObject)]
pub struct AcceptPrivacyPolicyInput {
    version: i32,
}

#[derive(SimpleObject)]
pub struct AcceptPrivacyPolicyPayload {
    consent: PolicyConsent,
    /// The member, whose consent state changed.
    me: Option<crate::graphql::types::User>,
}

#[derive(Default)]
pub struct PolicyMutation;

#[Object]
impl PolicyMutation {
    /// ADMIN only. Versions are numbered 1, 2, 3 ... and archived forever.
    async fn publish_policy_version(
        &self,
        ctx: &Context<'_>,
        input: PublishPolicyVersionInput,
    ) -> async_graphql::Result<PublishPolicyVersionPayload> {
        let viewer = require_viewer(ctx)?;
        let st = state(ctx)?;
        let v = policy::publish(&st.db, &st.broker, &viewer, &input.body, input.major).await?;
        Ok(PublishPolicyVersionPayload { policy: v.into() })
    }

    /// Records that the viewer accepted `version` (with the time).
    async fn accept_privacy_policy(
        &self,
        ctx: &Context<'_>,
        input: AcceptPrivacyPolicyInput,
    ) -> async_graphql::Result<AcceptPrivacyPolicyPayload> {
        let viewer = require_viewer(ctx)?;
        policy::accept(&state(ctx)?.db, viewer.user_id, input.version).await?;
        Ok(AcceptPrivacyPolicyPayload { consent: policy_consent(ctx).await?, me: crate::graphql::fresh_me(ctx).await? })
    }
}
