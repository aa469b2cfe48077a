//! The search index held in memory: posting lists per token, answering a search without a database
//! statement of its own.
//!
//! The database keeps the index of record (`search_documents`, with FTS5 or a GIN index), and every
//! instance keeps this copy, brought up to date from the change log before each search
//! ([`super::follow`]). Intersecting posting lists in the database cost 10-30 ms for a few common
//! words at 100,000 posts, and ten such searches at once queued behind each other on two cores
//! (docs/BENCHMARKS.md, "Discovery"); here the same intersection takes microseconds.
//!
//! Layout, per kind of thing: each token's postings are the ids of the things that hold it, in
//! ascending order, with the token's count in that thing and the thing's version when the posting
//! was written. Editing a thing bumps its version and rewrites its postings in place; postings of
//! tokens it no longer holds keep the old version and no longer count (stale), until a compaction
//! drops them. Six bytes a posting.
//!
//! Candidates are the database path's: the [`CANDIDATES`](super::CANDIDATES) newest matches (by id,
//! publication order). They are ranked as on SQLite, by BM25 (FTS5's constants) plus a year of age
//! per unit of relevance, on both back ends (PostgreSQL's `ts_rank` over a tsvector without counts
//! ranked every full match alike). Two approximations: N, lengths and document frequencies are per
//! kind (FTS5 counts all kinds together), and a token's document frequency counts its stale postings
//! until the next compaction (at most a quarter of all postings).

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

use super::Kind;
use super::text::QueryTokens;

/// A prefix query ("furn" while typing "furniture") expanding to more tokens than this is left to
/// the database: merging that many lists per keystroke is the database's kind of work.
const MAX_PREFIX_TERMS: usize = 128;
/// Nor one whose tokens hold more postings than this in all (merged and sorted per search).
const MAX_PREFIX_POSTINGS: usize = 200_000;

/// BM25's constants, as FTS5's `bm25()` has them.
const K1: f64 = 1.2;
const B: f64 = 0.75;

#[derive(Clone, Copy, Debug)]
struct Meta {
    /// The token's count in the thing, saturated.
    tf: u8,
    /// The thing's version when this posting was written.
    ver: u8,
}

#[derive(Default)]
struct Postings {
    ids: Vec<u32>,
    meta: Vec<Meta>,
}

#[derive(Clone, Copy, Debug)]
struct Doc {
    ver: u8,
    /// False for a tombstone: taken out, kept until compaction so that its version carries on.
    live: bool,
    /// Of what was put, so that putting it again changes nothing.
    digest: u64,
    /// Tokens in the thing (BM25's document length).
    len: u32,
    /// Distinct tokens: how many postings turn stale when the thing changes or goes.
    distinct: u32,
    published_at: i64,
    board: Option<i64>,
}

/// One kind's index.
#[derive(Default)]
pub struct Shard {
    terms: BTreeMap<Box<str>, usize>,
    lists: Vec<Postings>,
    docs: HashMap<u32, Doc, foldhash::fast::RandomState>,
    /// Things in the index (tombstones not counted).
    live: usize,
    total_len: u64,
    postings: usize,
    stale: usize,
    /// An id did not fit the index's 32 bits: this kind is searched in the database.
    refused: bool,
}

/// A match: the thing's id and its count of each query token.
pub struct Match {
    pub id: u32,
    tfs: Vec<u8>,
}

/// Matches of one query, newest first, with what ranking them needs.
pub struct Found {
    pub matches: Vec<Match>,
    /// Things holding each query token (BM25's document frequency).
    dfs: Vec<usize>,
}

impl Shard {
    pub fn documents(&self) -> usize {
        self.live
    }

    pub fn postings(&self) -> usize {
        self.postings
    }

    /// Leaves this kind to the database from now on.
    pub fn refuse(&mut self) {
        self.refused = true;
    }

