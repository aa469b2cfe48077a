//! DataLoaders: every relation and per-viewer flag a list item shows is fetched for the whole page in
//! one statement.
//!
//! A fresh set is made for every request, with a cache that lives only as long as the request: a user
//! who wrote five of the posts on a page is fetched once, nothing survives into the next request, and
//! no instance keeps data another instance could change. List resolvers prime these caches through
//! [`super::prefetch`], so the statements a page costs do not depend on how fast the resolvers run.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use entity::{boards, comments, conversations, messages, posts, users};
use sea_orm::DatabaseConnection;

use crate::entity_cache::View;
use crate::pubsub::presence::Presence;
use crate::services::comments::Parent;
use crate::services::messaging;
use crate::services::page::{Page, PageArgs};
use crate::services::social::Edge;
use crate::services::{accounts, boards as board_service, comments as comment_service, posts as post_service, social};

/// The loaders of what the entity cache keeps look there first and query only for the misses.
#[derive(Clone)]
pub struct UserLoader(pub DatabaseConnection, Arc<View>);
#[derive(Clone)]
pub struct BoardLoader(pub DatabaseConnection, Arc<View>);
#[derive(Clone)]
pub struct PostLoader(pub DatabaseConnection, Arc<View>);
#[derive(Clone)]
pub struct CommentLoader(pub DatabaseConnection);
/// `(edge, actor, target)` -> whether the actor has that edge: `viewerHasLiked` and friends.
#[derive(Clone)]
pub struct EdgeLoader(pub DatabaseConnection);
/// Where the viewer stands with other members (blocks either way, follows towards the viewer).
#[derive(Clone)]
pub struct RelationLoader(pub DatabaseConnection);
/// The first page of a post's comments or a comment's replies.
#[derive(Clone)]
pub struct ChildrenLoader(pub DatabaseConnection, Arc<View>);
/// A comment's chain upwards to its top-level comment (bounded by `comments::ANCESTORS_MAX`):
/// `Comment.ancestors` and `Post.comments(around:)`.
#[derive(Clone)]
pub struct ChainLoader(pub DatabaseConnection);
#[derive(Clone)]
pub struct ConversationLoader(pub DatabaseConnection);
/// A post's uploaded images and videos, in order.
#[derive(Clone)]
pub struct PostMediaLoader(pub DatabaseConnection, Arc<View>);

impl Loader<i64> for PostMediaLoader {
    type Value = Vec<entity::media::Model>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        crate::metrics::METRICS.loader_batch.with_label_values(&["post_media"]).observe(keys.len() as f64);
        let load = |keys: Vec<i64>| async move {
            let mut out: HashMap<i64, Self::Value> = keys.iter().map(|&k| (k, Vec::new())).collect();
            for m in crate::services::media::for_posts(&self.0, &keys).await? {
                if let Some(list) = m.post_id.and_then(|p| out.get_mut(&p)) {
                    list.push(m);
                }
            }
            Ok(out)
        };
        Ok(self.1.post_media(keys, load).await?)
    }
}
#[derive(Clone)]
pub struct MessageLoader(pub DatabaseConnection);
/// A private message's photos and videos, in order.
#[derive(Clone)]
pub struct MessageMediaLoader(pub DatabaseConnection);

impl Loader<i64> for MessageMediaLoader {
    type Value = Vec<entity::media::Model>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        crate::metrics::METRICS.loader_batch.with_label_values(&["message_media"]).observe(keys.len() as f64);
        let mut out: HashMap<i64, Self::Value> = keys.iter().map(|&k| (k, Vec::new())).collect();
        for m in crate::services::media::for_messages(&self.0, keys).await? {
            if let Some(list) = m.message_id.and_then(|id| out.get_mut(&id)) {
                list.push(m);
            }
        }
        Ok(out)
    }
}
/// `(user, conversation)` -> messages from the other participant the user has not read.
#[derive(Clone)]
pub struct UnreadLoader(pub DatabaseConnection);
/// Live viewers per stream, one Redis round trip for a page of streams.
#[derive(Clone)]
pub struct ViewerCountLoader(pub Presence);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnreadKey {
    pub user: i64,
    pub conversation: i64,
}

