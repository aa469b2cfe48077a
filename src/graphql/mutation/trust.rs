//! Uploads, real-name verification, staff roles and data exports.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject, Upload};

use crate::auth::Role;
use crate::error::AppError;
use crate::graphql::ids::{self, Kind};
use crate::graphql::types::User;
use crate::graphql::types::trust::{DataExport, DocumentType, IdentityVerification, Media, MediaKind};
use crate::graphql::{request_info, require_viewer, staff_note, state};
use crate::services::identity::{self, Decision, Submission};
use crate::services::media::{self as media_svc, Incoming};
use crate::services::{accounts, export};

/// The temporary file of an upload, with its size.
fn incoming(ctx: &Context<'_>, upload: &Upload, field: &str) -> async_graphql::Result<Incoming> {
    let value = upload.value(ctx).map_err(|_| AppError::bad_input(field, "send the file as a multipart upload"))?;
    let size = value.content.metadata().map_err(AppError::internal)?.len();
    Ok(Incoming { file: value.content, size })
}

#[derive(InputObject)]
pub struct UploadMediaInput {
    /// The file, as a GraphQL multipart upload. Its type is checked by content.
    file: Upload,
    /// AVATAR, POST_IMAGE or VIDEO (ID photos go through `submitIdentityVerification`).
    kind: MediaKind,
    /// With a VIDEO only: a still image (JPEG, PNG, WebP or GIF, up to `MAX_IMAGE_BYTES`) shown before
    /// playback, as `Media.posterUrl`; the video's thumbnail is made from it. The gateway cuts no
    /// frames from videos: without a poster, `posterUrl` and `thumbnailUrl` stay null.
    poster: Option<Upload>,
}

#[derive(SimpleObject)]
pub struct UploadMediaPayload {
    media: Media,
}

#[derive(InputObject)]
pub struct SetAvatarInput {
    /// An image, as a GraphQL multipart upload.
    file: Upload,
}

#[derive(SimpleObject)]
pub struct SetAvatarPayload {
    user: User,
}

#[derive(InputObject)]
pub struct SubmitIdentityVerificationInput {
    /// The name as printed on the document, 2 to 64 characters.
    real_name: String,
    /// The document number; for a resident ID, 18 characters with a valid check digit.
    id_number: String,
    #[graphql(default_with = "DocumentType::CnResidentId")]
    document_type: DocumentType,
    /// Photo of the front, a JPEG, PNG or WebP image up to `MAX_IMAGE_BYTES`.
    id_front: Upload,
    /// Photo of the back.
    id_back: Upload,
}

#[derive(SimpleObject)]
pub struct SubmitIdentityVerificationPayload {
    verification: IdentityVerification,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::services::identity::Decision")]
pub enum ReviewDecision {
    Approve,
    Reject,
}

#[derive(InputObject)]
pub struct ReviewIdentityVerificationInput {
    verification_id: ID,
    decision: ReviewDecision,
    /// Required when rejecting: the member reads it.
    reason: Option<String>,
}

#[derive(SimpleObject)]
pub struct ReviewIdentityVerificationPayload {
    verification: IdentityVerification,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::auth::Role")]
pub enum StaffRole {
    User,
    Moderator,
    Reviewer,
    Admin,
}

#[derive(InputObject)]
pub struct SetUserRoleInput {
    user_id: ID,
    role: StaffRole,
    /// Why, for the staff audit log (1 to 500 characters).
    reason: String,
}

#[derive(SimpleObject)]
pub struct SetUserRolePayload {
    user: User,
}

/// Archive formats. JSON is the one machine-readable format today; the input leaves room for more.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum DataExportFormat {
    Json,
}

#[derive(InputObject)]
pub struct RequestDataExportInput {
    #[graphql(default_with = "DataExportFormat::Json")]
    format: DataExportFormat,
}

#[derive(SimpleObject)]
pub struct RequestDataExportPayload {
    export: DataExport,
}

#[derive(Default)]
pub struct TrustMutation;

#[Object]
impl TrustMutation {
    /// Uploads an avatar, post image or short video (a video with an optional poster image); attach
    /// post media with `createPost(mediaIds)` or `updatePost(mediaIds)`. Images are checked for their
    /// pixel size at once (`width`, `height`); the thumbnail follows in the background.
    /// Refusals: `UPLOAD_TOO_LARGE`, `UNSUPPORTED_MEDIA_TYPE` (content is not of the kind),
    /// `TOO_MANY_UPLOADS` (more files than `MAX_UPLOAD_FILES` in one request); an image declaring
    /// more than 10,000 pixels on a side is `UNSUPPORTED_MEDIA_TYPE` too.
    async fn upload_media(
        &self,
        ctx: &Context<'_>,
        input: UploadMediaInput,
    ) -> async_graphql::Result<UploadMediaPayload> {
        let viewer = require_viewer(ctx)?;
        let kind = media_svc::Kind::from(input.kind);
        if kind == media_svc::Kind::IdPhoto {
            return Err(AppError::bad_input("input.kind", "ID photos go through submitIdentityVerification").into());
        }
        let st = state(ctx)?;
        let file = incoming(ctx, &input.file, "input.file")?;
        let poster = match &input.poster {
            Some(p) => Some(("input.poster", incoming(ctx, p, "input.poster")?)),
            None => None,
        };
        let m =
            media_svc::store(&st.db, &st.media, &st.config, viewer.user_id, kind, "input.file", file, poster).await?;
        Ok(UploadMediaPayload { media: Media(m) })
    }

