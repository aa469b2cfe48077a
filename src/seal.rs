//! Encryption at rest for identity data, ID photos and data exports: AES-256-GCM with a fresh random
//! nonce per value, and the id of the sealing key written in front of every ciphertext.
//!
//! Keys come from configuration (`SEAL_KEYS`), never from the database: a stolen database or media
//! folder alone reveals nothing. The first key seals new values; the others only open old ones, so a
//! key can rotate without downtime (`ecer-gateway reseal` then moves old rows to the new key).
//! Every value is bound to what it is (associated data such as `identity:17:id_number`), so a
//! ciphertext copied into another row or file does not open there.
//!
//! Files are sealed in segments of [`SEGMENT`] bytes (the STREAM construction of Hoang, Reyhanitabar,
//! Rogaway and Vizár, as the `aead` crate implements it: each segment's nonce carries its position
//! and whether it is the last; each file has a key of its own, derived from a random salt, as in
//! Tink's AES-GCM-HKDF streaming AEAD), so a download unseals only the segments of the range it serves,
//! a segment at a time, instead of holding the whole file in memory twice; reordering, dropping or
//! truncating segments fails to open. Files sealed whole by earlier versions (`ECS1`) still open.

use aes_gcm::aead::stream::{NewStream, StreamBE32, StreamPrimitive};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

const TEXT_PREFIX: &str = "s1";
/// A file sealed whole (earlier versions): opened, never written.
const FILE_MAGIC: &[u8; 4] = b"ECS1";
/// A file sealed in segments.
const SEGMENTED_MAGIC: &[u8; 4] = b"ECS2";
const NONCE_LEN: usize = 12;
/// A segmented file's random salt: its segments are sealed under a key derived from the sealing key
/// and the salt, so no two files share a key (random 56-bit nonce prefixes under one key would
/// collide within millions of files). The nonce is then the STREAM's position and last flag alone.
const SALT_LEN: usize = 32;
const FILE_KEY_LABEL: &[u8] = b"ECS2 file key\0";
const TAG_LEN: usize = 16;
/// Plain bytes per segment of a sealed file.
pub const SEGMENT: u64 = 64 * 1024;
/// Sealed bytes per segment (the last one may be shorter).
const SEALED_SEGMENT: u64 = SEGMENT + TAG_LEN as u64;
/// The longest header a sealed file can have (magic, key id length, key id, salt): reading this much
/// from the start of a file is always enough to lay it out.
pub const MAX_HEADER: u64 = 4 + 1 + 255 + SALT_LEN as u64;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("SEAL_KEYS: {0}")]
    Config(String),
    #[error("sealed with key `{0}`, which is not configured")]
    UnknownKey(String),
    #[error("sealed value is malformed or was tampered with")]
    Corrupt,
    #[error("the OS random number generator failed")]
    Random,
}

struct Key {
    id: String,
    cipher: Aes256Gcm,
    /// Kept to derive other secrets from (`derive`), never written anywhere.
    raw: [u8; 32],
}

/// The configured keys; the first seals.
pub struct Sealer {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Sealer").field("key_ids", &ids).finish()
    }
}

