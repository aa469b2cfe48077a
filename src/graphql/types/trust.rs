//! Types of the trust and privacy features: uploaded media, real-name verification, the staff audit
//! log, the member's own request log, data exports and visitor statistics.

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use entity::{audit_log, data_exports, identity_verifications, media};

use super::{User, load_one};
use crate::authz;
use crate::graphql::ids::{self, Kind};
use crate::graphql::{api_url, loaders, request_info, state, viewer};
use crate::services::identity::{self, Status};
use crate::services::media as media_svc;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::services::media::Kind")]
pub enum MediaKind {
    /// A profile picture (image, up to `MAX_IMAGE_BYTES`).
    Avatar,
    /// An image for a post (up to `MAX_IMAGE_BYTES`).
    PostImage,
    /// A short video for a post (MP4, WebM or QuickTime, up to `MAX_UPLOAD_BYTES`).
    Video,
    /// An identity document photo: private and sealed, never public. Upload it through
    /// `submitIdentityVerification`, not `uploadMedia`.
    IdPhoto,
    /// A photo for a private message (image, up to `MAX_IMAGE_BYTES`): sealed, opened only by the
    /// conversation's two members once sent (`sendMessage(input.mediaIds)`).
    MessagePhoto,
    /// A short video for a private message (up to `MAX_UPLOAD_BYTES`): sealed like a message photo.
    MessageVideo,
}

/// An uploaded file. Its URLs are absolute (`PUBLIC_API_URL` + `/media/...`) and never change, so
/// they may be cached for ever.
pub struct Media(pub media::Model);

impl Media {
    /// An absolute URL of one of this file's routes; null for private files, which have none, but
    /// for the file itself of a message's photo or video (its route checks who asks).
    fn served(&self, ctx: &Context<'_>, suffix: &str) -> async_graphql::Result<Option<String>> {
        if media_svc::Kind::parse(&self.0.kind).for_messages() {
            let path = media_svc::message_path(&self.0.id);
            return suffix.is_empty().then(|| api_url(ctx, &path)).transpose();
        }
        if self.0.private {
            return Ok(None);
        }
        Ok(Some(api_url(ctx, &format!("{}{suffix}", media_svc::public_path(&self.0.id)))?))
    }
}

#[Object]
impl Media {
    /// A global id (`node(id)` resolves it); inputs that take uploads (`mediaIds`, `coverMediaId`)
    /// take this id.
    pub async fn id(&self) -> ID {
        ids::encode_key(Kind::Media, &self.0.id)
    }

    async fn kind(&self) -> MediaKind {
        media_svc::Kind::parse(&self.0.kind).into()
    }

    /// The type found in the content (not the one the client claimed).
    async fn mime_type(&self) -> &str {
        &self.0.mime
    }

    async fn size_bytes(&self) -> f64 {
        self.0.size_bytes as f64
    }

    /// Where the file is served: an absolute URL (`PUBLIC_API_URL/media/{uuid}`). A message's photo
    /// or video is at `PUBLIC_API_URL/media/messages/{uuid}`, which answers only the conversation's
    /// two members (send the session, as for `/graphql`; never cached). Null for ID photos, which
    /// reach reviewers through the verification queue only.
    async fn url(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        self.served(ctx, "")
    }

    /// Width in pixels as displayed (an image's EXIF rotation applied; a video's track size, turned
    /// by its rotation), read from the file's header at upload. Null when the header does not tell:
    /// WebM videos, files the parser does not understand.
    async fn width(&self) -> Option<i32> {
        self.0.width
    }

    /// Height in pixels as displayed; see `width`.
    async fn height(&self) -> Option<i32> {
        self.0.height
    }

    /// A video's length in milliseconds, from its MP4/QuickTime header; null for images and for
    /// videos whose header does not tell (WebM).
    async fn duration_ms(&self) -> Option<i32> {
        self.0.duration_ms.and_then(|ms| i32::try_from(ms).ok())
    }

