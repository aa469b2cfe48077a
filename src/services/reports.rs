//! Reports and the moderation queue.
//!
//! A member reports something they can see: a post, a comment, a private message of one of their own
//! conversations, a member or a live room. Reports about the same target form one case; moderators
//! see the open cases with their counts and reasons, and settle a case with one action that settles
//! all its open reports: dismiss, hide (kept for an appeal, shown to nobody), delete, or ban the member
//! responsible for a number of days. Every action goes through the authorization policy and the staff
//! audit log, and each reporter is told the outcome by a notification.
//!
//! A private message reaches a moderator only as the target of a report its reporter filed: nothing
//! here reads a conversation, and `Message.conversation` stays with the participants.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use entity::{comments, live_streams, messages, reports, users};
use sea_orm::sea_query::{Alias, Asterisk, Expr, ExprTrait as _, Order, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Set, TransactionTrait,
};

use crate::auth::Viewer;
use crate::authz::{self, Action};
use crate::error::{AppError, AppResult};
use crate::pubsub::{Broker, Outbox};
use crate::services::notifications::{self, NewNotification};
use crate::services::page::{Cursor, Page, PageArgs};
use crate::services::validate::{self, Lines};
use crate::services::{accounts, audit, comments as comment_svc, live, messaging, posts as post_svc, streams};

/// The longest note a reporter may add, in characters.
pub const NOTE_MAX: usize = 1000;
/// The longest suspension a report can lead to; longer needs `banUser` without days.
pub const BAN_DAYS_MAX: i64 = 3650;
/// Reports listed under one case in the queue: enough to read the notes; the count has them all.
pub const REPORTS_PER_CASE: usize = 20;

names!(
    /// What a report is about.
    TargetKind { Post = "POST", Comment = "COMMENT", Message = "MESSAGE", User = "USER", LiveStream = "LIVE_STREAM" }
);
names!(Reason {
    Spam = "SPAM",
    Harassment = "HARASSMENT",
    Fraud = "FRAUD",
    Illegal = "ILLEGAL",
    Inappropriate = "INAPPROPRIATE",
    Other = "OTHER",
});
names!(Status { Open = "OPEN", Dismissed = "DISMISSED", Actioned = "ACTIONED" });
names!(
    /// What a moderator did with a case.
    Outcome { Dismiss = "DISMISS", Hide = "HIDE", Delete = "DELETE", Ban = "BAN" }
);

/// A report's target: its kind and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    pub kind: TargetKind,
    pub id: i64,
}

impl Target {
    fn filter(self) -> Condition {
        Condition::all()
            .add(reports::Column::TargetKind.eq(self.kind.as_str()))
            .add(reports::Column::TargetId.eq(self.id))
    }

    /// As the audit log names things.
    fn audit_name(self) -> String {
        let kind = match self.kind {
            TargetKind::Post => "Post",
            TargetKind::Comment => "Comment",
            TargetKind::Message => "Message",
            TargetKind::User => "User",
            TargetKind::LiveStream => "LiveStream",
        };
        format!("{kind}:{}", self.id)
    }
}