impl Sealer {
    /// Parses `id:base64key` entries (32-byte keys, standard or URL-safe base64).
    pub fn from_entries(entries: &[String]) -> Result<Sealer, SealError> {
        let mut keys = Vec::with_capacity(entries.len());
        for entry in entries {
            let (id, b64) = entry
                .split_once(':')
                .ok_or_else(|| SealError::Config("each key is written `id:base64-of-32-bytes`".into()))?;
            if id.is_empty()
                || id.len() > 32
                || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(SealError::Config(format!("key id `{id}` must be 1-32 letters, digits, - or _")));
            }
            let bytes = STANDARD
                .decode(b64.trim())
                .or_else(|_| URL_SAFE_NO_PAD.decode(b64.trim().trim_end_matches('=')))
                .map_err(|_| SealError::Config(format!("key `{id}` is not base64")))?;
            let raw: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| SealError::Config(format!("key `{id}` must be 32 bytes, not {}", bytes.len())))?;
            let cipher = Aes256Gcm::new(&raw.into());
            if keys.iter().any(|k: &Key| k.id == id) {
                return Err(SealError::Config(format!("key id `{id}` appears twice")));
            }
            keys.push(Key { id: id.to_string(), cipher, raw });
        }
        if keys.is_empty() {
            return Err(SealError::Config("at least one key is needed".into()));
        }
        Ok(Sealer { keys })
    }

    /// A fresh random key entry, for `ecer-gateway generate-seal-key` and development set-ups.
    pub fn generate_entry(id: &str) -> Result<String, SealError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|_| SealError::Random)?;
        Ok(format!("{id}:{}", STANDARD.encode(key)))
    }

    /// A secret for another purpose (`label`), derived from the current key: shared by every
    /// instance with the same configuration, unknown to anyone holding only the database.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(label.as_bytes());
        h.update([0u8]);
        if let Some(k) = self.keys.first() {
            h.update(k.raw);
        }
        h.finalize().into()
    }

    /// HMAC-SHA256 of `message` under a secret derived for `label`: a keyed hash for look-ups by a
    /// value from a small space (a phone number), which a plain hash would give away to anyone who
    /// tries every value. Changes when the sealing key rotates; its users keep only short-lived rows.
    pub fn keyed_hash(&self, label: &str, message: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.derive(label), message)
    }

    /// The id of the key new values are sealed with.
    pub fn current_key_id(&self) -> &str {
        self.keys.first().map_or("", |k| k.id.as_str())
    }

    fn key(&self, id: &str) -> Result<&Key, SealError> {
        self.keys.iter().find(|k| k.id == id).ok_or_else(|| SealError::UnknownKey(id.to_string()))
    }

    fn encrypt(&self, plain: &[u8], aad: &str) -> Result<(&Key, [u8; NONCE_LEN], Vec<u8>), SealError> {
        let key = self.keys.first().ok_or_else(|| SealError::Config("no key".into()))?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| SealError::Random)?;
        let ct = key
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad: aad.as_bytes() })
            .map_err(|_| SealError::Corrupt)?;
        Ok((key, nonce, ct))
    }

    /// Seals a short text for a database column: `s1.<key id>.<base64(nonce | ciphertext)>`.
    pub fn seal_text(&self, plain: &str, aad: &str) -> Result<String, SealError> {
        let (key, nonce, ct) = self.encrypt(plain.as_bytes(), aad)?;
        let mut blob = Vec::with_capacity(NONCE_LEN + ct.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        Ok(format!("{TEXT_PREFIX}.{}.{}", key.id, URL_SAFE_NO_PAD.encode(blob)))
    }

    pub fn open_text(&self, sealed: &str, aad: &str) -> Result<String, SealError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some(TEXT_PREFIX), Some(key_id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SealError::Corrupt);
        };
        let blob = URL_SAFE_NO_PAD.decode(b64).map_err(|_| SealError::Corrupt)?;
        let plain = self.decrypt(key_id, &blob, aad)?;
        String::from_utf8(plain).map_err(|_| SealError::Corrupt)
    }

    /// The key id a sealed text or file names, without opening it.
    pub fn key_id_of_text(sealed: &str) -> Option<&str> {
        let mut parts = sealed.splitn(3, '.');
        (parts.next() == Some(TEXT_PREFIX)).then(|| parts.next()).flatten()
    }

    /// Seals file content: `ECS2`, key id length, key id, salt, then the segments, each
    /// [`SEGMENT`] plain bytes and its tag (the last one shorter; an empty file is one empty last
    /// segment).
    pub fn seal_bytes(&self, plain: &[u8], aad: &str) -> Result<Vec<u8>, SealError> {
        let mut sealing = self.seal_segments(aad)?;
        let segments = plain.len().div_ceil(SEGMENT as usize).max(1);
        let mut out = Vec::with_capacity(sealing.header.len() + plain.len() + segments * TAG_LEN);
        out.extend_from_slice(&sealing.header);
        let mut chunks = plain.chunks(SEGMENT as usize).peekable();
        if chunks.peek().is_none() {
            out.extend_from_slice(&sealing.seal(&[], true)?);
        }
        while let Some(chunk) = chunks.next() {
            out.extend_from_slice(&sealing.seal(chunk, chunks.peek().is_none())?);
        }
        Ok(out)
    }

    /// Starts sealing a file segment by segment, for a file too large to hold in memory twice (an
    /// upload spooled to disk): the same format as [`Self::seal_bytes`]. Write
    /// [`SegmentSealer::header`] first, then each segment's [`SegmentSealer::seal`].
    pub fn seal_segments(&self, aad: &str) -> Result<SegmentSealer, SealError> {
        let key = self.keys.first().ok_or_else(|| SealError::Config("no key".into()))?;
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt).map_err(|_| SealError::Random)?;
        let mut header = Vec::with_capacity(4 + 1 + key.id.len() + SALT_LEN);
        header.extend_from_slice(SEGMENTED_MAGIC);
        header.push(key.id.len() as u8);
        header.extend_from_slice(key.id.as_bytes());
        header.extend_from_slice(&salt);
        Ok(SegmentSealer { header, stream: file_stream(key, &salt), aad: aad.as_bytes().to_vec(), position: 0 })
    }

    /// Opens a whole sealed file, of either format.
    pub fn open_bytes(&self, sealed: &[u8], aad: &str) -> Result<Vec<u8>, SealError> {
        if sealed.starts_with(SEGMENTED_MAGIC) {
            let layout = FileLayout::read(sealed, sealed.len() as u64)?.ok_or(SealError::Corrupt)?;
            let body =
                usize::try_from(layout.header_len).ok().and_then(|h| sealed.get(h..)).ok_or(SealError::Corrupt)?;
            return self.open_segments(&layout, 0, body, aad);
        }
        let (key_id, blob) = Self::split_file(sealed).ok_or(SealError::Corrupt)?;
        self.decrypt(key_id, blob, aad)
    }

    /// Opens consecutive whole segments of a segmented file, starting at segment `first`: `sealed`
    /// is the file's bytes [`FileLayout::sealed_range`] gave for them.
    pub fn open_segments(
        &self,
        layout: &FileLayout,
        first: u64,
        sealed: &[u8],
        aad: &str,
    ) -> Result<Vec<u8>, SealError> {
        let key = self.key(&layout.key_id)?;
        let stream = file_stream(key, &layout.salt);
        let mut out = Vec::with_capacity(sealed.len());
        for (i, segment) in sealed.chunks(SEALED_SEGMENT as usize).enumerate() {
            let index = first + i as u64;
            let position = u32::try_from(index).map_err(|_| SealError::Corrupt)?;
            let last = index + 1 == layout.segments();
            let plain = stream
                .decrypt(position, last, Payload { msg: segment, aad: aad.as_bytes() })
                .map_err(|_| SealError::Corrupt)?;
            out.extend_from_slice(&plain);
        }
        Ok(out)
    }

    pub fn key_id_of_bytes(sealed: &[u8]) -> Option<&str> {
        Self::split_file(sealed).map(|(id, _)| id)
    }

    /// The key id and what follows it, for either format.
    fn split_file(sealed: &[u8]) -> Option<(&str, &[u8])> {
        let rest =
            sealed.strip_prefix(FILE_MAGIC.as_slice()).or_else(|| sealed.strip_prefix(SEGMENTED_MAGIC.as_slice()))?;
        let (&len, rest) = rest.split_first()?;
        let (id, blob) = rest.split_at_checked(len as usize)?;
        Some((std::str::from_utf8(id).ok()?, blob))
    }

    fn decrypt(&self, key_id: &str, blob: &[u8], aad: &str) -> Result<Vec<u8>, SealError> {
        let key = self.key(key_id)?;
        let (nonce, ct) = blob.split_at_checked(NONCE_LEN).ok_or(SealError::Corrupt)?;
        key.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: aad.as_bytes() })
            .map_err(|_| SealError::Corrupt)
    }
}

