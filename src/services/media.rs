//! Uploads: what each kind of file may be, checked by its content (magic bytes), never by the name
//! or type the client claims; where it is stored; and attaching media to posts.

use chrono::Utc;
use entity::media;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
};

use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::media::{Area, MediaStore};

/// Most images or videos one post may carry.
pub const MAX_PER_POST: usize = 9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Avatar,
    PostImage,
    Video,
    IdPhoto,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Avatar => "AVATAR",
            Kind::PostImage => "POST_IMAGE",
            Kind::Video => "VIDEO",
            Kind::IdPhoto => "ID_PHOTO",
        }
    }

    pub fn parse(s: &str) -> Kind {
        match s {
            "AVATAR" => Kind::Avatar,
            "VIDEO" => Kind::Video,
            "ID_PHOTO" => Kind::IdPhoto,
            _ => Kind::PostImage,
        }
    }

    fn private(self) -> bool {
        self == Kind::IdPhoto
    }

    /// The content types this kind accepts, as `infer` names them.
    fn accepts(self, mime: &str) -> bool {
        const IMAGES: [&str; 4] = ["image/jpeg", "image/png", "image/webp", "image/gif"];
        const PHOTOS: [&str; 3] = ["image/jpeg", "image/png", "image/webp"];
        const VIDEOS: [&str; 3] = ["video/mp4", "video/webm", "video/quicktime"];
        match self {
            Kind::Avatar | Kind::PostImage => IMAGES.contains(&mime),
            Kind::IdPhoto => PHOTOS.contains(&mime),
            Kind::Video => VIDEOS.contains(&mime),
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::Avatar | Kind::PostImage => "a JPEG, PNG, WebP or GIF image",
            Kind::IdPhoto => "a JPEG, PNG or WebP photo",
            Kind::Video => "an MP4, WebM or QuickTime video",
        }
    }

    fn max_bytes(self, config: &Config) -> usize {
        match self {
            Kind::Video => config.max_upload_bytes,
            _ => config.max_image_bytes,
        }
    }
}

/// An uploaded file as the HTTP layer hands it over: a temporary file of known size.
pub struct Incoming {
    pub file: std::fs::File,
    pub size: u64,
}

/// Checks and stores one upload for `owner`; `field` names the argument in errors.
pub async fn store(
    db: &impl ConnectionTrait,
    store: &MediaStore,
    config: &Config,
    owner: i64,
    kind: Kind,
    field: &str,
    incoming: Incoming,
) -> AppResult<media::Model> {
    let max = kind.max_bytes(config);
    if incoming.size > max as u64 {
        return Err(AppError::UploadTooLarge { field: field.into(), max_bytes: max });
    }
    if incoming.size == 0 {
        return Err(AppError::UnsupportedMedia { field: field.into(), message: "the file is empty".into() });
    }
    let id = uuid::Uuid::new_v4();
    let (mime, file) = sniff(incoming.file).await.map_err(AppError::internal)?;
    let mime = mime.filter(|m| kind.accepts(m)).ok_or_else(|| AppError::UnsupportedMedia {
        field: field.into(),
        message: format!("expected {} (checked by content, not by file name)", kind.what()),
    })?;
    if kind.private() {
        let bytes = read_all(file).await.map_err(AppError::internal)?;
        store.put_sealed(Area::Private, &id, &bytes).await.map_err(AppError::internal)?;
    } else {
        store.put_public_from(&id, file).await.map_err(AppError::internal)?;
    }
    let row = media::ActiveModel {
        id: Set(id.hyphenated().to_string()),
        owner_id: Set(owner),
        kind: Set(kind.as_str().into()),
        mime: Set(mime.into()),
        size_bytes: Set(incoming.size as i64),
        private: Set(kind.private()),
        post_id: Set(None),
        position: Set(0),
        created_at: Set(Utc::now()),
    };
    match row.insert(db).await {
        Ok(m) => Ok(m),
        Err(e) => {
            // No row, no file: an orphan on disk would be data nobody can find to erase.
            let area = if kind.private() { Area::Private } else { Area::Public };
            let _ = store.remove(area, &id).await;
            Err(e.into())
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

async fn read_all(file: std::fs::File) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    tokio::fs::File::from_std(file).read_to_end(&mut buf).await?;
    Ok(buf)
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

/// Attaches the owner's uploaded post images and videos to a post, in the order given. Media already
/// on another post, someone else's, or of another kind are refused.
pub async fn attach_to_post(db: &impl ConnectionTrait, owner: i64, post_id: i64, ids: &[String]) -> AppResult<()> {
    if ids.len() > MAX_PER_POST {
        return Err(AppError::bad_input("input.mediaIds", format!("at most {MAX_PER_POST} files per post")));
    }
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    if unique.len() != ids.len() {
        return Err(AppError::bad_input("input.mediaIds", "an upload is listed twice"));
    }
    for (position, id) in ids.iter().enumerate() {
        // The conditions are in the UPDATE itself: two posts racing for one upload cannot both win.
        let attached = media::Entity::update_many()
            .col_expr(media::Column::PostId, sea_orm::sea_query::Expr::value(post_id))
            .col_expr(media::Column::Position, sea_orm::sea_query::Expr::value(position as i32))
            .filter(media::Column::Id.eq(id.clone()))
            .filter(media::Column::OwnerId.eq(owner))
            .filter(media::Column::PostId.is_null())
            .filter(media::Column::Kind.is_in([Kind::PostImage.as_str(), Kind::Video.as_str()]))
            .exec(db)
            .await?;
        if attached.rows_affected != 1 {
            return Err(AppError::bad_input("input.mediaIds", format!("{id} is not one of your unattached uploads")));
        }
    }
    Ok(())
}

/// A public file by id: its row, if it is public (media of a deleted post go with it).
pub async fn public(db: &DatabaseConnection, id: &uuid::Uuid) -> AppResult<Option<media::Model>> {
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

/// Deletes media rows and their files (account erasure, replaced avatars).
pub async fn remove(db: &impl ConnectionTrait, store: &MediaStore, rows: Vec<media::Model>) -> AppResult<()> {
    for m in rows {
        let Ok(id) = uuid::Uuid::parse_str(&m.id) else { continue };
        let area = if m.private { Area::Private } else { Area::Public };
        store.remove(area, &id).await.map_err(AppError::internal)?;
        media::Entity::delete_by_id(m.id).exec(db).await?;
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
    let stored = store(db, media_store, config, user_id, Kind::Avatar, "input.file", file).await?;
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
