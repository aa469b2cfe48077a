//! `--demo`: a first run that shows a living community. On an empty database it plants the
//! deterministic demo community (the same data as `seed`), starts one live stream with a few chat
//! lines, and says how to sign in. It never writes into a database that already has members (demo
//! data must not mix with real data), and it refuses production settings outright.

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};

use crate::app::AppState;
use crate::auth::{Role, Viewer};
use crate::config::Config;
use crate::seed;
use crate::services::live;

/// The member the demo's sign-in tab uses: the first seeded member.
pub const DEMO_PHONE: &str = "+8613900000001";
/// Members and posts of the demo community: big enough to page and search, small enough to plant in
/// about a second on a laptop.
const DEMO_SIZE: seed::Size = seed::Size { users: 200, posts: 1_000 };
const DEMO_SEED: u64 = 42;
const DEMO_STREAM_TITLE: &str = "Live Q&A: FOB or CIF for your first container? 直播答疑";
const DEMO_CHAT: [&str; 3] = [
    "Welcome! Ask anything about your first shipment.",
    "FOB 还是 CIF？看你对运费的把握。",
    "Tip: open the OnLiveChat tab in GraphiQL to watch this room.",
];

/// Settings that mark a production deployment, where demo data must never appear.
pub fn refuse_in_production(config: &Config) -> Result<(), String> {
    if config.session_cookie_secure || config.trusted_documents {
        return Err("DEMO cannot be used with production settings (SESSION_COOKIE_SECURE or TRUSTED_DOCUMENTS)".into());
    }
    Ok(())
}

/// What start-up prints after preparing the demo.
pub async fn prepare(state: &AppState) -> Result<String, String> {
    refuse_in_production(&state.config)?;
    let db = &state.db;
    let members = entity::users::Entity::find().count(db).await.map_err(|e| format!("demo: {e}"))?;
    if members > 0 {
        return Ok(format!(
            "demo: the database already has {members} members, so no demo data was added (it never mixes with real data)"
        ));
    }
    let summary = seed::run(db, DEMO_SIZE, DEMO_SEED).await.map_err(|e| format!("demo: {e}"))?;
    let host = entity::users::Entity::find()
        .filter(entity::users::Column::Phone.eq(DEMO_PHONE))
        .order_by_asc(entity::users::Column::Id)
        .one(db)
        .await
        .map_err(|e| format!("demo: {e}"))?
        .ok_or("demo: the seeded community has no first member")?;
    // The host is a seeded member acting through the same services a client would call.
    let viewer = Viewer { user_id: host.id, role: Role::User, session_id: 0, app: None };
    let stream = live::create(db, &viewer, DEMO_STREAM_TITLE, None, None).await.map_err(|e| format!("demo: {e:?}"))?;
    live::start(db, &state.broker, &viewer, stream.id).await.map_err(|e| format!("demo: {e:?}"))?;
    for line in DEMO_CHAT {
        live::say(db, &state.broker, &viewer, stream.id, line).await.map_err(|e| format!("demo: {e:?}"))?;
    }
    Ok(format!(
        "demo: {summary}; one live stream is on air. Sign in as {DEMO_PHONE} with password {} (the Login tab in GraphiQL does it for you)",
        seed::PASSWORD
    ))
}

/// Ids GraphiQL's first tabs start with, so every tab runs as it opens: the newest post and a
/// stream that is on air (either may be missing in an empty community).
#[derive(Debug, Default, Clone, Copy)]
pub struct Examples {
    pub post: Option<i64>,
    pub live_stream: Option<i64>,
}

pub async fn examples(db: &sea_orm::DatabaseConnection) -> Result<Examples, sea_orm::DbErr> {
    let post = entity::posts::Entity::find()
        .filter(entity::posts::Column::DeletedAt.is_null())
        .order_by_desc(entity::posts::Column::Id)
        .one(db)
        .await?
        .map(|p| p.id);
    let live_stream = entity::live_streams::Entity::find()
        .filter(entity::live_streams::Column::Status.eq(live::Status::Live.as_str()))
        .order_by_desc(entity::live_streams::Column::Id)
        .one(db)
        .await?
        .map(|s| s.id);
    Ok(Examples { post, live_stream })
}
