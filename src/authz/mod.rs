//! Every permission rule of the gateway, written once.
//!
//! A rule is a pure function of (viewer, action): no I/O, so resolvers can ask it for `viewerCan*`
//! flags as cheaply as services ask it before acting, and the whole policy is tested as a table
//! (below, and over HTTP and WebSocket in tests/api/authz.rs). Services load what a rule needs (the
//! post, the target member's role, whether the viewer's identity is approved) and then ask:
//! `authz::require(viewer, Action::DeletePost(&post))?`. A `viewerCan*` field asks the same action
//! with `authz::can`, so a rule cannot drift between enforcement and the hint a client shows.
//!
//! Roles are sets of capabilities, not a ranking: REVIEWER is not "above" MODERATOR, they may do
//! different things. ADMIN holds every capability.

use chrono::{DateTime, Utc};
use entity::{comments, identity_verifications, live_streams, posts};

use crate::auth::{Role, Viewer};
use crate::error::{AppError, AppResult};

/// Something a role lets its holder do beyond what every member may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Remove other members' posts and comments; run other members' live rooms.
    ModerateContent,
    /// Suspend and reinstate members (not staff), and see whether an account is suspended.
    SuspendMembers,
    /// Suspend and reinstate staff.
    SuspendStaff,
    /// Read the identity-verification queue, real names and ID photos; decide verifications.
    ReviewIdentity,
    /// Read the staff audit log.
    ReadAuditLog,
    /// Read visitor statistics.
    ReadVisitorStats,
    /// Give and take away staff roles.
    ManageRoles,
    /// Send security notices to members.
    SendSecurityNotice,
    /// Publish privacy policy versions.
    PublishPolicy,
    /// Open a board, or register a developer app, without a real-name verification of one's own.
    CreateBoardUnverified,
    /// Approve or reject developer apps (who may ask members for access to their data).
    ReviewApps,
}

impl Capability {
    pub const ALL: [Capability; 11] = [
        Capability::ModerateContent,
        Capability::SuspendMembers,
        Capability::SuspendStaff,
        Capability::ReviewIdentity,
        Capability::ReadAuditLog,
        Capability::ReadVisitorStats,
        Capability::ManageRoles,
        Capability::SendSecurityNotice,
        Capability::PublishPolicy,
        Capability::CreateBoardUnverified,
        Capability::ReviewApps,
    ];
}

/// What each role may do. The one place a role is interpreted.
pub fn capabilities(role: Role) -> &'static [Capability] {
    use Capability::*;
    match role {
        Role::User => &[],
        Role::Moderator => &[ModerateContent, SuspendMembers],
        Role::Reviewer => &[ReviewIdentity],
        Role::Admin => &Capability::ALL,
    }
}

pub mod scopes;

/// Staff capabilities never pass to a third-party app acting for a member (issue 16): an app token
/// has only what every member has, and its scopes narrow even that.
pub fn has(viewer: &Viewer, capability: Capability) -> bool {
    if viewer.app.is_some() {
        return false;
    }
    capabilities(viewer.role).contains(&capability)
}

/// Whether `to` lacks a capability `from` had: a demotion, which ends what the old role allowed.
pub fn loses_capabilities(from: Role, to: Role) -> bool {
    capabilities(from).iter().any(|c| !capabilities(to).contains(c))
}

