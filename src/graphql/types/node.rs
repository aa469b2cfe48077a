use async_graphql::{ID, Interface};

use super::history::Settings;
use super::session::Session;
use super::trust::Media;
use super::{Board, Comment, Conversation, LiveChatMessage, LiveStream, Message, Notification, Post, User};
use crate::graphql::query::{NotificationSetting, PolicyConsent};

/// Anything with a global id, fetchable through `node(id)` by whoever may see it (a conversation and
/// its messages by its two members, a notification or session by its owner, an ID photo's Media by
/// its owner and reviewers; null for anyone else).
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID"))]
pub enum Node {
    User(User),
    Board(Board),
    Post(Post),
    Comment(Comment),
    LiveStream(LiveStream),
    LiveChatMessage(LiveChatMessage),
    Conversation(Conversation),
    Message(Message),
    Notification(Notification),
    Session(Session),
    Settings(Settings),
    NotificationSetting(NotificationSetting),
    PolicyConsent(PolicyConsent),
    Media(Media),
}
