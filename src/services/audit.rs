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
use crate::error::AppResult;
use crate::services::page::{Cursor, Page, PageArgs};

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
        }
    }
}

fn row(
    viewer: &Viewer,
    ip: Option<&str>,
    action: Action,
    subject: Option<i64>,
    target: String,
) -> audit_log::ActiveModel {
    audit_log::ActiveModel {
        actor_id: Set(viewer.user_id),
        actor_role: Set(viewer.role.as_str().into()),
        action: Set(action.as_str().into()),
        subject_user_id: Set(subject),
        target: Set(target.chars().take(128).collect()),
        ip: Set(ip.map(|s| s.chars().take(64).collect())),
        at: Set(Utc::now()),
        ..Default::default()
    }
}

pub async fn record(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    ip: Option<&str>,
    action: Action,
    subject: Option<i64>,
    target: String,
) -> AppResult<()> {
    audit_log::Entity::insert(row(viewer, ip, action, subject, target)).exec_without_returning(db).await?;
    Ok(())
}

/// One entry per item read, in one statement.
pub async fn record_many(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    ip: Option<&str>,
    reads: Vec<(Action, Option<i64>, String)>,
) -> AppResult<()> {
    if reads.is_empty() {
        return Ok(());
    }
    let rows = reads.into_iter().map(|(action, subject, target)| row(viewer, ip, action, subject, target));
    audit_log::Entity::insert_many(rows).exec_without_returning(db).await?;
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
