//! Chunking a `Read` stream with a bounded buffer (at most two maximum-size chunks).

use std::io::{self, Read};

use crate::Chunker;

/// Yields the chunks of a reader as owned buffers, holding at most
/// `2 * max_size` bytes at a time.
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
        let want = 2 * max;
        while self.buf.len() < want && !self.eof {
            let old = self.buf.len();
            self.buf.resize(want, 0);
            match self.reader.read(&mut self.buf[old..]) {
                Ok(0) => {
                    self.buf.truncate(old);
                    self.eof = true;
                }
                Ok(n) => {
                    self.buf.truncate(old + n);
                    self.bytes_read += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.buf.truncate(old),
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(e);
                }
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
