//! Reports and the moderation queue.

use async_graphql::{Context, Enum, ID, Object, SimpleObject, Union};
use chrono::{DateTime, Utc};
use entity::reports;

use super::{Comment, LiveStream, Message, Post, User, load_one};
use crate::graphql::ids::{self, Kind};
use crate::graphql::loaders;
use crate::services::reports::{self as svc, Case, TargetKind};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::services::reports::Reason")]
pub enum ReportReason {
    /// Advertising, repeated posts, link farms.
    Spam,
    /// Insults, threats, stalking.
    Harassment,
    /// Scams, fake suppliers or buyers, payment fraud.
    Fraud,
    /// Against the law: counterfeit goods, sanctioned trade, and the like.
    Illegal,
    /// Sexual, violent or otherwise against the community rules.
    Inappropriate,
    /// Anything else: say what in `note`.
    Other,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::services::reports::Status")]
pub enum ReportStatus {
    /// Waiting for a moderator.
    Open,
    /// A moderator found no breach of the rules.
    Dismissed,
    /// A moderator acted: see `outcome`.
    Actioned,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::services::reports::Outcome")]
pub enum ModerationAction {
    /// No breach: the reports are closed and nothing changes.
    Dismiss,
    /// A post or comment is taken down like a deleted one; its words are kept for an appeal.
    Hide,
    /// A post or comment is deleted; a live room is ended.
    Delete,
    /// The member responsible (author, sender, host, or the reported member) is suspended for
    /// `banDays` days.
    Ban,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::services::reports::TargetKind")]
pub enum ReportTargetKind {
    Post,
    Comment,
    Message,
    User,
    LiveStream,
}

/// What a report is about. Null in the queue when it is gone (deleted, erased).
#[derive(Union)]
pub enum ReportTarget {
    Post(Post),
    Comment(Comment),
    Message(Message),
    User(User),
    LiveStream(LiveStream),
}

/// A member's report. The reporter sees their own; moderators see those in the queue.
pub struct Report(pub reports::Model);

#[Object]
impl Report {
    async fn id(&self) -> ID {
        ids::encode(Kind::Report, self.0.id)
    }

    async fn reason(&self) -> async_graphql::Result<ReportReason> {
        Ok(svc::Reason::parse(&self.0.reason)?.into())
    }

    /// What the reporter added in their own words.
    async fn note(&self) -> Option<&str> {
        self.0.note.as_deref()
    }

    async fn status(&self) -> async_graphql::Result<ReportStatus> {
        Ok(svc::Status::parse(&self.0.status)?.into())
    }

    /// What the moderator did; null while open.
    async fn outcome(&self) -> async_graphql::Result<Option<ModerationAction>> {
        Ok(self.0.outcome.as_deref().map(svc::Outcome::parse).transpose()?.map(Into::into))
    }

    async fn target_kind(&self) -> async_graphql::Result<ReportTargetKind> {
        Ok(TargetKind::parse(&self.0.target_kind)?.into())
    }

    /// The reported object's global id.
    async fn target_id(&self) -> async_graphql::Result<ID> {
        Ok(target_id(TargetKind::parse(&self.0.target_kind)?, self.0.target_id))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn handled_at(&self) -> Option<DateTime<Utc>> {
        self.0.handled_at
    }
}

/// The global id kind of each reportable kind: the one table both directions read.
fn id_kind(kind: TargetKind) -> Kind {
    match kind {
        TargetKind::Post => Kind::Post,
        TargetKind::Comment => Kind::Comment,
        TargetKind::Message => Kind::Message,
        TargetKind::User => Kind::User,
        TargetKind::LiveStream => Kind::LiveStream,
    }
}

fn target_id(kind: TargetKind, id: i64) -> ID {
    ids::encode(id_kind(kind), id)
}

/// The report target a global id names, if it names a reportable kind.
pub fn target_of(id: &ID) -> Option<svc::Target> {
    let (kind, id) = ids::decode_any(id)?;
    TargetKind::ALL.iter().copied().find(|t| id_kind(*t) == kind).map(|kind| svc::Target { kind, id })
}

#[derive(SimpleObject)]
pub struct ReasonCount {
    reason: ReportReason,
    count: i32,
}

/// The reports with one status about one target: what a moderator settles with one action.
pub struct ReportCase(pub Case);

#[Object]
impl ReportCase {
    /// The reported object's global id: what `resolveReports` takes.
    async fn target_id(&self) -> ID {
        target_id(self.0.target.kind, self.0.target.id)
    }

    async fn target_kind(&self) -> ReportTargetKind {
        self.0.target.kind.into()
    }

    /// The reported object as it is now; null once it is gone. A private message shows here only
    /// because a member of its conversation reported it; its `conversation` stays closed.
    async fn target(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<ReportTarget>> {
        let l = loaders(ctx)?;
        let id = self.0.target.id;
        Ok(match self.0.target.kind {
            TargetKind::Post => load_one(&l.posts, id).await?.map(|p| ReportTarget::Post(Post(p))),
            TargetKind::Comment => load_one(&l.comments, id).await?.map(|c| ReportTarget::Comment(Comment(c))),
            TargetKind::Message => load_one(&l.messages, id).await?.map(|m| ReportTarget::Message(Message(m))),
            TargetKind::User => load_one(&l.users, id).await?.map(|u| ReportTarget::User(User(u))),
            TargetKind::LiveStream => self.0.stream.clone().map(|s| ReportTarget::LiveStream(LiveStream(s))),
        })
    }

    async fn status(&self) -> ReportStatus {
        self.0.status.into()
    }

    /// All the reports in this case.
    async fn report_count(&self) -> i32 {
        i32::try_from(self.0.row.reports).unwrap_or(i32::MAX)
    }

    /// How many reports gave each reason, most first.
    async fn reasons(&self) -> Vec<ReasonCount> {
        let count = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
        self.0.reasons.iter().map(|&(reason, n)| ReasonCount { reason: reason.into(), count: count(n) }).collect()
    }

    /// The newest reports (up to 20), newest first, with their notes.
    async fn reports(&self) -> Vec<Report> {
        self.0.latest.iter().cloned().map(Report).collect()
    }

    async fn first_reported_at(&self) -> DateTime<Utc> {
        self.0.row.first_at
    }

    async fn last_reported_at(&self) -> DateTime<Utc> {
        self.0.row.last_at
    }
}
