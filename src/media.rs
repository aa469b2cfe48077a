//! Files on local disk under `MEDIA_DIR`: public media (avatars, post images, videos) as they were
//! uploaded, and private files (ID photos, data exports) sealed with [`crate::seal`].
//!
//! ```text
//! MEDIA_DIR/public/<uuid>      served by GET /media/<uuid> to anyone
//! MEDIA_DIR/thumbnails/<uuid>  a public image's thumbnail (JPEG), GET /media/<uuid>/thumbnail
//! MEDIA_DIR/posters/<uuid>     a video's poster image, GET /media/<uuid>/poster
//! MEDIA_DIR/private/<uuid>     sealed; only through the access-checked, audited route
//! MEDIA_DIR/exports/<uuid>     sealed; only its owner downloads it
//! ```
//! Thumbnails and posters are derived from (or attached to) a public file and served under the same
//! check as it; they are deleted with it.
//! Names are server-made UUIDs, never client file names, so no path a client sends reaches the
//! file system. Writes go to a temporary name first and are renamed into place, so a reader never
//! sees half a file.

pub mod probe;
pub mod thumbnail;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::seal::{SealError, Sealer};

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

    fn dir(self) -> &'static str {
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
    Seal(#[from] SealError),
}

/// The media folder and the keys that seal its private part.
#[derive(Debug, Clone)]
pub struct MediaStore {
    root: PathBuf,
    sealer: Arc<Sealer>,
    /// Wakes this instance's thumbnail worker when an upload queued a thumbnail, so it is made at
    /// once rather than at the next poll (the poll is for what other instances or a crash left).
    thumbnails_due: Arc<tokio::sync::Notify>,
}

impl MediaStore {
    /// Creates the folders if needed.
    pub fn open(root: &Path, sealer: Arc<Sealer>) -> std::io::Result<MediaStore> {
        for area in Area::ALL {
            std::fs::create_dir_all(root.join(area.dir()))?;
        }
        Ok(MediaStore { root: root.to_path_buf(), sealer, thumbnails_due: Arc::new(tokio::sync::Notify::new()) })
    }

    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// Tells the thumbnail worker there is work (a permit is kept if it is busy).
    pub fn wake_thumbnailer(&self) {
        self.thumbnails_due.notify_one();
    }

    /// Resolves when [`MediaStore::wake_thumbnailer`] was called.
    pub async fn thumbnails_due(&self) {
        self.thumbnails_due.notified().await;
    }

    /// Where a public file lives (served with range support by the media route).
    pub fn public_path(&self, id: &uuid::Uuid) -> PathBuf {
        self.path(Area::Public, id)
    }

    /// Where a file of a served (not sealed) area lives: public files, thumbnails, posters.
    pub fn served_path(&self, area: Area, id: &uuid::Uuid) -> PathBuf {
        self.path(area, id)
    }

    /// Writes a derived file (a thumbnail) under a temporary name and renames it into place.
    pub async fn put_bytes(&self, area: Area, id: &uuid::Uuid, bytes: &[u8]) -> Result<(), StoreError> {
        self.write_atomic(&self.path(area, id), bytes).await?;
        Ok(())
    }

    /// Reads a served file whole (a thumbnail's source: an image, bounded by `MAX_IMAGE_BYTES`).
    pub async fn read(&self, area: Area, id: &uuid::Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        match tokio::fs::read(self.path(area, id)).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The path of a file; `id` must be a UUID (callers parse it first).
    fn path(&self, area: Area, id: &uuid::Uuid) -> PathBuf {
        self.root.join(area.dir()).join(id.hyphenated().to_string())
    }

    /// What a sealed file is bound to: its area and id, so files cannot be swapped.
    fn aad(area: Area, id: &uuid::Uuid) -> String {
        format!("{}:{}", area.dir(), id.hyphenated())
    }

    async fn write_atomic(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = path.with_extension("partial");
        tokio::fs::write(&tmp, bytes).await?;
        tokio::fs::rename(&tmp, path).await
    }

    /// Moves an uploaded temporary file into the public area without reading it into memory.
    pub async fn put_public_from(&self, id: &uuid::Uuid, source: std::fs::File) -> Result<(), StoreError> {
        self.put_from(Area::Public, id, source).await
    }

    /// Copies an uploaded temporary file into a served area (public files, posters).
    pub async fn put_from(&self, area: Area, id: &uuid::Uuid, source: std::fs::File) -> Result<(), StoreError> {
        let path = self.path(area, id);
        let tmp = path.with_extension("partial");
        let mut src = tokio::fs::File::from_std(source);
        let mut dst = tokio::fs::File::create(&tmp).await?;
        tokio::io::copy(&mut src, &mut dst).await?;
        dst.sync_all().await?;
        tokio::fs::rename(&tmp, &path).await?;
        Ok(())
    }

    /// Seals `bytes` and stores them in a private area.
    pub async fn put_sealed(&self, area: Area, id: &uuid::Uuid, bytes: &[u8]) -> Result<(), StoreError> {
        let sealed = self.sealer.seal_bytes(bytes, &Self::aad(area, id))?;
        self.write_atomic(&self.path(area, id), &sealed).await?;
        Ok(())
    }

    /// Opens a sealed file; `None` when there is no such file.
    pub async fn get_sealed(&self, area: Area, id: &uuid::Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        match tokio::fs::read(self.path(area, id)).await {
            Ok(sealed) => Ok(Some(self.sealer.open_bytes(&sealed, &Self::aad(area, id))?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A public file for streaming; `None` when there is no such file.
    pub async fn open_public(&self, id: &uuid::Uuid) -> Result<Option<tokio::fs::File>, StoreError> {
        match tokio::fs::File::open(self.path(Area::Public, id)).await {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a file; a file already gone is not an error (erasure may be retried).
    pub async fn remove(&self, area: Area, id: &uuid::Uuid) -> Result<(), StoreError> {
        match tokio::fs::remove_file(self.path(area, id)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Re-seals one private file with the current key if another key sealed it; true if it did.
    pub async fn reseal(&self, area: Area, id: &uuid::Uuid) -> Result<bool, StoreError> {
        let path = self.path(area, id);
        let sealed = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        if Sealer::key_id_of_bytes(&sealed) == Some(self.sealer.current_key_id()) {
            return Ok(false);
        }
        let plain = self.sealer.open_bytes(&sealed, &Self::aad(area, id))?;
        self.put_sealed(area, id, &plain).await?;
        Ok(true)
    }

    /// Ids of every file in an area (for re-sealing and for tests that check erasure on disk).
    pub async fn list(&self, area: Area) -> Result<Vec<uuid::Uuid>, StoreError> {
        let mut out = Vec::new();
        let mut dir = tokio::fs::read_dir(self.root.join(area.dir())).await?;
        while let Some(entry) = dir.next_entry().await? {
            if let Some(id) = entry.file_name().to_str().and_then(|n| uuid::Uuid::parse_str(n).ok()) {
                out.push(id);
            }
        }
        Ok(out)
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
