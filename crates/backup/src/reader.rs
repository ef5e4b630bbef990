//! Read + chunk + hash + dedup: workers that turn a file or stream into its
//! list of data blob ids, handing new chunks to the write side.

use std::io::Read;
use std::os::fd::AsFd;
use std::sync::Arc;

use cairn_chunk::{Chunker, StreamChunker};
use cairn_format::tree::Xattr;
use cairn_format::{BlobId, BlobKind};
use crossbeam_channel::{Receiver, Sender};

use crate::Progress;
use crate::archiver::{Deltas, Stats};
use crate::delta::{self, BaseFinder};
use crate::metadata::{self, Stat};
use crate::pipeline::BlobSink;
use crate::place::{OpenError, Place};

/// Threads reading small files (up to [`crate::walker::SMALL_FILE`], in
/// batches). Reading a cold tree of small files waits on the disk for each
/// one; with many reads in flight the disk (or the storage behind it)
/// answers them together. The initial backup of 100,000 small files on a
/// loop-mounted ext4 with an emptied page cache: 7.2-7.5 s with 2 readers,
/// 5.6-5.7 with 4, 4.2-4.9 with 8, 4.0-4.1 with 16, 4.0-4.2 with 32; from
/// the page cache 1.74-1.76 s with 2 and 1.83-1.86 with 16. Larger files
/// have one reader per core: each may hold a chunk of the largest size.
pub const SMALL_FILE_READERS: usize = 16;

/// One file to read.
pub struct FileToRead {
    /// Where it is (its path in the snapshot for messages and progress).
    pub place: Place,
    /// What the walk saw: the size and time to notice the file changing
    /// while read, and the inode to tell a file saved over it.
    pub expected: Stat,
    /// Whether to read its extended attributes (not when taken over from
    /// the parent snapshot).
    pub read_xattrs: bool,
    /// The content of the file in the parent snapshot, for delta bases.
    pub parent_content: Vec<BlobId>,
}

/// Files of one directory, read in turn by one worker and answered
/// together. For small files, handing each to a worker and its answer back
/// cost more than reading it: a third of an initial backup's CPU went to
/// waking threads.
pub struct ReadJob {
    pub files: Vec<FileToRead>,
    /// One outcome per file, in order.
    pub reply: Sender<Vec<FileOutcome>>,
}

/// What reading a file gave.
pub enum FileOutcome {
    /// Its content: blob ids in order and the bytes read; `changed` says
    /// how the file changed while it was read (a warning); its extended
    /// attributes when asked for, read from the file opened; `saved_over`,
    /// the metadata of the file read when it was another than the walk saw
    /// (a new file renamed over the old after the walk looked), whose node
    /// is then made from it (its attributes read too).
    Done {
        content: Vec<BlobId>,
        size: u64,
        changed: Option<String>,
        xattrs: Option<Vec<Xattr>>,
        saved_over: Option<Stat>,
    },
    /// It could not be read (a warning; the backup goes on without it).
    Failed(String),
    /// It was gone when opened (deleted, or a temporary file renamed away
    /// after the listing): left out without a warning, as an entry gone
    /// before the walk's look is.
    Vanished,
    /// The write side failed; the backup is over.
    Aborted,
}

/// Reads files from `rx` until it closes.
pub fn read_loop(
    rx: Receiver<ReadJob>,
    sink: BlobSink,
    chunker: Chunker,
    progress: Arc<dyn Progress>,
    stats: Arc<Stats>,
) {
    for job in rx {
        let outcomes =
            job.files
                .iter()
                .map(|f| {
                    if sink.aborted() { FileOutcome::Aborted } else { read_one(f, &sink, &chunker, &*progress, &stats) }
                })
                .collect();
        let _ = job.reply.send(outcomes);
    }
}

fn read_one(
    job: &FileToRead,
    sink: &BlobSink,
    chunker: &Chunker,
    progress: &dyn Progress,
    stats: &Stats,
) -> FileOutcome {
    let p = &job.place.logical;
    match job.place.open_file() {
        Ok((f, opened)) => {
            let saved_over = (!opened.same_inode(&job.expected)).then_some(opened);
            let xattrs = (job.read_xattrs || saved_over.is_some()).then(|| metadata::xattrs_of_fd(f.as_fd()));
            let bases = BaseFinder::new(&job.parent_content, sink.repo().index());
            let out = chunk_stream(&f, opened.size, sink, chunker, bases, progress, stats);
            match out {
                FileOutcome::Done { content, size, .. } => {
                    progress.file_done(p, size);
                    // Torn: what was read may mix old and new content. It is
                    // stored (the next backup reads the file again, its
                    // mtime being newer than the one stored) and counted.
                    let now = f.metadata().ok().map(|m| Stat::from(&m));
                    let changed = (size != opened.size
                        || now.is_some_and(|n| (n.size, n.mtime) != (opened.size, opened.mtime)))
                    .then(|| {
                        format!(
                            "{}: changed while being read ({} bytes before, {size} read); stored what was read",
                            p.display(),
                            opened.size
                        )
                    });
                    FileOutcome::Done { content, size, changed, xattrs, saved_over }
                }
                FileOutcome::Failed(e) => FileOutcome::Failed(format!("{}: {e}", p.display())),
                o => o,
            }
        }
        Err(OpenError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => FileOutcome::Vanished,
        Err(e) => FileOutcome::Failed(format!("{}: cannot open: {e}", p.display())),
    }
}

/// Chunks any reader into the sink (`size_hint`: the bytes it is expected
/// to hold, 0 when unknown); new chunks get a delta base from `bases` (the
/// parent version's chunks) when there is one.
pub fn chunk_stream(
    reader: impl Read,
    size_hint: u64,
    sink: &BlobSink,
    chunker: &Chunker,
    mut bases: Option<BaseFinder>,
    progress: &dyn Progress,
    stats: &Stats,
) -> FileOutcome {
    let mut chunks = StreamChunker::with_size_hint(chunker, reader, size_hint);
    let mut content = Vec::new();
    let mut size = 0u64;
    loop {
        match chunks.next_chunk() {
            Ok(Some(chunk)) => {
                let n = chunk.len() as u64;
                let id = sink.repo().repo().blob_id(&chunk);
                let hint = bases.as_mut().and_then(|b| b.base_for(size, n, &id));
                size += n;
                stats.add_bytes_read(n);
                progress.bytes_read(n);
                if sink.has(&id) {
                    content.push(id);
                    continue;
                }
                let mut pieces = match sink.deltas() {
                    Deltas::Code => delta::split(sink.repo(), &chunk, hint),
                    Deltas::Off => vec![(0..chunk.len(), delta::sketch_only(&chunk))],
                };
                let submitted = if pieces.len() == 1 {
                    content.push(id);
                    sink.submit(BlobKind::Data, id, chunk, pieces.remove(0).1)
                } else {
                    pieces.into_iter().try_for_each(|(range, choice)| {
                        let piece = chunk[range].to_vec();
                        let piece_id = sink.repo().repo().blob_id(&piece);
                        content.push(piece_id);
                        sink.submit(BlobKind::Data, piece_id, piece, choice)
                    })
                };
                if submitted.is_err() {
                    return FileOutcome::Aborted;
                }
            }
            Ok(None) => return FileOutcome::Done { content, size, changed: None, xattrs: None, saved_over: None },
            Err(e) => return FileOutcome::Failed(format!("read error after {size} bytes: {e}")),
        }
    }
}