/// Something a viewer wants to do, with the facts the rule needs.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// Change a post's title, body or images: its author only (moderators remove, never rewrite).
    EditPost(&'a posts::Model),
    /// Remove a post: its author, or a moderator.
    DeletePost(&'a posts::Model),
    /// Remove a comment: its author, or a moderator.
    DeleteComment(&'a comments::Model),
    /// Start, end or otherwise run a live room (delete chat lines, mute viewers): its host, or a
    /// moderator.
    HostLive(&'a live_streams::Model),
    /// Read a live room's ingest key: its host alone.
    ReadIngestKey(&'a live_streams::Model),
    /// Read what only the member themselves may see (contact details, sessions, favourites,
    /// histories, settings, request log, exports).
    ReadOwn {
        owner: i64,
    },
    /// Read a member's identity verification (status, masked data, real name): the owner, or a
    /// reviewer (audited by the service).
    ReadIdentity {
        owner: i64,
    },
    /// Read the identity queue and ID photos; decide verifications in general.
    ReviewIdentity,
    /// Decide one verification: a reviewer, never their own.
    DecideIdentity(&'a identity_verifications::Model),
    /// See a verification's ID photos: a reviewer, while it is pending or for `window` after the
    /// decision (least privilege: a decided case needs its photos only for a second look).
    ReadIdPhotos {
        verification: &'a identity_verifications::Model,
        window: chrono::Duration,
        now: DateTime<Utc>,
    },
    /// Read the staff audit log.
    ReadAuditLog,
    /// Read visitor statistics.
    ReadVisitorStats,
    /// Give a member a role: an admin, never to themselves.
    SetRole {
        target: i64,
    },
    /// Suspend or reinstate a member: moderators for members, admins for staff; nobody themselves.
    Moderate {
        target: i64,
        target_role: Role,
    },
    /// See whether an account is suspended.
    ReadSuspension,
    SendSecurityNotice,
    PublishPolicy,
    /// Open a board: admins, or a member whose real name was checked (the policy's promise).
    CreateBoard {
        identity_approved: bool,
    },
    /// Read the moderation queue, settle reports and hide posts or comments: moderators. A private
    /// message reaches them only as the target of a report a participant filed (services::reports).
    HandleReports,
    /// Read a conversation (its peer, its messages, its last message): its two members alone, staff
    /// included: a moderator reading a reported message does not get the conversation around it.
    ReadConversation {
        members: (i64, i64),
    },
    /// Register a developer app (a third party that will ask members for access): a member whose
    /// real name was checked, as for a board, or an admin.
    RegisterApp {
        identity_approved: bool,
    },
    /// Approve or reject a developer app: admins, never for an app of their own.
    ReviewApp {
        owner: i64,
    },
    /// Delete a developer app: its developer alone (admins reject an app instead, on the record).
    DeleteApp {
        owner: i64,
    },
}

impl Action<'_> {
    /// Every action's name, as `name` gives it: the authorization table test checks each is covered.
    pub const NAMES: [&'static str; 23] = [
        "EditPost",
        "DeletePost",
        "DeleteComment",
        "HostLive",
        "ReadIngestKey",
        "ReadOwn",
        "ReadIdentity",
        "ReviewIdentity",
        "DecideIdentity",
        "ReadIdPhotos",
        "ReadAuditLog",
        "ReadVisitorStats",
        "SetRole",
        "Moderate",
        "ReadSuspension",
        "SendSecurityNotice",
        "PublishPolicy",
        "CreateBoard",
        "HandleReports",
        "ReadConversation",
        "RegisterApp",
        "ReviewApp",
        "DeleteApp",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Action::EditPost(_) => "EditPost",
            Action::DeletePost(_) => "DeletePost",
            Action::DeleteComment(_) => "DeleteComment",
            Action::HostLive(_) => "HostLive",
            Action::ReadIngestKey(_) => "ReadIngestKey",
            Action::ReadOwn { .. } => "ReadOwn",
            Action::ReadIdentity { .. } => "ReadIdentity",
            Action::ReviewIdentity => "ReviewIdentity",
            Action::DecideIdentity(_) => "DecideIdentity",
            Action::ReadIdPhotos { .. } => "ReadIdPhotos",
            Action::ReadAuditLog => "ReadAuditLog",
            Action::ReadVisitorStats => "ReadVisitorStats",
            Action::SetRole { .. } => "SetRole",
            Action::Moderate { .. } => "Moderate",
            Action::ReadSuspension => "ReadSuspension",
            Action::SendSecurityNotice => "SendSecurityNotice",
            Action::PublishPolicy => "PublishPolicy",
            Action::CreateBoard { .. } => "CreateBoard",
            Action::HandleReports => "HandleReports",
            Action::ReadConversation { .. } => "ReadConversation",
            Action::RegisterApp { .. } => "RegisterApp",
            Action::ReviewApp { .. } => "ReviewApp",
            Action::DeleteApp { .. } => "DeleteApp",
        }
    }
}

/// What the policy promises needs a checked real name (a board, a developer app): the member's own
/// approved verification, or a role that may act without one.
fn verified(v: &Viewer, identity_approved: bool, why: &'static str) -> AppResult<()> {
    if identity_approved || has(v, Capability::CreateBoardUnverified) {
        Ok(())
    } else {
        Err(AppError::VerificationRequired(why))
    }
}

/// May `viewer` do `action`? For `viewerCan*` flags and fields that read as null when not allowed.
pub fn can(viewer: Option<&Viewer>, action: Action<'_>) -> bool {
    require(viewer, action).is_ok()
}

/// `Ok` if `viewer` may do `action`; otherwise the error the client sees: UNAUTHENTICATED when signed
/// out, FORBIDDEN (or BAD_USER_INPUT for an action aimed at oneself that can never be allowed,
/// VERIFICATION_REQUIRED for a board without a checked real name).
pub fn require(viewer: Option<&Viewer>, action: Action<'_>) -> AppResult<()> {
    use Capability::*;
    let Some(v) = viewer else { return Err(AppError::Unauthenticated) };
    let allow = |ok: bool, why: &'static str| if ok { Ok(()) } else { Err(AppError::Forbidden(why)) };
    match action {
        Action::EditPost(post) => allow(post.author_id == v.user_id, "only the author can edit this post"),
        Action::DeletePost(post) => allow(
            post.author_id == v.user_id || has(v, ModerateContent),
            "only the author or a moderator can delete this post",
        ),
        Action::DeleteComment(c) => allow(
            c.author_id == v.user_id || has(v, ModerateContent),
            "only the author or a moderator can delete this comment",
        ),
        Action::HostLive(s) => allow(s.host_id == v.user_id || has(v, ModerateContent), "only the host can do this"),
        Action::ReadIngestKey(s) => allow(s.host_id == v.user_id, "only the host sees the ingest key"),
        Action::ReadOwn { owner } => allow(owner == v.user_id, "this is private to the member"),
        Action::ReadIdentity { owner } => {
            allow(owner == v.user_id || has(v, ReviewIdentity), "identity data is private")
        }
        Action::ReviewIdentity => {
            allow(has(v, ReviewIdentity), "only reviewers can see or decide identity verifications")
        }
        Action::DecideIdentity(row) => {
            allow(has(v, ReviewIdentity), "only reviewers can see or decide identity verifications")?;
            allow(row.user_id != v.user_id, "reviewers cannot decide their own verification")
        }
        Action::ReadIdPhotos { verification, window, now } => {
            allow(has(v, ReviewIdentity), "only reviewers can see or decide identity verifications")?;
            let open = verification.status == "PENDING" || verification.reviewed_at.is_some_and(|at| now < at + window);
            allow(open, "the photos of a decided verification are no longer shown")
        }
        Action::ReadAuditLog => allow(has(v, ReadAuditLog), "only administrators can read the audit log"),
        Action::ReadVisitorStats => allow(has(v, ReadVisitorStats), "only administrators can read visitor statistics"),
        Action::SetRole { target } => {
            allow(has(v, ManageRoles), "only administrators can change roles")?;
            if target == v.user_id {
                return Err(AppError::bad_input("input.userId", "you cannot change your own role"));
            }
            Ok(())
        }
        Action::Moderate { target, target_role } => {
            allow(has(v, SuspendMembers), "only moderators can suspend accounts")?;
            if target == v.user_id {
                return Err(AppError::bad_input("input.userId", "you cannot suspend yourself"));
            }
            let staff = !capabilities(target_role).is_empty();
            allow(!staff || has(v, SuspendStaff), "only an admin can suspend staff")
        }
        Action::ReadSuspension => allow(has(v, SuspendMembers), "only moderators see suspensions"),
        Action::SendSecurityNotice => {
            allow(has(v, SendSecurityNotice), "only administrators can send security notices")
        }
        Action::PublishPolicy => allow(has(v, PublishPolicy), "only administrators can publish the privacy policy"),
        Action::CreateBoard { identity_approved } => verified(
            v,
            identity_approved,
            "creating a board needs an approved real-name verification (submitIdentityVerification)",
        ),
        Action::HandleReports => allow(has(v, ModerateContent), "only moderators handle reports"),
        Action::ReadConversation { members: (a, b) } => {
            allow(v.user_id == a || v.user_id == b, "only its two members can read a conversation")
        }
        Action::RegisterApp { identity_approved } => verified(
            v,
            identity_approved,
            "registering an app needs an approved real-name verification (submitIdentityVerification)",
        ),
        Action::ReviewApp { owner } => {
            if owner == v.user_id && has(v, ReviewApps) {
                return Err(AppError::Forbidden("nobody reviews an app of their own"));
            }
            allow(has(v, ReviewApps), "only administrators review developer apps")
        }
        Action::DeleteApp { owner } => allow(v.user_id == owner, "only its developer can delete an app"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::code;

    const ME: i64 = 1;
    const OTHER: i64 = 2;

    fn viewer(role: Role) -> Viewer {
        Viewer { user_id: ME, role, session_id: 1, app: None }
    }

    fn post(author_id: i64) -> posts::Model {
        posts::Model {
            id: 10,
            board_id: 1,
            author_id,
            title: String::new(),
            body: String::new(),
            image_urls: serde_json::json!([]),
            like_count: 0,
            comment_count: 0,
            favorite_count: 0,
            view_count: 0,
            hot_score: 0.0,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            deleted_at: None,
        }
    }

    fn comment(author_id: i64) -> comments::Model {
        comments::Model {
            id: 20,
            post_id: 10,
            parent_id: None,
            author_id,
            body: String::new(),
            like_count: 0,
            reply_count: 0,
            created_at: Utc::now(),
            deleted_at: None,
        }
    }

    fn stream(host_id: i64) -> live_streams::Model {
        live_streams::Model {
            id: 30,
            host_id,
            board_id: None,
            title: String::new(),
            status: "LIVE".into(),
            ingest_key: String::new(),
            chat_seq: 0,
            created_at: Utc::now(),
            started_at: None,
            ended_at: None,
            cover_media_id: None,
        }
    }

    fn verification(user_id: i64) -> identity_verifications::Model {
        identity_verifications::Model {
            id: 40,
            user_id,
            document_type: String::new(),
            real_name_sealed: String::new(),
            id_number_sealed: String::new(),
            real_name_masked: String::new(),
            id_number_masked: String::new(),
            front_media_id: String::new(),
            back_media_id: String::new(),
            status: "PENDING".into(),
            reason: None,
            reviewer_id: None,
            submitted_at: Utc::now(),
            reviewed_at: None,
        }
    }

    /// The code a cell expects: `None` allows.
    fn outcome(viewer: Option<&Viewer>, action: Action<'_>) -> Option<&'static str> {
        require(viewer, action).err().map(|e| e.code())
    }

    #[test]
    fn the_policy_as_a_table() {
        const A: Option<&str> = None;
        const F: Option<&str> = Some(code::FORBIDDEN);
        const I: Option<&str> = Some(code::BAD_USER_INPUT);
        const V: Option<&str> = Some(code::VERIFICATION_REQUIRED);
        let (mine_post, their_post) = (post(ME), post(OTHER));
        let (mine_comment, their_comment) = (comment(ME), comment(OTHER));
        let (my_stream, their_stream) = (stream(ME), stream(OTHER));
        let (my_iv, their_iv) = (verification(ME), verification(OTHER));
        let (now, window) = (Utc::now(), chrono::Duration::days(30));
        let decided = |days_ago| identity_verifications::Model {
            status: "APPROVED".into(),
            reviewed_at: Some(now - chrono::Duration::days(days_ago)),
            ..verification(OTHER)
        };
        let (decided_recently, decided_long_ago) = (decided(29), decided(31));
        // Columns: USER, MODERATOR, REVIEWER, ADMIN.
        let table: Vec<(Action<'_>, [Option<&str>; 4])> = vec![
            (Action::EditPost(&mine_post), [A, A, A, A]),
            (Action::EditPost(&their_post), [F, F, F, F]),
            (Action::DeletePost(&mine_post), [A, A, A, A]),
            (Action::DeletePost(&their_post), [F, A, F, A]),
            (Action::DeleteComment(&mine_comment), [A, A, A, A]),
            (Action::DeleteComment(&their_comment), [F, A, F, A]),
            (Action::HostLive(&my_stream), [A, A, A, A]),
            (Action::HostLive(&their_stream), [F, A, F, A]),
            (Action::ReadIngestKey(&my_stream), [A, A, A, A]),
            (Action::ReadIngestKey(&their_stream), [F, F, F, F]),
            (Action::ReadOwn { owner: ME }, [A, A, A, A]),
            (Action::ReadOwn { owner: OTHER }, [F, F, F, F]),
            (Action::ReadIdentity { owner: ME }, [A, A, A, A]),
            (Action::ReadIdentity { owner: OTHER }, [F, F, A, A]),
            (Action::ReviewIdentity, [F, F, A, A]),
            (Action::DecideIdentity(&their_iv), [F, F, A, A]),
            (Action::DecideIdentity(&my_iv), [F, F, F, F]),
            (Action::ReadIdPhotos { verification: &their_iv, window, now }, [F, F, A, A]),
            (Action::ReadIdPhotos { verification: &decided_recently, window, now }, [F, F, A, A]),
            (Action::ReadIdPhotos { verification: &decided_long_ago, window, now }, [F, F, F, F]),
            (Action::ReadAuditLog, [F, F, F, A]),
            (Action::ReadVisitorStats, [F, F, F, A]),
            (Action::SetRole { target: OTHER }, [F, F, F, A]),
            (Action::SetRole { target: ME }, [F, F, F, I]),
            (Action::Moderate { target: OTHER, target_role: Role::User }, [F, A, F, A]),
            (Action::Moderate { target: OTHER, target_role: Role::Moderator }, [F, F, F, A]),
            (Action::Moderate { target: OTHER, target_role: Role::Reviewer }, [F, F, F, A]),
            (Action::Moderate { target: ME, target_role: Role::User }, [F, I, F, I]),
            (Action::ReadSuspension, [F, A, F, A]),
            (Action::SendSecurityNotice, [F, F, F, A]),
            (Action::PublishPolicy, [F, F, F, A]),
            (Action::CreateBoard { identity_approved: false }, [V, V, V, A]),
            (Action::CreateBoard { identity_approved: true }, [A, A, A, A]),
            (Action::HandleReports, [F, A, F, A]),
            (Action::ReadConversation { members: (ME, OTHER) }, [A, A, A, A]),
            (Action::ReadConversation { members: (OTHER, OTHER + 1) }, [F, F, F, F]),
            (Action::RegisterApp { identity_approved: false }, [V, V, V, A]),
            (Action::RegisterApp { identity_approved: true }, [A, A, A, A]),
            (Action::ReviewApp { owner: OTHER }, [F, F, F, A]),
            (Action::ReviewApp { owner: ME }, [F, F, F, F]),
            (Action::DeleteApp { owner: ME }, [A, A, A, A]),
            (Action::DeleteApp { owner: OTHER }, [F, F, F, F]),
        ];
        let roles = [Role::User, Role::Moderator, Role::Reviewer, Role::Admin];
        let mut covered = std::collections::HashSet::new();
        for (action, row) in &table {
            covered.insert(action.name());
            assert_eq!(outcome(None, *action), Some(code::UNAUTHENTICATED), "anonymous {action:?}");
            for (role, expected) in roles.iter().zip(row) {
                assert_eq!(outcome(Some(&viewer(*role)), *action), *expected, "{role:?} {action:?}");
            }
        }
        for name in Action::NAMES {
            assert!(covered.contains(name), "{name} has no row in the policy table");
        }
    }

    #[test]
    fn roles_are_sets_not_a_ranking() {
        // Neither of MODERATOR and REVIEWER can do all the other can.
        assert!(loses_capabilities(Role::Moderator, Role::Reviewer));
        assert!(loses_capabilities(Role::Reviewer, Role::Moderator));
        assert!(!loses_capabilities(Role::User, Role::Moderator));
        for role in [Role::User, Role::Moderator, Role::Reviewer] {
            assert!(!loses_capabilities(role, Role::Admin));
            assert!(loses_capabilities(Role::Admin, role));
        }
    }
}
