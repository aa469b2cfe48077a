//! Real-name verification: a member submits a name, a document number and two photos; a REVIEWER
//! approves or rejects it (with a reason). An approved verification lets a member create boards.
//!
//! The name and number are sealed at rest ([`crate::seal`]) and only masked forms are stored in the
//! clear; the full number is never shown again, to anyone. Photos are sealed files that reviewers
//! open through an audited route. Every staff read of this data goes to the audit log.

use chrono::{Datelike, NaiveDate, Utc};
use entity::{identity_verifications as iv, media};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};

use crate::auth::Viewer;
use crate::authz;
use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::media::MediaStore;
use crate::pubsub::Broker;
use crate::pubsub::Outbox;
use crate::services::audit::{self, Action, Entry};
use crate::services::media::{self as media_svc, Incoming};
use crate::services::notifications::{self, Kind as NoticeKind, NewNotification};
use crate::services::page::{Cursor, Page, PageArgs};
use crate::services::validate::{self, Lines};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Approved,
    Rejected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Approved => "APPROVED",
            Status::Rejected => "REJECTED",
        }
    }

    pub fn parse(s: &str) -> Status {
        match s {
            "APPROVED" => Status::Approved,
            "REJECTED" => Status::Rejected,
            _ => Status::Pending,
        }
    }
}

/// Documents that can be verified. More types add a variant and a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentType {
    /// The 18-character resident identity card of mainland China (GB 11643-1999).
    CnResidentId,
}

impl DocumentType {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentType::CnResidentId => "CN_RESIDENT_ID",
        }
    }

    pub fn parse(_s: &str) -> DocumentType {
        DocumentType::CnResidentId
    }

    /// The number in canonical form, or why it is not a valid number of this document.
    pub fn check(self, number: &str) -> Result<String, &'static str> {
        match self {
            DocumentType::CnResidentId => check_cn_resident_id(number),
        }
    }
}

/// GB 11643-1999: 6-digit region, 8-digit birth date, 3-digit sequence, and an ISO 7064 MOD 11-2
/// check character (0-9 or X).
pub fn check_cn_resident_id(number: &str) -> Result<String, &'static str> {
    let n: String = number.trim().to_ascii_uppercase();
    let bytes = n.as_bytes();
    if bytes.len() != 18 {
        return Err("a resident ID number has 18 characters");
    }
    if !bytes[..17].iter().all(u8::is_ascii_digit) || !(bytes[17].is_ascii_digit() || bytes[17] == b'X') {
        return Err("a resident ID number is 17 digits and a final digit or X");
    }
    if bytes[0] == b'0' || &n[..2] == "00" {
        return Err("the region code is not valid");
    }
    let birth = NaiveDate::parse_from_str(&n[6..14], "%Y%m%d").map_err(|_| "the date of birth is not valid")?;
    if birth.year() < 1900 || birth > Utc::now().date_naive() {
        return Err("the date of birth is not valid");
    }
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let sum: u32 = bytes[..17].iter().zip(WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    if CHECK[(sum % 11) as usize] != bytes[17] {
        return Err("the check digit does not match: please re-type the number");
    }
    Ok(n)
}

/// `110***********4514`: the first three and last four characters.
pub fn mask_number(n: &str) -> String {
    let chars: Vec<char> = n.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len());
    }
    let mut out: String = chars[..3].iter().collect();
    out.push_str(&"*".repeat(chars.len() - 7));
    out.extend(&chars[chars.len() - 4..]);
    out
}

