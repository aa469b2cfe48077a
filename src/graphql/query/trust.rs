//! Staff reads of trust data: the verification queue (REVIEWER), the audit log and visitor
//! statistics (ADMIN), the moderation queue (MODERATOR).

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, Object};

use crate::error::AppError;
use crate::graphql::ids::{self, Kind};
use crate::graphql::types::connection;
use crate::graphql::types::moderation::{ReportCase, ReportStatus};
use crate::graphql::types::notification::NoticeBroadcast;
use crate::graphql::types::trust::{AuditEntry, DailyVisitors, IdentityVerification, NameAudit, VerificationStatus};
use crate::graphql::{loaders, page_args, request_info, require_viewer, state};
use crate::services::activity::{self, Target};
use crate::services::{audit, identity};

#[derive(Default)]
pub struct TrustQuery;

#[Object]
impl TrustQuery {
    /// REVIEWER or ADMIN: verifications awaiting review, oldest first. Decided ones only when
    /// `status` asks for them (APPROVED or REJECTED). Every verification returned is written to the
    /// audit log as read by the caller.
    #[graphql(complexity = "crate::graphql::types::list_cost(first, child_complexity)")]
    async fn identity_verifications(
        &self,
        ctx: &Context<'_>,
        status: Option<VerificationStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, IdentityVerification>> {
        let viewer = require_viewer(ctx)?;
        let args = page_args(ctx, first, after.as_deref())?;
        let ip = request_info(ctx).and_then(|i| i.ip.as_deref());
        let look = ctx.look_ahead();
        let reads_names = look.field("nodes").field("realName").exists()
            || look.field("edges").field("node").field("realName").exists();
        let page = identity::queue(&state(ctx)?.db, &viewer, ip, status.map(Into::into), reads_names, &args).await?;
        // One statement for the members of the whole page, before the items ask one by one.
        loaders(ctx)?.users.load_many(page.items.iter().map(|(_, v)| v.user_id)).await?;
        let audit = if reads_names { NameAudit::Written } else { NameAudit::Pending };
        Ok(connection(page, |row| IdentityVerification(row, audit)))
    }

    /// ADMIN: a security notice broadcast and how far its delivery got.
    async fn notice_broadcast(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<NoticeBroadcast> {
        let viewer = require_viewer(ctx)?;
        let id = ids::decode(Kind::NoticeBroadcast, &id, "id")?;
        let row = crate::services::notifications::find_broadcast(&state(ctx)?.db, &viewer, id).await?;
        Ok(NoticeBroadcast(row))
    }

    /// ADMIN: the staff audit log, newest first, optionally about one member.
    #[graphql(complexity = "crate::graphql::types::list_cost(first, child_complexity)")]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        subject_user_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, AuditEntry>> {
        let viewer = require_viewer(ctx)?;
        let subject = subject_user_id.map(|id| ids::decode(Kind::User, &id, "subjectUserId")).transpose()?;
        let args = page_args(ctx, first, after.as_deref())?;
        let page = audit::list(&state(ctx)?.db, &viewer, subject, &args).await?;
        Ok(connection(page, AuditEntry))
    }

    /// MODERATOR, ADMIN: reports grouped by what they are about, the most recently reported first.
    #[graphql(complexity = "crate::graphql::types::list_cost(first, child_complexity)")]
    async fn moderation_queue(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "OPEN when left out or null.")] status: Option<ReportStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, ReportCase>> {
        let viewer = require_viewer(ctx)?;
        let args = page_args(ctx, first, after.as_deref())?;
        let status = status.unwrap_or(ReportStatus::Open).into();
        let page = crate::services::reports::queue(&state(ctx)?.db, &viewer, status, &args).await?;
        Ok(connection(page, ReportCase))
    }

    /// ADMIN: developer apps in one review state (PENDING when left out), oldest first.
    #[graphql(complexity = "crate::graphql::types::list_cost(first, child_complexity)")]
    async fn app_review_queue(
        &self,
        ctx: &Context<'_>,
        status: Option<crate::graphql::types::developer_app::AppStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, crate::graphql::types::developer_app::DeveloperApp>> {
        let viewer = require_viewer(ctx)?;
        let args = page_args(ctx, first, after.as_deref())?;
        let status = status.unwrap_or(crate::graphql::types::developer_app::AppStatus::Pending).into();
        let page = crate::services::developer_apps::queue(&state(ctx)?.db, &viewer, status, &args).await?;
        Ok(connection(page, crate::graphql::types::developer_app::DeveloperApp))
    }

    /// ADMIN: unique visitors per day of a board or a post (`target` is its id) over the last `days`
    /// days, counted by the first-party visitor cookie. Counts only: no per-person data leaves here.
    async fn visitor_stats(
        &self,
        ctx: &Context<'_>,
        target: ID,
        #[graphql(default = 7)] days: i32,
    ) -> async_graphql::Result<Vec<DailyVisitors>> {
        let viewer = require_viewer(ctx)?;
        let (kind, id) = match ids::decode_any(&target) {
            Some((Kind::Board, id)) => (Target::Board, id),
            Some((Kind::Post, id)) => (Target::Post, id),
            _ => return Err(AppError::bad_input("target", "is not a Board or Post id").into()),
        };
        let days = u32::try_from(days).map_err(|_| AppError::bad_input("days", "between 1 and 366"))?;
        let rows = activity::daily_visitors(&state(ctx)?.db, &viewer, kind, id, days).await?;
        Ok(rows.into_iter().map(|(day, visitors)| DailyVisitors { day, visitors }).collect())
    }
}