/// Files a report, or returns the reporter's open report on the same target (a double tap files
/// once). The reporter must be able to see the target, and cannot report themselves or their own
/// words. The caller applies the per-member rate limit.
pub async fn report(
    db: &DatabaseConnection,
    viewer: &Viewer,
    target: Target,
    reason: Reason,
    note: Option<&str>,
) -> AppResult<reports::Model> {
    let note =
        note.map(|n| validate::text("input.note", n, 0, NOTE_MAX, Lines::Multi)).transpose()?.filter(|n| !n.is_empty());
    let responsible = responsible_member(db, Some(viewer), target).await?;
    if responsible == viewer.user_id {
        return Err(AppError::bad_input("input.target", "you cannot report yourself or what you wrote"));
    }
    let open = || {
        reports::Entity::find()
            .filter(target.filter())
            .filter(reports::Column::ReporterId.eq(viewer.user_id))
            .filter(reports::Column::Status.eq(Status::Open.as_str()))
            .one(db)
    };
    if let Some(open) = open().await? {
        return Ok(open);
    }
    let inserted = reports::ActiveModel {
        reporter_id: Set(viewer.user_id),
        target_kind: Set(target.kind.as_str().into()),
        target_id: Set(target.id),
        reason: Set(reason.as_str().into()),
        note: Set(note),
        status: Set(Status::Open.as_str().into()),
        outcome: Set(None),
        handled_by: Set(None),
        handled_at: Set(None),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await;
    match inserted {
        Ok(report) => Ok(report),
        // A second tap raced this one past the read: one open report per member and target
        // (the `reports_open_once` index), so answer with it.
        Err(err) if matches!(err.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => {
            open().await?.ok_or_else(|| AppError::internal("an open report clashed and then vanished"))
        }
        Err(err) => Err(err.into()),
    }
}

/// The member who answers for a target (its author, sender, host, or the member themselves), once
/// the target is found visible: to `reporter` when one is given (a message only inside its own
/// conversation), to staff otherwise. NOT_FOUND when it is gone or out of sight.
async fn responsible_member(db: &DatabaseConnection, reporter: Option<&Viewer>, target: Target) -> AppResult<i64> {
    let id = target.id;
    match target.kind {
        // Staff still settle a case whose post or comment its author took down meanwhile.
        TargetKind::Post => match reporter {
            Some(_) => Ok(post_svc::live(db, id).await?.author_id),
            None => entity::posts::Entity::find_by_id(id)
                .one(db)
                .await?
                .map(|p| p.author_id)
                .ok_or(AppError::NotFound("post")),
        },
        TargetKind::Comment => comments::Entity::find_by_id(id)
            .one(db)
            .await?
            .filter(|c| reporter.is_none() || c.deleted_at.is_none())
            .map(|c| c.author_id)
            .ok_or(AppError::NotFound("comment")),
        TargetKind::Message => {
            let message = messages::Entity::find_by_id(id).one(db).await?.ok_or(AppError::NotFound("message"))?;
            if let Some(reporter) = reporter {
                // Only a participant can put a message in front of a moderator.
                messaging::conversation_for(db, reporter, message.conversation_id)
                    .await
                    .map_err(|_| AppError::NotFound("message"))?;
            }
            Ok(message.sender_id)
        }
        TargetKind::User => users::Entity::find_by_id(id)
            .one(db)
            .await?
            .filter(|u| reporter.is_none() || u.deleted_at.is_none())
            .map(|u| u.id)
            .ok_or(AppError::NotFound("user")),
        TargetKind::LiveStream => {
            live::get(db, id).await?.map(|s: live_streams::Model| s.host_id).ok_or(AppError::NotFound("live stream"))
        }
    }
}

/// One case of the queue: the reports with one status about one target.
#[derive(Debug, Clone, FromQueryResult)]
pub struct CaseRow {
    pub target_kind: String,
    pub target_id: i64,
    pub reports: i64,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    /// The newest report's id: the queue's order and cursor.
    pub last_id: i64,
}

/// A case with what the queue shows of it.
#[derive(Debug, Clone)]
pub struct Case {
    pub target: Target,
    pub status: Status,
    /// The counts and times, as the grouping read them.
    pub row: CaseRow,
    /// How many reports gave each reason, most first.
    pub reasons: Vec<(Reason, i64)>,
    /// The newest [`REPORTS_PER_CASE`] reports, newest first.
    pub latest: Vec<reports::Model>,
    /// A reported live room as it is now (rooms have no loader; the other targets load through
    /// the request's loaders).
    pub stream: Option<live_streams::Model>,
}

/// Cases with `status`, the most recently reported first, for moderators. Three statements a page
/// (the cases, their reasons, their newest reports), a fourth when live rooms are among them.
pub async fn queue(db: &DatabaseConnection, viewer: &Viewer, status: Status, page: &PageArgs) -> AppResult<Page<Case>> {
    authz::require(Some(viewer), Action::HandleReports)?;
    let last_id = Expr::col(reports::Column::Id).max();
    let mut query = reports::Entity::find()
        .select_only()
        .column(reports::Column::TargetKind)
        .column(reports::Column::TargetId)
        .column_as(Expr::col(reports::Column::Id).count(), "reports")
        .column_as(Expr::col(reports::Column::CreatedAt).min(), "first_at")
        .column_as(Expr::col(reports::Column::CreatedAt).max(), "last_at")
        .column_as(last_id.clone(), "last_id")
        .filter(reports::Column::Status.eq(status.as_str()))
        .group_by(reports::Column::TargetKind)
        .group_by(reports::Column::TargetId);
    if let Some(after) = page.after_id() {
        query = query.having(last_id.clone().lt(after));
    }
    let rows = query.order_by_desc(last_id).limit(page.fetch_limit()).into_model::<CaseRow>().all(db).await?;
    let page = Page::from_rows(page, rows, |c| Cursor::Id(c.last_id));
    let targets = page
        .items
        .iter()
        .map(|(_, c)| Ok(Target { kind: TargetKind::parse(&c.target_kind)?, id: c.target_id }))
        .collect::<AppResult<Vec<_>>>()?;
    let of_page = targets.iter().fold(Condition::any(), |any, t| any.add(t.filter()));
    let in_status = reports::Column::Status.eq(status.as_str());

    #[derive(FromQueryResult)]
    struct ReasonRow {
        target_kind: String,
        target_id: i64,
        reason: String,
        n: i64,
    }
    let mut reasons: HashMap<Target, Vec<(Reason, i64)>> = HashMap::new();
    let mut latest: HashMap<Target, Vec<reports::Model>> = HashMap::new();
    let streams: Vec<i64> = targets.iter().filter(|t| t.kind == TargetKind::LiveStream).map(|t| t.id).collect();
    let mut streams: HashMap<i64, live_streams::Model> = if streams.is_empty() {
        HashMap::new()
    } else {
        let rows = live_streams::Entity::find().filter(live_streams::Column::Id.is_in(streams)).all(db).await?;
        rows.into_iter().map(|s| (s.id, s)).collect()
    };
    if !targets.is_empty() {
        let reason_rows = reports::Entity::find()
            .select_only()
            .column(reports::Column::TargetKind)
            .column(reports::Column::TargetId)
            .column(reports::Column::Reason)
            .column_as(Expr::col(reports::Column::Id).count(), "n")
            .filter(in_status.clone())
            .filter(of_page.clone())
            .group_by(reports::Column::TargetKind)
            .group_by(reports::Column::TargetId)
            .group_by(reports::Column::Reason)
            .into_model::<ReasonRow>()
            .all(db)
            .await?;
        for r in reason_rows {
            let target = Target { kind: TargetKind::parse(&r.target_kind)?, id: r.target_id };
            reasons.entry(target).or_default().push((Reason::parse(&r.reason)?, r.n));
        }
        // The newest REPORTS_PER_CASE of each case, numbered inside the database: a case with
        // thousands of reports still reads twenty rows.
        let numbered = reports::Entity::find()
            .column_as(Expr::cust("ROW_NUMBER() OVER (PARTITION BY target_kind, target_id ORDER BY id DESC)"), "rn")
            .filter(in_status)
            .filter(of_page)
            .into_query();
        let newest = Query::select()
            .expr(Expr::col(Asterisk))
            .from_subquery(numbered, Alias::new("numbered"))
            .and_where(Expr::col(Alias::new("rn")).lte(REPORTS_PER_CASE as i64))
            .order_by(reports::Column::Id, Order::Desc)
            .to_owned();
        let backend = db.get_database_backend();
        let rows = reports::Model::find_by_statement(backend.build(&newest)).all(db).await?;
        for r in rows {
            let target = Target { kind: TargetKind::parse(&r.target_kind)?, id: r.target_id };
            latest.entry(target).or_default().push(r);
        }
    }
    page.try_map(|c| {
        let target = Target { kind: TargetKind::parse(&c.target_kind)?, id: c.target_id };
        let mut reasons = reasons.remove(&target).unwrap_or_default();
        reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.as_str().cmp(b.0.as_str())));
        Ok(Case {
            target,
            status,
            row: c,
            reasons,
            latest: latest.remove(&target).unwrap_or_default(),
            stream: if target.kind == TargetKind::LiveStream { streams.remove(&target.id) } else { None },
        })
    })
}

