//! The staff audit log: every time a MODERATOR, REVIEWER or ADMIN reads or decides something about
//! a member's personal data, or acts on a member (suspension, role, notice, removing their posts or
//! comments), who did what to whom and when. ADMINs read it; nobody edits it.

use chrono::Utc;
use entity::audit_log;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::auth::Viewer;
use crate::authz;
use crate::error::{AppError, AppResult};
use crate::services::page::{Cursor, Page, PageArgs};
use crate::services::validate::{self, Lines};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ViewIdentity,
    ViewRealName,
    ViewIdPhoto,
    ApproveIdentity,
    RejectIdentity,
    SetRole,
    BanUser,
    UnbanUser,
    SendSecurityNotice,
    DeletePost,
    DeleteComment,
    HidePost,
    HideComment,
    /// A moderator settled the open reports on a target (the reason starts with the outcome).
    ResolveReports,
    /// An admin approved or rejected a developer app (the reason says which and why).
    ReviewApp,
    /// A member gave a developer app access (the reason lists the scopes).
    GrantApp,
    /// A developer deleted their app (the reason says how many members' grants it ended).
    DeleteApp,
    /// A grant ended: the member withdrew it, the app revoked its refresh token, or a replayed code
    /// or refresh token revoked it (the reason says which).
    RevokeApp,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ViewIdentity => "VIEW_IDENTITY",
            Action::ViewRealName => "VIEW_REAL_NAME",
            Action::ViewIdPhoto => "VIEW_ID_PHOTO",
            Action::ApproveIdentity => "APPROVE_IDENTITY",
            Action::RejectIdentity => "REJECT_IDENTITY",
            Action::SetRole => "SET_ROLE",
            Action::BanUser => "BAN_USER",
            Action::UnbanUser => "UNBAN_USER",
            Action::SendSecurityNotice => "SEND_SECURITY_NOTICE",
            Action::DeletePost => "DELETE_POST",
            Action::DeleteComment => "DELETE_COMMENT",
            Action::HidePost => "HIDE_POST",
            Action::HideComment => "HIDE_COMMENT",
            Action::ResolveReports => "RESOLVE_REPORTS",
            Action::ReviewApp => "REVIEW_APP",
            Action::GrantApp => "GRANT_APP",
            Action::RevokeApp => "REVOKE_APP",
            Action::DeleteApp => "DELETE_APP",
        }
    }
}

/// The longest reason a staff member may give, in characters.
pub const REASON_MAX: usize = 500;

/// What a staff request brings to the record besides who sent it: the address it came from and the
/// reason the staff member gave.
#[derive(Clone, Copy, Debug, Default)]
pub struct Note<'a> {
    pub ip: Option<&'a str>,
    pub reason: Option<&'a str>,
}

impl Note<'_> {
    /// An action on a member (suspending them, changing their role, removing their words) must say
    /// why, so the record can be reviewed later; asked before anything is written.
    pub fn required_reason(&self) -> AppResult<String> {
        match self.reason {
            Some(reason) => validate::text("input.reason", reason, 1, REASON_MAX, Lines::Multi),
            None => Err(AppError::bad_input("input.reason", "is required: staff actions on a member say why")),
        }
    }

    /// A reason that may be left out (approving a verification), checked like a required one.
    pub fn optional_reason(&self) -> AppResult<Option<String>> {
        self.reason.map(|_| self.required_reason()).transpose()
    }
}

/// One line of the record.
pub struct Entry {
    pub action: Action,
    /// Whose data or account it concerned.
    pub subject: Option<i64>,
    /// What was read or decided, as `Kind:id`.
    pub target: String,
    pub reason: Option<String>,
}

impl Entry {
    /// A read, or an action with no reason to give.
    pub fn new(action: Action, subject: Option<i64>, target: String) -> Entry {
        Entry { action, subject, target, reason: None }
    }

    pub fn because(self, reason: Option<String>) -> Entry {
        Entry { reason, ..self }
    }
}

fn row(viewer: &Viewer, ip: Option<&str>, entry: Entry) -> audit_log::ActiveModel {
    audit_log::ActiveModel {
        actor_id: Set(viewer.user_id),
        actor_role: Set(viewer.role.as_str().into()),
        action: Set(entry.action.as_str().into()),
        subject_user_id: Set(entry.subject),
        target: Set(entry.target.chars().take(128).collect()),
        ip: Set(ip.map(|s| s.chars().take(64).collect())),
        reason: Set(entry.reason.map(|r| r.chars().take(REASON_MAX).collect())),
        at: Set(Utc::now()),
        ..Default::default()
    }
}

pub async fn record(db: &impl ConnectionTrait, viewer: &Viewer, ip: Option<&str>, entry: Entry) -> AppResult<()> {
    audit_log::Entity::insert(row(viewer, ip, entry)).exec_without_returning(db).await?;
    Ok(())
}

/// One entry per item read, in one statement.
pub async fn record_many(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    ip: Option<&str>,
    entries: Vec<Entry>,
) -> AppResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    // In chunks: one statement carries 8 parameters a row and PostgreSQL takes 65,535 at most
    // (rejecting an app with thousands of grants records a line for each).
    let mut rows = entries.into_iter().map(|entry| row(viewer, ip, entry)).peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(1000).collect();
        audit_log::Entity::insert_many(chunk).exec_without_returning(db).await?;
    }
    Ok(())
}

/// The log for ADMINs, newest first, optionally about one member.
pub async fn list(
    db: &DatabaseConnection,
    viewer: &Viewer,
    subject: Option<i64>,
    args: &PageArgs,
) -> AppResult<Page<audit_log::Model>> {
    authz::require(Some(viewer), authz::Action::ReadAuditLog)?;
    let mut q = audit_log::Entity::find().order_by_desc(audit_log::Column::Id).limit(args.fetch_limit());
    if let Some(s) = subject {
        q = q.filter(audit_log::Column::SubjectUserId.eq(s));
    }
    if let Some(after) = args.after_id() {
        q = q.filter(audit_log::Column::Id.lt(after));
    }
    let rows = q.all(db).await?;
    Ok(Page::from_rows(args, rows, |r| Cursor::Id(r.id)))
}
