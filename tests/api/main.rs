//! Integration tests through the real HTTP API: each test starts the gateway on 127.0.0.1:0 with a
//! database of its own (a temporary SQLite file, or a fresh `test_<uuid>` PostgreSQL database when
//! `DATABASE_URL` points at PostgreSQL) and talks to it as a client would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

mod accounts;
mod authz;
mod browser;
mod browsing;
mod conformance;
mod connections;
mod content;
mod contract;
mod csrf;
mod demo;
mod developer_apps;
mod documents;
mod email;
mod entity_cache;
mod feed;
mod history;
mod hostile;
mod limits;
mod live;
mod messaging;
mod moderation;
mod notifications;
mod oauth;
mod oauth_clients;
mod object_storage;
mod observability;
mod pagination;
mod phone_codes;
mod policy;
mod privacy;
mod propagation;
mod proxies;
mod push;
mod queries;
mod replay;
mod response_cache;
mod retention;
mod scale_out;
mod schema;
mod sdk;
mod search;
mod seed;
mod signin;
mod sms_aliyun;
mod social;
mod trust;
mod uploads;
mod ws_protocol;
