//! The config file (TOML): named repositories and the jobs that back up
//! into them. Loading reads and decodes it, then checks what a decoder
//! cannot (a job naming a repository that is not there, a password in a
//! file others may read); every failure is one line naming the file, the
//! line and the key (docs/CONFIG.md has every key).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use cairn_check::ReadData;
use cairn_forget::KeepOptions;
use serde::Deserialize;
use toml::Spanned;

use cairn_monitor::notify::Channel;

use crate::schedule::Schedule;

/// A whole config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Repositories by name.
    #[serde(default)]
    pub repository: BTreeMap<String, Spanned<RepositoryConfig>>,
    /// Jobs by name.
    #[serde(default)]
    pub job: BTreeMap<String, Spanned<JobConfig>>,
    /// Notification channels by name.
    #[serde(default)]
    pub notify: BTreeMap<String, Spanned<Channel>>,
    /// Where metrics go.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// How `cairn serve` listens and whom it lets in.
    #[serde(default)]
    pub serve: ServeConfig,
}

/// `[serve]`: how `cairn serve` listens and whom it lets in.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeConfig {
    /// The address (`127.0.0.1:8080` when not given); one off loopback
    /// needs `tokens` and TLS.
    pub listen: Option<Spanned<String>>,
    /// The TLS certificate chain (PEM).
    pub tls_certificate: Option<PathBuf>,
    /// The TLS certificate's private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Who may come in: a name and the Argon2 hash (a PHC string from
    /// `cairn serve --new-token NAME`) of its token.
    #[serde(default)]
    pub tokens: BTreeMap<String, Spanned<String>>,
}

/// `[metrics]`: where the Prometheus metrics go.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MetricsConfig {
    /// A file rewritten after every run (node_exporter's textfile
    /// collector reads `*.prom` files from its folder).
    pub textfile: Option<PathBuf>,
    /// Where `cairn daemon` serves `/metrics` (`127.0.0.1:9898`).
    pub listen: Option<Spanned<String>>,
}

/// A share such as `25%`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percent(pub f64);

fn percent<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Percent>, D::Error> {
    let s = String::deserialize(d)?;
    let bad = || serde::de::Error::custom(format!("invalid share {s:?}: a number and %, e.g. 25%"));
    let n: f64 = s.trim().strip_suffix('%').ok_or_else(bad)?.trim().parse().map_err(|_| bad())?;
    if !(n > 0.0 && n.is_finite()) {
        return Err(bad());
    }
    Ok(Some(Percent(n)))
}

/// `[repository.NAME]`: where a repository is, how to unlock it, and what
/// its retention keeps.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RepositoryConfig {
    /// A folder, or a URL such as `s3:bucket/path` or `sftp://host/path`.
    pub location: String,
    /// Storage options (`s3.endpoint`, `retries`...), as `-o` takes them.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// The password itself (the file must then be private to its owner).
    pub password: Option<Spanned<String>>,
    /// A file holding the password.
    pub password_file: Option<PathBuf>,
    /// A shell command printing the password.
    pub password_command: Option<String>,
    /// What this repository's retention keeps.
    #[serde(default)]
    pub keep: KeepOptions,
    /// When a job run also prunes it (a schedule: `weekly sun 04:00`): the
    /// first job run after each of these times does.
    #[serde(default, deserialize_with = "schedule")]
    pub prune: Option<Schedule>,
    /// A local repository's file system with less free space than this
    /// (`20%`) raises a `low-space` notification after a run.
    #[serde(default, deserialize_with = "percent")]
    pub min_free: Option<Percent>,
}

/// `[job.NAME]`: what to back up, into which repositories, and when.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct JobConfig {
    /// Repositories by name: the backup goes into the first, and is copied
    /// to the others.
    pub repositories: Spanned<Vec<String>>,
    /// When it runs (`daily 02:00`, or a cron expression).
    #[serde(default, deserialize_with = "schedule")]
    pub schedule: Option<Schedule>,
    /// Folders and files to back up.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// Exclude patterns, as `backup --exclude`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Tags of the job's snapshots.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Databases dumped into the snapshot.
    #[serde(default)]
    pub database: Vec<DatabaseSource>,
    /// Commands whose output is a file of the snapshot.
    #[serde(default)]
    pub command: Vec<CommandSource>,
    /// Commands run around the job.
    #[serde(default)]
    pub hooks: Hooks,
    /// A check after the job.
    pub check: Option<CheckConfig>,
    /// The channels told about this job (default: every channel).
    pub notify: Option<Spanned<Vec<String>>>,
    /// The RPO: a newest good snapshot older than this is stale.
    #[serde(default, deserialize_with = "duration")]
    pub max_age: Option<std::time::Duration>,
    /// A run longer than this raises `slow`.
    #[serde(default, deserialize_with = "duration")]
    pub slow: Option<std::time::Duration>,
    /// A run adding more than this share over the median of the recent
    /// runs raises `growth` (`25%`).
    #[serde(default, deserialize_with = "percent")]
    pub growth: Option<Percent>,
    /// The restore drill.
    pub drill: Option<DrillConfig>,
}

