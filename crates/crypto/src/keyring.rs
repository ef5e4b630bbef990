//! The repository's secrets and the sub-keys derived from them (docs/FORMAT.md, "Keys").

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::CryptoError;
use crate::envelope::{self, AeadKey, ObjectKind};
use crate::kdf::{self, KdfParams};

/// Context string for wrapping a keyring with a password-derived key.
pub const KEYRING_CONTEXT: &str = "cairn 2026-11 v1 keyring";
const CTX_ID: &str = "cairn 2026-11 v1 blob id";
const CTX_CHUNKER: &str = "cairn 2026-11 v1 chunker gear";
const CTX_ENCRYPTION: &str = "cairn 2026-11 v1 encryption";
const KEYRING_VERSION: u8 = 1;
/// A keyring never holds more epochs than this (rotation adds one at a time).
const MAX_EPOCHS: usize = 1 << 16;

#[derive(Zeroize, ZeroizeOnDrop)]
struct EpochSecret {
    epoch: u32,
    secret: [u8; 32],
}

/// The repository's secrets: everything a key file unlocks.
///
/// The content secret never changes: blob ids and chunk boundaries derive from
/// it, so deduplication survives key rotation. Each encryption epoch has its
/// own secret; new objects are sealed under the newest epoch.
pub struct Keyring {
    content_secret: Zeroizing<[u8; 32]>,
    epochs: Vec<EpochSecret>,
    id_key: Zeroizing<[u8; 32]>,
    chunker_key: Zeroizing<[u8; 32]>,
    ciphers: Vec<(u32, AeadKey)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("epochs", &self.epochs.iter().map(|e| e.epoch).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// Makes a fresh keyring with random secrets and one epoch (0).
    pub fn generate() -> Result<Self, CryptoError> {
        let mut content = Zeroizing::new([0u8; 32]);
        crate::random_bytes(content.as_mut())?;
        let mut secret = [0u8; 32];
        crate::random_bytes(&mut secret)?;
        Ok(Self::from_parts(content, vec![EpochSecret { epoch: 0, secret }]))
    }

    fn from_parts(content_secret: Zeroizing<[u8; 32]>, mut epochs: Vec<EpochSecret>) -> Self {
        epochs.sort_by_key(|e| e.epoch);
        let id_key = Zeroizing::new(blake3::derive_key(CTX_ID, content_secret.as_ref()));
        let chunker_key = Zeroizing::new(blake3::derive_key(CTX_CHUNKER, content_secret.as_ref()));
        let ciphers = epochs
            .iter()
            .map(|e| {
                let k = Zeroizing::new(blake3::derive_key(CTX_ENCRYPTION, &e.secret));
                (e.epoch, AeadKey::new(&k))
            })
            .collect();
        Self { content_secret, epochs, id_key, chunker_key, ciphers }
    }

    /// The same keyring plus a new epoch with a fresh random secret, under
    /// which new objects are sealed (key rotation). The content secret stays,
    /// so blob ids and chunking do not change and deduplication continues;
    /// the older epochs stay, so existing objects remain readable. Whoever
    /// holds only the older keyring cannot open anything sealed afterwards.
    pub fn rotated(&self) -> Result<Self, CryptoError> {
        if self.epochs.len() >= MAX_EPOCHS {
            return Err(CryptoError::Malformed("too many key epochs"));
        }
        let mut secret = [0u8; 32];
        crate::random_bytes(&mut secret)?;
        let mut epochs: Vec<EpochSecret> =
            self.epochs.iter().map(|e| EpochSecret { epoch: e.epoch, secret: e.secret }).collect();
        epochs.push(EpochSecret { epoch: self.current_epoch() + 1, secret });
        secret.zeroize();
        Ok(Self::from_parts(Zeroizing::new(*self.content_secret), epochs))
    }

    /// The epoch new objects are sealed under (the newest one).
    pub fn current_epoch(&self) -> u32 {
        self.epochs.last().map(|e| e.epoch).unwrap_or(0)
    }

    /// The keyed-BLAKE3 key blob ids are computed with.
    pub fn id_key(&self) -> &[u8; 32] {
        &self.id_key
    }

    /// The secret the chunker's gear table is derived from.
    pub fn chunker_key(&self) -> &[u8; 32] {
        &self.chunker_key
    }

    /// The id of a blob with this plaintext: keyed BLAKE3, so a repository
    /// holder without the key cannot confirm guessed content.
    pub fn blob_id(&self, plaintext: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.id_key, plaintext).as_bytes()
    }

    fn cipher(&self, epoch: u32) -> Option<&AeadKey> {
        self.ciphers.iter().find(|(e, _)| *e == epoch).map(|(_, k)| k)
    }

    /// Seals `plaintext` under the current epoch.
    pub fn seal(&self, kind: ObjectKind, id: &[u8; 32], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let epoch = self.current_epoch();
        let key = self.cipher(epoch).ok_or(CryptoError::UnknownEpoch(epoch))?;
        envelope::seal(key, epoch, kind, id, plaintext)
    }

