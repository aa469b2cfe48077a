//! Opaque global ids: `base64url("Post:42")`. Clients treat them as strings; `node(id)` resolves any of
//! them, and the type prefix stops a post id from being accepted where a user id is expected.

use async_graphql::ID;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{AppError, AppResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Board,
    Post,
    Comment,
    Conversation,
    Message,
    Notification,
    LiveStream,
    LiveChatMessage,
    Session,
    BrowseEntry,
    SearchEntry,
    IdentityVerification,
    AuditEntry,
    Report,
    ActivityEntry,
    NoticeBroadcast,
    Settings,
    NotificationSetting,
    PolicyConsent,
    /// Keyed by the upload's UUID, not a number: [`encode_key`], [`decode_media`].
    Media,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Board => "Board",
            Kind::Post => "Post",
            Kind::Comment => "Comment",
            Kind::Conversation => "Conversation",
            Kind::Message => "Message",
            Kind::Notification => "Notification",
            Kind::LiveStream => "LiveStream",
            Kind::LiveChatMessage => "LiveChatMessage",
            Kind::Session => "Session",
            Kind::BrowseEntry => "BrowseEntry",
            Kind::SearchEntry => "SearchEntry",
            Kind::IdentityVerification => "IdentityVerification",
            Kind::AuditEntry => "AuditEntry",
            Kind::Report => "Report",
            Kind::ActivityEntry => "ActivityEntry",
            Kind::NoticeBroadcast => "NoticeBroadcast",
            Kind::Settings => "Settings",
            Kind::NotificationSetting => "NotificationSetting",
            Kind::PolicyConsent => "PolicyConsent",
            Kind::Media => "Media",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "User" => Kind::User,
            "Board" => Kind::Board,
            "Post" => Kind::Post,
            "Comment" => Kind::Comment,
            "Conversation" => Kind::Conversation,
            "Message" => Kind::Message,
            "Notification" => Kind::Notification,
            "LiveStream" => Kind::LiveStream,
            "LiveChatMessage" => Kind::LiveChatMessage,
            "Session" => Kind::Session,
            "BrowseEntry" => Kind::BrowseEntry,
            "SearchEntry" => Kind::SearchEntry,
            "IdentityVerification" => Kind::IdentityVerification,
            "AuditEntry" => Kind::AuditEntry,
            "Report" => Kind::Report,
            "ActivityEntry" => Kind::ActivityEntry,
            "NoticeBroadcast" => Kind::NoticeBroadcast,
            "Settings" => Kind::Settings,
            "NotificationSetting" => Kind::NotificationSetting,
            "PolicyConsent" => Kind::PolicyConsent,
            "Media" => Kind::Media,
            _ => return None,
        })
    }
}

pub fn encode(kind: Kind, id: i64) -> ID {
    ID(URL_SAFE_NO_PAD.encode(format!("{}:{id}", kind.name())))
}

/// The global id of an object keyed by a string (an upload's UUID).
pub fn encode_key(kind: Kind, key: &str) -> ID {
    ID(URL_SAFE_NO_PAD.encode(format!("{}:{key}", kind.name())))
}

/// The upload a global Media id names.
pub fn decode_media(id: &str) -> Option<uuid::Uuid> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(id).ok()?).ok()?;
    let key = raw.strip_prefix("Media:")?;
    uuid::Uuid::parse_str(key).ok()
}

/// An upload named in an input (`mediaIds`, `coverMediaId`): its global id (`Media.id`), or the bare
/// UUID that `Media.id` was before it became a global id (still accepted, so a draft saved by an
/// older client still posts). Returns the stored key, the hyphenated UUID.
pub fn media_key(id: &ID, field: &str) -> AppResult<String> {
    decode_media(id)
        .or_else(|| uuid::Uuid::parse_str(id).ok())
        .map(|u| u.hyphenated().to_string())
        .ok_or_else(|| AppError::bad_input(field, "is not a Media id"))
}

/// Any global id, whatever its type.
pub fn decode_any(id: &str) -> Option<(Kind, i64)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(id).ok()?).ok()?;
    let (kind, n) = raw.split_once(':')?;
    Some((Kind::parse(kind)?, n.parse().ok()?))
}

/// A global id that must be of `kind`; `field` names the argument in the error.
pub fn decode(kind: Kind, id: &ID, field: &str) -> AppResult<i64> {
    match decode_any(id) {
        Some((k, n)) if k == kind => Ok(n),
        _ => Err(AppError::bad_input(field, format!("is not a {} id", kind.name()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_keep_their_type() {
        let id = encode(Kind::Post, 42);
        assert_eq!(decode(Kind::Post, &id, "id").unwrap(), 42);
        assert!(decode(Kind::User, &id, "id").is_err());
        assert!(decode(Kind::Post, &ID("garbage".into()), "id").is_err());
    }

    #[test]
    fn media_ids_carry_their_uuid_and_bare_uuids_are_still_accepted() {
        let uuid = uuid::Uuid::new_v4();
        let id = encode_key(Kind::Media, &uuid.hyphenated().to_string());
        assert_eq!(decode_media(&id), Some(uuid));
        assert_eq!(decode_any(&id), None, "not a numeric id");
        assert_eq!(media_key(&id, "f").unwrap(), uuid.hyphenated().to_string());
        assert_eq!(media_key(&ID(uuid.simple().to_string()), "f").unwrap(), uuid.hyphenated().to_string());
        assert!(media_key(&encode(Kind::Post, 1), "f").is_err());
        assert!(media_key(&ID("Media:1".into()), "f").is_err());
    }
}
