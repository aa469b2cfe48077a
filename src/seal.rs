//! Encryption at rest for identity data, ID photos and data exports: AES-256-GCM with a fresh random
//! nonce per value, and the id of the sealing key written in front of every ciphertext.
//!
//! Keys come from configuration (`SEAL_KEYS`), never from the database: a stolen database or media
//! folder alone reveals nothing. The first key seals new values; the others only open old ones, so a
//! key can rotate without downtime (`ecer-gateway reseal` then moves old rows to the new key).
//! Every value is bound to what it is (associated data such as `identity:17:id_number`), so a
//! ciphertext copied into another row or file does not open there.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

const TEXT_PREFIX: &str = "s1";
const FILE_MAGIC: &[u8; 4] = b"ECS1";
const NONCE_LEN: usize = 12;

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

    /// Seals file content: `ECS1`, key id length, key id, nonce, ciphertext.
    pub fn seal_bytes(&self, plain: &[u8], aad: &str) -> Result<Vec<u8>, SealError> {
        let (key, nonce, ct) = self.encrypt(plain, aad)?;
        let mut out = Vec::with_capacity(4 + 1 + key.id.len() + NONCE_LEN + ct.len());
        out.extend_from_slice(FILE_MAGIC);
        out.push(key.id.len() as u8);
        out.extend_from_slice(key.id.as_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open_bytes(&self, sealed: &[u8], aad: &str) -> Result<Vec<u8>, SealError> {
        let (key_id, blob) = Self::split_file(sealed).ok_or(SealError::Corrupt)?;
        self.decrypt(key_id, blob, aad)
    }

    pub fn key_id_of_bytes(sealed: &[u8]) -> Option<&str> {
        Self::split_file(sealed).map(|(id, _)| id)
    }

    fn split_file(sealed: &[u8]) -> Option<(&str, &[u8])> {
        let rest = sealed.strip_prefix(FILE_MAGIC.as_slice())?;
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

    #[test]
    fn bad_key_configuration_is_refused() {
        assert!(Sealer::from_entries(&[]).is_err());
        assert!(Sealer::from_entries(&["k1:c2hvcnQ=".into()]).is_err());
        assert!(Sealer::from_entries(&["nokey".into()]).is_err());
    }
}
