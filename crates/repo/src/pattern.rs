//! Path patterns for backup excludes and restore includes/excludes, as in
//! restic: a pattern starting with `/` matches that absolute path and
//! everything below it (`/home/*/.cache`); any other pattern matches at any
//! depth, as a name (`*.tmp`, `node_modules`) or a run of names
//! (`etc/ssl`, `ssh/ssh_config`). `*` does not cross `/`; `**` does.

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
            if p.starts_with('!') {
                return Err(PatternError { pattern: p.clone(), reason: "negated patterns are not supported".into() });
            }
            let base = p.trim_end_matches('/');
            let globs = if base.starts_with('/') {
                vec![base.to_string(), format!("{base}/**")]
            } else {
                vec![format!("**/{base}"), format!("**/{base}/**")]
            };
            for g in globs {
                let glob = GlobBuilder::new(&g)
                    .literal_separator(true)
                    .backslash_escape(true)
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

    /// Whether an absolute path (`/a/b`) matches.
    pub fn matches(&self, path: impl AsRef<std::path::Path>) -> bool {
        self.set.as_ref().is_some_and(|s| s.is_match(path.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_and_path_patterns() {
        let m = Matcher::new(&["*.tmp".into(), "/srv/*/cache".into(), "node_modules".into()]).expect("compiles");
        assert!(m.matches("/a/b/x.tmp"));
        assert!(!m.matches("/a/b/x.tmpl"));
        assert!(m.matches("/srv/app/cache"));
        assert!(m.matches("/srv/app/cache/deep/file"));
        assert!(!m.matches("/srv/app/data/cache2"));
        assert!(!m.matches("/srv/a/b/cache"), "* does not cross /");
        assert!(m.matches("/p/node_modules/x/y.js"));
        assert!(Matcher::new(&["a[".into()]).is_err());
        assert!(Matcher::new(&["!keep".into()]).is_err());
        assert!(!Matcher::default().matches("/anything"));
    }

    #[test]
    fn a_relative_pattern_with_a_slash_matches_at_any_depth() {
        let m = Matcher::new(&["etc/ssl".into(), "ssh/ssh_config".into()]).expect("compiles");
        assert!(m.matches("/etc/ssl"));
        assert!(m.matches("/etc/ssl/certs/ca.pem"));
        assert!(m.matches("/chroot/etc/ssl/x"));
        assert!(m.matches("/etc/ssh/ssh_config"));
        assert!(!m.matches("/etc/ssl2"));
        assert!(!m.matches("/etc/ssh/ssh_config.d/x.conf"));
        assert!(!m.matches("/xetc/ssl"));
    }
}
