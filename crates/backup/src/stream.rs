//! Streams: standard input or a command's output stored as one file of the
//! snapshot, beside the folders a backup walks (a job's database dumps go
//! into the same snapshot as its files). Each is chunked on a thread of its
//! own while the walk goes on; a stream that fails, or gives no bytes,
//! fails the whole backup: no snapshot is written that looks good when a
//! dump in it is not.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use cairn_chunk::Chunker;
use cairn_format::tree::{Node, NodeKind, Time, is_valid_name};
use crossbeam_channel::{Receiver, bounded};

use crate::archiver::Stats;
use crate::children::{self, Tracked};
use crate::delta::BaseFinder;
use crate::pipeline::BlobSink;
use crate::reader::{FileOutcome, chunk_stream};
use crate::{BackupError, Progress};

/// A stream stored as one file of the snapshot.
#[derive(Debug, Clone)]
pub struct Stream {
    /// Where the file is in the snapshot: an absolute path (`/db.sql`,
    /// `/databases/app.sql`).
    pub path: PathBuf,
    /// Where its bytes come from.
    pub from: StreamFrom,
    /// Text the stream's last [`TAIL`] bytes must hold (a dump's completion
    /// line), so that a dump cut short, or one whose tool writes its error
    /// into the output and exits 0 (`sqlite3 .dump` on a locked database
    /// does), fails the backup instead of being stored as good.
    pub trailer: Option<Vec<u8>>,
}

/// How many of a stream's last bytes are kept to look for its trailer.
pub const TAIL: usize = 512;

/// A reader keeping the last [`TAIL`] bytes it passed on.
struct Tail<R> {
    inner: R,
    last: Vec<u8>,
}

impl<R: Read> Read for Tail<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.last.extend_from_slice(&buf[..n]);
        if self.last.len() > 2 * TAIL {
            self.last.drain(..self.last.len() - TAIL);
        }
        Ok(n)
    }
}

/// Where a stream's bytes come from.
#[derive(Debug, Clone)]
pub enum StreamFrom {
    /// This process's standard input.
    Stdin,
    /// A command's standard output (program and arguments, no shell); a
    /// command that exits non-zero fails the backup.
    Command(Vec<OsString>),
}

impl Stream {
    /// The stream's file name (the last component of its path).
    pub fn name(&self) -> String {
        self.path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    }

    /// Checks that the path is absolute and made of plain names.
    pub(crate) fn check(&self) -> Result<(), BackupError> {
        // Written as its components read back: no `.`, `..`, `//` or trailing `/`.
        let rebuilt: PathBuf = self.path.components().collect();
        let plain = self.path.is_absolute()
            && rebuilt.as_os_str() == self.path.as_os_str()
            && self
                .path
                .components()
                .skip(1)
                .all(|c| matches!(c, Component::Normal(n) if is_valid_name(n.as_encoded_bytes())))
            && self.path.components().count() > 1;
        if plain {
            Ok(())
        } else {
            Err(BackupError::Io(format!(
                "invalid stream path {}: give an absolute path of plain names, such as /db.sql",
                self.path.display()
            )))
        }
    }
}

/// A stream's file for the tree builder: taken once by the walk.
pub(crate) struct StreamSlot {
    pub rx: Mutex<Option<Receiver<FileOutcome>>>,
    /// The parent snapshot had no file at this path.
    pub is_new: bool,
}

/// A stream being read: its slot, and the thread that ends with the
/// stream's verdict.
pub(crate) struct Running {
    pub slot: StreamSlot,
    pub thread: JoinHandle<Result<(), BackupError>>,
}

/// What a stream thread needs from the backup.
pub(crate) struct Shared {
    pub sink: BlobSink,
    pub chunker: Chunker,
    pub progress: Arc<dyn Progress>,
    pub stats: Arc<Stats>,
}

