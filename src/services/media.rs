//! Uploads: what each kind of file may be, checked by its content (magic bytes), never by the name
//! or type the client claims; where it is stored; and attaching media to posts.

use chrono::Utc;
use entity::media;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set,
};

use crate::auth::Viewer;
use crate::authz;
use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::media::{Area, MediaStore, probe};

/// Most images or videos one post may carry.
pub const MAX_PER_POST: usize = 9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Avatar,
    PostImage,
    Video,
    IdPhoto,
    /// A photo sent in a private message: sealed, for the conversation's two members only.
    MessagePhoto,
    /// A short video sent in a private message: sealed like a message photo.
    MessageVideo,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Avatar => "AVATAR",
            Kind::PostImage => "POST_IMAGE",
            Kind::Video => "VIDEO",
            Kind::IdPhoto => "ID_PHOTO",
            Kind::MessagePhoto => "MESSAGE_PHOTO",
            Kind::MessageVideo => "MESSAGE_VIDEO",
        }
    }

    pub fn parse(s: &str) -> Kind {
        match s {
            "AVATAR" => Kind::Avatar,
            "VIDEO" => Kind::Video,
            "ID_PHOTO" => Kind::IdPhoto,
            "MESSAGE_PHOTO" => Kind::MessagePhoto,
            "MESSAGE_VIDEO" => Kind::MessageVideo,
            _ => Kind::PostImage,
        }
    }

    fn private(self) -> bool {
        matches!(self, Kind::IdPhoto | Kind::MessagePhoto | Kind::MessageVideo)
    }

    /// What a private message may carry.
    pub fn for_messages(self) -> bool {
        matches!(self, Kind::MessagePhoto | Kind::MessageVideo)
    }

    /// The content types this kind accepts, as `infer` names them.
    fn accepts(self, mime: &str) -> bool {
        const IMAGES: [&str; 4] = ["image/jpeg", "image/png", "image/webp", "image/gif"];
        const PHOTOS: [&str; 3] = ["image/jpeg", "image/png", "image/webp"];
        const VIDEOS: [&str; 3] = ["video/mp4", "video/webm", "video/quicktime"];
        match self {
            Kind::Avatar | Kind::PostImage | Kind::MessagePhoto => IMAGES.contains(&mime),
            Kind::IdPhoto => PHOTOS.contains(&mime),
            Kind::Video | Kind::MessageVideo => VIDEOS.contains(&mime),
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::Avatar | Kind::PostImage | Kind::MessagePhoto => "a JPEG, PNG, WebP or GIF image",
            Kind::IdPhoto => "a JPEG, PNG or WebP photo",
            Kind::Video | Kind::MessageVideo => "an MP4, WebM or QuickTime video",
        }
    }

    fn max_bytes(self, config: &Config) -> usize {
        match self {
            Kind::Video | Kind::MessageVideo => config.max_upload_bytes,
            _ => config.max_image_bytes,
        }
    }
}

/// An uploaded file as the HTTP layer hands it over: a temporary file of known size.
pub struct Incoming {
    pub file: std::fs::File,
    pub size: u64,
}

/// The content types a poster may be (as `infer` names them).
const POSTER_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/webp", "image/gif"];

/// Where a thumbnail job stands; stored as its upper-case name (null: no thumbnail is made).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThumbnailStatus {
    Pending,
    Working,
    Ready,
    Failed,
}

impl ThumbnailStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ThumbnailStatus::Pending => "PENDING",
            ThumbnailStatus::Working => "WORKING",
            ThumbnailStatus::Ready => "READY",
            ThumbnailStatus::Failed => "FAILED",
        }
    }
}

