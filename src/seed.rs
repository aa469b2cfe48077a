//! A deterministic demo community: trade boards, members, posts in Chinese and English, comments with
//! replies, likes, favourites and follows. The same seed and sizes give the same data (timestamps are
//! laid out from a fixed date, the random generator is ChaCha8), so benchmarks are repeatable.
//!
//! Every seeded member can sign in with the password [`PASSWORD`]; phones are `+86139` followed by the
//! member's number on 8 digits (`+8613900000001`, ...).

use std::collections::HashSet;

use argon2::password_hash::{PasswordHasher, SaltString};
use chrono::{DateTime, Duration, TimeZone, Utc};
use entity::{board_follows, boards, comments, favorites, post_likes, posts, search_documents, user_follows, users};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sea_orm::{ActiveValue::Set, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, TransactionTrait};

use crate::services::posts::hot_score;

pub const PASSWORD: &str = "ecer-demo-password";

pub struct Size {
    pub users: u32,
    pub posts: u32,
}

/// Whether members have planted interests: each favours two boards, where most of their likes go
/// (for measuring the recommended feed offline). Off, likes fall anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interests {
    #[default]
    Uniform,
    Planted,
}

/// The two boards member `user` favours under [`Interests::Planted`] (1-based board ids).
pub fn favourite_boards(user: i64, seed: u64) -> [i64; 2] {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x1e7e_5eed ^ (user as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let n = BOARDS.len() as i64;
    let first = rng.random_range(1..=n);
    let second = (first + rng.random_range(1..n) - 1) % n + 1;
    [first, second]
}

const BOARDS: [(&str, &str, &str); 12] = [
    ("trade-practice", "外貿實戰", "詢盤、報價、成交的實戰經驗 Real-world deals from inquiry to order"),
    ("rfq-inquiries", "詢盤分析 RFQ", "How to read and answer RFQs; 判斷真假詢盤"),
    ("pricing-incoterms", "報價與貿易術語", "FOB, CIF, EXW, DDP 報價技巧 and Incoterms 2020"),
    ("logistics", "海運物流 Logistics", "Shipping, freight forwarders, 訂艙、拼箱、清關"),
    ("payments", "收款與信用證", "L/C, T/T, D/P 收款風險 and payment terms"),
    ("customs", "報關清關 Customs", "HS codes, 報關單證, certificates of origin"),
    ("sourcing", "工廠採購 Sourcing", "Finding suppliers, factory audits, 驗廠與品控"),
    ("cross-border-ecommerce", "跨境電商", "Amazon, Alibaba.com, 獨立站 and marketplaces"),
    ("exhibitions", "展會 Trade Fairs", "Canton Fair 廣交會, overseas exhibitions, booth tips"),
    ("compliance", "合規與認證", "CE, FCC, REACH, 出口管制 export control"),
    ("markets", "市場開發 Markets", "Middle East, Africa, LATAM, 東南亞 market notes"),
    ("career", "外貿職場 Career", "Jobs, salaries, 業務員成長 and team building"),
];

const SURNAMES: [&str; 16] =
    ["王", "李", "張", "劉", "陳", "楊", "黃", "趙", "吳", "周", "徐", "孫", "馬", "朱", "胡", "林"];
const GIVEN: [&str; 12] = ["偉", "芳", "娜", "敏", "靜", "強", "磊", "洋", "勇", "艷", "傑", "濤"];
const LATIN: [&str; 12] =
    ["Alice", "Ben", "Chloe", "David", "Emma", "Frank", "Grace", "Henry", "Ivy", "Jack", "Kate", "Leo"];

const TOPICS: [&str; 16] = [
    "FOB 報價",
    "CIF price",
    "詢盤回覆",
    "RFQ follow-up",
    "信用證 L/C",
    "T/T 30% deposit",
    "海運費上漲",
    "container shipping",
    "清關文件",
    "HS code",
    "驗廠",
    "factory audit",
    "廣交會",
    "Canton Fair",
    "樣品費",
    "MOQ negotiation",
];
const PRODUCTS: [&str; 12] = [
    "LED 燈具",
    "solar panels",
    "家具 furniture",
    "textiles 紡織品",
    "機械配件",
    "auto parts",
    "包裝材料",
    "toys 玩具",
    "陶瓷 ceramics",
    "electronics",
    "五金 hardware",
    "garments 服裝",
];
const MARKETS: [&str; 10] =
    ["中東", "Middle East", "非洲", "Africa", "南美", "Latin America", "東南亞", "Southeast Asia", "歐洲", "the EU"];
const COMMENTS: [&str; 10] = [
    "好問題，我們也遇到過 same here",
    "建議先報 FOB，再談 CIF",
    "Ask for a 30% deposit before production.",
    "這個客戶很可能是詢價比價的",
    "Check the buyer on the customs data first.",
    "謝謝分享，很有用！",
    "MOQ 可以談，樣品費可以退",
    "We switched forwarders and saved 15%.",
    "信用證條款一定要仔細看",
    "Agree, the Incoterm matters more than the price.",
];

fn pick<'a>(rng: &mut ChaCha8Rng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

/// Inserts rows in chunks small enough for every back end's bind-parameter limit.
async fn insert_chunks<E, A, C>(db: &C, rows: Vec<A>) -> Result<(), DbErr>
where
    E: EntityTrait,
    A: sea_orm::ActiveModelTrait<Entity = E> + Send,
    C: sea_orm::ConnectionTrait,
{
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(400).collect();
        E::insert_many(chunk).exec_without_returning(db).await?;
    }
    Ok(())
}