/// What settling a case did.
pub struct Resolved {
    pub reports: u64,
    pub outcome: Outcome,
    /// The suspended member, when there was a ban.
    pub banned: Option<i64>,
}

/// Settles every open report on `target` with `outcome`. `ban_days` suspends the member responsible
/// for that many days: required with BAN, allowed with HIDE and DELETE.
///
/// The open reports are claimed first, in one statement, so of two moderators acting at once only
/// one acts and the other is told NOT_FOUND. The action then runs through the same services and
/// policy rules as the direct mutations; if it fails, the claim is given back. Last, one transaction
/// audits the decision and notifies the reporters of the claimed reports (reports filed meanwhile
/// stay open, as a new case).
pub async fn resolve(
    db: &DatabaseConnection,
    broker: &Broker,
    viewer: &Viewer,
    note: audit::Note<'_>,
    target: Target,
    outcome: Outcome,
    ban_days: Option<i64>,
) -> AppResult<Resolved> {
    authz::require(Some(viewer), Action::HandleReports)?;
    let reason = note.required_reason()?;
    let ban_days = match (outcome, ban_days) {
        (Outcome::Ban, None) => return Err(AppError::bad_input("input.banDays", "a ban says for how many days")),
        (Outcome::Dismiss, Some(_)) => {
            return Err(AppError::bad_input("input.banDays", "a dismissed case bans nobody"));
        }
        (_, Some(d)) if !(1..=BAN_DAYS_MAX).contains(&d) => {
            return Err(AppError::bad_input("input.banDays", format!("1 to {BAN_DAYS_MAX} days")));
        }
        (_, days) => days,
    };
    let applies = match outcome {
        Outcome::Dismiss | Outcome::Ban => true,
        Outcome::Hide => matches!(target.kind, TargetKind::Post | TargetKind::Comment),
        Outcome::Delete => matches!(target.kind, TargetKind::Post | TargetKind::Comment | TargetKind::LiveStream),
    };
    if !applies {
        return Err(AppError::bad_input(
            "input.action",
            "hide takes posts and comments; delete takes posts, comments and live rooms (it ends the room); \
             for messages and members, ban the member",
        ));
    }
    let responsible = responsible_member(db, None, target).await?;
    if responsible == viewer.user_id {
        return Err(AppError::Forbidden("another moderator settles reports about you or your words"));
    }
    let status = if outcome == Outcome::Dismiss { Status::Dismissed } else { Status::Actioned };
    let claimed = reports::Entity::update_many()
        .col_expr(reports::Column::Status, Expr::value(status.as_str()))
        .col_expr(reports::Column::Outcome, Expr::value(outcome.as_str()))
        .col_expr(reports::Column::HandledBy, Expr::value(viewer.user_id))
        .col_expr(reports::Column::HandledAt, Expr::value(Utc::now()))
        .filter(target.filter())
        .filter(reports::Column::Status.eq(Status::Open.as_str()))
        .exec_with_returning(db)
        .await?;
    if claimed.is_empty() {
        return Err(AppError::NotFound("open report"));
    }
    let ban = ban_days.map(|d| (responsible, d));
    // A DISMISS is no finding about anyone: the record names no member (the audit lines about a
    // member are in their data export).
    let subject = (outcome != Outcome::Dismiss).then_some(responsible);
    let done = async {
        act(db, broker, viewer, note, target, outcome, ban).await?;
        close(db, broker, viewer, note.ip, target, outcome, subject, &reason, &claimed).await
    }
    .await;
    if let Err(err) = done {
        // Whatever part failed, the case is open again: a retry repeats the (idempotent) action.
        reopen(db, &claimed).await;
        return Err(err);
    }
    Ok(Resolved { reports: claimed.len() as u64, outcome, banned: ban.map(|(member, _)| member) })
}