/// Checks and stores one upload for `owner`; `field` names the argument in errors. A video may
/// come with a poster image (`poster`: the argument's name and the file), checked like an image.
/// Public images and videos with a poster are queued for a thumbnail, made after this returns by
/// [`crate::services::thumbnails`]. A video's header is read whole-file (the `moov` box may follow
/// the media data), within `MAX_UPLOAD_BYTES`.
#[allow(clippy::too_many_arguments)]
pub async fn store(
    db: &impl ConnectionTrait,
    store: &MediaStore,
    config: &Config,
    owner: i64,
    kind: Kind,
    field: &str,
    incoming: Incoming,
    poster: Option<(&str, Incoming)>,
) -> AppResult<media::Model> {
    if poster.is_some() && kind != Kind::Video {
        let name = poster.as_ref().map_or(field, |(f, _)| *f);
        return Err(AppError::bad_input(name, "only a VIDEO takes a poster"));
    }
    let size = incoming.size;
    let (mime, details, file) =
        checked(kind.max_bytes(config), field, incoming, |m| kind.accepts(m), kind.what()).await?;
    let poster = match poster {
        Some((poster_field, p)) => {
            let (mime, _, file) = checked(
                config.max_image_bytes,
                poster_field,
                p,
                |m| POSTER_TYPES.contains(&m),
                "a JPEG, PNG, WebP or GIF image",
            )
            .await?;
            Some((mime, file))
        }
        None => None,
    };
    let id = uuid::Uuid::new_v4();
    if kind.private() {
        store.put_sealed_from(Area::Private, &id, file).await.map_err(AppError::internal)?;
    } else {
        store.put_from(Area::Public, &id, file).await.map_err(AppError::internal)?;
    }
    let poster_mime = match poster {
        Some((mime, file)) => {
            if let Err(e) = store.put_from(Area::Posters, &id, file).await {
                let _ = store.remove(Area::Public, &id).await;
                return Err(AppError::internal(e));
            }
            Some(mime.to_string())
        }
        None => None,
    };
    let thumbnail = !kind.private() && (kind != Kind::Video || poster_mime.is_some());
    let row = media::ActiveModel {
        id: Set(id.hyphenated().to_string()),
        owner_id: Set(owner),
        kind: Set(kind.as_str().into()),
        mime: Set(mime.into()),
        size_bytes: Set(i64::try_from(size).unwrap_or(i64::MAX)),
        private: Set(kind.private()),
        post_id: Set(None),
        message_id: Set(None),
        position: Set(0),
        created_at: Set(Utc::now()),
        width: Set(details.width),
        height: Set(details.height),
        duration_ms: Set(details.duration_ms),
        poster_mime: Set(poster_mime),
        thumbnail_status: Set(thumbnail.then(|| ThumbnailStatus::Pending.as_str().to_string())),
        thumbnail_attempts: Set(0),
        thumbnail_claimed_until: Set(None),
    };
    match row.insert(db).await {
        Ok(m) => {
            if thumbnail {
                store.wake_thumbnailer();
            }
            Ok(m)
        }
        Err(e) => {
            // No row, no file: an orphan on disk would be data nobody can find to erase.
            let area = if kind.private() { Area::Private } else { Area::Public };
            let _ = store.remove(area, &id).await;
            let _ = store.remove(Area::Posters, &id).await;
            Err(e.into())
        }
    }
}

/// Size, content type (by magic bytes) and header of one uploaded file: the type, the details and
/// the file rewound for copying. An image declaring more pixels than decoding may take is refused.
async fn checked(
    max: usize,
    field: &str,
    incoming: Incoming,
    accepts: impl Fn(&str) -> bool,
    what: &str,
) -> AppResult<(&'static str, probe::Details, std::fs::File)> {
    if incoming.size > max as u64 {
        return Err(AppError::UploadTooLarge { field: field.into(), max_bytes: max });
    }
    if incoming.size == 0 {
        return Err(AppError::UnsupportedMedia { field: field.into(), message: "the file is empty".into() });
    }
    let (mime, file) = sniff(incoming.file).await.map_err(AppError::internal)?;
    let mime = mime.filter(|m| accepts(m)).ok_or_else(|| AppError::UnsupportedMedia {
        field: field.into(),
        message: format!("expected {what} (checked by content, not by file name)"),
    })?;
    let (probed, file) = probe_file(field, mime, file).await?;
    match probed {
        probe::Probe::Read(details) => Ok((mime, details, file)),
        probe::Probe::TooLarge => Err(AppError::UnsupportedMedia {
            field: field.into(),
            message: format!(
                "the image is larger than {max} x {max} pixels, or too large to decode",
                max = probe::MAX_IMAGE_SIDE
            ),
        }),
    }
}

/// Reads the header of `file` (of type `mime`) on a blocking thread; returns the file rewound.
async fn probe_file(field: &str, mime: &'static str, file: std::fs::File) -> AppResult<(probe::Probe, std::fs::File)> {
    let done = tokio::task::spawn_blocking(move || {
        use std::io::Seek;
        let mut file = file;
        let probed = {
            let mut reader = std::io::BufReader::new(&mut file);
            if mime.starts_with("image/") {
                probe::image(&mut reader)
            } else if mime == "video/mp4" || mime == "video/quicktime" {
                probe::Probe::Read(probe::video(&mut reader))
            } else {
                probe::Probe::Read(probe::Details::default())
            }
        };
        file.rewind().map(|()| (probed, file))
    })
    .await;
    match done {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(AppError::internal(e)),
        // A parser that panicked on a hostile header: the upload is refused, the server goes on.
        Err(e) => {
            tracing::warn!(error = %e, mime, "media header parser failed");
            Err(AppError::UnsupportedMedia { field: field.into(), message: "the file could not be read".into() })
        }
    }
}

