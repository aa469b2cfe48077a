//! What may still run while the database cannot be reached: operations that select only
//! `__typename`, `__schema` and `__type` at the top (GraphiQL's schema load, a client's liveness
//! check). Everything else is answered SERVICE_UNAVAILABLE at once while the circuit breaker
//! ([`crate::db::breaker`]) is open. The same rule serves HTTP and WebSocket.

use std::collections::HashSet;

use async_graphql::parser::types::{DocumentOperations, OperationType, Selection, SelectionSet};

use crate::app::AppState;
use crate::error::AppError;

const OFFLINE_FIELDS: [&str; 3] = ["__typename", "__schema", "__type"];

/// Whether running `query` (its operation `operation_name`) may touch the database. A document
/// that does not parse, or names no operation it holds, needs none: its error is answered without.
pub fn needs_database(query: &str, operation_name: Option<&str>) -> bool {
    let Ok(doc) = async_graphql::parser::parse_query(query) else { return false };
    let op = match (&doc.operations, operation_name) {
        (DocumentOperations::Single(op), _) => op,
        (DocumentOperations::Multiple(ops), Some(name)) => match ops.get(name) {
            Some(op) => op,
            None => return false,
        },
        (DocumentOperations::Multiple(ops), None) => match ops.values().next() {
            Some(op) if ops.len() == 1 => op,
            _ => return false,
        },
    };
    if op.node.ty != OperationType::Query {
        return true;
    }
    // The top level only, through fragments, with a worklist: no recursion on client depth.
    let mut pending: Vec<&SelectionSet> = vec![&op.node.selection_set.node];
    let mut spread = HashSet::new();
    while let Some(set) = pending.pop() {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    if !OFFLINE_FIELDS.contains(&f.node.name.node.as_str()) {
                        return true;
                    }
                }
                Selection::InlineFragment(f) => pending.push(&f.node.selection_set.node),
                Selection::FragmentSpread(s) => {
                    let name = &s.node.fragment_name.node;
                    if spread.insert(name.clone())
                        && let Some(fragment) = doc.fragments.get(name)
                    {
                        pending.push(&fragment.node.selection_set.node);
                    }
                }
            }
        }
    }
    false
}

/// `Err(SERVICE_UNAVAILABLE)` when the breaker is open and the operation needs the database.
pub fn gate(app: &AppState, query: &str, operation_name: Option<&str>) -> Result<(), AppError> {
    match app.db_stats.breaker.admit(&app.db) {
        Ok(()) => Ok(()),
        Err(_) if !needs_database(query, operation_name) => Ok(()),
        Err(down) => Err(AppError::Unavailable { retry_after_secs: down.retry_after_secs() }),
    }
}

#[cfg(test)]
mod tests {
    use super::needs_database;

    #[test]
    fn only_introspection_and_typename_run_without_the_database() {
        assert!(!needs_database("{ __typename }", None));
        assert!(!needs_database("query Q { __schema { types { name } } __type(name: \"Post\") { name } }", None));
        assert!(!needs_database("{ ...F } fragment F on Query { __typename ... on Query { __typename } }", None));
        assert!(!needs_database("{ ...F } fragment F on Query { ...F }", None), "a cycle ends the walk");
        assert!(!needs_database("{ not parsed", None));
        assert!(needs_database("{ __typename posts { totalCount } }", None));
        assert!(needs_database("{ ...F } fragment F on Query { ... on Query { me { id } } }", None));
        assert!(needs_database("mutation { __typename }", None));
        assert!(needs_database("query A { __typename } query B { me { id } }", Some("B")));
        assert!(!needs_database("query A { __typename } query B { me { id } }", Some("A")));
    }
}
