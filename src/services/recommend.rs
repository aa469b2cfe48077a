//! The recommended feed: posts from the authors and boards a member cares about, judged by what they
//! do, with time decay, some diversity, and a reason for every item.
//!
//! Interest in an author or a board is the sum of the member's signals, each weighted and decayed by
//! its age (half-life [`SIGNAL_HALF_LIFE_DAYS`]):
//!
//! | signal | author | board |
//! |---|---|---|
//! | follows the author / board | 3.0 | 2.0 |
//! | commented on a post | 2.0 | 1.5 |
//! | liked or saved a post | 1.5 | 1.0 |
//! | read a post (browse history) | 0.5 | 0.5 |
//!
//! The last five searches add the ten posts each found when it was made (1.0 each; kept with the
//! search-history entry, so a feed request runs no search). A candidate post scores
//! `(interest in its author + interest in its board + search match) × freshness + hot / 10`, where
//! freshness halves every [`POST_HALF_LIFE_HOURS`]. Posts the member wrote, read, liked, saved or
//! commented on are left out, and no board fills more than [`BOARD_SHARE`] of a page. With no signals (cold start) or with
//! personalised recommendations switched off, the feed is the hot list, the same for everyone, and no
//! behaviour of the member is read.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::{board_follows, boards, comments, favorites, post_likes, posts, search_history, user_follows, users};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};

use crate::auth::Viewer;
use crate::error::{AppError, AppResult};
use crate::services::page::{Cursor, Page, PageArgs};
use crate::services::{history, search};

pub const SIGNAL_HALF_LIFE_DAYS: f64 = 30.0;
pub const POST_HALF_LIFE_HOURS: f64 = 72.0;
/// The largest share of a page one board may fill (at least two places).
pub const BOARD_SHARE: f64 = 0.4;
/// Signals read per kind (most recent first): enough to know a member, bounded per request.
const SIGNALS: u64 = 200;
/// Candidate posts scored per request.
const CANDIDATES: u64 = 400;
/// How deep the feed pages.
const DEPTH: usize = 200;
/// Recent searches whose matches are candidates.
const SEARCHES: u64 = 5;
/// Posts a search contributes: its best matches when it was made.
pub const SEARCH_MATCHES: u64 = 10;

/// The posts a search for `query` finds for the feed, best first (none for a query without words).
pub async fn search_matches<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    resident: Option<&search::Resident>,
    query: &str,
) -> AppResult<Vec<i64>> {
    if search::text::query_tokens(query).all.is_empty() {
        return Ok(Vec::new());
    }
    let top = PageArgs::first(SEARCH_MATCHES);
    let found = search::search(db, resident, query, search::Kind::Post, None, &top).await?;
    Ok(found.page.items.into_iter().map(|(_, post)| post).collect())
}

/// Why a post is in the feed.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    FollowsAuthor(String),
    FollowsBoard(String),
    ReadsBoard(String),
    LikesAuthor(String),
    Searched(String),
    Hot,
}

