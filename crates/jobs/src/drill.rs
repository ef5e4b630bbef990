//! `cairn drill JOB`: a timed restore of the job's newest snapshot, as a
//! disaster would need it. Every file is restored into a scratch folder
//! and read back against the snapshot; each database dump is loaded into a
//! scratch database (PostgreSQL, MariaDB/MySQL) or a new SQLite file and
//! checked (SQLite's `PRAGMA integrity_check`; as many tables as the dump
//! creates; for PostgreSQL and SQLite as many rows in each table as the
//! dump holds, which are the rows at backup time; the config's own query,
//! if it gives one); then everything
//! scratch is removed. The time from start to verified is the measured
//! RTO, recorded in the run history and compared with the job's target.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use cairn_monitor::notify::Event;
use cairn_monitor::{Outcome, Run, RunKind};
use cairn_repo::select::{self, Filter};
use cairn_restore::{Matcher, RestoreOptions, Select};

use crate::JobError;
use crate::config::{Config, DatabaseKind, DatabaseSource};
use crate::db::{my_client, my_sql, output, pg_tool, psql};
use crate::run::{RunOptions, database_path, job_tag};
use crate::watch::Watch;

/// What a drill found.
#[derive(Debug, Default)]
pub struct DrillReport {
    /// The snapshot restored.
    pub snapshot: Option<String>,
    /// Files restored and read back.
    pub files: u64,
    /// Bytes restored.
    pub bytes: u64,
    /// Databases loaded and checked, with what was checked.
    pub databases: Vec<(String, String)>,
    /// Sources the drill could not exercise, and why.
    pub skipped: Vec<(String, String)>,
    /// The measured RTO.
    pub seconds: f64,
    /// The target, if the job has one.
    pub rto: Option<f64>,
}

fn fail(job: &str, message: impl Into<String>) -> JobError {
    JobError::Failed { job: format!("drill {job}"), message: message.into() }
}

/// Runs the drill of job `name`; records it and notifies on failure.
pub fn drill(config: &Config, name: &str, opts: &RunOptions) -> Result<DrillReport, JobError> {
    let job = config.job.get(name).ok_or_else(|| JobError::NoSuchJob(name.to_string()))?.get_ref();
    let watch = Watch::open(config, name, opts);
    let started = jiff::Timestamp::now();
    let clock = Instant::now();
    let mut report =
        DrillReport { rto: job.drill.as_ref().and_then(|d| d.rto).map(|d| d.as_secs_f64()), ..Default::default() };
    let result = exercise(config, name, opts, &mut report);
    report.seconds = clock.elapsed().as_secs_f64();
    let result = result.and_then(|()| match report.rto {
        Some(rto) if report.seconds > rto => {
            Err(fail(name, format!("the restore took {:.1}s, over the job's RTO of {rto:.0}s", report.seconds)))
        }
        _ => Ok(()),
    });
    let mut run =
        Run::new(name, RunKind::Drill, started, if result.is_ok() { Outcome::Success } else { Outcome::Failure });
    run.repository = Some(job.repositories.get_ref()[0].clone());
    (run.files, run.bytes_read, run.snapshot) = (report.files, report.bytes, report.snapshot.clone());
    if let Err(e) = &result {
        run.error = Some(e.to_string());
        watch.tell(
            Event::DrillFailed,
            format!("drill of job {name} failed: {e}"),
            format!("{} files, {} bytes restored in {:.1}s", report.files, report.bytes, report.seconds),
        );
    }
    watch.record(&run);
    watch.write_metrics();
    result.map(|()| report)
}

