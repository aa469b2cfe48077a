//! Accounts and sessions: register with a phone number proven by an SMS code, log in (password or
//! code) and out, change or reset the password, edit the profile.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Duration, Utc};
use entity::{sessions, users};
use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};

use crate::auth::{self, Role, Viewer};
use crate::authz::{self, Action};
use crate::error::{AppError, AppResult};
use crate::pubsub::{Broker, Event, Outbox, Topic};
use crate::services::audit;
use crate::services::notifications::{self, NewNotification};
use crate::services::phone_codes::{self, Purpose};
use crate::services::signin;
use crate::services::validate::{self, Lines};

pub const NICKNAME_MAX: usize = 32;
pub const SIGNATURE_MAX: usize = 200;

/// Genders a profile may show; `Unspecified` unless the user says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    Unspecified,
    Male,
    Female,
    Other,
}

impl Gender {
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Unspecified => "UNSPECIFIED",
            Gender::Male => "MALE",
            Gender::Female => "FEMALE",
            Gender::Other => "OTHER",
        }
    }

    pub fn parse(s: &str) -> Gender {
        match s {
            "MALE" => Gender::Male,
            "FEMALE" => Gender::Female,
            "OTHER" => Gender::Other,
            _ => Gender::Unspecified,
        }
    }
}

pub struct RegisterInput {
    pub phone: String,
    /// The REGISTER code sent to `phone` (services::phone_codes).
    pub code: String,
    pub password: String,
    pub account_name: Option<String>,
    pub email: Option<String>,
    pub nickname: Option<String>,
}

/// Session lifetime and where the request came from, recorded on the session row.
pub struct SessionMeta {
    pub ttl: Duration,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// A freshly opened session: the token is shown to the client once and never stored.
pub struct NewSession {
    pub token: String,
    pub user: users::Model,
    pub expires_at: chrono::DateTime<Utc>,
}

/// Creates an account for a number its holder has proven with a REGISTER code.
///
/// The order is what keeps registration from telling who is a member: the input is checked without
/// the database, then the code is used up, and only then can the insert answer CONFLICT for a number
/// (or account name) already taken. Without the code the answer is INVALID_CODE, for a new and a
/// registered number alike; with it, the person holds the phone and may learn that it has an
/// account (and sign in by code instead).
pub async fn register(
    db: &DatabaseConnection,
    keys: &crate::seal::Sealer,
    input: RegisterInput,
    meta: SessionMeta,
) -> AppResult<NewSession> {
    let phone = validate::phone("input.phone", &input.phone)?;
    validate::password("input.password", &input.password)?;
    let account_name = match input.account_name.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(name) => Some(validate::account_name("input.accountName", name)?),
        None => None,
    };
    let email = match input.email.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(e) => Some(validate::email("input.email", e)?),
        None => None,
    };
    let nickname = match input.nickname.as_deref() {
        Some(n) => validate::text("input.nickname", n, 1, NICKNAME_MAX, Lines::Single)?,
        None => account_name.clone().unwrap_or_else(|| "ecer member".to_string()),
    };
    phone_codes::consume(db, keys, &phone, Purpose::Register, &input.code, "input.code", Utc::now()).await?;
    let password_hash = hash_password(input.password).await?;
    let now = Utc::now();
    let user = users::ActiveModel {
        phone: Set(Some(phone)),
        password_hash: Set(Some(password_hash)),
        account_name: Set(account_name),
        email: Set(email),
        nickname: Set(nickname),
        avatar_url: Set(None),
        gender: Set(Gender::Unspecified.as_str().into()),
        signature: Set(None),
        role: Set(Role::User.as_str().into()),
        follower_count: Set(0),
        following_count: Set(0),
        post_count: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .map_err(|e| AppError::conflict_on_unique(e, "this phone number or account name is already registered"))?;
    index_user(db, &user).await?;
    signin::first_device(db, user.id, meta.user_agent.as_deref()).await?;
    // Registering means agreeing to the policy in force.
    crate::services::policy::accept_current(db, user.id).await?;
    open_session(db, user, meta).await
}

