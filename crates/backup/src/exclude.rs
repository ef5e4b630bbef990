//! Exclude rules: glob patterns, marker files and file-system boundaries.
//!
//! A pattern without `/` matches a name anywhere (`*.tmp`, `cache`); a pattern
//! with `/` matches an absolute path and everything below it (`/home/*/.cache`),
//! as in restic. Patterns starting with `!` are not supported.

use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// An exclude pattern did not compile.
#[derive(Debug, thiserror::Error)]
#[error("invalid exclude pattern {pattern:?}: {reason}")]
pub struct ExcludeError {
    /// The pattern.
    pub pattern: String,
    /// Why.
    pub reason: String,
}

/// The compiled exclude rules of a backup.
#[derive(Debug, Clone, Default)]
pub struct Excludes {
    set: Option<GlobSet>,
    patterns: Vec<String>,
    /// Skip directories that contain a file of one of these names.
    pub if_present: Vec<String>,
    /// Do not descend into other file systems.
    pub one_file_system: bool,
}

impl Excludes {
    /// Compiles patterns.
    pub fn new(patterns: &[String]) -> Result<Self, ExcludeError> {
        let mut b = GlobSetBuilder::new();
        let mut kept = Vec::new();
        for p in patterns.iter().map(|p| p.trim()).filter(|p| !p.is_empty() && !p.starts_with('#')) {
            let base = p.trim_end_matches('/');
            let globs = if base.contains('/') {
                vec![base.to_string(), format!("{base}/**")]
            } else {
                vec![format!("**/{base}"), format!("**/{base}/**")]
            };
            for g in globs {
                let glob = GlobBuilder::new(&g)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| ExcludeError { pattern: p.to_string(), reason: e.to_string() })?;
                b.add(glob);
            }
            kept.push(p.to_string());
        }
        let set = b.build().map_err(|e| ExcludeError { pattern: kept.join(" "), reason: e.to_string() })?;
        Ok(Self { set: Some(set), patterns: kept, if_present: Vec::new(), one_file_system: false })
    }

    /// Whether an absolute path is excluded by a pattern.
    pub fn is_excluded(&self, path: &Path) -> bool {
        self.set.as_ref().is_some_and(|s| s.is_match(path))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_and_path_patterns() {
        let e = Excludes::new(&["*.tmp".into(), "/srv/*/cache".into(), "node_modules".into()]).expect("compiles");
        assert!(e.is_excluded(Path::new("/a/b/x.tmp")));
        assert!(!e.is_excluded(Path::new("/a/b/x.tmpl")));
        assert!(e.is_excluded(Path::new("/srv/app/cache")));
        assert!(e.is_excluded(Path::new("/srv/app/cache/deep/file")));
        assert!(!e.is_excluded(Path::new("/srv/app/data/cache2")));
        assert!(e.is_excluded(Path::new("/p/node_modules/x/y.js")));
        assert!(Excludes::new(&["a[".into()]).is_err());
    }
}