/// The content type found in the first bytes, and the file rewound for copying.
async fn sniff(file: std::fs::File) -> std::io::Result<(Option<&'static str>, std::fs::File)> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut f = tokio::fs::File::from_std(file);
    f.rewind().await?;
    let mut head = vec![0u8; 8192];
    let mut n = 0;
    while n < head.len() {
        let read = f.read(&mut head[n..]).await?;
        if read == 0 {
            break;
        }
        n += read;
    }
    f.rewind().await?;
    let mime = infer::get(&head[..n]).map(|t| t.mime_type());
    Ok((mime, f.into_std().await))
}

/// The public URL path of a media id.
pub fn public_path(id: &str) -> String {
    format!("/media/{id}")
}

/// Media of these posts, in their order, grouped by post (for the post DataLoader).
pub async fn for_posts(db: &DatabaseConnection, post_ids: &[i64]) -> AppResult<Vec<media::Model>> {
    Ok(media::Entity::find()
        .filter(media::Column::PostId.is_in(post_ids.iter().copied()))
        .order_by_asc(media::Column::PostId)
        .order_by_asc(media::Column::Position)
        .all(db)
        .await?)
}

/// The kinds a post shows.
const POST_KINDS: [Kind; 2] = [Kind::PostImage, Kind::Video];

/// A post's list of uploads: at most [`MAX_PER_POST`], none twice.
fn check_post_list(ids: &[String]) -> AppResult<()> {
    check_list(ids, MAX_PER_POST, "post")
}

/// A message's list of uploads: at most [`MAX_PER_MESSAGE`], none twice. Checked before the send
/// writes anything.
pub fn check_message_list(ids: &[String]) -> AppResult<()> {
    check_list(ids, MAX_PER_MESSAGE, "message")
}

fn check_list(ids: &[String], max: usize, per: &str) -> AppResult<()> {
    if ids.len() > max {
        return Err(AppError::bad_input("input.mediaIds", format!("at most {max} files per {per}")));
    }
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    if unique.len() != ids.len() {
        return Err(AppError::bad_input("input.mediaIds", "an upload is listed twice"));
    }
    Ok(())
}

/// Attaches the owner's uploaded post images and videos to a post, in the order given. Media already
/// on another post, someone else's, or of another kind are refused.
pub async fn attach_to_post(db: &impl ConnectionTrait, owner: i64, post_id: i64, ids: &[String]) -> AppResult<()> {
    check_post_list(ids)?;
    place_on_post(db, owner, post_id, ids).await
}

/// Puts `ids` on the post at their positions: each the owner's post image or video, unattached or
/// already on this post. The conditions are in the UPDATE itself: two posts racing for one upload
/// cannot both win.
async fn place_on_post(db: &impl ConnectionTrait, owner: i64, post_id: i64, ids: &[String]) -> AppResult<()> {
    for (position, id) in ids.iter().enumerate() {
        let attached = media::Entity::update_many()
            .col_expr(media::Column::PostId, sea_orm::sea_query::Expr::value(post_id))
            .col_expr(media::Column::Position, sea_orm::sea_query::Expr::value(i32::try_from(position).unwrap_or(0)))
            .filter(media::Column::Id.eq(id.clone()))
            .filter(media::Column::OwnerId.eq(owner))
            .filter(Condition::any().add(media::Column::PostId.is_null()).add(media::Column::PostId.eq(post_id)))
            .filter(media::Column::Kind.is_in(POST_KINDS.map(Kind::as_str)))
            .exec(db)
            .await?;
        if attached.rows_affected != 1 {
            return Err(AppError::bad_input("input.mediaIds", format!("{id} is not one of your unattached uploads")));
        }
    }
    Ok(())
}

