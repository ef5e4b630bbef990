//! Key files: the keyring wrapped with a password (docs/FORMAT.md, "Key files").
//! The only objects stored in plaintext JSON.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cairn_crypto::KdfParams;
use serde::{Deserialize, Serialize};

use crate::{FORMAT_VERSION, FormatError};

/// Key-derivation settings as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfSpec {
    /// Always `argon2id` in version 1.
    pub algorithm: String,
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
    /// Random salt, base64 (16 bytes).
    pub salt: String,
}

/// A key file as stored under `keys/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    /// Repository format version.
    pub version: u32,
    /// When the key was added.
    pub created: jiff::Timestamp,
    /// Host the key was added on.
    pub hostname: String,
    /// User who added it.
    pub username: String,
    /// How the wrapping key derives from the password.
    pub kdf: KdfSpec,
    /// The keyring envelope, base64.
    pub keyring: String,
}

impl KeyFile {
    /// Encodes as pretty JSON (it is the one plaintext file; people read it).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Decodes and checks the version and algorithm.
    pub fn decode(buf: &[u8]) -> Result<Self, FormatError> {
        let k: KeyFile = serde_json::from_slice(buf)?;
        crate::check_version(k.version)?;
        if k.kdf.algorithm != "argon2id" {
            return Err(FormatError::Invalid("unknown key derivation algorithm"));
        }
        Ok(k)
    }

    /// The KDF parameters.
    pub fn params(&self) -> KdfParams {
        KdfParams {
            memory_kib: self.kdf.memory_kib,
            iterations: self.kdf.iterations,
            parallelism: self.kdf.parallelism,
        }
    }

    /// The salt bytes.
    pub fn salt(&self) -> Result<Vec<u8>, FormatError> {
        B64.decode(&self.kdf.salt).map_err(|_| FormatError::Invalid("salt is not base64"))
    }

    /// The keyring envelope bytes.
    pub fn wrapped(&self) -> Result<Vec<u8>, FormatError> {
        B64.decode(&self.keyring).map_err(|_| FormatError::Invalid("keyring is not base64"))
    }

    /// Builds a key file from its parts.
    pub fn new(hostname: String, username: String, params: KdfParams, salt: &[u8], wrapped: &[u8]) -> Self {
        Self {
            version: FORMAT_VERSION,
            created: jiff::Timestamp::now(),
            hostname,
            username,
            kdf: KdfSpec {
                algorithm: "argon2id".into(),
                memory_kib: params.memory_kib,
                iterations: params.iterations,
                parallelism: params.parallelism,
                salt: B64.encode(salt),
            },
            keyring: B64.encode(wrapped),
        }
    }
}
