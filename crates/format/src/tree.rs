//! Trees: one JSON document per directory listing its entries
//! (docs/FORMAT.md, "Trees"). Stored as tree blobs; its id is the blob id of
//! its encoding, so identical directories deduplicate.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::{BlobId, FormatError};

/// A file name or symlink target: raw bytes (Unix names need not be UTF-8).
/// Encoded as a JSON string when valid UTF-8, else as `{"b64": "..."}`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bytes(pub Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl Bytes {
    /// Lossy text for display.
    pub fn display(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum BytesRepr {
    Text(String),
    Raw { b64: String },
}

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(t) => s.serialize_str(t),
            Err(_) => BytesRepr::Raw { b64: B64.encode(&self.0) }.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match BytesRepr::deserialize(d)? {
            BytesRepr::Text(t) => Ok(Bytes(t.into_bytes())),
            BytesRepr::Raw { b64 } => B64.decode(b64).map(Bytes).map_err(serde::de::Error::custom),
        }
    }
}

/// Seconds and nanoseconds since the Unix epoch, encoded as `[s, ns]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Time(pub i64, pub u32);

/// What a tree entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// Regular file; `content` lists its data blobs.
    File,
    /// Directory; `subtree` names its tree blob.
    Dir,
    /// Symbolic link; `target` holds the link text.
    Symlink,
    /// Named pipe (recorded, not read).
    Fifo,
    /// Unix socket (recorded, not read).
    Socket,
    /// Character device; `rdev` holds its device number.
    Chardev,
    /// Block device; `rdev` holds its device number.
    Blockdev,
}

/// An extended attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    /// Attribute name.
    pub name: Bytes,
    /// Attribute value (base64).
    #[serde(with = "b64")]
    pub value: Vec<u8>,
}

mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        B64.decode(s.as_bytes()).map_err(serde::de::Error::custom)
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Entry name (one path component).
    pub name: Bytes,
    /// Entry type.
    #[serde(rename = "type")]
    pub kind: NodeKind,
    /// Permission bits and type bits, as `st_mode`.
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Owner user name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Owner group name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Modification time.
    pub mtime: Time,
    /// Inode change time.
    pub ctime: Time,
    /// Size in bytes (files: content length).
    pub size: u64,
    /// Inode number (change detection and hard links).
    pub inode: u64,
    /// Device id of the file system holding it.
    pub device: u64,
    /// Hard-link count.
    pub links: u64,
    /// Device number of a device node.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
    /// Data blobs of a file, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<BlobId>,
    /// Tree blob of a directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<BlobId>,
    /// Target of a symlink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Bytes>,
    /// Extended attributes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<Xattr>,
}

impl Node {
    /// A node with this name and kind and every other field zero or empty.
    pub fn new(name: &[u8], kind: NodeKind) -> Self {
        Self {
            name: Bytes(name.to_vec()),
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            mtime: Time::default(),
            ctime: Time::default(),
            size: 0,
            inode: 0,
            device: 0,
            links: 1,
            rdev: 0,
            content: Vec::new(),
            subtree: None,
            target: None,
            xattrs: Vec::new(),
        }
    }
}

/// A directory: its entries sorted by name bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tree {
    /// Entries, sorted by name, names unique.
    pub nodes: Vec<Node>,
}

/// True for a name that is safe to join to a restore target: one non-empty
/// component, not `.` or `..`, no `/` and no NUL.
pub fn is_valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

impl Tree {
    /// Encodes the tree; nodes are sorted first so equal directories encode equally.
    pub fn encode(&mut self) -> Vec<u8> {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        // Serializing these plain structs cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes a tree and checks what restore relies on: valid, unique,
    /// sorted names, and the fields each kind needs.
    pub fn decode(buf: &[u8]) -> Result<Self, FormatError> {
        let tree: Tree = serde_json::from_slice(buf)?;
        for (i, n) in tree.nodes.iter().enumerate() {
            if !is_valid_name(&n.name.0) {
                return Err(FormatError::Invalid("tree entry name is empty, '.', '..' or holds '/' or NUL"));
            }
            if i > 0 && tree.nodes[i - 1].name >= n.name {
                return Err(FormatError::Invalid("tree entries are not sorted and unique"));
            }
            match n.kind {
                NodeKind::Dir if n.subtree.is_none() => {
                    return Err(FormatError::Invalid("directory entry without subtree"));
                }
                NodeKind::Symlink if n.target.is_none() => {
                    return Err(FormatError::Invalid("symlink entry without target"));
                }
                _ => {}
            }
        }
        Ok(tree)
    }

    /// Finds an entry by name.
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes.binary_search_by(|n| n.name.0.as_slice().cmp(name)).ok().map(|i| &self.nodes[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &[u8]) -> Node {
        Node {
            mode: 0o100644,
            uid: 1,
            gid: 2,
            mtime: Time(1, 2),
            ctime: Time(3, 4),
            inode: 5,
            device: 6,
            ..Node::new(name, NodeKind::File)
        }
    }

    #[test]
    fn non_utf8_names_round_trip_and_order_is_canonical() {
        let mut t = Tree { nodes: vec![node(b"z"), node(&[0xff, 0xfe, b'a'])] };
        let enc = t.encode();
        let back = Tree::decode(&enc).expect("decodes");
        assert_eq!(back.nodes[1].name.0, vec![0xff, 0xfe, b'a']);
        let mut t2 = Tree { nodes: vec![node(&[0xff, 0xfe, b'a']), node(b"z")] };
        assert_eq!(t2.encode(), enc);
        assert!(back.find(b"z").is_some());
    }

    #[test]
    fn rejects_unsafe_names() {
        for bad in [&b".."[..], b"a/b", b"", b"."] {
            let t = Tree { nodes: vec![node(bad)] };
            let enc = serde_json::to_vec(&t).expect("encodes");
            assert!(Tree::decode(&enc).is_err(), "{bad:?}");
        }
        let t = Tree { nodes: vec![node(b"b"), node(b"a")] };
        assert!(Tree::decode(&serde_json::to_vec(&t).expect("encodes")).is_err());
    }
}