/// Where a segmented file's segments are, from its first bytes and its size (no key needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLayout {
    key_id: String,
    salt: [u8; SALT_LEN],
    header_len: u64,
    plain_len: u64,
}

impl FileLayout {
    /// Lays out a file of `size` sealed bytes from its first bytes (at least [`MAX_HEADER`] of them,
    /// or the whole file if shorter). `None` for a file sealed whole (`ECS1`).
    pub fn read(head: &[u8], size: u64) -> Result<Option<FileLayout>, SealError> {
        if head.starts_with(FILE_MAGIC) {
            return Ok(None);
        }
        let rest = head.strip_prefix(SEGMENTED_MAGIC.as_slice()).ok_or(SealError::Corrupt)?;
        let (&len, rest) = rest.split_first().ok_or(SealError::Corrupt)?;
        let (id, rest) = rest.split_at_checked(len as usize).ok_or(SealError::Corrupt)?;
        let salt: [u8; SALT_LEN] = rest.get(..SALT_LEN).and_then(|p| p.try_into().ok()).ok_or(SealError::Corrupt)?;
        let key_id = std::str::from_utf8(id).map_err(|_| SealError::Corrupt)?.to_string();
        let header_len = (4 + 1 + len as usize + SALT_LEN) as u64;
        // Every segment but the last is full; the last holds at least its tag (and a byte, unless it
        // is the only one: an empty file).
        let body = size.checked_sub(header_len).filter(|b| *b >= TAG_LEN as u64).ok_or(SealError::Corrupt)?;
        let segments = body.div_ceil(SEALED_SEGMENT);
        let last = body - (segments - 1) * SEALED_SEGMENT;
        if segments > 1 && last <= TAG_LEN as u64 || segments > u64::from(u32::MAX) {
            return Err(SealError::Corrupt);
        }
        let plain_len = body - segments * TAG_LEN as u64;
        Ok(Some(FileLayout { key_id, salt, header_len, plain_len }))
    }

