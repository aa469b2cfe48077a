//! What the service records about requests, as the privacy policy says: every signed-in operation's
//! time, duration, IP address, user agent, language, device, OS and operation name (the member sees
//! their own in `me.activity` and `me.loginHistory`), and daily unique visitors per board and post
//! (ADMINs see counts only, never rows). Anonymous operations are recorded in the log stream only.
//!
//! Recording must not slow requests down, so rows go through a bounded channel to one background
//! writer per instance that inserts them in batches. When the database falls behind, the queue fills
//! and new rows are dropped and counted (`ecer_activity_dropped_total`) rather than stalling requests.
//! Rows older than `REQUEST_LOG_RETENTION_DAYS` are purged by `services::retention`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use entity::{developer_apps, request_log, visitor_views};
use sea_orm::sea_query::{Expr, ExprTrait as _, OnConflict};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::auth::Viewer;
use crate::authz;
use crate::error::{AppError, AppResult};
use crate::services::page::{Cursor, Page, PageArgs};

const QUEUE: usize = 10_000;
const BATCH: usize = 500;
/// How long the writer gathers rows before writing a batch.
const LINGER: Duration = Duration::from_millis(200);

/// Who a request came from, as far as its headers tell (built by the HTTP layer).
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub language: Option<String>,
    pub device: Option<String>,
    pub os: Option<String>,
    pub browser: Option<String>,
}

/// One finished operation.
pub struct RequestRecord {
    pub duration: Duration,
    pub user_id: Option<i64>,
    pub transport: &'static str,
    pub operation: String,
    pub sign_in: bool,
    pub client: Arc<ClientInfo>,
    /// The developer app acting for the member (`Viewer::app`), if any.
    pub app_id: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Board,
    Post,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Board => "board",
            Target::Post => "post",
        }
    }
}

enum Item {
    Request(Box<request_log::ActiveModel>),
    Visit(visitor_views::ActiveModel),
    Flush(oneshot::Sender<()>),
}

/// The handle requests record through; cheap to clone. Disabled (`REQUEST_LOG=false`) it records
/// no requests but still counts visitors.
#[derive(Clone)]
pub struct Activity {
    tx: Option<mpsc::Sender<Item>>,
    requests: bool,
    /// Keys the visitor hash, so the database alone cannot tell whose visits a row counts (trying
    /// every member id or the addresses in the request log against an unkeyed hash would).
    salt: Arc<[u8; 32]>,
}

impl Activity {
    /// Starts the writer and the purger on the current runtime.
    pub fn spawn(db: DatabaseConnection, record_requests: bool, salt: [u8; 32]) -> Activity {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(crate::db::background(writer(db.clone(), rx)));
        Activity { tx: Some(tx), requests: record_requests, salt: Arc::new(salt) }
    }

    /// Records nothing (unit tests of code that takes a handle).
    pub fn disabled() -> Activity {
        Activity { tx: None, requests: false, salt: Arc::new([0; 32]) }
    }

    pub fn request(&self, r: RequestRecord) {
        // Rows exist for members to see their own activity and sign-ins. An anonymous request is seen
        // by nobody: it goes to the structured log line (`observe`) and the visitor counts, not one
        // OLTP row per request (a busy site would otherwise keep billions of rows, issue 13).
        if !self.requests || r.user_id.is_none() {
            return;
        }
        let c = &r.client;
        let cut = |s: &Option<String>, n: usize| s.as_ref().map(|s| s.chars().take(n).collect::<String>());
        let row = request_log::ActiveModel {
            at: Set(Utc::now()),
            duration_ms: Set(r.duration.as_secs_f64() * 1000.0),
            user_id: Set(r.user_id),
            transport: Set(r.transport.into()),
            operation: Set(r.operation.chars().take(128).collect()),
            sign_in: Set(r.sign_in),
            ip: Set(cut(&c.ip, 64)),
            user_agent: Set(cut(&c.user_agent, 512)),
            language: Set(cut(&c.language, 64)),
            device: Set(cut(&c.device, 32)),
            os: Set(cut(&c.os, 64)),
            browser: Set(cut(&c.browser, 64)),
            app_id: Set(r.app_id),
            ..Default::default()
        };
        self.send(Item::Request(Box::new(row)));
    }