    /// Puts a thing in the index, or replaces it; `tokens` as `search_documents.tokens` holds them.
    /// Putting what is already there changes nothing (the change log may bring a change twice).
    pub fn put(&mut self, id: u32, board: Option<i64>, published_at: i64, tokens: &str) {
        let digest = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (tokens, board, published_at).hash(&mut h);
            h.finish()
        };
        let ver = match self.docs.get(&id) {
            Some(old) if old.live && old.digest == digest => return,
            Some(old) => {
                if old.live {
                    self.total_len -= u64::from(old.len);
                    self.stale += old.distinct as usize;
                    self.live -= 1;
                }
                old.ver.wrapping_add(1)
            }
            None => 0,
        };
        if ver == 0 && self.docs.remove(&id).is_some() {
            // The version came round: a posting written 256 versions ago would look current. With
            // the thing out of `docs`, compaction drops every posting it has.
            self.compact();
        }
        let mut counts: HashMap<&str, u32> = HashMap::new();
        let mut len = 0u32;
        for token in tokens.split_whitespace() {
            *counts.entry(token).or_default() += 1;
            len = len.saturating_add(1);
        }
        for (token, tf) in &counts {
            let list = match self.terms.get(*token) {
                Some(&i) => &mut self.lists[i],
                None => {
                    self.terms.insert((*token).into(), self.lists.len());
                    self.lists.push(Postings::default());
                    let last = self.lists.len() - 1;
                    &mut self.lists[last]
                }
            };
            let meta = Meta { tf: (*tf).min(u32::from(u8::MAX)) as u8, ver };
            let at = list.ids.partition_point(|&x| x < id);
            if list.ids.get(at) == Some(&id) {
                // A posting of an earlier version (stale since that version ended) is current again.
                list.meta[at] = meta;
                self.stale = self.stale.saturating_sub(1);
            } else {
                list.ids.insert(at, id);
                list.meta.insert(at, meta);
                self.postings += 1;
            }
        }
        self.total_len += u64::from(len);
        self.live += 1;
        self.docs.insert(id, Doc { ver, live: true, digest, len, distinct: counts.len() as u32, published_at, board });
    }

    /// Takes a thing out. It stays as a tombstone, its version kept, until the next compaction: put
    /// back before then, it continues from the next version, so its old postings stay stale.
    pub fn remove(&mut self, id: u32) {
        if let Some(old) = self.docs.get_mut(&id)
            && old.live
        {
            old.live = false;
            self.total_len -= u64::from(old.len);
            self.stale += old.distinct as usize;
            self.live -= 1;
        }
    }

    /// Gives back the room lists grew into while loading.
    pub fn shrink(&mut self) {
        for list in &mut self.lists {
            list.ids.shrink_to_fit();
            list.meta.shrink_to_fit();
        }
        self.docs.shrink_to_fit();
    }

    /// Whether stale postings are a quarter of all: time to [`compact`](Self::compact).
    pub fn wants_compaction(&self) -> bool {
        self.stale > 1024 && self.stale * 4 > self.postings
    }

    /// Drops every stale posting, and the tombstones.
    pub fn compact(&mut self) {
        let docs = &self.docs;
        for list in &mut self.lists {
            let mut keep = 0;
            for i in 0..list.ids.len() {
                if docs.get(&list.ids[i]).is_some_and(|d| d.live && d.ver == list.meta[i].ver) {
                    list.ids[keep] = list.ids[i];
                    list.meta[keep] = list.meta[i];
                    keep += 1;
                }
            }
            list.ids.truncate(keep);
            list.meta.truncate(keep);
        }
        self.docs.retain(|_, d| d.live);
        self.postings = self.lists.iter().map(|l| l.ids.len()).sum();
        self.stale = 0;
    }

    fn current(&self, id: u32, meta: Meta) -> Option<&Doc> {
        self.docs.get(&id).filter(|d| d.live && d.ver == meta.ver)
    }

    /// A prefix token's postings: the one token's list when it begins one (the usual case: a whole
    /// word), else the union of the tokens it begins, current postings only, counts summed. `None`
    /// when it begins too many tokens.
    fn prefix_union(&self, prefix: &str) -> Option<Result<&Postings, Postings>> {
        let lists: Vec<&Postings> = self
            .terms
            .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(|(t, _)| t.starts_with(prefix))
            .take(MAX_PREFIX_TERMS + 1)
            .map(|(_, &i)| &self.lists[i])
            .collect();
        if lists.len() > MAX_PREFIX_TERMS || lists.iter().map(|l| l.ids.len()).sum::<usize>() > MAX_PREFIX_POSTINGS {
            return None;
        }
        if let [one] = lists.as_slice() {
            return Some(Ok(one));
        }
        let mut all: Vec<(u32, Meta)> = lists
            .iter()
            .flat_map(|l| l.ids.iter().copied().zip(l.meta.iter().copied()))
            .filter(|&(id, m)| self.current(id, m).is_some())
            .collect();
        all.sort_unstable_by_key(|&(id, _)| id);
        let mut union = Postings::default();
        for (id, m) in all {
            if union.ids.last() == Some(&id) {
                if let Some(last) = union.meta.last_mut() {
                    last.tf = last.tf.saturating_add(m.tf);
                }
            } else {
                union.ids.push(id);
                union.meta.push(m);
            }
        }
        Some(Err(union))
    }

    /// The `limit` newest things holding every query token (in `board`, if given), newest first.
    /// `None` when the memory index will not answer this query (see [`MAX_PREFIX_TERMS`]).
    pub fn find(&self, q: &QueryTokens, board: Option<i64>, limit: usize) -> Option<Found> {
        if self.refused {
            return None;
        }
        let last = q.all.len().saturating_sub(1);
        let mut owned: Vec<Postings> = Vec::new();
        // (index into q.all, borrowed list or index into `owned`)
        let mut lists: Vec<(usize, Result<&Postings, usize>)> = Vec::with_capacity(q.all.len());
        for (i, token) in q.all.iter().enumerate() {
            if i == last && q.last_is_prefix {
                match self.prefix_union(token)? {
                    Ok(list) => lists.push((i, Ok(list))),
                    Err(union) => {
                        owned.push(union);
                        lists.push((i, Err(owned.len() - 1)));
                    }
                }
            } else {
                match self.terms.get(token.as_str()) {
                    Some(&at) => lists.push((i, Ok(&self.lists[at]))),
                    None => return Some(Found { matches: Vec::new(), dfs: vec![0; q.all.len()] }),
                }
            }
        }
        let lists: Vec<(usize, &Postings)> =
            lists.into_iter().map(|(i, l)| (i, l.unwrap_or_else(|o| &owned[o]))).collect();
        let mut dfs = vec![0; q.all.len()];
        for (i, l) in &lists {
            dfs[*i] = l.ids.len();
        }
        let mut order: Vec<usize> = (0..lists.len()).collect();
        order.sort_by_key(|&k| lists[k].1.ids.len());
        let Some((&lead, rest)) = order.split_first() else {
            return Some(Found { matches: Vec::new(), dfs });
        };
        let lead_list = lists[lead].1;
        // Walking newest first, each other list is searched below where its previous hit was.
        let mut bounds: Vec<usize> = rest.iter().map(|&k| lists[k].1.ids.len()).collect();
        let mut matches = Vec::new();
        // Where each other list holds the current id, found before the document is looked up: most
        // ids of a selective query fail at the first list, and a lookup costs more than a search.
        let mut at_other = vec![0usize; rest.len()];
        'walk: for at in (0..lead_list.ids.len()).rev() {
            if matches.len() >= limit {
                break;
            }
            let (id, meta) = (lead_list.ids[at], lead_list.meta[at]);
            for (r, &k) in rest.iter().enumerate() {
                let ids = &lists[k].1.ids;
                let pos = ids[..bounds[r]].partition_point(|&x| x < id);
                bounds[r] = pos;
                if ids.get(pos) != Some(&id) {
                    continue 'walk;
                }
                at_other[r] = pos;
            }
            let Some(doc) = self.current(id, meta) else { continue };
            if board.is_some() && doc.board != board {
                continue;
            }
            let mut tfs = vec![0u8; q.all.len()];
            tfs[lists[lead].0] = meta.tf;
            for (r, &k) in rest.iter().enumerate() {
                let m = lists[k].1.meta[at_other[r]];
                if m.ver != doc.ver {
                    // A stale posting: the thing no longer holds this token.
                    continue 'walk;
                }
                tfs[lists[k].0] = m.tf;
            }
            matches.push(Match { id, tfs });
        }
        Some(Found { matches, dfs })
    }

    /// Ranks matches as the database path does, best first: BM25 (higher is better) less a unit per
    /// year of age; ties go to the newer.
    pub fn rank(&self, found: &Found, now: i64) -> Vec<u32> {
        let n = self.live.max(1) as f64;
        let avg = (self.total_len as f64 / n).max(1.0);
        let idf: Vec<f64> =
            found.dfs.iter().map(|&df| (((n - df as f64 + 0.5) / (df as f64 + 0.5)).ln()).max(1e-6)).collect();
        let mut scored: Vec<(f64, u32)> = found
            .matches
            .iter()
            .map(|m| {
                let (len, published_at) =
                    self.docs.get(&m.id).map_or((avg, now), |d| (f64::from(d.len), d.published_at));
                let bm25: f64 = m
                    .tfs
                    .iter()
                    .zip(&idf)
                    .map(|(&tf, idf)| {
                        let tf = f64::from(tf);
                        idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len / avg))
                    })
                    .sum();
                let age_years = (now - published_at) as f64 / 31_536_000.0;
                (age_years - bm25, m.id)
            })
            .collect();
        scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
        scored.into_iter().map(|(_, id)| id).collect()
    }
}

