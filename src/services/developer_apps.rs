//! Developer apps: the third parties that will ask members, through OAuth 2.1, for access to their
//! data (issue 16). A member whose real name was checked registers an app; an ADMIN approves or
//! rejects it, on the record. Redirect URIs follow OAuth 2.1 (and RFC 8252 for native apps): exact
//! strings, HTTPS, `http` only on a loopback address, or an app's own private-use scheme.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use entity::{developer_apps, oauth_grants, users};
use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Set,
};

use crate::auth::Viewer;
use crate::authz::{self, Action};
use crate::error::{AppError, AppResult};
use crate::pubsub::{Broker, Event, Topic};
use crate::services::audit::{self, Note};
use crate::services::page::{Cursor, Page, PageArgs};
use crate::services::validate::{self, Lines};

names!(
    /// An app's review state.
    Status { Pending = "PENDING", Approved = "APPROVED", Rejected = "REJECTED" }
);

/// Redirect URIs one app may have.
const MAX_REDIRECTS: usize = 10;
/// Apps one member may have registered.
const MAX_PER_MEMBER: u64 = 20;
/// A deleted app still counts toward its developer's cap this long, so deleting and registering
/// again cannot flood the admins' review queue.
const DELETED_COUNTS_FOR: chrono::Duration = chrono::Duration::days(30);
/// The status of a deleted app's tombstone. Not an `AppStatus`: no query lists a deleted app.
const DELETED: &str = "DELETED";

/// What a developer fills in.
pub struct NewApp<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub homepage_url: &'a str,
    pub redirect_uris: &'a [String],
    pub confidential: bool,
}

/// A registered app, and its client secret when it has one: shown this once, stored only hashed.
pub struct Registered {
    pub app: developer_apps::Model,
    pub client_secret: Option<String>,
}