/// Inserts a set of (actor, target) edges in sorted order, so ids are the same on every run.
async fn insert_edges<E, A, C>(db: &C, pairs: HashSet<(i64, i64)>, row: impl Fn(i64, i64) -> A) -> Result<(), DbErr>
where
    E: EntityTrait,
    A: sea_orm::ActiveModelTrait<Entity = E> + Send,
    C: sea_orm::ConnectionTrait,
{
    let mut pairs: Vec<(i64, i64)> = pairs.into_iter().collect();
    pairs.sort_unstable();
    insert_chunks(db, pairs.into_iter().map(|(a, b)| row(a, b)).collect()).await
}

/// Fills an empty database. Refuses to run on one that already has members, so it cannot mix demo
/// data into real data.
pub async fn run(db: &DatabaseConnection, size: Size, seed: u64) -> Result<String, DbErr> {
    run_with(db, size, seed, Interests::Uniform).await
}

pub async fn run_with(db: &DatabaseConnection, size: Size, seed: u64, interests: Interests) -> Result<String, DbErr> {
    if users::Entity::find().count(db).await? > 0 {
        return Err(DbErr::Custom("the database already has users; seed an empty database".into()));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let base: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 9, 1, 0, 0, 0).single().unwrap_or_default();
    let span_secs: i64 = 90 * 24 * 3600;
    // One argon2 hash (fixed salt) for every demo member: hashing thousands would take minutes.
    let salt = SaltString::from_b64("ZWNlcmRlbW9zYWx0").map_err(|e| DbErr::Custom(e.to_string()))?;
    let hash = argon2::Argon2::default()
        .hash_password(PASSWORD.as_bytes(), &salt)
        .map_err(|e| DbErr::Custom(e.to_string()))?
        .to_string();

    let n_users = size.users.max(2) as i64;
    let n_posts = size.posts as i64;
    let n_boards = BOARDS.len() as i64;

    // Plan everything in memory first, so counters are exact and written once.
    let mut user_rows: Vec<(i64, String, String, DateTime<Utc>)> = Vec::new();
    for i in 1..=n_users {
        let nickname = if rng.random_bool(0.6) {
            format!("{}{}", pick(&mut rng, &SURNAMES), pick(&mut rng, &GIVEN))
        } else {
            format!("{} {}", pick(&mut rng, &LATIN), pick(&mut rng, &SURNAMES))
        };
        let created = base + Duration::seconds(rng.random_range(0..span_secs / 3));
        user_rows.push((i, format!("+86139{i:08}"), nickname, created));
    }
    let mut post_rows = Vec::new();
    let mut board_posts = vec![0i64; BOARDS.len()];
    let mut user_posts = vec![0i64; n_users as usize + 1];
    for i in 1..=n_posts {
        // A few boards are much busier than the rest, as in any forum.
        let board = (rng.random_range(0.0f64..1.0).powi(2) * n_boards as f64) as i64 + 1;
        let author = rng.random_range(1..=n_users);
        let created = base + Duration::seconds(span_secs * i / n_posts.max(1));
        let title =
            format!("{} {} — {}?", pick(&mut rng, &TOPICS), pick(&mut rng, &PRODUCTS), pick(&mut rng, &MARKETS));
        let body = format!(
            "{}。我們做{}出口到{}，客戶問 {}。\n\nAny advice on {} and {}?",
            pick(&mut rng, &TOPICS),
            pick(&mut rng, &PRODUCTS),
            pick(&mut rng, &MARKETS),
            pick(&mut rng, &TOPICS),
            pick(&mut rng, &TOPICS),
            pick(&mut rng, &PRODUCTS)
        );
        board_posts[(board - 1) as usize] += 1;
        user_posts[author as usize] += 1;
        post_rows.push((i, board, author, title, body, created));
    }

    let mut comment_rows = Vec::new();
    let mut post_comments = vec![0i64; n_posts as usize + 1];
    let mut next_comment = 1i64;
    for &(post, _, _, _, _, created) in &post_rows {
        let top = rng.random_range(0..6);
        let mut thread: Vec<i64> = Vec::new();
        for _ in 0..top {
            let parent = if !thread.is_empty() && rng.random_bool(0.35) {
                Some(thread[rng.random_range(0..thread.len())])
            } else {
                None
            };
            let at = created + Duration::seconds(rng.random_range(60..3 * 24 * 3600));
            comment_rows.push((
                next_comment,
                post,
                rng.random_range(1..=n_users),
                parent,
                pick(&mut rng, &COMMENTS),
                at,
            ));
            thread.push(next_comment);
            next_comment += 1;
            post_comments[post as usize] += 1;
        }
    }
    let mut reply_counts = vec![0i64; next_comment as usize];
    for c in &comment_rows {
        if let Some(p) = c.3 {
            reply_counts[p as usize] += 1;
        }
    }

    let mut likes = HashSet::new();
    let mut favs = HashSet::new();
    let mut post_likes_n = vec![0i64; n_posts as usize + 1];
    let mut post_favs_n = vec![0i64; n_posts as usize + 1];
    // Planted interests draw from their own generator, so the rest of the data set stays the same.
    let mut board_index: Vec<Vec<i64>> = vec![Vec::new(); BOARDS.len() + 1];
    for (id, board, ..) in &post_rows {
        board_index[*board as usize].push(*id);
    }
    let mut taste = ChaCha8Rng::seed_from_u64(seed.wrapping_add(1));
    for _ in 0..(n_posts * 3) {
        let (u, mut p) = (rng.random_range(1..=n_users), rng.random_range(1..=n_posts.max(1)));
        if interests == Interests::Planted && taste.random_bool(0.8) {
            let boards = favourite_boards(u, seed);
            let pool = &board_index[boards[taste.random_range(0..2)] as usize];
            if !pool.is_empty() {
                p = pool[taste.random_range(0..pool.len())];
            }
        }
        if n_posts > 0 && likes.insert((u, p)) {
            post_likes_n[p as usize] += 1;
        }
    }
    for _ in 0..(n_posts / 2) {
        let (u, p) = (rng.random_range(1..=n_users), rng.random_range(1..=n_posts.max(1)));
        if favs.insert((u, p)) {
            post_favs_n[p as usize] += 1;
        }
    }
    let mut follows = HashSet::new();
    let mut followers_n = vec![0i64; n_users as usize + 1];
    let mut following_n = vec![0i64; n_users as usize + 1];
    for _ in 0..(n_users * 4) {
        let (a, b) = (rng.random_range(1..=n_users), rng.random_range(1..=n_users));
        if a != b && follows.insert((a, b)) {
            following_n[a as usize] += 1;
            followers_n[b as usize] += 1;
        }
    }
    let mut board_follows_set = HashSet::new();
    let mut board_followers = vec![0i64; BOARDS.len()];
    for _ in 0..(n_users * 2) {
        let (u, b) = (rng.random_range(1..=n_users), rng.random_range(1..=n_boards));
        if board_follows_set.insert((u, b)) {
            board_followers[(b - 1) as usize] += 1;
        }
    }

    let txn = db.begin().await?;
    insert_chunks(
        &txn,
        user_rows
            .iter()
            .map(|(id, phone, nickname, created)| users::ActiveModel {
                banned_at: Set(None),
                banned_until: Set(None),
                id: Set(*id),
                phone: Set(Some(phone.clone())),
                password_hash: Set(Some(hash.clone())),
                account_name: Set(None),
                email: Set(None),
                email_verified_at: Set(None),
                pending_email: Set(None),
                nickname: Set(nickname.clone()),
                avatar_url: Set(None),
                gender: Set("UNSPECIFIED".into()),
                signature: Set(None),
                role: Set("USER".into()),
                follower_count: Set(followers_n[*id as usize]),
                following_count: Set(following_n[*id as usize]),
                post_count: Set(user_posts[*id as usize]),
                created_at: Set(*created),
                updated_at: Set(*created),
                deleted_at: Set(None),
            })
            .collect(),
    )
    .await?;
    insert_chunks(
        &txn,
        BOARDS
            .iter()
            .enumerate()
            .map(|(i, (slug, name, description))| boards::ActiveModel {
                id: Set(i as i64 + 1),
                slug: Set(slug.to_string()),
                name: Set(name.to_string()),
                description: Set(description.to_string()),
                created_by: Set(None),
                follower_count: Set(board_followers[i]),
                post_count: Set(board_posts[i]),
                created_at: Set(base),
            })
            .collect(),
    )
    .await?;
    insert_chunks(
        &txn,
        post_rows
            .iter()
            .map(|(id, board, author, title, body, created)| {
                let (l, c, f) = (post_likes_n[*id as usize], post_comments[*id as usize], post_favs_n[*id as usize]);
                posts::ActiveModel {
                    id: Set(*id),
                    board_id: Set(*board),
                    author_id: Set(*author),
                    title: Set(title.clone()),
                    body: Set(body.clone()),
                    image_urls: Set(serde_json::json!([])),
                    like_count: Set(l),
                    comment_count: Set(c),
                    favorite_count: Set(f),
                    view_count: Set(0),
                    hot_score: Set(hot_score(l, c, f, 0, *created)),
                    created_at: Set(*created),
                    updated_at: Set(*created),
                    deleted_at: Set(None),
                }
            })
            .collect(),
    )
    .await?;
    insert_chunks(
        &txn,
        comment_rows
            .iter()
            .map(|(id, post, author, parent, body, at)| comments::ActiveModel {
                id: Set(*id),
                post_id: Set(*post),
                author_id: Set(*author),
                parent_id: Set(*parent),
                body: Set(body.to_string()),
                like_count: Set(0),
                reply_count: Set(reply_counts[*id as usize]),
                created_at: Set(*at),
                deleted_at: Set(None),
            })
            .collect(),
    )
    .await?;
    // Edges all carry the same timestamp (the end of the seeded period), inserted in a stable order.
    let at = base + Duration::seconds(span_secs);
    let (n_likes, n_favs) = (likes.len(), favs.len());
    let n_follows = follows.len() + board_follows_set.len();
    insert_edges(&txn, likes, |user_id, post_id| post_likes::ActiveModel {
        user_id: Set(user_id),
        post_id: Set(post_id),
        created_at: Set(at),
        ..Default::default()
    })
    .await?;
    insert_edges(&txn, favs, |user_id, post_id| favorites::ActiveModel {
        user_id: Set(user_id),
        post_id: Set(post_id),
        created_at: Set(at),
        ..Default::default()
    })
    .await?;
    insert_edges(&txn, follows, |follower_id, followee_id| user_follows::ActiveModel {
        follower_id: Set(follower_id),
        followee_id: Set(followee_id),
        created_at: Set(at),
        ..Default::default()
    })
    .await?;
    insert_edges(&txn, board_follows_set, |user_id, board_id| board_follows::ActiveModel {
        user_id: Set(user_id),
        board_id: Set(board_id),
        created_at: Set(at),
        ..Default::default()
    })
    .await?;
    // The search index, as the services would have written it post by post.
    let mut documents: Vec<search_documents::ActiveModel> = Vec::new();
    let doc = |kind: &str, id: i64, board: Option<i64>, text: String, at: chrono::DateTime<chrono::Utc>| {
        search_documents::ActiveModel {
            kind: Set(kind.to_string()),
            ref_id: Set(id),
            board_id: Set(board),
            tokens: Set(crate::services::search::text::document_tokens(&text)),
            published_at: Set(at.timestamp()),
            ..Default::default()
        }
    };
    documents
        .extend(user_rows.iter().map(|(id, _, nickname, created)| doc("user", *id, None, nickname.clone(), *created)));
    documents.extend(BOARDS.iter().enumerate().map(|(i, (slug, name, description))| {
        doc("board", i as i64 + 1, None, format!("{name}\n{slug}\n{description}"), base)
    }));
    documents.extend(post_rows.iter().map(|(id, board, _, title, body, created)| {
        doc("post", *id, Some(*board), format!("{title}\n{body}"), *created)
    }));
    insert_chunks(&txn, documents).await?;
    txn.commit().await?;
    reset_sequences(db).await?;
    Ok(format!(
        "seeded {} boards, {} users, {} posts, {} comments, {} likes, {} favourites, {} follows (password for every member: {PASSWORD})",
        BOARDS.len(),
        n_users,
        n_posts,
        comment_rows.len(),
        n_likes,
        n_favs,
        n_follows
    ))
}

/// Explicit ids bypass PostgreSQL's sequences; move them past the seeded rows so later inserts work.
async fn reset_sequences(db: &DatabaseConnection) -> Result<(), DbErr> {
    use sea_orm::ConnectionTrait;
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Ok(());
    }
    for table in [
        "users",
        "boards",
        "posts",
        "comments",
        "post_likes",
        "favorites",
        "user_follows",
        "board_follows",
        "search_documents",
    ] {
        db.execute_unprepared(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
        ))
        .await?;
    }
    Ok(())
}
