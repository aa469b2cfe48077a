//! Web Push subscriptions as their owner sees them.

use async_graphql::{Context, Enum, Object};
use chrono::{DateTime, Utc};
use entity::push_subscriptions;

use crate::graphql::viewer;
use crate::services::push::Category;

/// What a device may be pushed while its app is not connected. Security notices (new sign-ins,
/// security incidents, verification decisions, policy updates) go to every device.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum PushCategory {
    /// Private messages.
    Messages,
    /// Comments on my posts and replies to my comments.
    Replies,
    /// Likes on my posts and comments (the first of a group; more likes do not buzz again).
    Likes,
    /// New followers.
    Follows,
    /// Notices from staff, and reports I filed being settled.
    Notices,
}

impl From<PushCategory> for Category {
    fn from(c: PushCategory) -> Category {
        match c {
            PushCategory::Messages => Category::Messages,
            PushCategory::Replies => Category::Replies,
            PushCategory::Likes => Category::Likes,
            PushCategory::Follows => Category::Follows,
            PushCategory::Notices => Category::Notices,
        }
    }
}

impl From<Category> for PushCategory {
    fn from(c: Category) -> PushCategory {
        match c {
            Category::Messages => PushCategory::Messages,
            Category::Replies => PushCategory::Replies,
            Category::Likes => PushCategory::Likes,
            Category::Follows => PushCategory::Follows,
            Category::Notices => PushCategory::Notices,
        }
    }
}

/// A device registered for Web Push (`registerPushSubscription`). It ends with the session that
/// registered it.
pub struct PushSubscription(pub push_subscriptions::Model);

#[Object]
impl PushSubscription {
    /// The push service URL the device gave (unique per device).
    async fn endpoint(&self) -> &str {
        &self.0.endpoint
    }

    async fn categories(&self) -> Vec<PushCategory> {
        Category::of(&self.0).into_iter().map(PushCategory::from).collect()
    }

    /// Whether the session asking registered it (this browser or app).
    async fn this_device(&self, ctx: &Context<'_>) -> bool {
        viewer(ctx).is_some_and(|v| v.session_id == self.0.session_id)
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When a push service last accepted a push for it.
    async fn last_delivered_at(&self) -> Option<DateTime<Utc>> {
        self.0.delivered_at
    }
}
