//! Chunking a `Read` stream with a bounded buffer (one maximum-size chunk and 1 MiB).

use std::io::{self, Read};

use crate::Chunker;

/// Bytes read from the source at a time, beyond the maximum chunk size.
const READ_BLOCK: usize = 1 << 20;

/// Yields the chunks of a reader as owned buffers, holding at most
/// `max_size` + 1 MiB at a time.
pub struct StreamChunker<'c, R> {
    chunker: &'c Chunker,
    reader: R,
    buf: Vec<u8>,
    start: usize,
    eof: bool,
    /// Bytes read from the source so far.
    pub bytes_read: u64,
}

impl<'c, R: Read> StreamChunker<'c, R> {
    /// Starts chunking `reader`.
    pub fn new(chunker: &'c Chunker, reader: R) -> Self {
        Self::with_size_hint(chunker, reader, 0)
    }

    /// Starts chunking `reader`, which is expected to hold `size` bytes: a
    /// small file is then read in one call and its end found by a second,
    /// instead of the doubling reads `read_to_end` makes into an empty
    /// buffer (seven calls a file on a tree of small files).
    pub fn with_size_hint(chunker: &'c Chunker, reader: R, size: u64) -> Self {
        // Room for the end-of-file probe too, and never more than one fill
        // (READ_BLOCK): a large file's buffer grows as it is read, as
        // without a hint, instead of starting at a chunk of the largest size.
        let room = (size as usize).min(READ_BLOCK) + 64;
        let buf = if size > 0 { Vec::with_capacity(room) } else { Vec::new() };
        Self { chunker, reader, buf, start: 0, eof: false, bytes_read: 0 }
    }

    fn fill(&mut self) -> io::Result<()> {
        let max = self.chunker.params().max_size as usize;
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        // `read_to_end` on a `Take` grows the buffer as data arrives instead of
        // zero-filling the whole window first, which for small files would
        // cost a 2 * max_size memset each.
        // A cut is searched in what is buffered and more is read, a block
        // at a time, only when none is found: the buffer holds a chunk and a
        // block (2 MiB on average, not max + READ_BLOCK on every reader),
        // what is moved to the front on a refill is a short tail, and
        // max + READ_BLOCK still bounds it.
        let want = (max + READ_BLOCK).saturating_sub(self.buf.len()).min(READ_BLOCK) as u64;
        if want > 0 && !self.eof {
            let n = (&mut self.reader).take(want).read_to_end(&mut self.buf)? as u64;
            self.bytes_read += n;
            if n < want {
                self.eof = true;
            }
        }
        Ok(())
    }

    /// The next chunk, `Ok(None)` at the end of input.
    pub fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            let pending = &self.buf[self.start..];
            if let Some(n) = self.chunker.next_cut(pending, self.eof) {
                if self.start == 0 && n == self.buf.len() {
                    // The whole buffer, most often a small file: no copy.
                    return Ok(Some(std::mem::take(&mut self.buf)));
                }
                let chunk = pending[..n].to_vec();
                self.start += n;
                return Ok(Some(chunk));
            }
            if self.eof {
                return Ok(None);
            }
            self.fill()?;
        }
    }
}

impl<R: Read> Iterator for StreamChunker<'_, R> {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_chunk().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChunkerParams;

    fn chunker() -> Chunker {
        let params = ChunkerParams { min_size: 1024, avg_size: 4096, max_size: 16 * 1024 };
        Chunker::new(params, &[7; 32]).unwrap()
    }

    fn chunked(data: &[u8], hint: u64) -> Vec<Vec<u8>> {
        StreamChunker::with_size_hint(&chunker(), data, hint).collect::<io::Result<_>>().unwrap()
    }

    #[test]
    fn a_wrong_size_hint_changes_neither_the_bytes_nor_the_cuts() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let exact = chunked(&data, 0);
        assert!(exact.len() > 10);
        assert_eq!(exact.concat(), data);
        // A file that grew or shrank between the walk's stat and the read.
        for hint in [1, 100, 5_000, 199_999, 200_000, 200_001, 10_000_000] {
            assert_eq!(chunked(&data, hint), exact, "hint {hint}");
        }
        // A small file: one chunk, the buffer handed over whole.
        for hint in [0, 1, 500, 999, 5_000] {
            assert_eq!(chunked(&data[..999], hint), vec![data[..999].to_vec()], "hint {hint}");
        }
        assert!(chunked(&[], 10).is_empty());
    }
}