/// Makes `ids` the post's media, in this order (`updatePost(mediaIds)`), with the validation of
/// [`attach_to_post`]; the post's files left out are detached and returned, for the caller to
/// delete with [`remove`] once the edit is committed (a removed picture stops being served).
pub async fn replace_on_post(
    db: &impl ConnectionTrait,
    owner: i64,
    post_id: i64,
    ids: &[String],
) -> AppResult<Vec<media::Model>> {
    check_post_list(ids)?;
    let current = media::Entity::find().filter(media::Column::PostId.eq(post_id)).all(db).await?;
    let dropped: Vec<media::Model> = current.into_iter().filter(|m| !ids.contains(&m.id)).collect();
    if !dropped.is_empty() {
        media::Entity::update_many()
            .col_expr(media::Column::PostId, sea_orm::sea_query::Expr::value(None::<i64>))
            .filter(media::Column::Id.is_in(dropped.iter().map(|m| m.id.clone())))
            .filter(media::Column::PostId.eq(post_id))
            .exec(db)
            .await?;
    }
    place_on_post(db, owner, post_id, ids).await?;
    Ok(dropped)
}

/// A public file by id: its row, if it is public (media of a deleted post go with it). The one
/// check of the public media route, for the file, its thumbnail and its poster alike.
pub async fn public(db: &impl ConnectionTrait, id: &uuid::Uuid) -> AppResult<Option<media::Model>> {
    let found =
        media::Entity::find_by_id(id.hyphenated().to_string()).filter(media::Column::Private.eq(false)).one(db).await?;
    let Some(row) = found else { return Ok(None) };
    if let Some(post) = row.post_id {
        let live = entity::posts::Entity::find_by_id(post)
            .filter(entity::posts::Column::DeletedAt.is_null())
            .one(db)
            .await?
            .is_some();
        if !live {
            return Ok(None);
        }
    }
    Ok(Some(row))
}

/// A file's row for `node(id)`: a public one as the media route serves it ([`public`]); a private
/// one (an ID photo) to whom `authz` lets read the owner's identity data, its owner or a reviewer.
/// None for anyone else, as if it did not exist.
pub async fn visible(
    db: &impl ConnectionTrait,
    viewer: Option<&Viewer>,
    id: &uuid::Uuid,
) -> AppResult<Option<media::Model>> {
    let Some(row) = media::Entity::find_by_id(id.hyphenated().to_string()).one(db).await? else { return Ok(None) };
    if Kind::parse(&row.kind).for_messages() {
        let Some(viewer) = viewer else { return Ok(None) };
        return Ok(may_see_message_media(db, viewer, &row).await?.then_some(row));
    }
    if row.private {
        let allowed = authz::can(viewer, authz::Action::ReadIdentity { owner: row.owner_id });
        return Ok(allowed.then_some(row));
    }
    public(db, id).await
}

/// The most files one private message carries.
pub const MAX_PER_MESSAGE: usize = 9;

/// Attaches the sender's unsent MESSAGE_PHOTO and MESSAGE_VIDEO uploads (a list that passed
/// [`check_message_list`]) to a message, in the order given, inside the message's own transaction.
/// The conditions are in the UPDATE: an upload sent with one message cannot be sent with another.
pub async fn attach_to_message(
    db: &impl ConnectionTrait,
    owner: i64,
    message_id: i64,
    ids: &[String],
) -> AppResult<()> {
    for (position, id) in ids.iter().enumerate() {
        let attached = media::Entity::update_many()
            .col_expr(media::Column::MessageId, sea_orm::sea_query::Expr::value(message_id))
            .col_expr(media::Column::Position, sea_orm::sea_query::Expr::value(i32::try_from(position).unwrap_or(0)))
            .filter(media::Column::Id.eq(id.clone()))
            .filter(media::Column::OwnerId.eq(owner))
            .filter(media::Column::Kind.is_in([Kind::MessagePhoto.as_str(), Kind::MessageVideo.as_str()]))
            .filter(media::Column::MessageId.is_null())
            .exec(db)
            .await?;
        if attached.rows_affected != 1 {
            return Err(AppError::bad_input(
                "input.mediaIds",
                format!("{id} is not one of your MESSAGE_PHOTO or MESSAGE_VIDEO uploads that is still unsent"),
            ));
        }
    }
    Ok(())
}

/// Files of these messages, in their order (for the message media DataLoader).
pub async fn for_messages(db: &DatabaseConnection, message_ids: &[i64]) -> AppResult<Vec<media::Model>> {
    Ok(media::Entity::find()
        .filter(media::Column::MessageId.is_in(message_ids.iter().copied()))
        .order_by_asc(media::Column::MessageId)
        .order_by_asc(media::Column::Position)
        .all(db)
        .await?)
}