/// `drill = { ... }`: a timed restore of the job's newest snapshot.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DrillConfig {
    /// When the daemon runs it (as a job's schedule).
    #[serde(default, deserialize_with = "schedule")]
    pub schedule: Option<Schedule>,
    /// The RTO: a drill that takes longer fails.
    #[serde(default, deserialize_with = "duration")]
    pub rto: Option<std::time::Duration>,
    /// Per database source, a query that must return at least one row in
    /// the restored copy (`{ appdb = "SELECT 1 FROM users LIMIT 1" }`).
    #[serde(default)]
    pub verify: BTreeMap<String, String>,
    /// Where the scratch folder goes (default: the system's temp folder).
    pub scratch: Option<PathBuf>,
}

/// Which database server a source dumps from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseKind {
    /// PostgreSQL, through `pg_dump`.
    Postgresql,
    /// MySQL, through `mysqldump`.
    Mysql,
    /// MariaDB, through `mariadb-dump` (or `mysqldump`).
    Mariadb,
    /// An SQLite file, through SQLite's online backup.
    Sqlite,
}

/// `database = [{ name = "appdb", kind = "postgresql", ... }]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DatabaseSource {
    /// Its name in the snapshot and for `db restore`.
    pub name: String,
    /// The server kind.
    pub kind: DatabaseKind,
    /// The database on the server (PostgreSQL, MySQL, MariaDB); for
    /// PostgreSQL, `all` is the whole cluster (`pg_dumpall`).
    pub database: Option<String>,
    /// Host name or socket folder.
    pub host: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// User to connect as.
    pub user: Option<String>,
    /// The database file (SQLite).
    pub path: Option<PathBuf>,
    /// PostgreSQL: also dump the cluster's roles and tablespaces
    /// (`pg_dumpall --globals-only`) beside the database, which its
    /// owners and grants need on another server. On unless set false.
    pub globals: Option<bool>,
}

/// The `database` value meaning a PostgreSQL server's whole cluster.
pub const ALL_DATABASES: &str = "all";

impl DatabaseSource {
    /// Whether this source dumps a whole PostgreSQL cluster.
    pub fn is_cluster(&self) -> bool {
        self.kind == DatabaseKind::Postgresql && self.database.as_deref() == Some(ALL_DATABASES)
    }

    /// Whether the cluster's globals are dumped beside the database.
    pub fn dumps_globals(&self) -> bool {
        self.kind == DatabaseKind::Postgresql && !self.is_cluster() && self.globals.unwrap_or(true)
    }

    /// Why the source cannot be dumped as written, if it cannot.
    fn problem(&self) -> Option<String> {
        let kind = format!("{:?}", self.kind).to_lowercase();
        match self.kind {
            DatabaseKind::Sqlite if self.path.is_none() => Some("give `path` for a sqlite source".into()),
            DatabaseKind::Sqlite if self.database.is_some() => {
                Some("a sqlite source has a `path`, not a `database`".into())
            }
            DatabaseKind::Postgresql | DatabaseKind::Mysql | DatabaseKind::Mariadb if self.database.is_none() => {
                Some(format!("give `database` for a {kind} source"))
            }
            DatabaseKind::Mysql | DatabaseKind::Mariadb if self.database.as_deref() == Some(ALL_DATABASES) => {
                Some(format!("`database = \"all\"` is for PostgreSQL; list each {kind} database as a source"))
            }
            _ if self.globals.is_some() && self.kind != DatabaseKind::Postgresql => {
                Some("`globals` is for PostgreSQL sources".into())
            }
            _ if self.globals.is_some() && self.is_cluster() => {
                Some("`globals` with `database = \"all\"`: the whole cluster's dump holds them already".into())
            }
            _ => None,
        }
    }
}

