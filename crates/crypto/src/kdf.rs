//! Password-based key derivation (Argon2id) for key files (docs/FORMAT.md, "Key files").

use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

use crate::CryptoError;

/// Argon2id cost parameters, stored in each key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Degree of parallelism (lanes).
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 4 lanes: RFC 9106's second recommended setting
    /// (the OWASP floor is 19 MiB / 2 passes). The lanes are computed in
    /// parallel, so unlocking takes a half (2 cores) to a quarter of the time
    /// one lane took, for the same memory and work per guess.
    fn default() -> Self {
        Self { memory_kib: 64 * 1024, iterations: 3, parallelism: 4 }
    }
}

/// Upper bounds a key file may ask for, so a hostile key file cannot make
/// cairn allocate without bound.
const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
const MAX_ITERATIONS: u32 = 100;
const MAX_PARALLELISM: u32 = 64;

/// Derives the 32-byte key-wrapping key from a password and salt.
pub fn derive(password: &[u8], salt: &[u8], params: KdfParams) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    if params.memory_kib > MAX_MEMORY_KIB || params.iterations > MAX_ITERATIONS || params.parallelism > MAX_PARALLELISM
    {
        return Err(CryptoError::Kdf("cost parameters exceed the allowed maximum".into()));
    }
    let p = Params::new(params.memory_kib, params.iterations, params.parallelism, Some(32))
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, p);
    let mut out = Zeroizing::new([0u8; 32]);
    argon.hash_password_into(password, salt, out.as_mut()).map_err(|e| CryptoError::Kdf(e.to_string()))?;
    Ok(out)
}