impl Reason {
    pub fn text(&self) -> String {
        match self {
            Reason::FollowsAuthor(n) => format!("because you follow {n}"),
            Reason::FollowsBoard(n) => format!("because you follow {n}"),
            Reason::ReadsBoard(n) => format!("because you read {n}"),
            Reason::LikesAuthor(n) => format!("because you like posts by {n}"),
            Reason::Searched(q) => format!("because you searched \"{q}\""),
            Reason::Hot => "popular in the community".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    FollowedAuthor,
    FollowedBoard,
    ActiveBoard,
    LikedAuthor,
}

#[derive(Default)]
struct Interests {
    authors: HashMap<i64, (f64, Source)>,
    boards: HashMap<i64, (f64, Source)>,
    searched: HashMap<i64, String>,
    seen: HashSet<i64>,
}

fn decay(at: DateTime<Utc>, now: DateTime<Utc>, half_life_hours: f64) -> f64 {
    let hours = (now - at).num_seconds().max(0) as f64 / 3600.0;
    0.5f64.powf(hours / half_life_hours)
}

impl Interests {
    fn add(map: &mut HashMap<i64, (f64, Source)>, id: i64, weight: f64, source: Source) {
        let entry = map.entry(id).or_insert((0.0, source));
        // The reason shown is the strongest single kind of signal seen first.
        entry.0 += weight;
    }

    fn is_empty(&self) -> bool {
        self.authors.is_empty() && self.boards.is_empty() && self.searched.is_empty()
    }
}

/// The member's interests, from at most a few hundred recent signals of each kind.
async fn interests(db: &DatabaseConnection, user_id: i64) -> AppResult<Interests> {
    let now = Utc::now();
    let half = SIGNAL_HALF_LIFE_DAYS * 24.0;
    let mut i = Interests::default();
    let followed: Vec<(i64, DateTime<Utc>)> = user_follows::Entity::find()
        .select_only()
        .columns([user_follows::Column::FolloweeId, user_follows::Column::CreatedAt])
        .filter(user_follows::Column::FollowerId.eq(user_id))
        .order_by_desc(user_follows::Column::Id)
        .limit(SIGNALS)
        .into_tuple()
        .all(db)
        .await?;
    for (author, _) in followed {
        // Following is a standing choice: it does not fade.
        Interests::add(&mut i.authors, author, 3.0, Source::FollowedAuthor);
    }
    let followed_boards: Vec<i64> = board_follows::Entity::find()
        .select_only()
        .column(board_follows::Column::BoardId)
        .filter(board_follows::Column::UserId.eq(user_id))
        .limit(SIGNALS)
        .into_tuple()
        .all(db)
        .await?;
    for board in followed_boards {
        Interests::add(&mut i.boards, board, 2.0, Source::FollowedBoard);
    }
    // Likes, saves, comments and reads, each with the post's author and board.
    let liked: Vec<(i64, DateTime<Utc>)> = post_likes::Entity::find()
        .select_only()
        .columns([post_likes::Column::PostId, post_likes::Column::CreatedAt])
        .filter(post_likes::Column::UserId.eq(user_id))
        .order_by_desc(post_likes::Column::Id)
        .limit(SIGNALS)
        .into_tuple()
        .all(db)
        .await?;
    let saved: Vec<(i64, DateTime<Utc>)> = favorites::Entity::find()
        .select_only()
        .columns([favorites::Column::PostId, favorites::Column::CreatedAt])
        .filter(favorites::Column::UserId.eq(user_id))
        .order_by_desc(favorites::Column::Id)
        .limit(SIGNALS)
        .into_tuple()
        .all(db)
        .await?;
    let commented: Vec<(i64, DateTime<Utc>)> = comments::Entity::find()
        .select_only()
        .columns([comments::Column::PostId, comments::Column::CreatedAt])
        .filter(comments::Column::AuthorId.eq(user_id))
        .order_by_desc(comments::Column::Id)
        .limit(SIGNALS)
        .into_tuple()
        .all(db)
        .await?;
    let read = history::viewed_posts(db, user_id, SIGNALS).await?;
    let mut touched: Vec<i64> = liked.iter().chain(&saved).chain(&commented).map(|(p, _)| *p).collect();
    touched.extend(&read);
    let info: HashMap<i64, (i64, i64)> = posts::Entity::find()
        .select_only()
        .columns([posts::Column::Id, posts::Column::AuthorId, posts::Column::BoardId])
        .filter(posts::Column::Id.is_in(touched.iter().copied().collect::<HashSet<_>>()))
        .into_tuple::<(i64, i64, i64)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(id, author, board)| (id, (author, board)))
        .collect();
    let mut weigh = |items: &[(i64, DateTime<Utc>)], author_w: f64, board_w: f64| {
        for (post, at) in items {
            if let Some((author, board)) = info.get(post) {
                let d = decay(*at, now, half);
                if *author != user_id {
                    Interests::add(&mut i.authors, *author, author_w * d, Source::LikedAuthor);
                }
                Interests::add(&mut i.boards, *board, board_w * d, Source::ActiveBoard);
            }
        }
    };
    weigh(&commented, 2.0, 1.5);
    weigh(&liked, 1.5, 1.0);
    weigh(&saved, 1.5, 1.0);
    let reads: Vec<(i64, DateTime<Utc>)> = read.iter().map(|p| (*p, now)).collect();
    weigh(&reads, 0.5, 0.5);
    i.seen.extend(read);
    // What the member already reacted to is not news to them.
    i.seen.extend(liked.iter().chain(&saved).chain(&commented).map(|(p, _)| *p));
    // Recent searches: the posts each one found when it was made become candidates. They are kept
    // with the history entry (see `history::record_search`), so this reads one row per search and
    // runs no search; deleting the entry removes its influence at once.
    let searches: Vec<(i64, String, Option<String>)> = search_history::Entity::find()
        .select_only()
        .columns([search_history::Column::Id, search_history::Column::Query, search_history::Column::MatchedPosts])
        .filter(search_history::Column::UserId.eq(user_id))
        .order_by_desc(search_history::Column::Id)
        .limit(SEARCHES)
        .into_tuple()
        .all(db)
        .await?;
    for (entry, q, matched) in searches {
        let found = match matched {
            Some(stored) => history::decode_matches(&stored),
            None => {
                // Recorded before matches were kept: searched once now, then kept like the others.
                let found = search_matches(db, None, &q).await?;
                history::store_matches(db, entry, &found).await?;
                found
            }
        };
        for post in found {
            i.searched.entry(post).or_insert_with(|| q.clone());
        }
    }
    Ok(i)
}

/// One page of the feed: posts with their reasons.
pub async fn feed(
    db: &DatabaseConnection,
    viewer: Option<&Viewer>,
    page: &PageArgs,
) -> AppResult<Page<(posts::Model, Reason)>> {
    let personal = match viewer {
        Some(v) => history::settings(db, v.user_id).await?.personalized_recommendations,
        None => false,
    };
    let interests = match (personal, viewer) {
        (true, Some(v)) => Some(interests(db, v.user_id).await?),
        _ => None,
    };
    let Some(interests) = interests.filter(|i| !i.is_empty()) else {
        return hot(db, page).await;
    };
    let me = viewer.map_or(0, |v| v.user_id);
    // Candidates: recent posts by the authors and on the boards of interest, and the search matches.
    let authors: Vec<i64> = top_ids(&interests.authors, 50);
    let board_ids: Vec<i64> = top_ids(&interests.boards, 20);
    let mut candidates: Vec<posts::Model> = posts::Entity::find()
        .filter(posts::Column::DeletedAt.is_null())
        .filter(posts::Column::AuthorId.ne(me))
        .filter(
            sea_orm::Condition::any()
                .add(posts::Column::AuthorId.is_in(authors))
                .add(posts::Column::BoardId.is_in(board_ids))
                .add(posts::Column::Id.is_in(interests.searched.keys().copied())),
        )
        .order_by_desc(posts::Column::Id)
        .limit(CANDIDATES)
        .all(db)
        .await?;
    candidates.retain(|p| !interests.seen.contains(&p.id));
    let now = Utc::now();
    let mut scored: Vec<(f64, posts::Model, (f64, Reason))> = Vec::with_capacity(candidates.len());
    let names = Names::load(db, &candidates).await?;
    for p in candidates {
        let author = interests.authors.get(&p.author_id).copied();
        let board = interests.boards.get(&p.board_id).copied();
        let searched = interests.searched.get(&p.id);
        let mut reasons: Vec<(f64, Reason)> = Vec::new();
        if let Some((w, source)) = author {
            let name = names.user(p.author_id);
            reasons.push((
                w,
                if source == Source::FollowedAuthor { Reason::FollowsAuthor(name) } else { Reason::LikesAuthor(name) },
            ));
        }
        if let Some((w, source)) = board {
            let name = names.board(p.board_id);
            reasons.push((
                w,
                if source == Source::FollowedBoard { Reason::FollowsBoard(name) } else { Reason::ReadsBoard(name) },
            ));
        }
        if let Some(q) = searched {
            reasons.push((1.0, Reason::Searched(q.clone())));
        }
        let interest: f64 = reasons.iter().map(|(w, _)| w).sum();
        let score = interest * decay(p.created_at, now, POST_HALF_LIFE_HOURS) + p.hot_score.max(0.0) / 1e6;
        let best = reasons.into_iter().fold((0.0, Reason::Hot), |best, r| if r.0 > best.0 { r } else { best });
        scored.push((score, p, best));
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.id.cmp(&a.1.id)));
    // Diversity: past MAX_PER_BOARD posts of one board within a page, a post waits for a later place.
    let per_page = page.size.max(1) as usize;
    let max_per_board = ((per_page as f64 * BOARD_SHARE).ceil() as usize).max(2);
    let mut ranked: Vec<(posts::Model, Reason)> = Vec::with_capacity(scored.len());
    let mut deferred: Vec<(posts::Model, Reason)> = Vec::new();
    let mut in_page: HashMap<i64, usize> = HashMap::new();
    for (_, p, (_, reason)) in scored {
        if ranked.len().is_multiple_of(per_page) {
            in_page.clear();
            // Deferred posts get the first places of the next page.
            for (dp, dr) in std::mem::take(&mut deferred) {
                push_diverse(&mut ranked, &mut in_page, &mut deferred, max_per_board, (dp, dr));
            }
        }
        push_diverse(&mut ranked, &mut in_page, &mut deferred, max_per_board, (p, reason));
        if ranked.len() >= DEPTH {
            break;
        }
    }
    ranked.extend(deferred);
    ranked.truncate(DEPTH);
    let offset = page.after_id().map_or(0, |o| o + 1).max(0) as usize;
    if offset > DEPTH {
        return Err(AppError::bad_input("after", "is not a valid cursor"));
    }
    let items: Vec<(usize, (posts::Model, Reason))> =
        ranked.into_iter().enumerate().skip(offset).take(per_page + 1).collect();
    Ok(Page::from_rows(page, items, |(i, _)| Cursor::Id(*i as i64)).map(|(_, x)| x))
}

