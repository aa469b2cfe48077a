//! HTTP protocol handling: GraphQL over HTTP (our own handler, to follow the specification to the
//! letter, with multipart uploads), the offline GraphiQL page, health probes, and the media routes.

pub mod availability;
pub mod bounds;
pub mod client;
pub mod dev;
pub mod documents;
pub mod graphiql;
pub mod graphql;
pub mod health;
pub mod media;
pub mod oauth;
pub mod oauth_pages;
pub mod private_stream;
pub mod shared_feed;
pub mod upgrade;
pub mod ws;
