//! Search across Chinese (Traditional and Simplified) and English, kept current on every write, on
//! both back ends.

use serde_json::{Value, json};

use crate::common::{TestApp, phone};

const SEARCH: &str = "query($q: String!, $type: SearchType, $board: ID, $first: Int, $after: String) {
    search(query: $q, type: $type, boardId: $board, first: $first, after: $after) {
      edges { cursor node { snippet post { title } board { name } user { nickname } } }
      pageInfo { hasNextPage endCursor } } }";

async fn titles(app: &TestApp, q: &str) -> Vec<String> {
    let data = app.gql(None, SEARCH, json!({ "q": q, "first": 20 })).await;
    data["search"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["post"]["title"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn chinese_in_both_scripts_and_english_by_stem() {
    scripts_stems_and_edits(TestApp::spawn().await).await;
}

/// The same searches answered by the database alone (`SEARCH_INDEX_IN_MEMORY=false`, and what an
/// instance does while its index loads).
#[tokio::test]
async fn chinese_in_both_scripts_and_english_by_stem_in_the_database() {
    let app = TestApp::spawn_with(|c| c.search_index_in_memory = false).await;
    assert!(!app.state.search.is_ready());
    scripts_stems_and_edits(app).await;
}

async fn scripts_stems_and_edits(app: TestApp) {
    let admin = app.admin().await;
    let board = app.create_board(&admin, "practice", "外貿實戰").await;
    let other = app.create_board(&admin, "logistics", "物流").await;
    let (u, _) = app.register(&phone(1), "trader").await;
    let post = |title: &'static str, body: &'static str, b: &str| {
        let (app, u, b) = (&app, u.clone(), b.to_string());
        async move {
            let q = "mutation($input: CreatePostInput!) { createPost(input: $input) { post { id } } }";
            let d = app.gql(Some(&u), q, json!({ "input": { "boardId": b, "title": title, "body": body } })).await;
            d["createPost"]["post"]["id"].as_str().unwrap().to_string()
        }
    };
    post("外貿詢盤怎麼回", "收到一個新客戶的詢盤,要求報價 FOB 寧波。", &board).await;
    post("外贸新人求助", "第一次做外贸,询盘太少怎么办?", &board).await;
    let shipping = post("Shipping LED lights to Hamburg", "We shipped two containers last month.", &other).await;
    post("货代推荐", "海运运费最近涨了很多,求靠谱货代。", &other).await;

    // Simplified finds Traditional and the reverse; two-character words are found.
    assert_eq!(titles(&app, "询盘").await.len(), 2);
    assert_eq!(titles(&app, "詢盤").await.len(), 2);
    assert_eq!(titles(&app, "外贸").await.len(), 2);
    assert_eq!(titles(&app, "報價").await, vec!["外貿詢盤怎麼回"]);
    // Every word must match; English by stem and case-insensitively; mixed queries work.
    assert_eq!(titles(&app, "ship").await, vec!["Shipping LED lights to Hamburg"]);
    assert_eq!(titles(&app, "SHIPS containers").await, vec!["Shipping LED lights to Hamburg"]);
    assert_eq!(titles(&app, "外贸 fob").await, vec!["外貿詢盤怎麼回"]);
    assert_eq!(titles(&app, "运费").await, vec!["货代推荐"]);
    assert!(titles(&app, "询盘 Hamburg").await.is_empty());
    // The last word may be unfinished.
    assert_eq!(titles(&app, "Hamb").await, vec!["Shipping LED lights to Hamburg"]);

    // Snippets mark the match in the post's own script, escaped for HTML.
    let data = app.gql(None, SEARCH, json!({ "q": "询盘", "first": 5 })).await;
    let snippets: Vec<&str> =
        data["search"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["snippet"].as_str().unwrap()).collect();
    assert!(snippets.iter().any(|s| s.contains("<mark>詢盤</mark>")), "{snippets:?}");

    // Scoped to a board.
    let scoped = app.gql(None, SEARCH, json!({ "q": "外贸", "board": other })).await;
    assert_eq!(scoped["search"]["edges"], json!([]));

    // Edits and deletions reach the index at once.
    let edit = "mutation($input: UpdatePostInput!) { updatePost(input: $input) { post { id } } }";
    app.gql(
        Some(&u),
        edit,
        json!({ "input": { "postId": shipping, "title": "Rotterdam route", "body": "Trucks only." } }),
    )
    .await;
    assert!(titles(&app, "hamburg").await.is_empty());
    assert_eq!(titles(&app, "rotterdam").await, vec!["Rotterdam route"]);
    let delete = "mutation($input: DeletePostInput!) { deletePost(input: $input) { deletedPostId } }";
    app.gql(Some(&u), delete, json!({ "input": { "postId": shipping } })).await;
    assert!(titles(&app, "rotterdam").await.is_empty());

    // Boards and members are searchable too.
    let boards = app.gql(None, SEARCH, json!({ "q": "外贸", "type": "BOARD" })).await;
    assert_eq!(boards["search"]["edges"][0]["node"]["board"]["name"], "外貿實戰");
    let users = app.gql(None, SEARCH, json!({ "q": "trader", "type": "USER" })).await;
    assert_eq!(users["search"]["edges"][0]["node"]["user"]["nickname"], "trader");

    let (code, err) = app.gql_err(None, SEARCH, json!({ "q": " ?! " })).await;
    assert_eq!((code.as_str(), err["extensions"]["field"].as_str()), ("BAD_USER_INPUT", Some("query")));
}

#[tokio::test]
async fn results_page_without_gaps_or_repeats() {
    let (app, c) = TestApp::community().await;
    for i in 0..7 {
        app.create_post(&c.alice, &c.board, &format!("报价 {i}")).await;
    }
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = app.gql(None, SEARCH, json!({ "q": "报价", "first": 3, "after": after })).await;
        for e in page["search"]["edges"].as_array().unwrap() {
            seen.push(e["node"]["post"]["title"].as_str().unwrap().to_string());
        }
        if page["search"]["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["search"]["pageInfo"]["endCursor"].clone();
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 7);
}

/// Search quality on a fixed corpus (tests/fixtures/search-corpus.json: 224 posts in Simplified,
/// Traditional, English and mixtures, 49 queries with every relevant post judged by hand). Every
/// expected hit must be on the first page (10 results); precision@10 is printed for docs/.
#[tokio::test]
async fn recall_on_the_mixed_language_corpus() {
    let corpus: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/search-corpus.json")).unwrap(),
    )
    .unwrap();
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let mut boards = std::collections::HashMap::new();
    for b in corpus["boards"].as_array().unwrap() {
        let q = "mutation($input: CreateBoardInput!) { createBoard(input: $input) { board { id } } }";
        let d = app
            .gql(
                Some(&admin),
                q,
                json!({ "input": { "slug": b["slug"], "name": b["name"], "description": b["description"] } }),
            )
            .await;
        boards.insert(
            b["slug"].as_str().unwrap().to_string(),
            d["createBoard"]["board"]["id"].as_str().unwrap().to_string(),
        );
    }
    let (author, _) = app.register(&phone(1), "trader").await;
    let mut key_of = std::collections::HashMap::new();
    for p in corpus["posts"].as_array().unwrap() {
        let q = "mutation($input: CreatePostInput!) { createPost(input: $input) { post { id } } }";
        let input = json!({ "boardId": boards[p["board"].as_str().unwrap()], "title": p["title"], "body": p["body"] });
        let d = app.gql(Some(&author), q, json!({ "input": input })).await;
        key_of.insert(
            d["createPost"]["post"]["id"].as_str().unwrap().to_string(),
            p["key"].as_str().unwrap().to_string(),
        );
    }
    let q = "query($q: String!) { search(query: $q, first: 10) { edges { node { post { id } } } } }";
    let (mut found, mut expected_total, mut returned, mut relevant_returned) = (0usize, 0usize, 0usize, 0usize);
    let mut misses = Vec::new();
    for query in corpus["queries"].as_array().unwrap() {
        let text = query["query"].as_str().unwrap();
        let expected: Vec<&str> = query["expected"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
        let data = app.gql(None, q, json!({ "q": text })).await;
        let got: Vec<String> = data["search"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| key_of[e["node"]["post"]["id"].as_str().unwrap()].clone())
            .collect();
        let hits = expected.iter().filter(|k| got.iter().any(|g| g == *k)).count();
        found += hits;
        expected_total += expected.len();
        returned += got.len();
        relevant_returned += got.iter().filter(|g| expected.contains(&g.as_str())).count();
        if hits < expected.len() {
            misses.push(format!("{text}: expected {expected:?}, got {got:?}"));
        }
    }
    let recall = found as f64 / expected_total as f64;
    let precision = relevant_returned as f64 / returned.max(1) as f64;
    println!(
        "search corpus: {} queries, recall in the first page {:.3} ({found}/{expected_total}), precision@10 {:.3} ({relevant_returned}/{returned})",
        corpus["queries"].as_array().unwrap().len(),
        recall,
        precision
    );
    assert!(misses.is_empty(), "expected hits missing from the first page:\n{}", misses.join("\n"));
}

/// A search ranks only its newest `CANDIDATES` matches (index order), by relevance and recency, and
/// pages through exactly those: no gaps, no repeats, and the page after the last one is empty.
#[tokio::test]
async fn a_common_word_ranks_only_its_newest_candidates() {
    use ecer_gateway::services::page::{Cursor, PageArgs};
    use ecer_gateway::services::search::{self, CANDIDATES, Kind, MAX_OFFSET};
    use sea_orm::TransactionTrait;
    let app = TestApp::spawn().await;
    let db = &app.state.db;
    // A third of the documents match (more would leave bm25 no weight for the word), the newest
    // CANDIDATES of them and 50 older ones.
    let matches = CANDIDATES + 50;
    let total = 3 * matches;
    let at = |i: i64| chrono::Utc::now() - chrono::Duration::seconds(total - i);
    let txn = db.begin().await.unwrap();
    for i in 1..=total {
        // Documents 3 (the oldest match) and 1800 say it three times: the most relevant, by far.
        let text = match i {
            3 | 1800 => "报价 报价 报价",
            6 => "报价 unicorn words here",
            i if i % 3 == 0 => "报价 filler words here",
            _ => "other filler words here",
        };
        search::index(&txn, Kind::Post, i, Some(1), text, at(i)).await.unwrap();
    }
    txn.commit().await.unwrap();

    // Both paths: the instance's in-memory index and the database.
    for resident in [Some(&*app.state.search), None] {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let args = PageArgs { after, ..PageArgs::first(100) };
            let page = search::search(db, resident, "报价", Kind::Post, None, &args).await.unwrap();
            let path = if resident.is_some() { search::Answered::Memory } else { search::Answered::Database };
            assert_eq!(page.answered_by, path);
            seen.extend(page.page.items.iter().map(|(_, id)| *id));
            if !page.page.has_next {
                break;
            }
            after = page.page.items.last().map(|(c, _)| *c);
        }
        assert_eq!(seen.len() as i64, CANDIDATES, "one page per hundred candidates, then no more");
        // Within the candidates, relevance still leads (on PostgreSQL the stored tsvector keeps no
        // counts, so every document with all the words is as relevant as the next, and recency
        // decides; the in-memory index counts on both).
        let best = if resident.is_none() && crate::common::backend_is_postgres() { total } else { 1800 };
        assert_eq!(seen[0], best, "memory: {}", resident.is_some());
        let mut distinct = seen.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), seen.len(), "no result twice");
        assert_eq!(distinct[0], 3 * (matches - CANDIDATES + 1), "older matches are not ranked, however relevant");

        let last = PageArgs { after: Some(Cursor::Id(MAX_OFFSET - 1)), ..PageArgs::first(10) };
        assert!(search::search(db, resident, "报价", Kind::Post, None, &last).await.unwrap().page.items.is_empty());
        let past = PageArgs { after: Some(Cursor::Id(MAX_OFFSET)), ..PageArgs::first(10) };
        assert!(search::search(db, resident, "报价", Kind::Post, None, &past).await.is_err());
        // A rarer match is found whatever its age.
        let rare = search::search(db, resident, "unicorn", Kind::Post, Some(1), &PageArgs::first(5)).await.unwrap();
        assert_eq!(rare.page.items.iter().map(|(_, id)| *id).collect::<Vec<_>>(), vec![6]);
        let total = search::total(db, resident, "报价", Kind::Post, None).await.unwrap();
        assert_eq!((total.count, total.capped), (CANDIDATES, true));
        let total = search::total(db, resident, "unicorn", Kind::Post, None).await.unwrap();
        assert_eq!((total.count, total.capped), (1, false));
    }
    assert!(app.state.search.is_ready(), "the first pass above was the in-memory index's");
}

