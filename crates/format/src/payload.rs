//! The plaintext inside every envelope: a compression flag, then the bytes
//! (docs/FORMAT.md, "Payload"); for delta blobs, the base blob's id and a
//! zstd frame coded against the base's plaintext.

use std::cell::RefCell;

use zstd::zstd_safe::{CCtx, CParameter, DCtx};

use crate::{BlobId, FormatError};

thread_local! {
    // zstd contexts are costly to create (hundreds of KiB each); every thread
    // keeps one of each for all the blobs it handles.
    static COMPRESSORS: RefCell<Vec<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(Vec::new()) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Appends the zstd frame of `data` to `out` (into its spare capacity, no
/// intermediate buffer); returns the frame's size.
fn compress_onto(data: &[u8], level: i32, out: &mut Vec<u8>) -> std::io::Result<usize> {
    COMPRESSORS.with(|c| {
        let mut c = c.borrow_mut();
        let i = match c.iter().position(|(l, _)| *l == level) {
            Some(i) => i,
            None => {
                c.push((level, zstd::bulk::Compressor::new(level)?));
                c.len() - 1
            }
        };
        out.reserve(zstd::zstd_safe::compress_bound(data.len()));
        let mut at_end = std::io::Cursor::new(out);
        at_end.set_position(at_end.get_ref().len() as u64);
        c[i].1.compress_to_buffer(data, &mut at_end)
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
/// Flag byte: a base blob id, then one zstd frame that needs the base's
/// plaintext as its prefix.
pub const FLAG_DELTA: u8 = 2;

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
    SAMPLE_BUF.with(|b| {
        let mut b = b.borrow_mut();
        b.clear();
        match compress_onto(&data[mid..mid + SAMPLE], 1, &mut b) {
            Ok(n) => (n as f64) < SAMPLE as f64 * SAMPLE_RATIO,
            Err(_) => false,
        }
    })
}

thread_local! {
    // The sample test runs for every large chunk: one buffer per thread.
    static SAMPLE_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The most bytes [`encode_onto`] appends for `len` bytes of data.
pub fn encoded_bound(len: usize) -> usize {
    1 + zstd::zstd_safe::compress_bound(len).max(len)
}

/// Encodes `data` as a payload: the flag byte and the (maybe compressed) bytes.
pub fn encode(data: &[u8], compression: Compression) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1);
    encode_onto(data, compression, &mut out);
    out
}

/// Appends the payload of `data` to `out`: what [`encode`] returns, without
/// a buffer of its own (the sealer writes it straight into the envelope).
pub fn encode_onto(data: &[u8], compression: Compression, out: &mut Vec<u8>) {
    let start = out.len();
    if let Compression::Zstd(level) = compression
        && looks_compressible(data)
    {
        out.push(FLAG_ZSTD);
        match compress_onto(data, level, out) {
            Ok(n) if n < data.len() => return,
            // Did not pay (or failed): stored instead.
            _ => out.truncate(start),
        }
    }
    out.push(FLAG_STORED);
    out.extend_from_slice(data);
}

/// Codes `data` against `base` (the plaintext of blob `base_id`): zstd at
/// `level` with the base as prefix, so what the two share costs a few bytes.
/// The caller compares the size with [`encode`]'s and keeps the smaller.
pub fn encode_delta(data: &[u8], base_id: &BlobId, base: &[u8], level: i32) -> Result<Vec<u8>, FormatError> {
    let zerr = |code| FormatError::Decompress(zstd::zstd_safe::get_error_name(code).to_string());
    // A context per call: a prefix is borrowed for one frame, so a
    // long-lived context cannot hold it; the allocation is small next to
    // coding a chunk.
    let mut cctx = CCtx::create();
    cctx.set_parameter(CParameter::CompressionLevel(level)).map_err(zerr)?;
    // The window must reach back over the whole base.
    cctx.set_parameter(CParameter::WindowLog(window_log(base.len() + data.len()))).map_err(zerr)?;
    cctx.set_parameter(CParameter::ContentSizeFlag(true)).map_err(zerr)?;
    // Long-distance matching finds the long runs shared with the base that
    // the regular match finder's small tables lose over a large prefix
    // (what `zstd --patch-from` does too). On a 512 MiB dump without it,
    // level 1 found nearly nothing (114.6 MiB of deltas against 1.5 MiB);
    // a 2^20-entry hash table instead matched LDM's size at more CPU.
    cctx.set_parameter(CParameter::EnableLongDistanceMatching(true)).map_err(zerr)?;
    cctx.ref_prefix(base).map_err(zerr)?;
    let mut out = Vec::with_capacity(1 + 32 + zstd::zstd_safe::compress_bound(data.len()));
    out.push(FLAG_DELTA);
    out.extend_from_slice(base_id.as_bytes());
    let mut frame = Vec::with_capacity(zstd::zstd_safe::compress_bound(data.len()));
    cctx.compress2(&mut frame, data).map_err(zerr)?;
    out.extend_from_slice(&frame);
    Ok(out)
}

/// Smallest zstd window log that spans `n` bytes (zstd's bounds: 10..=27).
fn window_log(n: usize) -> u32 {
    let bits = usize::BITS - n.max(1).saturating_sub(1).leading_zeros();
    bits.clamp(10, 27)
}

/// The base blob a delta payload needs, or `None` for other payloads.
pub fn delta_base(payload: &[u8]) -> Result<Option<BlobId>, FormatError> {
    match payload.split_first() {
        Some((&FLAG_DELTA, rest)) => {
            let id: [u8; 32] =
                rest.get(..32).and_then(|b| b.try_into().ok()).ok_or(FormatError::Truncated("delta base id"))?;
            Ok(Some(BlobId::from_bytes(id)))
        }
        Some(_) => Ok(None),
        None => Err(FormatError::Truncated("payload flag")),
    }
}

/// Decodes a delta payload given its base's plaintext, refusing to produce
/// more than `limit` bytes.
pub fn decode_delta(payload: &[u8], base: &[u8], limit: usize) -> Result<Vec<u8>, FormatError> {
    if delta_base(payload)?.is_none() {
        return Err(FormatError::Invalid("not a delta payload"));
    }
    let frame = &payload[1 + 32..];
    let cap = frame_capacity(frame, limit)?;
    let zerr = |code| FormatError::Decompress(zstd::zstd_safe::get_error_name(code).to_string());
    let mut dctx = DCtx::create();
    dctx.ref_prefix(base).map_err(zerr)?;
    let mut out = Vec::with_capacity(cap);
    dctx.decompress(&mut out, frame).map_err(zerr)?;
    Ok(out)
}

/// Output capacity for a zstd frame: its declared size if within `limit`.
fn frame_capacity(frame: &[u8], limit: usize) -> Result<usize, FormatError> {
    match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(n)) if n <= limit as u64 => Ok(n as usize),
        Ok(Some(_)) => Err(FormatError::Invalid("payload larger than allowed")),
        _ => Ok(limit),
    }
}

/// Decodes the payload `buf[range]`, reusing `buf` for a stored payload
/// (moved to its front rather than copied out), refusing to produce more
/// than `limit` bytes. Delta payloads need their base: see [`decode_delta`].
pub fn decode_in(mut buf: Vec<u8>, range: std::ops::Range<usize>, limit: usize) -> Result<Vec<u8>, FormatError> {
    let payload = buf.get(range.clone()).ok_or(FormatError::Truncated("payload"))?;
    if payload.first() != Some(&FLAG_STORED) {
        return decode(payload, limit);
    }
    if payload.len() - 1 > limit {
        return Err(FormatError::Invalid("payload larger than allowed"));
    }
    buf.copy_within(range.start + 1..range.end, 0);
    buf.truncate(range.len() - 1);
    Ok(buf)
}

/// Decodes a payload, refusing to produce more than `limit` bytes. Delta
/// payloads need their base: see [`decode_delta`].
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
            let cap = frame_capacity(body, limit)?;
            decompress(body, cap).map_err(|e| FormatError::Decompress(e.to_string()))
        }
        FLAG_DELTA => Err(FormatError::Invalid("delta payload read without its base blob")),
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
        // Decoded in a larger buffer (an envelope's), as decode does.
        let mut buf = vec![7u8; 5];
        buf.extend_from_slice(&p);
        buf.extend_from_slice(&[9; 3]);
        let range = 5..5 + p.len();
        assert_eq!(decode_in(buf.clone(), range.clone(), data.len()).unwrap(), data);
        assert!(decode_in(buf.clone(), range.clone(), data.len() - 1).is_err(), "the limit holds");
        assert!(decode_in(buf, 5..5 + p.len() + 4, data.len()).is_err(), "a range past the end");
        let z = encode(&[0u8; 10_000], Compression::Zstd(3));
        let mut zbuf = vec![1, 2];
        zbuf.extend_from_slice(&z);
        assert_eq!(decode_in(zbuf, 2..2 + z.len(), 10_000).unwrap(), vec![0u8; 10_000]);
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

    #[test]
    fn delta_codes_a_small_edit_in_a_few_bytes() {
        let base: Vec<u8> =
            (0..300_000u32).flat_map(|i| format!("row {i} {}\n", i * 7919 % 1000).into_bytes()).collect();
        let mut data = base.clone();
        data[150_000..150_010].copy_from_slice(b"CHANGED!!!");
        data.extend_from_slice(b"appended row\n");
        let id = BlobId::from_bytes([7; 32]);
        let d = encode_delta(&data, &id, &base, 3).expect("encode");
        let plain = encode(&data, Compression::Zstd(3));
        assert!(d.len() * 20 < plain.len(), "delta {} vs plain {}", d.len(), plain.len());
        assert_eq!(delta_base(&d).ok(), Some(Some(id)));
        assert_eq!(decode_delta(&d, &base, data.len()).ok(), Some(data.clone()));
        // Without its base, or with another, it does not decode to the data.
        assert!(decode(&d, data.len()).is_err());
        assert_ne!(decode_delta(&d, &base[1..], data.len()).ok(), Some(data.clone()));
        assert!(decode_delta(&d, &base, data.len() - 1).is_err());
        assert!(decode_delta(&d[..20], &base, data.len()).is_err());
        assert_eq!(delta_base(&plain).ok(), Some(None));
    }

    #[test]
    fn encode_onto_appends_after_what_is_there() {
        // The sealer writes the payload after the envelope's header: the
        // bytes before must stay, and the payload must be `encode`'s.
        let text: Vec<u8> = (0..50_000u32).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
        let noise: Vec<u8> = (0..70_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for data in [&text[..], &noise[..], b"short"] {
            let mut out = b"header".to_vec();
            encode_onto(data, Compression::Zstd(1), &mut out);
            assert_eq!(&out[..6], b"header");
            assert_eq!(out[6..], encode(data, Compression::Zstd(1)));
            assert!(out.len() - 6 <= encoded_bound(data.len()));
            assert_eq!(decode(&out[6..], data.len()).ok().as_deref(), Some(data));
        }
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
