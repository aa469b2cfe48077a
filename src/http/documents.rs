//! Which document a request runs: the query text it carries, a persisted document it names by hash,
//! or both (an automatic persisted query being registered).
//!
//! - **Trusted documents** (`TRUSTED_DOCUMENTS=true`, meant for production): only the operations of the
//!   frontend contract's manifest run, named by hash (`extensions.persistedQuery.sha256Hash`, Apollo's
//!   form, or `documentId`, the GraphQL codegen client preset's form) or sent in full with a body whose
//!   hash is in the manifest. Anything else is refused before parsing.
//! - **Automatic persisted queries** (APQ, Apollo's protocol, used by Apollo Client and urql): a client
//!   first sends only the hash; on `PERSISTED_QUERY_NOT_FOUND` it sends hash and query, which is
//!   checked against the hash and kept (in Redis when configured, so every instance knows it, else in a
//!   bounded in-process cache: entries are immutable, named by their own hash, so a per-process cache
//!   cannot go stale).
//!
//! The manifest is `frontend-contract/persisted-query-manifest.json` compiled into the binary, or the
//! file `TRUSTED_DOCUMENTS_MANIFEST` names.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::code;
use crate::http::bounds;

const EMBEDDED_MANIFEST: &str = include_str!("../../frontend-contract/persisted-query-manifest.json");
const APQ_LOCAL_ENTRIES: usize = 10_000;
const APQ_TTL_SECS: u64 = 7 * 24 * 3600;

pub const PERSISTED_QUERY_NOT_FOUND: &str = "PERSISTED_QUERY_NOT_FOUND";
pub const PERSISTED_QUERY_NOT_SUPPORTED: &str = "PERSISTED_QUERY_NOT_SUPPORTED";
pub const PERSISTED_QUERY_HASH_MISMATCH: &str = "PERSISTED_QUERY_HASH_MISMATCH";
pub const TRUSTED_DOCUMENT_REQUIRED: &str = "TRUSTED_DOCUMENT_REQUIRED";

/// Why a request's document could not be determined. `message` follows Apollo's wording where
/// clients match on it (`PersistedQueryNotFound`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: &'static str,
}

impl Refusal {
    fn new(code: &'static str, message: &'static str) -> Refusal {
        Refusal { code, message }
    }
}

#[derive(Deserialize)]
struct Manifest {
    operations: Vec<ManifestOperation>,
}

#[derive(Deserialize)]
struct ManifestOperation {
    id: String,
    name: String,
    body: String,
}

enum ApqStore {
    Local(Mutex<lru::LruCache<String, Arc<str>>>),
    Redis { conn: redis::aio::ConnectionManager, prefix: String },
}

