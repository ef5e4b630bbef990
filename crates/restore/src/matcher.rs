//! Include/exclude patterns over snapshot paths. Same rules as backup
//! excludes: a pattern with `/` matches an absolute snapshot path and what is
//! below it, a pattern without `/` matches a name anywhere.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// A pattern did not compile.
#[derive(Debug, thiserror::Error)]
#[error("invalid pattern {pattern:?}: {reason}")]
pub struct PatternError {
    /// The pattern.
    pub pattern: String,
    /// Why.
    pub reason: String,
}

/// A compiled set of patterns.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    set: Option<GlobSet>,
}

impl Matcher {
    /// Compiles patterns; an empty list matches nothing.
    pub fn new(patterns: &[String]) -> Result<Self, PatternError> {
        if patterns.is_empty() {
            return Ok(Self { set: None });
        }
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            let base = p.trim_end_matches('/');
            let globs = if base.contains('/') {
                vec![base.to_string(), format!("{base}/**")]
            } else {
                vec![format!("**/{base}"), format!("**/{base}/**")]
            };
            for g in globs {
                let glob = GlobBuilder::new(&g)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| PatternError { pattern: p.clone(), reason: e.to_string() })?;
                b.add(glob);
            }
        }
        let set = b.build().map_err(|e| PatternError { pattern: patterns.join(" "), reason: e.to_string() })?;
        Ok(Self { set: Some(set) })
    }

    /// True when no pattern was given.
    pub fn is_empty(&self) -> bool {
        self.set.is_none()
    }

    /// Whether a snapshot path (`/a/b`) matches.
    pub fn matches(&self, path: &str) -> bool {
        self.set.as_ref().is_some_and(|s| s.is_match(path))
    }
}
