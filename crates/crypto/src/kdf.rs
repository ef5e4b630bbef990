//! Password-based key derivation (Argon2id) for key files (docs/FORMAT.md, "Key files").

use argon2::{Algorithm, Argon2, Block, Params, Version};
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
    let blocks = p.block_count();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, p);
    // The 64 MiB is touched once, in 4 KiB pages: 16,000 page faults, a
    // third of unlocking's time on the benchmark machine. Asked for huge
    // pages before it is first written, it takes a few dozen.
    let mut memory: Vec<Block> = Vec::with_capacity(blocks);
    advise_huge_pages(memory.as_ptr().cast(), blocks * std::mem::size_of::<Block>());
    memory.resize(blocks, Block::default());
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into_with_memory(password, salt, out.as_mut(), &mut memory)
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    Ok(out)
}

/// Asks the kernel to back the whole 2 MiB pages inside `[ptr, ptr + len)`
/// with transparent huge pages (honoured when THP is set to `madvise` or
/// `always`; a hint only, so failure is ignored). Memory touched once in
/// full, like Argon2's, then costs one fault per 2 MiB instead of per 4 KiB.
pub fn advise_huge_pages(ptr: *const u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = (ptr as usize).next_multiple_of(HUGE);
        let end = (ptr as usize).saturating_add(len) / HUGE * HUGE;
        if end > start {
            // SAFETY: madvise with MADV_HUGEPAGE changes how the kernel backs
            // these pages, never their contents; the range lies inside an
            // allocation the caller owns.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_what_argon2_derives_with_its_own_memory() {
        // 8 MiB, so the huge-page hint covers whole 2 MiB pages; 4 lanes
        // as new key files use. Key files written before the memory was
        // ours must still open: the key is argon2's, bit for bit.
        let params = KdfParams { memory_kib: 8 * 1024, iterations: 1, parallelism: 4 };
        let ours = derive(b"password", b"somesaltsomesalt", params).unwrap_or_else(|e| panic!("derive: {e}"));
        let p = Params::new(params.memory_kib, params.iterations, params.parallelism, Some(32))
            .unwrap_or_else(|e| panic!("params: {e}"));
        let mut theirs = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, p)
            .hash_password_into(b"password", b"somesaltsomesalt", &mut theirs)
            .unwrap_or_else(|e| panic!("argon2: {e}"));
        assert_eq!(*ours, theirs);
    }
}
