//! Exclude rules of a backup: path patterns (`cairn_repo::pattern`), marker
//! files and file-system boundaries.

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
    /// Absolute paths never backed up: the repository and cache this very
    /// backup writes into (a backup of `/` would otherwise read its own
    /// packs as they are being written).
    pub skip: Vec<std::path::PathBuf>,
}

impl Excludes {
    /// Compiles patterns; blank lines and lines starting with `#` (as in an
    /// exclude file) are skipped.
    pub fn new(patterns: &[String]) -> Result<Self, PatternError> {
        let kept: Vec<String> = patterns
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty() && !p.starts_with('#'))
            .map(str::to_string)
            .collect();
        Ok(Self {
            matcher: Matcher::new(&kept)?,
            patterns: kept,
            if_present: Vec::new(),
            one_file_system: false,
            skip: Vec::new(),
        })
    }

    /// Whether an absolute path is excluded by a pattern.
    pub fn is_excluded(&self, path: &Path) -> bool {
        self.skip.iter().any(|s| s == path) || self.matcher.matches(path)
    }

    /// Whether a directory holds a marker file that excludes it.
    pub fn has_marker(&self, dir: &Path) -> bool {
        self.if_present.iter().any(|m| dir.join(m).symlink_metadata().is_ok())
    }

    /// The patterns as given (recorded in the snapshot).
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}
