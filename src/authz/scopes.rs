//! What a third-party app's token may touch (issue 16): OAuth scopes on top of the policy.
//!
//! An app acts for a member, so everything the rest of this module decides about that member still
//! holds; scopes only take away. The check is type-aware and deny-by-default: every field an app
//! token resolves is looked up by (the concrete type it is resolved on, field name) in [`need`];
//! a field the table does not name is refused, so a field added later stays out of apps' reach until
//! someone decides which scope it belongs to. Staff capabilities never pass to an app
//! ([`super::has`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

/// One permission a member can give an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Who the member is: their profile, phone number and email; other members' public profiles.
    ProfileRead,
    /// Boards, posts, comments, live rooms, search and feeds, as the member sees them.
    PostsRead,
    /// Write, edit and delete the member's posts and comments.
    PostsWrite,
    /// Like, follow and favourite as the member.
    SocialWrite,
    /// The member's browse and search history and favourites.
    HistoryRead,
    /// The member's private conversations.
    MessagesRead,
    /// Send private messages as the member.
    MessagesWrite,
    /// The member's notifications.
    NotificationsRead,
}

impl Scope {
    pub const ALL: [Scope; 8] = [
        Scope::ProfileRead,
        Scope::PostsRead,
        Scope::PostsWrite,
        Scope::SocialWrite,
        Scope::HistoryRead,
        Scope::MessagesRead,
        Scope::MessagesWrite,
        Scope::NotificationsRead,
    ];

