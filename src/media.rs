//! Uploaded files behind one storage interface: public media (avatars, post images, videos) as they
//! were uploaded, and private files (ID photos, message photos and videos, data exports) sealed with
//! [`crate::seal`]. The backend is the local folder `MEDIA_DIR` (the default) or S3-compatible object
//! storage (`MEDIA_STORE_URL=s3://bucket/prefix`), both through the `object_store` crate; every
//! instance behind a load balancer then reads what any of them wrote, with no shared file system.
//!
//! ```text
//! public/<uuid>      served by GET /media/<uuid> to anyone
//! thumbnails/<uuid>  a public image's thumbnail (JPEG), GET /media/<uuid>/thumbnail
//! posters/<uuid>     a video's poster image, GET /media/<uuid>/poster
//! private/<uuid>     sealed; only through the access-checked routes
//! exports/<uuid>     sealed; only its owner downloads it
//! ```
//! Thumbnails and posters are derived from (or attached to) a public file and served under the same
//! check as it; they are deleted with it. Every download goes through the gateway (proxied), so one
//! policy decides who sees what on either backend: sealed files could not be presigned anyway (the
//! storage holds only ciphertext), and a presigned public URL would outlive a deletion.
//! Names are server-made UUIDs, never client file names, so nothing a client sends becomes a key.
//! Both backends write atomically: a reader never sees half a file.

pub mod probe;
pub mod thumbnail;
mod transport;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::path::Path as Key;
use object_store::{GetOptions, GetRange, GetResult, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};

use crate::seal::{FileLayout, SealError, Sealer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Public,
    Thumbnails,
    Posters,
    Private,
    Exports,
}

impl Area {
    const ALL: [Area; 5] = [Area::Public, Area::Thumbnails, Area::Posters, Area::Private, Area::Exports];

