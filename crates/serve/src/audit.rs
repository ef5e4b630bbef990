//! The audit log: one JSON line per state-changing request (and per
//! refused one), saying who, from where, what, when and how it ended.
//! Appended to `audit.log` in the state folder, owner-only; a line that
//! cannot be written is reported on stderr and never fails the request
//! (the request has already happened).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

/// One thing that happened.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    pub time: String,
    /// The token's name; `-` when nobody was recognized.
    pub who: &'a str,
    pub from: Option<SocketAddr>,
    pub method: &'a str,
    pub path: &'a str,
    /// The HTTP status answered; none for the end of work that ran on
    /// after the answer (a job run, a restore).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub outcome: Outcome,
    /// Why it was refused or failed, or what it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Done, or started (a job run, a restore: its end is a later line).
    Ok,
    /// Refused before anything happened: not authenticated, cross-site,
    /// bad input.
    Refused,
    /// Tried and failed.
    Failed,
}

impl Outcome {
    pub fn of_status(status: u16) -> Self {
        match status {
            200..=399 => Outcome::Ok,
            400..=499 => Outcome::Refused,
            _ => Outcome::Failed,
        }
    }
}

/// The log file, appended to by every request.
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
}

impl AuditLog {
    /// The log at `dir/audit.log` (created owner-only when first written).
    pub fn in_folder(dir: &Path) -> Self {
        Self { path: dir.join("audit.log"), file: Mutex::new(None) }
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records how operation `id` (started by an audited request) ended.
    pub fn ended(&self, ops: &crate::ops::Operations, id: u64) {
        let Some(op) = ops.get(id) else { return };
        let what = format!(
            "operation {id}: {} {}",
            serde_json::to_value(op.kind).unwrap_or_default().as_str().unwrap_or("-"),
            op.what
        );
        self.write(Entry {
            time: String::new(),
            who: &op.who,
            from: None,
            method: "-",
            path: &what,
            status: None,
            outcome: if op.state == crate::ops::OpState::Succeeded { Outcome::Ok } else { Outcome::Failed },
            detail: op.result.clone(),
        });
    }

    /// Appends `entry`, stamped now.
    pub fn write(&self, mut entry: Entry<'_>) {
        entry.time = jiff::Timestamp::now().to_string();
        let mut line = serde_json::to_vec(&entry).unwrap_or_default();
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if file.is_none() {
            use std::os::unix::fs::OpenOptionsExt;
            if let Some(dir) = self.path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            match std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path) {
                Ok(f) => *file = Some(f),
                Err(e) => {
                    eprintln!("cairn: cannot write the audit log {}: {e}", self.path.display());
                    return;
                }
            }
        }
        if let Some(f) = file.as_mut()
            && let Err(e) = f.write_all(&line)
        {
            eprintln!("cairn: cannot write the audit log {}: {e}", self.path.display());
        }
    }
}