    /// The name apps ask for (`scope=profile:read posts:read`).
    pub fn name(self) -> &'static str {
        match self {
            Scope::ProfileRead => "profile:read",
            Scope::PostsRead => "posts:read",
            Scope::PostsWrite => "posts:write",
            Scope::SocialWrite => "social:write",
            Scope::HistoryRead => "history:read",
            Scope::MessagesRead => "messages:read",
            Scope::MessagesWrite => "messages:write",
            Scope::NotificationsRead => "notifications:read",
        }
    }

    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.name() == name)
    }

    /// What the consent page says the app will be able to do, in plain words.
    pub fn describe(self, chinese: bool) -> &'static str {
        match (self, chinese) {
            (Scope::ProfileRead, false) => "See your profile, including your phone number and email address",
            (Scope::ProfileRead, true) => "查看你的个人资料，包括手机号和电子邮箱",
            (Scope::PostsRead, false) => "Read boards, posts, comments and live rooms as you see them",
            (Scope::PostsRead, true) => "以你的身份浏览版块、帖子、评论和直播",
            (Scope::PostsWrite, false) => "Publish, edit and delete posts and comments in your name",
            (Scope::PostsWrite, true) => "以你的名义发布、编辑和删除帖子与评论",
            (Scope::SocialWrite, false) => "Like, follow and add favourites in your name",
            (Scope::SocialWrite, true) => "以你的名义点赞、关注和收藏",
            (Scope::HistoryRead, false) => "See your browsing and search history and your favourites",
            (Scope::HistoryRead, true) => "查看你的浏览记录、搜索记录和收藏",
            (Scope::MessagesRead, false) => "Read your private messages",
            (Scope::MessagesRead, true) => "读取你的私信",
            (Scope::MessagesWrite, false) => "Send private messages in your name",
            (Scope::MessagesWrite, true) => "以你的名义发送私信",
            (Scope::NotificationsRead, false) => "See your notifications",
            (Scope::NotificationsRead, true) => "查看你的通知",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of scopes, stored as their names separated by spaces (the protocol's own form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Scopes(u16);

impl Scopes {
    pub const NONE: Scopes = Scopes(0);

    pub fn of(scopes: &[Scope]) -> Scopes {
        Scopes(scopes.iter().fold(0, |bits, s| bits | s.bit()))
    }

    /// A space-separated list as a client sends it. `Err` names the first unknown scope; repeats
    /// and extra spaces are tolerated (RFC 6749 §3.3 leaves order and spacing to the client).
    pub fn parse(list: &str) -> Result<Scopes, String> {
        let mut bits = 0;
        for name in list.split(' ').filter(|s| !s.is_empty()) {
            bits |= Scope::parse(name).ok_or_else(|| name.chars().take(64).collect::<String>())?.bit();
        }
        Ok(Scopes(bits))
    }

    /// A stored list: a name this build does not know (a scope since retired) grants nothing,
    /// instead of failing every request of the token.
    pub fn parse_stored(list: &str) -> Scopes {
        Scopes(list.split(' ').filter_map(Scope::parse).fold(0, |bits, s| bits | s.bit()))
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn covers(self, other: Scopes) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn union(self, other: Scopes) -> Scopes {
        Scopes(self.0 | other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for scope in self.iter() {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(scope.name())?;
            first = false;
        }
        Ok(())
    }
}

/// The rule for routes outside GraphQL (private media): a member's own request passes; an app's
/// token needs `scope`, and `None` means apps may not use the route at all.
pub fn require(viewer: &crate::auth::Viewer, scope: Option<Scope>) -> Result<(), crate::error::AppError> {
    match (viewer.app, scope) {
        (None, _) => Ok(()),
        (Some(app), Some(scope)) if app.scopes.contains(scope) => Ok(()),
        (Some(_), scope) => Err(crate::error::AppError::InsufficientScope { required: scope.map(Scope::name) }),
    }
}

/// What resolving one field needs from an app token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing beyond the member's own rights: structure (connections, edges, page info, mutation
    /// payloads), `__typename` and introspection.
    Open,
    /// This scope.
    Scope(Scope),
    /// Never through an app: first-party only (account, sessions, privacy centre, staff tools...).
    Deny,
}

/// What an app token needs to resolve `field` on the object type `parent` (the concrete type, as
/// async-graphql resolves it; the root types are `Query`, `Mutation` and `Subscription`).
pub fn need(parent: &str, field: &str) -> Need {
    if field.starts_with("__") || parent.starts_with("__") {
        return Need::Open;
    }
    if is_structure(parent) {
        return Need::Open;
    }
    table(parent, field)
}

/// Connections, edges, mutation payloads and page info: they only lead to objects whose own fields
/// are checked.
fn is_structure(parent: &str) -> bool {
    parent.ends_with("Connection") || parent.ends_with("Edge") || parent.ends_with("Payload") || parent == "PageInfo"
}

// The table. One row per (object type, field); `*` stands for every field of the type that has no
// row of its own. Every object type of the schema has rows (Deny ones included), so a field added
// later is a decision someone has to make; the tests below hold the table to `schema.graphql`. The
// root types are classified field by field, never with `*`. Connections, edges, payloads and
// `PageInfo` are structure: `need` answers Open for them before it looks here.

const OPEN: Need = Need::Open;
const DENY: Need = Need::Deny;
const PROFILE_READ: Need = Need::Scope(Scope::ProfileRead);
const POSTS_READ: Need = Need::Scope(Scope::PostsRead);
const POSTS_WRITE: Need = Need::Scope(Scope::PostsWrite);
const SOCIAL_WRITE: Need = Need::Scope(Scope::SocialWrite);
const HISTORY_READ: Need = Need::Scope(Scope::HistoryRead);
const MESSAGES_READ: Need = Need::Scope(Scope::MessagesRead);
const MESSAGES_WRITE: Need = Need::Scope(Scope::MessagesWrite);
const NOTIFICATIONS_READ: Need = Need::Scope(Scope::NotificationsRead);

const ENTRIES: &[(&str, &str, Need)] = &[
    // ---- Query ----
    // Open: the concrete type of what it returns is checked field by field anyway (a Session or
    // Settings found by id is still Deny). Media ids are UUIDs, known only through a checked parent.
    // (There is no `nodes` field.)
    ("Query", "node", OPEN),
    ("Query", "me", PROFILE_READ),
    ("Query", "user", PROFILE_READ),
    ("Query", "boards", POSTS_READ),
    ("Query", "board", POSTS_READ),
    ("Query", "posts", POSTS_READ),
    ("Query", "hotPosts", POSTS_READ),
    ("Query", "post", POSTS_READ),
    ("Query", "comment", POSTS_READ),
    ("Query", "pushPublicKey", DENY),
    ("Query", "conversations", MESSAGES_READ),
    ("Query", "conversation", MESSAGES_READ),
    ("Query", "messages", MESSAGES_READ),
    ("Query", "notifications", NOTIFICATIONS_READ),
    ("Query", "unreadNotificationCount", NOTIFICATIONS_READ),
    ("Query", "unreadMessageCount", MESSAGES_READ),
    ("Query", "notificationSettings", DENY),
    ("Query", "liveStreams", POSTS_READ),
    ("Query", "liveStream", POSTS_READ),
    // Records the query in the member's search history, as searching does: part of reading.
    ("Query", "search", POSTS_READ),
    // Which posts it picks reflects the member's history; the words that say so
    // (`FeedItem.reason`) need history:read.
    ("Query", "recommendedFeed", POSTS_READ),
    // Public policy text.
    ("Query", "privacyPolicy", POSTS_READ),
    ("Query", "privacyPolicyVersions", POSTS_READ),
    ("Query", "policyConsent", DENY),
    ("Query", "identityVerifications", DENY),
    ("Query", "noticeBroadcast", DENY),
    ("Query", "auditLog", DENY),
    ("Query", "moderationQueue", DENY),
    ("Query", "appReviewQueue", DENY),
    ("Query", "visitorStats", DENY),
    // ---- Mutation ----
    // Account, sign-in and contact details: first-party only.
    ("Mutation", "requestPhoneCode", DENY),
    ("Mutation", "register", DENY),
    ("Mutation", "login", DENY),
    ("Mutation", "loginWithCode", DENY),
    ("Mutation", "resetPassword", DENY),
    ("Mutation", "changePassword", DENY),
    ("Mutation", "changePhone", DENY),
    ("Mutation", "logout", DENY),
    // No scope writes the profile.
    ("Mutation", "updateProfile", DENY),
    ("Mutation", "setAvatar", DENY),
    ("Mutation", "revokeSession", DENY),
    ("Mutation", "deleteAccount", DENY),
    ("Mutation", "addEmail", DENY),
    ("Mutation", "verifyEmail", DENY),
    ("Mutation", "requestEmailCode", DENY),
    // Staff tools.
    ("Mutation", "banUser", DENY),
    ("Mutation", "unbanUser", DENY),
    ("Mutation", "sendSecurityNotice", DENY),
    ("Mutation", "publishPolicyVersion", DENY),
    ("Mutation", "reviewIdentityVerification", DENY),
    ("Mutation", "setUserRole", DENY),
    ("Mutation", "resolveReports", DENY),
    ("Mutation", "reviewApp", DENY),
    // Needs a real-name verification; not something to do through an app.
    ("Mutation", "createBoard", DENY),
    ("Mutation", "createPost", POSTS_WRITE),
    ("Mutation", "updatePost", POSTS_WRITE),
    ("Mutation", "deletePost", POSTS_WRITE),
    ("Mutation", "createComment", POSTS_WRITE),
    ("Mutation", "deleteComment", POSTS_WRITE),
    ("Mutation", "uploadMedia", POSTS_WRITE),
    ("Mutation", "likePost", SOCIAL_WRITE),
    ("Mutation", "unlikePost", SOCIAL_WRITE),
    ("Mutation", "favoritePost", SOCIAL_WRITE),
    ("Mutation", "unfavoritePost", SOCIAL_WRITE),
    ("Mutation", "likeComment", SOCIAL_WRITE),
    ("Mutation", "unlikeComment", SOCIAL_WRITE),
    ("Mutation", "followUser", SOCIAL_WRITE),
    ("Mutation", "unfollowUser", SOCIAL_WRITE),
    ("Mutation", "followBoard", SOCIAL_WRITE),
    ("Mutation", "unfollowBoard", SOCIAL_WRITE),
    ("Mutation", "sendMessage", MESSAGES_WRITE),
    ("Mutation", "markConversationRead", MESSAGES_WRITE),
    // Safety tools stay with the member.
    ("Mutation", "blockUser", DENY),
    ("Mutation", "unblockUser", DENY),
    ("Mutation", "reportContent", DENY),
    ("Mutation", "markNotificationsRead", NOTIFICATIONS_READ),
    ("Mutation", "updateNotificationSettings", DENY),
    // Hosting a live room (its ingest key is Deny anyway) and running its chat are not in any
    // scope's consent text; only saying a line is.
    ("Mutation", "createLiveStream", DENY),
    ("Mutation", "startLiveStream", DENY),
    ("Mutation", "endLiveStream", DENY),
    ("Mutation", "deleteLiveChatMessage", DENY),
    ("Mutation", "muteLiveChatViewer", DENY),
    ("Mutation", "sendLiveChatMessage", POSTS_WRITE),
    // Adds to the member's browse history, as opening a post does: part of reading.
    ("Mutation", "recordPostView", POSTS_READ),
    // Privacy centre.
    ("Mutation", "deleteBrowseHistory", DENY),
    ("Mutation", "deleteSearchHistory", DENY),
    ("Mutation", "updateSettings", DENY),
    ("Mutation", "acceptPrivacyPolicy", DENY),
    ("Mutation", "submitIdentityVerification", DENY),
    ("Mutation", "requestDataExport", DENY),
    ("Mutation", "registerPushSubscription", DENY),
    ("Mutation", "unregisterPushSubscription", DENY),
    ("Mutation", "registerApp", DENY),
    ("Mutation", "deleteApp", DENY),
    ("Mutation", "revokeAppAuthorization", DENY),
    // ---- Subscription ----
    ("Subscription", "messageReceived", MESSAGES_READ),
    ("Subscription", "notificationReceived", NOTIFICATIONS_READ),
    // Each event tells that a message or a notification came or was read: the timing of private
    // conversations, so messages:read; each count needs its own scope as well (`UnreadCounts`).
    ("Subscription", "unreadCountsChanged", MESSAGES_READ),
    ("Subscription", "commentAdded", POSTS_READ),
    ("Subscription", "postUpdated", POSTS_READ),
    ("Subscription", "commentUpdated", POSTS_READ),
    ("Subscription", "liveStreamUpdated", POSTS_READ),
    ("Subscription", "liveChat", POSTS_READ),
    // ---- User ----
    // Field by field, no `*`: the type mixes the public profile with the member's private data, so a
    // new field must not fall into profile:read unseen.
    ("User", "id", PROFILE_READ),
    ("User", "url", PROFILE_READ),
    ("User", "accountName", PROFILE_READ),
    ("User", "nickname", PROFILE_READ),
    ("User", "avatarUrl", PROFILE_READ),
    ("User", "gender", PROFILE_READ),
    ("User", "signature", PROFILE_READ),
    ("User", "role", PROFILE_READ),
    ("User", "createdAt", PROFILE_READ),
    // Contact details: only the member themselves gets them (the policy sees to that).
    ("User", "phone", PROFILE_READ),
    ("User", "email", PROFILE_READ),
    ("User", "emailVerified", PROFILE_READ),
    // An address change under way: account management.
    ("User", "pendingEmail", DENY),
    ("User", "isViewer", PROFILE_READ),
    ("User", "followerCount", PROFILE_READ),
    ("User", "followingCount", PROFILE_READ),
    ("User", "postCount", PROFILE_READ),
    ("User", "viewerIsFollowing", PROFILE_READ),
    // Whom the member blocked is private and no scope covers it.
    ("User", "viewerHasBlocked", DENY),
    ("User", "followsViewer", PROFILE_READ),
    // Tells of a block either way: no more than `sendMessage` itself would.
    ("User", "viewerCanMessage", MESSAGES_WRITE),
    ("User", "posts", POSTS_READ),
    ("User", "comments", POSTS_READ),
    ("User", "followers", PROFILE_READ),
    ("User", "following", PROFILE_READ),
    ("User", "followingUsers", PROFILE_READ),
    // Public, like `following`; the boards themselves need posts:read.
    ("User", "followingBoards", PROFILE_READ),
    ("User", "favorites", HISTORY_READ),
    ("User", "browseHistory", HISTORY_READ),
    ("User", "searchHistory", HISTORY_READ),
    ("User", "reportsFiled", DENY),
    ("User", "developerApps", DENY),
    ("User", "pushSubscriptions", DENY),
    ("User", "sessions", DENY),
    ("User", "suspended", DENY),
    ("User", "settings", DENY),
    ("User", "identityVerification", DENY),
    ("User", "activity", DENY),
    ("User", "loginHistory", DENY),
    ("User", "blockedUsers", DENY),
    ("User", "dataExports", DENY),
    ("User", "authorizedApps", DENY),
    // ---- Boards, posts, comments, live rooms, search, feed ----
    ("Board", "*", POSTS_READ),
    // Post and LiveStream field by field: each already has a field that is not posts:read.
    ("Post", "id", POSTS_READ),
    ("Post", "url", POSTS_READ),
    ("Post", "editedAt", POSTS_READ),
    ("Post", "title", POSTS_READ),
    ("Post", "body", POSTS_READ),
    ("Post", "excerpt", POSTS_READ),
    ("Post", "imageUrls", POSTS_READ),
    ("Post", "media", POSTS_READ),
    ("Post", "createdAt", POSTS_READ),
    ("Post", "updatedAt", POSTS_READ),
    ("Post", "author", POSTS_READ),
    ("Post", "board", POSTS_READ),
    ("Post", "likeCount", POSTS_READ),
    ("Post", "commentCount", POSTS_READ),
    ("Post", "favoriteCount", POSTS_READ),
    ("Post", "viewCount", POSTS_READ),
    ("Post", "viewerHasLiked", POSTS_READ),
    // Favourites are private: a flag per post would rebuild the list.
    ("Post", "viewerHasFavorited", HISTORY_READ),
    ("Post", "viewerCanEdit", POSTS_READ),
    ("Post", "viewerCanDelete", POSTS_READ),
    ("Post", "comments", POSTS_READ),
    ("Comment", "*", POSTS_READ),
    ("PostEvent", "*", POSTS_READ),
    ("CommentEvent", "*", POSTS_READ),
    ("LiveStream", "id", POSTS_READ),
    ("LiveStream", "title", POSTS_READ),
    ("LiveStream", "status", POSTS_READ),
    ("LiveStream", "host", POSTS_READ),
    ("LiveStream", "board", POSTS_READ),
    // The host's encoder credentials: whoever holds them broadcasts as the host.
    ("LiveStream", "ingestUrl", DENY),
    ("LiveStream", "ingestKey", DENY),
    ("LiveStream", "coverUrl", POSTS_READ),
    ("LiveStream", "playback", POSTS_READ),
    ("LiveStream", "viewerCount", POSTS_READ),
    ("LiveStream", "chat", POSTS_READ),
    ("LiveStream", "createdAt", POSTS_READ),
    ("LiveStream", "startedAt", POSTS_READ),
    ("LiveStream", "endedAt", POSTS_READ),
    ("LivePlayback", "*", POSTS_READ),
    ("LiveStreamEvent", "*", POSTS_READ),
    ("LiveChatMessage", "*", POSTS_READ),
    ("LiveChatEvent", "*", POSTS_READ),
    ("SearchHit", "*", POSTS_READ),
    ("FeedItem", "post", POSTS_READ),
    // "because you searched ..." / "because you read ...": the member's history in words.
    ("FeedItem", "reason", HISTORY_READ),
    ("PolicyVersion", "*", POSTS_READ),
    // Reached only through a checked parent (a post, a message, an upload; by `node` with an
    // unguessable UUID).
    ("Media", "*", OPEN),
    ("TextRange", "*", OPEN),
    // ---- History ----
    ("BrowseEntry", "*", HISTORY_READ),
    ("SearchEntry", "*", HISTORY_READ),
    // ---- Messages and notifications ----
    ("Conversation", "*", MESSAGES_READ),
    ("Message", "*", MESSAGES_READ),
    ("Notification", "*", NOTIFICATIONS_READ),
    ("UnreadCounts", "messages", MESSAGES_READ),
    ("UnreadCounts", "notifications", NOTIFICATIONS_READ),
    // ---- First-party only ----
    ("NotificationSetting", "*", DENY),
    ("Settings", "*", DENY),
    ("PolicyConsent", "*", DENY),
    ("Session", "*", DENY),
    ("PushSubscription", "*", DENY),
    ("DataExport", "*", DENY),
    ("ActivityEntry", "*", DENY),
    ("ActivityApp", "*", DENY),
    ("IdentityVerification", "*", DENY),
    ("DeveloperApp", "*", DENY),
    // Which apps a member authorized is the member's own business, not another app's.
    ("AuthorizedApp", "*", DENY),
    ("Report", "*", DENY),
    ("ReportCase", "*", DENY),
    ("ReasonCount", "*", DENY),
    ("AuditEntry", "*", DENY),
    ("NoticeBroadcast", "*", DENY),
    ("DeliveryCounts", "*", DENY),
    ("DailyVisitors", "*", DENY),
];

static TABLE: LazyLock<HashMap<(&'static str, &'static str), Need>> =
    LazyLock::new(|| ENTRIES.iter().map(|&(parent, field, need)| ((parent, field), need)).collect());

/// The row for (`parent`, `field`), else the type's `*` row, else `Deny`.
fn table(parent: &str, field: &str) -> Need {
    TABLE.get(&(parent, field)).or_else(|| TABLE.get(&(parent, "*"))).copied().unwrap_or(Need::Deny)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashSet};

    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};

    use super::*;

    /// The member's controls over apps: never reachable by an app.
    const APP_CONTROLS: &[(&str, &str)] = &[("User", "authorizedApps"), ("Mutation", "revokeAppAuthorization")];

    const ROOTS: [&str; 3] = ["Query", "Mutation", "Subscription"];

    /// Every object type of `schema.graphql` with its fields.
    fn objects() -> BTreeMap<String, BTreeSet<String>> {
        let doc =
            async_graphql::parser::parse_schema(include_str!("../../schema.graphql")).expect("schema.graphql parses");
        let mut objects: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for definition in doc.definitions {
            let TypeSystemDefinition::Type(ty) = definition else { continue };
            let TypeKind::Object(object) = &ty.node.kind else { continue };
            objects
                .entry(ty.node.name.node.to_string())
                .or_default()
                .extend(object.fields.iter().map(|f| f.node.name.node.to_string()));
        }
        objects
    }

    #[test]
    fn the_schema_has_the_types_the_table_expects() {
        let objects = objects();
        for name in ["Query", "Mutation", "Subscription", "User", "Post", "LiveStream", "PostConnection", "PageInfo"] {
            assert!(objects.contains_key(name), "schema.graphql has no object type {name}");
        }
    }

    #[test]
    fn every_row_names_an_existing_field() {
        let objects = objects();
        let mut wrong = Vec::new();
        for &(parent, field, _) in ENTRIES {
            let Some(fields) = objects.get(parent) else {
                wrong.push(format!("{parent}.{field}: no object type {parent}"));
                continue;
            };
            if is_structure(parent) {
                wrong.push(format!("{parent}.{field}: structure is Open before the table is read"));
            } else if field != "*" && !fields.contains(field) {
                wrong.push(format!("{parent}.{field}: no such field"));
            }
        }
        assert!(wrong.is_empty(), "rows that match nothing in schema.graphql:\n{}", wrong.join("\n"));
    }

    #[test]
    fn every_field_is_classified() {
        let unclassified: Vec<String> = objects()
            .iter()
            .filter(|(parent, _)| !is_structure(parent))
            .flat_map(|(parent, fields)| fields.iter().map(move |field| (parent.as_str(), field.as_str())))
            .filter(|&(parent, field)| !TABLE.contains_key(&(parent, field)) && !TABLE.contains_key(&(parent, "*")))
            .map(|(parent, field)| format!("{parent}.{field}"))
            .collect();
        assert!(
            unclassified.is_empty(),
            "fields with no row in authz::scopes (add one, Deny if in doubt):\n{}",
            unclassified.join("\n")
        );
    }

    #[test]
    fn root_types_are_classified_field_by_field() {
        let wildcards: Vec<&str> =
            ENTRIES.iter().filter(|(parent, field, _)| ROOTS.contains(parent) && *field == "*").map(|r| r.0).collect();
        assert!(wildcards.is_empty(), "`*` rows on root types: {wildcards:?}");
    }

    #[test]
    fn no_row_is_given_twice() {
        let mut seen = HashSet::new();
        let twice: Vec<String> = ENTRIES
            .iter()
            .filter(|(parent, field, _)| !seen.insert((*parent, *field)))
            .map(|(parent, field, _)| format!("{parent}.{field}"))
            .collect();
        assert!(twice.is_empty(), "rows given twice: {twice:?}");
    }

    #[test]
    fn the_members_controls_over_apps_are_denied() {
        for &(parent, field) in APP_CONTROLS {
            assert_eq!(need(parent, field), Need::Deny, "{parent}.{field}");
        }
    }

    #[test]
    fn spot_checks() {
        assert_eq!(need("User", "phone"), Need::Scope(Scope::ProfileRead));
        assert_eq!(need("User", "email"), Need::Scope(Scope::ProfileRead));
        assert_eq!(need("User", "nickname"), Need::Scope(Scope::ProfileRead));
        assert_eq!(need("User", "sessions"), Need::Deny);
        assert_eq!(need("User", "browseHistory"), Need::Scope(Scope::HistoryRead));
        assert_eq!(need("Query", "me"), Need::Scope(Scope::ProfileRead));
        assert_eq!(need("Mutation", "deleteAccount"), Need::Deny);
        assert_eq!(need("Mutation", "sendMessage"), Need::Scope(Scope::MessagesWrite));
        assert_eq!(need("Mutation", "createPost"), Need::Scope(Scope::PostsWrite));
        assert_eq!(need("Mutation", "likePost"), Need::Scope(Scope::SocialWrite));
        assert_eq!(need("Subscription", "messageReceived"), Need::Scope(Scope::MessagesRead));
        assert_eq!(need("Notification", "body"), Need::Scope(Scope::NotificationsRead));
        assert_eq!(need("LiveStream", "title"), Need::Scope(Scope::PostsRead));
        assert_eq!(need("LiveStream", "ingestKey"), Need::Deny);
        assert_eq!(need("LiveStream", "ingestUrl"), Need::Deny);
        assert_eq!(need("UnreadCounts", "messages"), Need::Scope(Scope::MessagesRead));
        assert_eq!(need("UnreadCounts", "notifications"), Need::Scope(Scope::NotificationsRead));
        assert_eq!(need("Session", "ip"), Need::Deny);
        assert_eq!(need("Media", "url"), Need::Open);
        // Not named anywhere: denied, on a known type as on an unknown one.
        assert_eq!(need("UnknownType", "x"), Need::Deny);
        assert_eq!(need("Query", "somethingNew"), Need::Deny);
        assert_eq!(need("User", "somethingNew"), Need::Deny);
        // Structure and introspection.
        assert_eq!(need("PostConnection", "edges"), Need::Open);
        assert_eq!(need("PageInfo", "hasNextPage"), Need::Open);
        assert_eq!(need("SendMessagePayload", "message"), Need::Open);
        assert_eq!(need("Query", "__schema"), Need::Open);
        assert_eq!(need("Session", "__typename"), Need::Open);
    }

    #[test]
    fn scopes_parse_and_print_in_canonical_order() {
        let scopes = Scopes::parse("posts:read  profile:read").expect("known scopes");
        assert_eq!(scopes, Scopes::of(&[Scope::ProfileRead, Scope::PostsRead]));
        assert_eq!(scopes.to_string(), "profile:read posts:read");
        assert_eq!(Scopes::parse(&scopes.to_string()), Ok(scopes));
        assert_eq!(Scopes::parse(""), Ok(Scopes::NONE));
        let all = Scopes::of(&Scope::ALL);
        assert_eq!(Scopes::parse(&all.to_string()), Ok(all));
        assert_eq!(Scopes::parse("posts:read admin:all"), Err("admin:all".to_string()));
    }
}
