//! SeaORM entities, one file per table. Storage shapes only: the GraphQL types that clients see live
//! in the gateway's `graphql::types` and convert from these models.

pub mod audit_log;
pub mod board_follows;
pub mod boards;
pub mod browse_history;
pub mod comment_likes;
pub mod comments;
pub mod conversation_members;
pub mod conversations;
pub mod data_exports;
pub mod favorites;
pub mod identity_verifications;
pub mod job_leases;
pub mod live_chat_messages;
pub mod live_streams;
pub mod login_failures;
pub mod media;
pub mod messages;
pub mod notification_mutes;
pub mod notifications;
pub mod phone_codes;
pub mod policy_acceptances;
pub mod policy_versions;
pub mod post_likes;
pub mod posts;
pub mod request_log;
pub mod search_documents;
pub mod search_history;
pub mod sessions;
pub mod sms_outbox;
pub mod user_blocks;
pub mod user_devices;
pub mod user_follows;
pub mod user_settings;
pub mod users;
pub mod visitor_views;
