//! Look-ahead prefetching for lists.
//!
//! DataLoaders batch whatever keys arrive within a short window, so how many statements a page costs
//! would depend on how fast the resolvers happen to run. Instead, a list resolver looks at the
//! selection below it and loads, level by level, everything its items will ask for (authors, boards,
//! viewer flags, first comments and their authors, replies...) with one `load_many` per loader. The
//! item resolvers then find their values in the request's loader cache. Levels run one after another
//! (loads within a level run together), so a page costs the same statements whatever its size and
//! however fast the database answers.

use async_graphql::{Context, Lookahead, Value};
use entity::{comments, posts};
use futures_util::future::BoxFuture;

use super::loaders::{ChildrenKey, EdgeKey, Loaders, RelationKey, UnreadKey};
use super::{loaders, state, viewer};
use crate::error::AppResult;
use crate::services::comments::Parent;
use crate::services::page::{Page, PageArgs, RawPage};
use crate::services::social::Edge;

/// The `node` selection of a connection field's edges.
pub fn nodes<'a>(look: &Lookahead<'a>) -> Lookahead<'a> {
    look.field("edges").field("node")
}

struct Env<'c> {
    loaders: &'c Loaders,
    viewer: Option<i64>,
    max_page: u32,
}

impl<'c> Env<'c> {
    fn new(ctx: &'c Context<'_>) -> AppResult<Env<'c>> {
        Ok(Env {
            loaders: loaders(ctx)?,
            viewer: viewer(ctx).map(|v| v.user_id),
            max_page: state(ctx)?.config.max_page_size,
        })
    }

    /// Loads `edge` flags for the viewer, if the selection asks for them.
    async fn flags(&self, look: &Lookahead<'_>, field: &str, edge: Edge, targets: &[i64]) -> AppResult<()> {
        self.flags_of(look, &[(field, edge)], targets).await
    }

    /// Loads the flags of several (field, edge) pairs the selection asks for, in one batch: a post's
    /// likes and favourites cost one statement.
    async fn flags_of(&self, look: &Lookahead<'_>, fields: &[(&str, Edge)], targets: &[i64]) -> AppResult<()> {
        let Some(actor) = self.viewer else { return Ok(()) };
        let keys: Vec<EdgeKey> = fields
            .iter()
            .filter(|(field, _)| look.field(field).exists())
            .flat_map(|&(_, edge)| targets.iter().map(move |&target| EdgeKey { edge, actor, target }))
            .collect();
        if !keys.is_empty() {
            self.loaders.edges.load_many(keys).await.map_err(to_app)?;
        }
        Ok(())
    }

    async fn users(&self, look: Lookahead<'_>, ids: Vec<i64>) -> AppResult<()> {
        if !look.exists() || ids.is_empty() {
            return Ok(());
        }
        let (loaded, flags, relations) = futures_util::join!(
            self.loaders.users.load_many(ids.clone()),
            self.flags(&look, "viewerIsFollowing", Edge::UserFollow, &ids),
            self.relations(&look, &ids)
        );
        loaded.map_err(to_app)?;
        flags?;
        relations
    }

    /// Blocks and follows between the viewer and a page of members, when the selection shows them.
    async fn relations(&self, look: &Lookahead<'_>, ids: &[i64]) -> AppResult<()> {
        let asked = ["viewerHasBlocked", "followsViewer", "viewerCanMessage"].iter().any(|f| look.field(f).exists());
        let Some(viewer) = self.viewer.filter(|_| asked) else { return Ok(()) };
        let keys = ids.iter().map(|&other| RelationKey { viewer, other });
        self.loaders.relations.load_many(keys).await.map_err(to_app)?;
        Ok(())
    }

    async fn boards(&self, look: Lookahead<'_>, ids: Vec<i64>) -> AppResult<()> {
        if !look.exists() || ids.is_empty() {
            return Ok(());
        }
        let (loaded, flags) = futures_util::join!(
            self.loaders.boards.load_many(ids.clone()),
            self.flags(&look, "viewerIsFollowing", Edge::BoardFollow, &ids)
        );
        loaded.map_err(to_app)?;
        flags
    }

    /// The first page of children for each parent, with the page arguments the selection gives.
    async fn children(&self, look: Lookahead<'_>, parents: Vec<Parent>) -> AppResult<()> {
        if !look.exists() || parents.is_empty() {
            return Ok(());
        }
        let Some(page) = page_of(&look, self.max_page) else { return Ok(()) };
        let keys: Vec<ChildrenKey> = parents.into_iter().map(|parent| ChildrenKey { parent, page }).collect();
        let pages = self.loaders.children.load_many(keys).await.map_err(to_app)?;
        let comments: Vec<comments::Model> =
            pages.into_values().flat_map(|p| p.items.into_iter().map(|(_, c)| c)).collect();
        self.comments(nodes(&look), comments).await
    }

    fn comments<'s>(&'s self, look: Lookahead<'s>, comments: Vec<comments::Model>) -> BoxFuture<'s, AppResult<()>> {
        Box::pin(async move {
            if !look.exists() || comments.is_empty() {
                return Ok(());
            }
            let ids: Vec<i64> = comments.iter().map(|c| c.id).collect();
            let authors: Vec<i64> = comments.iter().filter(|c| c.deleted_at.is_none()).map(|c| c.author_id).collect();
            let parents: Vec<i64> = comments.iter().filter_map(|c| c.parent_id).collect();
            let replies: Vec<Parent> = comments.iter().map(|c| Parent::Comment(c.id)).collect();
            let replies_ids: Vec<i64> = comments.iter().filter(|c| c.parent_id.is_some()).map(|c| c.id).collect();
            let (a, b, c, d) = futures_util::join!(
                self.users(look.field("author"), authors),
                self.flags(&look, "viewerHasLiked", Edge::CommentLike, &ids),
                self.load_parents(&look, parents),
                self.chains(&look, replies_ids),
            );
            a.and(b).and(c).and(d)?;
            // The next level only after this one: its loads then never race this level's into one batch.
            self.children(look.field("replies"), replies).await
        })
    }

    async fn media(&self, look: &Lookahead<'_>, posts: &[i64]) -> AppResult<()> {
        if look.field("media").exists() && !posts.is_empty() {
            self.loaders.post_media.load_many(posts.iter().copied()).await.map_err(to_app)?;
        }
        Ok(())
    }

    /// Each reply's way up, when the selection shows `ancestors`.
    async fn chains(&self, look: &Lookahead<'_>, replies: Vec<i64>) -> AppResult<()> {
        if look.field("ancestors").exists() && !replies.is_empty() {
            self.loaders.chains.load_many(replies).await.map_err(to_app)?;
        }
        Ok(())
    }

    async fn load_parents(&self, look: &Lookahead<'_>, parents: Vec<i64>) -> AppResult<()> {
        if look.field("parent").exists() && !parents.is_empty() {
            self.loaders.comments.load_many(parents).await.map_err(to_app)?;
        }
        Ok(())
    }

    async fn posts(&self, look: Lookahead<'_>, posts: &[posts::Model]) -> AppResult<()> {
        if !look.exists() || posts.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = posts.iter().map(|p| p.id).collect();
        let flags = [("viewerHasLiked", Edge::PostLike), ("viewerHasFavorited", Edge::Favorite)];
        let (a, b, c, d) = futures_util::join!(
            self.users(look.field("author"), posts.iter().map(|p| p.author_id).collect()),
            self.boards(look.field("board"), posts.iter().map(|p| p.board_id).collect()),
            self.flags_of(&look, &flags, &ids),
            self.media(&look, &ids),
        );
        a.and(b).and(c).and(d)?;
        self.children(look.field("comments"), ids.iter().map(|&id| Parent::Post(id)).collect()).await
    }
}

