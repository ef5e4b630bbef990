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
    let blocks = p.block_count();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, p);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into_with_memory(password, salt, out.as_mut(), WorkMemory::map(blocks)?)
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    Ok(out)
}

/// Argon2's working memory (64 MiB by default), mapped for this derivation
/// alone. The allocator would hand it out zeroed by a `memset` on one
/// thread (Argon2's blocks are 64-byte aligned, which `calloc` does not
/// promise), faulting in 16,384 pages before the lanes start; a fresh
/// mapping is zero already, and asked for huge pages it faults in 32 of
/// them. Unlocking a repository took 0.06-0.07 s instead of 0.10-0.11 on
/// the benchmark machine (docs/BENCHMARKS.md), for the same work per guess.
/// Unmapping returns the pages to the kernel, which zeroes them before any
/// other use.
struct WorkMemory {
    start: std::ptr::NonNull<argon2::Block>,
    blocks: usize,
}

impl WorkMemory {
    fn map(blocks: usize) -> Result<WorkMemory, CryptoError> {
        let failed =
            || CryptoError::Kdf(format!("could not map {} MiB of working memory", Self::bytes_of(blocks) >> 20));
        // SAFETY: an anonymous private mapping of fresh pages, aliasing nothing.
        let start = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                Self::bytes_of(blocks),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if start == libc::MAP_FAILED {
            return Err(failed());
        }
        // Only a hint: where huge pages are off (`transparent_hugepage`
        // "never") the derivation runs on small pages, as before.
        // SAFETY: advises on the mapping just made.
        #[cfg(target_os = "linux")]
        unsafe {
            libc::madvise(start, Self::bytes_of(blocks), libc::MADV_HUGEPAGE)
        };
        let start = std::ptr::NonNull::new(start.cast()).ok_or_else(failed)?;
        Ok(WorkMemory { start, blocks })
    }

    fn bytes_of(blocks: usize) -> usize {
        blocks * std::mem::size_of::<argon2::Block>()
    }
}

impl AsMut<[argon2::Block]> for WorkMemory {
    fn as_mut(&mut self) -> &mut [argon2::Block] {
        // SAFETY: the mapping is page-aligned (Block asks 64 bytes), holds
        // `blocks` blocks, starts zeroed (a valid Block is any bytes), and
        // lives and is borrowed only through `self`.
        unsafe { std::slice::from_raw_parts_mut(self.start.as_ptr(), self.blocks) }
    }
}

impl Drop for WorkMemory {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `map` made; no borrow outlives self.
        unsafe { libc::munmap(self.start.as_ptr().cast(), Self::bytes_of(self.blocks)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mapped memory must not change a single derived byte: every key
    /// file written before it (and by any other Argon2id) has to open.
    #[test]
    fn mapped_memory_derives_what_the_library_derives_with_its_own() {
        let salt = b"sixteen byte salt";
        for params in [
            KdfParams { memory_kib: 8, iterations: 1, parallelism: 1 },
            KdfParams { memory_kib: 4096, iterations: 2, parallelism: 3 },
            KdfParams::default(),
        ] {
            let p = Params::new(params.memory_kib, params.iterations, params.parallelism, Some(32)).unwrap();
            let mut library = [0u8; 32];
            Argon2::new(Algorithm::Argon2id, Version::V0x13, p)
                .hash_password_into(b"correct horse", salt, &mut library)
                .unwrap();
            assert_eq!(*derive(b"correct horse", salt, params).unwrap(), library, "{params:?}");
        }
    }
}
