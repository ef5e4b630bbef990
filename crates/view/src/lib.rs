//! The read side of a repository, for everything that reads snapshots
//! without restoring them (mount, browsing; issue 16). So far: random
//! access to one file's content, [`FileReader::read_at`], over its list of
//! blobs: prefix sums of the blobs' plaintext lengths locate an offset by
//! binary search, delta chains are resolved by the repository, and a small
//! cache of decoded blobs serves neighbouring reads (a reader going through
//! a file in 4 KiB or 128 KiB pieces decodes each blob once).
//!
//! ```
//! use cairn_backend::Backend;
//! use cairn_format::BlobKind;
//! use cairn_format::tree::{Bytes, Node, NodeKind, Time};
//! use cairn_repo::{InitOptions, PackWriter, Repository};
//! use cairn_view::FileReader;
//!
//! let repo = Repository::init(Backend::memory().unwrap(), b"pw", &InitOptions::fast_for_tests()).unwrap();
//! let mut repo = repo.load_index().unwrap();
//! let (a, b) = (b"hello, ".to_vec(), b"world".to_vec());
//! let mut w = PackWriter::new(BlobKind::Data, 1 << 20);
//! let mut content = Vec::new();
//! for part in [&a, &b] {
//!     let id = repo.repo().blob_id(part);
//!     w.add(repo.seal_blob(BlobKind::Data, id, part).unwrap()).unwrap();
//!     content.push(id);
//! }
//! let (entry, _) = repo.repo().save_pack(w.finish(repo.repo().keyring()).unwrap().unwrap()).unwrap();
//! repo.index_mut().add_pack(&entry);
//!
//! let node = Node { content, size: 12, ..Node::new(b"greeting", NodeKind::File) };
//! let file = FileReader::new(&repo, &node).unwrap();
//! let mut buf = [0u8; 8];
//! let n = file.read_at(5, &mut buf).unwrap();
//! assert_eq!(&buf[..n], b", world");
//! ```

mod reader;

pub use reader::{FileReader, ViewError};