/// Checks a phone number and password. Every failure gives the same error and takes the same time
/// (an unknown phone still runs one argon2 verification), so the answer cannot tell which was wrong.
///
/// Five failures within 15 minutes lock the number for 15 minutes (`ACCOUNT_LOCKED`), whether or not it
/// belongs to an account; a sign-in from a new device tells the member.
pub async fn login(
    db: &DatabaseConnection,
    broker: &Broker,
    keys: &crate::seal::Sealer,
    phone: &str,
    password: String,
    meta: SessionMeta,
) -> AppResult<NewSession> {
    let key = signin::phone_key(keys, phone);
    signin::check_lock(db, &key).await?;
    let user = match validate::phone("input.phone", phone) {
        Ok(phone) => {
            users::Entity::find()
                .filter(users::Column::Phone.eq(phone))
                .filter(users::Column::DeletedAt.is_null())
                .one(db)
                .await?
        }
        Err(_) => None,
    };
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    let ok = verify_password(password, stored).await?;
    match user {
        Some(user) if ok && is_suspended(&user, Utc::now()) => Err(AppError::Forbidden("this account is suspended")),
        Some(user) if ok => {
            signin::clear(db, &key).await?;
            let device = meta.user_agent.clone();
            let session = open_session(db, user, meta).await?;
            signin::note_device(db, broker, keys, session.user.id, device.as_deref()).await?;
            Ok(session)
        }
        _ => {
            signin::record_failure(db, &key).await?;
            Err(AppError::BadCredentials)
        }
    }
}

/// Signs in with a LOGIN code instead of a password. The code is checked first (its own attempt
/// limit bounds guessing); only a proven holder learns whether the number has an account. A
/// successful sign-in clears the number's password failures, as `login` does.
pub async fn login_with_code(
    db: &DatabaseConnection,
    broker: &Broker,
    keys: &crate::seal::Sealer,
    phone: &str,
    code: &str,
    meta: SessionMeta,
) -> AppResult<NewSession> {
    let phone = validate::phone("input.phone", phone)?;
    phone_codes::consume(db, keys, &phone, Purpose::Login, code, "input.code", Utc::now()).await?;
    let user = live_user_by_phone(db, &phone).await?.ok_or(AppError::NotFound("account with this phone number"))?;
    if is_suspended(&user, Utc::now()) {
        return Err(AppError::Forbidden("this account is suspended"));
    }
    signin::clear(db, &signin::phone_key(keys, &phone)).await?;
    let device = meta.user_agent.clone();
    let session = open_session(db, user, meta).await?;
    signin::note_device(db, broker, keys, session.user.id, device.as_deref()).await?;
    Ok(session)
}

async fn live_user_by_phone(db: &DatabaseConnection, phone: &str) -> AppResult<Option<users::Model>> {
    Ok(users::Entity::find()
        .filter(users::Column::Phone.eq(phone))
        .filter(users::Column::DeletedAt.is_null())
        .one(db)
        .await?)
}

