//! HTTP cases: what is sent, and the rules every answer must keep.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::generate::{self, Gen};
use crate::{Ctx, Failure};

/// One HTTP request to send.
pub struct Req {
    pub kind: &'static str,
    pub method: &'static str,
    /// Path and query string, sent as they are.
    pub target: String,
    pub headers: Vec<(&'static str, Vec<u8>)>,
    pub body: Vec<u8>,
    /// The server may stop reading and close before the client has sent everything (an oversized
    /// body): a reset is then the refusal, not a failure.
    pub may_reset: bool,
    /// A GET of a mutation or subscription: must be 405.
    pub must_405: bool,
    /// Statuses this request may get besides the GraphQL ones.
    pub extra_statuses: &'static [u16],
}

impl Req {
    fn new(kind: &'static str, method: &'static str, target: String) -> Req {
        Req {
            kind,
            method,
            target,
            headers: Vec::new(),
            body: Vec::new(),
            may_reset: false,
            must_405: false,
            extra_statuses: &[],
        }
    }

    fn post_json(kind: &'static str, body: impl Into<Vec<u8>>) -> Req {
        let mut r = Req::new(kind, "POST", "/graphql".into());
        r.headers.push(("content-type", b"application/json".to_vec()));
        r.body = body.into();
        r
    }

    fn header(mut self, name: &'static str, value: impl Into<Vec<u8>>) -> Req {
        self.headers.push((name, value.into()));
        self
    }

    /// A short description for a failure report.
    pub fn describe(&self) -> String {
        let headers: Vec<String> =
            self.headers.iter().map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v))).collect();
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(300)]).to_string();
        format!(
            "{} {} {} [{}] body ({} bytes): {}",
            self.kind,
            self.method,
            &self.target.chars().take(300).collect::<String>(),
            headers.join("; "),
            self.body.len(),
            body
        )
    }
}

/// Statuses the GraphQL endpoint answers with; anything else, 5xx above all, is a failure.
/// (408: a body that did not arrive in time; 429: too many connections from one address.)
const GRAPHQL_STATUSES: [u16; 9] = [200, 400, 405, 406, 408, 413, 415, 429, 431];
/// Refusals of the HTTP layer itself (hyper), before the gateway sees the request: a request head
/// over HTTP_MAX_HEADER_BYTES (431) or a URI the parser will not take (414). They carry no GraphQL
/// body.
const HTTP_LAYER: [u16; 2] = [414, 431];

/// URL-encodes a query-string value, leaving brackets raw (the URL standard allows them), so deep
/// documents stay short enough for a request line.
pub fn component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'{' | b'}' | b'[' | b']' | b'(' | b')' | b'.' | b'_' | b'-' => {
                out.push(b as char)
            }
            b'!' | b'$' | b':' | b'@' | b',' | b'*' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The longest request target a client can send (`http::Uri` holds at most 64 KiB).
const MAX_TARGET: usize = 60_000;

/// The gateway's default MAX_BODY_BYTES (the fuzz instance keeps it).
const MAX_BODY_BYTES: usize = 1_048_576;

fn get(kind: &'static str, params: &[(&str, &str)]) -> Req {
    let q: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", component(v))).collect();
    let mut target = format!("/graphql?{}", q.join("&"));
    if target.len() > MAX_TARGET {
        // Percent-encoding grows CJK text ninefold, past what the client can send; anything over
        // HTTP_MAX_HEADER_BYTES (32 KiB) is refused with 431 all the same, so cut (where no `%XX`
        // escape is split) and still send it.
        let mut cut = MAX_TARGET;
        while cut > 0 && target.as_bytes()[cut - 1..].iter().take(3).any(|b| *b == b'%') {
            cut -= 1;
        }
        target.truncate(cut);
    }
    Req::new(kind, "GET", target)
}

fn request_json(op: &generate::Operation) -> Value {
    let mut body = json!({ "query": op.document, "variables": op.variables });
    if let Some(name) = &op.operation_name {
        body["operationName"] = json!(name);
    }
    body
}

