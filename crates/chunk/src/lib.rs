//! Content-defined chunking: bytes in, cut points out, no I/O.
//!
//! FastCDC 2020 (the `fastcdc` crate's `v2020::cut_gear`) with normalization
//! level 1, driven with a gear table derived from a repository secret so chunk
//! boundaries do not fingerprint content across repositories
//! (docs/FORMAT.md, "Chunking").
//!
//! ```
//! use cairn_chunk::{Chunker, ChunkerParams};
//! let params = ChunkerParams { min_size: 1024, avg_size: 4096, max_size: 16384 };
//! let chunker = Chunker::new(params, &[9; 32]).unwrap();
//! let data: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
//! let chunks: Vec<&[u8]> = chunker.chunks(&data).collect();
//! assert_eq!(chunks.concat(), data);
//! assert!(chunks.iter().all(|c| c.len() <= 16384));
//! ```

use fastcdc::v2020::{self, Normalization};

mod stream;
pub use stream::StreamChunker;

/// Chunk size bounds, stored in the repository config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkerParams {
    /// No cut before this many bytes (except at the end of input).
    pub min_size: u32,
    /// Target average chunk size; a power of two.
    pub avg_size: u32,
    /// A cut is forced at this many bytes.
    pub max_size: u32,
}

impl Default for ChunkerParams {
    /// 512 KiB / 1 MiB / 8 MiB: restic's proven trade-off between dedup
    /// granularity and index size.
    fn default() -> Self {
        Self { min_size: 512 * 1024, avg_size: 1024 * 1024, max_size: 8 * 1024 * 1024 }
    }
}

/// Parameters outside what FastCDC 2020 supports.
#[derive(Debug, thiserror::Error)]
#[error("invalid chunker parameters: {0}")]
pub struct ParamsError(&'static str);

impl ChunkerParams {
    /// Checks the bounds FastCDC 2020 supports.
    pub fn validate(&self) -> Result<(), ParamsError> {
        let (min, avg, max) = (self.min_size as usize, self.avg_size as usize, self.max_size as usize);
        if !(v2020::MINIMUM_MIN..=v2020::MINIMUM_MAX).contains(&min) {
            return Err(ParamsError("min_size must be between 64 B and 1 MiB"));
        }
        if !(v2020::AVERAGE_MIN..=v2020::AVERAGE_MAX).contains(&avg) || !avg.is_power_of_two() {
            return Err(ParamsError("avg_size must be a power of two between 256 B and 4 MiB"));
        }
        if !(v2020::MAXIMUM_MIN..=v2020::MAXIMUM_MAX).contains(&max) {
            return Err(ParamsError("max_size must be between 1 KiB and 16 MiB"));
        }
        if !(min < avg && avg < max) || min % 2 != 0 || max % 2 != 0 {
            return Err(ParamsError("need min_size < avg_size < max_size, all even"));
        }
        Ok(())
    }
}

/// A configured chunker: parameters, masks and the keyed gear tables.
#[derive(Clone)]
pub struct Chunker {
    params: ChunkerParams,
    mask_s: u64,
    mask_l: u64,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
}

impl std::fmt::Debug for Chunker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunker").field("params", &self.params).finish_non_exhaustive()
    }
}

/// Derives the 256-entry gear table: the first 2048 bytes of the keyed BLAKE3
/// XOF of the ASCII string `gear`, read as little-endian u64s.
fn gear_table(key: &[u8; 32]) -> Box<[u64; 256]> {
    let mut bytes = [0u8; 256 * 8];
    blake3::Hasher::new_keyed(key).update(b"gear").finalize_xof().fill(&mut bytes);
    let mut table = Box::new([0u64; 256]);
    for (slot, b) in table.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        *slot = u64::from_le_bytes(w);
    }
    table
}