impl Loader<i64> for ConversationLoader {
    type Value = conversations::Model;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        crate::metrics::METRICS.loader_batch.with_label_values(&["conversation"]).observe(keys.len() as f64);
        Ok(by_id(messaging::conversations_by_ids(&self.0, keys).await?, |c| c.id))
    }
}

impl Loader<i64> for MessageLoader {
    type Value = messages::Model;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        crate::metrics::METRICS.loader_batch.with_label_values(&["message"]).observe(keys.len() as f64);
        Ok(by_id(messaging::messages_by_ids(&self.0, keys).await?, |m| m.id))
    }
}

impl Loader<UnreadKey> for UnreadLoader {
    type Value = i64;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[UnreadKey]) -> Result<HashMap<UnreadKey, i64>, Self::Error> {
        crate::metrics::METRICS.loader_batch.with_label_values(&["unread"]).observe(keys.len() as f64);
        let mut out = HashMap::new();
        // A request has one viewer, so this is one statement in practice.
        let mut by_user: HashMap<i64, Vec<i64>> = HashMap::new();
        for k in keys {
            by_user.entry(k.user).or_default().push(k.conversation);
        }
        for (user, conversations) in by_user {
            let counts = messaging::unread_counts(&self.0, user, &conversations).await?;
            for conversation in conversations {
                let n = counts.get(&conversation).copied().unwrap_or(0);
                out.insert(UnreadKey { user, conversation }, n);
            }
        }
        Ok(out)
    }
}

impl Loader<i64> for ViewerCountLoader {
    type Value = i64;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, i64>, Self::Error> {
        crate::metrics::METRICS.loader_batch.with_label_values(&["viewer_count"]).observe(keys.len() as f64);
        Ok(self.0.counts(keys).await?)
    }
}

fn by_id<T>(rows: Vec<T>, id: impl Fn(&T) -> i64) -> HashMap<i64, T> {
    rows.into_iter().map(|r| (id(&r), r)).collect()
}

impl Loader<i64> for UserLoader {
    type Value = users::Model;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        crate::metrics::METRICS.loader_batch.with_label_values(&["user"]).observe(keys.len() as f64);
        let load = |keys: Vec<i64>| async move { Ok(by_id(accounts::users_by_ids(&self.0, &keys).await?, |u| u.id)) };
        Ok(self.1.users(keys, load).await?)
    }
}

impl Loader<i64> for BoardLoader {
    type Value = boards::Model;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        crate::metrics::METRICS.loader_batch.with_label_values(&["board"]).observe(keys.len() as f64);
        let load = |keys: Vec<i64>| async move { Ok(by_id(board_service::by_ids(&self.0, &keys).await?, |b| b.id)) };
        Ok(self.1.boards(keys, load).await?)
    }
}

impl Loader<i64> for PostLoader {
    type Value = posts::Model;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        crate::metrics::METRICS.loader_batch.with_label_values(&["post"]).observe(keys.len() as f64);
        let load = |keys: Vec<i64>| async move { Ok(by_id(post_service::by_ids(&self.0, &keys).await?, |p| p.id)) };
        Ok(self.1.posts(keys, load).await?)
    }
}