fn exercise(config: &Config, name: &str, opts: &RunOptions, report: &mut DrillReport) -> Result<(), JobError> {
    let job = config.job[name].get_ref();
    let repo_name = &job.repositories.get_ref()[0];
    let repo = crate::repository::open(repo_name, config.repository[repo_name].get_ref(), opts.cache_dir.clone())?;
    let tag = job_tag(name);
    let mine: Vec<_> = repo
        .snapshots()
        .map_err(|e| fail(name, e.to_string()))?
        .into_iter()
        .filter(|(_, s)| s.tags.contains(&tag))
        .collect();
    let (id, snap) = select::select(&mine, "latest", &Filter::default())
        .map_err(|e| fail(name, format!("no snapshot of the job to drill: {e}")))?;
    report.snapshot = Some(id.to_hex());
    let repo = repo.load_index().map_err(|e| fail(name, e.to_string()))?;

    // Every file, read back against the snapshot.
    let scratch = match job.drill.as_ref().and_then(|d| d.scratch.as_ref()) {
        Some(dir) => tempfile::Builder::new().prefix("cairn-drill-").tempdir_in(dir),
        None => tempfile::Builder::new().prefix("cairn-drill-").tempdir(),
    }
    .map_err(|e| fail(name, format!("making a scratch folder: {e}")))?;
    let everything = Matcher::default();
    let selection = Select { path: None, include: &everything, exclude: &everything, strip_components: 0 };
    let s = cairn_restore::restore(
        &repo,
        &snap.tree,
        &selection,
        scratch.path(),
        &RestoreOptions { verify: true, ..Default::default() },
        &(),
    )
    .map_err(|e| fail(name, format!("restoring snapshot {}: {e}", id.short())))?;
    (report.files, report.bytes) = (s.files, s.bytes);
    if s.errors > 0 {
        return Err(fail(name, format!("{} path(s) of snapshot {} could not be restored", s.errors, id.short())));
    }
    if s.verified != s.files {
        return Err(fail(name, format!("{} of {} files verified", s.verified, s.files)));
    }

    // Each database into a scratch one, checked, dropped.
    let verify = job.drill.as_ref().map(|d| &d.verify);
    for db in &job.database {
        let dump = scratch.path().join(database_path(&db.name).strip_prefix("/").unwrap_or(Path::new("")));
        let query = verify.and_then(|v| v.get(&db.name)).map(String::as_str);
        match check_database(name, db, &dump, query, scratch.path()) {
            Ok(Some(checked)) => report.databases.push((db.name.clone(), checked)),
            Ok(None) => report.skipped.push((
                db.name.clone(),
                "a whole cluster needs a scratch server; its dump was restored and read back".into(),
            )),
            Err(e) => return Err(fail(name, format!("database {}: {e}", db.name))),
        }
    }
    Ok(())
}

/// `CREATE TABLE` statements in a dump: the tables loading it makes.
fn tables_in_dump(dump: &Path) -> Result<usize, String> {
    let text = std::fs::read(dump).map_err(|e| format!("{}: {e}", dump.display()))?;
    Ok(text.split(|b| *b == b'\n').filter(|l| l.starts_with(b"CREATE TABLE ")).count())
}

/// Tables (identifiers as a dump writes them) and their rows.
type TableRows = Vec<(String, u64)>;

/// The rows each table had at backup time, as the dump holds them: the
/// data lines of each `COPY ... FROM stdin;` block of a PostgreSQL dump
/// (one per row; newlines inside values are escaped), the `INSERT INTO`
/// lines of an SQLite dump (one per row). Tables by their identifier as
/// the dump writes it, which SQL takes back verbatim.
fn rows_in_dump(dump: &Path, kind: DatabaseKind) -> Result<TableRows, String> {
    use std::io::BufRead;
    let file = std::fs::File::open(dump).map_err(|e| format!("{}: {e}", dump.display()))?;
    let mut tables: TableRows = Vec::new();
    let mut copying = false;
    for line in std::io::BufReader::new(file).split(b'\n') {
        let line = line.map_err(|e| format!("{}: {e}", dump.display()))?;
        let text = String::from_utf8_lossy(&line);
        match kind {
            DatabaseKind::Postgresql if copying => {
                if text == "\\." {
                    copying = false;
                } else if let Some(t) = tables.last_mut() {
                    t.1 += 1;
                }
            }
            DatabaseKind::Postgresql => {
                if let Some(rest) = text.strip_prefix("COPY ")
                    && text.ends_with(" FROM stdin;")
                {
                    let ident = rest.split(" (").next().unwrap_or(rest).trim_end_matches(" FROM stdin;");
                    tables.push((ident.to_string(), 0));
                    copying = true;
                }
            }
            DatabaseKind::Sqlite => {
                if let Some(rest) = text.strip_prefix("INSERT INTO ")
                    && let Some((ident, _)) = rest.split_once(" VALUES")
                {
                    match tables.iter_mut().find(|(t, _)| t == ident) {
                        Some(t) => t.1 += 1,
                        None => tables.push((ident.to_string(), 1)),
                    }
                }
            }
            DatabaseKind::Mysql | DatabaseKind::Mariadb => return Ok(Vec::new()),
        }
    }
    Ok(tables)
}

