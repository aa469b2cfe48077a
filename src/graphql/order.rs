//! Responses in the document's order (GraphQL spec, "Serialized Map Ordering").
//!
//! async-graphql 7.2 resolves the fields of a selection set concurrently and collects each result as
//! it finishes (a `FuturesUnordered` in `do_resolve_container`), so a field that waits on the
//! database or a loader lands after the fields that did not wait: `{ posts {...} __typename }`
//! answered `__typename` first, and the order changed from one request to the next. This extension
//! puts every object's keys back in the order the document selected them, once the execution is over
//! and before anything serialises the response: the `request` hook covers HTTP, the `subscribe` hook
//! every result a WebSocket operation yields.
//!
//! Fields are ordered by their first appearance in the selection set with fragments expanded in
//! place. The walk over fragments uses an explicit stack; the walk over the response follows the
//! selection's nesting, which the document bounds (`http::bounds`) keep shallow.

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextRequest, NextSubscribe,
};
use async_graphql::futures_util::stream::BoxStream;
use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Request, Response, ServerResult, Value, Variables};
use futures_util::StreamExt as _;

/// Fragments expanded at once while ordering one object; beyond it (a fan-out the document bounds
/// already refuse) the remaining keys keep the executor's order.
const MAX_OPEN_FRAGMENTS: usize = 512;

/// Registers [`Order`] for every request.
pub struct DocumentOrder;

impl ExtensionFactory for DocumentOrder {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Order::default())
    }
}

/// What one request's ordering needs: its parsed document and the operation it runs.
#[derive(Default)]
struct Order {
    seen: Arc<Mutex<Seen>>,
}

#[derive(Default)]
struct Seen {
    document: Option<Arc<ExecutableDocument>>,
    operation_name: Option<String>,
}

impl Seen {
    fn apply(&self, resp: &mut Response) {
        let Some(doc) = &self.document else { return };
        let operation = match (&doc.operations, self.operation_name.as_deref()) {
            (DocumentOperations::Single(op), _) => Some(op),
            (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name),
            (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next(),
            (DocumentOperations::Multiple(_), None) => None,
        };
        if let Some(op) = operation {
            reorder(&mut resp.data, &[&op.node.selection_set.node], doc);
        }
    }
}

#[async_trait::async_trait]
impl Extension for Order {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let request = next.run(ctx, request).await?;
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).operation_name = request.operation_name.clone();
        Ok(request)
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).document = Some(Arc::new(doc.clone()));
        Ok(doc)
    }

    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut resp = next.run(ctx).await;
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).apply(&mut resp);
        resp
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let seen = self.seen.clone();
        next.run(ctx, stream)
            .map(move |mut resp| {
                seen.lock().unwrap_or_else(|p| p.into_inner()).apply(&mut resp);
                resp
            })
            .boxed()
    }
}

/// Puts the keys of `value` (and of every object below it) in the order `sets` select them.
fn reorder(value: &mut Value, sets: &[&SelectionSet], doc: &ExecutableDocument) {
    match value {
        Value::List(items) => {
            for item in items {
                reorder(item, sets, doc);
            }
        }
        Value::Object(map) => {
            let keys = response_keys(sets, doc);
            let mut old = std::mem::take(map);
            for (key, below) in keys {
                if let Some((name, mut v)) = old.swap_remove_entry(key) {
                    reorder(&mut v, &below, doc);
                    map.insert(name, v);
                }
            }
            // Nothing should be left; if something is, it keeps its place at the end.
            map.extend(old);
        }
        _ => {}
    }
}

/// The response keys `sets` select, in order of first appearance with fragments expanded in place,
/// each with the selection sets of every field answering under that key.
fn response_keys<'d>(
    sets: &[&'d SelectionSet],
    doc: &'d ExecutableDocument,
) -> IndexMap<&'d str, Vec<&'d SelectionSet>> {
    let mut keys: IndexMap<&str, Vec<&SelectionSet>> = IndexMap::new();
    let mut stack: Vec<std::slice::Iter<'d, _>> = sets.iter().rev().map(|s| s.items.iter()).collect();
    while let Some(top) = stack.last_mut() {
        let Some(selection) = top.next() else {
            stack.pop();
            continue;
        };
        let open = stack.len() < MAX_OPEN_FRAGMENTS;
        match &selection.node {
            Selection::Field(f) => {
                keys.entry(f.node.response_key().node.as_str()).or_default().push(&f.node.selection_set.node);
            }
            Selection::InlineFragment(f) if open => stack.push(f.node.selection_set.node.items.iter()),
            Selection::FragmentSpread(s) if open => {
                if let Some(fragment) = doc.fragments.get(&s.node.fragment_name.node) {
                    stack.push(fragment.node.selection_set.node.items.iter());
                }
            }
            _ => {}
        }
    }
    keys
}