/// The index of every kind.
#[derive(Default)]
pub struct Index {
    posts: Shard,
    boards: Shard,
    users: Shard,
}

impl Index {
    pub fn shard(&self, kind: Kind) -> &Shard {
        match kind {
            Kind::Post => &self.posts,
            Kind::Board => &self.boards,
            Kind::User => &self.users,
        }
    }

    pub fn shard_mut(&mut self, kind: Kind) -> &mut Shard {
        match kind {
            Kind::Post => &mut self.posts,
            Kind::Board => &mut self.boards,
            Kind::User => &mut self.users,
        }
    }

    pub fn shards_mut(&mut self) -> [&mut Shard; 3] {
        [&mut self.posts, &mut self.boards, &mut self.users]
    }

    pub fn documents(&self) -> usize {
        self.posts.documents() + self.boards.documents() + self.users.documents()
    }

    pub fn shrink(&mut self) {
        for shard in self.shards_mut() {
            shard.shrink();
        }
    }

    pub fn postings(&self) -> usize {
        self.posts.postings() + self.boards.postings() + self.users.postings()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::search::text::{document_tokens, query_tokens};

    fn shard(docs: &[(u32, Option<i64>, &str)]) -> Shard {
        let mut s = Shard::default();
        for (id, board, text) in docs {
            s.put(*id, *board, i64::from(*id), &document_tokens(text));
        }
        s
    }

    fn ids(s: &Shard, q: &str, board: Option<i64>, limit: usize) -> Vec<u32> {
        s.find(&query_tokens(q), board, limit).map(|f| f.matches.iter().map(|m| m.id).collect()).unwrap_or_default()
    }

    #[test]
    fn every_token_must_match_newest_first_up_to_the_limit() {
        let s = shard(&[
            (1, Some(1), "Canton Fair furniture"),
            (2, Some(2), "canton fair ceramics"),
            (3, Some(1), "the fair in Guangzhou"),
            (5, Some(1), "Canton Fair again"),
            (4, Some(2), "外貿詢盤 Canton"),
        ]);
        assert_eq!(ids(&s, "canton fair", None, 10), vec![5, 2, 1]);
        assert_eq!(ids(&s, "canton fair", None, 2), vec![5, 2]);
        assert_eq!(ids(&s, "canton fair", Some(1), 10), vec![5, 1]);
        assert_eq!(ids(&s, "外贸", None, 10), vec![4], "Simplified finds Traditional");
        assert_eq!(ids(&s, "bitcoin", None, 10), Vec::<u32>::new());
        assert_eq!(ids(&s, "furn", None, 10), vec![1], "the last word may be unfinished");
        assert_eq!(ids(&s, "fair guang", None, 10), vec![3]);
    }

    #[test]
    fn edits_and_removals_take_effect_and_compaction_keeps_results() {
        let mut s = shard(&[(1, None, "solar panels"), (2, None, "solar inverters"), (3, None, "LED lamps")]);
        s.put(2, None, 2, &document_tokens("LED inverters"));
        assert_eq!(ids(&s, "solar", None, 10), vec![1], "the edit took the word away");
        assert_eq!(ids(&s, "led", None, 10), vec![3, 2], "and gave another");
        s.remove(3);
        assert_eq!(ids(&s, "led", None, 10), vec![2]);
        assert!(s.stale > 0);
        let before = s.postings();
        s.compact();
        assert_eq!(s.stale, 0);
        assert!(s.postings() < before);
        assert_eq!(ids(&s, "led", None, 10), vec![2]);
        assert_eq!(ids(&s, "solar", None, 10), vec![1]);
        assert_eq!(ids(&s, "inverters", None, 10), vec![2]);
    }

    #[test]
    fn a_thing_taken_out_and_put_back_is_found_by_its_new_words_only() {
        let mut s = shard(&[(1, None, "solar panels"), (2, None, "solar lamps")]);
        s.remove(1);
        assert_eq!(ids(&s, "panels", None, 10), Vec::<u32>::new());
        assert_eq!(s.documents(), 1);
        // Put back before any compaction, with other words: its old postings must stay stale.
        s.put(1, None, 1, &document_tokens("wind turbines"));
        assert_eq!(ids(&s, "panels", None, 10), Vec::<u32>::new());
        assert_eq!(ids(&s, "solar", None, 10), vec![2]);
        assert_eq!(ids(&s, "wind", None, 10), vec![1]);
        assert_eq!(s.documents(), 2);
        // Postings = current (2 + 2) + stale (2): compaction keeps exactly the current ones.
        assert_eq!((s.postings(), s.stale), (6, 2));
        s.compact();
        assert_eq!((s.postings(), s.stale), (4, 0));
        s.put(1, None, 1, &document_tokens("solar panels"));
        assert_eq!(ids(&s, "solar panels", None, 10), vec![1]);
        assert_eq!((s.postings(), s.stale), (6, 2));
    }

    #[test]
    fn putting_the_same_thing_again_changes_nothing() {
        let mut s = shard(&[(1, Some(3), "solar panels")]);
        let ver = s.docs[&1].ver;
        for _ in 0..1000 {
            s.put(1, Some(3), 1, &document_tokens("solar panels"));
        }
        assert_eq!((s.docs[&1].ver, s.postings(), s.stale), (ver, 2, 0));
        // A move to another board is a change.
        s.put(1, Some(4), 1, &document_tokens("solar panels"));
        assert_eq!(ids(&s, "solar", Some(4), 10), vec![1]);
        assert_eq!(ids(&s, "solar", Some(3), 10), Vec::<u32>::new());
    }

    #[test]
    fn a_version_that_comes_round_does_not_revive_old_postings() {
        let mut s = shard(&[(7, None, "bitcoin")]);
        for i in 0..300 {
            let text = if i % 2 == 0 { "ceramics" } else { "tiles" };
            s.put(7, None, 7, &document_tokens(text));
            assert_eq!(ids(&s, "bitcoin", None, 10), Vec::<u32>::new(), "edit {i}");
        }
        assert_eq!(ids(&s, "tiles", None, 10), vec![7]);
        assert_eq!(ids(&s, "ceramics", None, 10), Vec::<u32>::new());
    }

    #[test]
    fn ranking_prefers_relevance_then_recency() {
        let mut s = Shard::default();
        for id in 10..20 {
            s.put(id, None, 1000, &document_tokens("wind turbines"));
        }
        // Same age: the thing that says "solar" three times in few words ranks first.
        s.put(1, None, 1000, &document_tokens("solar solar solar"));
        s.put(2, None, 1000, &document_tokens("solar panels for the roof of a very long warehouse building"));
        let found = s.find(&query_tokens("solar"), None, 10).unwrap();
        assert_eq!(s.rank(&found, 1000), vec![1, 2]);
        // Ten years older loses to an equal match.
        s.put(4, None, 1000 - 10 * 31_536_000, &document_tokens("solar solar solar"));
        let found = s.find(&query_tokens("solar"), None, 10).unwrap();
        assert_eq!(s.rank(&found, 1000)[2], 4);
    }

    #[test]
    fn a_prefix_that_begins_too_many_tokens_is_left_to_the_database() {
        let mut s = Shard::default();
        for i in 0..(MAX_PREFIX_TERMS as u32 + 1) {
            s.put(i + 1, None, 0, &format!("ab{i}"));
        }
        assert!(s.find(&query_tokens("ab"), None, 10).is_none());
        assert_eq!(ids(&s, "ab1", None, 1000).len(), 1 + 10 + 29, "ab1, ab10-ab19 and ab100-ab128");
    }
}
