//! Key files: creating them and unlocking the keyring with a password
//! (docs/FORMAT.md, "Key files").

use cairn_backend::{Backend, FileKind};
use cairn_crypto::{CryptoError, KdfParams, Keyring, ObjectKind};
use cairn_format::index::IndexFile;
use cairn_format::keyfile::KeyFile;
use cairn_format::{KeyId, id::file_hash, payload};

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

/// All key files; fails on the first damaged one (see [`key_files`]).
pub fn list_keys(backend: &Backend) -> Result<Vec<KeyInfo>> {
    key_files(backend)?.into_iter().map(|(_, k)| k).collect()
}

/// Every key file by name, each decoded or with what is wrong with it: a
/// key file whose content does not match its name, or does not decode.
pub fn key_files(backend: &Backend) -> Result<Vec<(String, Result<KeyInfo>)>> {
    let mut out = Vec::new();
    for (name, _) in backend.list(FileKind::Key)? {
        let key = read_key(backend, &name).and_then(|(key, named_by_hash)| {
            if named_by_hash {
                Ok(key)
            } else {
                Err(RepoError::corrupt(format!("key {}", key.id.short()), "content does not match its name"))
            }
        });
        out.push((name, key));
    }
    Ok(out)
}

/// Reads and decodes one key file; also says whether its name is the hash
/// of its content.
fn read_key(backend: &Backend, name: &str) -> Result<(KeyInfo, bool)> {
    let id: KeyId = name.parse().map_err(|e| RepoError::corrupt(format!("key {name}"), e))?;
    let bytes = backend.read(FileKind::Key, name)?;
    let file = KeyFile::decode(&bytes).map_err(|e| RepoError::format(format!("key {}", id.short()), e))?;
    Ok((KeyInfo { id, file }, file_hash(&bytes) == *id.as_bytes()))
}

/// Tries every key file with the password; the first that opens wins.
///
/// A damaged key file is passed over, so that it locks out only its own
/// password: the others still open (check reports the damage). A key file
/// that decodes but sits under another name (two swapped key files) is
/// still tried: its content is authenticated by the password alone.
/// Whether the key files are restic's (JSON with an scrypt KDF): a restic
/// repository has cairn's folder names, and only its keys tell it apart.
pub fn written_by_restic(backend: &Backend) -> bool {
    let Ok(names) = backend.list(FileKind::Key) else { return false };
    let needle: &[u8] = br#""kdf":"scrypt""#;
    names
        .first()
        .and_then(|(name, _)| backend.read(FileKind::Key, name).ok())
        .is_some_and(|raw| raw.starts_with(b"{") && raw.windows(needle.len()).any(|w| w == needle))
}

pub fn unlock(backend: &Backend, password: &[u8]) -> Result<(KeyId, Keyring)> {
    let names = backend.list(FileKind::Key)?;
    if names.is_empty() {
        return Err(RepoError::corrupt("keys/", "the repository has no key files"));
    }
    let mut damaged: Option<RepoError> = None;
    for (name, _) in names {
        let tried = read_key(backend, &name).and_then(|(key, _)| {
            let object = || format!("key {}", key.id.short());
            let salt = key.file.salt().map_err(|e| RepoError::format(object(), e))?;
            let wrapped = key.file.wrapped().map_err(|e| RepoError::format(object(), e))?;
            match Keyring::unwrap(password, &salt, key.file.params(), &wrapped) {
                Ok(ring) => Ok(Some((key.id, ring))),
                Err(CryptoError::Authentication) => Ok(None),
                Err(e) => Err(RepoError::corrupt(object(), e)),
            }
        });
        match tried {
            Ok(Some(found)) => return Ok(found),
            Ok(None) => {}
            // The storage failing is not a damaged key: stop.
            Err(e @ RepoError::Backend(_)) => return Err(e),
            Err(e) => {
                damaged.get_or_insert(e);
            }
        }
    }
    match damaged {
        Some(RepoError::Corrupt { object, reason }) => Err(RepoError::KeyDamaged { object, reason }),
        Some(other) => Err(other),
        None => Err(RepoError::WrongPassword { location: backend.location().to_string() }),
    }
}

/// What `key rotate` did.
#[derive(Debug, Clone, Default)]
pub struct RotateReport {
    /// The epoch new objects are now sealed under.
    pub epoch: u32,
    /// The key file that replaced the one in use.
    pub key: Option<KeyId>,
    /// Other key files removed (they held the old keyring).
    pub keys_removed: usize,
    /// Index files re-encrypted (as one new file).
    pub index_files: usize,
    /// Snapshots re-encrypted (their ids change).
    pub snapshots: usize,
}