/// What proves the right to reset a password: a RESET_PASSWORD code sent to the account's phone,
/// or to its verified email address.
#[derive(Debug, Clone, Copy)]
pub enum ResetProof<'a> {
    Phone(&'a str),
    Email(&'a str),
}

/// Sets a new password for the holder of a RESET_PASSWORD code: every session of the account ends
/// (its sockets close on every instance), the number's sign-in lock is lifted, and the member gets a
/// security notice in-site (and at their verified email address). One path for both proofs: only
/// the code that is checked differs.
pub async fn reset_password(
    db: &DatabaseConnection,
    broker: &Broker,
    keys: &crate::seal::Sealer,
    proof: ResetProof<'_>,
    code: &str,
    new_password: String,
) -> AppResult<()> {
    validate::password("input.newPassword", &new_password)?;
    let (user, by) = match proof {
        ResetProof::Phone(phone) => {
            let phone = validate::phone("input.phone", phone)?;
            phone_codes::consume(db, keys, &phone, Purpose::ResetPassword, code, "input.code", Utc::now()).await?;
            let user =
                live_user_by_phone(db, &phone).await?.ok_or(AppError::NotFound("account with this phone number"))?;
            (user, "phone")
        }
        ResetProof::Email(address) => {
            (crate::services::email::consume_reset(db, keys, address, code, Utc::now()).await?, "email")
        }
    };
    let hash = hash_password(new_password).await?;
    let notice = format!(
        "Your password was reset with a code sent to your {by}: every device was signed out and every app you had authorized lost its access. If this was not you, reset it again and contact us."
    );
    set_password(db, broker, keys, user.id, hash, None, &notice).await?;
    if let Some(phone) = &user.phone {
        signin::clear(db, &signin::phone_key(keys, phone)).await?;
    }
    Ok(())
}

/// The signed-in member changes their password. A wrong `current` counts toward the sign-in lock
/// exactly like every password re-entry ([`confirm_password`]); on success every other session of
/// the member ends and they get a security notice in-site.
pub async fn change_password(
    db: &DatabaseConnection,
    broker: &Broker,
    keys: &crate::seal::Sealer,
    viewer: &Viewer,
    current: String,
    new_password: String,
) -> AppResult<()> {
    // Checked first, so a malformed new password does not spend an attempt.
    validate::password("input.newPassword", &new_password)?;
    let user = users::Entity::find_by_id(viewer.user_id)
        .filter(users::Column::DeletedAt.is_null())
        .one(db)
        .await?
        .ok_or(AppError::Unauthenticated)?;
    confirm_password(db, keys, &user, "input.currentPassword", current).await?;
    let hash = hash_password(new_password).await?;
    set_password(db, broker, keys, user.id, hash, Some(viewer.session_id), "Your password was changed and your other devices were signed out. If this was not you, reset your password with a code sent to your phone.").await
}

/// Moves the signed-in member to a new phone number, proven by a CHANGE_PHONE code sent to it, with
/// the current password as a second proof (a session alone, perhaps stolen, must not take over the
/// account's recovery number). The member gets a security notice in-site and on the new number,
/// and the old number is told by SMS, so a hijack does not go unseen. Sessions stay.
/// `INVALID_CODE` until the code is proven; then a wrong password counts toward the sign-in lock,
/// and a number another account uses is `CONFLICT`.
pub async fn change_phone(
    db: &DatabaseConnection,
    broker: &Broker,
    keys: &crate::seal::Sealer,
    viewer: &Viewer,
    new_phone: &str,
    code: &str,
    password: String,
) -> AppResult<users::Model> {
    let new_phone = validate::phone("input.newPhone", new_phone)?;
    let user = users::Entity::find_by_id(viewer.user_id)
        .filter(users::Column::DeletedAt.is_null())
        .one(db)
        .await?
        .ok_or(AppError::Unauthenticated)?;
    if user.phone.as_deref() == Some(new_phone.as_str()) {
        return Err(AppError::bad_input("input.newPhone", "is already this account's number"));
    }
    phone_codes::consume(db, keys, &new_phone, Purpose::ChangePhone, code, "input.code", Utc::now()).await?;
    confirm_password(db, keys, &user, "input.currentPassword", password).await?;
    let old_phone = user.phone.clone();
    let shown = crate::sms::mask(&new_phone);
    let mut outbox = Outbox::default();
    let txn = db.begin().await?;
    let mut changed: users::ActiveModel = user.into();
    changed.phone = Set(Some(new_phone));
    changed.updated_at = Set(Utc::now());
    let changed = changed
        .update(&txn)
        .await
        .map_err(|e| AppError::conflict_on_unique(e, "this phone number is already registered"))?;
    let notice = format!("Your ecer phone number was changed to {shown}. If this was not you, contact us at once.");
    notifications::record(
        &txn,
        NewNotification {
            user_id: changed.id,
            kind: notifications::Kind::SecurityNotice,
            actor_id: None,
            post_id: None,
            comment_id: None,
            body: Some(notice.clone()),
        },
        &mut outbox,
    )
    .await?;
    crate::services::notices::queue_off_site(&txn, keys, &[changed.id], &notice, None).await?;
    if let Some(old) = &old_phone {
        crate::services::notices::queue_to_number(&txn, keys, old, &notice).await?;
    }
    txn.commit().await?;
    broker.publish_all(outbox).await;
    Ok(changed)
}

/// Stores a new password hash, ends the account's sessions but `keep`, and records the security
/// notice (in-site, and queued for the verified email address), in one transaction; then tells
/// every instance.
async fn set_password(
    db: &DatabaseConnection,
    broker: &Broker,
    keys: &crate::seal::Sealer,
    user_id: i64,
    hash: String,
    keep: Option<i64>,
    notice: &str,
) -> AppResult<()> {
    let mut outbox = Outbox::default();
    let txn = db.begin().await?;
    users::Entity::update_many()
        .col_expr(users::Column::PasswordHash, Expr::value(Some(hash)))
        .col_expr(users::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(users::Column::Id.eq(user_id))
        .exec(&txn)
        .await?;
    let mut ended = sessions::Entity::delete_many().filter(sessions::Column::UserId.eq(user_id));
    if let Some(keep) = keep {
        ended = ended.filter(sessions::Column::Id.ne(keep));
    }
    ended.exec(&txn).await?;
    if keep.is_none() {
        // A reset is the way back from a lost account: apps authorized meanwhile lose access too.
        crate::services::oauth::revoke_all(&txn, user_id, "the password was reset").await?;
    }
    notifications::record(
        &txn,
        NewNotification {
            user_id,
            kind: notifications::Kind::SecurityNotice,
            actor_id: None,
            post_id: None,
            comment_id: None,
            body: Some(notice.to_string()),
        },
        &mut outbox,
    )
    .await?;
    crate::services::notices::queue_off_site(&txn, keys, &[user_id], notice, None).await?;
    txn.commit().await?;
    broker.publish(Topic::User(user_id), Event::SessionsRevoked).await;
    broker.publish_all(outbox).await;
    Ok(())
}

async fn open_session(db: &DatabaseConnection, user: users::Model, meta: SessionMeta) -> AppResult<NewSession> {
    let token = auth::new_token().map_err(AppError::internal)?;
    let now = Utc::now();
    let expires_at = now + meta.ttl;
    sessions::ActiveModel {
        user_id: Set(user.id),
        token_hash: Set(auth::hash_token(&token)),
        created_at: Set(now),
        expires_at: Set(expires_at),
        last_seen_at: Set(now),
        user_agent: Set(meta.user_agent.map(|ua| ua.chars().take(512).collect())),
        ip: Set(meta.ip),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(NewSession { token, user, expires_at })
}

/// Ends the viewer's session, or every session of the account with `all_devices`.
/// Open WebSockets of the account hear of it through the broker and close within a moment.
pub async fn logout(db: &DatabaseConnection, broker: &Broker, viewer: &Viewer, all_devices: bool) -> AppResult<()> {
    let delete = sessions::Entity::delete_many();
    let delete = if all_devices {
        delete.filter(sessions::Column::UserId.eq(viewer.user_id))
    } else {
        delete.filter(sessions::Column::Id.eq(viewer.session_id))
    };
    delete.exec(db).await?;
    broker.publish(Topic::User(viewer.user_id), Event::SessionsRevoked).await;
    Ok(())
}

/// Ends one of the viewer's sessions (a lost phone, say). NOT_FOUND for anyone else's session.
pub async fn revoke_session(
    db: &DatabaseConnection,
    broker: &Broker,
    viewer: &Viewer,
    session_id: i64,
) -> AppResult<()> {
    let gone = sessions::Entity::delete_many()
        .filter(sessions::Column::Id.eq(session_id))
        .filter(sessions::Column::UserId.eq(viewer.user_id))
        .exec(db)
        .await?;
    if gone.rows_affected == 0 {
        return Err(AppError::NotFound("session"));
    }
    broker.publish(Topic::User(viewer.user_id), Event::SessionsRevoked).await;
    Ok(())
}

/// The viewer's live sessions (signed-in devices), most recently used first.
/// One session by id, whoever's it is (callers check the owner).
pub async fn session_by_id(db: &DatabaseConnection, id: i64) -> AppResult<Option<sessions::Model>> {
    Ok(sessions::Entity::find_by_id(id).one(db).await?)
}

pub async fn sessions_of(db: &DatabaseConnection, viewer: &Viewer) -> AppResult<Vec<sessions::Model>> {
    Ok(sessions::Entity::find()
        .filter(sessions::Column::UserId.eq(viewer.user_id))
        .filter(sessions::Column::ExpiresAt.gt(Utc::now()))
        .order_by_desc(sessions::Column::LastSeenAt)
        .order_by_desc(sessions::Column::Id)
        .all(db)
        .await?)
}

/// Whether a suspension holds at `now`: set, and either open-ended or not yet over.
pub fn is_suspended(user: &users::Model, now: DateTime<Utc>) -> bool {
    user.banned_at.is_some() && user.banned_until.is_none_or(|until| until > now)
}

/// [`is_suspended`]'s negation as a filter on `users`, for the queries that admit a member.
pub fn not_suspended(now: DateTime<Utc>) -> Condition {
    Condition::any().add(users::Column::BannedAt.is_null()).add(users::Column::BannedUntil.lte(now))
}

/// Suspends an account (MODERATOR or ADMIN), until `until` or until reinstated: it cannot sign in,
/// every session ends, and its open sockets close on every instance. Moderators cannot suspend
/// staff; nobody can suspend themselves.
pub async fn ban(
    db: &DatabaseConnection,
    broker: &Broker,
    staff: &Viewer,
    note: audit::Note<'_>,
    user_id: i64,
    banned: bool,
    until: Option<DateTime<Utc>>,
) -> AppResult<users::Model> {
    // Asked once before the look-up, so a member cannot probe which ids exist.
    authz::require(Some(staff), Action::Moderate { target: user_id, target_role: Role::User })?;
    let reason = note.required_reason()?;
    let target = users::Entity::find_by_id(user_id)
        .filter(users::Column::DeletedAt.is_null())
        .one(db)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    authz::require(Some(staff), Action::Moderate { target: user_id, target_role: Role::parse(&target.role)? })?;
    // A new suspension never shortens one in force: the later end wins, and none is the latest.
    // Decided inside the UPDATE, so two staff suspending at once cannot shorten it either.
    let now = Utc::now();
    let none = || Expr::value(Option::<DateTime<Utc>>::None);
    let held = || Expr::col(users::Column::BannedUntil);
    let in_force = || Expr::col(users::Column::BannedAt).is_not_null().and(held().is_null().or(held().gt(now)));
    let new_until = match until.filter(|_| banned) {
        None => none(),
        Some(asked) => Expr::case(in_force().and(held().is_null()), none())
            .case(in_force().and(held().gt(asked)), held())
            .finally(Expr::value(asked))
            .into(),
    };
    let txn = db.begin().await?;
    users::Entity::update_many()
        .col_expr(users::Column::BannedUntil, new_until)
        .col_expr(users::Column::BannedAt, Expr::value(banned.then_some(now)))
        .filter(users::Column::Id.eq(user_id))
        .exec(&txn)
        .await?;
    let action = if banned { audit::Action::BanUser } else { audit::Action::UnbanUser };
    let target = match until.filter(|_| banned) {
        Some(until) => format!("User:{user_id}:until:{}", until.format("%Y-%m-%dT%H:%MZ")),
        None => format!("User:{user_id}"),
    };
    let entry = audit::Entry::new(action, Some(user_id), target).because(Some(reason));
    audit::record(&txn, staff, note.ip, entry).await?;
    if banned {
        sessions::Entity::delete_many().filter(sessions::Column::UserId.eq(user_id)).exec(&txn).await?;
    }
    txn.commit().await?;
    if banned {
        broker.publish(Topic::User(user_id), Event::SessionsRevoked).await;
    }
    users::Entity::find_by_id(user_id).one(db).await?.ok_or(AppError::NotFound("user"))
}

/// Gives a member a staff role or takes it away (ADMIN only; audited). An admin cannot demote
/// themselves, so the community is never left without one by accident. The member's open sockets, on
/// every instance, take the new role at once and end what it no longer allows.
pub async fn set_role(
    db: &DatabaseConnection,
    broker: &Broker,
    admin: &Viewer,
    note: audit::Note<'_>,
    user_id: i64,
    role: Role,
) -> AppResult<users::Model> {
    authz::require(Some(admin), Action::SetRole { target: user_id })?;
    let reason = note.required_reason()?;
    let txn = db.begin().await?;
    let updated = users::Entity::update_many()
        .col_expr(users::Column::Role, Expr::value(role.as_str()))
        .filter(users::Column::Id.eq(user_id))
        .filter(users::Column::DeletedAt.is_null())
        .exec(&txn)
        .await?;
    if updated.rows_affected == 0 {
        return Err(AppError::NotFound("user"));
    }
    let target = format!("User:{user_id}:{}", role.as_str());
    audit::record(
        &txn,
        admin,
        note.ip,
        audit::Entry::new(audit::Action::SetRole, Some(user_id), target).because(Some(reason)),
    )
    .await?;
    txn.commit().await?;
    broker.publish(Topic::User(user_id), Event::AccessChanged).await;
    users::Entity::find_by_id(user_id).one(db).await?.ok_or(AppError::NotFound("user"))
}

/// The live member with this account name (already normalised by `validate::account_name`).
pub async fn id_by_account_name(db: &DatabaseConnection, name: &str) -> AppResult<Option<i64>> {
    let found = users::Entity::find()
        .filter(users::Column::AccountName.eq(name))
        .filter(users::Column::DeletedAt.is_null())
        .one(db)
        .await?;
    Ok(found.map(|u| u.id))
}

/// A partial profile update: `None` leaves a field alone; `Some(None)` clears a clearable field.
#[derive(Default)]
pub struct ProfilePatch {
    pub nickname: Option<String>,
    pub avatar_url: Option<Option<String>>,
    pub gender: Option<Gender>,
    pub signature: Option<Option<String>>,
}

pub async fn update_profile(db: &DatabaseConnection, viewer: &Viewer, patch: ProfilePatch) -> AppResult<users::Model> {
    let mut user = users::ActiveModel { id: sea_orm::ActiveValue::Unchanged(viewer.user_id), ..Default::default() };
    if let Some(nickname) = patch.nickname {
        user.nickname = Set(validate::text("input.nickname", &nickname, 1, NICKNAME_MAX, Lines::Single)?);
    }
    if let Some(avatar) = patch.avatar_url {
        user.avatar_url = Set(match avatar {
            Some(url) if !url.trim().is_empty() => Some(validate::http_url("input.avatarUrl", &url)?),
            _ => None,
        });
    }
    if let Some(gender) = patch.gender {
        user.gender = Set(gender.as_str().to_string());
    }
    if let Some(signature) = patch.signature {
        user.signature =
            Set(validate::optional_text("input.signature", signature.as_deref(), SIGNATURE_MAX, Lines::Multi)?);
    }
    user.updated_at = Set(Utc::now());
    let user = user.update(db).await?;
    index_user(db, &user).await?;
    Ok(user)
}

/// What a member is found by: the names they chose to show.
async fn index_user<C: ConnectionTrait>(db: &C, user: &users::Model) -> AppResult<()> {
    let text = [Some(user.nickname.as_str()), user.account_name.as_deref(), user.signature.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("\n");
    crate::services::search::index(db, crate::services::search::Kind::User, user.id, None, &text, user.created_at).await
}

/// The start-up path to a first administrator: creates the account, or promotes and re-keys an
/// existing one with that phone. Not reachable over the API. With Redis configured, the re-keyed
/// account's open sockets close at once; with the in-process broker (another process) they close at
/// their next periodic session check.
pub async fn create_admin(
    db: &DatabaseConnection,
    broker: &Broker,
    phone: &str,
    password: String,
    nickname: &str,
) -> AppResult<users::Model> {
    let phone = validate::phone("phone", phone)?;
    validate::password("password", &password)?;
    let nickname = validate::text("nickname", nickname, 1, NICKNAME_MAX, Lines::Single)?;
    let hash = hash_password(password).await?;
    let now = Utc::now();
    if let Some(existing) = users::Entity::find().filter(users::Column::Phone.eq(phone.clone())).one(db).await? {
        // A new password ends every session opened with the old one.
        sessions::Entity::delete_many().filter(sessions::Column::UserId.eq(existing.id)).exec(db).await?;
        let mut user: users::ActiveModel = existing.into();
        user.role = Set(Role::Admin.as_str().into());
        user.password_hash = Set(Some(hash));
        user.updated_at = Set(now);
        let user = user.update(db).await?;
        broker.publish(Topic::User(user.id), Event::SessionsRevoked).await;
        return Ok(user);
    }
    Ok(users::ActiveModel {
        phone: Set(Some(phone)),
        password_hash: Set(Some(hash)),
        nickname: Set(nickname),
        gender: Set(Gender::Unspecified.as_str().into()),
        role: Set(Role::Admin.as_str().into()),
        follower_count: Set(0),
        following_count: Set(0),
        post_count: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?)
}

/// Live (not erased) users by id, in no particular order.
pub async fn users_by_ids<C: ConnectionTrait>(db: &C, ids: &[i64]) -> AppResult<Vec<users::Model>> {
    Ok(users::Entity::find()
        .filter(users::Column::Id.is_in(ids.iter().copied()))
        .filter(users::Column::DeletedAt.is_null())
        .all(db)
        .await?)
}

/// Bounds concurrent argon2 work to the number of cores: each hash holds about 19 MiB and a core for
/// tens of milliseconds, so a burst of logins must queue rather than exhaust memory.
async fn argon2_permit() -> AppResult<tokio::sync::SemaphorePermit<'static>> {
    static PERMITS: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    });
    PERMITS.acquire().await.map_err(AppError::internal)
}

/// Argon2id with the crate's default (OWASP-recommended) parameters, off the async threads.
pub async fn hash_password(password: String) -> AppResult<String> {
    let _permit = argon2_permit().await?;
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(AppError::internal)?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| AppError::internal(e.to_string()))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AppError::internal(e.to_string()))
    })
    .await
    .map_err(AppError::internal)?
}

