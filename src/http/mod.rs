//! HTTP protocol handling: GraphQL over HTTP (our own handler, to follow the specification to the
//! letter), the offline GraphiQL page, and health probes.

pub mod documents;
pub mod graphiql;
pub mod graphql;
pub mod health;
pub mod ws;