    /// A small JPEG of the image (or of a video's poster) that fits in 320 x 320 pixels, for lists and
    /// grids. Made in the background after the upload: null until it is ready (usually within a
    /// second; fetch the media again), and null for good when the image could not be decoded, for
    /// videos without a poster, and for private files. Served with the file's own permission.
    async fn thumbnail_url(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        let ready = self.0.thumbnail_status.as_deref() == Some(media_svc::ThumbnailStatus::Ready.as_str());
        if !ready {
            return Ok(None);
        }
        self.served(ctx, "/thumbnail")
    }

    /// A video's poster: the still image its uploader sent with it (`uploadMedia(input.poster)`),
    /// shown before playback. The gateway does not cut frames from videos, so a video uploaded
    /// without a poster has none (null), nor has an image.
    async fn poster_url(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        if self.0.poster_mime.is_none() {
            return Ok(None);
        }
        self.served(ctx, "/poster")
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::services::identity::Status")]
pub enum VerificationStatus {
    Pending,
    Approved,
    Rejected,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::services::identity::DocumentType")]
pub enum DocumentType {
    /// The 18-character resident identity card of mainland China.
    CnResidentId,
}

/// A real-name verification. Its owner and REVIEWERs see it; the full ID number is never shown.
pub struct IdentityVerification(pub identity_verifications::Model, pub NameAudit);

/// Whether the listing that produced a verification already audited reading its full name.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum NameAudit {
    Pending,
    Written,
}

impl IdentityVerification {
    pub fn new(row: identity_verifications::Model) -> Self {
        IdentityVerification(row, NameAudit::Pending)
    }
}

#[Object]
impl IdentityVerification {
    async fn id(&self) -> ID {
        ids::encode(Kind::IdentityVerification, self.0.id)
    }

    async fn status(&self) -> VerificationStatus {
        Status::parse(&self.0.status).into()
    }

    async fn document_type(&self) -> DocumentType {
        identity::DocumentType::parse(&self.0.document_type).into()
    }

    /// The number with all but the first three and last four characters hidden.
    async fn id_number_masked(&self) -> &str {
        &self.0.id_number_masked
    }

    /// The name with all but the first character of each part hidden.
    async fn real_name_masked(&self) -> &str {
        &self.0.real_name_masked
    }

    /// The full name: for its owner, and for REVIEWERs (each read is audited); null for others.
    async fn real_name(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        let Some(v) = viewer(ctx) else { return Ok(None) };
        let st = state(ctx)?;
        let ip = request_info(ctx).and_then(|i| i.ip.as_deref());
        Ok(identity::real_name(&st.db, &st.media, &v, ip, &self.0, self.1 == NameAudit::Written).await?)
    }

    /// Why it was rejected.
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }

    async fn submitted_at(&self) -> DateTime<Utc> {
        self.0.submitted_at
    }

    async fn reviewed_at(&self) -> Option<DateTime<Utc>> {
        self.0.reviewed_at
    }

    /// The member it belongs to (REVIEWERs and the owner).
    async fn user(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        Ok(load_one(&loaders(ctx)?.users, self.0.user_id).await?.map(User))
    }

    /// Links to the document photos, for REVIEWERs only, while the verification is pending or for
    /// `ID_PHOTO_RETENTION_DAYS` after its decision (null otherwise). The route checks the same rule
    /// again and writes every view to the audit log.
    async fn photo_urls(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Vec<String>>> {
        let window = chrono::Duration::days(i64::from(state(ctx)?.config.id_photo_retention_days));
        let now = chrono::Utc::now();
        Ok(authz::can(viewer(ctx).as_ref(), authz::Action::ReadIdPhotos { verification: &self.0, window, now }).then(
            || {
                [&self.0.front_media_id, &self.0.back_media_id]
                    .iter()
                    .map(|id| format!("/media/private/{id}"))
                    .collect()
            },
        ))
    }
}

/// One entry of the staff audit log.
pub struct AuditEntry(pub audit_log::Model);

#[Object]
impl AuditEntry {
    async fn id(&self) -> ID {
        ids::encode(Kind::AuditEntry, self.0.id)
    }

    /// The staff member who acted.
    async fn actor_id(&self) -> ID {
        ids::encode(Kind::User, self.0.actor_id)
    }

    /// Their role at the time.
    async fn actor_role(&self) -> &str {
        &self.0.actor_role
    }

    /// `VIEW_IDENTITY`, `VIEW_REAL_NAME`, `VIEW_ID_PHOTO`, `APPROVE_IDENTITY`, `REJECT_IDENTITY`,
    /// `SET_ROLE`, `BAN_USER`, `UNBAN_USER`, `SEND_SECURITY_NOTICE`, `DELETE_POST`, `DELETE_COMMENT`.
    async fn action(&self) -> &str {
        &self.0.action
    }

    /// Whose data it was about.
    async fn subject_user_id(&self) -> Option<ID> {
        self.0.subject_user_id.map(|id| ids::encode(Kind::User, id))
    }

    /// What was read or decided (`Media:<id>`, `IdentityVerification:<id>` ...).
    async fn target(&self) -> &str {
        &self.0.target
    }

    async fn ip(&self) -> Option<&str> {
        self.0.ip.as_deref()
    }

    /// Why, as the staff member gave it (actions on a member); null for reads.
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }

    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
}

/// One request the member made, as the request log recorded it.
pub struct ActivityEntry(pub crate::services::activity::Logged);

#[Object]
impl ActivityEntry {
    async fn id(&self) -> ID {
        ids::encode(Kind::ActivityEntry, self.0.row.id)
    }