/// Starts reading `stream`; `previous` is the parent snapshot's file at its
/// path (its chunks are the delta bases). A command that cannot be started
/// fails here, before anything is read.
pub(crate) fn start(stream: &Stream, previous: Option<&Node>, shared: Shared) -> Result<Running, BackupError> {
    let (reader, child): (Box<dyn Read + Send>, Option<(Child, Tracked)>) = match &stream.from {
        StreamFrom::Stdin => (Box::new(std::io::stdin()), None),
        StreamFrom::Command(argv) => {
            let (prog, args) =
                argv.split_first().ok_or_else(|| BackupError::Io("a command stream needs a command".into()))?;
            let mut cmd = std::process::Command::new(prog);
            // The dump command is the user's, not a reader of cairn's secrets.
            for (k, _) in std::env::vars_os() {
                if k.to_string_lossy().starts_with("CAIRN_") && k.to_string_lossy().contains("PASSWORD") {
                    cmd.env_remove(k);
                }
            }
            cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped());
            let (mut c, tracked) = children::spawn(&mut cmd, children::unattended_or_terminal())
                .map_err(|e| BackupError::Io(format!("cannot run {}: {e}", prog.to_string_lossy())))?;
            let out = c.stdout.take().ok_or_else(|| BackupError::Io("no stdout pipe".into()))?;
            (Box::new(out), Some((c, tracked)))
        }
    };
    let bases = previous.and_then(|n| BaseFinder::new(&n.content, shared.sink.repo().index()));
    let (tx, rx) = bounded(1);
    let (name, from, trailer) = (stream.name(), stream.from.clone(), stream.trailer.clone());
    let thread = std::thread::Builder::new()
        .name(format!("stream {name}"))
        .spawn(move || {
            let mut reader = Tail { inner: reader, last: Vec::new() };
            let outcome =
                chunk_stream(&mut reader, 0, &shared.sink, &shared.chunker, bases, &*shared.progress, &shared.stats);
            let mut verdict = verdict(&name, &from, &outcome, child);
            if let (Ok(()), Some(t), FileOutcome::Done { size, .. }) = (&verdict, &trailer, &outcome) {
                let tail = &reader.last[reader.last.len().saturating_sub(TAIL)..];
                if *size > 0 && !tail.windows(t.len()).any(|w| w == t.as_slice()) {
                    let last = String::from_utf8_lossy(tail).lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").to_string();
                    verdict = Err(BackupError::Stream {
                        name: name.clone(),
                        source: std::io::Error::other(format!(
                            "it did not end as a complete dump does ({:?} missing; its last line: {last:?}); no snapshot was written",
                            String::from_utf8_lossy(t)
                        )),
                    });
                }
            }
            if let FileOutcome::Done { size, .. } = &outcome {
                shared.stats.add_total(*size);
            }
            let _ = tx.send(outcome);
            verdict
        })
        .map_err(|e| BackupError::Io(e.to_string()))?;
    Ok(Running { slot: StreamSlot { rx: Mutex::new(Some(rx)), is_new: previous.is_none() }, thread })
}

/// Whether the stream succeeded: its command's exit status first (the more
/// precise message), then a read failure, then no bytes at all.
fn verdict(
    name: &str,
    from: &StreamFrom,
    outcome: &FileOutcome,
    child: Option<(Child, Tracked)>,
) -> Result<(), BackupError> {
    if let Some((mut c, tracked)) = child {
        if !matches!(outcome, FileOutcome::Done { .. }) {
            // Reading stopped early: the command would block on a full pipe.
            tracked.kill();
        }
        let status = c.wait().map_err(|e| BackupError::Io(e.to_string()))?;
        if matches!(outcome, FileOutcome::Done { .. }) && !status.success() {
            let StreamFrom::Command(argv) = from else { unreachable!("a child runs only for a command") };
            let command = argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
            return Err(BackupError::CommandFailed { command, status: status.to_string() });
        }
    }
    match outcome {
        FileOutcome::Done { size: 0, .. } => Err(BackupError::EmptyStream {
            name: name.to_string(),
            from_command: matches!(from, StreamFrom::Command(_)),
        }),
        FileOutcome::Done { .. } => Ok(()),
        FileOutcome::Failed(e) => {
            Err(BackupError::Stream { name: name.to_string(), source: std::io::Error::other(e.clone()) })
        }
        // The write side failed; the backup reports that.
        FileOutcome::Aborted => Ok(()),
        // Only a file opened by the walk vanishes.
        FileOutcome::Vanished => {
            Err(BackupError::Stream { name: name.to_string(), source: std::io::ErrorKind::NotFound.into() })
        }
    }
}

/// The node of a stream: owned by whoever runs the backup, timed now.
pub(crate) fn stream_node(name: &[u8]) -> Node {
    let (uid, gid) = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
    let now = jiff::Timestamp::now();
    let t = Time(now.as_second(), now.subsec_nanosecond() as u32);
    Node { mode: 0o100644, uid, gid, mtime: t, ctime: t, ..Node::new(name, NodeKind::File) }
}

