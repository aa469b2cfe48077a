//! The query path over HTTP, without schema extensions.
//!
//! async-graphql runs every field of a document through every registered extension (a boxed future
//! per field per extension, and a registry lookup per field), whether or not the extension does
//! anything there. Our extensions act on fields only for mutations (consent, loader clearing,
//! freshness), and otherwise work on the whole request: the parse (error codes, the alias limit),
//! validation (error codes) and the response (document order, spec-exact nulls). For a signed-in home
//! feed that per-field toll was about a third of the gateway's CPU (docs/BENCHMARKS.md).
//!
//! So HTTP queries run on a second schema built without extensions, and this module does the
//! request-level work around it: documents are parsed once and kept (by their text), a document the
//! extensions would refuse or treat specially (it does not parse, has too many aliases, selects no
//! query operation) takes the full schema instead, and the response gets the same codes and order
//! the extensions give. Mutations, subscriptions and everything over WebSocket keep the full schema.

use std::sync::{Arc, LazyLock};

use async_graphql::Response;
use async_graphql::parser::types::{ExecutableDocument, OperationType};

use super::{codes, order};

/// Parsed documents by their text. Bounded by the bytes of text it holds: a client that sends a
/// new document with every request only churns it.
static PARSED: LazyLock<moka::sync::Cache<Arc<str>, Arc<Parsed>>> = LazyLock::new(|| {
    moka::sync::Cache::builder()
        .max_capacity(16 * 1024 * 1024)
        .weigher(|text: &Arc<str>, _: &Arc<Parsed>| u32::try_from(text.len().saturating_mul(8)).unwrap_or(u32::MAX))
        .build()
});

pub struct Parsed {
    pub document: ExecutableDocument,
    aliases: usize,
}

/// `query` parsed (once per text while it is kept), or `None` if it does not parse.
pub fn parsed(query: &str) -> Option<Arc<Parsed>> {
    if let Some(parsed) = PARSED.get(query) {
        return Some(parsed);
    }
    let document = async_graphql::parser::parse_query(query).ok()?;
    let aliases = codes::alias_count(&document);
    let parsed = Arc::new(Parsed { document, aliases });
    PARSED.insert(Arc::from(query), parsed.clone());
    Some(parsed)
}

impl Parsed {
    /// The type of the operation a request with `operation` as its name runs, if it names one.
    pub fn operation_type(&self, operation: Option<&str>) -> Option<OperationType> {
        Some(super::selected_operation(&self.document, operation)?.node.ty)
    }
}

/// The parsed document when `query` may take the lean path: it parses, stays within the alias
/// limit, and the operation it selects is a query.
pub fn document(query: &str, operation: Option<&str>, max_aliases: usize) -> Option<Arc<Parsed>> {
    if !order::ready() {
        return None;
    }
    let parsed = parsed(query)?;
    let lean = parsed.aliases <= max_aliases && parsed.operation_type(operation) == Some(OperationType::Query);
    lean.then_some(parsed)
}

/// What the extensions would have done to the response of a lean execution.
pub fn finish(resp: &mut Response, parsed: &Parsed, operation: Option<&str>) {
    codes::code_request_errors(resp);
    order::apply(resp, &parsed.document, operation);
}