fn push_diverse(
    ranked: &mut Vec<(posts::Model, Reason)>,
    in_page: &mut HashMap<i64, usize>,
    deferred: &mut Vec<(posts::Model, Reason)>,
    max_per_board: usize,
    (p, reason): (posts::Model, Reason),
) {
    let n = in_page.entry(p.board_id).or_insert(0);
    if *n >= max_per_board {
        deferred.push((p, reason));
    } else {
        *n += 1;
        ranked.push((p, reason));
    }
}

fn top_ids(map: &HashMap<i64, (f64, Source)>, n: usize) -> Vec<i64> {
    let mut v: Vec<(i64, f64)> = map.iter().map(|(id, (w, _))| (*id, *w)).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v.into_iter().take(n).map(|(id, _)| id).collect()
}

/// The hot list, as the feed's fallback; cursors are offsets like the personal feed's.
async fn hot(db: &DatabaseConnection, page: &PageArgs) -> AppResult<Page<(posts::Model, Reason)>> {
    let offset = page.after_id().map_or(0, |o| o + 1).max(0);
    if offset as usize > DEPTH {
        return Err(AppError::bad_input("after", "is not a valid cursor"));
    }
    let rows = posts::Entity::find()
        .filter(posts::Column::DeletedAt.is_null())
        .order_by_desc(posts::Column::HotScore)
        .order_by_desc(posts::Column::Id)
        .offset(offset as u64)
        .limit(page.fetch_limit())
        .all(db)
        .await?;
    let items: Vec<(i64, (posts::Model, Reason))> =
        rows.into_iter().enumerate().map(|(i, p)| (offset + i as i64, (p, Reason::Hot))).collect();
    Ok(Page::from_rows(page, items, |(i, _)| Cursor::Id(*i)).map(|(_, x)| x))
}

