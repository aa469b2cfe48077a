use async_graphql::{ID, Interface};

use super::{Board, Comment, LiveStream, Post, User};

/// Anything with a global id, fetchable through `node(id)`.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID"))]
pub enum Node {
    User(User),
    Board(Board),
    Post(Post),
    Comment(Comment),
    LiveStream(LiveStream),
}
