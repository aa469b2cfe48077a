//! Keyset pagination: `first` plus an opaque `after` cursor, the Relay connection model.
//!
//! A cursor encodes the sort key of the last row seen (never an offset), so rows inserted while a
//! client pages cannot shift later pages into gaps or duplicates.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{AppError, AppResult};

/// Where a page starts: after the row with this sort key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cursor {
    /// Lists ordered by id (newest first or oldest first).
    Id(i64),
    /// Lists ordered by hot score, ties broken by id.
    Hot { score: f64, id: i64 },
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

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PageArgs {
    pub first: u64,
    pub after: Option<Cursor>,
}

pub const DEFAULT_PAGE_SIZE: u64 = 20;

impl PageArgs {
    /// Validates client arguments: `first` between 0 and `max`, `after` a cursor this server made.
    pub fn parse(first: Option<i32>, after: Option<&str>, max: u32) -> AppResult<PageArgs> {
        let first = match first {
            None => DEFAULT_PAGE_SIZE.min(u64::from(max)),
            Some(n) if n < 0 => return Err(AppError::bad_input("first", "must not be negative")),
            Some(n) if n as u64 > u64::from(max) => {
                return Err(AppError::bad_input("first", format!("must be at most {max}")));
            }
            Some(n) => n as u64,
        };
        let after = match after {
            None => None,
            Some(s) => Some(Cursor::decode(s).ok_or_else(|| AppError::bad_input("after", "is not a valid cursor"))?),
        };
        Ok(PageArgs { first, after })
    }

    pub fn after_id(&self) -> Option<i64> {
        self.after.map(|c| c.id())
    }

    /// Rows to fetch: one more than asked, to learn whether another page follows.
    pub fn fetch_limit(&self) -> u64 {
        self.first + 1
    }
}

/// One page of results, each with the cursor that resumes after it.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<(Cursor, T)>,
    pub has_next: bool,
    pub has_previous: bool,
}

impl<T> Page<T> {
    /// Builds a page from `fetch_limit()` rows, trimming the probe row.
    pub fn from_rows(args: &PageArgs, mut rows: Vec<T>, cursor: impl Fn(&T) -> Cursor) -> Page<T> {
        let has_next = rows.len() as u64 > args.first;
        rows.truncate(args.first as usize);
        Page {
            items: rows.into_iter().map(|r| (cursor(&r), r)).collect(),
            has_next,
            has_previous: args.after.is_some(),
        }
    }

    pub fn map<U>(self, f: impl Fn(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(|(c, t)| (c, f(t))).collect(),
            has_next: self.has_next,
            has_previous: self.has_previous,
        }
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
    fn first_is_capped() {
        assert!(PageArgs::parse(Some(101), None, 100).is_err());
        assert!(PageArgs::parse(Some(-1), None, 100).is_err());
        assert_eq!(PageArgs::parse(None, None, 100).unwrap().first, 20);
    }
}
