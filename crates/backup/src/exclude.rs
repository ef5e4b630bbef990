//! Exclude rules of a backup: path patterns (`cairn_repo::pattern`), marker
//! files and file-system boundaries.

use std::os::fd::BorrowedFd;
use std::path::Path;

use cairn_repo::pattern::{Matcher, PatternError};

/// The compiled exclude rules of a backup.
#[derive(Debug, Clone, Default)]
pub struct Excludes {
    matcher: Matcher,
    patterns: Vec<String>,
    /// Skip directories that contain a file of one of these names.
    pub if_present: Vec<String>,
    /// Do not descend into other file systems.
    pub one_file_system: bool,
    /// Skip directories holding a CACHEDIR.TAG with the standard signature.
    pub caches: bool,
    /// Skip files larger than this many bytes.
    pub larger_than: Option<u64>,
    /// Absolute paths never backed up: the repository and cache this very
    /// backup writes into (a backup of `/` would otherwise read its own
    /// packs as they are being written).
    pub skip: Vec<std::path::PathBuf>,
}

impl Excludes {
    /// Compiles case-sensitive patterns; blank lines and lines starting
    /// with `#` (as in an exclude file) are skipped.
    pub fn new(patterns: &[String]) -> Result<Self, PatternError> {
        Self::with_case(patterns, &[])
    }

    /// Compiles `patterns` and the case-insensitive `ipatterns` (recorded
    /// in the snapshot with a `(?i)` in front).
    pub fn with_case(patterns: &[String], ipatterns: &[String]) -> Result<Self, PatternError> {
        let kept = |list: &[String]| -> Vec<String> {
            list.iter().map(|p| p.trim()).filter(|p| !p.is_empty() && !p.starts_with('#')).map(str::to_string).collect()
        };
        let (sensitive, insensitive) = (kept(patterns), kept(ipatterns));
        let matcher = Matcher::from_lists(&sensitive, &insensitive)?;
        Ok(Self {
            matcher,
            patterns: sensitive.into_iter().chain(insensitive.iter().map(|p| format!("(?i){p}"))).collect(),
            if_present: Vec::new(),
            one_file_system: false,
            caches: false,
            larger_than: None,
            skip: Vec::new(),
        })
    }

    /// Whether an absolute path is excluded by a pattern.
    pub fn is_excluded(&self, path: &Path) -> bool {
        self.skip.iter().any(|s| s == path) || self.matcher.matches(path)
    }

    /// Whether the open directory `dir` holds a marker file that excludes it.
    pub fn has_marker(&self, dir: BorrowedFd<'_>) -> bool {
        use nix::fcntl::AtFlags;
        self.if_present.iter().any(|m| nix::sys::stat::fstatat(dir, m.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW).is_ok())
            || (self.caches && is_cache_dir(dir))
    }

    /// Whether a file of `size` bytes is left out for its size.
    pub fn too_large(&self, size: u64) -> bool {
        self.larger_than.is_some_and(|max| size > max)
    }

    /// The patterns as given (recorded in the snapshot).
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// The first bytes of a valid CACHEDIR.TAG (the Cache Directory Tagging
/// Specification): a file of that name without them marks nothing, so a
/// stray empty CACHEDIR.TAG does not hide a folder.
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

fn is_cache_dir(dir: BorrowedFd<'_>) -> bool {
    use nix::fcntl::OFlag;
    use std::io::Read;
    // Not through a symlink, and never blocking: a CACHEDIR.TAG that is a
    // fifo must not stop the backup.
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let Ok(fd) = nix::fcntl::openat(dir, "CACHEDIR.TAG", flags, nix::sys::stat::Mode::empty()) else {
        return false;
    };
    let mut f = std::fs::File::from(fd);
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut head = [0u8; CACHEDIR_SIGNATURE.len()];
    f.read_exact(&mut head).is_ok() && head == CACHEDIR_SIGNATURE
}
