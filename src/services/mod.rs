//! Domain services: the community's rules, as plain `async fn(db, ...)` that tests can call without
//! HTTP. Resolvers call these; these never know about GraphQL or HTTP.

pub mod accounts;
pub mod activity;
pub mod audit;
pub mod boards;
pub mod comments;
pub mod developer_apps;
pub mod email;
pub mod email_outbox;
pub mod export;
pub mod history;
pub mod identity;
pub mod live;
pub mod media;
pub mod messaging;
pub mod notices;
pub mod notifications;
pub mod page;
pub mod phone_codes;
pub mod policy;
pub mod posts;
pub mod privacy;
pub mod push;
pub mod recommend;
pub mod replay;
pub mod reports;
pub mod retention;
pub mod search;
pub mod signin;
pub mod sms_outbox;
pub mod social;
pub mod streams;
pub mod thumbnails;
pub mod validate;
