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

pub struct RequestErrorCodes;

impl ExtensionFactory for RequestErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestErrorCodes)
    }
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

#[async_trait::async_trait]
impl Extension for RequestErrorCodes {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables).await.map_err(|e| with_code(e, code::GRAPHQL_PARSE_FAILED))
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
        if info.parent_type == "Mutation"
            && let Some(loaders) = ctx.data_opt::<crate::graphql::loaders::Loaders>()
        {
            loaders.clear();
        }
        next.run(ctx, info).await
    }
}