/// Checks that streams and paths do not overlap: a stream may not be at
/// or below a source path, nor above one, nor at another stream's path.
pub(crate) fn check_overlaps(paths: &[PathBuf], streams: &[Stream]) -> Result<(), BackupError> {
    for (i, s) in streams.iter().enumerate() {
        s.check()?;
        let clash = |other: &Path| s.path.starts_with(other) || other.starts_with(&s.path);
        if let Some(p) = paths.iter().find(|p| clash(p)) {
            return Err(BackupError::Io(format!(
                "stream {} overlaps the source {}: give the stream a path outside it",
                s.path.display(),
                p.display()
            )));
        }
        if let Some(o) = streams[..i].iter().find(|o| clash(&o.path)) {
            return Err(BackupError::Io(format!("two streams at {}: give each its own path", o.path.display())));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cairn_backend::Backend;
    use cairn_repo::{InitOptions, Repository};

    use super::*;
    use crate::{BackupOptions, Excludes, NoProgress, ParentChoice, Sources, backup};

    fn opts(sources: Sources) -> BackupOptions {
        BackupOptions {
            sources,
            excludes: Excludes::default(),
            tags: vec![],
            hostname: "h".into(),
            parent: ParentChoice::Auto,
            force: false,
            time: None,
            workers: Some(2),
            writes: Default::default(),
            deltas: Default::default(),
        }
    }

    fn command(script: &str) -> StreamFrom {
        StreamFrom::Command(vec!["sh".into(), "-c".into(), script.into()])
    }

    #[test]
    fn folders_and_command_streams_go_into_one_snapshot_or_none() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "remember the milk").unwrap();
        let backend = Backend::memory().unwrap();
        let repo = Repository::init(backend.clone(), b"pw", &InitOptions::fast_for_tests()).unwrap();
        let dump = "INSERT INTO t VALUES (1);\n".repeat(1000);
        let streams = vec![
            Stream {
                path: "/databases/app.sql".into(),
                from: command(&format!("printf '{dump}COMMIT;\\n'")),
                trailer: Some(b"\nCOMMIT;\n".to_vec()),
            },
            Stream { path: "/redis.rdb".into(), from: command("printf REDIS0011"), trailer: None },
        ];
        let sources = Sources { paths: vec![dir.path().to_path_buf()], streams };
        let out = backup(repo.load_index().unwrap(), &opts(sources.clone()), Arc::new(NoProgress)).unwrap();
        let mut paths = out.snapshot.paths.clone();
        let mut want =
            vec![dir.path().to_string_lossy().into_owned(), "/databases/app.sql".into(), "/redis.rdb".into()];
        paths.sort();
        want.sort();
        assert_eq!(paths, want);
        let repo = Repository::open(backend.clone(), b"pw").unwrap().load_index().unwrap();
        let read = |path: &str| {
            let node = repo.find_node(&out.snapshot.tree, path.as_bytes()).unwrap().unwrap();
            node.content.iter().flat_map(|b| repo.read_blob(b).unwrap()).collect::<Vec<u8>>()
        };
        assert_eq!(read("/databases/app.sql"), format!("{dump}COMMIT;\n").as_bytes());
        assert_eq!(read("/redis.rdb"), b"REDIS0011");
        assert_eq!(read(&format!("{}/notes.txt", dir.path().display())), b"remember the milk");

        // One stream failing half-way: no snapshot, whatever the others did.
        let before = repo.repo().snapshot_ids().unwrap().len();
        let cases = [
            (1, "printf partial; exit 3", "failed"),
            (1, "true", "gave no data"),
            // Exit 0, but the dump ends with its tool's error, as
            // `sqlite3 .dump` does on a locked database.
            (
                0,
                "printf 'BEGIN TRANSACTION;\\n/**** ERROR: (5) database is locked *****/\\nROLLBACK; -- due to errors\\n'",
                "did not end as a complete dump",
            ),
        ];
        for (which, script, want) in cases {
            let mut failing = sources.clone();
            failing.streams[which].from = command(script);
            let e = backup(repo_again(&backend), &opts(failing), Arc::new(NoProgress)).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
            assert_eq!(repo.repo().snapshot_ids().unwrap().len(), before, "no snapshot after: {e}");
        }
    }

    fn repo_again(backend: &Backend) -> cairn_repo::IndexedRepository {
        Repository::open(backend.clone(), b"pw").unwrap().load_index().unwrap()
    }

    #[test]
    fn streams_may_not_overlap_sources_or_each_other() {
        let s = |p: &str| Stream { path: p.into(), from: StreamFrom::Stdin, trailer: None };
        let paths = vec![PathBuf::from("/etc")];
        assert!(check_overlaps(&paths, &[s("/db.sql"), s("/dumps/a.sql"), s("/dumps/b.sql")]).is_ok());
        for bad in [vec![s("/etc/x.sql")], vec![s("/etc")], vec![s("/a.sql"), s("/a.sql")], vec![s("/a"), s("/a/b")]] {
            assert!(check_overlaps(&paths, &bad).is_err(), "{bad:?}");
        }
        assert!(check_overlaps(&[PathBuf::from("/")], &[s("/db.sql")]).is_err(), "everything is below /");
        for bad in ["db.sql", "/", "/a/../b", "/a/./b", "/a//b", "/a/"] {
            assert!(s(bad).check().is_err(), "{bad}");
        }
    }
}
