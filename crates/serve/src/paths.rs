//! Paths in URLs: a snapshot's path as components, with every way out of
//! the snapshot refused (`..`, `.`, empty components are not names a tree
//! holds, and a request that uses them is a mistake or an attack).

/// Why a path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A `.` or `..` component.
    #[error("path {0:?} has a '.' or '..' component: give the path as the snapshot holds it")]
    Relative(String),
    /// A NUL byte, which no file name holds.
    #[error("path {0:?} holds a NUL byte")]
    Nul(String),
}

/// The components of `path` (slashes at either end and doubled ones are
/// ignored, as a shell does).
pub fn components(path: &str) -> Result<Vec<&str>, PathError> {
    let mut out = Vec::new();
    for c in path.split('/').filter(|c| !c.is_empty()) {
        if c == "." || c == ".." {
            return Err(PathError::Relative(path.to_string()));
        }
        if c.contains('\0') {
            return Err(PathError::Nul(path.to_string()));
        }
        out.push(c);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_and_dot_dot_are_refused_wherever_they_are() {
        assert_eq!(components("/etc//ssh/").unwrap(), ["etc", "ssh"]);
        assert_eq!(components("").unwrap(), Vec::<&str>::new());
        for bad in ["..", "../etc", "etc/../..", "etc/./x", "a/..", "./a"] {
            assert!(matches!(components(bad), Err(PathError::Relative(_))), "{bad}");
        }
        assert!(matches!(components("a\0b"), Err(PathError::Nul(_))));
        // A name that only starts with dots is a name.
        assert_eq!(components("...").unwrap(), ["..."]);
        assert_eq!(components(".hidden/..x").unwrap(), [".hidden", "..x"]);
    }
}
