//! Which mutations change what a signed-out reader sees, and the epoch move each one makes before
//! its response returns (see `response_cache`). One rule for HTTP and WebSocket alike: it runs as a
//! schema extension, on the root fields of every mutation that succeeded.
//!
//! A mutation not listed here moves the shared epoch: a new mutation is safe until someone decides it
//! may lag.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextResolve, ResolveInfo,
};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};
use async_graphql::{Response, ServerResult, Value, Variables};

/// What a mutation does to the public, signed-out view of the community.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Effect {
    /// Nothing public: the member's own settings, sessions, messages, notifications, history.
    Private = 0,
    /// A public counter only: other instances may show the old number for the cache's TTL.
    Counter = 1,
    /// Public content (posts, comments, profiles, boards, streams) or its removal (deletion,
    /// erasure, ban): no instance serves an older answer once the mutation returns.
    Content = 2,
}

/// Mutations whose effects only their author (or staff, privately) can see.
pub const PRIVATE: &[&str] = &[
    "requestPhoneCode",
    "login",
    "loginWithCode",
    "resetPassword",
    "changePassword",
    "changePhone",
    "logout",
    "revokeSession",
    "addEmail",
    "verifyEmail",
    "requestEmailCode",
    "sendMessage",
    "markConversationRead",
    "blockUser",
    "unblockUser",
    "markNotificationsRead",
    "updateNotificationSettings",
    "sendSecurityNotice",
    "muteLiveChatViewer",
    "deleteBrowseHistory",
    "deleteSearchHistory",
    "updateSettings",
    "acceptPrivacyPolicy",
    "uploadMedia",
    "submitIdentityVerification",
    "requestDataExport",
    // A post's view count and a room's chat move with every reader; chat reaches readers through
    // `liveChat`, and the view count may lag like the other counters (it moves no epoch at all, or
    // every page view would empty the cache).
    "recordPostView",
    "sendLiveChatMessage",
];

/// Mutations that only move public counters (like, favourite and follower counts).
pub const COUNTERS: &[&str] = &[
    "likePost",
    "unlikePost",
    "favoritePost",
    "unfavoritePost",
    "likeComment",
    "unlikeComment",
    "followUser",
    "unfollowUser",
    "followBoard",
    "unfollowBoard",
];

pub fn effect(mutation: &str) -> Effect {
    if PRIVATE.contains(&mutation) {
        Effect::Private
    } else if COUNTERS.contains(&mutation) {
        Effect::Counter
    } else {
        Effect::Content
    }
}

pub struct Freshness;

impl ExtensionFactory for Freshness {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Tracker { strongest: AtomicU8::new(Effect::Private as u8) })
    }
}

/// One request's strongest effect so far.
struct Tracker {
    strongest: AtomicU8,
}

#[async_trait::async_trait]
impl Extension for Tracker {
    /// A document that can write (or that waits for writes) never reads from the entity cache: a
    /// mutation's payload must show its own write, whose epoch move only comes once it returns.
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let only_queries = match &document.operations {
            DocumentOperations::Single(op) => op.node.ty == OperationType::Query,
            DocumentOperations::Multiple(ops) => ops.values().all(|op| op.node.ty == OperationType::Query),
        };
        if !only_queries && let Some(loaders) = ctx.data_opt::<crate::graphql::loaders::Loaders>() {
            loaders.view.bypass();
        }
        Ok(document)
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let root_mutation = (info.parent_type == "Mutation").then(|| effect(info.name));
        let result = next.run(ctx, info).await;
        // Only a mutation that went through changed anything: a refused one must not empty every
        // instance's cache (that would make failing requests a way to slow everyone down).
        if let (Some(effect), Ok(_)) = (root_mutation, &result) {
            self.strongest.fetch_max(effect as u8, Ordering::AcqRel);
        }
        result
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let response = next.run(ctx, operation_name).await;
        let strongest = self.strongest.swap(Effect::Private as u8, Ordering::AcqRel);
        if let Some(state) = ctx.data_opt::<crate::graphql::GqlState>() {
            if strongest == Effect::Content as u8 {
                state.epoch.bump_shared().await;
            } else if strongest == Effect::Counter as u8 {
                state.epoch.bump_local();
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removals_and_bans_are_never_allowed_to_lag() {
        let removals =
            ["deletePost", "deleteComment", "deleteLiveChatMessage", "deleteAccount", "banUser", "setUserRole"];
        for name in removals {
            assert_eq!(effect(name), Effect::Content, "{name}");
        }
        assert_eq!(effect("aMutationNobodyListed"), Effect::Content, "unlisted means content");
    }

    #[test]
    fn every_listed_mutation_exists() {
        let sdl = crate::graphql::sdl();
        let mutation = sdl.split("type Mutation {").nth(1).and_then(|rest| rest.split("\n}").next()).unwrap();
        for name in PRIVATE.iter().chain(COUNTERS) {
            assert!(mutation.contains(&format!("\t{name}(")), "{name} is not a mutation");
        }
    }
}
