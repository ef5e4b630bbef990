//! The plaintext inside every envelope: a compression flag, then the bytes
//! (docs/FORMAT.md, "Payload").

use std::cell::RefCell;

use crate::FormatError;

thread_local! {
    // zstd contexts are costly to create (hundreds of KiB each); every thread
    // keeps one of each for all the blobs it handles.
    static COMPRESSORS: RefCell<Vec<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(Vec::new()) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

fn compress(data: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    COMPRESSORS.with(|c| {
        let mut c = c.borrow_mut();
        let i = match c.iter().position(|(l, _)| *l == level) {
            Some(i) => i,
            None => {
                c.push((level, zstd::bulk::Compressor::new(level)?));
                c.len() - 1
            }
        };
        c[i].1.compress(data)
    })
}

fn decompress(data: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        match d.as_mut() {
            Some(z) => z.decompress(data, capacity),
            None => zstd::bulk::decompress(data, capacity),
        }
    })
}

/// Flag byte: stored as is.
pub const FLAG_STORED: u8 = 0;
/// Flag byte: one zstd frame.
pub const FLAG_ZSTD: u8 = 1;

/// How to encode a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Store as is.
    None,
    /// zstd at this level; skipped when it does not pay.
    Zstd(i32),
}

/// Size of the sample compressed to decide whether compression pays.
const SAMPLE: usize = 16 * 1024;
/// A sample must shrink below this share of its size for the whole to be compressed.
const SAMPLE_RATIO: f64 = 0.97;

/// True when a cheap level-1 compression of a sample from the middle of
/// `data` shrinks it: media and encrypted data fail this and are stored raw
/// without paying for a full compression.
pub fn looks_compressible(data: &[u8]) -> bool {
    if data.len() <= 2 * SAMPLE {
        return true;
    }
    let mid = data.len() / 2 - SAMPLE / 2;
    match compress(&data[mid..mid + SAMPLE], 1) {
        Ok(c) => (c.len() as f64) < SAMPLE as f64 * SAMPLE_RATIO,
        Err(_) => false,
    }
}

/// Encodes `data` as a payload: the flag byte and the (maybe compressed) bytes.
pub fn encode(data: &[u8], compression: Compression) -> Vec<u8> {
    if let Compression::Zstd(level) = compression
        && looks_compressible(data)
        && let Ok(c) = compress(data, level)
        && c.len() < data.len()
    {
        let mut out = Vec::with_capacity(c.len() + 1);
        out.push(FLAG_ZSTD);
        out.extend_from_slice(&c);
        return out;
    }
    let mut out = Vec::with_capacity(data.len() + 1);
    out.push(FLAG_STORED);
    out.extend_from_slice(data);
    out
}

/// Decodes a payload, refusing to produce more than `limit` bytes.
pub fn decode(payload: &[u8], limit: usize) -> Result<Vec<u8>, FormatError> {
    let (&flag, body) = payload.split_first().ok_or(FormatError::Truncated("payload flag"))?;
    match flag {
        FLAG_STORED => {
            if body.len() > limit {
                return Err(FormatError::Invalid("payload larger than allowed"));
            }
            Ok(body.to_vec())
        }
        FLAG_ZSTD => {
            // The frame header may declare its size; trust it only within the limit.
            let cap = match zstd::zstd_safe::get_frame_content_size(body) {
                Ok(Some(n)) if n <= limit as u64 => n as usize,
                Ok(Some(_)) => return Err(FormatError::Invalid("payload larger than allowed")),
                _ => limit,
            };
            decompress(body, cap).map_err(|e| FormatError::Decompress(e.to_string()))
        }
        _ => Err(FormatError::Invalid("unknown compression flag")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn incompressible_is_stored() {
        let mut x = 0x9E3779B97F4A7C15u64;
        let data: Vec<u8> = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(!looks_compressible(&data));
        let p = encode(&data, Compression::Zstd(3));
        assert_eq!(p[0], FLAG_STORED);
        assert_eq!(p.len(), data.len() + 1);
    }

    #[test]
    fn limit_is_enforced() {
        let p = encode(&[0u8; 100_000], Compression::Zstd(3));
        assert!(decode(&p, 99_999).is_err());
        assert_eq!(decode(&p, 100_000).map(|v| v.len()).ok(), Some(100_000));
        assert!(decode(&[], 10).is_err());
        assert!(decode(&[7, 1, 2], 10).is_err());
        assert!(decode(&[FLAG_ZSTD, 1, 2, 3], 10).is_err());
    }

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(0u8..4, 0..5000), level in 1i32..5) {
            let p = encode(&data, Compression::Zstd(level));
            prop_assert_eq!(decode(&p, data.len()).ok(), Some(data.clone()));
            let p = encode(&data, Compression::None);
            prop_assert_eq!(decode(&p, data.len()).ok(), Some(data));
        }
    }
}