/// Display names for reasons, fetched once per page.
struct Names {
    users: HashMap<i64, String>,
    boards: HashMap<i64, String>,
}

impl Names {
    async fn load(db: &DatabaseConnection, posts: &[posts::Model]) -> AppResult<Names> {
        let user_ids: HashSet<i64> = posts.iter().map(|p| p.author_id).collect();
        let board_ids: HashSet<i64> = posts.iter().map(|p| p.board_id).collect();
        let users = users::Entity::find()
            .select_only()
            .columns([users::Column::Id, users::Column::Nickname])
            .filter(users::Column::Id.is_in(user_ids))
            .into_tuple::<(i64, String)>()
            .all(db)
            .await?
            .into_iter()
            .collect();
        let boards = boards::Entity::find()
            .select_only()
            .columns([boards::Column::Id, boards::Column::Name])
            .filter(boards::Column::Id.is_in(board_ids))
            .into_tuple::<(i64, String)>()
            .all(db)
            .await?
            .into_iter()
            .collect();
        Ok(Names { users, boards })
    }

    fn user(&self, id: i64) -> String {
        self.users.get(&id).cloned().unwrap_or_default()
    }

    fn board(&self, id: i64) -> String {
        self.boards.get(&id).cloned().unwrap_or_default()
    }
}
