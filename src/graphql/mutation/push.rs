//! Web Push registration for offline devices.

use async_graphql::{Context, InputObject, Object, SimpleObject};

use crate::graphql::types::push::{PushCategory, PushSubscription};
use crate::graphql::{require_viewer, state};
use crate::services::push::{self, Category, NewSubscription};

/// The keys of a browser's `PushSubscription.toJSON()`.
#[derive(InputObject)]
pub struct PushKeysInput {
    /// The device's P-256 public key, base64url (named as in `PushSubscription.toJSON()`).
    #[graphql(name = "p256dh")]
    p256dh: String,
    /// The device's 16-byte authentication secret, base64url.
    auth: String,
}

#[derive(InputObject)]
pub struct RegisterPushSubscriptionInput {
    /// The push service URL (`PushSubscription.endpoint`): HTTPS on a known push service.
    endpoint: String,
    keys: PushKeysInput,
    /// What this device wants pushed; all categories when omitted.
    categories: Option<Vec<PushCategory>>,
}

#[derive(SimpleObject)]
pub struct RegisterPushSubscriptionPayload {
    subscription: PushSubscription,
}

#[derive(InputObject)]
pub struct UnregisterPushSubscriptionInput {
    endpoint: String,
}

#[derive(SimpleObject)]
pub struct UnregisterPushSubscriptionPayload {
    /// False when the viewer had no subscription at this endpoint.
    removed: bool,
}

#[derive(Default)]
pub struct PushMutation;

#[Object]
impl PushMutation {
    /// Registers this device for Web Push (RFC 8030/8291/8292), for the categories given. Subscribe
    /// in the browser with `applicationServerKey: pushPublicKey`. Registering the same endpoint again
    /// replaces its keys and categories (and moves it to the viewer, when another member had it). A
    /// device gets no push for what a live socket of the member already showed, or what was read
    /// within `PUSH_DELAY_MS`. Signing out this session ends the subscription.
    async fn register_push_subscription(
        &self,
        ctx: &Context<'_>,
        input: RegisterPushSubscriptionInput,
    ) -> async_graphql::Result<RegisterPushSubscriptionPayload> {
        let viewer = require_viewer(ctx)?;
        let st = state(ctx)?;
        let categories: Vec<Category> = match input.categories {
            Some(list) => list.into_iter().map(Category::from).collect(),
            None => Category::ALL.to_vec(),
        };
        let new = NewSubscription {
            endpoint: &input.endpoint,
            p256dh: &input.keys.p256dh,
            auth: &input.keys.auth,
            categories: &categories,
        };
        let saved = push::register(&st.db, &st.push, &viewer, new).await?;
        Ok(RegisterPushSubscriptionPayload { subscription: PushSubscription(saved) })
    }

    /// Stops pushes to a device of the viewer's (call it before `pushManager.unsubscribe()`).
    async fn unregister_push_subscription(
        &self,
        ctx: &Context<'_>,
        input: UnregisterPushSubscriptionInput,
    ) -> async_graphql::Result<UnregisterPushSubscriptionPayload> {
        let viewer = require_viewer(ctx)?;
        let removed = push::unregister(&state(ctx)?.db, &viewer, &input.endpoint).await?;
        Ok(UnregisterPushSubscriptionPayload { removed })
    }
}
