//! Which subscriptions may share one execution among their subscribers (issue 14).
//!
//! Ten thousand viewers of a live room subscribe to the same `liveChat` document. Executed once per
//! subscriber, every chat line cost ten thousand resolutions and serialisations of the same answer;
//! `http::shared_feed` runs such a document once per instance and hands the same bytes to every
//! socket. This module decides when that gives each subscriber exactly what its own execution would
//! have:
//! - the root field is one whose events are the same for everyone from the moment of subscribing:
//!   `liveChat` without a resume cursor (a cursor replays a history of its own), `liveStreamUpdated`
//!   (a late subscriber first gets the state the feed last sent, as its own first event would be);
//! - the shared execution runs signed out, so a signed-in subscriber joins only when its document
//!   selects no field whose answer depends on who asks ([`VIEWER_DEPENDENT`]). A signed-out one
//!   always may: the signed-out answer is its own.
//!
//! Presence stays per subscriber: the shared execution tells the feed which room it watches
//! ([`SharedExecution`]) and the feed counts each of its subscribers there.

use async_graphql::parser::types::{
    ExecutableDocument, Field, OperationDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, Variables};
use async_graphql_value::Value;

/// Names of the fields, on any type, whose answer depends on the viewer: the resolvers that read the
/// viewer (`graphql::viewer`, `require_viewer`, `request_info`), directly or through a helper. A
/// test scans `graphql/types` and fails when a resolver that reads the viewer is missing here.
/// Matching by name alone, whatever the type, only ever shares less.
pub const VIEWER_DEPENDENT: &[&str] = &[
    // User
    "phone",
    "email",
    "emailVerified",
    "pendingEmail",
    "isViewer",
    "viewerIsFollowing",
    "viewerHasBlocked",
    "followsViewer",
    "viewerCanMessage",
    "favorites",
    "sessions",
    "suspended",
    "browseHistory",
    "searchHistory",
    "settings",
    "identityVerification",
    "activity",
    "loginHistory",
    "blockedUsers",
    "dataExports",
    "reportsFiled",
    "pushSubscriptions",
    "developerApps",
    "authorizedApps",
    // PushSubscription
    "thisDevice",
    // Post, Comment
    "viewerHasLiked",
    "viewerHasFavorited",
    "viewerCanEdit",
    "viewerCanDelete",
    // LiveStream
    "ingestUrl",
    "ingestKey",
    // Conversation, Message
    "peer",
    "unreadCount",
    "messages",
    "isMine",
    "conversation",
    // NotificationSettings, Session, IdentityVerification
    "sms",
    "current",
    "realName",
    "photoUrls",
];

/// How a shared feed treats a subscriber that joins while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// Events from the moment of joining (`liveChat`).
    FromNow,
    /// The last event the feed sent, then what follows (`liveStreamUpdated`: its events are states).
    LastThenNow,
}

/// Whether the operation `name` selects in `doc` may run once for all its subscribers, and how a
/// subscriber joins it. `signed_in`: the subscriber has a viewer the shared execution would not.
pub fn sharing(doc: &ExecutableDocument, name: Option<&str>, variables: &Variables, signed_in: bool) -> Option<Join> {
    let (op, root) = subscription_root(doc, name)?;
    let defaults: Vec<&Name> = op
        .node
        .variable_definitions
        .iter()
        .filter(|d| d.node.default_value.is_some())
        .map(|d| &d.node.name.node)
        .collect();
    let join = match root.name.node.as_str() {
        "liveChat" if !resumes(root.arguments.as_slice(), variables, &defaults) => Join::FromNow,
        "liveStreamUpdated" => Join::LastThenNow,
        _ => return None,
    };
    if signed_in && selects_viewer_dependent(doc) {
        return None;
    }
    Some(join)
}

/// The subscription operation `name` selects in `doc` and its root field, when the root is one plain
/// field (no directive, not inside a fragment): the only shape the transport's special paths take.
pub fn subscription_root<'a>(
    doc: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<(&'a Positioned<OperationDefinition>, &'a Field)> {
    let op = super::selected_operation(doc, name)?;
    if op.node.ty != OperationType::Subscription || !op.node.directives.is_empty() {
        return None;
    }
    let [Positioned { node: Selection::Field(root), .. }] = op.node.selection_set.node.items.as_slice() else {
        return None;
    };
    root.node.directives.is_empty().then_some((op, &root.node))
}

/// Whether `liveChat`'s `after` cursor is given: literally, or through a variable that is set or,
/// left out, has a default.
fn resumes(arguments: &[(Positioned<Name>, Positioned<Value>)], variables: &Variables, defaults: &[&Name]) -> bool {
    arguments.iter().any(|(name, value)| {
        name.node.as_str() == "after"
            && match &value.node {
                Value::Null => false,
                Value::Variable(var) => match variables.get(var) {
                    Some(v) => *v != async_graphql::Value::Null,
                    None => defaults.contains(&var),
                },
                _ => true,
            }
    })
}

/// Whether any selection set of the document (the operations' and every fragment's, used or not)
/// names a field of [`VIEWER_DEPENDENT`]. An explicit stack: the nesting is the client's.
fn selects_viewer_dependent(doc: &ExecutableDocument) -> bool {
    let mut stack: Vec<&SelectionSet> = doc.operations.iter().map(|(_, op)| &op.node.selection_set.node).collect();
    stack.extend(doc.fragments.values().map(|f| &f.node.selection_set.node));
    while let Some(set) = stack.pop() {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    if VIEWER_DEPENDENT.contains(&field.node.name.node.as_str()) {
                        return true;
                    }
                    stack.push(&field.node.selection_set.node);
                }
                Selection::InlineFragment(inline) => stack.push(&inline.node.selection_set.node),
                Selection::FragmentSpread(_) => {}
            }
        }
    }
    false
}

