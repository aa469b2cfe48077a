//! Write side. Every mutation takes one `input` argument and returns a payload object (the Relay and
//! GitHub convention), so fields can be added to either without breaking clients.

mod accounts;
mod boards;
mod developer;
mod email;
mod history;
mod moderation;
mod policy;
mod posts;
mod push;
mod realtime;
mod social;
mod trust;

use async_graphql::MergedObject;

#[derive(MergedObject, Default)]
pub struct Mutation(
    accounts::AccountMutation,
    email::EmailMutation,
    boards::BoardMutation,
    posts::PostMutation,
    social::SocialMutation,
    realtime::RealtimeMutation,
    history::HistoryMutation,
    policy::PolicyMutation,
    trust::TrustMutation,
    moderation::ModerationMutation,
    push::PushMutation,
    developer::DeveloperMutation,
);
