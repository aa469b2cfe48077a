//! Request-level hooks: gives errors raised before execution (the document does not parse, does not
//! validate) a machine-readable `extensions.code`, which async-graphql leaves out; and empties the
//! request's loader caches before each mutation field, so a payload never shows what an earlier field
//! of the same document cached.

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextResolve, NextValidation, ResolveInfo,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ServerError, ServerResult, ValidationResult, Value, Variables};
use std::sync::Arc;

use crate::error::code;

/// Mutations a member may run while a major privacy policy version awaits their consent: accepting
/// it, and everything that protects their privacy or ends their session. Everything else that writes
/// waits for consent (reading never does).
const WITHOUT_CONSENT: [&str; 12] = [
    "acceptPrivacyPolicy",
    "requestDataExport",
    "logout",
    "revokeSession",
    "deleteAccount",
    "updateSettings",
    "updateNotificationSettings",
    "deleteBrowseHistory",
    "deleteSearchHistory",
    "markNotificationsRead",
    "recordPostView",
    "login",
];

async fn consent_check(ctx: &ExtensionContext<'_>, field: &str) -> ServerResult<()> {
    if WITHOUT_CONSENT.contains(&field) {
        return Ok(());
    }
    let (Some(info), Some(state)) =
        (ctx.data_opt::<crate::graphql::RequestInfo>(), ctx.data_opt::<crate::graphql::GqlState>())
    else {
        return Ok(());
    };
    let Some(viewer) = info.viewer else { return Ok(()) };
    match crate::services::policy::consent_required(&state.db, viewer.user_id).await {
        Ok(None) => Ok(()),
        Ok(Some(version)) => {
            let mut err =
                ServerError::new(format!("please read and accept version {version} of the privacy policy first"), None);
            let ext = err.extensions.get_or_insert_with(Default::default);
            ext.set("code", code::POLICY_CONSENT_REQUIRED);
            ext.set("version", version);
            Err(err)
        }
        Err(e) => Err(e.into_request_error()),
    }
}

pub struct RequestErrorCodes {
    /// Most aliased fields a document may hold, counted with fragments expanded.
    pub max_aliases: usize,
}

impl ExtensionFactory for RequestErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestErrorCodes { max_aliases: self.max_aliases })
    }
}

/// Aliased fields in a document, counting a fragment's aliases once per spread (that is how a
/// document multiplies work). Fragment cycles are left for validation to reject; they count nothing.
pub(crate) fn alias_count(doc: &ExecutableDocument) -> usize {
    use async_graphql::parser::types::{Selection, SelectionSet};
    use std::collections::HashMap;

    fn walk<'a>(
        set: &'a SelectionSet,
        doc: &'a ExecutableDocument,
        memo: &mut HashMap<&'a str, usize>,
        visiting: &mut Vec<&'a str>,
    ) -> usize {
        let mut n = 0usize;
        for sel in &set.items {
            n = n.saturating_add(match &sel.node {
                Selection::Field(f) => usize::from(f.node.alias.is_some()).saturating_add(walk(
                    &f.node.selection_set.node,
                    doc,
                    memo,
                    visiting,
                )),
                Selection::InlineFragment(f) => walk(&f.node.selection_set.node, doc, memo, visiting),
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if let Some(&known) = memo.get(name) {
                        known
                    } else if visiting.contains(&name) {
                        0
                    } else if let Some((key, frag)) = doc.fragments.get_key_value(name) {
                        visiting.push(name);
                        let count = walk(&frag.node.selection_set.node, doc, memo, visiting);
                        visiting.pop();
                        memo.insert(key.as_str(), count);
                        count
                    } else {
                        0
                    }
                }
            });
        }
        n
    }

    let mut memo = HashMap::new();
    let mut visiting = Vec::new();
    doc.operations.iter().map(|(_, op)| walk(&op.node.selection_set.node, doc, &mut memo, &mut visiting)).sum()
}

pub(crate) fn with_code(mut err: ServerError, code: &str) -> ServerError {
    let ext = err.extensions.get_or_insert_with(Default::default);
    if ext.get("code").is_none() {
        ext.set("code", Value::from(code));
    }
    err
}

/// The query limits get codes of their own, so a client can tell "too big" from "wrong".
fn with_code_for_validation(err: ServerError) -> ServerError {
    let code = match err.message.as_str() {
        "Query is too complex." => code::QUERY_TOO_COMPLEX,
        "Query is nested too deep." => code::QUERY_TOO_DEEP,
        _ => code::GRAPHQL_VALIDATION_FAILED,
    };
    with_code(err, code)
}

/// The `validation` hook's codes, for a response executed without the extension (`lean`): an error
/// with no path was raised before execution, by validation or the query limits.
pub(crate) fn code_request_errors(resp: &mut async_graphql::Response) {
    for err in &mut resp.errors {
        if err.path.is_empty() {
            *err = with_code_for_validation(std::mem::replace(err, ServerError::new("", None)));
        }
    }
}

#[async_trait::async_trait]
impl Extension for RequestErrorCodes {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await.map_err(|e| with_code(e, code::GRAPHQL_PARSE_FAILED))?;
        let aliases = alias_count(&doc);
        if aliases > self.max_aliases {
            let message = format!("the document has {aliases} aliases; at most {} are allowed", self.max_aliases);
            return Err(with_code(ServerError::new(message, None), code::QUERY_TOO_MANY_ALIASES));
        }
        Ok(doc)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errs| errs.into_iter().map(with_code_for_validation).collect())
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if info.parent_type == "Mutation" {
            if let Some(loaders) = ctx.data_opt::<crate::graphql::loaders::Loaders>() {
                loaders.clear();
            }
            consent_check(ctx, info.name).await?;
        }
        next.run(ctx, info).await
    }
}
