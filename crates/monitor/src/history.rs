//! The run history: one row per run of a job (its backup), and per check,
//! prune, copy and drill, in `history.sqlite3` in the state folder (owner
//! only). SQLite in WAL mode with a busy timeout, so that the daemon and a
//! manual `job run` may write at once. The schema's version is SQLite's
//! `user_version`; a newer file than this cairn knows is refused rather
//! than misread.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// The file in the state folder.
pub const FILE: &str = "history.sqlite3";

/// The schema this code writes.
const VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    kind TEXT NOT NULL,
    repository TEXT,
    started TEXT NOT NULL,
    ended TEXT NOT NULL,
    outcome TEXT NOT NULL,
    exit_code INTEGER NOT NULL,
    files INTEGER NOT NULL DEFAULT 0,
    bytes_read INTEGER NOT NULL DEFAULT 0,
    bytes_added INTEGER NOT NULL DEFAULT 0,
    warnings INTEGER NOT NULL DEFAULT 0,
    snapshot TEXT,
    error TEXT
);
CREATE INDEX runs_by_job ON runs (job, kind, started);
CREATE TABLE repositories (
    name TEXT PRIMARY KEY,
    snapshots INTEGER NOT NULL,
    size_bytes INTEGER NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE alerts (
    job TEXT NOT NULL,
    alert TEXT NOT NULL,
    since TEXT NOT NULL,
    PRIMARY KEY (job, alert)
);
";

/// The history could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// SQLite failed (the file is damaged, the disk full, ...).
    #[error("run history {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The file was written by a newer cairn.
    #[error("run history {path}: written by a newer cairn (schema {found}, this one knows {VERSION}); upgrade cairn")]
    Newer {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
    },
    /// The state folder cannot be made.
    #[error("run history: cannot make the state folder {path}: {source}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What was run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    /// A job's backup (with its hooks and retention).
    Backup,
    /// A check after a job.
    Check,
    /// A prune of a repository.
    Prune,
    /// A copy into another repository (with its retention).
    Copy,
    /// A restore drill.
    Drill,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// All went well.
    Success,
    /// A snapshot was written, but some sources could not be read.
    Warning,
    /// It failed.
    Failure,
    /// A signal stopped it.
    Interrupted,
}

macro_rules! text_enum {
    ($t:ty { $($v:ident => $s:literal),* }) => {
        impl $t {
            /// Its name in the database, the JSON and the metrics.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
            fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(Self::$v),)* _ => None }
            }
        }
    };
}
text_enum!(RunKind { Backup => "backup", Check => "check", Prune => "prune", Copy => "copy", Drill => "drill" });
text_enum!(Outcome { Success => "success", Warning => "warning", Failure => "failure", Interrupted => "interrupted" });

/// One run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    /// The job it belongs to.
    pub job: String,
    /// What it was.
    pub kind: RunKind,
    /// The repository it worked on, where there is one.
    pub repository: Option<String>,
    /// When it started and ended.
    pub started: Timestamp,
    /// When it ended.
    pub ended: Timestamp,
    /// How it ended.
    pub outcome: Outcome,
    /// The exit code a command doing only this would have had.
    pub exit_code: i32,
    /// Files in the snapshot (backup), restored (drill).
    pub files: u64,
    /// Bytes read from the sources (backup) or the repository (check, drill).
    pub bytes_read: u64,
    /// Bytes added to the repository (compressed, encrypted).
    pub bytes_added: u64,
    /// Sources that could not be read.
    pub warnings: u64,
    /// The snapshot written (backup, copy) or used (drill).
    pub snapshot: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

impl Run {
    /// A run of `kind` for `job` that started at `started` and ends now,
    /// with nothing counted yet.
    pub fn new(job: &str, kind: RunKind, started: Timestamp, outcome: Outcome) -> Run {
        Run {
            job: job.to_string(),
            kind,
            repository: None,
            started,
            ended: Timestamp::now(),
            outcome,
            exit_code: match outcome {
                Outcome::Success => 0,
                Outcome::Warning => 3,
                Outcome::Failure | Outcome::Interrupted => 1,
            },
            files: 0,
            bytes_read: 0,
            bytes_added: 0,
            warnings: 0,
            snapshot: None,
            error: None,
        }
    }

    /// How long it took.
    pub fn duration(&self) -> Duration {
        Duration::try_from(self.ended.duration_since(self.started)).unwrap_or_default()
    }

    /// Whether it ended well enough to count as a good copy.
    pub fn is_good(&self) -> bool {
        matches!(self.outcome, Outcome::Success | Outcome::Warning)
    }
}

/// The history database of one state folder.
pub struct History {
    conn: Connection,
    path: PathBuf,
}

