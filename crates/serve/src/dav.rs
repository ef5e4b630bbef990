//! WebDAV at `/dav/`, read-only, in the mount's layout (`snapshots/TIME`,
//! `ids/ID`, `hosts/HOST/TIME`, `tags/TAG/TIME`, each with `latest`), so
//! rclone, cadaver, Windows and macOS browse snapshots without FUSE. The
//! protocol is the `dav-server` crate's; this module only answers its
//! questions about paths from the view. WebDAV has no symbolic links: the
//! layout's `latest` links show as the folder they point to, and
//! symlinks, fifos, devices and sockets inside snapshots are left out.

use std::io::SeekFrom;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use cairn_format::BlobId;
use cairn_format::tree::{Node, NodeKind};
use cairn_view::{Entry, FileContent, Folder, View};
use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavFileSystem, DavMetaData, FsError, FsFuture, FsResult, FsStream, OpenOptions, ReadDirMeta,
};

/// The view as a WebDAV file system.
#[derive(Clone)]
pub struct DavView {
    view: Arc<View>,
}

impl DavView {
    pub fn new(view: Arc<View>) -> Self {
        Self { view }
    }
}

/// Where a path leads.
enum Place {
    /// A folder of the layout.
    Layout(Folder),
    /// A folder in a snapshot: its tree, and its time.
    Tree(BlobId, SystemTime),
    /// A file in a snapshot (boxed: a node is large next to the others).
    File(Box<Node>),
}

/// Links followed on the way to one place at most (`latest` links point
/// to folders, never to other links; more is a layout gone wrong).
const MAX_LINKS: usize = 8;

fn system_time(secs: i64, nanos: u32) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nanos)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// Blocking: the place at `path`'s components.
fn place(view: &View, parts: &[String]) -> FsResult<Place> {
    let (layout, _) = view.layout();
    let mut path: Vec<String> = parts.to_vec();
    'again: for _ in 0..=MAX_LINKS {
        let mut at = Place::Layout(layout.root().clone());
        for (i, part) in path.iter().enumerate() {
            at = match at {
                Place::Layout(folder) => match folder.get(part) {
                    Some(Entry::Folder(f)) => Place::Layout(f.clone()),
                    Some(Entry::Snapshot(s)) => {
                        Place::Tree(s.tree, system_time(s.time.as_second(), s.time.subsec_nanosecond() as u32))
                    }
                    Some(Entry::Link(target)) => {
                        // Relative to the link's folder.
                        let mut resolved: Vec<String> = path[..i].to_vec();
                        for c in target.split('/').filter(|c| !c.is_empty() && *c != ".") {
                            if c == ".." {
                                resolved.pop();
                            } else {
                                resolved.push(c.to_string());
                            }
                        }
                        resolved.extend(path[i + 1..].iter().cloned());
                        path = resolved;
                        continue 'again;
                    }
                    None => return Err(FsError::NotFound),
                },
                Place::Tree(tree, _) => {
                    let tree = view.tree(&tree).map_err(|_| FsError::GeneralFailure)?;
                    let node = tree.find(part.as_bytes()).ok_or(FsError::NotFound)?;
                    match (node.kind, node.subtree) {
                        (NodeKind::Dir, Some(sub)) => Place::Tree(sub, system_time(node.mtime.0, node.mtime.1)),
                        (NodeKind::File, _) => Place::File(Box::new(node.clone())),
                        _ => return Err(FsError::NotFound),
                    }
                }
                Place::File(_) => return Err(FsError::NotFound),
            };
        }
        return Ok(at);
    }
    Err(FsError::LoopDetected)
}

/// The components of a request's path; `..` and `.` never reach here
/// (dav-server refuses paths that climb out), but are refused again.
fn components(path: &DavPath) -> FsResult<Vec<String>> {
    let raw = path.as_bytes();
    let text = std::str::from_utf8(raw).map_err(|_| FsError::NotFound)?;
    let parts = crate::paths::components(text).map_err(|_| FsError::Forbidden)?;
    Ok(parts.into_iter().map(str::to_string).collect())
}

/// Runs `f` with the view on a blocking thread.
async fn blocking<T: Send + 'static>(
    view: &Arc<View>,
    f: impl FnOnce(&View) -> FsResult<T> + Send + 'static,
) -> FsResult<T> {
    let view = view.clone();
    tokio::task::spawn_blocking(move || f(&view)).await.unwrap_or(Err(FsError::GeneralFailure))
}

#[derive(Debug, Clone)]
struct Meta {
    len: u64,
    modified: SystemTime,
    dir: bool,
}

impl DavMetaData for Meta {
    fn len(&self) -> u64 {
        self.len
    }

    fn modified(&self) -> FsResult<SystemTime> {
        Ok(self.modified)
    }

    fn is_dir(&self) -> bool {
        self.dir
    }
}

fn meta_of(place: &Place) -> Meta {
    match place {
        Place::Layout(_) => Meta { len: 0, modified: UNIX_EPOCH, dir: true },
        Place::Tree(_, t) => Meta { len: 0, modified: *t, dir: true },
        Place::File(n) => Meta { len: n.size, modified: system_time(n.mtime.0, n.mtime.1), dir: false },
    }
}

struct DirEntry {
    name: Vec<u8>,
    meta: Meta,
}

impl DavDirEntry for DirEntry {
    fn name(&self) -> Vec<u8> {
        self.name.clone()
    }

    fn metadata(&self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta = self.meta.clone();
        Box::pin(async move { Ok(Box::new(meta) as Box<dyn DavMetaData>) })
    }
}

