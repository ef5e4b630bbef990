//! Databases in a job's snapshots: listing the dumps a snapshot holds, and
//! loading one back into PostgreSQL, MySQL/MariaDB or a new SQLite file,
//! streamed from the repository into the server's client. A target that already holds data
//! is refused unless `replace` says so; then what it holds is first saved
//! as a snapshot tagged `pre-restore`, so a restore never loses data.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use cairn_backup::children;
use cairn_backup::{BackupOptions, Excludes, NoProgress, ParentChoice, Sources, Stream, StreamFrom, Writes};
use cairn_format::SnapshotId;
use cairn_format::snapshot::Snapshot;
use cairn_repo::select::{self, Filter};

use crate::JobError;
use crate::config::{Config, DatabaseKind, DatabaseSource};
use crate::run::{
    Dump, GLOBALS_SUFFIX, RunOptions, database_path, dump_command, globals_command, globals_path, job_tag,
    my_connection, on_path, pg_connection,
};

/// The tag of the snapshot a replacing restore saves first.
pub const PRE_RESTORE_TAG: &str = "pre-restore";

/// What to restore and where.
#[derive(Debug, Clone, Default)]
pub struct RestoreRequest {
    /// The database source's name in the config.
    pub name: String,
    /// Which snapshot of its job (`latest`, an id prefix).
    pub snapshot: Option<String>,
    /// The newest snapshot at or before this time instead.
    pub at: Option<jiff::Timestamp>,
    /// Another database name (PostgreSQL) or file (SQLite) to load into.
    pub into: Option<String>,
    /// Create the PostgreSQL database if it does not exist.
    pub create: bool,
    /// Replace a target that holds data, after saving it.
    pub replace: bool,
    /// Say what would be done; do nothing.
    pub dry_run: bool,
}

/// What a restore did (or, in a dry run, would do).
#[derive(Debug, Default)]
pub struct RestoreReport {
    /// The snapshot the dump came from.
    pub from: Option<SnapshotId>,
    /// The snapshot holding what the target held before, if it held data.
    pub saved: Option<SnapshotId>,
    /// Bytes of dump loaded.
    pub bytes: u64,
    /// The commands run, in order (all a dry run does is list them).
    pub commands: Vec<String>,
}

fn fail(name: &str, message: impl Into<String>) -> JobError {
    JobError::Failed { job: format!("db {name}"), message: message.into() }
}

/// What a name of `db list` stands for: a source's dump, or the globals
/// dumped beside a PostgreSQL database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The source's dump (`/databases/NAME.sql`).
    Dump,
    /// Its cluster's roles and tablespaces (`/databases/NAME.globals.sql`).
    Globals,
}

impl Part {
    /// The snapshot file holding this part of source `name`.
    pub fn path(self, name: &str) -> PathBuf {
        match self {
            Part::Dump => database_path(name),
            Part::Globals => globals_path(name),
        }
    }
}

/// The job and database source named `name` (`NAME.globals` for the
/// globals beside a PostgreSQL source), and which part of it.
fn find<'a>(config: &'a Config, name: &str) -> Result<(&'a String, &'a DatabaseSource, Part), JobError> {
    let wanted = |d: &DatabaseSource| {
        if d.name == name {
            Some(Part::Dump)
        } else if d.dumps_globals() && name.strip_suffix(GLOBALS_SUFFIX) == Some(d.name.as_str()) {
            Some(Part::Globals)
        } else {
            None
        }
    };
    let mut found = config
        .job
        .iter()
        .flat_map(|(j, job)| job.get_ref().database.iter().filter_map(move |d| wanted(d).map(|part| (j, d, part))));
    let first =
        found.next().ok_or_else(|| fail(name, "no job has a database of that name (`cairn db list` shows them)"))?;
    if found.next().is_some() {
        return Err(fail(name, "two jobs have a database of that name; give them different names"));
    }
    Ok(first)
}

