//! Random access to a file of a snapshot: `read_at` over its blob list.
//! A file's [`FileContent`] is small (its blob ids and where each begins)
//! and owned, so a mount keeps one per open file; the decoded blobs come
//! from a [`BlobSource`], which for a view is one cache shared by all.

use std::sync::Arc;

use cairn_format::BlobId;
use cairn_format::tree::{Node, NodeKind};
use cairn_repo::{IndexedRepository, RepoError};

/// Reading a snapshot through the view failed.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// The node is not a regular file.
    #[error("{0} is not a regular file")]
    NotAFile(String),
    /// The path names nothing in the snapshot.
    #[error("{0} not found")]
    NotFound(String),
    /// The repository failed (a damaged or missing blob, the storage).
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// Where a reader gets blobs: their lengths (from the index) and their
/// decoded plaintext (delta chains resolved).
pub trait BlobSource: Sync {
    /// The plaintext length of blob `id`, if the index knows it.
    fn raw_length(&self, id: &BlobId) -> Option<u64>;
    /// The plaintext of blob `id`.
    fn blob(&self, id: &BlobId) -> Result<Arc<Vec<u8>>, RepoError>;
}

impl BlobSource for IndexedRepository {
    fn raw_length(&self, id: &BlobId) -> Option<u64> {
        self.index().get(id).map(|l| u64::from(l.raw_length))
    }
    fn blob(&self, id: &BlobId) -> Result<Arc<Vec<u8>>, RepoError> {
        self.read_blob(id).map(Arc::new)
    }
}

/// One file's content: its blobs and where each begins.
#[derive(Debug, Clone)]
pub struct FileContent {
    blobs: Vec<BlobId>,
    /// `starts[i]` is where blob `i` begins; the last entry is the length.
    starts: Vec<u64>,
}

impl FileContent {
    /// The content of `node`. The blobs' lengths come from `source`'s
    /// index, so a blob the index does not know fails here, not mid-read.
    pub fn new(source: &impl BlobSource, node: &Node) -> Result<Self, ViewError> {
        if node.kind != NodeKind::File {
            return Err(ViewError::NotAFile(node.name.display().to_string()));
        }
        let mut starts = Vec::with_capacity(node.content.len() + 1);
        let mut at = 0u64;
        for id in &node.content {
            starts.push(at);
            at += source.raw_length(id).ok_or(RepoError::BlobNotFound(*id))?;
        }
        starts.push(at);
        Ok(Self { blobs: node.content.clone(), starts })
    }

    /// The content's length.
    pub fn len(&self) -> u64 {
        self.starts.last().copied().unwrap_or(0)
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The blob after the one holding `offset`, if any: what a sequential
    /// reader wants next.
    pub fn blob_after(&self, offset: u64) -> Option<BlobId> {
        let i = self.starts.partition_point(|s| *s <= offset);
        self.blobs.get(i).copied()
    }

    /// Reads up to `buf.len()` bytes at `offset` from `source`; returns how
    /// many (0 at or past the end).
    pub fn read_at(&self, source: &impl BlobSource, offset: u64, buf: &mut [u8]) -> Result<usize, ViewError> {
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            if at >= self.len() {
                break;
            }
            // The blob holding `at`: the last one starting at or before it.
            let i = self.starts.partition_point(|s| *s <= at) - 1;
            let blob = source.blob(&self.blobs[i])?;
            let from = (at - self.starts[i]) as usize;
            let n = (buf.len() - done).min(blob.len().saturating_sub(from));
            if n == 0 {
                // The blob is shorter than the index said: damage, not a loop.
                return Err(RepoError::corrupt(
                    format!("data blob {}", self.blobs[i].short()),
                    "shorter than the index says",
                )
                .into());
            }
            buf[done..done + n].copy_from_slice(&blob[from..from + n]);
            done += n;
        }
        Ok(done)
    }
}

/// A file's content as a sequential reader over its blobs, each verified
/// as read (tar and zip streams, copy's re-chunking). A repository failure
/// is kept aside, since io::Error would lose its type: [`take_error`]
/// gives it back.
///
/// [`take_error`]: ContentReader::take_error
pub struct ContentReader<'a> {
    repo: &'a IndexedRepository,
    blobs: std::slice::Iter<'a, BlobId>,
    current: Vec<u8>,
    at: usize,
    failed: Option<RepoError>,
}

impl<'a> ContentReader<'a> {
    /// A reader of the blobs `blobs`, in order.
    pub fn new(repo: &'a IndexedRepository, blobs: &'a [BlobId]) -> Self {
        Self { repo, blobs: blobs.iter(), current: Vec::new(), at: 0, failed: None }
    }

    /// The repository failure that ended a read, if one did.
    pub fn take_error(&mut self) -> Option<RepoError> {
        self.failed.take()
    }
}

impl std::io::Read for ContentReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            let Some(id) = self.blobs.next() else { return Ok(0) };
            match self.repo.read_blob(id) {
                Ok(b) => (self.current, self.at) = (b, 0),
                Err(e) => {
                    let text = e.to_string();
                    self.failed = Some(e);
                    return Err(std::io::Error::other(text));
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_backend::Backend;
    use cairn_format::BlobKind;
    use cairn_repo::{InitOptions, Repository};
    use proptest::prelude::*;

    /// A repository holding `parts` as data blobs, and the file node of them in order.
    fn file_of(parts: &[Vec<u8>]) -> (IndexedRepository, Node) {
        let repo =
            Repository::init(Backend::memory().expect("memory"), b"pw", &InitOptions::fast_for_tests()).expect("init");
        let mut repo = repo.load_index().expect("index");
        let mut w = repo.repo().pack_writer(BlobKind::Data);
        let mut content = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for p in parts {
            let id = repo.repo().blob_id(p);
            if seen.insert(id) {
                w.add(repo.seal_blob(BlobKind::Data, id, p).expect("seal")).expect("add");
            }
            content.push(id);
        }
        if let Some(pack) = w.finish().expect("finish") {
            let (entry, _) = repo.repo().save_pack(pack).expect("save");
            repo.index_mut().add_pack(&entry);
        }
        let size = parts.iter().map(|p| p.len() as u64).sum();
        (repo, Node { content, size, ..Node::new(b"f", NodeKind::File) })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
        /// Any read anywhere equals the same slice of the whole content.
        #[test]
        fn read_at_equals_the_slice_of_the_content(
            parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 0..8),
            reads in proptest::collection::vec((0u64..2500, 0usize..700), 1..20),
        ) {
            let whole: Vec<u8> = parts.concat();
            let (repo, node) = file_of(&parts);
            let file = FileContent::new(&repo, &node).expect("content");
            prop_assert_eq!(file.len(), whole.len() as u64);
            for (offset, len) in reads {
                let mut buf = vec![0u8; len];
                let n = file.read_at(&repo, offset, &mut buf).expect("read");
                let from = (offset as usize).min(whole.len());
                let to = (from + len).min(whole.len());
                prop_assert_eq!(&buf[..n], &whole[from..to]);
            }
        }
    }

    #[test]
    fn a_blob_missing_from_the_index_fails_when_opening() {
        let (repo, mut node) = file_of(&[b"abc".to_vec()]);
        node.content.push(BlobId::from_bytes([7; 32]));
        assert!(matches!(FileContent::new(&repo, &node), Err(ViewError::Repo(RepoError::BlobNotFound(_)))));
        let dir = Node::new(b"d", NodeKind::Dir);
        assert!(matches!(FileContent::new(&repo, &dir), Err(ViewError::NotAFile(_))));
    }
}
