//! A folder of a snapshot as an archive stream (`cairn dump --archive
//! tar|zip`), on one walk. Content is streamed blob by blob, so memory does
//! not grow with the size of a file or of the folder.
//!
//! tar: every entry with its metadata in the header (mode, owner ids and
//! names, mtime, device numbers), symlinks as links, the later names of a
//! hard-link group as hard-link entries to the first, extended attributes
//! as PAX `SCHILY.xattr.*` records (GNU tar restores them with `--xattrs`).
//! Sockets have no tar form and are left out.
//!
//! zip: folders, files (deflated) and symlinks with their mode and mtime
//! (local time, to two seconds, as zip keeps it); what zip has no form for
//! is left out: owners, xattrs, hard links (each name gets the content),
//! fifos, devices and sockets. Names are UTF-8 (others shown lossily).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;

use cairn_format::BlobId;
use cairn_format::tree::{Bytes, Node, NodeKind};
use cairn_repo::{IndexedRepository, RepoError};
use tar::{EntryType, Header};

use crate::walk::{Step, Visitor, walk};
use crate::{ContentReader, FileContent, ViewError};

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

/// An archive format being written, entry by entry.
trait Archive: Visitor<Error = ArchiveError> {
    fn entry(&mut self, path: &Bytes, n: &Node) -> Result<(), ArchiveError>;
}

/// Walks from `start`, giving every entry to `archive`.
fn write_from(repo: &IndexedRepository, start: Start<'_>, archive: &mut impl Archive) -> Result<(), ArchiveError> {
    match start {
        Start::Root(tree) => walk(repo, &tree, b"", archive),
        Start::Node(path, node) => {
            archive.entry(&Bytes(path.to_vec()), node)?;
            match node.subtree.filter(|_| node.kind == NodeKind::Dir) {
                Some(sub) => walk(repo, &sub, path, archive),
                None => Ok(()),
            }
        }
    }
}

/// The archive formats a folder can be written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ArchiveFormat {
    /// POSIX tar with GNU and PAX extensions (nanosecond times, xattrs).
    Tar,
    /// zip (deflated; modes, times and symlinks; no owners, xattrs, hard links).
    Zip,
}

/// Writes the entries from `start` on in `format` to `out`; returns the
/// number of entries written.
pub fn write_archive(
    format: ArchiveFormat,
    repo: &IndexedRepository,
    start: Start<'_>,
    out: impl Write,
) -> Result<u64, ArchiveError> {
    match format {
        ArchiveFormat::Tar => write_tar(repo, start, out),
        ArchiveFormat::Zip => write_zip(repo, start, out),
    }
}

/// Writes the entries from `start` on as a tar stream to `out`; names in
/// the archive are their paths in the snapshot without the leading `/`.
/// Returns the number of entries written.
pub fn write_tar(repo: &IndexedRepository, start: Start<'_>, out: impl Write) -> Result<u64, ArchiveError> {
    let mut tar = Tar { repo, builder: tar::Builder::new(out), first_link: HashMap::new(), entries: 0 };
    write_from(repo, start, &mut tar)?;
    let entries = tar.entries;
    tar.builder.into_inner()?.flush()?;
    Ok(entries)
}

/// Writes the entries from `start` on as a zip stream to `out` (no seeking:
/// sizes and checksums follow each entry in data descriptors). Returns the
/// number of entries written.
pub fn write_zip(repo: &IndexedRepository, start: Start<'_>, out: impl Write) -> Result<u64, ArchiveError> {
    let mut zip = Zip { repo, writer: zip::ZipWriter::new_stream(out), entries: 0 };
    write_from(repo, start, &mut zip)?;
    let entries = zip.entries;
    zip.writer.finish().map_err(zip_error)?.into_inner().flush()?;
    Ok(entries)
}

fn zip_error(e: zip::result::ZipError) -> ArchiveError {
    match e {
        zip::result::ZipError::Io(e) => ArchiveError::Output(e),
        other => ArchiveError::Output(io::Error::other(other)),
    }
}

struct Zip<'a, W: Write> {
    repo: &'a IndexedRepository,
    writer: zip::ZipWriter<zip::write::StreamWriter<W>>,
    entries: u64,
}

/// A tree time as zip's: local time, two-second steps, 1980 to 2107.
fn zip_time(t: cairn_format::tree::Time) -> zip::DateTime {
    let Ok(ts) = jiff::Timestamp::new(t.0, 0) else { return zip::DateTime::default() };
    let d = ts.to_zoned_datetime(jiff::tz::TimeZone::system()).datetime();
    let part = |v: i8| u8::try_from(v).unwrap_or(0);
    zip::DateTime::from_date_and_time(
        u16::try_from(d.year()).unwrap_or(1980),
        part(d.month()),
        part(d.day()),
        part(d.hour()),
        part(d.minute()),
        part(d.second()),
    )
    .unwrap_or_default()
}

impl<W: Write> Archive for Zip<'_, W> {
    fn entry(&mut self, path: &Bytes, n: &Node) -> Result<(), ArchiveError> {
        let name = name(path).to_string_lossy().into_owned();
        let options = zip::write::SimpleFileOptions::default()
            .unix_permissions(n.mode & 0o7777)
            .last_modified_time(zip_time(n.mtime));
        match n.kind {
            NodeKind::Dir => self.writer.add_directory(format!("{name}/"), options).map_err(zip_error)?,
            NodeKind::Symlink => {
                let target = n.target.as_ref().map(|t| t.display().into_owned()).unwrap_or_default();
                self.writer.add_symlink(name, target, options).map_err(zip_error)?;
            }
            NodeKind::File => {
                let size = FileContent::new(self.repo, n)?.len();
                let options = options
                    .compression_method(zip::CompressionMethod::Deflated)
                    .large_file(size >= u64::from(u32::MAX));
                self.writer.start_file(name, options).map_err(zip_error)?;
                let mut reader = ContentReader::new(self.repo, &n.content);
                let copied = io::copy(&mut reader, &mut self.writer);
                if let Some(e) = reader.take_error() {
                    return Err(e.into());
                }
                copied?;
            }
            _ => return Ok(()),
        }
        self.entries += 1;
        Ok(())
    }
}

impl<W: Write> Visitor for Zip<'_, W> {
    type Error = ArchiveError;
    fn visit(&mut self, path: &Bytes, node: &Node) -> Result<Step, ArchiveError> {
        self.entry(path, node)?;
        Ok(Step::Descend)
    }
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

impl<W: Write> Archive for Tar<'_, W> {
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
                let mut reader = ContentReader::new(self.repo, &n.content);
                let written = self.builder.append_data(&mut h, name(path), &mut reader);
                if let Some(e) = reader.take_error() {
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