impl History {
    /// Opens (or makes) the history in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<History, HistoryError> {
        std::fs::create_dir_all(state_dir)
            .map_err(|source| HistoryError::Folder { path: state_dir.to_path_buf(), source })?;
        let path = state_dir.join(FILE);
        let sql = |source| HistoryError::Sqlite { path: path.clone(), source };
        let conn = Connection::open(&path).map_err(sql)?;
        // Owner only, as every state file (the umask is 077 in the binary;
        // a library user may not have set it).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        }
        conn.busy_timeout(Duration::from_secs(30)).map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(sql)?;
        let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(sql)?;
        match found {
            0 => {
                conn.execute_batch(&format!("BEGIN; {SCHEMA} PRAGMA user_version = {VERSION}; COMMIT;"))
                    .map_err(sql)?;
            }
            VERSION => {}
            _ => return Err(HistoryError::Newer { path, found }),
        }
        Ok(History { conn, path })
    }

    fn err(&self, source: rusqlite::Error) -> HistoryError {
        HistoryError::Sqlite { path: self.path.clone(), source }
    }

    /// Records `run`; returns its row id.
    pub fn record(&self, run: &Run) -> Result<i64, HistoryError> {
        self.conn
            .execute(
                "INSERT INTO runs (job, kind, repository, started, ended, outcome, exit_code, files, bytes_read,
                                   bytes_added, warnings, snapshot, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    run.job,
                    run.kind.as_str(),
                    run.repository,
                    run.started.to_string(),
                    run.ended.to_string(),
                    run.outcome.as_str(),
                    run.exit_code,
                    run.files as i64,
                    run.bytes_read as i64,
                    run.bytes_added as i64,
                    run.warnings as i64,
                    run.snapshot,
                    run.error,
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The newest `limit` runs (of `job`, if given), newest first.
    pub fn list(&self, job: Option<&str>, limit: usize) -> Result<Vec<Run>, HistoryError> {
        self.query(
            "SELECT * FROM runs WHERE (?1 IS NULL OR job = ?1) ORDER BY started DESC, id DESC LIMIT ?2",
            params![job, limit as i64],
        )
    }

    /// The newest run of `kind` for `job`; with `good`, the newest that
    /// ended well.
    pub fn last(&self, job: &str, kind: RunKind, good: bool) -> Result<Option<Run>, HistoryError> {
        let sql = if good {
            "SELECT * FROM runs WHERE job = ?1 AND kind = ?2 AND outcome IN ('success', 'warning')
             ORDER BY started DESC, id DESC LIMIT 1"
        } else {
            "SELECT * FROM runs WHERE job = ?1 AND kind = ?2 ORDER BY started DESC, id DESC LIMIT 1"
        };
        Ok(self.query(sql, params![job, kind.as_str()])?.into_iter().next())
    }

    /// Bytes added by the `n` good backups of `job` before the newest one.
    pub fn recent_added(&self, job: &str, n: usize) -> Result<Vec<u64>, HistoryError> {
        let runs = self.query(
            "SELECT * FROM runs WHERE job = ?1 AND kind = 'backup' AND outcome IN ('success', 'warning')
             ORDER BY started DESC, id DESC LIMIT ?2 OFFSET 1",
            params![job, n as i64],
        )?;
        Ok(runs.iter().map(|r| r.bytes_added).collect())
    }

    fn query(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<Run>, HistoryError> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = stmt.query_map(args, row_to_run).map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Keeps the newest figures of repository `name`.
    pub fn record_repository(&self, r: &crate::metrics::RepositoryState) -> Result<(), HistoryError> {
        let at = r.at.unwrap_or_else(Timestamp::now).to_string();
        self.conn
            .execute(
                "INSERT OR REPLACE INTO repositories (name, snapshots, size_bytes, at) VALUES (?1, ?2, ?3, ?4)",
                params![r.name, r.snapshots as i64, r.size_bytes as i64, at],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The newest figures of every repository, by name.
    pub fn repositories(&self) -> Result<Vec<crate::metrics::RepositoryState>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, snapshots, size_bytes, at FROM repositories ORDER BY name")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(crate::metrics::RepositoryState {
                    name: r.get(0)?,
                    snapshots: r.get::<_, i64>(1)?.max(0) as u64,
                    size_bytes: r.get::<_, i64>(2)?.max(0) as u64,
                    at: r.get::<_, String>(3)?.parse().ok(),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// How many runs of `job` there were, by kind and outcome.
    pub fn counts(&self, job: &str) -> Result<Vec<(RunKind, Outcome, u64)>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare("SELECT kind, outcome, count(*) FROM runs WHERE job = ?1 GROUP BY kind, outcome ORDER BY 1, 2")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([job], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (k, o, n) = row.map_err(|e| self.err(e))?;
            if let (Some(k), Some(o)) = (RunKind::parse(&k), Outcome::parse(&o)) {
                out.push((k, o, n.max(0) as u64));
            }
        }
        Ok(out)
    }

    /// Since when alert `alert` of `job` has been raised, if it is.
    pub fn alert(&self, job: &str, alert: &str) -> Result<Option<Timestamp>, HistoryError> {
        let since: Option<String> = self
            .conn
            .query_row("SELECT since FROM alerts WHERE job = ?1 AND alert = ?2", params![job, alert], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(since.and_then(|s| s.parse().ok()))
    }

    /// Raises (`Some(since)`) or clears (`None`) an alert; returns whether
    /// that changed anything, so that a notification goes out once per
    /// change, not once per look.
    pub fn set_alert(&self, job: &str, alert: &str, since: Option<Timestamp>) -> Result<bool, HistoryError> {
        let changed = match since {
            Some(t) => self.conn.execute(
                "INSERT OR IGNORE INTO alerts (job, alert, since) VALUES (?1, ?2, ?3)",
                params![job, alert, t.to_string()],
            ),
            None => self.conn.execute("DELETE FROM alerts WHERE job = ?1 AND alert = ?2", params![job, alert]),
        }
        .map_err(|e| self.err(e))?;
        Ok(changed > 0)
    }
}

fn row_to_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<Run> {
    let text = |i: usize| -> rusqlite::Result<String> { r.get(i) };
    let time = |i: usize| -> rusqlite::Result<Timestamp> {
        text(i)?.parse().map_err(|e: jiff::Error| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })
    };
    let bad =
        |i: usize| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, "unknown value".into());
    let count = |i: usize| -> rusqlite::Result<u64> { r.get::<_, i64>(i).map(|v| v.max(0) as u64) };
    Ok(Run {
        job: text(1)?,
        kind: RunKind::parse(&text(2)?).ok_or_else(|| bad(2))?,
        repository: r.get(3)?,
        started: time(4)?,
        ended: time(5)?,
        outcome: Outcome::parse(&text(6)?).ok_or_else(|| bad(6))?,
        exit_code: r.get(7)?,
        files: count(8)?,
        bytes_read: count(9)?,
        bytes_added: count(10)?,
        warnings: count(11)?,
        snapshot: r.get(12)?,
        error: r.get(13)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(job: &str, kind: RunKind, outcome: Outcome, added: u64, at: i64) -> Run {
        let started = Timestamp::from_second(at).expect("a time");
        Run {
            bytes_added: added,
            ended: started + jiff::SignedDuration::from_secs(5),
            ..Run::new(job, kind, started, outcome)
        }
    }

    #[test]
    fn runs_come_back_newest_first_and_alerts_change_once() {
        let dir = tempfile::tempdir().expect("a temp folder");
        let h = History::open(dir.path()).expect("opens");
        h.record(&run("app", RunKind::Backup, Outcome::Success, 10, 1_000)).expect("recorded");
        h.record(&run("app", RunKind::Backup, Outcome::Failure, 0, 2_000)).expect("recorded");
        h.record(&run("app", RunKind::Backup, Outcome::Warning, 30, 3_000)).expect("recorded");
        h.record(&run("web", RunKind::Check, Outcome::Success, 0, 4_000)).expect("recorded");
        let all = h.list(None, 10).expect("listed");
        assert_eq!(all.len(), 4);
        assert_eq!((all[0].job.as_str(), all[0].kind), ("web", RunKind::Check));
        assert_eq!(all[1].duration(), Duration::from_secs(5));
        let app = h.list(Some("app"), 2).expect("listed");
        assert_eq!(app.iter().map(|r| r.outcome).collect::<Vec<_>>(), [Outcome::Warning, Outcome::Failure]);
        assert_eq!(h.last("app", RunKind::Backup, false).expect("read").map(|r| r.outcome), Some(Outcome::Warning));
        let good = h.last("app", RunKind::Backup, true).expect("read").expect("one");
        assert_eq!(good.bytes_added, 30);
        assert_eq!(h.recent_added("app", 5).expect("read"), [10]);
        // Reopened (another process): the same rows.
        drop(h);
        let h = History::open(dir.path()).expect("opens again");
        assert_eq!(h.list(None, 10).expect("listed"), all);
        let t = Timestamp::from_second(5_000).expect("a time");
        assert!(h.set_alert("app", "stale", Some(t)).expect("set"));
        assert!(!h.set_alert("app", "stale", Some(t)).expect("set"), "raised once");
        assert_eq!(h.alert("app", "stale").expect("read"), Some(t));
        assert!(h.set_alert("app", "stale", None).expect("cleared"));
        assert!(!h.set_alert("app", "stale", None).expect("cleared"), "cleared once");
    }

    #[test]
    fn a_history_from_a_newer_cairn_is_refused_not_misread() {
        let dir = tempfile::tempdir().expect("a temp folder");
        drop(History::open(dir.path()).expect("opens"));
        let c = Connection::open(dir.path().join(FILE)).expect("opens");
        c.pragma_update(None, "user_version", 7).expect("set");
        drop(c);
        let e = History::open(dir.path()).err().expect("refused").to_string();
        assert!(e.contains("written by a newer cairn (schema 7"), "{e}");
    }
}
