//! A folder of a snapshot as a tar stream (`cairn dump --archive tar`):
//! one walk, every entry with its metadata in the header (mode, owner ids
//! and names, mtime, device numbers), symlinks as links, the later names of
//! a hard-link group as hard-link entries to the first, extended attributes
//! as PAX `SCHILY.xattr.*` records (GNU tar restores them with `--xattrs`).
//! Content is streamed blob by blob, so memory does not grow with the size
//! of a file or of the folder. Sockets have no tar form and are left out.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;

use cairn_format::BlobId;
use cairn_format::tree::{Bytes, Node, NodeKind};
use cairn_repo::{IndexedRepository, RepoError};
use tar::{EntryType, Header};

use crate::walk::{Step, Visitor, walk};
use crate::{FileContent, ViewError};

/// What a tar stream could not do.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading the snapshot failed.
    #[error(transparent)]
    View(#[from] ViewError),
    /// Writing the stream failed (a closed pipe, a full disk).
    #[error("writing the archive: {0}")]
    Output(#[from] io::Error),
}

impl From<RepoError> for ArchiveError {
    fn from(e: RepoError) -> Self {
        ArchiveError::View(e.into())
    }
}

/// Where an archive starts.
pub enum Start<'a> {
    /// A snapshot's root: everything in it.
    Root(BlobId),
    /// An entry at a path of a snapshot (`/etc`), and for a folder
    /// everything below it.
    Node(&'a [u8], &'a Node),
}

/// Writes the entries from `start` on as a tar stream to `out`; names in
/// the archive are their paths in the snapshot without the leading `/`.
/// Returns the number of entries written.
pub fn write_tar(repo: &IndexedRepository, start: Start<'_>, out: impl Write) -> Result<u64, ArchiveError> {
    let mut tar = Tar { repo, builder: tar::Builder::new(out), first_link: HashMap::new(), entries: 0 };
    match start {
        Start::Root(tree) => walk(repo, &tree, b"", &mut tar)?,
        Start::Node(path, node) => {
            tar.entry(&Bytes(path.to_vec()), node)?;
            if let Some(sub) = node.subtree.filter(|_| node.kind == NodeKind::Dir) {
                walk(repo, &sub, path, &mut tar)?;
            }
        }
    }
    let entries = tar.entries;
    tar.builder.into_inner()?.flush()?;
    Ok(entries)
}

struct Tar<'a, W: Write> {
    repo: &'a IndexedRepository,
    builder: tar::Builder<W>,
    /// The first name written of each hard-link group (device, inode).
    first_link: HashMap<(u64, u64), Vec<u8>>,
    entries: u64,
}

/// Archive names are relative: `/etc/hosts` is stored as `etc/hosts`.
fn name(path: &Bytes) -> &OsStr {
    let p = path.0.strip_prefix(b"/").unwrap_or(&path.0);
    OsStr::from_bytes(if p.is_empty() { b"." } else { p })
}

/// One PAX record: its length counts the digits of the length itself.
fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // space, '=', newline
    let mut len = body + body.to_string().len();
    if len.to_string().len() != body.to_string().len() {
        len += 1;
    }
    let mut rec = format!("{len} ").into_bytes();
    rec.extend_from_slice(key);
    rec.push(b'=');
    rec.extend_from_slice(value);
    rec.push(b'\n');
    rec
}

