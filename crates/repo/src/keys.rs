//! Key files: creating them and unlocking the keyring with a password
//! (docs/FORMAT.md, "Key files").

use cairn_backend::{Backend, FileKind};
use cairn_crypto::{CryptoError, KdfParams, Keyring};
use cairn_format::keyfile::KeyFile;
use cairn_format::{KeyId, id::file_hash};

use crate::{RepoError, Result};

/// A key file as listed by `key list`.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// Its id.
    pub id: KeyId,
    /// Its decoded content (no secrets in clear).
    pub file: KeyFile,
}

/// Wraps `keyring` with `password` into a new key file and stores it.
pub fn add_key(
    backend: &Backend,
    keyring: &Keyring,
    password: &[u8],
    params: KdfParams,
    hostname: &str,
    username: &str,
) -> Result<KeyId> {
    let mut salt = [0u8; 16];
    cairn_crypto::random_bytes(&mut salt)?;
    let wrapped = keyring.wrap(password, &salt, params)?;
    let bytes = KeyFile::new(hostname.into(), username.into(), params, &salt, &wrapped).encode();
    let id = KeyId::from_bytes(file_hash(&bytes));
    backend.write(FileKind::Key, &id.to_hex(), bytes)?;
    Ok(id)
}

/// All key files.
pub fn list_keys(backend: &Backend) -> Result<Vec<KeyInfo>> {
    let mut out = Vec::new();
    for (name, _) in backend.list(FileKind::Key)? {
        let id: KeyId = name.parse().map_err(|e| RepoError::corrupt(format!("key {name}"), e))?;
        let bytes = backend.read(FileKind::Key, &name)?;
        let object = format!("key {}", id.short());
        if file_hash(&bytes) != *id.as_bytes() {
            return Err(RepoError::corrupt(object, "content does not match its name"));
        }
        let file = KeyFile::decode(&bytes).map_err(|e| RepoError::format(object, e))?;
        out.push(KeyInfo { id, file });
    }
    Ok(out)
}

/// Tries every key file with the password; the first that opens wins.
pub fn unlock(backend: &Backend, password: &[u8]) -> Result<(KeyId, Keyring)> {
    let keys = list_keys(backend)?;
    if keys.is_empty() {
        return Err(RepoError::corrupt("keys/", "the repository has no key files"));
    }
    for k in keys {
        let object = || format!("key {}", k.id.short());
        let salt = k.file.salt().map_err(|e| RepoError::format(object(), e))?;
        let wrapped = k.file.wrapped().map_err(|e| RepoError::format(object(), e))?;
        match Keyring::unwrap(password, &salt, k.file.params(), &wrapped) {
            Ok(ring) => return Ok((k.id, ring)),
            Err(CryptoError::Authentication) => continue,
            Err(e) => return Err(RepoError::corrupt(object(), e)),
        }
    }
    Err(RepoError::WrongPassword { location: backend.location().to_string() })
}