/// Request data of a shared execution. Resolvers that would count their own viewer somewhere (a
/// live room's presence) tell the feed instead, which counts each of its subscribers.
pub struct SharedExecution {
    room: tokio::sync::watch::Sender<Option<i64>>,
}

impl SharedExecution {
    pub fn new() -> (SharedExecution, tokio::sync::watch::Receiver<Option<i64>>) {
        let (room, rx) = tokio::sync::watch::channel(None);
        (SharedExecution { room }, rx)
    }

    /// The execution watches live room `room`: every subscriber of the feed counts as its viewer.
    pub fn watching(&self, room: i64) {
        self.room.send_replace(Some(room));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(query: &str, vars: serde_json::Value, signed_in: bool) -> Option<Join> {
        let doc = async_graphql::parser::parse_query(query).unwrap();
        sharing(&doc, None, &Variables::from_json(vars), signed_in)
    }

    #[test]
    fn live_chat_from_now_is_shared_and_a_resume_is_not() {
        let q = "subscription($s: ID!, $a: String) { liveChat(streamId: $s, after: $a) { message { body } } }";
        assert_eq!(share(q, serde_json::json!({"s": "x"}), true), Some(Join::FromNow));
        assert_eq!(share(q, serde_json::json!({"s": "x", "a": null}), false), Some(Join::FromNow));
        assert_eq!(share(q, serde_json::json!({"s": "x", "a": "c"}), false), None);
        assert_eq!(
            share(r#"subscription { liveChat(streamId: "x", after: "c") { skipped } }"#, serde_json::json!({}), false),
            None
        );
        let defaulted = r#"subscription($a: String = "c") { liveChat(streamId: "x", after: $a) { skipped } }"#;
        assert_eq!(share(defaulted, serde_json::json!({}), false), None, "the default resumes");
        assert_eq!(share(defaulted, serde_json::json!({"a": null}), false), Some(Join::FromNow));
        let updated = "subscription { liveStreamUpdated(streamId: \"x\") { node { viewerCount } } }";
        assert_eq!(share(updated, serde_json::json!({}), true), Some(Join::LastThenNow));
        assert_eq!(share("subscription { messageReceived { body } }", serde_json::json!({}), true), None);
        assert_eq!(share("query { __typename }", serde_json::json!({}), false), None);
    }

    #[test]
    fn a_viewer_dependent_field_anywhere_keeps_a_signed_in_subscriber_apart() {
        let q = "subscription { liveChat(streamId: \"x\") { message { ...A } } } \
                 fragment A on LiveChatMessage { author { ... on User { isViewer } } }";
        assert_eq!(share(q, serde_json::json!({}), true), None);
        assert_eq!(share(q, serde_json::json!({}), false), Some(Join::FromNow), "signed out: its own answer");
    }

    /// Every resolver in `graphql/types` that reads the viewer, directly or through a helper of its
    /// file, is listed in `VIEWER_DEPENDENT`; and every listed name is a field of the schema.
    #[test]
    fn every_field_that_reads_the_viewer_is_listed() {
        let reads = ["viewer(ctx)", "require_viewer(ctx)", "request_info(ctx)"];
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/graphql/types");
        let mut missing = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let source = std::fs::read_to_string(&path).unwrap();
            // (name, is a resolver, body up to the next `fn`). A resolver is an `async fn` of an
            // `impl` block under `#[Object]` or `#[ComplexObject]`.
            let starts: Vec<usize> = source.match_indices("fn ").map(|(i, _)| i).collect();
            let fns: Vec<(String, bool, &str)> = starts
                .iter()
                .enumerate()
                .map(|(n, &at)| {
                    let body = &source[at + 3..starts.get(n + 1).copied().unwrap_or(source.len())];
                    let name = body.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    let before = &source[..at];
                    let block = before.rfind("\nimpl").map_or("", |i| &before[..i]);
                    let object = block.trim_end().lines().last().is_some_and(|l| l.contains("Object"));
                    (name, object && before.trim_end().ends_with("async"), body)
                })
                .collect();
            let mut reading: Vec<bool> =
                fns.iter().map(|(_, _, body)| reads.iter().any(|r| body.contains(r))).collect();
            loop {
                let mut changed = false;
                for i in 0..fns.len() {
                    if reading[i] {
                        continue;
                    }
                    let calls = fns.iter().zip(&reading).any(|((name, _, _), r)| {
                        *r && (fns[i].2.contains(&format!("self.{name}(")) || fns[i].2.contains(&format!(" {name}(")))
                    });
                    if calls {
                        reading[i] = true;
                        changed = true;
                    }
                }
                if !changed {
                    break;
                }
            }
            for (i, (name, resolver, _)) in fns.iter().enumerate() {
                if reading[i] && *resolver {
                    let camel = camel(name);
                    if !VIEWER_DEPENDENT.contains(&camel.as_str()) {
                        missing.push(format!("{}: {camel}", path.display()));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "resolvers that read the viewer but are not in VIEWER_DEPENDENT: {missing:?}");
        let sdl = crate::graphql::sdl();
        for name in VIEWER_DEPENDENT {
            assert!(sdl.contains(&format!("\t{name}:")) || sdl.contains(&format!("\t{name}(")), "{name} is no field");
        }
    }

    fn camel(snake: &str) -> String {
        let mut out = String::new();
        let mut upper = false;
        for c in snake.chars() {
            if c == '_' {
                upper = true;
            } else if upper {
                out.extend(c.to_uppercase());
                upper = false;
            } else {
                out.push(c);
            }
        }
        out
    }
}
