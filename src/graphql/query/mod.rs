//! Read side: everything here works without signing in (browsing needs no account).

mod feed;
mod policy;
mod realtime;
mod search;
mod trust;

pub use policy::{PolicyConsent, PolicyVersion, consent as policy_consent};
pub use realtime::{NotificationSetting, settings as realtime_settings};

use async_graphql::connection::Connection;
use async_graphql::{Context, ID, MergedObject, Object};

use crate::error::{AppError, AppResult};
use crate::graphql::ids::{self, Kind};
use crate::graphql::types::enums::PostOrder;
use crate::graphql::types::node::Node;
use crate::graphql::types::{
    Board, Comment, Conversation, Counted, LiveChatMessage, LiveStream, Message, Notification, Post, User, connection,
    counted, load_one,
};
use crate::graphql::{loaders, page_args, state, viewer};
use crate::services::activity::Target;
use crate::services::{boards as board_service, live as live_service, posts as post_service};

/// Counts the request's visitor once a day for a board or post page (aggregates only).
fn count_visit(ctx: &Context<'_>, target: Target, id: i64) {
    let Some(info) = crate::graphql::request_info(ctx) else { return };
    if let Ok(mut visits) = info.visits.lock() {
        visits.push((target, id));
    }
    if let (Some(visitor), Ok(st)) = (info.visitor.as_deref(), state(ctx)) {
        st.activity.visit(target, id, visitor);
    }
}

#[derive(MergedObject, Default)]
pub struct Query(
    NodeQuery,
    AccountQuery,
    BoardQuery,
    PostQuery,
    realtime::RealtimeQuery,
    search::SearchQuery,
    feed::FeedQuery,
    policy::PolicyQuery,
    trust::TrustQuery,
);

#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Fetches any object by its global id; null if it does not exist.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Node>> {
        if let Some(upload) = ids::decode_media(&id) {
            let found = crate::services::media::visible(&state(ctx)?.db, viewer(ctx).as_ref(), &upload).await?;
            return Ok(found.map(|m| Node::Media(crate::graphql::types::trust::Media(m))));
        }
        let Some((kind, n)) = ids::decode_any(&id) else {
            return Err(AppError::bad_input("id", "is not a valid id").into());
        };
        Ok(match kind {
            Kind::User => load_one(&loaders(ctx)?.users, n).await?.map(|u| Node::User(User(u))),
            Kind::Board => load_one(&loaders(ctx)?.boards, n).await?.map(|b| Node::Board(Board(b))),
            Kind::Post => live_post(ctx, n).await?.map(Node::Post),
            Kind::Comment => load_one(&loaders(ctx)?.comments, n).await?.map(|c| Node::Comment(Comment(c))),
            Kind::LiveStream => live_service::get(&state(ctx)?.db, n).await?.map(|s| Node::LiveStream(LiveStream(s))),
            Kind::LiveChatMessage => live_service::chat_line_by_id(&state(ctx)?.db, n)
                .await?
                .map(|l| Node::LiveChatMessage(LiveChatMessage(l))),
            // Private objects go to whoever may see them, and are null for anyone else (as if they
            // did not exist: an id does not tell whether it does).
            Kind::Conversation
            | Kind::Message
            | Kind::Notification
            | Kind::Session
            | Kind::Settings
            | Kind::NotificationSetting
            | Kind::PolicyConsent => {
                let Some(v) = viewer(ctx) else { return Ok(None) };
                private_node(ctx, &v, kind, n).await?
            }
            Kind::BrowseEntry
            | Kind::SearchEntry
            | Kind::IdentityVerification
            | Kind::AuditEntry
            | Kind::ActivityEntry
            | Kind::NoticeBroadcast
            | Kind::Report
            // Keyed by UUID: decoded above.
            | Kind::Media => None,
        })
    }
}