impl<W: Write> Tar<'_, W> {
    fn entry(&mut self, path: &Bytes, n: &Node) -> Result<(), ArchiveError> {
        let kind = match n.kind {
            NodeKind::File => EntryType::Regular,
            NodeKind::Dir => EntryType::Directory,
            NodeKind::Symlink => EntryType::Symlink,
            NodeKind::Fifo => EntryType::Fifo,
            NodeKind::Chardev => EntryType::Char,
            NodeKind::Blockdev => EntryType::Block,
            NodeKind::Socket => return Ok(()),
        };
        // The header holds whole seconds: the nanoseconds, and extended
        // attributes, go in a PAX header before the entry.
        let mut records = Vec::new();
        if n.mtime.1 != 0 {
            records.extend(pax_record(b"mtime", format!("{}.{:09}", n.mtime.0, n.mtime.1).as_bytes()));
        }
        for x in &n.xattrs {
            records.extend(pax_record(&[b"SCHILY.xattr.", &x.name.0[..]].concat(), &x.value));
        }
        if !records.is_empty() {
            let mut h = Header::new_ustar();
            h.set_entry_type(EntryType::XHeader);
            h.set_size(records.len() as u64);
            h.set_mode(0o644);
            self.builder.append_data(&mut h, "././@PaxHeader", &records[..])?;
        }
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(n.mode & 0o7777);
        h.set_uid(u64::from(n.uid));
        h.set_gid(u64::from(n.gid));
        h.set_mtime(n.mtime.0.max(0) as u64);
        if let Some(u) = &n.user {
            let _ = h.set_username(u);
        }
        if let Some(g) = &n.group {
            let _ = h.set_groupname(g);
        }
        h.set_size(0);
        self.entries += 1;
        match n.kind {
            NodeKind::File => {
                if n.links > 1 {
                    let group = (n.device, n.inode);
                    if let Some(first) = self.first_link.get(&group) {
                        h.set_entry_type(EntryType::Link);
                        let first = OsStr::from_bytes(first).to_owned();
                        self.builder.append_link(&mut h, name(path), first)?;
                        return Ok(());
                    }
                    self.first_link.insert(group, name(path).as_bytes().to_vec());
                }
                let content = FileContent::new(self.repo, n)?;
                h.set_size(content.len());
                let reader =
                    Blobs { repo: self.repo, blobs: n.content.iter(), current: Vec::new(), at: 0, failed: None };
                let mut reader = reader;
                let written = self.builder.append_data(&mut h, name(path), &mut reader);
                if let Some(e) = reader.failed.take() {
                    return Err(e.into());
                }
                written?;
            }
            NodeKind::Symlink => {
                let target = n.target.as_ref().map(|t| t.0.clone()).unwrap_or_default();
                self.builder.append_link(&mut h, name(path), OsStr::from_bytes(&target))?;
            }
            NodeKind::Chardev | NodeKind::Blockdev => {
                let (major, minor) = (libc_major(n.rdev), libc_minor(n.rdev));
                h.set_device_major(major)?;
                h.set_device_minor(minor)?;
                self.builder.append_data(&mut h, name(path), io::empty())?;
            }
            _ => self.builder.append_data(&mut h, name(path), io::empty())?,
        }
        Ok(())
    }
}

/// Linux's dev_t split (glibc's gnu_dev_major/minor).
fn libc_major(dev: u64) -> u32 {
    (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff)) as u32
}

fn libc_minor(dev: u64) -> u32 {
    (((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff)) as u32
}

impl<W: Write> Visitor for Tar<'_, W> {
    type Error = ArchiveError;
    fn visit(&mut self, path: &Bytes, node: &Node) -> Result<Step, ArchiveError> {
        self.entry(path, node)?;
        Ok(Step::Descend)
    }
}

/// A file's content as a reader over its blobs, each verified as read. A
/// repository failure is kept aside (io::Error would lose its type) and
/// surfaces as the archive's error.
struct Blobs<'a> {
    repo: &'a IndexedRepository,
    blobs: std::slice::Iter<'a, BlobId>,
    current: Vec<u8>,
    at: usize,
    failed: Option<RepoError>,
}

impl Read for Blobs<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            let Some(id) = self.blobs.next() else { return Ok(0) };
            match self.repo.read_blob(id) {
                Ok(b) => (self.current, self.at) = (b, 0),
                Err(e) => {
                    let text = e.to_string();
                    self.failed = Some(e);
                    return Err(io::Error::other(text));
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

    #[test]
    fn pax_records_count_their_own_length() {
        for (k, v) in [(&b"a"[..], &b"b"[..]), (b"SCHILY.xattr.user.x", &[7u8; 90][..]), (b"k", &[1u8; 994][..])] {
            let r = pax_record(k, v);
            let (len, _) = r.split_at(r.iter().position(|b| *b == b' ').expect("space"));
            assert_eq!(std::str::from_utf8(len).expect("digits").parse::<usize>().expect("number"), r.len());
        }
    }

    #[test]
    fn device_numbers_split_as_glibc_does() {
        // makedev(8, 1) and makedev(259, 65537).
        assert_eq!((libc_major(0x801), libc_minor(0x801)), (8, 1));
        let dev = (259u64 & 0xfff) << 8 | (259u64 & !0xfff) << 32 | (65537u64 & 0xff) | (65537u64 & !0xff) << 12;
        assert_eq!((libc_major(dev), libc_minor(dev)), (259, 65537));
    }
}
