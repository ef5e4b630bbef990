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

/// Whether a pattern tells upper from lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// `*.JPG` matches `a.JPG` only (`--exclude`, `--include`).
    Sensitive,
    /// `*.jpg` matches `a.JPG` and `a.jpg` (`--iexclude`, `--iinclude`).
    Insensitive,
}

/// A compiled set of patterns.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    set: Option<GlobSet>,
}

impl Matcher {
    /// Compiles case-sensitive patterns; an empty list matches nothing.
    pub fn new(patterns: &[String]) -> Result<Self, PatternError> {
        Self::with_case(patterns.iter().map(|p| (p.as_str(), Case::Sensitive)))
    }

    /// Compiles case-sensitive `patterns` and case-insensitive `ipatterns`
    /// (`--exclude` and `--iexclude` of one command).
    pub fn from_lists(patterns: &[String], ipatterns: &[String]) -> Result<Self, PatternError> {
        Self::with_case(
            patterns
                .iter()
                .map(|p| (p.as_str(), Case::Sensitive))
                .chain(ipatterns.iter().map(|p| (p.as_str(), Case::Insensitive))),
        )
    }

    /// Compiles patterns, each with its own case rule; none matches nothing.
    pub fn with_case<'a>(patterns: impl IntoIterator<Item = (&'a str, Case)>) -> Result<Self, PatternError> {
        let patterns: Vec<(&str, Case)> = patterns.into_iter().collect();
        if patterns.is_empty() {
            return Ok(Self { set: None });
        }
        let mut b = GlobSetBuilder::new();
        for (p, case) in &patterns {
            let p = p.to_string();
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
                    .case_insensitive(*case == Case::Insensitive)
                    .build()
                    .map_err(|e| PatternError { pattern: p.clone(), reason: e.to_string() })?;
                b.add(glob);
            }
        }
        let all: Vec<&str> = patterns.iter().map(|(p, _)| *p).collect();
        let set = b.build().map_err(|e| PatternError { pattern: all.join(" "), reason: e.to_string() })?;
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
    fn insensitive_patterns_ignore_case_and_sensitive_ones_do_not() {
        let m = Matcher::with_case([("*.jpg", Case::Insensitive), ("/srv/Cache", Case::Sensitive)]).expect("compiles");
        assert!(m.matches("/a/IMG.JPG") && m.matches("/a/img.jpg"));
        assert!(m.matches("/srv/Cache/x") && !m.matches("/srv/cache/x"));
        assert!(!Matcher::new(&["*.jpg".into()]).expect("compiles").matches("/a/IMG.JPG"));
    }

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
