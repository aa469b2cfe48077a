//! Keyset pagination, the Relay connection model: `first`/`after` reads forward, `last`/`before`
//! reads backward, both with opaque cursors.
//!
//! A cursor encodes the sort key of a row (never an offset), so rows inserted while a client pages
//! cannot shift later pages into gaps or duplicates. A backward page is read against the list's
//! order (one probe row beyond it tells whether more lies before) and handed back in the list's
//! natural order, so a client renders every page the same way.

use std::hash::{Hash, Hasher};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select};

use crate::error::{AppError, AppResult};

/// Where a page starts: after (or before) the row with this sort key.
#[derive(Debug, Clone, Copy)]
pub enum Cursor {
    /// Lists ordered by id (newest first or oldest first).
    Id(i64),
    /// Lists ordered by hot score, ties broken by id.
    Hot { score: f64, id: i64 },
}

/// Cursors key DataLoader requests, so they are `Eq` and `Hash`: hot scores compare by their bits,
/// which makes equality total (a NaN equals itself) and agree with the hash.
impl PartialEq for Cursor {
    fn eq(&self, other: &Cursor) -> bool {
        match (self, other) {
            (Cursor::Id(a), Cursor::Id(b)) => a == b,
            (Cursor::Hot { score: s, id: a }, Cursor::Hot { score: t, id: b }) => s.to_bits() == t.to_bits() && a == b,
            _ => false,
        }
    }
}

impl Eq for Cursor {}

impl Hash for Cursor {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Cursor::Id(id) => (0u8, *id).hash(state),
            Cursor::Hot { score, id } => (1u8, score.to_bits(), *id).hash(state),
        }
    }
}

impl Cursor {
    pub fn encode(&self) -> String {
        let raw = match self {
            Cursor::Id(id) => format!("i:{id}"),
            Cursor::Hot { score, id } => format!("h:{score}:{id}"),
        };
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
        let mut parts = raw.split(':');
        let cursor = match (parts.next()?, parts.next(), parts.next()) {
            ("i", Some(id), None) => Cursor::Id(id.parse().ok()?),
            ("h", Some(score), Some(id)) => {
                let score: f64 = score.parse().ok()?;
                score.is_finite().then_some(())?;
                Cursor::Hot { score, id: id.parse().ok()? }
            }
            _ => return None,
        };
        parts.next().is_none().then_some(cursor)
    }

    pub fn id(&self) -> i64 {
        match self {
            Cursor::Id(id) | Cursor::Hot { id, .. } => *id,
        }
    }
}

/// Which way a page reads from its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `first`: the items right after `after` (or from the start of the list).
    Forward,
    /// `last`: the items right before `before` (or at the end of the list).
    Backward,
}

/// How a list is sorted by its (single, unique) key column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Oldest first (comments, replies).
    Asc,
    /// Newest first (messages, chat, notifications).
    Desc,
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageArgs {
    /// How many items: `first` or `last`.
    pub size: u64,
    pub direction: Direction,
    /// Only items after this one, in the list's order.
    pub after: Option<Cursor>,
    /// Only items before this one, in the list's order.
    pub before: Option<Cursor>,
}

pub const DEFAULT_PAGE_SIZE: u64 = 20;

/// The four Relay arguments as a client sent them.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawPage<'a> {
    pub first: Option<i32>,
    pub after: Option<&'a str>,
    pub last: Option<i32>,
    pub before: Option<&'a str>,
}

impl PageArgs {
    /// The first `size` items of a list.
    pub fn first(size: u64) -> PageArgs {
        PageArgs { size, direction: Direction::Forward, after: None, before: None }
    }

    /// Validates a forward-only list's arguments: `first` between 0 and `max`, `after` a cursor this
    /// server made.
    pub fn parse(first: Option<i32>, after: Option<&str>, max: u32) -> AppResult<PageArgs> {
        PageArgs::parse_relay(RawPage { first, after, ..RawPage::default() }, max)
    }

