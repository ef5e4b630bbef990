//! Random access to a file of a snapshot: `read_at` over its blob list.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use cairn_format::BlobId;
use cairn_format::tree::{Node, NodeKind};
use cairn_repo::{IndexedRepository, RepoError};

/// Decoded blobs a reader keeps (chunks average 1 MiB, so a few MiB).
const CACHED_BLOBS: usize = 4;

/// Reading a file failed.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// The node is not a regular file.
    #[error("{0} is not a regular file")]
    NotAFile(String),
    /// The repository failed (a damaged or missing blob, the storage).
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// One file's content, readable at any offset, from any thread.
pub struct FileReader<'a> {
    repo: &'a IndexedRepository,
    blobs: Vec<BlobId>,
    /// `starts[i]` is where blob `i` begins; the last entry is the length.
    starts: Vec<u64>,
    cache: Mutex<VecDeque<(usize, Arc<Vec<u8>>)>>,
}

impl<'a> FileReader<'a> {
    /// A reader of `node`'s content. The blobs' lengths come from the index,
    /// so a blob the index does not know fails here, not mid-read.
    pub fn new(repo: &'a IndexedRepository, node: &Node) -> Result<Self, ViewError> {
        if node.kind != NodeKind::File {
            return Err(ViewError::NotAFile(node.name.display().to_string()));
        }
        let mut starts = Vec::with_capacity(node.content.len() + 1);
        let mut at = 0u64;
        for id in &node.content {
            starts.push(at);
            let loc = repo.index().get(id).ok_or(RepoError::BlobNotFound(*id))?;
            at += u64::from(loc.raw_length);
        }
        starts.push(at);
        Ok(Self { repo, blobs: node.content.clone(), starts, cache: Mutex::new(VecDeque::new()) })
    }

    /// The content's length.
    pub fn len(&self) -> u64 {
        self.starts.last().copied().unwrap_or(0)
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The decoded blob `i`, from the cache or the repository.
    fn blob(&self, i: usize) -> Result<Arc<Vec<u8>>, ViewError> {
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, b)) = cache.iter().find(|(j, _)| *j == i) {
                return Ok(b.clone());
            }
        }
        let data = Arc::new(self.repo.read_blob(&self.blobs[i])?);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHED_BLOBS {
            cache.pop_front();
        }
        cache.push_back((i, data.clone()));
        Ok(data)
    }

    /// Reads up to `buf.len()` bytes at `offset`; returns how many (0 at or
    /// past the end).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, ViewError> {
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            if at >= self.len() {
                break;
            }
            // The blob holding `at`: the last one starting at or before it.
            let i = self.starts.partition_point(|s| *s <= at) - 1;
            let blob = self.blob(i)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_backend::Backend;
    use cairn_format::BlobKind;
    use cairn_repo::{InitOptions, PackWriter, Repository};
    use proptest::prelude::*;

    /// A repository holding `parts` as data blobs, and the file node of them in order.
    fn file_of(parts: &[Vec<u8>]) -> (IndexedRepository, Node) {
        let repo =
            Repository::init(Backend::memory().expect("memory"), b"pw", &InitOptions::fast_for_tests()).expect("init");
        let mut repo = repo.load_index().expect("index");
        let mut w = PackWriter::new(BlobKind::Data, 1 << 20);
        let mut content = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for p in parts {
            let id = repo.repo().blob_id(p);
            if seen.insert(id) {
                w.add(repo.seal_blob(BlobKind::Data, id, p).expect("seal")).expect("add");
            }
            content.push(id);
        }
        if let Some(pack) = w.finish(repo.repo().keyring()).expect("finish") {
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
            let file = FileReader::new(&repo, &node).expect("reader");
            prop_assert_eq!(file.len(), whole.len() as u64);
            for (offset, len) in reads {
                let mut buf = vec![0u8; len];
                let n = file.read_at(offset, &mut buf).expect("read");
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
        assert!(matches!(FileReader::new(&repo, &node), Err(ViewError::Repo(RepoError::BlobNotFound(_)))));
        let dir = Node::new(b"d", NodeKind::Dir);
        assert!(matches!(FileReader::new(&repo, &dir), Err(ViewError::NotAFile(_))));
    }
}