/// The new shape: `result` is a `Post | Board | User` union, `text` is the snippet without markup and
/// `highlights` are UTF-16 ranges of the matches in it.
const RESULTS: &str = "query($q: String!, $type: SearchType, $first: Int, $after: String) {
    search(query: $q, type: $type, first: $first, after: $after) {
      totalCount totalCountIsCapped
      edges { node { snippet text highlights { start length }
        result { __typename ... on Post { id title } ... on Board { id name } ... on User { id nickname } } } }
      pageInfo { hasNextPage endCursor } } }";

/// The highlighted stretches of a hit's `text`, sliced as a JavaScript string would (UTF-16).
fn highlighted(hit: &Value) -> Vec<String> {
    let units: Vec<u16> = hit["text"].as_str().unwrap().encode_utf16().collect();
    hit["highlights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let (start, length) = (r["start"].as_u64().unwrap() as usize, r["length"].as_u64().unwrap() as usize);
            String::from_utf16(&units[start..start + length]).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn results_are_a_union_with_plain_text_highlights_and_a_total() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let board = app.create_board(&admin, "export", "出口實務").await;
    let (u, _) = app.register(&phone(1), "exporter").await;
    let post = |title: &'static str, body: &'static str| {
        let (app, u, board) = (&app, u.clone(), board.clone());
        async move {
            let q = "mutation($input: CreatePostInput!) { createPost(input: $input) { post { id } } }";
            app.gql(Some(&u), q, json!({ "input": { "boardId": board, "title": title, "body": body } })).await;
        }
    };
    // An emoji (two UTF-16 units) before the match, markup-like text and a line break.
    post("😀 出口退稅 <須知>", "出口商品\n需要報關。").await;
    post("Shipping to Hamburg", "We ship & export; shipped twice.").await;

    // Chinese: the union names its type, and the ranges point at the matched words in `text`.
    let data = app.gql(None, RESULTS, json!({ "q": "出口" })).await;
    let search = &data["search"];
    assert_eq!((search["totalCount"].as_i64(), search["totalCountIsCapped"].as_bool()), (Some(1), Some(false)));
    let hit = &search["edges"][0]["node"];
    assert_eq!(hit["result"]["__typename"], "Post");
    assert_eq!(hit["result"]["title"], "😀 出口退稅 <須知>");
    assert_eq!(hit["text"], "😀 出口退稅 <須知> — 出口商品 需要報關。");
    assert_eq!(hit["highlights"], json!([{ "start": 3, "length": 2 }, { "start": 15, "length": 2 }]));
    assert_eq!(highlighted(hit), vec!["出口", "出口"]);
    assert_eq!(hit["snippet"], "😀 <mark>出口</mark>退稅 &lt;須知&gt; — <mark>出口</mark>商品 需要報關。");
    // A Simplified query highlights the Traditional text.
    let data = app.gql(None, RESULTS, json!({ "q": "报关" })).await;
    assert_eq!(highlighted(&data["search"]["edges"][0]["node"]), vec!["報關"]);

    // English: by stem, whole words, nothing escaped in `text`.
    let data = app.gql(None, RESULTS, json!({ "q": "ships" })).await;
    let hit = &data["search"]["edges"][0]["node"];
    assert_eq!(hit["text"], "Shipping to Hamburg — We ship & export; shipped twice.");
    assert_eq!(highlighted(hit), vec!["Shipping", "ship", "shipped"]);
    assert_eq!(hit["highlights"][0], json!({ "start": 0, "length": 8 }));

    // Boards and members are the union's other members.
    let data = app.gql(None, RESULTS, json!({ "q": "出口", "type": "BOARD" })).await;
    let hit = &data["search"]["edges"][0]["node"];
    assert_eq!(
        (hit["result"]["__typename"].as_str(), hit["result"]["name"].as_str()),
        (Some("Board"), Some("出口實務"))
    );
    assert_eq!(highlighted(hit), vec!["出口"]);
    let data = app.gql(None, RESULTS, json!({ "q": "exporter", "type": "USER" })).await;
    let hit = &data["search"]["edges"][0]["node"];
    assert_eq!(
        (hit["result"]["__typename"].as_str(), hit["result"]["nickname"].as_str()),
        (Some("User"), Some("exporter"))
    );
    assert_eq!(highlighted(hit), vec!["exporter"]);
    assert_eq!(data["search"]["totalCount"], 1);

    // The old fields still answer, from the same hit.
    let old = app.gql(None, SEARCH, json!({ "q": "hamburg" })).await;
    assert_eq!(old["search"]["edges"][0]["node"]["post"]["title"], "Shipping to Hamburg");
    assert_eq!(old["search"]["edges"][0]["node"]["board"], Value::Null);

    // Nothing found: an empty list and a total of zero.
    let none = app.gql(None, RESULTS, json!({ "q": "bitcoin" })).await;
    assert_eq!(none["search"]["totalCount"], 0);
    assert_eq!(none["search"]["edges"], json!([]));
}

/// The total counts every result one can page to, whatever the page; past the ranked candidates it
/// stops at the cap and says so.
#[tokio::test]
async fn totals_count_the_pages_and_stop_at_the_cap() {
    use ecer_gateway::services::search::{self, CANDIDATES, Kind};
    use sea_orm::TransactionTrait;
    let (app, c) = TestApp::community().await;
    for i in 0..7 {
        app.create_post(&c.alice, &c.board, &format!("报价 {i}")).await;
    }
    let mut walked = 0;
    let mut after = Value::Null;
    loop {
        let page = app.gql(None, RESULTS, json!({ "q": "报价", "first": 3, "after": after })).await;
        assert_eq!(page["search"]["totalCount"], 7, "the same total on every page");
        walked += page["search"]["edges"].as_array().unwrap().len();
        if page["search"]["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["search"]["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(walked, 7);
    let scoped = "query($q: String!, $b: ID) { search(query: $q, boardId: $b) { totalCount totalCountIsCapped } }";
    let other = app.create_board(&c.admin, "other", "Other").await;
    let d = app.gql(None, scoped, json!({ "q": "报价", "b": other })).await;
    assert_eq!(d["search"], json!({ "totalCount": 0, "totalCountIsCapped": false }));

    // Straight into the index: exactly the cap, then one past it.
    let db = &app.state.db;
    let txn = db.begin().await.unwrap();
    for i in 1..=CANDIDATES {
        search::index(&txn, Kind::Board, 1_000_000 + i, None, "unicorn", chrono::Utc::now()).await.unwrap();
    }
    txn.commit().await.unwrap();
    // Both paths: the in-memory index and the database.
    for resident in [Some(&*app.state.search), None] {
        let exact = search::total(db, resident, "unicorn", Kind::Board, None).await.unwrap();
        assert_eq!((exact.count, exact.capped), (CANDIDATES, false));
    }
    search::index(db, Kind::Board, 3_000_000, None, "unicorn", chrono::Utc::now()).await.unwrap();
    for resident in [Some(&*app.state.search), None] {
        let capped = search::total(db, resident, "unicorn", Kind::Board, None).await.unwrap();
        assert_eq!((capped.count, capped.capped), (CANDIDATES, true));
    }
    let d = app
        .gql(None, "{ search(query: \"unicorn\", type: BOARD, first: 1) { totalCount totalCountIsCapped } }", json!({}))
        .await;
    assert_eq!(d["search"], json!({ "totalCount": CANDIDATES, "totalCountIsCapped": true }));
}

/// Every instance keeps its own index in memory; a search on one instance sees every change
/// committed on another before the search began: new posts, edits, deletions, erased members.
#[tokio::test]
async fn another_instance_finds_every_committed_change() {
    let (a, c) = TestApp::community().await;
    a.create_post(&c.alice, &c.board, "陶瓷 tiles before the second instance").await;
    // Started after the first posts: it loads them. Its caches are off: this test is about the search
    // index, and without Redis (the SQLite pass) instances do not share the caches' epoch.
    let b = a
        .another_instance(|c| {
            c.response_cache_ttl_ms = 0;
            c.entity_cache_ttl_ms = 0;
        })
        .await;
    assert!(b.state.search.is_ready());
    assert_eq!(titles(&b, "tiles").await, vec!["陶瓷 tiles before the second instance"]);

    let post = a.create_post(&c.alice, &c.board, "Solar inverters 太陽能").await;
    assert_eq!(titles(&b, "太阳能 inverters").await, vec!["Solar inverters 太陽能"]);
    let total = "query($q: String!) { search(query: $q) { totalCount totalCountIsCapped } }";
    assert_eq!(b.gql(None, total, json!({ "q": "solar" })).await["search"]["totalCount"], 1);

    let edit = "mutation($input: UpdatePostInput!) { updatePost(input: $input) { post { id } } }";
    a.gql(Some(&c.alice), edit, json!({ "input": { "postId": post, "title": "Wind turbines", "body": "Blades." } }))
        .await;
    assert!(titles(&b, "solar").await.is_empty(), "the edit took the word away on the other instance");
    assert_eq!(titles(&b, "turbines").await, vec!["Wind turbines"]);
    assert_eq!(b.gql(None, total, json!({ "q": "solar" })).await["search"]["totalCount"], 0);

    let delete = "mutation($input: DeletePostInput!) { deletePost(input: $input) { deletedPostId } }";
    a.gql(Some(&c.alice), delete, json!({ "input": { "postId": post } })).await;
    assert!(titles(&b, "turbines").await.is_empty(), "a deletion is never found after it commits");

    // An erased member is not found on the other instance either.
    let (bob, _) = a.register(&phone(7), "bobthebuilder").await;
    let users = async |app: &TestApp| {
        let d = app.gql(None, SEARCH, json!({ "q": "bobthebuilder", "type": "USER" })).await;
        d["search"]["edges"].as_array().unwrap().len()
    };
    assert_eq!(users(&b).await, 1);
    let erase = "mutation { deleteAccount(input: { password: \"correct horse\" }) { deleted } }";
    let done = a.gql_raw(Some(&bob), erase, json!({})).await.1;
    assert!(done["errors"].is_null(), "{done}");
    assert_eq!(users(&b).await, 0);
    // All of the above came from the second instance's memory, not the database path.
    use ecer_gateway::services::search::{self, Answered, Kind};
    let args = ecer_gateway::services::page::PageArgs::first(5);
    let page = search::search(&b.state.db, Some(&*b.state.search), "tiles", Kind::Post, None, &args).await.unwrap();
    assert_eq!((page.answered_by, page.page.items.len()), (Answered::Memory, 1));
}

/// PostgreSQL commits transactions in another order than it numbers their rows: a change written
/// early and committed late must still reach the in-memory index after a read that went past
/// later changes. (On SQLite one write transaction at a time makes the order the same.)
#[tokio::test]
async fn a_change_committed_after_a_later_one_is_not_skipped() {
    use ecer_gateway::services::page::PageArgs;
    use ecer_gateway::services::search::{self, Kind};
    use sea_orm::TransactionTrait;
    if !crate::common::backend_is_postgres() {
        return;
    }
    let app = TestApp::spawn().await;
    let (db, resident) = (&app.state.db, Some(&*app.state.search));
    let found = async |q: &str| {
        let page = search::search(db, resident, q, Kind::Post, None, &PageArgs::first(5)).await.unwrap();
        assert_eq!(page.answered_by, search::Answered::Memory);
        page.page.items.iter().map(|(_, id)| *id).collect::<Vec<_>>()
    };
    let now = chrono::Utc::now();
    let early = db.begin().await.unwrap();
    search::index(&early, Kind::Post, 1, None, "slowpoke", now).await.unwrap();
    search::index(db, Kind::Post, 2, None, "quick", now).await.unwrap();
    assert_eq!(found("quick").await, vec![2], "the later change is read");
    assert!(found("slowpoke").await.is_empty(), "the open transaction's change is not visible yet");
    early.commit().await.unwrap();
    assert_eq!(found("slowpoke").await, vec![1], "and is read once it commits");
}

/// A change log that cannot be read (here: renamed away) leaves searches to the database, which still
/// answers them; once it can be read again, the in-memory index answers and has missed nothing.
#[tokio::test]
async fn an_unreadable_change_log_leaves_searches_to_the_database() {
    use ecer_gateway::services::page::PageArgs;
    use ecer_gateway::services::search::{self, Answered, Kind};
    use sea_orm::ConnectionTrait;
    let (app, c) = TestApp::community().await;
    app.create_post(&c.alice, &c.board, "Ceramic tiles from Foshan").await;
    let (db, resident) = (&app.state.db, Some(&*app.state.search));
    let search = async |q: &str| {
        let page = search::search(db, resident, q, Kind::Post, None, &PageArgs::first(5)).await.unwrap();
        (page.answered_by, page.page.items.len())
    };
    assert_eq!(search("foshan").await, (Answered::Memory, 1));
    db.execute_unprepared("ALTER TABLE search_changes RENAME TO search_changes_away").await.unwrap();
    assert_eq!(search("foshan").await, (Answered::Database, 1));
    assert_eq!(titles(&app, "foshan").await, vec!["Ceramic tiles from Foshan"], "through the API too");
    db.execute_unprepared("ALTER TABLE search_changes_away RENAME TO search_changes").await.unwrap();
    app.create_post(&c.alice, &c.board, "Foshan porcelain").await;
    assert_eq!(search("foshan").await, (Answered::Memory, 2));
}
