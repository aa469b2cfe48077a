//! Scope enforcement for third-party app tokens, as a schema extension (issue 16).
//!
//! Requests carrying an app's token run on their own schema, built with this extension
//! (`build_app_schema`): it asks `authz::scopes::need` before resolving every field, with the
//! concrete type the field is resolved on, so fragments, interfaces, unions and `node(id)` cannot
//! reach a field by another path. First-party requests never pay for it (see `graphql::lean` on what
//! a per-field hook costs). A refused mutation field never runs: the check comes before its resolver.
//!
//! Subscriptions resolve their root field only when an event arrives, after the stream (and its
//! topic) is set up, so their root fields are also checked when the document is parsed.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextResolve, ResolveInfo,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection};
use async_graphql::{ServerResult, Value, Variables};

use super::RequestInfo;
use crate::auth::AppAccess;
use crate::authz::scopes::{Need, need};
use crate::error::AppError;

pub struct AppScopes;

impl ExtensionFactory for AppScopes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AppScopes)
    }
}

fn access(ctx: &ExtensionContext<'_>) -> Option<AppAccess> {
    ctx.data_opt::<RequestInfo>().and_then(|info| info.viewer).and_then(|v| v.app)
}

/// `Err` with the error to answer when `access` may not resolve `parent.field`.
fn check(access: AppAccess, parent: &str, field: &str) -> Result<(), AppError> {
    match need(parent, field) {
        Need::Open => Ok(()),
        Need::Scope(scope) if access.scopes.contains(scope) => Ok(()),
        Need::Scope(scope) => Err(AppError::InsufficientScope { required: Some(scope.name()) }),
        Need::Deny => Err(AppError::InsufficientScope { required: None }),
    }
}

#[async_trait::async_trait]
impl Extension for AppScopes {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        if let Some(access) = access(ctx) {
            check_subscription_roots(access, &document)?;
        }
        Ok(document)
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        // Each item of a list is resolved again under the list's type (`[PostEdge!]`): the field that
        // returned the list was checked on its object type already.
        if let Some(access) = access(ctx)
            && !info.parent_type.starts_with('[')
            && let Err(err) = check(access, info.parent_type, info.name)
        {
            let pos = info.field.name.pos;
            let path = info.path_node.to_string_vec().into_iter().map(async_graphql::PathSegment::Field).collect();
            let mut server = async_graphql::Error::from(err).into_server_error(pos);
            server.path = path;
            return Err(server);
        }
        next.run(ctx, info).await
    }
}

/// The root fields of every subscription operation in `document`, through fragments at any depth
/// (walked with a stack and a visited set, never by recursion).
fn check_subscription_roots(access: AppAccess, document: &ExecutableDocument) -> ServerResult<()> {
    for (_, operation) in document.operations.iter() {
        if operation.node.ty != OperationType::Subscription {
            continue;
        }
        let mut stack = vec![&operation.node.selection_set.node];
        let mut seen_fragments = std::collections::HashSet::new();
        while let Some(set) = stack.pop() {
            for selection in &set.items {
                match &selection.node {
                    Selection::Field(field) => {
                        let name = field.node.name.node.as_str();
                        if let Err(err) = check(access, "Subscription", name) {
                            return Err(async_graphql::Error::from(err).into_server_error(field.pos));
                        }
                    }
                    Selection::InlineFragment(fragment) => stack.push(&fragment.node.selection_set.node),
                    Selection::FragmentSpread(spread) => {
                        let name = &spread.node.fragment_name.node;
                        if seen_fragments.insert(name.clone())
                            && let Some(fragment) = document.fragments.get(name)
                        {
                            stack.push(&fragment.node.selection_set.node);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::scopes::{Scope, Scopes};

    fn app(scopes: &[Scope]) -> AppAccess {
        AppAccess {
            grant_id: 1,
            app_id: 1,
            client_id: crate::auth::ClientId::new("test"),
            scopes: Scopes::of(scopes),
            expires_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn subscription_roots_are_checked_through_fragments() {
        let doc = async_graphql::parser::parse_query(
            "subscription { ...A } fragment A on Subscription { ... on Subscription { messageReceived { id } } }",
        )
        .unwrap();
        let refused = check_subscription_roots(app(&[Scope::PostsRead]), &doc).unwrap_err();
        let code = refused.extensions.as_ref().and_then(|e| e.get("code")).cloned();
        assert_eq!(code, Some(Value::from("INSUFFICIENT_SCOPE")));
        assert!(check_subscription_roots(app(&[Scope::MessagesRead]), &doc).is_ok());
    }
}