/// One redirect URI, as OAuth 2.1 allows it: absolute, no fragment, and either HTTPS, `http` on a
/// loopback address (a native app's local listener), or a private-use scheme with a dot in it
/// (`com.example.app:/oauth`, RFC 8252 7.1). Compared later as an exact string.
fn redirect_uri(field: &str, value: &str) -> AppResult<String> {
    let bad = |why: &str| AppError::bad_input(field, why);
    if value.len() > 512 {
        return Err(bad("must be at most 512 characters"));
    }
    let url = url::Url::parse(value).map_err(|_| bad("is not an absolute URI"))?;
    // Exactly as a browser will read it: the parser drops tabs and newlines, reads `\` as `/`,
    // resolves `..` and lowercases the scheme, so a URI that changes under it could show one host
    // to the reviewing admin and send members to another.
    if url.as_str() != value {
        return Err(bad(&format!("must be written as browsers read it: {}", url.as_str())));
    }
    if url.fragment().is_some() {
        return Err(bad("must not have a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    let loopback = matches!(url.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
        || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback());
    match url.scheme() {
        "https" if url.host().is_some() => {}
        "http" if loopback => {}
        "http" => return Err(bad("plain http is only for a loopback address (127.0.0.1 or [::1])")),
        scheme if scheme.contains('.') && url.host().is_none() => {}
        _ => {
            return Err(bad(
                "must be https, http on a loopback address, or a private-use scheme like com.example.app:/path",
            ));
        }
    }
    // The string as registered is what must come back, byte for byte.
    Ok(value.to_string())
}

fn random_token(bytes: usize) -> AppResult<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|_| AppError::internal("the OS random number generator failed"))?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// Registers an app for the viewer (a member with an approved real-name verification, or an admin).
/// It waits for an admin's review before it may ask anyone for consent.
pub async fn register(db: &DatabaseConnection, viewer: &Viewer, new: NewApp<'_>) -> AppResult<Registered> {
    let identity_approved = crate::services::identity::is_approved(db, viewer.user_id).await?;
    authz::require(Some(viewer), Action::RegisterApp { identity_approved })?;
    let name = validate::text("input.name", new.name, 1, 60, Lines::Single)?;
    let description = validate::text("input.description", new.description, 1, 1000, Lines::Multi)?;
    let homepage_url = validate::http_url("input.homepageUrl", new.homepage_url)?;
    if new.redirect_uris.is_empty() || new.redirect_uris.len() > MAX_REDIRECTS {
        return Err(AppError::bad_input("input.redirectUris", "give 1 to 10 redirect URIs"));
    }
    let mut redirects = Vec::with_capacity(new.redirect_uris.len());
    for (i, uri) in new.redirect_uris.iter().enumerate() {
        let uri = redirect_uri(&format!("input.redirectUris[{i}]"), uri)?;
        if redirects.contains(&uri) {
            return Err(AppError::bad_input(format!("input.redirectUris[{i}]"), "is listed twice"));
        }
        redirects.push(uri);
    }
    let client_secret = new.confidential.then(|| random_token(32)).transpose()?;
    // Counting and inserting as one step: concurrent registrations by one member queue behind a
    // write to the member's row (a row lock on PostgreSQL, the write lock on SQLite, taken by the
    // transaction's first statement so SQLite never has to upgrade a read), so the cap cannot be
    // overrun by requests that each counted 19. A non-key column: writing `id` would make SQLite
    // check every foreign key that points at users.
    let txn = sea_orm::TransactionTrait::begin(db).await?;
    users::Entity::update_many()
        .col_expr(users::Column::UpdatedAt, Expr::col(users::Column::UpdatedAt))
        .filter(users::Column::Id.eq(viewer.user_id))
        .exec(&txn)
        .await?;
    let counted = developer_apps::Column::DeletedAt
        .is_null()
        .or(developer_apps::Column::DeletedAt.gt(Utc::now() - DELETED_COUNTS_FOR));
    let registered: u64 = developer_apps::Entity::find()
        .filter(developer_apps::Column::OwnerId.eq(viewer.user_id))
        .filter(counted)
        .count(&txn)
        .await?;
    if registered >= MAX_PER_MEMBER {
        txn.rollback().await?;
        return Err(AppError::bad_input(
            "input.name",
            "a member may register at most 20 apps (a deleted app counts for 30 days)",
        ));
    }
    let app = developer_apps::ActiveModel {
        client_id: Set(random_token(18)?),
        owner_id: Set(viewer.user_id),
        name: Set(name),
        description: Set(description),
        homepage_url: Set(homepage_url),
        redirect_uris: Set(serde_json::json!(redirects)),
        confidential: Set(new.confidential),
        secret_hash: Set(client_secret.as_deref().map(crate::auth::hash_token)),
        status: Set(Status::Pending.as_str().to_string()),
        review_reason: Set(None),
        reviewer_id: Set(None),
        reviewed_at: Set(None),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(Registered { app, client_secret })
}

/// Approves or rejects an app (ADMIN; never one's own), with the reason on the record. Rejecting an
/// app that was approved ends every member's grant to it, on the record too: its tokens stop
/// working and their sockets of the app close, and approving it again later needs each member's
/// consent again. Returns the app as it is now.
pub async fn review(
    db: &DatabaseConnection,
    broker: &Broker,
    viewer: &Viewer,
    note: Note<'_>,
    client_id: &str,
    approve: bool,
) -> AppResult<developer_apps::Model> {
    // Who may review at all, before anything is looked up (so ids cannot be probed); then this app.
    authz::require(Some(viewer), Action::ReviewApp { owner: 0 })?;
    let app = live_app(db, client_id).await?;
    authz::require(Some(viewer), Action::ReviewApp { owner: app.owner_id })?;
    let reason = note.required_reason()?;
    let status = if approve { Status::Approved } else { Status::Rejected };
    let now = Utc::now();
    let txn = sea_orm::TransactionTrait::begin(db).await?;
    developer_apps::Entity::update_many()
        .col_expr(developer_apps::Column::Status, Expr::value(status.as_str()))
        .col_expr(developer_apps::Column::ReviewReason, Expr::value(Some(reason.clone())))
        .col_expr(developer_apps::Column::ReviewerId, Expr::value(Some(viewer.user_id)))
        .col_expr(developer_apps::Column::ReviewedAt, Expr::value(Some(now)))
        .filter(developer_apps::Column::Id.eq(app.id))
        .exec(&txn)
        .await?;
    let entry = audit::Entry::new(audit::Action::ReviewApp, Some(app.owner_id), format!("App:{}", app.client_id))
        .because(Some(format!("{}: {reason}", status.as_str())));
    audit::record(&txn, viewer, note.ip, entry).await?;
    let revoked_members = if approve {
        Vec::new()
    } else {
        end_grants(&txn, viewer, note.ip, &app, &format!("an admin rejected the app: {reason}")).await?
    };
    txn.commit().await?;
    close_sockets(broker, revoked_members).await;
    Ok(developer_apps::Model {
        status: status.as_str().to_string(),
        review_reason: Some(reason),
        reviewer_id: Some(viewer.user_id),
        reviewed_at: Some(now),
        ..app
    })
}

/// Tells the members whose grants ended: their sockets of the app re-check, and close, on every
/// instance.
async fn close_sockets(broker: &Broker, members: Vec<i64>) {
    for member in members {
        broker.publish(Topic::User(member), Event::SessionsRevoked).await;
    }
}

/// An app that was not deleted, by its client id.
async fn live_app(db: &impl ConnectionTrait, client_id: &str) -> AppResult<developer_apps::Model> {
    developer_apps::Entity::find()
        .filter(developer_apps::Column::ClientId.eq(client_id))
        .filter(developer_apps::Column::Status.ne(DELETED))
        .one(db)
        .await?
        .ok_or(AppError::NotFound("app"))
}

/// Ends every member's grant to `app` (its codes and tokens go with it, by foreign key), each on the
/// record with `why`. Returns those members: their sockets of the app are to be told.
///
/// Call it in a transaction that has already written (SQLite does not wait for a lock when a
/// transaction that has only read starts writing; it fails at once), after a write to the app's row
/// (on PostgreSQL that row lock holds back a consent being recorded meanwhile).
async fn end_grants(
    db: &impl ConnectionTrait,
    viewer: &Viewer,
    ip: Option<&str>,
    app: &developer_apps::Model,
    why: &str,
) -> AppResult<Vec<i64>> {
    let members: Vec<i64> = oauth_grants::Entity::find()
        .select_only()
        .column(oauth_grants::Column::UserId)
        .filter(oauth_grants::Column::AppId.eq(app.id))
        .into_tuple()
        .all(db)
        .await?;
    oauth_grants::Entity::delete_many().filter(oauth_grants::Column::AppId.eq(app.id)).exec(db).await?;
    let target = format!("App:{}", app.client_id);
    let entries = members
        .iter()
        .map(|m| audit::Entry::new(audit::Action::RevokeApp, Some(*m), target.clone()).because(Some(why.to_string())))
        .collect();
    audit::record_many(db, viewer, ip, entries).await?;
    Ok(members)
}

/// Deletes one of the viewer's apps: every member's grant to it ends on the record, its tokens stop
/// working, and its client id is never valid again. A tombstone stays (name and client id, no
/// secret), so members' activity keeps naming the app that acted for them and the admins' record
/// keeps the app they reviewed. The members' sockets of the app close, on every instance.
pub async fn delete(
    db: &DatabaseConnection,
    broker: &Broker,
    viewer: &Viewer,
    ip: Option<&str>,
    client_id: &str,
) -> AppResult<()> {
    let app = live_app(db, client_id).await?;
    authz::require(Some(viewer), Action::DeleteApp { owner: app.owner_id })?;
    let txn = sea_orm::TransactionTrait::begin(db).await?;
    // First a write: the tombstone, unless a concurrent deletion got there first.
    let marked = developer_apps::Entity::update_many()
        .col_expr(developer_apps::Column::Status, Expr::value(DELETED))
        .col_expr(developer_apps::Column::DeletedAt, Expr::value(Some(Utc::now())))
        .col_expr(developer_apps::Column::SecretHash, Expr::value(Option::<String>::None))
        .filter(developer_apps::Column::Id.eq(app.id))
        .filter(developer_apps::Column::Status.ne(DELETED))
        .exec(&txn)
        .await?;
    if marked.rows_affected == 0 {
        txn.rollback().await?;
        return Err(AppError::NotFound("app"));
    }
    let members = end_grants(&txn, viewer, ip, &app, "the developer deleted the app").await?;
    let entry = audit::Entry::new(audit::Action::DeleteApp, Some(app.owner_id), format!("App:{}", app.client_id))
        .because(Some(format!("{} member grants ended", members.len())));
    audit::record(&txn, viewer, ip, entry).await?;
    txn.commit().await?;
    close_sockets(broker, members).await;
    Ok(())
}

/// The apps a member registered and still has, newest first.
pub async fn of_member(db: &impl ConnectionTrait, owner: i64) -> AppResult<Vec<developer_apps::Model>> {
    Ok(developer_apps::Entity::find()
        .filter(developer_apps::Column::OwnerId.eq(owner))
        .filter(developer_apps::Column::Status.ne(DELETED))
        .order_by_desc(developer_apps::Column::Id)
        .all(db)
        .await?)
}

/// The apps in one review state, oldest first (ADMIN).
pub async fn queue(
    db: &DatabaseConnection,
    viewer: &Viewer,
    status: Status,
    page: &PageArgs,
) -> AppResult<Page<developer_apps::Model>> {
    authz::require(Some(viewer), Action::ReviewApp { owner: 0 })?;
    let mut q = developer_apps::Entity::find().filter(developer_apps::Column::Status.eq(status.as_str()));
    if let Some(after) = page.after_id() {
        q = q.filter(developer_apps::Column::Id.gt(after));
    }
    let rows = q.order_by_asc(developer_apps::Column::Id).limit(page.fetch_limit()).all(db).await?;
    Ok(Page::from_rows(page, rows, |a| Cursor::Id(a.id)))
}

/// Erasure: the member's apps go with them, tombstones included, and with the apps every member's
/// grant to them (foreign keys). Returns the members whose grants went, whose apps' sockets are to be told.
pub async fn erase_member(db: &impl ConnectionTrait, owner: i64) -> AppResult<Vec<i64>> {
    let of_owner = developer_apps::Entity::find()
        .select_only()
        .column(developer_apps::Column::Id)
        .filter(developer_apps::Column::OwnerId.eq(owner))
        .into_query();
    let users: Vec<i64> = oauth_grants::Entity::find()
        .select_only()
        .column(oauth_grants::Column::UserId)
        .filter(oauth_grants::Column::AppId.in_subquery(of_owner))
        .into_tuple()
        .all(db)
        .await?;
    developer_apps::Entity::delete_many().filter(developer_apps::Column::OwnerId.eq(owner)).exec(db).await?;
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_follow_oauth_2_1() {
        for ok in [
            "https://partner.example/oauth/callback",
            "https://partner.example/cb?app=1",
            "http://127.0.0.1:8765/callback",
            "http://[::1]/cb",
            "com.partner.app:/oauth2redirect",
        ] {
            assert_eq!(redirect_uri("f", ok).unwrap(), ok);
        }
        for bad in [
            "http://partner.example/cb",
            "http://localhost/cb",
            "https://partner.example/cb#frag",
            "https://user:pw@partner.example/cb",
            "javascript:alert(1)",
            "myapp:/cb",
            "/relative",
            "data:text/html,hi",
            "https://evil.example\\@good.example/cb",
            "https://partner.example/a/../cb",
            "HTTPS://partner.example/cb",
            "https://partner.example/c\tb",
            "https://partner.example",
        ] {
            assert!(redirect_uri("f", bad).is_err(), "{bad}");
        }
    }
}