/// The job's snapshots in its first repository, oldest first.
///
/// With `saved_for`, an id may also name a pre-restore snapshot of that
/// database (`db restore NAME --snapshot ID` brings back what a replacing
/// restore saved); `latest` and `--at` still pick among the job's own.
fn snapshots(
    config: &Config,
    job: &str,
    opts: &RunOptions,
    saved_for: Option<&str>,
) -> Result<(cairn_repo::Repository, Vec<(SnapshotId, Snapshot)>), JobError> {
    let repo_name = &config.job[job].get_ref().repositories.get_ref()[0];
    let repo = crate::repository::open(repo_name, config.repository[repo_name].get_ref(), opts.cache_dir.clone())?;
    let all = repo.snapshots().map_err(|e| fail(job, e.to_string()))?;
    let tag = job_tag(job);
    let saved = saved_for.map(|name| format!("db:{name}"));
    let mine = all
        .into_iter()
        .filter(|(_, s)| {
            s.tags.contains(&tag)
                || saved.as_ref().is_some_and(|t| s.tags.contains(t) && s.tags.iter().any(|x| x == PRE_RESTORE_TAG))
        })
        .collect();
    Ok((repo, mine))
}

/// The databases (config name, kind, size) in a job's snapshot.
pub fn list(
    config: &Config,
    job: &str,
    spec: &str,
    opts: &RunOptions,
) -> Result<(SnapshotId, Vec<(String, u64)>), JobError> {
    let (repo, mine) = snapshots(config, job, opts, None)?;
    let (id, snap) = select::select(&mine, spec, &Filter::default()).map_err(|e| fail(job, e.to_string()))?;
    let repo = repo.load_index().map_err(|e| fail(job, e.to_string()))?;
    let mut out = Vec::new();
    for db in &config.job[job].get_ref().database {
        for (part, name) in [(Part::Dump, db.name.clone()), (Part::Globals, format!("{}{GLOBALS_SUFFIX}", db.name))] {
            let path = part.path(&db.name);
            if let Ok(Some(node)) = repo.find_node(&snap.tree, path.as_os_str().as_encoded_bytes()) {
                out.push((name, node.size));
            }
        }
    }
    Ok((id, out))
}

