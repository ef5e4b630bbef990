//! Source paths as the user typed them, made absolute the way a shell reads
//! them: `.` is dropped and `..` removes the component before it, so
//! `cairn backup ../other` run in `/srv/a` backs up `/srv/other`.

use std::path::{Component, Path, PathBuf};

/// `path` made absolute against `cwd` and normalized lexically (no symlink
/// is resolved: the snapshot records the path the user named, and the walk
/// reads that same path). `..` at the root stays at the root, as in a shell.
pub fn absolute_source(path: &Path, cwd: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    let joined;
    let full = if path.is_absolute() {
        path
    } else {
        joined = cwd.join(path);
        &joined
    };
    for c in full.components() {
        match c {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Resolves every source against the current directory; a source named
/// twice, or inside another source, is kept once (the outer one covers it,
/// and the snapshot's paths then match the next run's whatever the order).
pub fn absolute_sources(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let cwd = std::env::current_dir()?;
    let all: Vec<PathBuf> = paths.iter().map(|p| absolute_source(p, &cwd)).collect();
    let mut out: Vec<PathBuf> = Vec::new();
    for (i, p) in all.iter().enumerate() {
        let covered = all.iter().enumerate().any(|(j, q)| (q != p && p.starts_with(q)) || (q == p && j < i));
        if !covered {
            out.push(p.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn abs(p: &str) -> String {
        absolute_source(Path::new(p), Path::new("/srv/a")).display().to_string()
    }

    #[test]
    fn dots_are_resolved_as_a_shell_does() {
        assert_eq!(abs("../other"), "/srv/other");
        assert_eq!(abs(".."), "/srv");
        assert_eq!(abs("."), "/srv/a");
        assert_eq!(abs("./x/../y"), "/srv/a/y");
        assert_eq!(abs("x/"), "/srv/a/x");
        assert_eq!(abs("x//y/./"), "/srv/a/x/y");
        assert_eq!(abs("../../../.."), "/");
        assert_eq!(abs("/"), "/");
        assert_eq!(abs("/etc/../var/./log/"), "/var/log");
    }

    #[test]
    fn a_source_twice_or_inside_another_is_kept_once() {
        let got = absolute_sources(&["/a/b".into(), "/a".into(), "/c/".into(), "/a".into(), "/c".into()]);
        assert_eq!(got.ok(), Some(vec![PathBuf::from("/a"), PathBuf::from("/c")]));
        let got = absolute_sources(&["/etc".into(), "/".into()]);
        assert_eq!(got.ok(), Some(vec![PathBuf::from("/")]));
    }
}
