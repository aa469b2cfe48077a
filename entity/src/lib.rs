//! SeaORM entities, one file per table. Storage shapes only: the GraphQL types that clients see live
//! in the gateway's `graphql::types` and convert from these models.

pub mod board_follows;
pub mod boards;
pub mod comment_likes;
pub mod comments;
pub mod favorites;
pub mod post_likes;
pub mod posts;
pub mod sessions;
pub mod user_follows;
pub mod users;