impl crate::Repository {
    /// The key file in use.
    fn current_key(&self) -> Result<KeyInfo> {
        list_keys(&self.backend)?
            .into_iter()
            .find(|k| k.id == self.key_id)
            .ok_or_else(|| RepoError::corrupt(format!("key {}", self.key_id.short()), "the key in use is gone"))
    }

    /// Adds a key file opening this repository with another password.
    pub fn add_key(&self, password: &[u8], params: Option<KdfParams>, hostname: &str, username: &str) -> Result<KeyId> {
        let params = match params {
            Some(p) => p,
            None => self.current_key()?.file.params(),
        };
        add_key(&self.backend, &self.keyring, password, params, hostname, username)
    }

    /// Removes a key file. The last key is never removed (the repository
    /// would be lost); the key in use only with `force`.
    pub fn remove_key(&self, id: &KeyId, force: bool) -> Result<()> {
        let keys = list_keys(&self.backend)?;
        if !keys.iter().any(|k| k.id == *id) {
            return Err(RepoError::Invalid(format!("no key {} in this repository (see `cairn key list`)", id.short())));
        }
        if keys.len() == 1 {
            return Err(RepoError::Invalid(format!(
                "key {} is the only key: removing it would make the repository unreadable",
                id.short()
            )));
        }
        if *id == self.key_id && !force {
            return Err(RepoError::Invalid(format!(
                "key {} is the one in use (this password); add --force to remove it anyway",
                id.short()
            )));
        }
        Ok(self.backend.delete(FileKind::Key, &id.to_hex())?)
    }

    /// Replaces the key in use by one for `new_password` (same KDF cost).
    /// The new key file is written before the old one goes.
    pub fn change_password(&mut self, new_password: &[u8], hostname: &str, username: &str) -> Result<KeyId> {
        let old = self.key_id;
        let id = self.add_key(new_password, None, hostname, username)?;
        if id != old {
            self.backend.delete(FileKind::Key, &old.to_hex())?;
        }
        self.key_id = id;
        Ok(id)
    }

    /// Key rotation: a new encryption epoch whose secret only the new key
    /// file holds (docs/FORMAT.md, "Key rotation"). New data, the config,
    /// the index and the snapshots are sealed under it, so someone holding
    /// the old keyring (a leaked key file and its password) reads none of
    /// them. Packs written before keep their epoch and stay readable.
    /// Other key files would keep opening the old keyring, so they must go
    /// (`remove_others`) or the rotation is refused.
    pub fn rotate_key(&mut self, password: &[u8], remove_others: bool) -> Result<RotateReport> {
        let current = self.current_key()?;
        let others: Vec<KeyId> =
            list_keys(&self.backend)?.into_iter().map(|k| k.id).filter(|id| *id != self.key_id).collect();
        if !others.is_empty() && !remove_others {
            return Err(RepoError::Invalid(format!(
                "{} other key(s) exist ({}) and would keep opening the old keyring: remove them first, or add \
                 --remove-other-keys and add them again after the rotation",
                others.len(),
                others.iter().map(|k| k.short()).collect::<Vec<_>>().join(", ")
            )));
        }
        let ring = std::sync::Arc::new(self.keyring.rotated()?);
        // New key file first, then the old ones: at every moment a key opens
        // a keyring that reads everything there is.
        let id = add_key(
            &self.backend,
            &ring,
            password,
            current.file.params(),
            &current.file.hostname,
            &current.file.username,
        )?;
        let mut report = RotateReport { epoch: ring.current_epoch(), key: Some(id), ..RotateReport::default() };
        for old in others.iter().chain(std::iter::once(&self.key_id)).filter(|k| **k != id) {
            self.backend.delete(FileKind::Key, &old.to_hex())?;
            if *old != self.key_id {
                report.keys_removed += 1;
            }
        }
        self.key_id = id;
        self.keyring = ring;
        // The config under the new epoch.
        let sealed = self.keyring.seal(
            ObjectKind::Config,
            &[0; 32],
            &payload::encode(&self.config.encode(), cairn_format::Compression::None),
        )?;
        self.backend.write(FileKind::Config, "", sealed)?;
        // The index as one new file superseding all (old files go after).
        let files = self.index_files()?;
        let all: Vec<cairn_format::IndexId> =
            files.live.iter().map(|(id, _)| *id).chain(files.superseded.iter().copied()).collect();
        if !all.is_empty() {
            let packs = files.live.into_iter().flat_map(|(_, f)| f.packs).collect();
            self.save_index(&IndexFile { supersedes: all.clone(), packs })?;
            for id in &all {
                self.backend.delete(FileKind::Index, &id.to_hex())?;
            }
            report.index_files = all.len();
        }
        // Snapshots: same content, new seal, new id.
        for (id, snap) in self.snapshots()? {
            self.rewrite_snapshot(&id, snap)?;
            report.snapshots += 1;
        }
        Ok(report)
    }
}
