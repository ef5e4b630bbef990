//! Trees: one document per directory listing its entries (docs/FORMAT.md,
//! "Trees"). Stored as tree blobs; its id is the blob id of its encoding,
//! so identical directories deduplicate. Written in the binary encoding
//! (section 10.2); the JSON of earlier versions (10.1) is still read.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::{BlobId, FormatError, Reader};

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

/// First byte of a tree in the binary encoding; a JSON tree starts with `{`.
pub const BINARY_TREE: u8 = 2;

/// Which optional fields a node of a binary tree carries.
mod has {
    pub const USER: u8 = 1;
    pub const GROUP: u8 = 2;
    pub const RDEV: u8 = 4;
    pub const CONTENT: u8 = 8;
    pub const SUBTREE: u8 = 16;
    pub const TARGET: u8 = 32;
    pub const XATTRS: u8 = 64;
    pub const ALL: u8 = 127;
}

impl NodeKind {
    fn to_byte(self) -> u8 {
        match self {
            NodeKind::File => 0,
            NodeKind::Dir => 1,
            NodeKind::Symlink => 2,
            NodeKind::Fifo => 3,
            NodeKind::Socket => 4,
            NodeKind::Chardev => 5,
            NodeKind::Blockdev => 6,
        }
    }

    fn from_byte(b: u8) -> Result<Self, FormatError> {
        Ok(match b {
            0 => NodeKind::File,
            1 => NodeKind::Dir,
            2 => NodeKind::Symlink,
            3 => NodeKind::Fifo,
            4 => NodeKind::Socket,
            5 => NodeKind::Chardev,
            6 => NodeKind::Blockdev,
            _ => return Err(FormatError::Invalid("unknown tree entry type")),
        })
    }
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// A length-prefixed byte string. Lengths above u32 cannot occur: a blob
/// is far smaller.
fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, b.len() as u32);
    out.extend_from_slice(b);
}

fn get_bytes<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<&'a [u8], FormatError> {
    let n = r.u32(what)? as usize;
    r.bytes(n, what)
}

fn get_string(r: &mut Reader<'_>, what: &'static str) -> Result<String, FormatError> {
    String::from_utf8(get_bytes(r, what)?.to_vec()).map_err(|_| FormatError::Invalid("owner name is not UTF-8"))
}