    /// The plain file's length.
    pub fn plain_len(&self) -> u64 {
        self.plain_len
    }

    fn segments(&self) -> u64 {
        self.plain_len.div_ceil(SEGMENT).max(1)
    }

    /// The segments holding plain bytes `first..=last` (within the file), as (first segment, the
    /// sealed bytes to read for them).
    pub fn sealed_range(&self, first: u64, last: u64) -> (u64, std::ops::Range<u64>) {
        let (from, to) = (first / SEGMENT, (last / SEGMENT).min(self.segments() - 1));
        let start = self.header_len + from * SEALED_SEGMENT;
        let end = (self.header_len + (to + 1) * SEALED_SEGMENT)
            .min(self.header_len + self.plain_len + self.segments() * TAG_LEN as u64);
        (from, start..end)
    }
}

/// A file being sealed segment by segment ([`Sealer::seal_segments`]).
pub struct SegmentSealer {
    /// The file's first bytes: magic, key id and salt.
    pub header: Vec<u8>,
    stream: StreamBE32<Aes256Gcm>,
    aad: Vec<u8>,
    position: u32,
}

impl SegmentSealer {
    /// Seals the next segment: [`SEGMENT`] bytes, fewer only for the last (which may be empty when
    /// the whole file is). Each segment is bound to its position and to whether it is the last.
    pub fn seal(&mut self, segment: &[u8], last: bool) -> Result<Vec<u8>, SealError> {
        if segment.len() > SEGMENT as usize || (!last && segment.len() != SEGMENT as usize) {
            return Err(SealError::Corrupt);
        }
        let sealed = self
            .stream
            .encrypt(self.position, last, Payload { msg: segment, aad: &self.aad })
            .map_err(|_| SealError::Corrupt)?;
        self.position = self.position.checked_add(1).ok_or(SealError::Corrupt)?;
        Ok(sealed)
    }
}

/// The STREAM a segmented file is sealed with: AES-256-GCM under HMAC(sealing key, label | salt),
/// with an all-zero nonce prefix (each file key seals one stream only).
fn file_stream(key: &Key, salt: &[u8; SALT_LEN]) -> StreamBE32<Aes256Gcm> {
    let file_key = hmac_sha256(&key.raw, &[FILE_KEY_LABEL, salt.as_slice()].concat());
    StreamBE32::from_aead(Aes256Gcm::new(&file_key.into()), &Default::default())
}