/// Runs `argv`, returning its stdout; a failure is one line.
pub(crate) fn output(name: &str, argv: &[String]) -> Result<String, JobError> {
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| fail(name, format!("cannot run {}: {e}", argv[0])))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr).lines().next().unwrap_or_default().to_string();
        return Err(fail(name, format!("{} failed ({}): {why}", argv.join(" "), out.status)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What the target is now.
enum Target {
    /// Not there (a PostgreSQL database to create, a SQLite file to make).
    Missing,
    /// There and holding no table.
    Empty,
    /// There with tables.
    Holding,
}

fn pg_target(name: &str, db: &DatabaseSource, target: &str) -> Result<Target, JobError> {
    let mut argv = psql(db);
    argv.extend(["--dbname=postgres", "-Atc"].map(String::from));
    argv.push(format!("SELECT count(*) FROM pg_database WHERE datname = '{}'", target.replace('\'', "''")));
    if output(name, &argv)?.trim() == "0" {
        return Ok(Target::Missing);
    }
    let mut argv = psql(db);
    argv.push(format!("--dbname={target}"));
    argv.push("-Atc".into());
    argv.push("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'".into());
    Ok(if output(name, &argv)?.trim() == "0" { Target::Empty } else { Target::Holding })
}

/// The MySQL/MariaDB client reaching `db`'s server.
pub(crate) fn my_client(db: &DatabaseSource) -> Vec<String> {
    let prog = if on_path("mariadb") { "mariadb" } else { "mysql" };
    let mut a = vec![prog.to_string()];
    a.extend(my_connection(db));
    a
}

/// The client running one statement.
pub(crate) fn my_sql(db: &DatabaseSource, sql: &str) -> Vec<String> {
    let mut a = my_client(db);
    a.extend(["--batch".into(), "--skip-column-names".into(), "-e".into(), sql.into()]);
    a
}

fn my_target(name: &str, db: &DatabaseSource, target: &str) -> Result<Target, JobError> {
    let quoted = target.replace('\\', "\\\\").replace('\'', "''");
    let sql = format!("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = '{quoted}'");
    if output(name, &my_sql(db, &sql))?.trim() == "0" {
        return Ok(Target::Missing);
    }
    let sql = format!("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{quoted}'");
    Ok(if output(name, &my_sql(db, &sql))?.trim() == "0" { Target::Empty } else { Target::Holding })
}

/// How the loading client's errors are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Errors {
    /// The client stops at the first error and exits non-zero.
    Stop,
    /// A `pg_dumpall` script creates every role, the one connecting too; on
    /// a server that has a role, that statement fails and the script goes
    /// on (as PostgreSQL's documentation says to expect). Any other error
    /// fails the restore.
    RolesMayExist,
}

/// What a restore will do, decided before anything is changed.
struct Plan {
    /// The database, file or server loaded into (for messages).
    target: String,
    state: Target,
    /// The dump saving what the target holds, when it holds data.
    save: Option<Dump>,
    /// Commands readying the target (drop, create), in order.
    prepare: Vec<Vec<String>>,
    /// The client the dump is piped into.
    load: Vec<String>,
    errors: Errors,
}

/// `psql` reaching `db`'s server, before the database and commands.
pub(crate) fn psql(db: &DatabaseSource) -> Vec<String> {
    let mut a = vec!["psql".to_string(), "--no-psqlrc".into()];
    a.extend(pg_connection(db));
    a
}

/// A PostgreSQL client tool reaching `db`'s server from `template1`, so
/// that it can drop and create `postgres` as well.
pub(crate) fn pg_tool(prog: &str, db: &DatabaseSource, target: &str) -> Vec<String> {
    let mut a = vec![prog.to_string()];
    a.extend(pg_connection(db));
    a.extend(["--maintenance-db=template1".into(), target.to_string()]);
    a
}

/// The plan for one database: PostgreSQL, MySQL/MariaDB or SQLite.
fn plan_database(name: &str, db: &DatabaseSource, req: &RestoreRequest) -> Result<Plan, JobError> {
    let (target, state, load) = match db.kind {
        DatabaseKind::Postgresql => {
            let target =
                req.into.clone().or_else(|| db.database.clone()).ok_or_else(|| fail(name, "no database name"))?;
            let state = pg_target(name, db, &target)?;
            let mut load = psql(db);
            load.extend([
                format!("--dbname={target}"),
                "--quiet".into(),
                "--set=ON_ERROR_STOP=1".into(),
                "--single-transaction".into(),
            ]);
            (target, state, load)
        }
        DatabaseKind::Sqlite => {
            let target = match &req.into {
                Some(t) => PathBuf::from(t),
                None => db.path.clone().ok_or_else(|| fail(name, "no path"))?,
            };
            let state = match std::fs::metadata(&target) {
                Err(_) => Target::Missing,
                Ok(m) if m.len() == 0 => Target::Empty,
                Ok(_) => Target::Holding,
            };
            let shown = target.to_string_lossy().into_owned();
            (shown.clone(), state, vec!["sqlite3".into(), "-bail".into(), shown])
        }
        DatabaseKind::Mysql | DatabaseKind::Mariadb => {
            let target =
                req.into.clone().or_else(|| db.database.clone()).ok_or_else(|| fail(name, "no database name"))?;
            let state = my_target(name, db, &target)?;
            let mut load = my_client(db);
            load.push(format!("--database={target}"));
            (target, state, load)
        }
    };
    let mut plan = Plan { target, state, save: None, prepare: Vec::new(), load, errors: Errors::Stop };
    let target = plan.target.clone();
    if let Target::Holding = plan.state {
        // Saved first, with the same dump command the job uses.
        let mut source = db.clone();
        match db.kind {
            DatabaseKind::Sqlite => source.path = Some(PathBuf::from(&target)),
            _ => source.database = Some(target.clone()),
        }
        plan.save = Some(dump_command(&source).map_err(|e| fail(name, e))?);
        plan.prepare.push(match db.kind {
            DatabaseKind::Postgresql => pg_tool("dropdb", db, &target),
            DatabaseKind::Mysql | DatabaseKind::Mariadb => {
                my_sql(db, &format!("DROP DATABASE `{}`", target.replace('`', "``")))
            }
            DatabaseKind::Sqlite => vec!["rm".into(), "--".into(), target.clone()],
        });
    }
    if !matches!(plan.state, Target::Empty) {
        match db.kind {
            DatabaseKind::Postgresql => plan.prepare.push(pg_tool("createdb", db, &target)),
            DatabaseKind::Mysql | DatabaseKind::Mariadb => {
                plan.prepare.push(my_sql(db, &format!("CREATE DATABASE `{}`", target.replace('`', "``"))));
            }
            DatabaseKind::Sqlite => {}
        }
    }
    Ok(plan)
}

/// The plan for a whole PostgreSQL cluster's dump, or the globals beside
/// one database: loaded into the server, not into one database.
fn plan_server(name: &str, db: &DatabaseSource, part: Part, req: &RestoreRequest) -> Result<Plan, JobError> {
    if req.into.is_some() {
        return Err(fail(name, "this dump loads into its server, not one database: --into is for a single database"));
    }
    let target = format!("the PostgreSQL server at {}", db.host.as_deref().unwrap_or("the default socket"));
    let mut plan = Plan {
        target,
        state: Target::Empty,
        save: None,
        prepare: Vec::new(),
        load: psql(db),
        errors: Errors::RolesMayExist,
    };
    plan.load.extend(["--dbname=postgres".into(), "--quiet".into()]);
    if part == Part::Globals {
        // Roles other than the one connecting: loading would change them.
        let sql = "SELECT count(*) FROM pg_roles WHERE rolname !~ '^pg_' AND rolname <> current_user";
        if output(name, &[psql(db), vec!["--dbname=postgres".into(), "-Atc".into(), sql.into()]].concat())?.trim()
            != "0"
        {
            plan.state = Target::Holding;
            plan.save = Some(globals_command(db));
        }
        return Ok(plan);
    }
    // The whole cluster: every database but the templates is dropped, and
    // `postgres` made again empty (the dump fills it without creating it).
    let sql = "SELECT datname FROM pg_database WHERE datname NOT IN ('template0', 'template1') ORDER BY 1";
    let databases = output(name, &[psql(db), vec!["--dbname=template1".into(), "-Atc".into(), sql.into()]].concat())?;
    let databases: Vec<&str> = databases.lines().filter(|l| !l.is_empty()).collect();
    let postgres_holds = matches!(pg_target(name, db, "postgres")?, Target::Holding);
    if databases.iter().any(|d| *d != "postgres") || postgres_holds {
        plan.state = Target::Holding;
        plan.save = Some(dump_command(db).map_err(|e| fail(name, e))?);
        for d in &databases {
            plan.prepare.push(pg_tool("dropdb", db, d));
        }
        if databases.contains(&"postgres") {
            plan.prepare.push(pg_tool("createdb", db, "postgres"));
        }
    }
    Ok(plan)
}

/// Restores database `req.name` from a snapshot of its job.
pub fn restore(config: &Config, req: &RestoreRequest, opts: &RunOptions) -> Result<RestoreReport, JobError> {
    let name = req.name.as_str();
    let (job, db, part) = find(config, name)?;
    let spec = req.snapshot.as_deref().unwrap_or("latest");
    let by_id = spec != "latest" && req.at.is_none();
    let (repo, mine) = snapshots(config, job, opts, by_id.then_some(name))?;
    let filter = Filter { at: req.at, ..Filter::default() };
    let (from, snap) = select::select(&mine, spec, &filter).map_err(|e| fail(name, e.to_string()))?;
    let indexed = repo.clone().load_index().map_err(|e| fail(name, e.to_string()))?;
    let path = part.path(&db.name);
    let node = indexed
        .find_node(&snap.tree, path.as_os_str().as_encoded_bytes())
        .map_err(|e| fail(name, e.to_string()))?
        .ok_or_else(|| fail(name, format!("snapshot {} holds no {}", from.short(), path.display())))?;
    let mut report = RestoreReport { from: Some(from), ..Default::default() };

    let plan = if part == Part::Globals || db.is_cluster() {
        plan_server(name, db, part, req)?
    } else {
        plan_database(name, db, req)?
    };
    let target = &plan.target;
    match plan.state {
        Target::Holding if !req.replace => {
            return Err(fail(
                name,
                format!(
                    "{target} holds data: give --replace (it is saved as a pre-restore snapshot first) or --into another"
                ),
            ));
        }
        Target::Missing if db.kind != DatabaseKind::Sqlite && !req.create => {
            return Err(fail(name, format!("database {target} does not exist: give --create")));
        }
        _ => {}
    }
    if let Some(s) = &plan.save {
        report.commands.push(format!("{} | cairn backup (tag {PRE_RESTORE_TAG})", join(&s.argv)));
    }
    report.commands.extend(plan.prepare.iter().map(|c| join_str(c)));
    report.commands.push(format!("cairn dump {} {} | {}", from.short(), path.display(), join_str(&plan.load)));
    if req.dry_run {
        return Ok(report);
    }

    if let Some(dump) = plan.save {
        let stream =
            Stream { path: path.clone(), from: StreamFrom::Command(dump.argv), trailer: Some(dump.trailer.to_vec()) };
        let backup = BackupOptions {
            sources: Sources::stream(stream),
            excludes: Excludes::default(),
            tags: vec![PRE_RESTORE_TAG.to_string(), format!("db:{name}")],
            hostname: opts.hostname.clone(),
            parent: ParentChoice::Auto,
            force: false,
            time: None,
            workers: None,
            writes: Writes::Store,
            deltas: Default::default(),
        };
        let r = repo.load_index_for_backup(&opts.hostname).map_err(|e| fail(name, e.to_string()))?;
        let out = cairn_backup::backup(r, &backup, Arc::new(NoProgress))
            .map_err(|e| fail(name, format!("saving what {target} holds first: {e}; nothing was changed")))?;
        report.saved = Some(out.id);
    }
    for c in &plan.prepare {
        output(name, c)?;
    }
    report.bytes = load(name, &plan.load, plan.errors, &indexed, &node)?;
    Ok(report)
}

/// Pipes the dump at `node` into the client `argv`; the bytes loaded.
fn load(
    name: &str,
    argv: &[String],
    errors: Errors,
    repo: &cairn_repo::IndexedRepository,
    node: &cairn_format::tree::Node,
) -> Result<u64, JobError> {
    // Tracked, so that an interrupt of cairn stops it: `psql
    // --single-transaction` then rolls back, where an input that merely
    // ended would have committed what it had.
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    let (mut child, _tracked) = children::spawn(&mut cmd, children::unattended_or_terminal())
        .map_err(|e| fail(name, format!("cannot run {}: {e}", argv[0])))?;
    let mut stdin = child.stdin.take().ok_or_else(|| fail(name, "no pipe"))?;
    // Read beside the writing, so that a client with much to say never
    // blocks on a full pipe while cairn blocks on its stdin.
    let stderr = child.stderr.take().ok_or_else(|| fail(name, "no pipe"))?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut std::io::BufReader::new(stderr), &mut text);
        text
    });
    let written = cairn_restore::dump(repo, node, &mut stdin);
    drop(stdin);
    let status = child.wait().map_err(|e| fail(name, e.to_string()))?;
    let said = reader.join().unwrap_or_default();
    let client = join_str(argv);
    if !status.success() {
        let why = said.lines().find(|l| l.contains("ERROR")).or_else(|| said.lines().next()).unwrap_or_default();
        return Err(fail(name, format!("{client} failed ({status}): {why}")));
    }
    if errors == Errors::RolesMayExist {
        let real = unexpected_errors(&said);
        if let Some(first) = real.first() {
            return Err(fail(name, format!("{client}: {} errors while loading, the first: {first}", real.len())));
        }
    }
    written.map_err(|e| fail(name, format!("reading the dump: {e}")))
}