/// Blocking: the entries of the folder at `parts`.
fn entries(view: &View, parts: &[String]) -> FsResult<Vec<DirEntry>> {
    match place(view, parts)? {
        Place::Layout(folder) => {
            let mut out = Vec::new();
            for (name, _) in folder.entries() {
                let mut p = parts.to_vec();
                p.push(name.to_string());
                // Links show as what they point to.
                if let Ok(at) = place(view, &p) {
                    out.push(DirEntry { name: name.as_bytes().to_vec(), meta: meta_of(&at) });
                }
            }
            Ok(out)
        }
        Place::Tree(tree, _) => {
            let tree = view.tree(&tree).map_err(|_| FsError::GeneralFailure)?;
            Ok(tree
                .nodes
                .iter()
                .filter_map(|n| {
                    let at = match (n.kind, n.subtree) {
                        (NodeKind::Dir, Some(sub)) => Place::Tree(sub, system_time(n.mtime.0, n.mtime.1)),
                        (NodeKind::File, _) => Place::File(Box::new(n.clone())),
                        _ => return None,
                    };
                    Some(DirEntry { name: n.name.0.clone(), meta: meta_of(&at) })
                })
                .collect())
        }
        Place::File(_) => Err(FsError::Forbidden),
    }
}

/// An open file of a snapshot.
struct File {
    view: Arc<View>,
    content: Arc<FileContent>,
    meta: Meta,
    pos: u64,
}

impl std::fmt::Debug for File {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("File").field("len", &self.meta.len).field("pos", &self.pos).finish()
    }
}

impl DavFile for File {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta = self.meta.clone();
        Box::pin(async move { Ok(Box::new(meta) as Box<dyn DavMetaData>) })
    }

    fn write_buf(&mut self, _: Box<dyn bytes::Buf + Send>) -> FsFuture<'_, ()> {
        Box::pin(async { Err(FsError::Forbidden) })
    }

    fn write_bytes(&mut self, _: Bytes) -> FsFuture<'_, ()> {
        Box::pin(async { Err(FsError::Forbidden) })
    }

    fn read_bytes(&mut self, count: usize) -> FsFuture<'_, Bytes> {
        Box::pin(async move {
            let (content, pos) = (self.content.clone(), self.pos);
            let data = blocking(&self.view, move |view| {
                let mut buf = vec![0u8; count.min(1 << 22)];
                let n = content.read_at(view, pos, &mut buf).map_err(|_| FsError::GeneralFailure)?;
                buf.truncate(n);
                Ok(buf)
            })
            .await?;
            self.pos += data.len() as u64;
            Ok(Bytes::from(data))
        })
    }

    fn seek(&mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        Box::pin(async move {
            let len = self.meta.len as i128;
            let to = match pos {
                SeekFrom::Start(n) => n as i128,
                SeekFrom::End(d) => len + d as i128,
                SeekFrom::Current(d) => self.pos as i128 + d as i128,
            };
            if to < 0 {
                return Err(FsError::GeneralFailure);
            }
            self.pos = to as u64;
            Ok(self.pos)
        })
    }

    fn flush(&mut self) -> FsFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}

impl DavFileSystem for DavView {
    fn open<'a>(&'a self, path: &'a DavPath, options: OpenOptions) -> FsFuture<'a, Box<dyn DavFile>> {
        Box::pin(async move {
            if options.write || options.append || options.truncate || options.create || options.create_new {
                return Err(FsError::Forbidden);
            }
            let parts = components(path)?;
            let (meta, content) = blocking(&self.view, move |view| match place(view, &parts)? {
                Place::File(node) => {
                    let content = FileContent::new(view, &node).map_err(|_| FsError::GeneralFailure)?;
                    Ok((meta_of(&Place::File(node)), content))
                }
                _ => Err(FsError::Forbidden),
            })
            .await?;
            Ok(Box::new(File { view: self.view.clone(), content: Arc::new(content), meta, pos: 0 }) as Box<dyn DavFile>)
        })
    }

    fn read_dir<'a>(&'a self, path: &'a DavPath, _: ReadDirMeta) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        Box::pin(async move {
            let parts = components(path)?;
            let list = blocking(&self.view, move |view| entries(view, &parts)).await?;
            let items = list.into_iter().map(|e| Ok(Box::new(e) as Box<dyn DavDirEntry>));
            Ok(Box::pin(futures_util::stream::iter(items)) as FsStream<Box<dyn DavDirEntry>>)
        })
    }

    fn metadata<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, Box<dyn DavMetaData>> {
        Box::pin(async move {
            let parts = components(path)?;
            let meta = blocking(&self.view, move |view| place(view, &parts).map(|p| meta_of(&p))).await?;
            Ok(Box::new(meta) as Box<dyn DavMetaData>)
        })
    }

    fn create_dir<'a>(&'a self, _: &'a DavPath) -> FsFuture<'a, ()> {
        Box::pin(async { Err(FsError::Forbidden) })
    }

    fn remove_dir<'a>(&'a self, _: &'a DavPath) -> FsFuture<'a, ()> {
        Box::pin(async { Err(FsError::Forbidden) })
    }

    fn remove_file<'a>(&'a self, _: &'a DavPath) -> FsFuture<'a, ()> {
        Box::pin(async { Err(FsError::Forbidden) })
    }

    fn rename<'a>(&'a self, _: &'a DavPath, _: &'a DavPath) -> FsFuture<'a, ()> {
        Box::pin(async { Err(FsError::Forbidden) })
    }

    fn copy<'a>(&'a self, _: &'a DavPath, _: &'a DavPath) -> FsFuture<'a, ()> {
        Box::pin(async { Err(FsError::Forbidden) })
    }
}
