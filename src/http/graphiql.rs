//! GraphiQL, served from assets compiled into the binary: it works with no internet access.
//! The files come from npm via `scripts/vendor-graphiql.sh`.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

const INDEX: &str = include_str!("../../assets/graphiql/index.html");

pub async fn index() -> Html<&'static str> {
    Html(INDEX)
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
        "LICENSES.txt" => (include_bytes!("../../assets/graphiql/LICENSES.txt"), "text/plain; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    // The files are pinned by version, so browsers may keep them for a day.
    ([(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "public, max-age=86400")], body).into_response()
}