/// `张*` / `J*** S****`: the first character of each part.
pub fn mask_name(name: &str) -> String {
    name.split(' ')
        .map(|part| {
            let mut cs = part.chars();
            match cs.next() {
                Some(first) => std::iter::once(first).chain(cs.map(|_| '*')).collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn aad(user_id: i64, field: &str) -> String {
    format!("identity:{user_id}:{field}")
}

pub struct Submission {
    pub real_name: String,
    pub id_number: String,
    pub document_type: DocumentType,
    pub front: Incoming,
    pub back: Incoming,
}

pub async fn submit(
    db: &DatabaseConnection,
    store: &MediaStore,
    config: &Config,
    viewer: &Viewer,
    s: Submission,
) -> AppResult<iv::Model> {
    let real_name = validate::text("input.realName", &s.real_name, 2, 64, Lines::Single)?;
    let number =
        s.document_type.check(&s.id_number).map_err(|why| AppError::bad_input("input.idNumber", why.to_string()))?;
    let open = iv::Entity::find()
        .filter(iv::Column::UserId.eq(viewer.user_id))
        .filter(iv::Column::Status.is_in([Status::Pending.as_str(), Status::Approved.as_str()]))
        .count(db)
        .await?;
    if open > 0 {
        return Err(AppError::Conflict("a verification is already pending or approved for this account".into()));
    }
    let kind = media_svc::Kind::IdPhoto;
    let front = media_svc::store(db, store, config, viewer.user_id, kind, "input.idFront", s.front, None).await?;
    let back = match media_svc::store(db, store, config, viewer.user_id, kind, "input.idBack", s.back, None).await {
        Ok(b) => b,
        Err(e) => {
            media_svc::remove(db, store, vec![front]).await?;
            return Err(e);
        }
    };
    let sealer = store.sealer();
    let sealed_name = sealer.seal_text(&real_name, &aad(viewer.user_id, "real_name")).map_err(AppError::internal)?;
    let sealed_number = sealer.seal_text(&number, &aad(viewer.user_id, "id_number")).map_err(AppError::internal)?;
    let row = iv::ActiveModel {
        user_id: Set(viewer.user_id),
        document_type: Set(s.document_type.as_str().into()),
        real_name_sealed: Set(sealed_name),
        id_number_sealed: Set(sealed_number),
        real_name_masked: Set(mask_name(&real_name)),
        id_number_masked: Set(mask_number(&number)),
        front_media_id: Set(front.id.clone()),
        back_media_id: Set(back.id.clone()),
        status: Set(Status::Pending.as_str().into()),
        reason: Set(None),
        reviewer_id: Set(None),
        submitted_at: Set(Utc::now()),
        reviewed_at: Set(None),
        ..Default::default()
    };
    match row.insert(db).await {
        Ok(row) => Ok(row),
        Err(e) => {
            // No row, no photos: sealed files nobody points at would be data nobody can erase.
            media_svc::remove(db, store, vec![front, back]).await?;
            Err(AppError::conflict_on_unique(e, "a verification is already pending or approved for this account"))
        }
    }
}

/// The member's latest verification.
pub async fn latest(db: &DatabaseConnection, user_id: i64) -> AppResult<Option<iv::Model>> {
    Ok(iv::Entity::find().filter(iv::Column::UserId.eq(user_id)).order_by_desc(iv::Column::Id).one(db).await?)
}

pub async fn is_approved(db: &impl ConnectionTrait, user_id: i64) -> AppResult<bool> {
    Ok(iv::Entity::find()
        .filter(iv::Column::UserId.eq(user_id))
        .filter(iv::Column::Status.eq(Status::Approved.as_str()))
        .count(db)
        .await?
        > 0)
}

/// Verifications for reviewers, oldest first (the queue order); each row read is audited.
pub async fn queue(
    db: &DatabaseConnection,
    viewer: &Viewer,
    ip: Option<&str>,
    status: Option<Status>,
    reads_names: bool,
    args: &PageArgs,
) -> AppResult<Page<iv::Model>> {
    authz::require(Some(viewer), authz::Action::ReviewIdentity)?;
    // Least privilege: the queue is what awaits a decision; decided items only when asked for (and
    // each one listed is audited like any other read).
    let status = status.unwrap_or(Status::Pending);
    let mut q = iv::Entity::find()
        .filter(iv::Column::Status.eq(status.as_str()))
        .order_by_asc(iv::Column::Id)
        .limit(args.fetch_limit());
    if let Some(after) = args.after_id() {
        q = q.filter(iv::Column::Id.gt(after));
    }
    let rows = q.all(db).await?;
    let page = Page::from_rows(args, rows, |r| Cursor::Id(r.id));
    // Every item listed, and every full name the page will show, in one audit statement.
    let mut reads = Vec::new();
    for (_, r) in &page.items {
        let target = format!("IdentityVerification:{}", r.id);
        if reads_names {
            reads.push(Entry::new(Action::ViewRealName, Some(r.user_id), target.clone()));
        }
        reads.push(Entry::new(Action::ViewIdentity, Some(r.user_id), target));
    }
    audit::record_many(db, viewer, ip, reads).await?;
    Ok(page)
}

/// A reviewer reads the full name (audited, unless the listing that returned `row` already wrote the
/// entry); the owner reads their own without an audit entry.
pub async fn real_name(
    db: &DatabaseConnection,
    store: &MediaStore,
    viewer: &Viewer,
    ip: Option<&str>,
    row: &iv::Model,
    already_audited: bool,
) -> AppResult<Option<String>> {
    if !authz::can(Some(viewer), authz::Action::ReadIdentity { owner: row.user_id }) {
        return Ok(None);
    }
    // A reviewer's read is audited (unless the listing already wrote it); the owner's is not.
    if viewer.user_id != row.user_id && !already_audited {
        let target = format!("IdentityVerification:{}", row.id);
        audit::record(db, viewer, ip, Entry::new(Action::ViewRealName, Some(row.user_id), target)).await?;
    }
    let name =
        store.sealer().open_text(&row.real_name_sealed, &aad(row.user_id, "real_name")).map_err(AppError::internal)?;
    Ok(Some(name))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

pub async fn review(
    db: &DatabaseConnection,
    broker: &Broker,
    viewer: &Viewer,
    ip: Option<&str>,
    id: i64,
    decision: Decision,
    reason: Option<String>,
) -> AppResult<iv::Model> {
    authz::require(Some(viewer), authz::Action::ReviewIdentity)?;
    let reason = match (decision, reason) {
        (Decision::Reject, None) => return Err(AppError::bad_input("input.reason", "say why it is rejected")),
        (_, Some(r)) => Some(validate::text("input.reason", &r, 1, 500, Lines::Multi)?),
        (Decision::Approve, None) => None,
    };
    let row = iv::Entity::find_by_id(id).one(db).await?.ok_or(AppError::NotFound("identity verification"))?;
    authz::require(Some(viewer), authz::Action::DecideIdentity(&row))?;
    let status = match decision {
        Decision::Approve => Status::Approved,
        Decision::Reject => Status::Rejected,
    };
    let now = Utc::now();
    let txn = db.begin().await?;
    // Only a pending verification can be decided, once: the condition makes two reviewers racing on
    // one item safe.
    let updated = iv::Entity::update_many()
        .col_expr(iv::Column::Status, Expr::value(status.as_str()))
        .col_expr(iv::Column::Reason, Expr::value(reason.clone()))
        .col_expr(iv::Column::ReviewerId, Expr::value(viewer.user_id))
        .col_expr(iv::Column::ReviewedAt, Expr::value(now))
        .filter(iv::Column::Id.eq(id))
        .filter(iv::Column::Status.eq(Status::Pending.as_str()))
        .exec(&txn)
        .await?;
    if updated.rows_affected == 0 {
        return Err(AppError::Conflict("this verification was already decided".into()));
    }
    let action = match decision {
        Decision::Approve => Action::ApproveIdentity,
        Decision::Reject => Action::RejectIdentity,
    };
    let entry = Entry::new(action, Some(row.user_id), format!("IdentityVerification:{id}")).because(reason.clone());
    audit::record(&txn, viewer, ip, entry).await?;
    let body = match (&decision, &reason) {
        (Decision::Approve, _) => "Your real-name verification was approved: you can now create boards.".to_string(),
        (Decision::Reject, Some(r)) => format!("Your real-name verification was rejected: {r}"),
        (Decision::Reject, None) => "Your real-name verification was rejected.".to_string(),
    };
    let mut outbox = Outbox::default();
    notifications::record(
        &txn,
        NewNotification {
            user_id: row.user_id,
            kind: NoticeKind::IdentityReviewed,
            actor_id: None,
            post_id: None,
            comment_id: None,
            body: Some(body),
        },
        &mut outbox,
    )
    .await?;
    txn.commit().await?;
    broker.publish_all(outbox).await;
    iv::Entity::find_by_id(id).one(db).await?.ok_or(AppError::NotFound("identity verification"))
}

/// An ID photo for a reviewer (audited): its content type and bytes. Anyone else: FORBIDDEN.
pub async fn photo(
    db: &DatabaseConnection,
    store: &MediaStore,
    viewer: &Viewer,
    ip: Option<&str>,
    media_id: &uuid::Uuid,
    window: chrono::Duration,
) -> AppResult<(String, crate::media::Unsealed)> {
    authz::require(Some(viewer), authz::Action::ReviewIdentity)?;
    let id = media_id.hyphenated().to_string();
    let row = media::Entity::find_by_id(id.clone())
        .filter(media::Column::Private.eq(true))
        .one(db)
        .await?
        .ok_or(AppError::NotFound("file"))?;
    let verification = iv::Entity::find()
        .filter(
            sea_orm::Condition::any().add(iv::Column::FrontMediaId.eq(id.clone())).add(iv::Column::BackMediaId.eq(id)),
        )
        .one(db)
        .await?
        .ok_or(AppError::NotFound("file"))?;
    authz::require(Some(viewer), authz::Action::ReadIdPhotos { verification: &verification, window, now: Utc::now() })?;
    audit::record(db, viewer, ip, Entry::new(Action::ViewIdPhoto, Some(row.owner_id), format!("Media:{}", row.id)))
        .await?;
    let file = store
        .open_sealed(crate::media::Area::Private, media_id, viewer.user_id)
        .await
        .map_err(crate::media::StoreError::into_app)?
        .ok_or(AppError::NotFound("file"))?;
    Ok((row.mime, file))
}

/// Erases every verification of a member and its photos (account deletion).
pub async fn erase(db: &impl ConnectionTrait, store: &MediaStore, user_id: i64) -> AppResult<()> {
    iv::Entity::delete_many().filter(iv::Column::UserId.eq(user_id)).exec(db).await?;
    let photos = media::Entity::find()
        .filter(media::Column::OwnerId.eq(user_id))
        .filter(media::Column::Kind.eq(media_svc::Kind::IdPhoto.as_str()))
        .all(db)
        .await?;
    media_svc::remove(db, store, photos).await
}

/// What `ecer-gateway reseal` did.
#[derive(Debug)]
pub struct ResealReport {
    pub rows: u64,
    pub files: u64,
    /// Files that could not be read or opened (`area/id`), left as they were; each is logged.
    pub failed: Vec<String>,
    pub key: String,
}

impl std::fmt::Display for ResealReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "re-sealed {} identity records and {} files with key `{}`", self.rows, self.files, self.key)?;
        if !self.failed.is_empty() {
            write!(
                f,
                "; {} files could not be opened and were left as they were: {}",
                self.failed.len(),
                self.failed.join(", ")
            )?;
        }
        Ok(())
    }
}

/// After a key rotation or an upgrade: re-seals identity rows, ID photos, message files and data
/// exports with the current key, files in segments. A file that cannot be opened (damaged, or
/// sealed with a key no longer configured) is logged and left, and the rest still done: one bad file
/// must not keep every other one on an old key.
pub async fn reseal_all(db: &DatabaseConnection, store: &MediaStore) -> AppResult<ResealReport> {
    let rows = reseal_rows(db, store).await?;
    let (mut files, mut failed) = (0, Vec::new());
    for area in [crate::media::Area::Private, crate::media::Area::Exports] {
        for id in store.list(area).await.map_err(AppError::internal)? {
            match store.reseal(area, &id).await {
                Ok(true) => files += 1,
                Ok(false) => {}
                Err(err) => {
                    tracing::error!(%id, area = area.dir(), error = %err, "reseal: file left as it was");
                    failed.push(format!("{}/{id}", area.dir()));
                }
            }
        }
    }
    Ok(ResealReport { rows, files, failed, key: store.sealer().current_key_id().to_string() })
}

/// Re-seals names and numbers sealed with an older key; returns how many rows changed.
pub async fn reseal_rows(db: &DatabaseConnection, store: &MediaStore) -> AppResult<u64> {
    let sealer = store.sealer();
    let current = sealer.current_key_id().to_string();
    let mut changed = 0;
    for row in iv::Entity::find().all(db).await? {
        let stale = |s: &str| crate::seal::Sealer::key_id_of_text(s) != Some(current.as_str());
        if !stale(&row.real_name_sealed) && !stale(&row.id_number_sealed) {
            continue;
        }
        let (na, nu) = (aad(row.user_id, "real_name"), aad(row.user_id, "id_number"));
        let name = sealer.open_text(&row.real_name_sealed, &na).map_err(AppError::internal)?;
        let number = sealer.open_text(&row.id_number_sealed, &nu).map_err(AppError::internal)?;
        iv::Entity::update_many()
            .col_expr(
                iv::Column::RealNameSealed,
                Expr::value(sealer.seal_text(&name, &na).map_err(AppError::internal)?),
            )
            .col_expr(
                iv::Column::IdNumberSealed,
                Expr::value(sealer.seal_text(&number, &nu).map_err(AppError::internal)?),
            )
            .filter(iv::Column::Id.eq(row.id))
            .exec(db)
            .await?;
        changed += 1;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_id_check_digit() {
        // The GB 11643-1999 worked example.
        assert_eq!(check_cn_resident_id("11010519491231002X").unwrap(), "11010519491231002X");
        assert_eq!(check_cn_resident_id("11010519491231002x").unwrap(), "11010519491231002X");
        assert!(check_cn_resident_id("110105194912310021").is_err());
        assert!(check_cn_resident_id("1101051949123100").is_err());
        assert!(check_cn_resident_id("110105194913310028").is_err(), "month 13");
        assert!(check_cn_resident_id("11010519491231002Y").is_err());
    }

    #[test]
    fn masks() {
        assert_eq!(mask_number("11010519491231002X"), "110***********002X");
        assert_eq!(mask_name("张三丰"), "张**");
        assert_eq!(mask_name("John Smith"), "J*** S****");
    }
}