    /// The area's folder (and key prefix) in the store.
    pub fn dir(self) -> &'static str {
        match self {
            Area::Public => "public",
            Area::Thumbnails => "thumbnails",
            Area::Posters => "posters",
            Area::Private => "private",
            Area::Exports => "exports",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("media store: {0}")]
    Io(#[from] std::io::Error),
    #[error("media store: {0}")]
    Object(#[from] object_store::Error),
    #[error("media store: {0}")]
    Seal(#[from] SealError),
    /// No room to open another sealed file now ([`MediaStore::open_sealed`]).
    #[error("media store: sealed files take all the room for unsealed files")]
    Busy,
}

impl StoreError {
    /// What a request sees: a retryable SERVICE_UNAVAILABLE when the store is busy, an internal
    /// error (logged, never shown) otherwise.
    pub fn into_app(self) -> crate::error::AppError {
        match self {
            StoreError::Busy => crate::error::AppError::Unavailable { retry_after_secs: 1 },
            other => crate::error::AppError::internal(other),
        }
    }
}

/// How long a download waits for room to unseal its file before it is answered 503.
const UNSEAL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Sealed files one member may have open for downloads at once; as many more may wait their turn,
/// and beyond those a download is refused at once. Without it one member whose player stops reading
/// on many connections would hold all the room and turn every other member's download away; and
/// with no bound on the waiting, their queued requests would hold the server's request slots.
pub const READER_FILES: u32 = 8;

/// Segments a download of a sealed file reads from storage at once (512 KiB).
const READ_SEGMENTS: u64 = 8;
/// The room for unsealed files a download of a segmented file holds, in KiB: a read's sealed and
/// plain bytes, and the previous read's plain bytes still on their way to the client.
const STREAM_ROOM_KIB: u32 = (4 * READ_SEGMENTS * crate::seal::SEGMENT / 1024) as u32;

/// A sealed file opened for a download: its plain length, and what it takes to stream any range of
/// it. It holds its share of the room for unsealed files until its stream is dropped.
pub struct SealedFile {
    len: u64,
    source: Source,
    room: Room,
}

enum Source {
    /// Sealed whole by an earlier version: unsealed in memory at once.
    Whole(Bytes),
    /// Sealed in segments: each read unseals only the segments it serves.
    Segmented(Segmented),
}

struct Segmented {
    backend: Arc<dyn ObjectStore>,
    key: Key,
    /// The version laid out: a file rewritten meanwhile (`reseal`) fails the read instead of being
    /// read with another file's layout.
    e_tag: Option<String>,
    layout: FileLayout,
    sealer: Arc<Sealer>,
    aad: String,
}

impl SealedFile {
    /// The plain file's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The plain bytes of `range` (within the file: the caller checks it against [`Self::len`]),
    /// read and unsealed a few segments at a time as the connection takes them.
    pub fn stream(
        self,
        range: std::ops::RangeInclusive<u64>,
    ) -> futures_util::stream::BoxStream<'static, Result<Bytes, StoreError>> {
        let (start, end) = (*range.start(), *range.end());
        match self.source {
            Source::Whole(bytes) => {
                // The part is copied and the whole file dropped at once; the room stays held until
                // the part was handed on (the stream's second poll).
                let part = usize::try_from(start)
                    .ok()
                    .zip(usize::try_from(end).ok())
                    .filter(|(s, e)| s <= e && *e < bytes.len())
                    .map(|(s, e)| Bytes::copy_from_slice(&bytes[s..=e]))
                    .ok_or(StoreError::Seal(SealError::Corrupt));
                drop(bytes);
                Box::pin(futures_util::stream::unfold((Some(part), Some(self.room)), |(part, room)| async move {
                    part.map(|p| (p, (None, room)))
                }))
            }
            Source::Segmented(file) => {
                let state = (file, start, self.room);
                Box::pin(futures_util::stream::try_unfold(state, move |(file, next, room)| async move {
                    if next > end {
                        return Ok(None);
                    }
                    let segment = crate::seal::SEGMENT;
                    let last = end.min((next / segment + READ_SEGMENTS) * segment - 1);
                    let (first, sealed) = file.layout.sealed_range(next, last);
                    let options = GetOptions {
                        range: Some(GetRange::Bounded(sealed)),
                        if_match: file.e_tag.clone(),
                        ..GetOptions::default()
                    };
                    let bytes = file.backend.get_opts(&file.key, options).await?.bytes().await?;
                    let plain = Bytes::from(file.sealer.open_segments(&file.layout, first, &bytes, &file.aad)?);
                    drop(bytes);
                    let skip = usize::try_from(next - first * segment).map_err(|_| SealError::Corrupt)?;
                    let take = usize::try_from(last - next + 1).map_err(|_| SealError::Corrupt)?;
                    if plain.len() < skip + take {
                        return Err(StoreError::Seal(SealError::Corrupt));
                    }
                    Ok(Some((plain.slice(skip..skip + take), (file, last + 1, room))))
                }))
            }
        }
    }
}

/// A sealed file opened whole for one download. It holds its share of the room for unsealed files
/// (`MAX_UNSEALED_MIB`) until it is dropped: keep it with the response body.
pub struct Unsealed {
    pub bytes: Vec<u8>,
    pub room: Room,
}

/// A download's share of the room for unsealed files, and its reader's turn: both are given back
/// when it is dropped.
pub struct Room {
    _share: tokio::sync::OwnedSemaphorePermit,
    _turn: Turn,
}

/// Each reader's turns at open files ([`READER_FILES`]): an entry lives while its reader holds or
/// waits for a turn.
#[derive(Debug, Default)]
struct Readers(std::sync::Mutex<std::collections::HashMap<i64, Arc<tokio::sync::Semaphore>>>);

impl Readers {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<i64, Arc<tokio::sync::Semaphore>>> {
        // Nothing panics while holding it; should something, the map is still consistent.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn turn(self: &Arc<Self>, reader: i64) -> Result<Turn, StoreError> {
        let mut turn = {
            let mut readers = self.lock();
            let turns =
                readers.entry(reader).or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(READER_FILES as usize)));
            // Every turn held or awaited holds a clone; the map holds one more.
            if Arc::strong_count(turns) > 2 * READER_FILES as usize {
                return Err(StoreError::Busy);
            }
            Turn { turns: Some(turns.clone()), holding: false, reader, readers: self.clone() }
        };
        // Dropped while it waits (the wait timed out, the client left), the turn still cleans up.
        if let Some(turns) = &turn.turns {
            turns.acquire().await.map_err(|_| StoreError::Busy)?.forget();
            turn.holding = true;
        }
        Ok(turn)
    }
}

