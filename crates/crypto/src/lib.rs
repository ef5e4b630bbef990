//! Keys and authenticated encryption for cairn repositories.
//!
//! Inputs are secrets (a password, a [`Keyring`]) and bytes; outputs are
//! sealed envelopes and opened plaintext. Nothing here does I/O.
//!
//! - [`Keyring`]: the repository's secrets. One *content secret* (fixed for the
//!   life of the repository; blob ids and chunk boundaries derive from it) and
//!   one or more *encryption secrets*, one per key epoch, so the encryption key
//!   can be rotated without breaking deduplication.
//! - [`envelope`]: XChaCha20-Poly1305 framing with the object kind and id bound
//!   as associated data (docs/FORMAT.md, "Envelope").
//! - [`kdf`]: Argon2id password hashing that wraps a keyring into a key file.
//!
//! ```
//! use cairn_crypto::{Keyring, ObjectKind};
//! let ring = Keyring::generate().unwrap();
//! let sealed = ring.seal(ObjectKind::Snapshot, &[0; 32], b"hello").unwrap();
//! assert_eq!(ring.open(ObjectKind::Snapshot, &[0; 32], &sealed).unwrap(), b"hello");
//! // The kind is bound: the same bytes do not open as another kind of object.
//! assert!(ring.open(ObjectKind::Index, &[0; 32], &sealed).is_err());
//! ```

pub mod envelope;
pub mod kdf;
mod keyring;

pub use envelope::{ENVELOPE_OVERHEAD, ObjectKind};
pub use kdf::KdfParams;
pub use keyring::{KEYRING_CONTEXT, Keyring};

/// Errors of this crate. None of them carries secret material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The tag did not verify: wrong key, or the bytes were changed.
    #[error("authentication failed (wrong key or damaged data)")]
    Authentication,
    /// The envelope is shorter than its fixed framing or otherwise malformed.
    #[error("malformed envelope: {0}")]
    Malformed(&'static str),
    /// The envelope names a format version this build does not know.
    #[error("envelope version {0} is newer than this cairn understands")]
    UnknownVersion(u8),
    /// The envelope was sealed under a key epoch this keyring does not hold.
    #[error("object is encrypted with key epoch {0}, which this key does not hold")]
    UnknownEpoch(u32),
    /// Invalid key-derivation parameters (from a key file or the command line).
    #[error("invalid key derivation parameters: {0}")]
    Kdf(String),
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(String),
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), CryptoError> {
    getrandom::fill(buf).map_err(|e| CryptoError::Random(e.to_string()))
}