    /// Validates all four Relay arguments. `first` and `last` together are refused (which end would
    /// the page hug?); `before` without either reads backward (the items right before it), anything
    /// else forward. Both sizes share the `max` cap.
    pub fn parse_relay(raw: RawPage<'_>, max: u32) -> AppResult<PageArgs> {
        if raw.first.is_some() && raw.last.is_some() {
            return Err(AppError::bad_input("last", "cannot be used together with `first`; pick one direction"));
        }
        let direction = if raw.last.is_some() || (raw.first.is_none() && raw.before.is_some()) {
            Direction::Backward
        } else {
            Direction::Forward
        };
        let size = match direction {
            Direction::Forward => size("first", raw.first, max)?,
            Direction::Backward => size("last", raw.last, max)?,
        };
        Ok(PageArgs { size, direction, after: cursor("after", raw.after)?, before: cursor("before", raw.before)? })
    }

    pub fn after_id(&self) -> Option<i64> {
        self.after.map(|c| c.id())
    }

    pub fn before_id(&self) -> Option<i64> {
        self.before.map(|c| c.id())
    }

    /// Rows to fetch: one more than asked, to learn whether more lie beyond the page.
    pub fn fetch_limit(&self) -> u64 {
        self.size + 1
    }

    /// The query for a list sorted by one unique id column: the bounds the cursors set and the way
    /// to scan (a backward page scans against the list's order, from its cursor outwards).
    pub fn keyset(&self, sort: Sort) -> Keyset {
        let (after, before) = (self.after_id(), self.before_id());
        let (above, below) = match sort {
            Sort::Asc => (after, before),
            Sort::Desc => (before, after),
        };
        let ascending =
            matches!((sort, self.direction), (Sort::Asc, Direction::Forward) | (Sort::Desc, Direction::Backward));
        Keyset { above, below, ascending, limit: self.fetch_limit() }
    }

    /// Applies [`PageArgs::keyset`] to a sea-orm select over `column`.
    pub fn apply<E: EntityTrait>(&self, query: Select<E>, column: impl ColumnTrait, sort: Sort) -> Select<E> {
        let k = self.keyset(sort);
        let mut query = query;
        if let Some(above) = k.above {
            query = query.filter(column.gt(above));
        }
        if let Some(below) = k.below {
            query = query.filter(column.lt(below));
        }
        let query = if k.ascending { query.order_by_asc(column) } else { query.order_by_desc(column) };
        query.limit(k.limit)
    }
}

fn size(field: &str, n: Option<i32>, max: u32) -> AppResult<u64> {
    match n {
        None => Ok(DEFAULT_PAGE_SIZE.min(u64::from(max))),
        Some(n) if n < 0 => Err(AppError::bad_input(field, "must not be negative")),
        Some(n) if n as u64 > u64::from(max) => Err(AppError::bad_input(field, format!("must be at most {max}"))),
        Some(n) => Ok(n as u64),
    }
}

fn cursor(field: &str, s: Option<&str>) -> AppResult<Option<Cursor>> {
    s.map(|s| Cursor::decode(s).ok_or_else(|| AppError::bad_input(field, "is not a valid cursor"))).transpose()
}

/// Key bounds and scan order for one page of a list keyed by a single id column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyset {
    /// Keys strictly greater than this.
    pub above: Option<i64>,
    /// Keys strictly less than this.
    pub below: Option<i64>,
    /// Scan by ascending key (else descending).
    pub ascending: bool,
    /// Rows to read, the probe row included.
    pub limit: u64,
}

/// One page of results, in the list's order, each with its cursor.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<(Cursor, T)>,
    pub has_next: bool,
    pub has_previous: bool,
}

impl<T> Page<T> {
    /// Builds a page from up to `fetch_limit()` rows read in scan order (see [`PageArgs::keyset`]):
    /// the probe row is trimmed and a backward page is turned back into the list's order.
    ///
    /// The flags follow the Relay specification: the side the page was read towards is known from
    /// the probe row; the side of a cursor the page starts from is reported as `true` (an item
    /// exists there: the one the cursor names, unless it was deleted since).
    pub fn from_rows(args: &PageArgs, mut rows: Vec<T>, cursor: impl Fn(&T) -> Cursor) -> Page<T> {
        let more = rows.len() as u64 > args.size;
        rows.truncate(args.size as usize);
        let (has_previous, has_next) = match args.direction {
            Direction::Forward => (args.after.is_some(), more || args.before.is_some()),
            Direction::Backward => {
                rows.reverse();
                (more || args.after.is_some(), args.before.is_some())
            }
        };
        Page { items: rows.into_iter().map(|r| (cursor(&r), r)).collect(), has_next, has_previous }
    }

