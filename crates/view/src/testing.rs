//! Hand-made repositories and trees for the unit tests.

use cairn_backend::Backend;
use cairn_format::tree::{Node, NodeKind, Tree};
use cairn_format::{BlobId, BlobKind};
use cairn_repo::{IndexedRepository, InitOptions, Repository};

/// An empty repository in memory, its index loaded.
pub fn test_repo() -> IndexedRepository {
    let repo = Repository::init(Backend::memory().expect("memory"), b"pw", &InitOptions::fast_for_tests());
    repo.expect("init").load_index().expect("index")
}

/// Stores a tree of `nodes`; returns its id.
pub fn save_tree(repo: &mut IndexedRepository, nodes: Vec<Node>) -> BlobId {
    let plain = Tree { nodes }.encode();
    let id = repo.repo().blob_id(&plain);
    let mut w = repo.repo().pack_writer(BlobKind::Tree);
    w.add(repo.seal_blob(BlobKind::Tree, id, &plain).expect("seal")).expect("add");
    let pack = w.finish().expect("finish").expect("pack");
    let (entry, _) = repo.repo().save_pack(pack).expect("save");
    repo.index_mut().add_pack(&entry);
    id
}

/// A file node of one (made-up) content blob.
pub fn file(name: &str, content: u8, size: u64) -> Node {
    Node { content: vec![BlobId::from_bytes([content; 32])], size, ..Node::new(name.as_bytes(), NodeKind::File) }
}

/// A folder node for the tree `tree`.
pub fn dir(name: &str, tree: BlobId) -> Node {
    Node { subtree: Some(tree), ..Node::new(name.as_bytes(), NodeKind::Dir) }
}