/// A conversation or message of the viewer's, or a notification or session they own.
async fn private_node(ctx: &Context<'_>, v: &crate::auth::Viewer, kind: Kind, n: i64) -> AppResult<Option<Node>> {
    let db = &state(ctx)?.db;
    let member_of = |conversation: i64| async move {
        match crate::services::messaging::conversation_for(db, v, conversation).await {
            Ok(c) => Ok(Some(c)),
            Err(AppError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    };
    let owns = |owner: i64| crate::authz::can(Some(v), crate::authz::Action::ReadOwn { owner });
    Ok(match kind {
        Kind::Conversation => member_of(n).await?.map(|c| Node::Conversation(Conversation(c))),
        Kind::Message => match load_one(&loaders(ctx)?.messages, n).await? {
            Some(m) if member_of(m.conversation_id).await?.is_some() => Some(Node::Message(Message(m))),
            _ => None,
        },
        Kind::Notification => crate::services::notifications::by_ids(db, &[n])
            .await?
            .into_iter()
            .find(|x| owns(x.user_id))
            .map(|x| Node::Notification(Notification(x))),
        Kind::Session => crate::services::accounts::session_by_id(db, n)
            .await?
            .filter(|s| owns(s.user_id))
            .map(|s| Node::Session(crate::graphql::types::session::Session(s))),
        Kind::Settings if owns(n) => {
            let s = crate::services::history::settings(db, n).await?;
            Some(Node::Settings(crate::graphql::types::history::Settings::of(n, s)))
        }
        Kind::PolicyConsent if owns(n) => Some(Node::PolicyConsent(policy::consent_of(db, n).await?)),
        Kind::NotificationSetting => realtime::setting_by_id(db, n)
            .await?
            .filter(|(owner, _)| owns(*owner))
            .map(|(_, s)| Node::NotificationSetting(s)),
        _ => None,
    })
}

async fn live_post(ctx: &Context<'_>, id: i64) -> AppResult<Option<Post>> {
    let post = load_one(&loaders(ctx)?.posts, id).await?;
    Ok(post.filter(|p| p.deleted_at.is_none()).map(Post))
}

#[derive(Default)]
pub struct AccountQuery;

#[Object]
impl AccountQuery {
    /// The signed-in user; null when signed out.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(v) = viewer(ctx) else {
            return Ok(None);
        };
        Ok(load_one(&loaders(ctx)?.users, v.user_id).await?.map(User))
    }

    /// One member, by `id` or by `accountName` (exactly one of them); null if there is none.
    async fn user(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        #[graphql(desc = "The member's account name (`/u/<accountName>` pages), instead of `id`.")]
        account_name: Option<String>,
    ) -> async_graphql::Result<Option<User>> {
        let id = match (id, account_name) {
            (Some(id), None) => ids::decode(Kind::User, &id, "id")?,
            (None, Some(name)) => {
                let name = crate::services::validate::account_name("accountName", &name)?;
                match crate::services::accounts::id_by_account_name(&state(ctx)?.db, &name).await? {
                    Some(id) => id,
                    None => return Ok(None),
                }
            }
            _ => return Err(crate::error::AppError::bad_input("id", "give exactly one of id and accountName").into()),
        };
        Ok(load_one(&loaders(ctx)?.users, id).await?.map(User))
    }
}

#[derive(Default)]
pub struct BoardQuery;

#[Object]
impl BoardQuery {
    /// All boards, oldest first.
    #[graphql(complexity = "crate::graphql::types::list_cost(first, child_complexity)")]
    async fn boards(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Board>> {
        let page = page_args(ctx, first, after.as_deref())?;
        Ok(connection(board_service::list(&state(ctx)?.db, &page).await?, Board))
    }

    /// A board by id or by slug (give one of them).
    async fn board(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        slug: Option<String>,
    ) -> async_graphql::Result<Option<Board>> {
        let board = match (id, slug) {
            (Some(id), None) => {
                let id = ids::decode(Kind::Board, &id, "id")?;
                load_one(&loaders(ctx)?.boards, id).await?
            }
            (None, Some(slug)) => board_service::by_slug(&state(ctx)?.db, &slug).await?,
            _ => return Err(AppError::bad_input("id", "give exactly one of id and slug").into()),
        };
        if let Some(b) = &board {
            count_visit(ctx, Target::Board, b.id);
        }
        Ok(board.map(Board))
    }
}

#[derive(Default)]
pub struct PostQuery;

#[Object]
impl PostQuery {
    /// Posts across the community, or on one board, or by one author. No `totalCount` (null):
    /// counting would need a scan; `Board.posts` and `User.posts` have one.
    #[graphql(complexity = "crate::graphql::types::list_cost(first, child_complexity)")]
    async fn posts(
        &self,
        ctx: &Context<'_>,
        board_id: Option<ID>,
        author_id: Option<ID>,
        #[graphql(default)] order_by: PostOrder,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Counted<Post>> {
        let page = page_args(ctx, first, after.as_deref())?;
        let filter = post_service::Filter {
            board_id: board_id.map(|id| ids::decode(Kind::Board, &id, "boardId")).transpose()?,
            author_id: author_id.map(|id| ids::decode(Kind::User, &id, "authorId")).transpose()?,
        };
        let posts = crate::graphql::loaders(ctx)?.post_list(&state(ctx)?.db, filter, order_by.into(), &page).await?;
        super::prefetch::posts(ctx, &posts).await?;
        Ok(counted(posts, Post, None))
    }

    /// The hottest posts (likes, comments, favourites and views, decaying with age): the same as
    /// `posts(orderBy: HOT)`, under the name the home page's "hot" tab used.
    #[graphql(
        complexity = "crate::graphql::types::list_cost(first, child_complexity)",
        deprecation = "Use `posts(orderBy: HOT)`: the same list, one field for every order."
    )]
    async fn hot_posts(
        &self,
        ctx: &Context<'_>,
        board_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Counted<Post>> {
        let page = page_args(ctx, first, after.as_deref())?;
        let filter = post_service::Filter {
            board_id: board_id.map(|id| ids::decode(Kind::Board, &id, "boardId")).transpose()?,
            author_id: None,
        };
        let posts =
            crate::graphql::loaders(ctx)?.post_list(&state(ctx)?.db, filter, post_service::Order::Hot, &page).await?;
        super::prefetch::posts(ctx, &posts).await?;
        Ok(counted(posts, Post, None))
    }

    /// A post; null if it does not exist or was deleted.
    async fn post(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Post>> {
        let post = live_post(ctx, ids::decode(Kind::Post, &id, "id")?).await?;
        if let Some(p) = &post {
            count_visit(ctx, Target::Post, p.0.id);
        }
        Ok(post)
    }

    /// A comment (deleted comments are returned with no body, so links to them still resolve).
    async fn comment(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Comment>> {
        let id = ids::decode(Kind::Comment, &id, "id")?;
        Ok(load_one(&loaders(ctx)?.comments, id).await?.map(Comment))
    }
}