/// `command = [{ name = "redis.rdb", run = ["redis-cli", "--rdb", "-"] }]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSource {
    /// Its file name in the snapshot.
    pub name: String,
    /// The program and its arguments (no shell).
    pub run: Vec<String>,
}

/// `hooks = { before = [...], finally = [...], timeout = "10m" }`: shell
/// commands, each stopped after the time-out (default one hour).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Hooks {
    /// How long one hook may run (`90s`, `10m`, `2h`).
    #[serde(default, deserialize_with = "duration")]
    pub timeout: Option<std::time::Duration>,
    /// Before the backup; one failing fails the job.
    #[serde(default)]
    pub before: Vec<String>,
    /// After a successful job.
    #[serde(default)]
    pub after: Vec<String>,
    /// After a failed job.
    #[serde(default)]
    pub on_failure: Vec<String>,
    /// After the job, whatever its outcome.
    #[serde(default)]
    pub finally: Vec<String>,
}

/// `check = { read-data-subset = "1/7" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CheckConfig {
    /// Which data the check reads, as `check --read-data-subset`.
    #[serde(default, deserialize_with = "read_data")]
    pub read_data_subset: Option<ReadData>,
}

/// A duration such as `90s`, `10m`, `2h` or `1d`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("invalid duration {s:?}: a number and s, m, h or d, e.g. 90s, 10m, 2h, 1d");
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(bad()),
    };
    if secs == 0 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(secs))
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<std::time::Duration>, D::Error> {
    parse_duration(&String::deserialize(d)?).map(Some).map_err(serde::de::Error::custom)
}

fn schedule<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Schedule>, D::Error> {
    Schedule::parse(&String::deserialize(d)?).map(Some).map_err(serde::de::Error::custom)
}

fn read_data<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ReadData>, D::Error> {
    ReadData::parse_subset(&String::deserialize(d)?).map(Some).map_err(serde::de::Error::custom)
}

/// A config that cannot be used; the message is one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config {file}: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid config.
    #[error("{}:{line}: {key}: {message}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// 1-based line of the mistake.
        line: usize,
        /// The key (or table) at fault.
        key: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// The config file to use: `given`, else `/etc/cairn/cairn.toml` for root
/// and `$XDG_CONFIG_HOME/cairn/cairn.toml` (or `~/.config/...`) otherwise.
pub fn default_path(given: Option<&Path>, is_root: bool) -> Option<PathBuf> {
    if let Some(p) = given {
        return Some(p.to_path_buf());
    }
    if is_root {
        return Some(PathBuf::from("/etc/cairn/cairn.toml"));
    }
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("XDG_CONFIG_HOME").or_else(|| var("HOME").map(|h| h.join(".config"))).map(|d| d.join("cairn/cairn.toml"))
}

/// The folder for job locks: `/var/lib/cairn` for root, else
/// `$XDG_STATE_HOME/cairn` or `~/.local/state/cairn`.
pub fn default_state_dir(is_root: bool) -> Option<PathBuf> {
    if is_root {
        return Some(PathBuf::from("/var/lib/cairn"));
    }
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("XDG_STATE_HOME").or_else(|| var("HOME").map(|h| h.join(".local/state"))).map(|d| d.join("cairn"))
}

/// Whether `name` may name a job or repository: it becomes part of file,
/// unit and tag names.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['.', '-'])
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