    /// Uploads an image and makes it the viewer's avatar; the previous uploaded avatar is deleted.
    async fn set_avatar(&self, ctx: &Context<'_>, input: SetAvatarInput) -> async_graphql::Result<SetAvatarPayload> {
        let viewer = require_viewer(ctx)?;
        let st = state(ctx)?;
        let file = incoming(ctx, &input.file, "input.file")?;
        let user = media_svc::set_avatar(&st.db, &st.media, &st.config, viewer.user_id, file).await?;
        Ok(SetAvatarPayload { user: User(user) })
    }

    /// Asks for real-name verification (needed to create a board). The name and number are sealed at
    /// rest; the photos are private. A member has at most one pending or approved verification.
    async fn submit_identity_verification(
        &self,
        ctx: &Context<'_>,
        input: SubmitIdentityVerificationInput,
    ) -> async_graphql::Result<SubmitIdentityVerificationPayload> {
        let viewer = require_viewer(ctx)?;
        let st = state(ctx)?;
        let submission = Submission {
            real_name: input.real_name,
            id_number: input.id_number,
            document_type: input.document_type.into(),
            front: incoming(ctx, &input.id_front, "input.idFront")?,
            back: incoming(ctx, &input.id_back, "input.idBack")?,
        };
        let row = identity::submit(&st.db, &st.media, &st.config, &viewer, submission).await?;
        Ok(SubmitIdentityVerificationPayload { verification: IdentityVerification::new(row) })
    }

    /// REVIEWER or ADMIN: approves or rejects a pending verification (audited; the member is
    /// notified). Nobody reviews their own.
    async fn review_identity_verification(
        &self,
        ctx: &Context<'_>,
        input: ReviewIdentityVerificationInput,
    ) -> async_graphql::Result<ReviewIdentityVerificationPayload> {
        let viewer = require_viewer(ctx)?;
        let id = ids::decode(Kind::IdentityVerification, &input.verification_id, "input.verificationId")?;
        let st = state(ctx)?;
        let ip = request_info(ctx).and_then(|i| i.ip.as_deref());
        let decision = Decision::from(input.decision);
        let row = identity::review(&st.db, &st.broker, &viewer, ip, id, decision, input.reason).await?;
        Ok(ReviewIdentityVerificationPayload { verification: IdentityVerification::new(row) })
    }

    /// ADMIN: gives a member a role (USER, MODERATOR, REVIEWER, ADMIN); audited.
    async fn set_user_role(
        &self,
        ctx: &Context<'_>,
        input: SetUserRoleInput,
    ) -> async_graphql::Result<SetUserRolePayload> {
        let viewer = require_viewer(ctx)?;
        let id = ids::decode(Kind::User, &input.user_id, "input.userId")?;
        let note = staff_note(ctx, Some(&input.reason));
        let st = state(ctx)?;
        let user = accounts::set_role(&st.db, &st.broker, &viewer, note, id, Role::from(input.role)).await?;
        Ok(SetUserRolePayload { user: User(user) })
    }

    /// Builds a JSON archive of everything the service holds about the viewer, downloadable by them
    /// alone at `downloadUrl` until it expires (`DATA_EXPORT_TTL_HOURS`). One per 10 minutes.
    async fn request_data_export(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "RequestDataExportInput { format: DataExportFormat::Json }")]
        input: RequestDataExportInput,
    ) -> async_graphql::Result<RequestDataExportPayload> {
        let DataExportFormat::Json = input.format;
        let viewer = require_viewer(ctx)?;
        let st = state(ctx)?;
        let row = export::request(&st.db, &st.media, &viewer, st.config.data_export_ttl_hours).await?;
        Ok(RequestDataExportPayload { export: DataExport(row) })
    }
}