/// The errors in psql's output other than a role that already exists.
fn unexpected_errors(said: &str) -> Vec<&str> {
    let role_exists =
        |l: &str| l.split_once("ERROR:  role \"").is_some_and(|(_, rest)| rest.ends_with("\" already exists"));
    said.lines().filter(|l| l.contains("ERROR:") && !role_exists(l)).collect()
}

fn join(argv: &[std::ffi::OsString]) -> String {
    argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
}

fn join_str(argv: &[String]) -> String {
    argv.join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_an_existing_role_is_an_expected_error() {
        // As psql 15 writes them while loading a pg_dumpall script.
        let said = "psql:<stdin>:14: ERROR:  role \"postgres\" already exists\n\
                    psql:<stdin>:40: NOTICE:  something\n\
                    psql:<stdin>:98: ERROR:  database \"a\" already exists\n\
                    psql:<stdin>:99: ERROR:  role \"x\" does not exist\n";
        assert_eq!(
            super::unexpected_errors(said),
            [
                "psql:<stdin>:98: ERROR:  database \"a\" already exists",
                "psql:<stdin>:99: ERROR:  role \"x\" does not exist"
            ]
        );
        assert!(super::unexpected_errors("psql:<stdin>:14: ERROR:  role \"app\" already exists\n").is_empty());
    }
}