impl Node {
    fn encode_onto(&self, out: &mut Vec<u8>) {
        let flags = [
            (self.user.is_some(), has::USER),
            (self.group.is_some(), has::GROUP),
            (self.rdev != 0, has::RDEV),
            (!self.content.is_empty(), has::CONTENT),
            (self.subtree.is_some(), has::SUBTREE),
            (self.target.is_some(), has::TARGET),
            (!self.xattrs.is_empty(), has::XATTRS),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .fold(0, |f, (_, bit)| f | bit);
        put_bytes(out, &self.name.0);
        out.push(self.kind.to_byte());
        out.push(flags);
        for v in [self.mode, self.uid, self.gid] {
            put_u32(out, v);
        }
        for t in [self.mtime, self.ctime] {
            put_u64(out, t.0 as u64);
            put_u32(out, t.1);
        }
        for v in [self.size, self.inode, self.device, self.links] {
            put_u64(out, v);
        }
        for name in [&self.user, &self.group].into_iter().flatten() {
            put_bytes(out, name.as_bytes());
        }
        if self.rdev != 0 {
            put_u64(out, self.rdev);
        }
        if !self.content.is_empty() {
            put_u32(out, self.content.len() as u32);
            for id in &self.content {
                out.extend_from_slice(id.as_bytes());
            }
        }
        if let Some(id) = &self.subtree {
            out.extend_from_slice(id.as_bytes());
        }
        if let Some(t) = &self.target {
            put_bytes(out, &t.0);
        }
        if !self.xattrs.is_empty() {
            put_u32(out, self.xattrs.len() as u32);
            for x in &self.xattrs {
                put_bytes(out, &x.name.0);
                put_bytes(out, &x.value);
            }
        }
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<Self, FormatError> {
        let name = Bytes(get_bytes(r, "entry name")?.to_vec());
        let kind = NodeKind::from_byte(r.u8("entry type")?)?;
        let flags = r.u8("entry fields")?;
        if flags & !has::ALL != 0 {
            return Err(FormatError::Invalid("unknown tree entry fields"));
        }
        let (mode, uid, gid) = (r.u32("mode")?, r.u32("uid")?, r.u32("gid")?);
        let mtime = Time(r.u64("mtime")? as i64, r.u32("mtime ns")?);
        let ctime = Time(r.u64("ctime")? as i64, r.u32("ctime ns")?);
        let (size, inode, device, links) = (r.u64("size")?, r.u64("inode")?, r.u64("device")?, r.u64("links")?);
        let on = |bit| flags & bit != 0;
        let user = if on(has::USER) { Some(get_string(r, "user name")?) } else { None };
        let group = if on(has::GROUP) { Some(get_string(r, "group name")?) } else { None };
        let rdev = if on(has::RDEV) { r.u64("rdev")? } else { 0 };
        let mut content = Vec::new();
        if on(has::CONTENT) {
            let n = r.u32("content count")?;
            let n = r.check_count(n, 32, "content ids")?;
            content.reserve_exact(n);
            for _ in 0..n {
                content.push(BlobId::from_bytes(r.id32("content id")?));
            }
        }
        let subtree = if on(has::SUBTREE) { Some(BlobId::from_bytes(r.id32("subtree id")?)) } else { None };
        let target = if on(has::TARGET) { Some(Bytes(get_bytes(r, "symlink target")?.to_vec())) } else { None };
        let mut xattrs = Vec::new();
        if on(has::XATTRS) {
            let n = r.u32("xattr count")?;
            // Each takes at least its two lengths.
            let n = r.check_count(n, 8, "xattrs")?;
            for _ in 0..n {
                let name = Bytes(get_bytes(r, "xattr name")?.to_vec());
                xattrs.push(Xattr { name, value: get_bytes(r, "xattr value")?.to_vec() });
            }
        }
        Ok(Node {
            name,
            kind,
            mode,
            uid,
            gid,
            user,
            group,
            mtime,
            ctime,
            size,
            inode,
            device,
            links,
            rdev,
            content,
            subtree,
            target,
            xattrs,
        })
    }
}

/// Bytes an entry of a binary tree takes at least (an empty name, no
/// optional field): bounds the count a hostile tree may declare.
const MIN_NODE_LEN: usize = 4 + 1 + 1 + 3 * 4 + 2 * 12 + 4 * 8;

impl Tree {
    /// Encodes the tree (binary, docs/FORMAT.md 10.2); nodes are sorted
    /// first so equal directories encode equally. JSON took a quarter of a
    /// no-change backup's CPU to decode the parent's trees and encode the
    /// new ones.
    pub fn encode(&mut self) -> Vec<u8> {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out = Vec::with_capacity(
            5 + self.nodes.iter().map(|n| 96 + n.name.0.len() + 32 * n.content.len()).sum::<usize>(),
        );
        out.push(BINARY_TREE);
        put_u32(&mut out, self.nodes.len() as u32);
        for n in &self.nodes {
            n.encode_onto(&mut out);
        }
        out
    }

    /// Encodes the tree in the JSON of earlier versions (10.1): for tests
    /// of reading old repositories.
    pub fn encode_json(&mut self) -> Vec<u8> {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        // Serializing these plain structs cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn decode_binary(buf: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new(buf);
        r.u8("tree encoding")?;
        let n = r.u32("entry count")?;
        let n = r.check_count(n, MIN_NODE_LEN, "tree entries")?;
        let mut nodes = Vec::with_capacity(n);
        for _ in 0..n {
            nodes.push(Node::decode_from(&mut r)?);
        }
        if r.remaining() != 0 {
            return Err(FormatError::Invalid("trailing bytes after tree"));
        }
        Ok(Tree { nodes })
    }

    /// Decodes a tree (either encoding) and checks what restore relies on:
    /// valid, unique, sorted names, and the fields each kind needs.
    pub fn decode(buf: &[u8]) -> Result<Self, FormatError> {
        let tree = match buf.first() {
            Some(&BINARY_TREE) => Self::decode_binary(buf)?,
            _ => serde_json::from_slice(buf)?,
        };
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
        self.position(name).map(|i| &self.nodes[i])
    }

    /// Where the entry named `name` is in `nodes`.
    pub fn position(&self, name: &[u8]) -> Option<usize> {
        self.nodes.binary_search_by(|n| n.name.0.as_slice().cmp(name)).ok()
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

    fn full_node() -> Node {
        Node {
            user: Some("alice".into()),
            group: Some("staff".into()),
            rdev: 0x0801,
            content: vec![BlobId::from_bytes([7; 32]), BlobId::from_bytes([8; 32])],
            subtree: Some(BlobId::from_bytes([9; 32])),
            target: Some(Bytes(vec![0xff, b'/', b'x'])),
            xattrs: vec![Xattr { name: Bytes(b"user.a".to_vec()), value: vec![0, 1, 2] }],
            mtime: Time(-5, 999_999_999),
            ..node(b"every field")
        }
    }

    #[test]
    fn the_binary_encoding_round_trips_every_field_and_json_trees_still_read() {
        let mut t = Tree { nodes: vec![full_node(), node(b"plain")] };
        let bin = t.encode();
        assert_eq!(bin[0], BINARY_TREE);
        assert_eq!(Tree::decode(&bin).expect("binary decodes"), t);
        // Trees written by earlier versions.
        let json = t.encode_json();
        assert_eq!(json[0], b'{');
        assert_eq!(Tree::decode(&json).expect("json decodes"), t);
        // Smaller than the JSON, and canonical.
        assert!(bin.len() < json.len(), "{} vs {}", bin.len(), json.len());
        assert_eq!(Tree { nodes: t.nodes.iter().rev().cloned().collect() }.encode(), bin);
    }

    #[test]
    fn a_damaged_or_hostile_binary_tree_is_an_error_not_a_panic() {
        let bin = Tree { nodes: vec![full_node()] }.encode();
        for cut in 0..bin.len() {
            assert!(Tree::decode(&bin[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bin.clone();
        longer.push(0);
        assert!(Tree::decode(&longer).is_err(), "trailing byte");
        // A count of entries no buffer could hold: refused before allocating.
        let mut huge = vec![BINARY_TREE];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Tree::decode(&huge).is_err());
        // Unknown field bits and unknown types.
        let flags_at = 1 + 4 + 4 + b"every field".len() + 1;
        let mut bad = bin.clone();
        bad[flags_at] |= 128;
        assert!(Tree::decode(&bad).is_err());
        let mut bad = bin.clone();
        bad[flags_at - 1] = 9;
        assert!(Tree::decode(&bad).is_err());
        // The checks of every encoding: unsafe names, order.
        for name in [&b".."[..], b"a/b", b"", b"."] {
            let mut bin = vec![BINARY_TREE, 1, 0, 0, 0];
            let mut n = Vec::new();
            node(name).encode_onto(&mut n);
            bin.extend_from_slice(&n);
            assert!(Tree::decode(&bin).is_err(), "{name:?}");
        }
        let mut unsorted = vec![BINARY_TREE, 2, 0, 0, 0];
        node(b"b").encode_onto(&mut unsorted);
        node(b"a").encode_onto(&mut unsorted);
        assert!(Tree::decode(&unsorted).is_err());
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