impl Config {
    /// Reads, decodes and checks the config at `file`.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read { file: file.into(), source })?;
        let config = Config::parse(file, &text)?;
        let with_password = config.repository.iter().find_map(|(n, r)| r.get_ref().password.as_ref().map(|p| (n, p)));
        if let Some((name, password)) = with_password {
            use std::os::unix::fs::MetadataExt;
            let mode =
                std::fs::metadata(file).map_err(|source| ConfigError::Read { file: file.into(), source })?.mode();
            if mode & 0o077 != 0 {
                return Err(ConfigError::Invalid {
                    file: file.into(),
                    line: line_of(&text, password.span().start),
                    key: format!("repository.{name}.password"),
                    message: format!(
                        "a password in a file others may read (mode {:04o}): run chmod 600 {}, or use password-file",
                        mode & 0o7777,
                        file.display()
                    ),
                });
            }
        }
        Ok(config)
    }

    /// Decodes and checks `text`, the content of `file`.
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        let at = |span: Option<Range<usize>>, key: Option<String>, message: String| {
            let start = span.map_or(0, |s| s.start.min(text.len()));
            let line = line_of(text, start);
            let key = key.unwrap_or_else(|| key_at(text, start));
            ConfigError::Invalid { file: file.into(), line, key, message }
        };
        let config: Config = toml::from_str(text).map_err(|e| at(e.span(), None, e.message().trim().to_string()))?;
        let named = config.repository.iter().map(|(n, r)| (n, r.span(), "repository"));
        for (name, span, what) in named.chain(config.job.iter().map(|(n, j)| (n, j.span(), "job"))) {
            if !is_plain_name(name) {
                return Err(at(
                    Some(span),
                    Some(format!("{what}.{name}")),
                    "a name of letters, digits, '_', '.' and '-' (not first) only".into(),
                ));
            }
        }
        for (name, channel) in &config.notify {
            if !is_plain_name(name) {
                return Err(at(
                    Some(channel.span()),
                    Some(format!("notify.{name}")),
                    "a name of letters, digits, '_', '.' and '-' (not first) only".into(),
                ));
            }
            if let Some(problem) = channel.get_ref().problem() {
                return Err(at(Some(channel.span()), Some(format!("notify.{name}")), problem));
            }
        }
        if let Some(listen) = &config.metrics.listen
            && listen.get_ref().parse::<std::net::SocketAddr>().is_err()
        {
            return Err(at(
                Some(listen.span()),
                Some("metrics.listen".into()),
                format!("{:?}: give an address and port, such as 127.0.0.1:9898", listen.get_ref()),
            ));
        }
        if let Some(listen) = &config.serve.listen
            && listen.get_ref().parse::<std::net::SocketAddr>().is_err()
        {
            return Err(at(
                Some(listen.span()),
                Some("serve.listen".into()),
                format!("{:?}: give an address and port, such as 127.0.0.1:8080", listen.get_ref()),
            ));
        }
        if config.serve.tls_certificate.is_some() != config.serve.tls_key.is_some() {
            return Err(at(None, Some("serve".into()), "give both tls-certificate and tls-key, or neither".into()));
        }
        for (name, hash) in &config.serve.tokens {
            if !is_plain_name(name) {
                return Err(at(
                    Some(hash.span()),
                    Some(format!("serve.tokens.{name}")),
                    "a name of letters, digits, '_', '.' and '-' (not first) only".into(),
                ));
            }
            if !hash.get_ref().starts_with("$argon2") {
                return Err(at(
                    Some(hash.span()),
                    Some(format!("serve.tokens.{name}")),
                    "not a token's hash: give what `cairn serve --new-token NAME` prints, never the token itself"
                        .into(),
                ));
            }
        }
        for (name, repo) in &config.repository {
            let r = repo.get_ref();
            let sources = [r.password.is_some(), r.password_file.is_some(), r.password_command.is_some()];
            let key = format!("repository.{name}");
            match sources.iter().filter(|s| **s).count() {
                0 => {
                    return Err(at(
                        Some(repo.span()),
                        Some(key),
                        "no password: give password-file, password-command or password".into(),
                    ));
                }
                1 => {}
                _ => {
                    return Err(at(
                        Some(repo.span()),
                        Some(key),
                        "more than one of password, password-file and password-command: keep one".into(),
                    ));
                }
            }
        }
        for (name, job) in &config.job {
            let j = job.get_ref();
            let key = format!("job.{name}.repositories");
            let repos = &j.repositories;
            if repos.get_ref().is_empty() {
                return Err(at(Some(repos.span()), Some(key), "no repository: name at least one".into()));
            }
            for r in repos.get_ref() {
                if !config.repository.contains_key(r) {
                    let known: Vec<&str> = config.repository.keys().map(String::as_str).collect();
                    let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
                    return Err(at(
                        Some(repos.span()),
                        Some(key),
                        format!("no repository named {r:?} (the file defines: {known})"),
                    ));
                }
            }
            let names =
                j.database.iter().map(|d| (&d.name, "database")).chain(j.command.iter().map(|c| (&c.name, "command")));
            let mut seen = std::collections::BTreeSet::new();
            for (n, what) in names {
                let key = Some(format!("job.{name}.{what}"));
                if !is_plain_name(n) {
                    return Err(at(
                        Some(job.span()),
                        key,
                        format!("{n:?}: a name of letters, digits, '_', '.' and '-' (not first) only"),
                    ));
                }
                if !seen.insert((what, n)) {
                    return Err(at(
                        Some(job.span()),
                        key,
                        format!("two {what} sources named {n:?}: names are files of the snapshot, give each its own"),
                    ));
                }
            }
            for d in &j.database {
                if let Some(problem) = d.problem() {
                    return Err(at(
                        Some(job.span()),
                        Some(format!("job.{name}.database")),
                        format!("{}: {problem}", d.name),
                    ));
                }
            }
            if let Some(names) = &j.notify {
                for n in names.get_ref() {
                    if !config.notify.contains_key(n) {
                        let known: Vec<&str> = config.notify.keys().map(String::as_str).collect();
                        let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
                        return Err(at(
                            Some(names.span()),
                            Some(format!("job.{name}.notify")),
                            format!("no channel named {n:?} (the file defines: {known})"),
                        ));
                    }
                }
            }
            if let Some(drill) = &j.drill {
                for db in drill.verify.keys() {
                    if !j.database.iter().any(|d| &d.name == db) {
                        return Err(at(
                            Some(job.span()),
                            Some(format!("job.{name}.drill.verify")),
                            format!("{db:?} is not one of the job's database sources"),
                        ));
                    }
                }
            }
            if j.paths.is_empty() && j.database.is_empty() && j.command.is_empty() {
                return Err(at(
                    Some(job.span()),
                    Some(format!("job.{name}")),
                    "nothing to back up: give paths, database or command".into(),
                ));
            }
        }
        Ok(config)
    }
}