pub struct Documents {
    limits: bounds::Limits,
    manifest: HashMap<String, Arc<str>>,
    names: HashSet<String>,
    trusted_only: bool,
    apq: ApqStore,
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl Documents {
    /// Loads the manifest; a manifest that cannot be read stops start-up.
    pub fn new(config: &Config, redis: Option<redis::aio::ConnectionManager>) -> Result<Documents, String> {
        let text = match &config.trusted_documents_manifest {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("TRUSTED_DOCUMENTS_MANIFEST {}: {e}", path.display()))?,
            None => EMBEDDED_MANIFEST.to_string(),
        };
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| format!("the persisted query manifest is not valid: {e}"))?;
        let mut by_hash = HashMap::new();
        let mut names = HashSet::new();
        for op in manifest.operations {
            if sha256_hex(&op.body) != op.id {
                return Err(format!("the persisted query manifest entry {} has a wrong id", op.name));
            }
            names.insert(op.name);
            by_hash.insert(op.id, Arc::from(op.body));
        }
        let apq = match redis {
            Some(conn) => ApqStore::Redis { conn, prefix: format!("{}:apq:", config.redis_prefix) },
            None => ApqStore::Local(Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(APQ_LOCAL_ENTRIES).unwrap_or(NonZeroUsize::MIN),
            ))),
        };
        let limits =
            bounds::Limits { max_nesting: config.max_document_nesting, max_tokens: config.max_document_tokens };
        Ok(Documents { limits, manifest: by_hash, names, trusted_only: config.trusted_documents, apq })
    }

    /// Whether `name` is an operation of the frontend contract (metrics label only those, so clients
    /// cannot mint label values).
    pub fn is_known_operation(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// The document to run, from the request's `query`, `extensions` and `documentId`, checked
    /// against the shape bounds (nesting, expanded size, fragment cycles) before anything parses it.
    /// Every transport takes its documents from here: GET, POST, batches, multipart, WebSocket.
    pub async fn resolve(
        &self,
        query: Option<String>,
        extensions: Option<&Map<String, Value>>,
        document_id: Option<&str>,
    ) -> Result<String, Refusal> {
        // Checked before an APQ registration too, so nothing unbounded is ever stored.
        if let Some(query) = &query {
            self.check_shape(query)?;
        }
        let document = self.find(query, extensions, document_id).await?;
        self.check_shape(&document)?;
        Ok(document)
    }

    fn check_shape(&self, document: &str) -> Result<(), Refusal> {
        bounds::check(document, self.limits).map_err(|exceeded| match exceeded {
            bounds::Exceeded::Nesting => {
                Refusal::new(code::QUERY_TOO_DEEP, "the document nests deeper than MAX_DOCUMENT_NESTING")
            }
            bounds::Exceeded::Tokens => Refusal::new(
                code::QUERY_TOO_COMPLEX,
                "the document, with its fragments expanded, is larger than MAX_DOCUMENT_TOKENS",
            ),
            bounds::Exceeded::FragmentCycle => {
                Refusal::new(code::GRAPHQL_VALIDATION_FAILED, "a fragment spreads itself, directly or through others")
            }
        })
    }

    async fn find(
        &self,
        query: Option<String>,
        extensions: Option<&Map<String, Value>>,
        document_id: Option<&str>,
    ) -> Result<String, Refusal> {
        let hash = requested_hash(extensions, document_id)?;
        // With a hash, an empty `query` is no query: graphql-ws requires the field to be a string,
        // so a client sending by id alone over a WebSocket sends "".
        let query = if hash.is_some() { query.filter(|q| !q.is_empty()) } else { query };
        if self.trusted_only {
            return match (hash, query) {
                (Some(hash), query) => {
                    let body = self
                        .manifest
                        .get(&hash)
                        .ok_or(Refusal::new(PERSISTED_QUERY_NOT_FOUND, "PersistedQueryNotFound"))?;
                    match query {
                        Some(q) if q != **body => {
                            Err(Refusal::new(PERSISTED_QUERY_HASH_MISMATCH, "the query does not match its hash"))
                        }
                        _ => Ok(body.to_string()),
                    }
                }
                (None, Some(query)) if self.manifest.contains_key(&sha256_hex(&query)) => Ok(query),
                (None, _) => Err(Refusal::new(
                    TRUSTED_DOCUMENT_REQUIRED,
                    "this server only runs the operations of its published manifest",
                )),
            };
        }
        match (hash, query) {
            (None, Some(query)) => Ok(query),
            (None, None) => Err(Refusal::new(code::BAD_REQUEST, "the `query` parameter is required")),
            (Some(hash), Some(query)) => {
                if sha256_hex(&query) != hash {
                    return Err(Refusal::new(PERSISTED_QUERY_HASH_MISMATCH, "provided sha does not match query"));
                }
                self.remember(hash, &query).await;
                Ok(query)
            }
            (Some(hash), None) => {
                if let Some(body) = self.manifest.get(&hash) {
                    return Ok(body.to_string());
                }
                self.recall(&hash).await.ok_or(Refusal::new(PERSISTED_QUERY_NOT_FOUND, "PersistedQueryNotFound"))
            }
        }
    }

    async fn remember(&self, hash: String, query: &str) {
        match &self.apq {
            ApqStore::Local(cache) => {
                cache.lock().unwrap_or_else(|p| p.into_inner()).put(hash, Arc::from(query));
            }
            ApqStore::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let mut set = redis::cmd("SET");
                set.arg(format!("{prefix}{hash}")).arg(query).arg("EX").arg(APQ_TTL_SECS);
                match tokio::time::timeout(APQ_REDIS_TIMEOUT, set.query_async::<()>(&mut conn)).await {
                    Ok(Ok(())) => {}
                    // The client registers again on the next miss.
                    Ok(Err(err)) => tracing::warn!(%err, "could not store a persisted query"),
                    Err(_) => tracing::warn!("could not store a persisted query: redis timed out"),
                }
            }
        }
    }

    async fn recall(&self, hash: &str) -> Option<String> {
        match &self.apq {
            ApqStore::Local(cache) => cache.lock().unwrap_or_else(|p| p.into_inner()).get(hash).map(|q| q.to_string()),
            ApqStore::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let mut get = redis::cmd("GET");
                get.arg(format!("{prefix}{hash}"));
                // A Redis that is down or slow is a miss: the client sends the full document.
                tokio::time::timeout(APQ_REDIS_TIMEOUT, get.query_async::<Option<String>>(&mut conn))
                    .await
                    .ok()?
                    .ok()?
            }
        }
    }
}