/// HMAC-SHA256 (RFC 2104) with a key of at most one block (64 bytes), as `keyed_hash` uses it.
fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let pad = |byte: u8| block.map(|k| k ^ byte);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2: key "Jefe" (zero-padded, as HMAC pads every short key).
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let mac = hmac_sha256(&key, b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    fn sealer(entries: &[&str]) -> Sealer {
        Sealer::from_entries(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn text_round_trips_and_is_bound_to_its_context() {
        let k1 = Sealer::generate_entry("k1").unwrap();
        let s = sealer(&[&k1]);
        let sealed = s.seal_text("110101199003074514", "identity:1:id_number").unwrap();
        assert!(!sealed.contains("1101011990"));
        assert_eq!(Sealer::key_id_of_text(&sealed), Some("k1"));
        assert_eq!(s.open_text(&sealed, "identity:1:id_number").unwrap(), "110101199003074514");
        assert!(matches!(s.open_text(&sealed, "identity:2:id_number"), Err(SealError::Corrupt)));
        // A fresh nonce every time: equal plaintexts do not give equal ciphertexts.
        assert_ne!(sealed, s.seal_text("110101199003074514", "identity:1:id_number").unwrap());
    }

    #[test]
    fn rotation_opens_old_values_and_seals_with_the_first_key() {
        let k1 = Sealer::generate_entry("k1").unwrap();
        let k2 = Sealer::generate_entry("k2").unwrap();
        let old = sealer(&[&k1]).seal_bytes(b"photo", "media:x").unwrap();
        let rotated = sealer(&[&k2, &k1]);
        assert_eq!(rotated.open_bytes(&old, "media:x").unwrap(), b"photo");
        let new = rotated.seal_bytes(b"photo", "media:x").unwrap();
        assert_eq!(Sealer::key_id_of_bytes(&new), Some("k2"));
        assert!(matches!(sealer(&[&k2]).open_bytes(&old, "media:x"), Err(SealError::UnknownKey(_))));
        let mut tampered = new.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(matches!(rotated.open_bytes(&tampered, "media:x"), Err(SealError::Corrupt)));
    }

    /// A file as earlier versions sealed it: `ECS1`, key id, nonce, one ciphertext.
    fn sealed_whole(s: &Sealer, plain: &[u8], aad: &str) -> Vec<u8> {
        let (key, nonce, ct) = s.encrypt(plain, aad).unwrap();
        [FILE_MAGIC.as_slice(), &[key.id.len() as u8], key.id.as_bytes(), &nonce, &ct].concat()
    }

    #[test]
    fn files_seal_in_segments_that_open_alone_and_only_in_place() {
        let s = sealer(&[&Sealer::generate_entry("k1").unwrap()]);
        let seg = SEGMENT as usize;
        for len in [0, 1, seg - 1, seg, seg + 1, 3 * seg + 5, 8 * seg] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let sealed = s.seal_bytes(&plain, "media:x").unwrap();
            assert_eq!(s.open_bytes(&sealed, "media:x").unwrap(), plain, "{len} bytes");
            let layout = FileLayout::read(&sealed[..sealed.len().min(MAX_HEADER as usize)], sealed.len() as u64)
                .unwrap()
                .unwrap();
            assert_eq!(layout.plain_len(), len as u64);
            // Any range opens from its own segments alone.
            for (a, b) in
                [(0, 0), (seg as u64 - 1, seg as u64), (len as u64 / 2, (len as u64).saturating_sub(1)), (1, 1)]
            {
                if len == 0 || b >= len as u64 || a > b {
                    continue;
                }
                let (first, range) = layout.sealed_range(a, b);
                let part = &sealed[range.start as usize..range.end as usize];
                let opened = s.open_segments(&layout, first, part, "media:x").unwrap();
                let skip = (a - first * SEGMENT) as usize;
                assert_eq!(
                    &opened[skip..skip + (b - a + 1) as usize],
                    &plain[a as usize..=b as usize],
                    "{len}: {a}-{b}"
                );
            }
            assert!(matches!(s.open_bytes(&sealed, "media:y"), Err(SealError::Corrupt)), "bound to its file");
        }
        let plain = vec![7u8; 3 * seg + 5];
        let sealed = s.seal_bytes(&plain, "media:x").unwrap();
        let header = sealed.len() - (plain.len() + 4 * TAG_LEN);
        // Cut after a whole segment: the new end was not sealed as the last one.
        let cut = &sealed[..header + 2 * SEALED_SEGMENT as usize];
        assert!(matches!(s.open_bytes(cut, "media:x"), Err(SealError::Corrupt)), "truncated");
        // Two segments swapped: each is at the wrong position.
        let mut swapped = sealed.clone();
        let (a, b) = (header, header + SEALED_SEGMENT as usize);
        let first: Vec<u8> = swapped[a..b].to_vec();
        swapped.copy_within(b..b + SEALED_SEGMENT as usize, a);
        swapped[b..b + SEALED_SEGMENT as usize].copy_from_slice(&first);
        assert!(matches!(s.open_bytes(&swapped, "media:x"), Err(SealError::Corrupt)), "reordered");
        // A forged empty file (a header and 16 bytes) does not open.
        let forged = [&sealed[..header], &[0u8; TAG_LEN]].concat();
        assert!(matches!(s.open_bytes(&forged, "media:x"), Err(SealError::Corrupt)), "forged empty file");
        // Trailing bytes past the last segment, or inside it: not the file that was sealed.
        let longer = [sealed.as_slice(), b"x"].concat();
        assert!(s.open_bytes(&longer, "media:x").is_err(), "trailing byte");
        // Two files of the same content never share ciphertext (a key per file).
        let again = s.seal_bytes(&plain, "media:x").unwrap();
        assert_ne!(sealed[header..header + 64], again[header..header + 64]);
        // A file sealed whole by an earlier version still opens, and lays out as such.
        let old = sealed_whole(&s, b"photo", "media:x");
        assert_eq!(s.open_bytes(&old, "media:x").unwrap(), b"photo");
        assert_eq!(Sealer::key_id_of_bytes(&old), Some("k1"));
        assert_eq!(FileLayout::read(&old, old.len() as u64).unwrap(), None);
    }

    #[test]
    fn bad_key_configuration_is_refused() {
        assert!(Sealer::from_entries(&[]).is_err());
        assert!(Sealer::from_entries(&["k1:c2hvcnQ=".into()]).is_err());
        assert!(Sealer::from_entries(&["nokey".into()]).is_err());
    }
}