    async fn at(&self) -> DateTime<Utc> {
        self.0.row.at
    }

    async fn duration_ms(&self) -> f64 {
        self.0.row.duration_ms
    }

    /// `http` or `ws`.
    async fn transport(&self) -> &str {
        &self.0.row.transport
    }

    async fn operation(&self) -> &str {
        &self.0.row.operation
    }

    /// Whether this request signed the member in (login or registration).
    async fn sign_in(&self) -> bool {
        self.0.row.sign_in
    }

    async fn ip(&self) -> Option<&str> {
        self.0.row.ip.as_deref()
    }

    async fn user_agent(&self) -> Option<&str> {
        self.0.row.user_agent.as_deref()
    }

    async fn language(&self) -> Option<&str> {
        self.0.row.language.as_deref()
    }

    /// `pc`, `smartphone`, `mobilephone`, `crawler` ... from client hints or the user agent.
    async fn device(&self) -> Option<&str> {
        self.0.row.device.as_deref()
    }

    async fn os(&self) -> Option<&str> {
        self.0.row.os.as_deref()
    }

    async fn browser(&self) -> Option<&str> {
        self.0.row.browser.as_deref()
    }

    /// The third-party app that made this request with the member's authorization (an OAuth
    /// token); null for the member's own requests.
    async fn app(&self) -> Option<ActivityApp> {
        self.0.app.clone().map(ActivityApp)
    }
}

/// The app behind an [`ActivityEntry`].
pub struct ActivityApp(Option<entity::developer_apps::Model>);

#[Object]
impl ActivityApp {
    /// The app's OAuth `client_id` (still given after its developer deleted the app); null once
    /// the developer's account is erased.
    async fn client_id(&self) -> Option<&str> {
        self.0.as_ref().map(|a| a.client_id.as_str())
    }

    /// The app's name; null once the developer's account is erased.
    async fn name(&self) -> Option<&str> {
        self.0.as_ref().map(|a| a.name.as_str())
    }
}

/// A downloadable archive of the member's data.
pub struct DataExport(pub data_exports::Model);

#[Object]
impl DataExport {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }

    /// Download with the same session (cookie or bearer); nobody else can.
    async fn download_url(&self) -> String {
        format!("/media/exports/{}", self.0.id)
    }

    async fn size_bytes(&self) -> f64 {
        self.0.size_bytes as f64
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }
}

/// Unique visitors of one day.
#[derive(SimpleObject)]
pub struct DailyVisitors {
    pub day: NaiveDate,
    pub visitors: i64,
}