/// Audits a settled case and tells the reporters of the claimed reports, in one transaction.
#[allow(clippy::too_many_arguments)]
async fn close(
    db: &DatabaseConnection,
    broker: &Broker,
    viewer: &Viewer,
    ip: Option<&str>,
    target: Target,
    outcome: Outcome,
    subject: Option<i64>,
    reason: &str,
    claimed: &[reports::Model],
) -> AppResult<()> {
    let mut reporters: Vec<i64> = claimed.iter().map(|r| r.reporter_id).collect();
    reporters.sort_unstable();
    reporters.dedup();
    let txn = db.begin().await?;
    // All reporters' stream locks at once, in id order, as every other writer takes them.
    streams::lock_users(&txn, &reporters).await?;
    let entry = audit::Entry::new(audit::Action::ResolveReports, subject, target.audit_name())
        .because(Some(format!("{}: {reason}", outcome.as_str())));
    audit::record(&txn, viewer, ip, entry).await?;
    let mut outbox = Outbox::default();
    for &reporter in &reporters {
        let n = NewNotification {
            user_id: reporter,
            kind: notifications::Kind::ReportResolved,
            actor_id: None,
            post_id: None,
            comment_id: None,
            body: Some(outcome_text(outcome).into()),
        };
        notifications::record(&txn, n, &mut outbox).await?;
    }
    txn.commit().await?;
    broker.publish_all(outbox).await;
    Ok(())
}