/// Who may open a message's file: its uploader; once sent, the conversation's two members (the
/// policy's ReadConversation rule), and moderators while the message is the target of a report a
/// member of the conversation filed.
async fn may_see_message_media(db: &impl ConnectionTrait, viewer: &Viewer, row: &media::Model) -> AppResult<bool> {
    if row.owner_id == viewer.user_id {
        return Ok(true);
    }
    let Some(message_id) = row.message_id else { return Ok(false) };
    let Some(message) = entity::messages::Entity::find_by_id(message_id).one(db).await? else { return Ok(false) };
    let conversation = entity::conversations::Entity::find_by_id(message.conversation_id).one(db).await?;
    if conversation.is_some_and(|c| crate::services::messaging::may_read(viewer, &c)) {
        return Ok(true);
    }
    Ok(authz::can(Some(viewer), authz::Action::HandleReports)
        && crate::services::reports::is_reported(db, crate::services::reports::TargetKind::Message, message_id).await?)
}

/// A message's photo or video, unsealed, for someone [`may_see_message_media`] lets see it; NOT_FOUND
/// for anyone else, so ids cannot be probed.
pub async fn message_file(
    db: &DatabaseConnection,
    store: &MediaStore,
    viewer: &Viewer,
    id: &uuid::Uuid,
) -> AppResult<(String, crate::media::SealedFile)> {
    let row = media::Entity::find_by_id(id.hyphenated().to_string())
        .one(db)
        .await?
        .filter(|m| Kind::parse(&m.kind).for_messages())
        .ok_or(AppError::NotFound("file"))?;
    if !may_see_message_media(db, viewer, &row).await? {
        return Err(AppError::NotFound("file"));
    }
    let file = store
        .open_sealed_file(Area::Private, id, viewer.user_id)
        .await
        .map_err(crate::media::StoreError::into_app)?
        .ok_or(AppError::NotFound("file"))?;
    Ok((row.mime, file))
}

/// The path a message's file is served under (to the conversation's members only).
pub fn message_path(id: &str) -> String {
    format!("/media/messages/{id}")
}

/// Deletes media rows and their files, thumbnails and posters with them (account erasure, replaced
/// avatars, pictures taken off a post).
pub async fn remove(db: &impl ConnectionTrait, store: &MediaStore, rows: Vec<media::Model>) -> AppResult<()> {
    for m in rows {
        let Ok(id) = uuid::Uuid::parse_str(&m.id) else { continue };
        let area = if m.private { Area::Private } else { Area::Public };
        for area in [area, Area::Thumbnails, Area::Posters] {
            store.remove(area, &id).await.map_err(AppError::internal)?;
        }
        media::Entity::delete_by_id(m.id).exec(db).await?;
        // Again after the row is gone: a thumbnail written in between (the worker finishing) would
        // otherwise outlive it. The worker removes what it writes for a row that no longer exists.
        store.remove(Area::Thumbnails, &id).await.map_err(AppError::internal)?;
    }
    Ok(())
}

/// Stores an uploaded image as the member's avatar and deletes the avatar it replaces.
pub async fn set_avatar(
    db: &DatabaseConnection,
    media_store: &MediaStore,
    config: &Config,
    user_id: i64,
    file: Incoming,
) -> AppResult<entity::users::Model> {
    use entity::users;
    let stored = store(db, media_store, config, user_id, Kind::Avatar, "input.file", file, None).await?;
    let old = media::Entity::find()
        .filter(media::Column::OwnerId.eq(user_id))
        .filter(media::Column::Kind.eq(Kind::Avatar.as_str()))
        .filter(media::Column::Id.ne(stored.id.clone()))
        .all(db)
        .await?;
    users::Entity::update_many()
        .col_expr(users::Column::AvatarUrl, sea_orm::sea_query::Expr::value(public_path(&stored.id)))
        .col_expr(users::Column::UpdatedAt, sea_orm::sea_query::Expr::value(Utc::now()))
        .filter(users::Column::Id.eq(user_id))
        .exec(db)
        .await?;
    remove(db, media_store, old).await?;
    users::Entity::find_by_id(user_id).one(db).await?.ok_or(AppError::NotFound("user"))
}

/// Erases what a member uploaded that is not part of public content: avatars, unattached uploads
/// and ID photos. Media of their posts stay with the posts, as the posts do.
pub async fn erase_private(db: &impl ConnectionTrait, media_store: &MediaStore, user_id: i64) -> AppResult<()> {
    let rows = media::Entity::find()
        .filter(media::Column::OwnerId.eq(user_id))
        .filter(media::Column::PostId.is_null())
        .all(db)
        .await?;
    remove(db, media_store, rows).await
}
