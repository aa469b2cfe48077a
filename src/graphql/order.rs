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
//!
//! The same pass makes field errors spec-exact ("Handling Execution Errors"). async-graphql 7.2
//! leaves the key of a field that failed out of its object, nullable or not; a normalised client
//! cache (Apollo, Relay) then reads the missing key as missing data. Here every failed field is
//! present as `null`, and a failed non-null field nulls its nearest nullable parent (the whole
//! `data` when there is none), following the error's path through the schema's types.

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextRequest, NextSubscribe,
};
use async_graphql::futures_util::stream::BoxStream;
use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::registry::Registry;
use async_graphql::{PathSegment, Request, Response, ServerResult, Value, Variables};
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

/// The schema's environment (its registry gives the field types `null_out` follows), kept by the
/// first request that runs with the extension: `AppState::new` runs one at start-up.
static SCHEMA_ENV: std::sync::OnceLock<async_graphql::SchemaEnv> = std::sync::OnceLock::new();

/// Whether [`apply`] can do its work (the start-up request has run).
pub(crate) fn ready() -> bool {
    SCHEMA_ENV.get().is_some()
}

/// Orders a response executed without the extension (`lean`), and nulls its failed fields as the
/// extension does.
pub(crate) fn apply(resp: &mut Response, doc: &ExecutableDocument, operation_name: Option<&str>) {
    if let Some(env) = SCHEMA_ENV.get() {
        apply_with(resp, doc, operation_name, &env.registry);
    }
}

impl Seen {
    fn apply(&self, resp: &mut Response, registry: &Registry) {
        let Some(doc) = &self.document else { return };
        apply_with(resp, doc, self.operation_name.as_deref(), registry);
    }
}

fn apply_with(resp: &mut Response, doc: &ExecutableDocument, operation_name: Option<&str>, registry: &Registry) {
    {
        if let Some(op) = super::selected_operation(doc, operation_name) {
            let root = match op.node.ty {
                OperationType::Query => Some(registry.query_type.as_str()),
                OperationType::Mutation => registry.mutation_type.as_deref(),
                OperationType::Subscription => registry.subscription_type.as_deref(),
            };
            let set = &op.node.selection_set.node;
            if let Some(root) = root
                && resp.data != Value::Null
            {
                for err in &resp.errors {
                    null_out(&mut resp.data, &err.path, set, root, doc, registry);
                }
            }
            reorder(&mut resp.data, &[set], doc);
        }
    }
}

/// Writes `null` where the error at `path` happened and carries it up past every non-null position
/// to the nearest nullable one (or to `data` itself). Stops where an earlier error already nulled
/// the way.
fn null_out(
    data: &mut Value,
    path: &[PathSegment],
    root_set: &SelectionSet,
    root_type: &str,
    doc: &ExecutableDocument,
    registry: &Registry,
) {
    if path.is_empty() {
        return;
    }
    // The type at each position of the path, from the document and the schema.
    let mut types: Vec<String> = Vec::with_capacity(path.len());
    let mut sets: Vec<&SelectionSet> = vec![root_set];
    let mut parent = root_type.to_string();
    let mut current = String::new();
    for segment in path {
        match segment {
            PathSegment::Field(key) => {
                let Some((name, below)) = field_for_key(&sets, doc, key) else { return };
                let Some(ty) = field_type(registry, &parent, name) else { return };
                parent = async_graphql::registry::MetaTypeName::concrete_typename(&ty).to_string();
                current = ty;
                sets = below;
            }
            PathSegment::Index(_) => {
                // `[Item!]!` -> `Item!`
                let inner = current.trim_end_matches('!');
                let Some(inner) = inner.strip_prefix('[').and_then(|t| t.strip_suffix(']')) else { return };
                current = inner.to_string();
            }
        }
        types.push(current.clone());
    }
    // The deepest position the null must reach up to: past every non-null type.
    let mut depth = path.len();
    while depth > 0 && types[depth - 1].ends_with('!') {
        depth -= 1;
    }
    if depth == 0 {
        *data = Value::Null;
        return;
    }
    let mut at = data;
    for (i, segment) in path[..depth].iter().enumerate() {
        let last = i + 1 == depth;
        match (segment, at) {
            (PathSegment::Field(key), Value::Object(map)) => {
                if last {
                    map.insert(async_graphql::Name::new(key), Value::Null);
                    return;
                }
                match map.get_mut(key.as_str()) {
                    Some(next) => at = next,
                    None => return,
                }
            }
            (PathSegment::Index(n), Value::List(items)) => match items.get_mut(*n) {
                Some(next) if last => {
                    *next = Value::Null;
                    return;
                }
                Some(next) => at = next,
                None => return,
            },
            // Already null above, or not the shape the path expects: nothing to do.
            _ => return,
        }
    }
}