/// How long a persisted-query lookup or registration waits for Redis.
const APQ_REDIS_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(300);

/// The hash a request names: `documentId` (`sha256:<hex>` or bare hex) or Apollo's
/// `extensions.persistedQuery` (version 1).
fn requested_hash(
    extensions: Option<&Map<String, Value>>,
    document_id: Option<&str>,
) -> Result<Option<String>, Refusal> {
    if let Some(id) = document_id {
        let hex = id.strip_prefix("sha256:").unwrap_or(id);
        return Ok(Some(hex.to_ascii_lowercase()));
    }
    let Some(pq) = extensions.and_then(|e| e.get("persistedQuery")) else {
        return Ok(None);
    };
    let unsupported = Refusal::new(PERSISTED_QUERY_NOT_SUPPORTED, "PersistedQueryNotSupported");
    let Value::Object(pq) = pq else { return Err(unsupported) };
    if pq.get("version").and_then(Value::as_i64) != Some(1) {
        return Err(unsupported);
    }
    match pq.get("sha256Hash").and_then(Value::as_str) {
        Some(hash) => Ok(Some(hash.to_ascii_lowercase())),
        None => Err(unsupported),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(trusted: bool) -> Documents {
        let mut config = Config::defaults();
        config.trusted_documents = trusted;
        Documents::new(&config, None).unwrap()
    }

    fn pq(hash: &str) -> Map<String, Value> {
        serde_json::json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } }).as_object().unwrap().clone()
    }

    #[tokio::test]
    async fn apq_registers_then_serves_by_hash() {
        let d = docs(false);
        let q = "{ boards(first: 1) { edges { cursor } } }";
        let h = sha256_hex(q);
        assert_eq!(d.resolve(None, Some(&pq(&h)), None).await.unwrap_err().code, PERSISTED_QUERY_NOT_FOUND);
        assert_eq!(d.resolve(Some(q.into()), Some(&pq(&h)), None).await.unwrap(), q);
        assert_eq!(d.resolve(None, Some(&pq(&h)), None).await.unwrap(), q);
        let wrong = d.resolve(Some("{ me { id } }".into()), Some(&pq(&h)), None).await.unwrap_err();
        assert_eq!(wrong.code, PERSISTED_QUERY_HASH_MISMATCH);
    }

    #[tokio::test]
    async fn trusted_mode_runs_only_the_manifest() {
        let d = docs(true);
        let (hash, body) = d.manifest.iter().next().map(|(h, b)| (h.clone(), b.to_string())).unwrap();
        assert_eq!(d.resolve(None, None, Some(&format!("sha256:{hash}"))).await.unwrap(), body);
        assert_eq!(d.resolve(Some(body.clone()), None, None).await.unwrap(), body);
        let refused = d.resolve(Some("{ me { id } }".into()), None, None).await.unwrap_err();
        assert_eq!(refused.code, TRUSTED_DOCUMENT_REQUIRED);
        let q = "{ me { id } }";
        let unknown = d.resolve(Some(q.into()), Some(&pq(&sha256_hex(q))), None).await.unwrap_err();
        assert_eq!(unknown.code, PERSISTED_QUERY_NOT_FOUND);
    }
}