/// Reads `first`/`after`/`last`/`before` from the first occurrence of a connection field. Arguments
/// that do not parse skip the prefetch, and so does `around` (a page of one post only); the field's
/// own resolver reports errors and loads such pages.
fn page_of(look: &Lookahead<'_>, max: u32) -> Option<PageArgs> {
    let field = look.selection_fields().into_iter().next()?;
    let (mut first, mut last) = (None, None);
    let (mut after, mut before) = (None, None);
    for (name, value) in field.arguments().ok()? {
        match (name.as_str(), value) {
            ("first", Value::Number(n)) => first = Some(i32::try_from(n.as_i64()?).ok()?),
            ("last", Value::Number(n)) => last = Some(i32::try_from(n.as_i64()?).ok()?),
            ("after", Value::String(s)) => after = Some(s),
            ("before", Value::String(s)) => before = Some(s),
            ("around", Value::Null) => {}
            ("around", _) => return None,
            _ => {}
        }
    }
    let raw = RawPage { first, after: after.as_deref(), last, before: before.as_deref() };
    PageArgs::parse_relay(raw, max).ok()
}

fn to_app(err: async_graphql::Error) -> crate::error::AppError {
    crate::error::AppError::internal(err.message)
}

/// Primes the caches for a page of posts, from the selection under the current (connection) field.
pub async fn posts(ctx: &Context<'_>, page: &Page<posts::Model>) -> AppResult<()> {
    let models: Vec<posts::Model> = page.items.iter().map(|(_, p)| p.clone()).collect();
    Env::new(ctx)?.posts(nodes(&ctx.look_ahead()), &models).await
}

/// Primes the caches for a page of comments.
pub async fn comments(ctx: &Context<'_>, page: &Page<comments::Model>) -> AppResult<()> {
    let models: Vec<comments::Model> = page.items.iter().map(|(_, c)| c.clone()).collect();
    Env::new(ctx)?.comments(nodes(&ctx.look_ahead()), models).await
}

