use sea_orm::entity::prelude::*;

/// An uploaded file. Public kinds are served from `/media/{id}`; private kinds are sealed on disk: ID
/// photos reach reviewers through an audited route, message photos and videos the conversation's
/// two members through `/media/messages/{id}`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "media")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub owner_id: i64,
    /// AVATAR, POST_IMAGE, VIDEO, ID_PHOTO, MESSAGE_PHOTO or MESSAGE_VIDEO.
    pub kind: String,
    /// The type found in the content itself, not the one the client claimed.
    pub mime: String,
    pub size_bytes: i64,
    pub private: bool,
    pub post_id: Option<i64>,
    /// The private message a MESSAGE_PHOTO or MESSAGE_VIDEO was sent with; null until sent.
    pub message_id: Option<i64>,
    pub position: i32,
    pub created_at: DateTimeUtc,
    /// Pixel size as shown (EXIF rotation applied), read from the header at upload; null when the
    /// header could not tell (WebM, a damaged file).
    pub width: Option<i32>,
    pub height: Option<i32>,
    /// A video's length from its MP4/QuickTime header.
    pub duration_ms: Option<i64>,
    /// A video's poster image (stored beside it), by the type found in its content; null: none.
    pub poster_mime: Option<String>,
    /// The thumbnail job: PENDING, WORKING (claimed until `thumbnail_claimed_until`), READY or
    /// FAILED; null when no thumbnail is made.
    pub thumbnail_status: Option<String>,
    pub thumbnail_attempts: i32,
    pub thumbnail_claimed_until: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