impl Chunker {
    /// Builds a chunker whose gear table derives from `key`.
    pub fn new(params: ChunkerParams, key: &[u8; 32]) -> Result<Self, ParamsError> {
        params.validate()?;
        let (mask_s, mask_l) = v2020::select_masks(params.avg_size as usize, Normalization::Level1);
        let gear = gear_table(key);
        let mut gear_ls = Box::new([0u64; 256]);
        for (ls, g) in gear_ls.iter_mut().zip(gear.iter()) {
            *ls = g << 1;
        }
        Ok(Self { params, mask_s, mask_l, gear, gear_ls })
    }

    /// The parameters this chunker was built with.
    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// Length of the first chunk of `buf`. When `eof` is false and no cut
    /// point exists in `buf` (shorter than `max_size`), returns `None`: the
    /// caller must supply more data.
    pub fn next_cut(&self, buf: &[u8], eof: bool) -> Option<usize> {
        if buf.is_empty() {
            return None;
        }
        let max = self.params.max_size as usize;
        let (_, n) = v2020::cut_gear(
            buf,
            self.params.min_size as usize,
            self.params.avg_size as usize,
            max,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear[..],
            &self.gear_ls[..],
        );
        // A cut at the very end of a short buffer only means "no boundary yet"
        // unless the input has ended or the maximum size forced it.
        if n == buf.len() && !eof && buf.len() < max { None } else { Some(n) }
    }

    /// Splits an in-memory buffer into chunks.
    pub fn chunks<'a>(&'a self, data: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut rest = data;
        std::iter::from_fn(move || {
            let n = self.next_cut(rest, true)?;
            let (c, r) = rest.split_at(n);
            rest = r;
            Some(c)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn small() -> ChunkerParams {
        ChunkerParams { min_size: 256, avg_size: 1024, max_size: 4096 }
    }

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn key_changes_boundaries() {
        let data = pseudo_random(200_000, 1);
        let a: Vec<usize> = Chunker::new(small(), &[1; 32]).unwrap().chunks(&data).map(|c| c.len()).collect();
        let b: Vec<usize> = Chunker::new(small(), &[2; 32]).unwrap().chunks(&data).map(|c| c.len()).collect();
        assert_ne!(a, b);
    }

    #[test]
    fn insertion_only_disturbs_nearby_chunks() {
        let c = Chunker::new(small(), &[1; 32]).unwrap();
        let data = pseudo_random(400_000, 2);
        let mut edited = data.clone();
        edited.splice(200_000..200_000, [0xAAu8; 100]);
        let before: std::collections::HashSet<&[u8]> = c.chunks(&data).collect();
        let after: Vec<&[u8]> = c.chunks(&edited).collect();
        let new = after.iter().filter(|ch| !before.contains(*ch)).count();
        assert!(new <= 3, "{new} new chunks after a 100-byte insertion");
    }

    #[test]
    fn rejects_bad_params() {
        assert!(Chunker::new(ChunkerParams { min_size: 10, avg_size: 1024, max_size: 4096 }, &[0; 32]).is_err());
        assert!(Chunker::new(ChunkerParams { min_size: 256, avg_size: 1000, max_size: 4096 }, &[0; 32]).is_err());
        assert!(Chunker::new(ChunkerParams { min_size: 4096, avg_size: 1024, max_size: 8192 }, &[0; 32]).is_err());
    }

    proptest! {
        #[test]
        fn chunks_cover_input_within_bounds(len in 0usize..50_000, seed in any::<u64>()) {
            let c = Chunker::new(small(), &[5; 32]).unwrap();
            let data = pseudo_random(len, seed);
            let chunks: Vec<&[u8]> = c.chunks(&data).collect();
            prop_assert_eq!(chunks.concat(), data.clone());
            for (i, ch) in chunks.iter().enumerate() {
                prop_assert!(ch.len() <= 4096);
                if i + 1 < chunks.len() { prop_assert!(ch.len() >= 256); }
            }
            // Streaming gives the same boundaries as the in-memory split.
            let streamed: Vec<Vec<u8>> = StreamChunker::new(&c, &data[..]).collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(streamed.len(), chunks.len());
            for (a, b) in streamed.iter().zip(chunks.iter()) { prop_assert_eq!(&a[..], *b); }
        }
    }
}