    /// Seals what `fill` writes, in place: see [`envelope::seal_with`].
    pub fn seal_with(
        &self,
        kind: ObjectKind,
        id: &[u8; 32],
        size_hint: usize,
        fill: impl FnOnce(&mut Vec<u8>) -> Result<(), CryptoError>,
    ) -> Result<Vec<u8>, CryptoError> {
        let epoch = self.current_epoch();
        let key = self.cipher(epoch).ok_or(CryptoError::UnknownEpoch(epoch))?;
        envelope::seal_with(key, epoch, kind, id, size_hint, fill)
    }

    /// Opens an envelope sealed under any epoch this keyring holds.
    pub fn open(&self, kind: ObjectKind, id: &[u8; 32], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let epoch = envelope::epoch_of(sealed)?;
        let key = self.cipher(epoch).ok_or(CryptoError::UnknownEpoch(epoch))?;
        envelope::open(key, kind, id, sealed)
    }

    /// Like [`Keyring::open`], decrypting in `sealed` itself; on success
    /// `sealed[range]` is the plaintext.
    pub fn open_in_place(
        &self,
        kind: ObjectKind,
        id: &[u8; 32],
        sealed: &mut [u8],
    ) -> Result<std::ops::Range<usize>, CryptoError> {
        let epoch = envelope::epoch_of(sealed)?;
        let key = self.cipher(epoch).ok_or(CryptoError::UnknownEpoch(epoch))?;
        envelope::open_in_place(key, kind, id, sealed)
    }

    /// Serializes the secrets: `version u8 | content [32] | count u32 LE |
    /// (epoch u32 LE | secret [32])*`.
    fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(37 + 36 * self.epochs.len()));
        out.push(KEYRING_VERSION);
        out.extend_from_slice(self.content_secret.as_ref());
        out.extend_from_slice(&(self.epochs.len() as u32).to_le_bytes());
        for e in &self.epochs {
            out.extend_from_slice(&e.epoch.to_le_bytes());
            out.extend_from_slice(&e.secret);
        }
        out
    }

    fn from_bytes(b: &[u8]) -> Result<Self, CryptoError> {
        let malformed = CryptoError::Malformed("keyring encoding");
        if b.len() < 37 {
            return Err(malformed);
        }
        if b[0] != KEYRING_VERSION {
            return Err(CryptoError::UnknownVersion(b[0]));
        }
        let mut content = Zeroizing::new([0u8; 32]);
        content.copy_from_slice(&b[1..33]);
        let mut n = [0u8; 4];
        n.copy_from_slice(&b[33..37]);
        let count = u32::from_le_bytes(n) as usize;
        if count == 0 || count > MAX_EPOCHS || b.len() != 37 + 36 * count {
            return Err(malformed);
        }
        let epochs = b[37..]
            .chunks_exact(36)
            .map(|c| {
                let mut e = [0u8; 4];
                e.copy_from_slice(&c[..4]);
                let mut secret = [0u8; 32];
                secret.copy_from_slice(&c[4..]);
                EpochSecret { epoch: u32::from_le_bytes(e), secret }
            })
            .collect();
        Ok(Self::from_parts(content, epochs))
    }

    /// Encrypts the keyring with a key derived from `password`; returns the
    /// envelope to store in a key file beside `salt` and `params`.
    pub fn wrap(&self, password: &[u8], salt: &[u8], params: KdfParams) -> Result<Vec<u8>, CryptoError> {
        let kek = kdf::derive(password, salt, params)?;
        let key = AeadKey::new(&kek);
        envelope::seal(&key, 0, ObjectKind::KeyFile, &[0; 32], &self.to_bytes())
    }

    /// Recovers a keyring from a key file's envelope. A wrong password shows
    /// as [`CryptoError::Authentication`].
    pub fn unwrap(password: &[u8], salt: &[u8], params: KdfParams, wrapped: &[u8]) -> Result<Self, CryptoError> {
        let kek = kdf::derive(password, salt, params)?;
        let key = AeadKey::new(&kek);
        let plain = Zeroizing::new(envelope::open(&key, ObjectKind::KeyFile, &[0; 32], wrapped)?);
        Self::from_bytes(&plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };

    #[test]
    fn wrap_unwrap_and_wrong_password() {
        let ring = Keyring::generate().unwrap();
        let wrapped = ring.wrap(b"pw", b"saltsaltsaltsalt", FAST).unwrap();
        let back = Keyring::unwrap(b"pw", b"saltsaltsaltsalt", FAST, &wrapped).unwrap();
        assert_eq!(back.blob_id(b"x"), ring.blob_id(b"x"));
        assert_eq!(back.chunker_key(), ring.chunker_key());
        let sealed = ring.seal(ObjectKind::Config, &[0; 32], b"cfg").unwrap();
        assert_eq!(back.open(ObjectKind::Config, &[0; 32], &sealed).unwrap(), b"cfg");
        assert!(matches!(
            Keyring::unwrap(b"wrong", b"saltsaltsaltsalt", FAST, &wrapped),
            Err(CryptoError::Authentication)
        ));
    }

    #[test]
    fn sub_keys_differ() {
        let ring = Keyring::generate().unwrap();
        assert_ne!(ring.id_key(), ring.chunker_key());
        let other = Keyring::generate().unwrap();
        assert_ne!(ring.blob_id(b"same"), other.blob_id(b"same"));
    }

    #[test]
    fn decoder_rejects_garbage() {
        for n in 0..80 {
            assert!(Keyring::from_bytes(&vec![1u8; n]).is_err());
        }
    }
}