impl Loader<i64> for CommentLoader {
    type Value = comments::Model;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        crate::metrics::METRICS.loader_batch.with_label_values(&["comment"]).observe(keys.len() as f64);
        Ok(by_id(comment_service::by_ids(&self.0, keys).await?, |c| c.id))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EdgeKey {
    pub edge: Edge,
    pub actor: i64,
    pub target: i64,
}

impl Loader<EdgeKey> for EdgeLoader {
    type Value = bool;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[EdgeKey]) -> Result<HashMap<EdgeKey, bool>, Self::Error> {
        crate::metrics::METRICS.loader_batch.with_label_values(&["edge"]).observe(keys.len() as f64);
        let mut groups: HashMap<(Edge, i64), Vec<i64>> = HashMap::new();
        for k in keys {
            groups.entry((k.edge, k.actor)).or_default().push(k.target);
        }
        let groups: Vec<(Edge, i64, Vec<i64>)> = groups.into_iter().map(|((e, a), t)| (e, a, t)).collect();
        let present = social::existing_many(&self.0, &groups).await?;
        let mut out = HashMap::with_capacity(keys.len());
        for (i, (edge, actor, targets)) in groups.into_iter().enumerate() {
            for target in targets {
                out.insert(EdgeKey { edge, actor, target }, present.contains(&(i, target)));
            }
        }
        Ok(out)
    }
}

/// The viewer's relation to another member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RelationKey {
    pub viewer: i64,
    pub other: i64,
}

impl Loader<RelationKey> for RelationLoader {
    type Value = social::Relation;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[RelationKey]) -> Result<HashMap<RelationKey, social::Relation>, Self::Error> {
        crate::metrics::METRICS.loader_batch.with_label_values(&["relation"]).observe(keys.len() as f64);
        let mut groups: HashMap<i64, Vec<i64>> = HashMap::new();
        for k in keys {
            groups.entry(k.viewer).or_default().push(k.other);
        }
        let mut out = HashMap::with_capacity(keys.len());
        for (viewer, others) in groups {
            for (other, relation) in social::relations(&self.0, viewer, &others).await? {
                out.insert(RelationKey { viewer, other }, relation);
            }
        }
        Ok(out)
    }
}

/// A children page request; the page arguments are part of the key because one query serves one shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChildrenKey {
    pub parent: Parent,
    pub page: PageArgs,
}

impl Loader<ChildrenKey> for ChildrenLoader {
    type Value = Page<comments::Model>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[ChildrenKey]) -> Result<HashMap<ChildrenKey, Self::Value>, Self::Error> {
        crate::metrics::METRICS.loader_batch.with_label_values(&["children"]).observe(keys.len() as f64);
        let load = |keys: Vec<(Parent, PageArgs)>| async move {
            let mut groups: HashMap<PageArgs, Vec<Parent>> = HashMap::new();
            for (parent, page) in keys {
                groups.entry(page).or_default().push(parent);
            }
            let mut out = HashMap::with_capacity(groups.len());
            for (page, parents) in groups {
                for (parent, rows) in comment_service::children_batch(&self.0, &parents, &page).await? {
                    out.insert((parent, page), rows);
                }
            }
            Ok(out)
        };
        let keys: Vec<(Parent, PageArgs)> = keys.iter().map(|k| (k.parent, k.page)).collect();
        let found = self.1.children(&keys, load).await?;
        Ok(found.into_iter().map(|((parent, page), rows)| (ChildrenKey { parent, page }, rows)).collect())
    }
}

impl Loader<i64> for ChainLoader {
    type Value = Vec<comments::Model>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        crate::metrics::METRICS.loader_batch.with_label_values(&["chain"]).observe(keys.len() as f64);
        Ok(comment_service::chains(&self.0, keys).await?)
    }
}

type Cached<L> = DataLoader<L, HashMapCache>;

/// One request's loaders.
pub struct LoaderSet {
    pub users: Lazy<UserLoader>,
    pub boards: Lazy<BoardLoader>,
    pub posts: Lazy<PostLoader>,
    pub comments: Lazy<CommentLoader>,
    pub edges: Lazy<EdgeLoader>,
    pub relations: Lazy<RelationLoader>,
    pub children: Lazy<ChildrenLoader>,
    pub chains: Lazy<ChainLoader>,
    pub conversations: Lazy<ConversationLoader>,
    pub messages: Lazy<MessageLoader>,
    pub unread: Lazy<UnreadLoader>,
    pub viewer_counts: Lazy<ViewerCountLoader>,
    pub post_media: Lazy<PostMediaLoader>,
    pub message_media: Lazy<MessageMediaLoader>,
    /// This request's way into the entity cache.
    pub view: Arc<View>,
}