    pub fn map<U>(self, f: impl Fn(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(|(c, t)| (c, f(t))).collect(),
            has_next: self.has_next,
            has_previous: self.has_previous,
        }
    }

    /// [`Page::map`] with a step that can fail.
    pub fn try_map<U>(self, mut f: impl FnMut(T) -> AppResult<U>) -> AppResult<Page<U>> {
        let items = self.items.into_iter().map(|(c, t)| Ok((c, f(t)?))).collect::<AppResult<Vec<_>>>()?;
        Ok(Page { items, has_next: self.has_next, has_previous: self.has_previous })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        for c in [Cursor::Id(42), Cursor::Hot { score: 12.5, id: 7 }] {
            assert_eq!(Cursor::decode(&c.encode()), Some(c));
        }
        assert_eq!(Cursor::decode("nope"), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("h:NaN:1")), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("i:1:2")), None);
    }

    #[test]
    fn sizes_are_capped() {
        assert!(PageArgs::parse(Some(101), None, 100).is_err());
        assert!(PageArgs::parse(Some(-1), None, 100).is_err());
        assert_eq!(PageArgs::parse(None, None, 100).unwrap().size, 20);
        let last = |n| PageArgs::parse_relay(RawPage { last: Some(n), ..RawPage::default() }, 100);
        assert!(last(101).is_err());
        assert!(last(-1).is_err());
        assert_eq!(last(7).unwrap(), PageArgs { size: 7, direction: Direction::Backward, after: None, before: None });
    }

    #[test]
    fn first_with_last_is_refused_and_before_alone_reads_backward() {
        let both = RawPage { first: Some(1), last: Some(1), ..RawPage::default() };
        assert!(PageArgs::parse_relay(both, 100).is_err());
        let c = Cursor::Id(9).encode();
        let before = PageArgs::parse_relay(RawPage { before: Some(&c), ..RawPage::default() }, 100).unwrap();
        assert_eq!(before.direction, Direction::Backward);
        assert_eq!(before.size, DEFAULT_PAGE_SIZE);
        let bad = RawPage { before: Some("nope"), ..RawPage::default() };
        assert!(PageArgs::parse_relay(bad, 100).is_err());
    }

    #[test]
    fn keysets_bound_and_scan_the_right_way() {
        let back = |after, before| PageArgs {
            size: 2,
            direction: Direction::Backward,
            after: Some(Cursor::Id(after)),
            before: Some(Cursor::Id(before)),
        };
        // Oldest first: between 3 and 9, the backward page scans down from 9.
        assert_eq!(back(3, 9).keyset(Sort::Asc), Keyset { above: Some(3), below: Some(9), ascending: false, limit: 3 });
        // Newest first: after 9 is older (below 9), before 3 newer (above 3); scans up from 3.
        assert_eq!(back(9, 3).keyset(Sort::Desc), Keyset { above: Some(3), below: Some(9), ascending: true, limit: 3 });
        let fwd = PageArgs::first(4);
        assert_eq!(fwd.keyset(Sort::Desc), Keyset { above: None, below: None, ascending: false, limit: 5 });
    }

    #[test]
    fn backward_pages_come_back_in_list_order_with_flags() {
        let args = PageArgs { size: 2, direction: Direction::Backward, after: None, before: Some(Cursor::Id(10)) };
        // Oldest first list, read backward from 10: scan gives 9, 8, 7 (7 is the probe).
        let page = Page::from_rows(&args, vec![9, 8, 7], |&n| Cursor::Id(n));
        assert_eq!(page.items.iter().map(|(_, n)| *n).collect::<Vec<_>>(), vec![8, 9]);
        assert!(page.has_previous && page.has_next);
        let page = Page::from_rows(&args, vec![9], |&n| Cursor::Id(n));
        assert!(!page.has_previous && page.has_next);
        let fwd = Page::from_rows(&PageArgs::first(2), vec![1, 2], |&n| Cursor::Id(n));
        assert!(!fwd.has_previous && !fwd.has_next);
    }
}