fn with_auth(g: &mut Gen, ctx: &Ctx, mut req: Req, p: f64) -> Req {
    if g.chance(p) && !ctx.tokens.is_empty() {
        let token = g.pick(&ctx.tokens).clone();
        if g.chance(0.8) {
            req.headers.push(("authorization", format!("Bearer {token}").into_bytes()));
        } else {
            // The cookie, from the gateway's own page or from another site.
            req.headers.push(("cookie", format!("ecer_session={token}").into_bytes()));
            let proofs: [&[(&'static str, &str)]; 5] = [
                &[("sec-fetch-site", "same-origin")],
                &[("sec-fetch-site", "cross-site")],
                &[("origin", "null")],
                &[("origin", "https://evil.example")],
                &[],
            ];
            let proof = proofs[g.below(proofs.len())];
            for (k, v) in proof {
                req.headers.push((k, v.as_bytes().to_vec()));
            }
        }
    }
    req
}

/// A document of the hostile shapes, with a name for the figures.
fn hostile_document(g: &mut Gen<'_>) -> (&'static str, String) {
    match g.below(6) {
        0 | 1 => {
            let construct = *g.pick(&generate::CONSTRUCTS);
            let depth = *g.pick(&[60, 65, 100, 1_000, 5_000, 100_000]);
            ("deep", generate::deep(construct, depth))
        }
        2 => {
            let n = *g.pick(&[2, 3, 50, 5_000]);
            ("fragment cycle", generate::cycle(n))
        }
        3 => {
            let (levels, width) = *g.pick(&[(3, 3), (10, 2), (30, 2), (8, 10), (2, 200)]);
            ("fan-out", generate::fan_out(levels, width))
        }
        4 => {
            let n = *g.pick(&[29, 31, 200, 5_000]);
            ("alias flood", generate::alias_flood(n))
        }
        _ => {
            let n = *g.pick(&[10, 100, 1_000, 20_000]);
            ("directive flood", generate::directive_flood(n))
        }
    }
}

/// Bodies that are JSON but not a GraphQL request, or not JSON at all.
const MISTYPED: [&str; 22] = [
    "null",
    "1",
    "\"{ __typename }\"",
    "true",
    "[]",
    "[[]]",
    "[1, 2]",
    "[null]",
    "{}",
    "{\"query\": 1}",
    "{\"query\": null}",
    "{\"query\": [\"{ __typename }\"]}",
    "{\"query\": \"{ __typename }\", \"variables\": []}",
    "{\"query\": \"{ __typename }\", \"variables\": \"{}\"}",
    "{\"query\": \"{ __typename }\", \"operationName\": 5}",
    "{\"query\": \"{ __typename }\", \"extensions\": 5}",
    "{\"query\": \"{ __typename }\", \"extensions\": {\"persistedQuery\": 1}}",
    "{\"documentId\": 5}",
    "{\"query\": \"{ __typename }\", \"query\": \"{ me { id } }\"}",
    "{\"query\": \"{ __typename }\"} trailing",
    "{\"query\": \"\\ud800\"}",
    "\u{feff}{\"query\": \"{ __typename }\"}",
];

const CONTENT_TYPES: [&str; 12] = [
    "text/plain",
    "application/x-www-form-urlencoded",
    "application/graphql",
    "application/json; charset=latin1",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "application/graphql-response+json",
    "application/json;;;",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "*/*",
    "",
];

const ACCEPTS: [&str; 10] = [
    "text/html",
    "application/graphql-response+json",
    "application/json",
    "application/graphql-response+json;q=0, application/json;q=0",
    "application/json; charset=latin1",
    "*/*;q=0.1",
    "image/png",
    ";;;",
    "application/graphql-response+json; charset=utf-8, */*;q=0.5",
    "",
];

/// A multipart (upload) request, well-formed or broken in one of the ways the spec allows for.
fn multipart(g: &mut Gen, ctx: &Ctx) -> Req {
    let boundary = format!("b{}", g.below(1_000_000));
    let upload = "mutation($file: Upload!) { uploadMedia(input: { file: $file, kind: POST_IMAGE }) { media { id } } }";
    let mut operations = json!({ "query": upload, "variables": { "file": null } }).to_string();
    let mut map = json!({ "0": ["variables.file"] }).to_string();
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0".to_vec();
    let mut files: Vec<(String, Vec<u8>)> = vec![("0".into(), png.clone())];
    let mut preflight = true;
    let mut signed_in = true;
    let mut order_map_first = false;
    let mut truncate = false;
    let mut may_reset = false;
    let mut extra: Vec<u8> = Vec::new();
    match g.below(14) {
        0 => {}
        1 => preflight = false,
        2 => signed_in = false,
        3 => operations = "{not json".into(),
        4 => map = "[1,2]".into(),
        5 => map = json!({ "0": ["query"] }).to_string(),
        6 => map = json!({ "0": ["variables.file"], "1": ["variables.other"] }).to_string(),
        7 => {
            // More files than MAX_UPLOAD_FILES.
            let entries: serde_json::Map<String, Value> =
                (0..12).map(|i| (i.to_string(), json!([format!("variables.f{i}")]))).collect();
            map = Value::Object(entries).to_string();
            files = (0..12).map(|i| (i.to_string(), png.clone())).collect();
        }
        8 => order_map_first = true,
        9 => truncate = true,
        10 => {
            // A file over MAX_UPLOAD_BYTES (2 MiB on the fuzz instance).
            let mut big = png.clone();
            big.resize(2_200_000, 7);
            files = vec![("0".into(), big)];
            may_reset = true;
        }
        11 => {
            let (_, doc) = hostile_document(g);
            operations = json!({ "query": doc }).to_string();
            map = "{}".into();
            files.clear();
        }
        12 => {
            operations =
                json!([{ "query": upload, "variables": { "file": null } }, { "query": "{ __typename }" }]).to_string();
            map = json!({ "0": [*g.pick(&["0.variables.file", "5.variables.file", "x.variables.file", "variables.file"])] })
                .to_string();
        }
        _ => extra = b"--garbage\r\n\r\n".to_vec(),
    }
    let part = |name: &str, filename: Option<&str>, body: &[u8]| {
        let mut p = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").into_bytes();
        if let Some(f) = filename {
            p.extend_from_slice(format!("; filename=\"{f}\"\r\nContent-Type: image/png").as_bytes());
        }
        p.extend_from_slice(b"\r\n\r\n");
        p.extend_from_slice(body);
        p.extend_from_slice(b"\r\n");
        p
    };
    let mut body = extra;
    let ops = part("operations", None, operations.as_bytes());
    let mp = part("map", None, map.as_bytes());
    if order_map_first {
        body.extend(mp);
        for (name, bytes) in &files {
            body.extend(part(name, Some("a.png"), bytes));
        }
        body.extend(ops);
    } else {
        body.extend(ops);
        body.extend(mp);
        for (name, bytes) in &files {
            body.extend(part(name, Some("a.png"), bytes));
        }
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    if truncate {
        let at = g.below(body.len());
        body.truncate(at);
    }
    let mut req = Req::new("multipart", "POST", "/graphql".into());
    req.headers.push(("content-type", format!("multipart/form-data; boundary={boundary}").into_bytes()));
    if preflight {
        req.headers.push(("apollo-require-preflight", b"true".to_vec()));
    }
    if signed_in && !ctx.tokens.is_empty() {
        req.headers.push(("authorization", format!("Bearer {}", g.pick(&ctx.tokens)).into_bytes()));
    }
    req.body = body;
    req.may_reset = may_reset;
    // A signed-out upload is refused before its files are read: 401, coded.
    req.extra_statuses = &[401];
    req
}

/// The requests of one HTTP case.
pub fn case(g: &mut Gen, ctx: &Ctx) -> Vec<Req> {
    let roll = g.below(100);
    let one = match roll {
        0..=24 => {
            let op = g.operation("query");
            with_auth(g, ctx, Req::post_json("valid query (POST)", request_json(&op).to_string()), 0.5)
        }
        25..=34 => {
            let op = g.operation("mutation");
            with_auth(g, ctx, Req::post_json("valid mutation (POST)", request_json(&op).to_string()), 0.8)
        }
        35..=42 => {
            let op = g.operation("query");
            let vars = op.variables.to_string();
            let mut params = vec![("query", op.document.as_str()), ("variables", vars.as_str())];
            if let Some(n) = &op.operation_name {
                params.push(("operationName", n));
            }
            with_auth(g, ctx, get("valid query (GET)", &params), 0.5)
        }
        43..=45 => {
            let kind = if g.chance(0.7) { "mutation" } else { "subscription" };
            let op = g.operation(kind);
            let vars = op.variables.to_string();
            let mut params = vec![("query", op.document.as_str()), ("variables", vars.as_str())];
            if let Some(n) = &op.operation_name {
                params.push(("operationName", n));
            }
            let mut req = with_auth(g, ctx, get("mutation or subscription (GET)", &params), 0.8);
            req.must_405 = req.target.len() < MAX_TARGET;
            req
        }
        46..=47 => {
            let op = g.operation("subscription");
            Req::post_json("subscription (POST)", request_json(&op).to_string())
        }
        48..=55 => {
            let kind = if g.chance(0.8) { "query" } else { "mutation" };
            let op = g.operation(kind);
            let doc = generate::break_document(g, &op.document);
            if g.chance(0.3) && component(&doc).len() < MAX_TARGET {
                get("broken document (GET)", &[("query", &doc)])
            } else {
                Req::post_json("broken document (POST)", json!({ "query": doc }).to_string())
            }
        }
        56..=65 => {
            let (kind, doc) = hostile_document(g);
            let kind: &'static str = match kind {
                "deep" => "deep document",
                "fragment cycle" => "fragment cycle",
                "fan-out" => "fragment fan-out",
                "alias flood" => "alias flood",
                _ => "directive flood",
            };
            if g.chance(0.3) && component(&doc).len() < MAX_TARGET {
                get(kind, &[("query", &doc)])
            } else {
                Req::post_json(kind, json!({ "query": doc }).to_string())
            }
        }
        66..=67 => {
            // Huge but flat: a long string, many operations, many variables.
            let doc = match g.below(3) {
                0 => format!("{{ search(query: \"{}\") {{ totalCount }} }}", "长".repeat(300_000)),
                1 => (0..3_000).map(|i| format!("query Q{i} {{ __typename }}")).collect::<Vec<_>>().join(" "),
                _ => {
                    let defs: Vec<String> = (0..3_000).map(|i| format!("$v{i}: Int")).collect();
                    format!("query({}) {{ __typename }}", defs.join(", "))
                }
            };
            Req::post_json("huge document", json!({ "query": doc, "operationName": "Q7" }).to_string())
        }
        68..=70 => match g.below(5) {
            0 => {
                let mut body = br#"{"query":"{ search(query: \""#.to_vec();
                body.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80]);
                body.extend_from_slice(br#"\") { totalCount } }"}"#);
                Req::post_json("invalid UTF-8", body)
            }
            1 => Req::new(
                "invalid UTF-8",
                "GET",
                "/graphql?query=%7B%20search(query:%22%FF%FE%C3%28%22)%7BtotalCount%7D%7D".into(),
            ),
            2 => Req::post_json("invalid UTF-8", r#"{"query":"{ __typename }"}"#)
                .header("authorization", b"Bearer \xff\xfe".to_vec()),
            3 => Req::post_json("invalid UTF-8", r#"{"query":"{ __typename }"}"#)
                .header("cookie", b"ecer_session=\xff; ecer_vid=\xfe".to_vec())
                .header("origin", b"http://\xff".to_vec()),
            _ => Req::new("invalid UTF-8", "GET", "/graphql?query=%7B__typename%7D&variables=%FF".into())
                .header("user-agent", b"\xff\xfe Mozilla".to_vec())
                .header("accept-language", b"\xff".to_vec()),
        },
        71..=73 => {
            let size = *g.pick(&[1_048_577, 1_500_000, 3_000_000]);
            let pad = "x".repeat(size);
            let mut req =
                Req::post_json("oversized body", json!({ "query": "{ __typename }", "pad": pad }).to_string());
            req.may_reset = true;
            req
        }
        74..=76 => {
            let op = g.operation("query");
            let full = request_json(&op).to_string();
            let cut = g.below(full.len());
            Req::post_json("truncated body", full.as_bytes()[..cut].to_vec())
        }
        77..=79 => Req::post_json("mistyped body", g.pick(&MISTYPED).as_bytes().to_vec()),
        80..=81 => {
            let method = *g.pick(&["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]);
            let mut req = Req::post_json("wrong method", r#"{"query":"{ __typename }"}"#);
            req.method = method;
            if method == "HEAD" {
                req.target = "/graphql?query=%7B__typename%7D".into();
                req.body.clear();
            }
            req
        }
        82..=84 => {
            let mut req = Req::post_json("content type or accept", r#"{"query":"{ __typename }"}"#);
            req.headers.clear();
            if g.chance(0.6) {
                let ct = *g.pick(&CONTENT_TYPES);
                if !ct.is_empty() {
                    req.headers.push(("content-type", ct.as_bytes().to_vec()));
                }
            } else {
                req.headers.push(("content-type", b"application/json".to_vec()));
                req.headers.push(("accept", g.pick(&ACCEPTS).as_bytes().to_vec()));
            }
            req
        }
        85..=89 => {
            let n = *g.pick(&[0, 1, 2, 5, 10, 11, 100]);
            let items: Vec<Value> = (0..n)
                .map(|_| match g.below(6) {
                    0 => json!(1),
                    1 => json!({ "query": hostile_document(g).1 }),
                    2 => json!({ "query": generate::break_document(g, "{ __typename }") }),
                    3 => json!([{ "query": "{ __typename }" }]),
                    _ => {
                        let kind = if g.chance(0.8) { "query" } else { "mutation" };
                        request_json(&g.operation(kind))
                    }
                })
                .collect();
            with_auth(g, ctx, Req::post_json("batch", Value::Array(items).to_string()), 0.5)
        }
        90..=93 => multipart(g, ctx),
        94..=96 => {
            let query = g.operation("query").document;
            let hash = sha256_hex(&query);
            let manifest = ctx.known.manifest_ids.first().cloned().unwrap_or_default();
            let body = match g.below(7) {
                0 => json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } }),
                1 => {
                    json!({ "query": query, "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } })
                }
                2 => {
                    json!({ "query": query, "extensions": { "persistedQuery": { "version": 1, "sha256Hash": "00" } } })
                }
                3 => json!({ "extensions": { "persistedQuery": { "version": 2, "sha256Hash": hash } } }),
                4 => json!({ "documentId": format!("sha256:{}", g.pick(&ctx.known.manifest_ids)) }),
                5 => json!({ "documentId": "sha256:" }),
                _ => json!({ "documentId": manifest, "query": query }),
            };
            if g.chance(0.3) {
                let ext = body.get("extensions").map(Value::to_string).unwrap_or_default();
                let id = body.get("documentId").and_then(Value::as_str).unwrap_or_default().to_string();
                get("persisted query (GET)", &[("extensions", &ext), ("documentId", &id)])
            } else {
                with_auth(g, ctx, Req::post_json("persisted query", body.to_string()), 0.5)
            }
        }
        _ => {
            let id = if g.chance(0.5) { "not-a-uuid".to_string() } else { uuid::Uuid::new_v4().to_string() };
            let path = *g.pick(&["/media/", "/media/private/", "/media/exports/"]);
            let mut req = with_auth(g, ctx, Req::new("media route", "GET", format!("{path}{id}")), 0.7);
            req.extra_statuses = &[401, 403, 404];
            req
        }
    };
    vec![one]
}

/// Sends one request and checks the answer; returns what went wrong, if anything.
pub async fn send(ctx: &Ctx, req: &Req) -> Result<(), Failure> {
    let method = reqwest::Method::from_bytes(req.method.as_bytes()).unwrap();
    // A body over MAX_BODY_BYTES may be refused (413) before it has all been read, and the server
    // then closes: the rest of the client's write fails with a broken pipe or a reset. That is the
    // client's view of a correct early refusal, whatever kind of case sent the body.
    let may_reset = req.may_reset || req.body.len() > MAX_BODY_BYTES;
    let client = if may_reset { &ctx.fresh } else { &ctx.http };
    let mut builder = client.request(method, format!("http://{}{}", ctx.addr, req.target));
    for (name, value) in &req.headers {
        match reqwest::header::HeaderValue::from_bytes(value) {
            Ok(v) => builder = builder.header(*name, v),
            Err(_) => return Err(Failure::new("client", format!("unsendable header {name}"))),
        }
    }
    if !req.body.is_empty() {
        builder = builder.body(req.body.clone());
    }
    let resp = match builder.send().await {
        Ok(resp) => resp,
        Err(e) if may_reset && !e.is_timeout() => {
            ctx.count_status("connection closed while sending (refused)");
            return Ok(());
        }
        Err(e) => return Err(Failure::new("reset or transport error", format!("{e:?}"))),
    };
    let status = resp.status().as_u16();
    let allow = resp.headers().get("allow").is_some();
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(e) if may_reset => {
            ctx.count_status(&format!("{status}, then closed"));
            let _ = e;
            return Ok(());
        }
        Err(e) => return Err(Failure::new("reset while reading", format!("{status}: {e:?}"))),
    };
    ctx.count_status(&status.to_string());
    if status >= 500 {
        return Err(Failure::new("5xx", format!("{status}: {}", String::from_utf8_lossy(&body))));
    }
    if !GRAPHQL_STATUSES.contains(&status) && !HTTP_LAYER.contains(&status) && !req.extra_statuses.contains(&status) {
        return Err(Failure::new("unexpected status", format!("{status}: {}", String::from_utf8_lossy(&body))));
    }
    // A GET of a mutation is refused with 405, unless the document does not parse or validate
    // (then it never runs either): it must never come back with data.
    if req.must_405 && status != 405 {
        let ran = serde_json::from_slice::<Value>(&body).is_ok_and(|v| v.get("data").is_some_and(|d| !d.is_null()));
        if ran || status == 200 && !String::from_utf8_lossy(&body).contains("\"errors\"") {
            return Err(Failure::new("GET ran a mutation", format!("{status}: {}", String::from_utf8_lossy(&body))));
        }
    }
    if status == 405 && !allow {
        return Err(Failure::new("405 without Allow", String::new()));
    }
    if req.method == "HEAD" || HTTP_LAYER.contains(&status) && body.is_empty() {
        return Ok(());
    }
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return Err(Failure::new("body is not JSON", format!("{status}: {}", String::from_utf8_lossy(&body))));
        }
    };
    let responses: Vec<&Value> = match &value {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    for r in responses {
        let errors = r.get("errors");
        if status != 200 && errors.is_none() {
            return Err(Failure::new("refusal without errors", format!("{status}: {r}")));
        }
        if let Some(errors) = errors {
            ctx.check_errors(errors).map_err(|e| Failure::new("bad error", e))?;
        }
        if r.get("data").is_none() && errors.is_none() {
            return Err(Failure::new("neither data nor errors", r.to_string()));
        }
    }
    Ok(())
}

/// Raw TCP abuse the HTTP client cannot send: garbage, truncated bodies, conflicting lengths.
/// The server may answer with a 4xx or close; it must never answer 5xx, and must go on serving
/// (checked by every later case and the final health check).
pub async fn raw(ctx: &Ctx, g: &mut Gen<'_>) -> Result<(), Failure> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = ctx.addr.to_string();
    let payload: Vec<u8> = match g.below(7) {
        0 => b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage-tls-hello\r\n\r\n".to_vec(),
        1 => format!("POST /graphql HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"query\":").into_bytes(),
        2 => format!("POST /graphql HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n0\r\n\r\n").into_bytes(),
        3 => format!("GET /graphql?query=%7B__typename%7D HTTP/1.1\r\nHost: {host}\r\n{}\r\n", "X-Flood: a\r\n".repeat(200)).into_bytes(),
        4 => format!("POST /graphql HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nfffffffff\r\n{{").into_bytes(),
        5 => b"GET /graphql?query=%7B__typename%7D HTTP/1.0\r\n\r\n".to_vec(),
        _ => format!("GET /\u{0}graphql HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes(),
    };
    let mut stream =
        tokio::net::TcpStream::connect(ctx.addr).await.map_err(|e| Failure::new("cannot connect", e.to_string()))?;
    let _ = stream.write_all(&payload).await;
    let _ = stream.shutdown().await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    let status: Option<u16> = text.strip_prefix("HTTP/1.").and_then(|r| r.get(2..5)).and_then(|s| s.parse().ok());
    match status {
        Some(s) if s >= 500 => return Err(Failure::new("5xx", text.chars().take(300).collect::<String>())),
        Some(s) => ctx.count_status(&format!("raw {s}")),
        None if read.is_err() => ctx.count_status("raw: no answer, left open"),
        None => ctx.count_status("raw: closed without an answer"),
    }
    Ok(())
}