fn ids_of(page: &Page<i64>) -> Vec<i64> {
    page.items.iter().map(|(_, id)| *id).collect()
}

/// Primes the caches for a page of user ids (followers, following).
pub async fn user_ids(ctx: &Context<'_>, page: &Page<i64>) -> AppResult<()> {
    Env::new(ctx)?.users(nodes(&ctx.look_ahead()), ids_of(page)).await
}

/// Primes the caches for a page of board ids (followed boards).
pub async fn board_ids(ctx: &Context<'_>, page: &Page<i64>) -> AppResult<()> {
    Env::new(ctx)?.boards(nodes(&ctx.look_ahead()), ids_of(page)).await
}

/// Primes the caches for a page of post ids (favourites): the posts, then what each post selects.
pub async fn post_ids(ctx: &Context<'_>, page: &Page<i64>) -> AppResult<()> {
    let env = Env::new(ctx)?;
    let found = env.loaders.posts.load_many(ids_of(page)).await.map_err(to_app)?;
    let models: Vec<posts::Model> = found.into_values().collect();
    env.posts(nodes(&ctx.look_ahead()), &models).await
}

/// Primes the caches for a page of the viewer's conversations: the conversations, then last messages
/// and unread counts, then every user shown (peers and senders) in one batch.
pub async fn conversation_ids(ctx: &Context<'_>, page: &Page<i64>) -> AppResult<()> {
    let env = Env::new(ctx)?;
    let look = nodes(&ctx.look_ahead());
    let Some(me) = env.viewer else { return Ok(()) };
    let found = env.loaders.conversations.load_many(ids_of(page)).await.map_err(to_app)?;
    let last_look = look.field("lastMessage");
    let message_ids: Vec<i64> = found.values().filter_map(|c| c.last_message_id).collect();
    let unread_keys: Vec<UnreadKey> = found.keys().map(|&conversation| UnreadKey { user: me, conversation }).collect();
    let (messages, unread) = futures_util::join!(
        async {
            if last_look.exists() && !message_ids.is_empty() {
                return env.loaders.messages.load_many(message_ids).await.map(|m| m.into_values().collect());
            }
            Ok(Vec::new())
        },
        async {
            if look.field("unreadCount").exists() && !unread_keys.is_empty() {
                env.loaders.unread.load_many(unread_keys).await?;
            }
            Ok::<_, async_graphql::Error>(())
        }
    );
    let messages: Vec<entity::messages::Model> = messages.map_err(to_app)?;
    unread.map_err(to_app)?;
    let mut users: Vec<i64> = Vec::new();
    if look.field("peer").exists() {
        users.extend(found.values().map(|c| if c.user_low == me { c.user_high } else { c.user_low }));
    }
    if last_look.field("sender").exists() {
        users.extend(messages.iter().map(|m| m.sender_id));
    }
    if !users.is_empty() {
        env.loaders.users.load_many(users).await.map_err(to_app)?;
    }
    Ok(())
}

/// Primes the caches for a page of notifications: actors, comments and posts, then what the posts
/// select.
pub async fn notifications(ctx: &Context<'_>, page: &Page<entity::notifications::Model>) -> AppResult<()> {
    let env = Env::new(ctx)?;
    let look = nodes(&ctx.look_ahead());
    let items: Vec<&entity::notifications::Model> = page.items.iter().map(|(_, n)| n).collect();
    let post_look = look.field("post");
    let (actors, found_posts, found_comments) = futures_util::join!(
        env.users(look.field("actor"), items.iter().filter_map(|n| n.actor_id).collect()),
        async {
            let ids: Vec<i64> = items.iter().filter_map(|n| n.post_id).collect();
            if post_look.exists() && !ids.is_empty() {
                return env.loaders.posts.load_many(ids).await.map(|m| m.into_values().collect());
            }
            Ok(Vec::new())
        },
        async {
            let ids: Vec<i64> = items.iter().filter_map(|n| n.comment_id).collect();
            if look.field("comment").exists() && !ids.is_empty() {
                return env.loaders.comments.load_many(ids).await.map(|m| m.into_values().collect());
            }
            Ok(Vec::<comments::Model>::new())
        }
    );
    actors?;
    let found_posts: Vec<posts::Model> = found_posts.map_err(to_app)?;
    let found_comments = found_comments.map_err(to_app)?;
    let (a, b) =
        futures_util::join!(env.posts(post_look, &found_posts), env.comments(look.field("comment"), found_comments));
    a.and(b)
}

/// Primes the caches for posts that sit one field below each node (`edges { node { post { ... } } }`).
pub async fn posts_under(ctx: &Context<'_>, field: &str, models: &[posts::Model]) -> AppResult<()> {
    Env::new(ctx)?.posts(nodes(&ctx.look_ahead()).field(field), models).await
}
