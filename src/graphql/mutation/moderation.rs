//! Reports and their settlement.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

use crate::error::AppError;
use crate::graphql::ids::{self, Kind};
use crate::graphql::types::moderation::{ModerationAction, Report, ReportReason, target_of};
use crate::graphql::{rate_limit, request_info, require_viewer, state};
use crate::ratelimit::Limit;
use crate::services::audit::Note;
use crate::services::reports::{self, Target};

/// The target of a report from its global id.
fn target(id: &ID) -> Result<Target, AppError> {
    target_of(id)
        .ok_or_else(|| AppError::bad_input("input.target", "is not a Post, Comment, Message, User or LiveStream id"))
}

#[derive(InputObject)]
pub struct ReportContentInput {
    /// The id of a post, comment, private message (of one of your conversations), member or live room.
    target: ID,
    reason: ReportReason,
    /// What a moderator should know, up to 1,000 characters.
    note: Option<String>,
}

#[derive(SimpleObject)]
pub struct ReportContentPayload {
    report: Report,
}

#[derive(InputObject)]
pub struct ResolveReportsInput {
    /// The reported object's id: `ReportCase.targetId`. Every open report on it is settled.
    target: ID,
    action: ModerationAction,
    /// With BAN (required), HIDE or DELETE: suspend the member responsible for this many days (1 to
    /// 3650).
    ban_days: Option<i32>,
    /// Why, for the staff audit log (1 to 500 characters). The reporters are told the outcome, not
    /// this.
    reason: String,
}

#[derive(SimpleObject)]
pub struct ResolveReportsPayload {
    /// How many open reports were settled.
    reports_resolved: i32,
    action: ModerationAction,
    /// The suspended member's id, when there was a ban.
    banned_user_id: Option<ID>,
}

#[derive(Default)]
pub struct ModerationMutation;

#[Object]
impl ModerationMutation {
    /// Reports something that breaks the community rules to the moderators. Reporting the same target
    /// again while your report is open returns that report. Rate-limited per member
    /// (`RATE_LIMIT_REPORTS_PER_HOUR`).
    async fn report_content(
        &self,
        ctx: &Context<'_>,
        input: ReportContentInput,
    ) -> async_graphql::Result<ReportContentPayload> {
        let viewer = require_viewer(ctx)?;
        let target = target(&input.target)?;
        rate_limit(ctx, Limit::Reports).await?;
        let st = state(ctx)?;
        let report = reports::report(&st.db, &viewer, target, input.reason.into(), input.note.as_deref()).await?;
        Ok(ReportContentPayload { report: Report(report) })
    }

    /// MODERATOR, ADMIN: settles every open report on a target with one action, audited; each reporter
    /// is notified of the outcome (REPORT_RESOLVED).
    async fn resolve_reports(
        &self,
        ctx: &Context<'_>,
        input: ResolveReportsInput,
    ) -> async_graphql::Result<ResolveReportsPayload> {
        let viewer = require_viewer(ctx)?;
        let target = target(&input.target)?;
        let st = state(ctx)?;
        let (db, broker) = (st.db.clone(), st.broker.clone());
        let ip = request_info(ctx).and_then(|i| i.ip.clone());
        let (reason, action, days) = (input.reason, input.action.into(), input.ban_days.map(i64::from));
        // Settling claims the reports, acts, then records: it runs to the end on its own task, so a
        // client that goes away or the request timeout cannot stop it half-way.
        let settling = tokio::spawn(async move {
            let note = Note { ip: ip.as_deref(), reason: Some(&reason) };
            reports::resolve(&db, &broker, &viewer, note, target, action, days).await
        });
        let done = settling.await.map_err(AppError::internal)??;
        Ok(ResolveReportsPayload {
            reports_resolved: i32::try_from(done.reports).unwrap_or(i32::MAX),
            action: done.outcome.into(),
            banned_user_id: done.banned.map(|id| ids::encode(Kind::User, id)),
        })
    }
}