/// A loader made on first use. A request touches a few of the thirteen (a subscription's event, often
/// one), and a subscription holds its set for as long as it runs: made eagerly, they were thirteen
/// allocations per request and about 2 KiB held per idle subscription. Boxed once made: an unused
/// slot is a pointer, not a `DataLoader` (a heap profile of idle sockets counted 1.6 KiB per set
/// with the loaders inline).
pub struct Lazy<L> {
    seed: L,
    made: std::sync::OnceLock<Box<Cached<L>>>,
}

impl<L> Lazy<L> {
    fn new(seed: L) -> Lazy<L> {
        Lazy { seed, made: std::sync::OnceLock::new() }
    }

    /// Forgets what the loader cached for keys of type `K`, if something used it.
    fn clear<K>(&self)
    where
        K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
        L: Loader<K>,
    {
        if let Some(loader) = self.made.get() {
            loader.clear::<K>();
        }
    }
}

impl<L: Clone + Send + Sync + 'static> std::ops::Deref for Lazy<L> {
    type Target = Cached<L>;

    fn deref(&self) -> &Cached<L> {
        // No batching window: list resolvers prefetch each level with one load_many, so waiting
        // for more keys (the default 1 ms) only added latency (three levels, 3 ms per feed).
        self.made.get_or_init(|| {
            Box::new(
                DataLoader::with_cache(self.seed.clone(), tokio::spawn, HashMapCache::default())
                    .delay(std::time::Duration::ZERO),
            )
        })
    }
}

/// Shared so that a subscription can clear the caches before each event it resolves.
pub type Loaders = Arc<LoaderSet>;

impl LoaderSet {
    pub fn new(db: &DatabaseConnection, presence: &Presence, view: View) -> Loaders {
        let view = Arc::new(view);
        Arc::new(LoaderSet {
            users: Lazy::new(UserLoader(db.clone(), view.clone())),
            boards: Lazy::new(BoardLoader(db.clone(), view.clone())),
            posts: Lazy::new(PostLoader(db.clone(), view.clone())),
            comments: Lazy::new(CommentLoader(db.clone())),
            edges: Lazy::new(EdgeLoader(db.clone())),
            relations: Lazy::new(RelationLoader(db.clone())),
            children: Lazy::new(ChildrenLoader(db.clone(), view.clone())),
            chains: Lazy::new(ChainLoader(db.clone())),
            conversations: Lazy::new(ConversationLoader(db.clone())),
            messages: Lazy::new(MessageLoader(db.clone())),
            unread: Lazy::new(UnreadLoader(db.clone())),
            viewer_counts: Lazy::new(ViewerCountLoader(presence.clone())),
            post_media: Lazy::new(PostMediaLoader(db.clone(), view.clone())),
            message_media: Lazy::new(MessageMediaLoader(db.clone())),
            view,
        })
    }

    /// A list of posts (a feed, a board's, a member's), through the entity cache.
    pub async fn post_list(
        &self,
        db: &DatabaseConnection,
        filter: post_service::Filter,
        order: post_service::Order,
        page: &PageArgs,
    ) -> crate::error::AppResult<Page<posts::Model>> {
        let key = crate::entity_cache::ListKey::new(filter, order, *page);
        self.view.list(key, post_service::list(db, filter, order, page)).await
    }

    /// Forgets everything loaded so far: a mutation changes what earlier fields may have cached.
    pub fn clear(&self) {
        self.users.clear::<i64>();
        self.boards.clear::<i64>();
        self.posts.clear::<i64>();
        self.comments.clear::<i64>();
        self.edges.clear::<EdgeKey>();
        self.relations.clear::<RelationKey>();
        self.children.clear::<ChildrenKey>();
        self.chains.clear::<i64>();
        self.conversations.clear::<i64>();
        self.messages.clear::<i64>();
        self.unread.clear::<UnreadKey>();
        self.viewer_counts.clear::<i64>();
        self.post_media.clear::<i64>();
    }
}