/// The type (`[Post!]!`) of field `name` on `parent`. On a union or an interface whose field comes
/// from a fragment on one member, the first possible type that has the field answers.
fn field_type(registry: &Registry, parent: &str, name: &str) -> Option<String> {
    let ty = registry.concrete_type_by_name(parent)?;
    if let Some(field) = ty.field_by_name(name) {
        return Some(field.ty.clone());
    }
    ty.possible_types()?
        .iter()
        .find_map(|member| registry.concrete_type_by_name(member)?.field_by_name(name).map(|f| f.ty.clone()))
}

/// The field name answering under response key `key` in `sets` (fragments expanded, with an
/// explicit stack), and the selection sets below it.
fn field_for_key<'d>(
    sets: &[&'d SelectionSet],
    doc: &'d ExecutableDocument,
    key: &str,
) -> Option<(&'d str, Vec<&'d SelectionSet>)> {
    let keys = response_fields(sets, doc);
    keys.get(key).and_then(|(name, below)| name.map(|n| (n, below.clone())))
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
        SCHEMA_ENV.get_or_init(|| ctx.schema_env.clone());
        let mut resp = next.run(ctx).await;
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).apply(&mut resp, &ctx.schema_env.registry);
        resp
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let seen = self.seen.clone();
        let env = ctx.schema_env.clone();
        next.run(ctx, stream)
            .map(move |mut resp| {
                seen.lock().unwrap_or_else(|p| p.into_inner()).apply(&mut resp, &env.registry);
                resp
            })
            .boxed()
    }
}

/// Puts the keys of `value` (and of every object below it) in the order `sets` select them.
fn reorder(value: &mut Value, sets: &[&SelectionSet], doc: &ExecutableDocument) {
    if matches!(value, Value::List(_) | Value::Object(_)) {
        // Once per field, not once per list item: every item of a list answers the same selection.
        let keys = response_keys(sets, doc);
        reorder_with(value, &keys, doc);
    }
}

fn reorder_with(value: &mut Value, keys: &IndexMap<&str, Vec<&SelectionSet>>, doc: &ExecutableDocument) {
    match value {
        Value::List(items) => {
            for item in items {
                reorder_with(item, keys, doc);
            }
        }
        Value::Object(map) => {
            let mut old = std::mem::take(map);
            for (key, below) in keys {
                if let Some((name, mut v)) = old.swap_remove_entry(*key) {
                    reorder(&mut v, below, doc);
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
    response_fields(sets, doc).into_iter().map(|(key, (_, below))| (key, below)).collect()
}

/// As [`response_keys`], with the field name answering under each key.
#[allow(clippy::type_complexity)]
fn response_fields<'d>(
    sets: &[&'d SelectionSet],
    doc: &'d ExecutableDocument,
) -> IndexMap<&'d str, (Option<&'d str>, Vec<&'d SelectionSet>)> {
    let mut keys: IndexMap<&str, (Option<&str>, Vec<&SelectionSet>)> = IndexMap::new();
    let mut stack: Vec<std::slice::Iter<'d, _>> = sets.iter().rev().map(|s| s.items.iter()).collect();
    while let Some(top) = stack.last_mut() {
        let Some(selection) = top.next() else {
            stack.pop();
            continue;
        };
        let open = stack.len() < MAX_OPEN_FRAGMENTS;
        match &selection.node {
            Selection::Field(f) => {
                let entry = keys.entry(f.node.response_key().node.as_str()).or_default();
                entry.0 = Some(f.node.name.node.as_str());
                entry.1.push(&f.node.selection_set.node);
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
