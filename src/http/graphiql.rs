//! GraphiQL, served from assets compiled into the binary: it works with no internet access.
//! The files come from npm via `scripts/vendor-graphiql.sh`.
//!
//! The page opens with tabs taken from the frontend contract (home feed, post page, search, sign-in,
//! live chat), their variables filled with ids that exist right now, so a newcomer can run each one
//! as it opens. Subscriptions go over the WebSocket with the vendored graphql-ws client; the JSON of
//! the Headers editor becomes the `connection_init` payload.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::graphql::ids::{self, Kind};

const INDEX: &str = include_str!("../../assets/graphiql/index.html");
/// Where index.html takes its tabs (a JSON array).
const TABS_SLOT: &str = "/*TABS*/[]";
/// The page must open even when the database is slow or down: the example ids are a nicety.
const EXAMPLES_BUDGET: Duration = Duration::from_millis(500);

/// One contract operation shown as a tab, with the variables it opens with.
struct Tab {
    document: &'static str,
    variables: fn(&Examples) -> Value,
}

struct Examples {
    ids: crate::demo::Examples,
    demo: bool,
}

fn global(kind: Kind, id: Option<i64>) -> Value {
    id.map(|id| Value::String(ids::encode(kind, id).to_string())).unwrap_or(Value::Null)
}

const TABS: [Tab; 5] = [
    Tab {
        document: include_str!("../../frontend-contract/operations/HomeFeed.graphql"),
        variables: |_| json!({ "first": 10, "orderBy": "LATEST", "commentsFirst": 3 }),
    },
    Tab {
        document: include_str!("../../frontend-contract/operations/PostPage.graphql"),
        variables: |e| json!({ "id": global(Kind::Post, e.ids.post), "commentsFirst": 20, "repliesFirst": 3 }),
    },
    Tab {
        document: include_str!("../../frontend-contract/operations/Search.graphql"),
        variables: |_| json!({ "query": "外贸 FOB", "type": "POST", "first": 10 }),
    },
    Tab {
        document: include_str!("../../frontend-contract/operations/Login.graphql"),
        // Only a demo community has a password anyone may know.
        variables: |e| {
            let (phone, password) = if e.demo { (crate::demo::DEMO_PHONE, crate::seed::PASSWORD) } else { ("+86", "") };
            json!({ "input": { "phone": phone, "password": password, "delivery": "COOKIE" } })
        },
    },
    Tab {
        document: include_str!("../../frontend-contract/operations/OnLiveChat.graphql"),
        variables: |e| json!({ "streamId": global(Kind::LiveStream, e.ids.live_stream) }),
    },
];

pub async fn index(State(app): State<AppState>) -> Html<String> {
    let ids = match tokio::time::timeout(EXAMPLES_BUDGET, crate::demo::examples(&app.db)).await {
        Ok(Ok(ids)) => ids,
        Ok(Err(err)) => {
            tracing::warn!(%err, "GraphiQL opens without example ids");
            Default::default()
        }
        Err(_) => Default::default(),
    };
    let examples = Examples { ids, demo: app.config.demo };
    let tabs: Vec<Value> = TABS
        .iter()
        .map(|tab| {
            let variables = serde_json::to_string_pretty(&(tab.variables)(&examples)).unwrap_or_default();
            json!({ "query": tab.document, "variables": variables })
        })
        .collect();
    // Inside a <script>: `</` must not end it early.
    let tabs = Value::Array(tabs).to_string().replace("</", "<\\/");
    Html(INDEX.replacen(TABS_SLOT, &tabs, 1))
}

pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, mime): (&'static [u8], &str) = match file.as_str() {
        "graphiql.min.js" => {
            (include_bytes!("../../assets/graphiql/graphiql.min.js"), "text/javascript; charset=utf-8")
        }
        "graphiql.min.css" => (include_bytes!("../../assets/graphiql/graphiql.min.css"), "text/css; charset=utf-8"),
        "react.production.min.js" => {
            (include_bytes!("../../assets/graphiql/react.production.min.js"), "text/javascript; charset=utf-8")
        }
        "react-dom.production.min.js" => {
            (include_bytes!("../../assets/graphiql/react-dom.production.min.js"), "text/javascript; charset=utf-8")
        }
        "graphql-ws.min.js" => {
            (include_bytes!("../../assets/graphiql/graphql-ws.min.js"), "text/javascript; charset=utf-8")
        }
        "LICENSES.txt" => (include_bytes!("../../assets/graphiql/LICENSES.txt"), "text/plain; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    // The files are pinned by version, so browsers may keep them for a day.
    ([(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "public, max-age=86400")], body).into_response()
}