/// Gives claimed reports back to the queue after a failed settlement. A reporter who filed again
/// meanwhile already has an open report on the target (one per member: `reports_open_once`); that
/// one stands and the claimed one goes.
async fn reopen(db: &DatabaseConnection, claimed: &[reports::Model]) {
    for r in claimed {
        let reopened = reports::Entity::update_many()
            .col_expr(reports::Column::Status, Expr::value(Status::Open.as_str()))
            .col_expr(reports::Column::Outcome, Expr::value(Option::<String>::None))
            .col_expr(reports::Column::HandledBy, Expr::value(Option::<i64>::None))
            .col_expr(reports::Column::HandledAt, Expr::value(Option::<DateTime<Utc>>::None))
            .filter(reports::Column::Id.eq(r.id))
            .exec(db)
            .await;
        let result = match reopened {
            Err(err) if matches!(err.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => {
                reports::Entity::delete_by_id(r.id).exec(db).await.map(|_| ())
            }
            other => other.map(|_| ()),
        };
        if let Err(err) = result {
            tracing::error!(%err, report = r.id, "could not give a report back to the queue after a failed settlement");
        }
    }
}

/// The action of a settled case, with the ban (member, days) if any. What is already taken down
/// counts as done.
async fn act(
    db: &DatabaseConnection,
    broker: &Broker,
    viewer: &Viewer,
    note: audit::Note<'_>,
    target: Target,
    outcome: Outcome,
    ban: Option<(i64, i64)>,
) -> AppResult<()> {
    let gone = |r: AppResult<()>| match r {
        Err(AppError::NotFound(_)) => Ok(()),
        other => other,
    };
    match (outcome, target.kind) {
        (Outcome::Hide, TargetKind::Post) => post_svc::hide(db, broker, viewer, note, target.id).await?,
        (Outcome::Hide, _) => comment_svc::hide(db, broker, viewer, note, target.id).await?,
        (Outcome::Delete, TargetKind::Post) => {
            gone(post_svc::delete(db, broker, viewer, note, target.id).await.map(|_| ()))?;
        }
        (Outcome::Delete, TargetKind::Comment) => {
            comment_svc::delete(db, broker, viewer, note, target.id).await?;
        }
        (Outcome::Delete, _) => {
            live::end(db, broker, viewer, target.id).await?;
        }
        (Outcome::Dismiss | Outcome::Ban, _) => {}
    }
    if let Some((member, days)) = ban {
        let until = Utc::now() + Duration::days(days);
        accounts::ban(db, broker, viewer, note, member, true, Some(until)).await?;
    }
    Ok(())
}

/// What a reporter is told. It names no one: a report's outcome is not a public record.
fn outcome_text(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Dismiss => {
            "Thank you for your report. A moderator reviewed it and found no breach of the community rules."
        }
        Outcome::Hide => "Thank you for your report. A moderator hid what you reported.",
        Outcome::Delete => "Thank you for your report. A moderator removed what you reported.",
        Outcome::Ban => "Thank you for your report. A moderator suspended the member responsible.",
    }
}