    /// Counts `visitor` (the raw visitor cookie or another stable per-visitor key) once per day for a
    /// board or post. Only a keyed hash of the day and the key is stored, so rows of different days
    /// cannot be joined into a browsing trail and no row can be traced back to a visitor.
    pub fn visit(&self, target: Target, id: i64, visitor: &str) {
        let day = Utc::now().date_naive();
        let mut h = Sha256::new();
        h.update(self.salt.as_slice());
        h.update(day.to_string().as_bytes());
        h.update(b"|");
        h.update(visitor.as_bytes());
        let row = visitor_views::ActiveModel {
            day: Set(day),
            target_kind: Set(target.as_str().into()),
            target_id: Set(id),
            visitor: Set(base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, h.finalize())),
        };
        self.send(Item::Visit(row));
    }

    fn send(&self, item: Item) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(item).is_err() {
            crate::metrics::METRICS.activity_dropped.inc();
        }
    }

    /// Waits until everything recorded so far is written (tests, shutdown).
    pub async fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (done, wait) = oneshot::channel();
        if tx.send(Item::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// Splits rows into chunks whose sizes are powers of two (256, 128, ..., 1). Every distinct row count
/// is a distinct INSERT statement, and the driver keeps each prepared statement per pooled
/// connection: batches of any size from 1 to 500 filled those caches with hundreds of large
/// statements, and the gateway's memory grew for as long as it served (issue 13). Nine shapes at most.
fn in_statement_sizes<T>(mut rows: Vec<T>) -> Vec<Vec<T>> {
    let mut chunks = Vec::new();
    let mut size = 256;
    while !rows.is_empty() {
        while size > rows.len() {
            size /= 2;
        }
        let rest = rows.split_off(size);
        chunks.push(std::mem::replace(&mut rows, rest));
    }
    chunks
}

async fn writer(db: DatabaseConnection, mut rx: mpsc::Receiver<Item>) {
    let mut requests = Vec::new();
    let mut visits = Vec::new();
    let mut waiting = Vec::new();
    while let Some(first) = rx.recv().await {
        let deadline = tokio::time::Instant::now() + LINGER;
        let mut next = Some(first);
        loop {
            match next.take() {
                Some(Item::Request(r)) => requests.push(*r),
                Some(Item::Visit(v)) => visits.push(v),
                Some(Item::Flush(done)) => {
                    waiting.push(done);
                    break;
                }
                None => {}
            }
            if requests.len() + visits.len() >= BATCH {
                break;
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(item)) => next = Some(item),
                _ => break,
            }
        }
        for chunk in in_statement_sizes(std::mem::take(&mut requests)) {
            if let Err(e) = request_log::Entity::insert_many(chunk).exec_without_returning(&db).await {
                tracing::warn!(error = %e, "could not write the request log");
            }
        }
        for chunk in in_statement_sizes(std::mem::take(&mut visits)) {
            let insert = visitor_views::Entity::insert_many(chunk).on_conflict(
                OnConflict::columns([
                    visitor_views::Column::Day,
                    visitor_views::Column::TargetKind,
                    visitor_views::Column::TargetId,
                    visitor_views::Column::Visitor,
                ])
                .do_nothing()
                .to_owned(),
            );
            if let Err(e) = insert.exec_without_returning(&db).await {
                tracing::warn!(error = %e, "could not write visitor counts");
            }
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

/// One line of a member's request log, with the app that made it (if one did).
pub struct Logged {
    pub row: request_log::Model,
    /// Which app acted: `Some(None)` when an app did and has since been deleted.
    pub app: Option<Option<developer_apps::Model>>,
}

/// The member's own request log, newest first; `sign_ins_only` gives the login history. The apps
/// that acted are read in one more statement, and only when the page holds an app's request.
pub async fn for_member(
    db: &DatabaseConnection,
    viewer: &Viewer,
    sign_ins_only: bool,
    args: &PageArgs,
) -> AppResult<Page<Logged>> {
    let mut q = request_log::Entity::find()
        .filter(request_log::Column::UserId.eq(viewer.user_id))
        .order_by_desc(request_log::Column::Id)
        .limit(args.fetch_limit());
    if sign_ins_only {
        q = q.filter(request_log::Column::SignIn.eq(true));
    }
    if let Some(after) = args.after_id() {
        q = q.filter(request_log::Column::Id.lt(after));
    }
    let page = Page::from_rows(args, q.all(db).await?, |r| Cursor::Id(r.id));
    let mut app_ids: Vec<i64> = page.items.iter().filter_map(|(_, r)| r.app_id).collect();
    app_ids.sort_unstable();
    app_ids.dedup();
    let apps: HashMap<i64, developer_apps::Model> = if app_ids.is_empty() {
        HashMap::new()
    } else {
        developer_apps::Entity::find()
            .filter(developer_apps::Column::Id.is_in(app_ids))
            .all(db)
            .await?
            .into_iter()
            .map(|a| (a.id, a))
            .collect()
    };
    Ok(page.map(|row| Logged { app: row.app_id.map(|id| apps.get(&id).cloned()), row }))
}

/// Daily unique visitors of a board or post over the last `days` days (ADMIN): counts only.
pub async fn daily_visitors(
    db: &DatabaseConnection,
    viewer: &Viewer,
    target: Target,
    id: i64,
    days: u32,
) -> AppResult<Vec<(NaiveDate, i64)>> {
    authz::require(Some(viewer), authz::Action::ReadVisitorStats)?;
    if !(1..=366).contains(&days) {
        return Err(AppError::bad_input("days", "between 1 and 366"));
    }
    let since = Utc::now().date_naive() - chrono::Duration::days(i64::from(days) - 1);
    Ok(visitor_views::Entity::find()
        .select_only()
        .column(visitor_views::Column::Day)
        .column_as(Expr::col(visitor_views::Column::Visitor).count(), "visitors")
        .filter(visitor_views::Column::TargetKind.eq(target.as_str()))
        .filter(visitor_views::Column::TargetId.eq(id))
        .filter(visitor_views::Column::Day.gte(since))
        .group_by(visitor_views::Column::Day)
        .order_by_asc(visitor_views::Column::Day)
        .into_tuple()
        .all(db)
        .await?)
}

/// Erases a member's request log (account deletion; the foreign key would too, but the account row
/// stays).
pub async fn erase(db: &impl sea_orm::ConnectionTrait, user_id: i64) -> AppResult<()> {
    request_log::Entity::delete_many().filter(request_log::Column::UserId.eq(user_id)).exec(db).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_written_in_a_few_statement_shapes() {
        let sizes = |n: usize| in_statement_sizes((0..n).collect::<Vec<_>>()).iter().map(Vec::len).collect::<Vec<_>>();
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), vec![1]);
        assert_eq!(sizes(500), vec![256, 128, 64, 32, 16, 4]);
        assert_eq!(sizes(7), vec![4, 2, 1]);
        let mut shapes = std::collections::HashSet::new();
        for n in 0..=BATCH {
            let chunks = in_statement_sizes((0..n).collect::<Vec<_>>());
            assert_eq!(chunks.concat(), (0..n).collect::<Vec<_>>(), "every row once, in order");
            shapes.extend(chunks.iter().map(Vec::len));
        }
        assert_eq!(shapes.len(), 9);
    }
}