/// The 1-based line of byte `at` of `text`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

/// The key written on the line holding byte `at` of `text`: the name
/// before `=`, or a table header's name.
fn key_at(text: &str, at: usize) -> String {
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("").trim();
    if let Some(header) = line.strip_prefix('[') {
        return header.trim_matches(|c| c == '[' || c == ']').trim().to_string();
    }
    line.split('=').next().unwrap_or("").trim().trim_matches('"').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[repository.local]
location = "/srv/backup/cairn"
password-file = "/etc/cairn/local.pass"
keep = { daily = 30 }

[repository.offsite]
location = "s3:backups/app"
options = { "s3.endpoint" = "https://s3.example.net" }
password-command = "pass show cairn/offsite"
keep = { daily = 90, monthly = 12, within = "2w", tags = ["keep"] }

[job.app]
repositories = ["local", "offsite"]
schedule = "daily 02:00"
paths = ["/etc", "/srv/uploads"]
exclude = ["*.part"]
database = [
  { name = "appdb", kind = "postgresql", database = "app", host = "/run/postgresql" },
  { name = "sessions", kind = "sqlite", path = "/var/lib/app/sessions.sqlite3" },
]
command = [{ name = "redis.rdb", run = ["redis-cli", "--rdb", "-"] }]
hooks = { before = ["systemctl stop app-worker"], finally = ["systemctl start app-worker"] }
check = { read-data-subset = "1/7" }
"#;

    fn err(text: &str) -> String {
        Config::parse(Path::new("/etc/cairn/cairn.toml"), text).map(|_| ()).unwrap_err().to_string()
    }

    #[test]
    fn the_sample_decodes_into_what_it_says() {
        let c = Config::parse(Path::new("c.toml"), GOOD).unwrap();
        assert_eq!(c.repository.len(), 2);
        let offsite = c.repository["offsite"].get_ref();
        assert_eq!(offsite.options["s3.endpoint"], "https://s3.example.net");
        let keep = offsite.keep.policy();
        assert_eq!((keep.daily, keep.monthly, keep.tags.clone()), (90, 12, vec!["keep".to_string()]));
        assert!(keep.within.is_some());
        let app = c.job["app"].get_ref();
        assert_eq!(app.repositories.get_ref(), &["local", "offsite"]);
        assert_eq!(app.database[0].kind, DatabaseKind::Postgresql);
        assert_eq!(app.database[1].path.as_deref(), Some(Path::new("/var/lib/app/sessions.sqlite3")));
        assert_eq!(app.command[0].run, ["redis-cli", "--rdb", "-"]);
        assert_eq!(app.hooks.finally, ["systemctl start app-worker"]);
        assert_eq!(app.check.as_ref().and_then(|c| c.read_data_subset), Some(ReadData::Subset(1, 7)));
    }

    #[test]
    fn the_documented_example_is_sound() {
        let doc = include_str!("../../../docs/CONFIG.md");
        let example = doc.split("```toml\n").nth(1).and_then(|s| s.split("```").next()).expect("a toml block");
        let c = Config::parse(Path::new("docs/CONFIG.md"), example).unwrap_or_else(|e| panic!("{e}"));
        let app = c.job["app"].get_ref();
        assert_eq!((app.database.len(), app.command.len(), app.hooks.before.len()), (3, 1, 1));
        assert_eq!(c.repository["offsite"].get_ref().keep.policy().yearly, cairn_forget::policy::UNLIMITED);
        // The monitoring keys.
        assert_eq!(c.notify.keys().collect::<Vec<_>>(), ["chat", "hc", "mail", "phone"]);
        assert_eq!(app.max_age, Some(std::time::Duration::from_secs(26 * 3600)));
        assert_eq!(app.growth, Some(Percent(25.0)));
        let drill = app.drill.as_ref().expect("a drill");
        assert_eq!((drill.rto, drill.verify.len()), (Some(std::time::Duration::from_secs(1800)), 1));
        assert_eq!(c.repository["local"].get_ref().min_free, Some(Percent(20.0)));
        assert!(c.metrics.textfile.is_some() && c.metrics.listen.is_some());
        assert!(c.serve.tokens.contains_key("ops") && c.serve.tls_key.is_some() && c.serve.listen.is_some());
    }

    #[test]
    fn mistakes_name_file_line_and_key_in_one_line() {
        // An unknown key.
        let e = err("[repository.a]\nlocation = \"/r\"\npasword-file = \"/p\"\n");
        assert!(e.starts_with("/etc/cairn/cairn.toml:3: pasword-file: unknown field `pasword-file`"), "{e}");
        // A wrong type.
        let e = err("[repository.a]\nlocation = 5\npassword-file = \"/p\"\n");
        assert!(e.starts_with("/etc/cairn/cairn.toml:2: location: invalid type: integer `5`"), "{e}");
        // A bad value inside an inline table.
        let e = err("[repository.a]\nlocation = \"/r\"\npassword-file = \"/p\"\nkeep = { daily = \"many\" }\n");
        assert!(e.starts_with("/etc/cairn/cairn.toml:4: keep:"), "{e}");
        assert!(e.contains("invalid count"), "{e}");
        // A missing repository.
        let e = err(
            "[repository.a]\nlocation = \"/r\"\npassword-file = \"/p\"\n\n[job.j]\nrepositories = [\"a\", \"b\"]\npaths = [\"/etc\"]\n",
        );
        assert_eq!(e, "/etc/cairn/cairn.toml:6: job.j.repositories: no repository named \"b\" (the file defines: a)");
        // No password source, two sources.
        let e = err("[repository.a]\nlocation = \"/r\"\n");
        assert!(e.starts_with("/etc/cairn/cairn.toml:1: repository.a: no password"), "{e}");
        let e = err("[repository.a]\nlocation = \"/r\"\npassword = \"x\"\npassword-file = \"/p\"\n");
        assert!(e.contains("repository.a: more than one of password"), "{e}");
        // A job with nothing to back up.
        let e = err("[repository.a]\nlocation = \"/r\"\npassword-file = \"/p\"\n[job.j]\nrepositories = [\"a\"]\n");
        assert!(e.starts_with("/etc/cairn/cairn.toml:4: job.j: nothing to back up"), "{e}");
        // A name that cannot be a file or unit name.
        let e = err(
            "[repository.a]\nlocation = \"/r\"\npassword-file = \"/p\"\n[job.\"my job\"]\nrepositories = [\"a\"]\npaths = [\"/\"]\n",
        );
        assert!(e.starts_with("/etc/cairn/cairn.toml:4: job.my job: a name of letters"), "{e}");
        // A schedule that is not one.
        let e = err(
            "[repository.a]\nlocation = \"/r\"\npassword-file = \"/p\"\n[job.j]\nrepositories = [\"a\"]\npaths = [\"/\"]\nschedule = \"daily 2am\"\n",
        );
        assert!(e.starts_with("/etc/cairn/cairn.toml:7: schedule: invalid schedule \"daily 2am\""), "{e}");
        // A subset that is not one.
        let e = err(
            "[repository.a]\nlocation = \"/r\"\npassword-file = \"/p\"\n[job.j]\nrepositories = [\"a\"]\npaths = [\"/\"]\ncheck = { read-data-subset = \"8/7\" }\n",
        );
        assert!(e.starts_with("/etc/cairn/cairn.toml:7: check: invalid subset"), "{e}");
        // Database sources that cannot be dumped as written.
        let head = "[repository.a]\nlocation = \"/r\"\npassword-file = \"/p\"\n[job.j]\nrepositories = [\"a\"]\n";
        for (db, want) in [
            (r#"{ name = "../../etc/x", kind = "sqlite", path = "/d" }"#, "job.j.database: \"../../etc/x\": a name of"),
            (r#"{ name = "s", kind = "mariadb", database = "all" }"#, "s: `database = \"all\"` is for PostgreSQL"),
            (r#"{ name = "p", kind = "postgresql", database = "all", globals = true }"#, "p: `globals` with"),
            (r#"{ name = "s", kind = "sqlite", path = "/d", globals = false }"#, "s: `globals` is for PostgreSQL"),
            (r#"{ name = "p", kind = "postgresql" }"#, "p: give `database` for a postgresql source"),
            (
                r#"{ name = "s", kind = "sqlite", path = "/a" }, { name = "s", kind = "sqlite", path = "/b" }"#,
                "two database sources named \"s\"",
            ),
        ] {
            let e = err(&format!("{head}database = [{db}]\n"));
            assert!(e.starts_with("/etc/cairn/cairn.toml:4: job.j.database: ") && e.contains(want), "{e}");
        }
        // Serving: a token pasted where its hash goes, half of TLS.
        let e = err("[serve.tokens]\nops = \"hunter2\"\n");
        assert!(e.starts_with("/etc/cairn/cairn.toml:2: serve.tokens.ops: not a token's hash"), "{e}");
        let e = err("[serve]\ntls-key = \"/k\"\n");
        assert!(e.contains("serve: give both tls-certificate and tls-key"), "{e}");
        // Monitoring: an unknown channel, a channel missing what it needs,
        // a password sent in clear text, an address that is not one.
        let e = err(&format!("{head}paths = [\"/\"]\nnotify = [\"pager\"]\n"));
        assert!(
            e.starts_with("/etc/cairn/cairn.toml:7: job.j.notify: no channel named \"pager\" (the file defines: none)"),
            "{e}"
        );
        let e = err("[notify.m]\nkind = \"email\"\nserver = \"mail.example.net\"\n");
        assert!(
            e.starts_with("/etc/cairn/cairn.toml:1: notify.m: an email channel needs `server`, `from` and `to`"),
            "{e}"
        );
        let e = err(
            "[notify.m]\nkind = \"email\"\nserver = \"mail.example.net\"\nsecurity = \"none\"\nuser = \"u\"\npassword-file = \"/p\"\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\n",
        );
        assert!(e.contains("notify.m: `security = \"none\"` would send the password in clear text"), "{e}");
        let e = err("[notify.w]\nkind = \"webhook\"\nurl = \"ftp://x\"\n");
        assert!(e.contains("notify.w: url \"ftp://x\": give an http:// or https:// URL"), "{e}");
        let e = err("[metrics]\nlisten = \"localhost\"\n");
        assert!(
            e.starts_with("/etc/cairn/cairn.toml:2: metrics.listen: \"localhost\": give an address and port"),
            "{e}"
        );
        for e in [err("x = "), err("[job.j]\nrepositories = \"a\"\n")] {
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn a_password_in_a_file_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cairn.toml");
        std::fs::write(&file, "[repository.a]\nlocation = \"/r\"\npassword = \"hunter2\"\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Config::load(&file).unwrap_err().to_string();
        let want = format!(
            "{}:3: repository.a.password: a password in a file others may read (mode 0644): run chmod 600",
            file.display()
        );
        assert!(e.starts_with(&want), "{e}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Config::load(&file).is_ok());
        // Without a password in it, a readable config is fine.
        std::fs::write(&file, "[repository.a]\nlocation = \"/r\"\npassword-file = \"/p\"\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Config::load(&file).is_ok());
    }
}