/// Whether a report on this target is open (what lets moderators see a message's files).
pub async fn is_reported<C: sea_orm::ConnectionTrait>(db: &C, kind: TargetKind, id: i64) -> AppResult<bool> {
    let found = reports::Entity::find()
        .select_only()
        .column(reports::Column::Id)
        .filter(Target { kind, id }.filter())
        .filter(reports::Column::Status.eq(Status::Open.as_str()))
        .into_tuple::<i64>()
        .one(db)
        .await?;
    Ok(found.is_some())
}

/// The reports a member filed, newest first.
pub async fn mine(db: &DatabaseConnection, viewer: &Viewer, page: &PageArgs) -> AppResult<Page<reports::Model>> {
    let mut query = reports::Entity::find().filter(reports::Column::ReporterId.eq(viewer.user_id));
    if let Some(after) = page.after_id() {
        query = query.filter(reports::Column::Id.lt(after));
    }
    let rows = query.order_by_desc(reports::Column::Id).limit(page.fetch_limit()).all(db).await?;
    Ok(Page::from_rows(page, rows, |r| Cursor::Id(r.id)))
}

/// Erasing an account: the reports the member filed, and the hidden words they wrote.
pub async fn erase_member<C: sea_orm::ConnectionTrait>(db: &C, user_id: i64) -> AppResult<()> {
    reports::Entity::delete_many().filter(reports::Column::ReporterId.eq(user_id)).exec(db).await?;
    entity::hidden_content::Entity::delete_many()
        .filter(entity::hidden_content::Column::AuthorId.eq(user_id))
        .exec(db)
        .await?;
    Ok(())
}

/// For the data export: the member's reports.
pub async fn of_member(db: &DatabaseConnection, user_id: i64) -> AppResult<Vec<reports::Model>> {
    Ok(reports::Entity::find()
        .filter(reports::Column::ReporterId.eq(user_id))
        .order_by_asc(reports::Column::Id)
        .all(db)
        .await?)
}

/// Keeps the words of a post or comment a moderator hid, inside the transaction that takes it down.
pub async fn keep_hidden<C: sea_orm::ConnectionTrait>(
    txn: &C,
    viewer: &Viewer,
    kind: &str,
    id: i64,
    author_id: i64,
    content: serde_json::Value,
) -> AppResult<()> {
    entity::hidden_content::ActiveModel {
        target_kind: Set(kind.into()),
        target_id: Set(id),
        author_id: Set(author_id),
        content: Set(content),
        hidden_by: Set(viewer.user_id),
        hidden_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    Ok(())
}