struct Turn {
    /// The reader's queue. Clones are only taken and dropped under the map's lock, so the count
    /// of references tells whether any other turn holds or awaits it.
    turns: Option<Arc<tokio::sync::Semaphore>>,
    holding: bool,
    reader: i64,
    readers: Arc<Readers>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        if self.holding
            && let Some(turns) = &self.turns
        {
            turns.add_permits(1);
        }
        let mut readers = self.readers.lock();
        drop(self.turns.take());
        if readers.get(&self.reader).is_some_and(|turns| Arc::strong_count(turns) == 1) {
            readers.remove(&self.reader);
        }
    }
}

/// Where media live: `MEDIA_STORE_URL` when set, else the local folder.
#[derive(Debug, Clone)]
pub enum Location {
    Local(std::path::PathBuf),
    /// S3-compatible storage. Settings left unset fall back to the standard `AWS_*` variables and the
    /// instance's role (`AmazonS3Builder::from_env`).
    S3 {
        bucket: String,
        prefix: String,
        endpoint: Option<String>,
        region: Option<String>,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
        allow_http: bool,
        virtual_hosted: bool,
    },
}

impl Location {
    /// The configured location: `s3://bucket[/prefix]` from `MEDIA_STORE_URL`, else `MEDIA_DIR`.
    pub fn from_config(config: &crate::config::Config) -> Result<Location, String> {
        let Some(url) = config.media_store_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(Location::Local(config.media_dir.clone()));
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("MEDIA_STORE_URL must be s3://bucket[/prefix], not {url}"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err("MEDIA_STORE_URL names no bucket (s3://bucket[/prefix])".into());
        }
        Ok(Location::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            endpoint: config.s3_endpoint.clone(),
            region: config.s3_region.clone(),
            access_key_id: config.s3_access_key_id.clone(),
            secret_access_key: config.s3_secret_access_key.clone(),
            allow_http: config.s3_allow_http,
            virtual_hosted: config.s3_virtual_hosted,
        })
    }

    fn describe(&self) -> String {
        match self {
            Location::Local(dir) => dir.display().to_string(),
            Location::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// The part size of multipart uploads (S3's minimum is 5 MiB); smaller files go up in one request.
const PART_BYTES: usize = 8 * 1024 * 1024;
/// Parts of one upload sent at the same time.
const PARTS_IN_FLIGHT: usize = 2;

/// What a download of a served file found: its size and version, and the bytes asked for.
pub struct Download {
    pub meta: ObjectMeta,
    /// The byte range returned (the whole file when none was asked for).
    pub range: std::ops::Range<u64>,
    pub body: futures_util::stream::BoxStream<'static, Result<Bytes, StoreError>>,
}

/// The media storage and the keys that seal its private part.
#[derive(Debug, Clone)]
pub struct MediaStore {
    backend: Arc<dyn ObjectStore>,
    /// For logs and errors: where the files are.
    location: Arc<str>,
    sealer: Arc<Sealer>,
    /// Wakes this instance's thumbnail worker when an upload queued a thumbnail, so it is made at
    /// once rather than at the next poll (the poll is for what other instances or a crash left).
    thumbnails_due: Arc<tokio::sync::Notify>,
    /// Room for sealed files held whole in memory (read, then unsealed) at once, in KiB: a burst
    /// of downloads of large message videos waits for room instead of exhausting memory.
    unsealed: Arc<tokio::sync::Semaphore>,
    unsealed_kib: u32,
    readers: Arc<Readers>,
}

impl MediaStore {
    /// Opens the storage (creating the local folder if needed). S3 is not contacted here: a bucket
    /// that is down or misconfigured shows in the first upload or download, and in the logs.
    pub fn open(location: &Location, sealer: Arc<Sealer>, max_unsealed_mib: u32) -> Result<MediaStore, String> {
        let backend: Arc<dyn ObjectStore> = match location {
            Location::Local(root) => {
                for area in Area::ALL {
                    std::fs::create_dir_all(root.join(area.dir())).map_err(|e| e.to_string())?;
                }
                Arc::new(object_store::local::LocalFileSystem::new_with_prefix(root).map_err(|e| e.to_string())?)
            }
            Location::S3 {
                bucket,
                prefix,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
                allow_http,
                virtual_hosted,
            } => {
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_http_connector(transport::Transport::new(*allow_http)?)
                    .with_bucket_name(bucket)
                    .with_allow_http(*allow_http)
                    .with_virtual_hosted_style_request(*virtual_hosted);
                if let Some(e) = endpoint {
                    b = b.with_endpoint(e);
                }
                if let Some(r) = region {
                    b = b.with_region(r);
                }
                if let Some(k) = access_key_id {
                    b = b.with_access_key_id(k);
                }
                if let Some(k) = secret_access_key {
                    b = b.with_secret_access_key(k);
                }
                let s3 = b.build().map_err(|e| e.to_string())?;
                if prefix.is_empty() {
                    Arc::new(s3)
                } else {
                    Arc::new(object_store::prefix::PrefixStore::new(s3, prefix.as_str()))
                }
            }
        };
        let unsealed_kib = max_unsealed_mib.max(1).saturating_mul(1024);
        Ok(MediaStore {
            backend,
            location: location.describe().into(),
            sealer,
            thumbnails_due: Arc::new(tokio::sync::Notify::new()),
            unsealed: Arc::new(tokio::sync::Semaphore::new(unsealed_kib as usize)),
            unsealed_kib,
            readers: Arc::default(),
        })
    }

    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// Where the files are, for logs.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Tells the thumbnail worker there is work (a permit is kept if it is busy).
    pub fn wake_thumbnailer(&self) {
        self.thumbnails_due.notify_one();
    }

    /// Resolves when [`MediaStore::wake_thumbnailer`] was called.
    pub async fn thumbnails_due(&self) {
        self.thumbnails_due.notified().await;
    }

    /// The key of a file; `id` must be a UUID (callers parse it first).
    fn key(area: Area, id: &uuid::Uuid) -> Key {
        Key::from_iter([area.dir(), id.hyphenated().to_string().as_str()])
    }

    /// What a sealed file is bound to: its area and id, so files cannot be swapped.
    fn aad(area: Area, id: &uuid::Uuid) -> String {
        format!("{}:{}", area.dir(), id.hyphenated())
    }

    /// Writes a derived file (a thumbnail).
    pub async fn put_bytes(&self, area: Area, id: &uuid::Uuid, bytes: &[u8]) -> Result<(), StoreError> {
        self.backend.put(&Self::key(area, id), PutPayload::from(Bytes::copy_from_slice(bytes))).await?;
        Ok(())
    }

    /// Reads a served file whole (a thumbnail's source: an image, bounded by `MAX_IMAGE_BYTES`).
    pub async fn read(&self, area: Area, id: &uuid::Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        match self.backend.get(&Self::key(area, id)).await {
            Ok(got) => Ok(Some(got.bytes().await?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Copies an uploaded temporary file into a served area (public files, posters), never whole in
    /// memory: a file larger than one part goes up as a multipart upload, part by part, and a
    /// failed one is aborted so the storage keeps no parts.
    pub async fn put_from(&self, area: Area, id: &uuid::Uuid, source: std::fs::File) -> Result<(), StoreError> {
        use tokio::io::AsyncReadExt;
        let key = Self::key(area, id);
        let mut src = tokio::fs::File::from_std(source);
        let size = src.metadata().await?.len();
        if size <= PART_BYTES as u64 {
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            src.read_to_end(&mut bytes).await?;
            self.backend.put(&key, PutPayload::from(bytes)).await?;
            return Ok(());
        }
        let upload = self.backend.put_multipart(&key).await?;
        let mut parts = object_store::WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut chunk = vec![0u8; 256 * 1024];
        let sent: Result<(), StoreError> = async {
            loop {
                let n = src.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(());
                }
                parts.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                parts.write(&chunk[..n]);
            }
        }
        .await;
        match sent {
            Ok(()) => {
                parts.finish().await?;
                Ok(())
            }
            Err(e) => {
                if let Err(abort) = parts.abort().await {
                    tracing::warn!(error = %abort, "media store: a failed multipart upload could not be aborted");
                }
                Err(e)
            }
        }
    }

    /// Seals `bytes` and stores them in a private area.
    pub async fn put_sealed(&self, area: Area, id: &uuid::Uuid, bytes: &[u8]) -> Result<(), StoreError> {
        let sealed = self.sealer.seal_bytes(bytes, &Self::aad(area, id))?;
        self.backend.put(&Self::key(area, id), PutPayload::from(sealed)).await?;
        Ok(())
    }

    /// Seals an upload spooled to disk into a private area, a segment at a time into a second spool
    /// file that is then stored as [`Self::put_from`] stores public files (one request up to 8 MiB,
    /// else 8 MiB parts, two in flight): a 50 MiB message video takes 64 KiB to seal and at most
    /// 24 MiB to store, not its plain and sealed copies (100 MiB), and the sealing yields to other
    /// tasks between segments.
    pub async fn put_sealed_from(&self, area: Area, id: &uuid::Uuid, source: std::fs::File) -> Result<(), StoreError> {
        use crate::seal::SEGMENT;
        use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
        let mut sealing = self.sealer.seal_segments(&Self::aad(area, id))?;
        let mut plain = tokio::fs::File::from_std(source);
        plain.rewind().await?;
        let size = plain.metadata().await?.len();
        let spool = tokio::task::spawn_blocking(tempfile::tempfile).await.map_err(std::io::Error::other)??;
        let mut sealed = tokio::io::BufWriter::new(tokio::fs::File::from_std(spool));
        sealed.write_all(&sealing.header).await?;
        let segments = size.div_ceil(SEGMENT).max(1);
        let mut segment = vec![0u8; SEGMENT as usize];
        for i in 0..segments {
            let len = usize::try_from(SEGMENT.min(size - i * SEGMENT)).unwrap_or(0);
            plain.read_exact(&mut segment[..len]).await?;
            sealed.write_all(&sealing.seal(&segment[..len], i + 1 == segments)?).await?;
        }
        sealed.flush().await?;
        let mut sealed = sealed.into_inner();
        sealed.seek(std::io::SeekFrom::Start(0)).await?;
        self.put_from(area, id, sealed.into_std().await).await
    }

    /// Opens a sealed file; `None` when there is no such file.
    pub async fn get_sealed(&self, area: Area, id: &uuid::Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        match self.read_raw(area, id).await? {
            Some(sealed) => Ok(Some(self.sealer.open_bytes(&sealed, &Self::aad(area, id))?)),
            None => Ok(None),
        }
    }

    /// Opens a sealed file for `reader`'s download once there is room for it (its sealed and its
    /// plain copy, a file larger than all the room taking all of it) and a turn for its reader,
    /// waiting up to [`UNSEAL_WAIT`]; `None` when there is no such file, [`StoreError::Busy`] when
    /// no room came.
    pub async fn open_sealed(&self, area: Area, id: &uuid::Uuid, reader: i64) -> Result<Option<Unsealed>, StoreError> {
        let Some(meta) = self.head(area, id).await? else { return Ok(None) };
        let kib = u32::try_from(meta.size.div_ceil(1024).saturating_mul(2)).unwrap_or(u32::MAX);
        let room = self.room(reader, kib).await?;
        Ok(self.get_sealed(area, id).await?.map(|bytes| Unsealed { bytes, room }))
    }

    /// Opens a sealed file for streaming downloads; `None` when there is no such file,
    /// [`StoreError::Busy`] when no room came within [`UNSEAL_WAIT`]. A segmented file costs a read
    /// of its first bytes here and holds [`STREAM_ROOM_KIB`]; one sealed whole by an earlier
    /// version is unsealed at once, as [`Self::open_sealed`] does.
    pub async fn open_sealed_file(
        &self,
        area: Area,
        id: &uuid::Uuid,
        reader: i64,
    ) -> Result<Option<SealedFile>, StoreError> {
        let key = Self::key(area, id);
        let Some((head, meta)) = self.read_head(area, id).await? else { return Ok(None) };
        let Some(layout) = FileLayout::read(&head, meta.size)? else {
            return Ok(self.open_sealed(area, id, reader).await?.map(|whole| SealedFile {
                len: whole.bytes.len() as u64,
                source: Source::Whole(Bytes::from(whole.bytes)),
                room: whole.room,
            }));
        };
        if layout.plain_len() == 0 {
            // Nothing to stream, but the one (empty) segment is still checked: a file cut down to
            // a header and a tag must not pass for an empty one.
            let whole = self.read_raw(area, id).await?.unwrap_or_default();
            self.sealer.open_bytes(&whole, &Self::aad(area, id))?;
        }
        let room = self.room(reader, STREAM_ROOM_KIB).await?;
        let source = Source::Segmented(Segmented {
            backend: self.backend.clone(),
            key,
            e_tag: meta.e_tag.clone(),
            sealer: self.sealer.clone(),
            aad: Self::aad(area, id),
            layout: layout.clone(),
        });
        Ok(Some(SealedFile { len: layout.plain_len(), source, room }))
    }

    /// `reader`'s turn, then `kib` of the room for unsealed files (at most all of it), waiting up
    /// to [`UNSEAL_WAIT`] for both. The turn comes first, so a reader queued behind their own
    /// downloads holds no room.
    async fn room(&self, reader: i64, kib: u32) -> Result<Room, StoreError> {
        let wanted = kib.clamp(1, self.unsealed_kib);
        let both = async {
            let turn = self.readers.turn(reader).await?;
            let share = self.unsealed.clone().acquire_many_owned(wanted).await.map_err(|_| StoreError::Busy)?;
            Ok(Room { _share: share, _turn: turn })
        };
        tokio::time::timeout(UNSEAL_WAIT, both).await.map_err(|_| StoreError::Busy)?
    }

    async fn read_raw(&self, area: Area, id: &uuid::Uuid) -> Result<Option<Bytes>, StoreError> {
        match self.backend.get(&Self::key(area, id)).await {
            Ok(got) => Ok(Some(got.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A served file, or the one byte range of it a client asked for; `None` when there is no such
    /// file. A range outside the file is `Err(Unsatisfiable(size))`.
    pub async fn download(
        &self,
        area: Area,
        id: &uuid::Uuid,
        range: Option<std::ops::RangeInclusive<u64>>,
    ) -> Result<Option<Download>, StoreError> {
        let key = Self::key(area, id);
        let options = GetOptions {
            range: range.map(|r| GetRange::Bounded(*r.start()..r.end().saturating_add(1))),
            ..GetOptions::default()
        };
        let got: GetResult = match self.backend.get_opts(&key, options).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let (meta, range) = (got.meta.clone(), got.range.clone());
        let body = got.into_stream().map_err(StoreError::from);
        Ok(Some(Download { meta, range, body: Box::pin(body) }))
    }

    /// The size and version of a served file; `None` when there is no such file.
    pub async fn head(&self, area: Area, id: &uuid::Uuid) -> Result<Option<ObjectMeta>, StoreError> {
        match self.backend.head(&Self::key(area, id)).await {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a file; a file already gone is not an error (erasure may be retried).
    pub async fn remove(&self, area: Area, id: &uuid::Uuid) -> Result<(), StoreError> {
        match self.backend.delete(&Self::key(area, id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A sealed file's first bytes (its header, at most [`crate::seal::MAX_HEADER`]) with the
    /// object's size and version, in one request.
    async fn read_head(&self, area: Area, id: &uuid::Uuid) -> Result<Option<(Bytes, ObjectMeta)>, StoreError> {
        let options =
            GetOptions { range: Some(GetRange::Bounded(0..crate::seal::MAX_HEADER)), ..GetOptions::default() };
        let got = match self.backend.get_opts(&Self::key(area, id), options).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let meta = got.meta.clone();
        Ok(Some((got.bytes().await?, meta)))
    }

    /// Re-seals one private file with the current key, in segments, if another key sealed it or it
    /// was sealed whole; true if it did. A file already segmented under the current key costs a
    /// read of its header only.
    pub async fn reseal(&self, area: Area, id: &uuid::Uuid) -> Result<bool, StoreError> {
        let Some((head, meta)) = self.read_head(area, id).await? else { return Ok(false) };
        let segmented = FileLayout::read(&head, meta.size).ok().flatten().is_some();
        if segmented && Sealer::key_id_of_bytes(&head) == Some(self.sealer.current_key_id()) {
            return Ok(false);
        }
        let Some(sealed) = self.read_raw(area, id).await? else { return Ok(false) };
        let plain = self.sealer.open_bytes(&sealed, &Self::aad(area, id))?;
        self.put_sealed(area, id, &plain).await?;
        Ok(true)
    }

    /// Ids of every file in an area (for re-sealing and for tests that check erasure).
    pub async fn list(&self, area: Area) -> Result<Vec<uuid::Uuid>, StoreError> {
        let prefix = Key::from(area.dir());
        let listed: Vec<ObjectMeta> = self.backend.list(Some(&prefix)).try_collect().await?;
        Ok(listed.iter().filter_map(|m| m.location.filename().and_then(|n| uuid::Uuid::parse_str(n).ok())).collect())
    }
}

/// Loads the sealing keys: `SEAL_KEYS` when set; otherwise a development key kept in
/// `SEAL_KEY_FILE`, made on first start, so `cargo run` works on a bare machine.
pub fn load_sealer(config: &crate::config::Config) -> Result<Sealer, String> {
    if !config.seal_keys.is_empty() {
        return Sealer::from_entries(&config.seal_keys).map_err(|e| e.to_string());
    }
    if config.redis_url.is_some() {
        // Several instances: each would make its own key file, and what one sealed the others
        // could not open.
        tracing::error!("REDIS_URL is set but SEAL_KEYS is not: every instance must share the same SEAL_KEYS");
    }
    let path = &config.seal_key_file;
    let entry = match std::fs::read_to_string(path) {
        Ok(s) => s.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let entry = Sealer::generate_entry("dev").map_err(|e| e.to_string())?;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("SEAL_KEY_FILE {}: {e}", path.display()))?;
            }
            tracing::warn!(
                path = %path.display(),
                "SEAL_KEYS is not set: sealing with a development key kept in SEAL_KEY_FILE; set SEAL_KEYS in production"
            );
            match write_private_file(path, &entry) {
                Ok(()) => entry,
                // Another process started at the same moment and wrote it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read_to_string(path)
                    .map_err(|e| format!("SEAL_KEY_FILE {}: {e}", path.display()))?
                    .trim()
                    .to_string(),
                Err(e) => return Err(format!("SEAL_KEY_FILE {}: {e}", path.display())),
            }
        }
        Err(e) => return Err(format!("SEAL_KEY_FILE {}: {e}", path.display())),
    };
    let entries: Vec<String> = entry.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    Sealer::from_entries(&entries).map_err(|e| e.to_string())
}

/// Creates `path` with `contents` (owner-only permissions) in one step: written under a temporary
/// name, then hard-linked into place, which fails with `AlreadyExists` if another process won.
fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(&tmp)?.write_all(contents.as_bytes())?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    linked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sealed_files_open_only_while_there_is_room_for_them() {
        let dir = tempfile::tempdir().unwrap();
        let keys = vec![Sealer::generate_entry("t").unwrap()];
        let sealer = Arc::new(Sealer::from_entries(&keys).unwrap());
        // 1 MiB of room; a 700 KiB file needs its sealed and plain copies, so it takes all of it.
        let store = MediaStore::open(&Location::Local(dir.path().to_path_buf()), sealer, 1).unwrap();
        let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        store.put_sealed(Area::Private, &a, &vec![1u8; 700 * 1024]).await.unwrap();
        store.put_sealed(Area::Private, &b, b"small").await.unwrap();
        let first = store.open_sealed(Area::Private, &a, 1).await.unwrap().unwrap();
        assert_eq!(first.bytes.len(), 700 * 1024);
        // While it is held, another download waits, then is told to come back, whoever asks.
        assert!(matches!(store.open_sealed(Area::Private, &b, 2).await, Err(StoreError::Busy)));
        drop(first);
        let second = store.open_sealed(Area::Private, &b, 2).await.unwrap().unwrap();
        assert_eq!(second.bytes, b"small");
        assert!(store.open_sealed(Area::Private, &uuid::Uuid::new_v4(), 2).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_spooled_upload_seals_segment_by_segment_as_if_sealed_whole() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let keys = vec![Sealer::generate_entry("t").unwrap()];
        let sealer = Arc::new(Sealer::from_entries(&keys).unwrap());
        let store = MediaStore::open(&Location::Local(dir.path().to_path_buf()), sealer.clone(), 256).unwrap();
        let segment = crate::seal::SEGMENT as usize;
        // Up to a file stored in parts (the sealed file is larger than its plain bytes).
        for size in [0, 1, segment - 1, segment, segment + 1, 3 * segment, 3 * segment + 17, PART_BYTES] {
            let plain: Vec<u8> = (0..size).map(|i| (i % 249) as u8).collect();
            let mut spooled = tempfile::tempfile().unwrap();
            spooled.write_all(&plain).unwrap();
            std::io::Seek::rewind(&mut spooled).unwrap();
            let id = uuid::Uuid::new_v4();
            store.put_sealed_from(Area::Private, &id, spooled).await.unwrap();
            let stored = store.read_raw(Area::Private, &id).await.unwrap().unwrap();
            let whole = sealer.seal_bytes(&plain, &MediaStore::aad(Area::Private, &id)).unwrap();
            // Same layout (the salt differs), no plain run stored, and it opens to the upload.
            assert_eq!(stored.len(), whole.len(), "{size}");
            assert_eq!(&stored[..4], b"ECS2");
            if size >= 64 {
                assert!(!stored.windows(64).any(|w| w == &plain[size - 64..]), "plain bytes stored");
            }
            assert_eq!(store.get_sealed(Area::Private, &id).await.unwrap().unwrap(), plain, "{size}");
            let file = store.open_sealed_file(Area::Private, &id, 1).await.unwrap().unwrap();
            assert_eq!(file.len(), size as u64);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_has_only_so_many_files_open_and_others_are_not_kept_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let keys = vec![Sealer::generate_entry("t").unwrap()];
        let sealer = Arc::new(Sealer::from_entries(&keys).unwrap());
        let store = MediaStore::open(&Location::Local(dir.path().to_path_buf()), sealer, 256).unwrap();
        let id = uuid::Uuid::new_v4();
        store.put_sealed(Area::Private, &id, &vec![7u8; 200 * 1024]).await.unwrap();
        let (greedy, other) = (1, 2);
        let mut open = Vec::new();
        for _ in 0..READER_FILES {
            open.push(store.open_sealed_file(Area::Private, &id, greedy).await.unwrap().unwrap());
        }
        // Plenty of room is left, but not for this reader: the next one waits, then is refused.
        assert!(matches!(store.open_sealed_file(Area::Private, &id, greedy).await, Err(StoreError::Busy)));
        let theirs = store.open_sealed_file(Area::Private, &id, other).await.unwrap().unwrap();
        assert_eq!(theirs.len(), 200 * 1024);
        // One file done, one more may open.
        open.pop();
        open.push(store.open_sealed_file(Area::Private, &id, greedy).await.unwrap().unwrap());
        // As many more may wait; beyond those a download is refused without waiting.
        let waiting: Vec<_> = (0..READER_FILES)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(
                    async move { store.open_sealed_file(Area::Private, &id, greedy).await.map(|f| f.is_some()) },
                )
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert!(waiting.iter().all(|w| !w.is_finished()), "they wait for a turn");
        let started = tokio::time::Instant::now();
        assert!(matches!(store.open_sealed_file(Area::Private, &id, greedy).await, Err(StoreError::Busy)));
        assert_eq!(started.elapsed(), std::time::Duration::ZERO, "refused at once");
        // The waiting get their turns as soon as they are given back.
        drop(open);
        for w in waiting {
            assert!(matches!(w.await.unwrap(), Ok(true)));
        }
        // Once every file is closed nothing is kept about the reader, also when a wait timed out.
        let held: Vec<_> = {
            let mut held = Vec::new();
            for _ in 0..READER_FILES {
                held.push(store.open_sealed_file(Area::Private, &id, greedy).await.unwrap().unwrap());
            }
            held
        };
        assert!(matches!(store.open_sealed_file(Area::Private, &id, greedy).await, Err(StoreError::Busy)));
        drop((held, theirs));
        assert!(store.readers.lock().is_empty());
    }
}