/// The query giving `ident|count` for each of `tables`.
fn count_rows_sql(tables: &[(String, u64)]) -> String {
    tables
        .iter()
        .map(|(t, _)| format!("SELECT '{}' || '|' || count(*) FROM {t}", t.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// Compares the rows each table has now (`ident|count` lines) with the dump's.
fn compare_rows(want: &[(String, u64)], got: &str) -> Result<u64, String> {
    let mut total = 0;
    for (table, n) in want {
        let have = got
            .lines()
            .find_map(|l| l.strip_prefix(table.as_str()).and_then(|r| r.strip_prefix('|')))
            .and_then(|c| c.trim().parse::<u64>().ok())
            .ok_or_else(|| format!("table {table} is missing after loading"))?;
        if have != *n {
            return Err(format!("table {table} has {have} rows after loading, the dump holds {n}"));
        }
        total += n;
    }
    Ok(total)
}

/// Runs `argv` with `input` on its stdin; its stdout, or the first error line.
fn run_with_input(argv: &[String], input: &Path) -> Result<String, String> {
    let file = std::fs::File::open(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::from(file))
        .output()
        .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
    let said = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let why = said.lines().find(|l| l.contains("ERROR")).or_else(|| said.lines().next()).unwrap_or_default();
        return Err(format!("{} failed ({}): {why}", argv[0], out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The commands that exercise a scratch database on a server.
struct Scratch {
    create: Vec<String>,
    /// Reads the dump on stdin.
    load: Vec<String>,
    /// Prints the number of tables.
    count: Vec<String>,
    /// Runs the config's verify query.
    query: Option<Vec<String>>,
    /// Prints `table|rows` for each table the dump fills, and what the
    /// dump holds (none: the dump's rows are not counted for this kind).
    rows: Option<(Vec<String>, TableRows)>,
    drop: Vec<String>,
}

/// Creates the scratch database, loads `dump`, counts its tables against
/// `want`, runs the verify query; drops it whatever happened.
fn on_server(job: &str, s: &Scratch, dump: &Path, want: usize) -> Result<String, String> {
    let err = |e: JobError| e.to_string();
    output(job, &s.create).map_err(err)?;
    let result = (|| {
        run_with_input(&s.load, dump)?;
        let got: usize = output(job, &s.count).map_err(err)?.trim().parse().map_err(|e| format!("{e}"))?;
        if got != want {
            return Err(format!("{got} tables after loading, the dump creates {want}"));
        }
        let mut said = format!("{got} tables");
        if let Some((argv, want)) = &s.rows {
            let rows = compare_rows(want, &output(job, argv).map_err(err)?)?;
            said.push_str(&format!(", {rows} rows as at backup"));
        }
        if let Some(q) = &s.query {
            if output(job, q).map_err(err)?.trim().is_empty() {
                return Err(format!("the verify query returned no row: {}", q.last().map_or("", |q| q.as_str())));
            }
            said.push_str(", verify query returned rows");
        }
        Ok(said)
    })();
    let dropped = output(job, &s.drop).map_err(err);
    let said = result?;
    dropped?;
    Ok(said)
}

/// Loads `dump` into a scratch copy of `db`'s kind and checks it; what was
/// checked, or `None` for what a scratch database cannot hold.
fn check_database(
    job: &str,
    db: &DatabaseSource,
    dump: &Path,
    query: Option<&str>,
    scratch: &Path,
) -> Result<Option<String>, String> {
    let want = tables_in_dump(dump)?;
    let scratch_name = format!("cairn_drill_{}_{}", db.name.replace(['-', '.'], "_"), std::process::id());
    let with = |mut base: Vec<String>, more: &[&str]| {
        base.extend(more.iter().map(|s| s.to_string()));
        base
    };
    match db.kind {
        DatabaseKind::Postgresql if db.is_cluster() => Ok(None),
        DatabaseKind::Postgresql => {
            let on = format!("--dbname={scratch_name}");
            let count = "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')";
            let s = Scratch {
                create: pg_tool("createdb", db, &scratch_name),
                load: with(psql(db), &[&on, "--quiet", "--set=ON_ERROR_STOP=1", "--single-transaction"]),
                count: with(psql(db), &[&on, "-Atc", count]),
                query: query.map(|q| with(psql(db), &[&on, "-At", "--set=ON_ERROR_STOP=1", "-c", q])),
                rows: Some(rows_in_dump(dump, db.kind)?)
                    .filter(|t| !t.is_empty())
                    .map(|t| (with(psql(db), &[&on, "-At", "--set=ON_ERROR_STOP=1", "-c", &count_rows_sql(&t)]), t)),
                drop: pg_tool("dropdb", db, &scratch_name),
            };
            on_server(job, &s, dump, want).map(Some)
        }
        DatabaseKind::Mysql | DatabaseKind::Mariadb => {
            let on = format!("--database={scratch_name}");
            let count = format!("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{scratch_name}'");
            let s = Scratch {
                create: my_sql(db, &format!("CREATE DATABASE `{scratch_name}`")),
                load: with(my_client(db), &[&on]),
                count: my_sql(db, &count),
                query: query.map(|q| with(my_client(db), &[&on, "--batch", "--skip-column-names", "-e", q])),
                // mysqldump packs many rows into one INSERT: not counted.
                rows: None,
                drop: my_sql(db, &format!("DROP DATABASE `{scratch_name}`")),
            };
            on_server(job, &s, dump, want).map(Some)
        }
        DatabaseKind::Sqlite => {
            let file: PathBuf = scratch.join(format!("{scratch_name}.sqlite3"));
            let shown = file.to_string_lossy().into_owned();
            run_with_input(&["sqlite3".into(), "-bail".into(), shown.clone()], dump)?;
            let ask = |sql: &str| {
                run_with_input(
                    &["sqlite3".into(), "-bail".into(), "-readonly".into(), shown.clone(), sql.into()],
                    Path::new("/dev/null"),
                )
            };
            let integrity = ask("PRAGMA integrity_check")?;
            if integrity.trim() != "ok" {
                return Err(format!("PRAGMA integrity_check: {}", integrity.trim()));
            }
            let got: usize =
                ask("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")?
                    .trim()
                    .parse()
                    .map_err(|e| format!("{e}"))?;
            if got != want {
                return Err(format!("{got} tables after loading, the dump creates {want}"));
            }
            let mut said = format!("integrity_check ok, {got} tables");
            let want_rows = rows_in_dump(dump, db.kind)?;
            if !want_rows.is_empty() {
                let rows = compare_rows(&want_rows, &ask(&count_rows_sql(&want_rows))?)?;
                said.push_str(&format!(", {rows} rows as at backup"));
            }
            if let Some(sql) = query {
                if ask(sql)?.trim().is_empty() {
                    return Err(format!("the verify query returned no row: {sql}"));
                }
                said.push_str(", verify query returned rows");
            }
            Ok(Some(said))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_at_backup_time_are_counted_from_the_dump() {
        let dir = tempfile::tempdir().expect("a temp folder");
        let pg = dir.path().join("pg.sql");
        // As pg_dump 15 writes them; a value with a newline is escaped.
        std::fs::write(
            &pg,
            "CREATE TABLE public.t (id integer);\nCOPY public.t (id, v) FROM stdin;\n1\ta\\nb\n2\tc\n\\.\n\nCOPY public.\"Odd\" (x) FROM stdin;\n\\.\n",
        )
        .expect("written");
        let rows = rows_in_dump(&pg, DatabaseKind::Postgresql).expect("read");
        assert_eq!(rows, [("public.t".to_string(), 2), ("public.\"Odd\"".to_string(), 0)]);
        assert_eq!(
            count_rows_sql(&rows),
            "SELECT 'public.t' || '|' || count(*) FROM public.t UNION ALL SELECT 'public.\"Odd\"' || '|' || count(*) FROM public.\"Odd\""
        );
        assert_eq!(compare_rows(&rows, "public.t|2\npublic.\"Odd\"|0\n"), Ok(2));
        let e = compare_rows(&rows, "public.t|1\npublic.\"Odd\"|0\n").expect_err("one row short");
        assert_eq!(e, "table public.t has 1 rows after loading, the dump holds 2");
        let lite = dir.path().join("lite.sql");
        std::fs::write(&lite, "BEGIN TRANSACTION;\nCREATE TABLE s(v);\nINSERT INTO s VALUES('a');\nINSERT INTO s VALUES(replace('b\\nc','\\n',char(10)));\nCOMMIT;\n")
            .expect("written");
        assert_eq!(rows_in_dump(&lite, DatabaseKind::Sqlite).expect("read"), [("s".to_string(), 2)]);
    }
}
