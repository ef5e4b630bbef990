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
        Self { chunker, reader, buf: Vec::new(), start: 0, eof: false, bytes_read: 0 }
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
