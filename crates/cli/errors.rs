//! Every failure as one line and an exit code. The table is in the README
//! ("Exit codes"); match on error variants, never on message text.

use cairn_backend::BackendError;
use cairn_backup::BackupError;
use cairn_repo::RepoError;
use cairn_restore::RestoreError;

/// Success.
pub const EXIT_OK: i32 = 0;
/// Any fatal error.
pub const EXIT_ERROR: i32 = 1;
/// Backup: snapshot written, but some sources could not be read.
pub const EXIT_INCOMPLETE: i32 = 3;
/// No repository at the given location (as restic).
pub const EXIT_NO_REPO: i32 = 10;
/// Wrong password (as restic).
pub const EXIT_WRONG_PASSWORD: i32 = 12;
/// Output pipe closed by the reader (as a shell reports SIGPIPE).
pub const EXIT_BROKEN_PIPE: i32 = 141;

fn repo_error(e: &anyhow::Error) -> Option<&RepoError> {
    e.chain().find_map(|c| {
        if let Some(r) = c.downcast_ref::<RepoError>() {
            return Some(r);
        }
        if let Some(BackupError::Repo(r)) = c.downcast_ref::<BackupError>() {
            return Some(r);
        }
        match c.downcast_ref::<RestoreError>() {
            Some(RestoreError::Repo(r)) => Some(r),
            _ => None,
        }
    })
}

/// The storage error behind an error, wherever it sits in the chain.
fn backend_error(e: &anyhow::Error) -> Option<&BackendError> {
    e.chain().find_map(|c| c.downcast_ref::<BackendError>()).or_else(|| match repo_error(e) {
        Some(RepoError::Backend(b)) => Some(b),
        _ => None,
    })
}

fn io_kind(e: &anyhow::Error) -> Option<std::io::ErrorKind> {
    e.chain()
        .find_map(|c| c.downcast_ref::<std::io::Error>().map(|io| io.kind()))
        .or_else(|| e.chain().find_map(|c| c.downcast_ref::<BackendError>().and_then(BackendError::io_kind)))
        .or_else(|| match repo_error(e) {
            Some(RepoError::Backend(b)) => b.io_kind(),
            _ => None,
        })
}

/// True when the error is a closed output pipe.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    io_kind(e) == Some(std::io::ErrorKind::BrokenPipe)
}

/// The exit code for an error.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    if let Some(BackendError::NoRepository(_)) = backend_error(e) {
        return EXIT_NO_REPO;
    }
    match repo_error(e) {
        Some(RepoError::NoRepository { .. } | RepoError::Foreign { .. }) => EXIT_NO_REPO,
        Some(RepoError::WrongPassword { .. }) => EXIT_WRONG_PASSWORD,
        _ => EXIT_ERROR,
    }
}

fn hint(e: &anyhow::Error) -> Option<&'static str> {
    if io_kind(e) == Some(std::io::ErrorKind::StorageFull) {
        return Some("free space on that disk and run again; what was stored before is intact");
    }
    match backend_error(e) {
        Some(BackendError::NoRepository(_)) => {
            return Some("create one with `cairn init`, or check -r / CAIRN_REPOSITORY");
        }
        // Refused credentials, a missing bucket, a folder's permissions:
        // running again changes nothing, and the message says what to fix.
        Some(b @ BackendError::Service { .. }) if !b.is_transient() => return None,
        Some(BackendError::Service { .. }) => {
            return Some("what was stored before is intact: run again once the storage answers");
        }
        _ => {}
    }
    Some(match repo_error(e)? {
        RepoError::NoRepository { .. } => "create one with `cairn init`, or check -r / CAIRN_REPOSITORY",
        RepoError::Foreign { .. } => "use that tool with it, or give cairn a repository made by `cairn init`",
        RepoError::WrongPassword { .. } => "check CAIRN_PASSWORD, CAIRN_PASSWORD_FILE or CAIRN_PASSWORD_COMMAND",
        RepoError::NewerVersion { .. } => "upgrade cairn to use this repository",
        RepoError::KeyDamaged { .. } => {
            "open with another key's password and run `cairn check`, or put back a copy of that key file"
        }
        RepoError::Corrupt { object, .. } if object == "config" => {
            "nothing opens without it: put back a copy of the repository's config file"
        }
        RepoError::Corrupt { .. } | RepoError::BlobNotFound(_) => {
            "run `cairn check --read-data` to see what is damaged and which snapshots it affects"
        }
        RepoError::SnapshotNotFound(_) | RepoError::AmbiguousSnapshot(_) => "list snapshots with `cairn snapshots`",
        RepoError::PathNotFound(_) => "list the snapshot's files with `cairn ls`",
        RepoError::AlreadyExists { .. } => "use the existing repository or choose another location",
        _ => return None,
    })
}

/// The one-line message for an error: what failed, why, and what to do.
pub fn message(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in e.chain() {
        let s = c.to_string();
        // Transparent wrappers repeat their source's text.
        if parts.last().is_none_or(|l| !l.ends_with(&s)) {
            parts.push(s);
        }
    }
    let mut line = format!("cairn: error: {}", parts.join(": "));
    if let Some(h) = hint(e) {
        line.push_str(&format!(" ({h})"));
    }
    line.replace('\n', " ")
}