/// A fixed valid hash to verify against when the phone is unknown, so both paths cost the same.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$wXv0d+GJ6nH7k8R6WQ0b3yNkGdH7i2Jv1lJ7OZ9Mf0I";

/// A signed-in member re-enters their password to confirm something grave (deleting the account).
/// Failures count toward the same lock as sign-in failures for the account's number, so a stolen
/// session is not a way to guess the password: after [`signin::MAX_FAILURES`] the answer is
/// ACCOUNT_LOCKED, for this confirmation and for sign-in alike. A wrong password is BAD_USER_INPUT on
/// `field`.
pub async fn confirm_password(
    db: &DatabaseConnection,
    keys: &crate::seal::Sealer,
    user: &users::Model,
    field: &str,
    password: String,
) -> AppResult<()> {
    let key = match &user.phone {
        Some(phone) => signin::phone_key(keys, phone),
        // Every live account has a phone; this keeps a row without one from escaping the lock.
        None => signin::phone_key(keys, &format!("user:{}", user.id)),
    };
    signin::check_lock(db, &key).await?;
    if verify_password(password, user.password_hash.clone()).await? {
        signin::clear(db, &key).await?;
        Ok(())
    } else {
        signin::record_failure(db, &key).await?;
        Err(AppError::bad_input(field, "the password is wrong"))
    }
}

async fn verify_password(password: String, stored: Option<String>) -> AppResult<bool> {
    let _permit = argon2_permit().await?;
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| DUMMY_HASH.to_string());
        let ok = match PasswordHash::new(&hash) {
            Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
            Err(_) => false,
        };
        known && ok
    })
    .await
    .map_err(AppError::internal)
}
