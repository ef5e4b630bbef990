//! Progress bars on a terminal (indicatif); nothing animated otherwise.
//! Warnings always reach stderr, one line each.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Whether to animate: stderr is a terminal and --quiet/--json are off.
pub fn enabled(quiet: bool, json: bool) -> bool {
    !quiet && !json && std::io::stderr().is_terminal()
}

/// A bar with a byte total (ETA shown) or a spinner until the total is known.
pub fn bar(enabled: bool, prefix: &str) -> Option<ProgressBar> {
    if !enabled {
        return None;
    }
    let pb = ProgressBar::new(0);
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_prefix(prefix.to_string());
    pb.enable_steady_tick(Duration::from_millis(200));
    Some(pb)
}

fn warn(pb: &Option<ProgressBar>, msg: &str) {
    match pb {
        Some(pb) => pb.suspend(|| eprintln!("warning: {msg}")),
        None => eprintln!("warning: {msg}"),
    }
}

/// Backup progress: files and bytes done against the totals a scan finds,
/// warnings. Shown as a bar on a terminal, as status lines with --json.
#[derive(Default)]
pub struct BackupProgress {
    pub bar: Option<ProgressBar>,
    pub files: AtomicU64,
    pub bytes: AtomicU64,
    pub warnings: AtomicU64,
    /// What the scan of the sources found so far.
    pub total_files: AtomicU64,
    pub total_bytes: AtomicU64,
}

impl BackupProgress {
    /// One `--json` status line, restic's `message_type: status`.
    pub fn status_line(&self, elapsed: Duration) -> serde_json::Value {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (done, total) = (load(&self.bytes), load(&self.total_bytes));
        serde_json::json!({
            "message_type": "status",
            "seconds_elapsed": elapsed.as_secs(),
            "percent_done": if total > 0 { (done as f64 / total as f64).min(1.0) } else { 0.0 },
            "total_files": load(&self.total_files),
            "files_done": load(&self.files),
            "total_bytes": total,
            "bytes_done": done,
            "error_count": load(&self.warnings),
        })
    }
}

impl cairn_backup::Progress for BackupProgress {
    fn bytes_read(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
        if let Some(pb) = &self.bar {
            pb.inc(n);
        }
    }
    fn bytes_skipped(&self, n: u64) {
        self.bytes_read(n);
    }
    fn file_done(&self, _path: &Path, _size: u64) {
        let n = self.files.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(pb) = &self.bar {
            pb.set_message(format!("{n} files"));
        }
    }
    fn warning(&self, msg: &str) {
        self.warnings.fetch_add(1, Ordering::Relaxed);
        warn(&self.bar, msg);
    }
}

/// Restore progress.
pub struct RestoreProgress {
    pub bar: Option<ProgressBar>,
}

impl cairn_restore::RestoreProgress for RestoreProgress {
    fn bytes(&self, n: u64) {
        if let Some(pb) = &self.bar {
            pb.inc(n);
        }
    }
    fn warning(&self, msg: &str) {
        warn(&self.bar, msg);
    }
}

/// Check progress (data read).
pub struct CheckProgress {
    pub bar: Option<ProgressBar>,
}

impl cairn_check::CheckProgress for CheckProgress {
    fn start_read(&self, _packs: u64, bytes: u64) {
        if let Some(pb) = &self.bar {
            pb.set_length(bytes);
        }
    }
    fn pack_read(&self, bytes: u64) {
        if let Some(pb) = &self.bar {
            pb.inc(bytes);
        }
    }
}
