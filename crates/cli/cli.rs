//! Command-line definitions (clap). Names and conventions follow restic's.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// cairn: content-addressed, deduplicating, encrypted backups.
#[derive(Parser, Debug)]
#[command(name = "cairn", version, about, max_term_width = 100, after_help = ENVIRONMENT)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// The variables cairn reads, shown under every `--help`.
const ENVIRONMENT: &str = "\
Environment:
  CAIRN_REPOSITORY        repository location (as -r)
  CAIRN_PASSWORD          the password itself; --password-command and --password-file take precedence
  CAIRN_PASSWORD_FILE     as --password-file
  CAIRN_PASSWORD_COMMAND  as --password-command
  CAIRN_CACHE_DIR         as --cache-dir
  CAIRN_COLD_REPOSITORY   as --cold-repo
  CAIRN_CONFIG            as --config";

/// Options every command takes (shown under their own heading in every
/// command's `--help`, apart from the command's own).
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Repository location: a local path (or fs:PATH), s3:BUCKET[/PREFIX]
    /// (credentials, region and endpoint from AWS_* variables or -o),
    /// sftp:USER@HOST[:PORT]/PATH, or opendal:SCHEME?key=value&...
    #[arg(short = 'r', long = "repo", env = "CAIRN_REPOSITORY", global = true, value_name = "REPO")]
    pub repo: Option<String>,
    /// The config file of repositories and jobs (default
    /// /etc/cairn/cairn.toml for root, else ~/.config/cairn/cairn.toml).
    #[arg(long, env = "CAIRN_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A storage option, e.g. `-o s3.endpoint=http://127.0.0.1:9000` (repeatable).
    #[arg(short = 'o', long = "option", global = true, value_name = "KEY=VALUE", value_parser = cairn_backend::parse_option)]
    pub options: Vec<(String, String)>,
    /// Read the password from this file.
    #[arg(long, env = "CAIRN_PASSWORD_FILE", global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Run this shell command and use its output as the password.
    #[arg(long, env = "CAIRN_PASSWORD_COMMAND", global = true, value_name = "CMD")]
    pub password_command: Option<String>,
    /// Use an empty password (refused otherwise): only for a repository
    /// whose storage is itself trusted, as anyone who reads it reads all.
    #[arg(long, global = true)]
    pub insecure_no_password: bool,
    /// Print results as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print nothing but errors and warnings.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Also print, on standard error, how many storage requests the command
    /// made; given twice, every request as it finishes.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Limit uploads to this many KiB/s.
    #[arg(long, global = true, value_name = "KIB_PER_S", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit_upload: Option<u64>,
    /// Limit downloads to this many KiB/s.
    #[arg(long, global = true, value_name = "KIB_PER_S", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit_download: Option<u64>,
    /// Keep data packs in this second location (a colder storage class, say);
    /// the repository keeps everything else. Set at init, then needed by every command.
    #[arg(long, env = "CAIRN_COLD_REPOSITORY", global = true, value_name = "REPO")]
    pub cold_repo: Option<String>,
    /// A storage option of the cold location (repeatable).
    #[arg(long = "cold-option", global = true, value_name = "KEY=VALUE", value_parser = cairn_backend::parse_option)]
    pub cold_options: Vec<(String, String)>,
    /// Keep no local cache of a remote repository's metadata.
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Where caches live (default: $XDG_CACHE_HOME/cairn or ~/.cache/cairn).
    #[arg(long, env = "CAIRN_CACHE_DIR", global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new repository.
    Init(InitArgs),
    /// Back up files, standard input or a command's output.
    Backup(BackupArgs),
    /// List snapshots.
    Snapshots(SnapshotsArgs),
    /// List the files of a snapshot.
    Ls(LsArgs),
    /// Write one file of a snapshot to standard output.
    Dump(DumpArgs),
    /// Browse snapshots as a read-only file system (FUSE), until unmounted.
    Mount(MountArgs),
    /// Serve the snapshots over HTTP: a REST API, WebDAV, with tokens.
    Serve(ServeArgs),
    /// Restore a snapshot, or part of it.
    Restore(RestoreArgs),
    /// Verify the repository's structure and (optionally) its data.
    Check(CheckArgs),
    /// Remove snapshots by a retention policy (data is freed by prune).
    Forget(Box<ForgetArgs>),
    /// Add, remove or set tags; protect snapshots from forget.
    Tag(TagArgs),
    /// Free the space of data no snapshot uses (safe while backups run).
    Prune(PruneArgs),
    /// Manage keys: list, add, remove, change the password, rotate.
    Key(KeyArgs),
    /// Copy snapshots from another repository into this one.
    Copy(CopyArgs),
    /// Rebuild repository structures from what the packs hold.
    Repair(RepairArgs),
    /// Show what changed between two snapshots.
    Diff(DiffArgs),
    /// Find files by name or path pattern across snapshots.
    Find(FindArgs),
    /// Sizes: restore size, after deduplication, stored; repository totals.
    Stats(StatsArgs),
    /// Print a decrypted repository object as JSON (debugging).
    Cat(CatArgs),
    /// List the local caches of remote repositories; remove old ones.
    Cache(CacheArgs),
    /// Write shell completions or man pages.
    Generate(GenerateArgs),
    /// Check the config file of repositories and jobs.
    Config(ConfigArgs),
    /// Run the jobs of the config file.
    Job(JobArgs),
    /// Hand the jobs' schedules to systemd (or cron).
    Schedule(ScheduleArgs),
    /// Run the jobs' schedules in the foreground (without systemd), one
    /// JSON line per event; Ctrl-C or SIGTERM lets a running job finish,
    /// then stops.
    Daemon(DaemonArgs),
    /// The databases in jobs' snapshots: list them, load one back.
    Db(DbArgs),
    /// The run history of the jobs: runs, checks, prunes, copies, drills.
    History(HistoryArgs),
    /// Whether each job is well: its last run, the age of its newest good
    /// snapshot against its max-age (RPO), its last drill against its RTO.
    /// Exit 0 when all is well, 1 otherwise (a Nagios or cron check).
    Status(StatusArgs),
    /// The notification channels of the config file.
    Notify(NotifyArgs),
    /// Restore a job's newest snapshot into scratch space, read every file
    /// back, load each database into a scratch one and check it, time it
    /// (the measured RTO) and record it; exit 1 if it failed or took longer
    /// than the job's RTO.
    Drill(DrillArgs),
}

#[derive(Args, Debug)]
pub struct DrillArgs {
    /// The job whose newest snapshot is drilled.
    #[arg(value_name = "JOB")]
    pub job: String,
    #[command(flatten)]
    pub state: StateArgs,
}

/// Where the state (history, locks) is kept.
#[derive(Args, Debug, Clone)]
pub struct StateArgs {
    /// Where job locks and the run history are kept (default
    /// /var/lib/cairn for root, else ~/.local/state/cairn).
    #[arg(long, env = "CAIRN_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Only this job's runs.
    #[arg(value_name = "JOB")]
    pub job: Option<String>,
    /// How many of the newest runs.
    #[arg(long, default_value_t = 30)]
    pub limit: usize,
    #[command(flatten)]
    pub state: StateArgs,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Only this job.
    #[arg(value_name = "JOB")]
    pub job: Option<String>,
    /// Also notify the jobs' channels of a change of freshness (stale, or
    /// fresh again), once per change: for hosts without `cairn daemon`.
    #[arg(long)]
    pub notify: bool,
    #[command(flatten)]
    pub state: StateArgs,
}

#[derive(Args, Debug)]
pub struct NotifyArgs {
    #[command(subcommand)]
    pub action: NotifyAction,
}

#[derive(Subcommand, Debug)]
pub enum NotifyAction {
    /// Send a test message on every channel (or the one named); exit 1 if
    /// one could not be reached.
    Test {
        /// Only this channel.
        #[arg(value_name = "CHANNEL")]
        channel: Option<String>,
    },
}

impl Command {
    /// Whether the command answers SIGINT and SIGTERM itself: `mount` ends
    /// by unmounting, not by exiting at once.
    pub fn handles_signals(&self) -> bool {
        matches!(self, Command::Mount(_) | Command::Daemon(_) | Command::Job(_))
    }

    /// The command's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Init(_) => "init",
            Command::Backup(_) => "backup",
            Command::Snapshots(_) => "snapshots",
            Command::Ls(_) => "ls",
            Command::Dump(_) => "dump",
            Command::Mount(_) => "mount",
            Command::Serve(_) => "serve",
            Command::Restore(_) => "restore",
            Command::Check(_) => "check",
            Command::Forget(_) => "forget",
            Command::Tag(_) => "tag",
            Command::Prune(_) => "prune",
            Command::Key(_) => "key",
            Command::Copy(_) => "copy",
            Command::Repair(_) => "repair",
            Command::Diff(_) => "diff",
            Command::Find(_) => "find",
            Command::Stats(_) => "stats",
            Command::Cat(_) => "cat",
            Command::Cache(_) => "cache",
            Command::Generate(_) => "generate",
            Command::Config(_) => "config",
            Command::Job(_) => "job",
            Command::Schedule(_) => "schedule",
            Command::Daemon(_) => "daemon",
            Command::Db(_) => "db",
            Command::History(_) => "history",
            Command::Status(_) => "status",
            Command::Notify(_) => "notify",
            Command::Drill(_) => "drill",
        }
    }
}

#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// Remove these snapshots (ids or prefixes), in addition to any policy.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub keep: cairn_forget::KeepOptions,
    /// Apply the policy separately to each group of snapshots sharing these
    /// fields: a list of host, paths, tags; empty for one group.
    #[arg(long, default_value = "host,paths", value_name = "FIELDS")]
    pub group_by: String,
    /// Show what would be removed; change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Run prune afterwards.
    #[arg(long)]
    pub prune: bool,
    #[command(flatten)]
    pub prune_opts: cairn_prune::RepackOptions,
    /// Only consider snapshots passing these filters.
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    #[command(flatten)]
    pub opts: cairn_prune::RepackOptions,
    /// Report what would be freed; change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct KeyArgs {
    #[command(subcommand)]
    pub action: KeyAction,
}

#[derive(Subcommand, Debug)]
pub enum KeyAction {
    /// List the key files (the one in use is marked).
    List,
    /// Add a key for another password (read from --new-password-file,
    /// CAIRN_NEW_PASSWORD, or asked twice).
    Add(NewPasswordArgs),
    /// Remove a key file (never the last; the one in use only with --force).
    Remove {
        /// Key id or prefix.
        id: String,
        /// Allow removing the key in use.
        #[arg(long)]
        force: bool,
    },
    /// Change the password of the key in use.
    Passwd(NewPasswordArgs),
    /// Rotate the encryption key: new data, config, index and snapshots are
    /// sealed under a new secret that only the new key file holds.
    Rotate {
        /// Remove the other key files (they would keep the old keyring);
        /// add them again afterwards.
        #[arg(long)]
        remove_other_keys: bool,
    },
}

#[derive(Args, Debug)]
pub struct NewPasswordArgs {
    /// Read the new password from this file.
    #[arg(long, value_name = "FILE")]
    pub new_password_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// The repository to copy from (its password: CAIRN_FROM_PASSWORD,
    /// --from-password-file, or asked).
    #[arg(long, env = "CAIRN_FROM_REPOSITORY", value_name = "REPO")]
    pub from_repo: String,
    /// A storage option of the source repository (repeatable; -o applies
    /// to the destination).
    #[arg(long = "from-option", value_name = "KEY=VALUE", value_parser = cairn_backend::parse_option)]
    pub from_options: Vec<(String, String)>,
    /// Read the source repository's password from this file.
    #[arg(long, env = "CAIRN_FROM_PASSWORD_FILE", value_name = "FILE")]
    pub from_password_file: Option<PathBuf>,
    /// Snapshots to copy (default: all passing the filters).
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct RepairArgs {
    #[command(subcommand)]
    pub action: RepairAction,
}

#[derive(Subcommand, Debug)]
pub enum RepairAction {
    /// Rebuild the index from the pack headers (replaces all index files).
    Index,
    /// Salvage damaged packs: copy every blob that still reads into a new
    /// pack, drop the rest from the index (the next backup stores that
    /// content again) and delete the damaged packs. Reads every pack unless
    /// some are named (as `check --read-data` names them).
    Packs {
        /// Packs to salvage (ids or prefixes; default: every damaged pack).
        #[arg(value_name = "PACK")]
        packs: Vec<String>,
        /// Report what would be salvaged and lost; change nothing.
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
    /// Rewrite snapshots that need lost data, leaving out the lost chunks
    /// (files get shorter) and lost folders (they become empty); the paths
    /// are listed in the new snapshot's `repaired` field and tagged `repaired`.
    Snapshots {
        /// Snapshots to repair (default: all).
        #[arg(value_name = "SNAPSHOT")]
        snapshots: Vec<String>,
        /// Remove the damaged originals once repaired copies are saved.
        #[arg(long)]
        forget: bool,
        /// Report what would be repaired; change nothing.
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The earlier snapshot.
    pub first: String,
    /// The later snapshot.
    pub second: String,
    /// Also list files whose content is the same but metadata changed.
    #[arg(long)]
    pub metadata: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct FindArgs {
    /// Name patterns (`*.conf`) or path patterns (`/etc/**/*.conf`).
    #[arg(required = true, value_name = "PATTERN")]
    pub patterns: Vec<String>,
    /// Search only these snapshots (default: all passing the filters).
    #[arg(long = "snapshot", short = 's', value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true)))]
pub struct GenerateArgs {
    /// Print the completion script for this shell (`source <(cairn generate
    /// --completion bash)`, or save it where the shell loads completions).
    #[arg(long, value_name = "SHELL", group = "what")]
    pub completion: Option<clap_complete::Shell>,
    /// Write man pages (cairn.1 and one per command) into this folder.
    #[arg(long, value_name = "DIR", group = "what")]
    pub man: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DbArgs {
    #[command(subcommand)]
    pub action: DbAction,
}

#[derive(Subcommand, Debug)]
pub enum DbAction {
    /// List the database dumps in a job's snapshot.
    List {
        /// The job (default: every job with databases).
        #[arg(long)]
        job: Option<String>,
        /// Which of the job's snapshots: `latest` or an id prefix.
        #[arg(default_value = "latest")]
        snapshot: String,
    },
    /// Load a database back from a job's snapshot into its server
    /// (PostgreSQL) or a SQLite file, streamed. A target holding data is
    /// refused unless --replace, which first saves it as a snapshot tagged
    /// pre-restore.
    Restore {
        /// The database's name in the config.
        name: String,
        /// Which of its job's snapshots: `latest` or an id prefix.
        #[arg(long, value_name = "SNAPSHOT", conflicts_with = "at")]
        snapshot: Option<String>,
        /// The newest snapshot at or before this time.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Load into this database (PostgreSQL) or file (SQLite) instead.
        #[arg(long, value_name = "NEWNAME")]
        into: Option<String>,
        /// Create the PostgreSQL database if it does not exist.
        #[arg(long)]
        create: bool,
        /// Replace a target holding data (saved as a pre-restore snapshot first).
        #[arg(long)]
        replace: bool,
        /// Print the commands; run nothing.
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
}

#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// Where job locks and last-run times are kept (default /var/lib/cairn
    /// for root, else ~/.local/state/cairn).
    #[arg(long, env = "CAIRN_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    pub action: ScheduleAction,
}

/// Where systemd units go, and whether systemctl is asked to act on them.
#[derive(Args, Debug)]
pub struct UnitArgs {
    /// Folder for the units (default /etc/systemd/system for root, else
    /// ~/.config/systemd/user).
    #[arg(long, value_name = "DIR")]
    pub unit_dir: Option<PathBuf>,
    /// Write or delete the unit files only; do not run systemctl.
    #[arg(long)]
    pub no_enable: bool,
}

#[derive(Subcommand, Debug)]
pub enum ScheduleAction {
    /// Write a systemd service and timer per scheduled job (Persistent=true:
    /// a run missed while the machine was off happens when it is back) and
    /// enable the timers; with --cron, print crontab lines instead.
    Install {
        #[command(flatten)]
        units: UnitArgs,
        /// Print crontab lines (for `crontab -e`) instead of systemd units.
        #[arg(long)]
        cron: bool,
    },
    /// Disable and delete the units `schedule install` wrote.
    Remove {
        #[command(flatten)]
        units: UnitArgs,
    },
    /// List the scheduled jobs and when each runs next.
    List,
}

#[derive(Args, Debug)]
pub struct JobArgs {
    #[command(subcommand)]
    pub action: JobAction,
}

#[derive(Subcommand, Debug)]
pub enum JobAction {
    /// Run jobs now: before-hooks, one snapshot of all the job's folders,
    /// databases and commands in its first repository (none if a source
    /// fails), retention, copies to its other repositories, then the
    /// after/on-failure and finally hooks.
    Run {
        /// The jobs to run (default: every job, in name order).
        #[arg(value_name = "JOB")]
        jobs: Vec<String>,
        /// Say what would run; run nothing.
        #[arg(short = 'n', long)]
        dry_run: bool,
        /// Where job locks are kept (default /var/lib/cairn for root,
        /// else ~/.local/state/cairn).
        #[arg(long, env = "CAIRN_STATE_DIR", value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub action: ConfigAction,
}

#[derive(Subcommand, Debug)]
pub enum ConfigAction {
    /// Read the config file and check it: every mistake is one line with
    /// the file, the line and the key; exit 0 when it is sound.
    Check,
}

#[derive(Args, Debug)]
pub struct CacheArgs {
    /// Remove caches not used for --max-age days.
    #[arg(long)]
    pub cleanup: bool,
    /// Age in days after which --cleanup removes a cache.
    #[arg(long, default_value_t = 30, value_name = "DAYS")]
    pub max_age: u64,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Count only these snapshots (default: all passing the filters).
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    /// Snapshots to change (ids, prefixes or `latest`); all passing the
    /// filters when none is given.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Add this tag (repeatable, or `a,b`).
    #[arg(long, value_name = "TAG")]
    pub add: Vec<String>,
    /// Remove this tag (repeatable, or `a,b`).
    #[arg(long, value_name = "TAG")]
    pub remove: Vec<String>,
    /// Replace all tags by these (repeatable, or `a,b`; empty to clear).
    #[arg(long, value_name = "TAG", num_args = 0..=1, default_missing_value = "")]
    pub set: Vec<String>,
    /// Protect the snapshots: no forget policy removes them.
    #[arg(long, conflicts_with = "unprotect")]
    pub protect: bool,
    /// Lift the protection.
    #[arg(long)]
    pub unprotect: bool,
    /// Only snapshots passing these filters.
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Minimum chunk size in KiB.
    #[arg(long, default_value_t = 512)]
    pub chunk_min_kib: u32,
    /// Average chunk size in KiB (a power of two).
    #[arg(long, default_value_t = 1024)]
    pub chunk_avg_kib: u32,
    /// Maximum chunk size in KiB.
    #[arg(long, default_value_t = 8192)]
    pub chunk_max_kib: u32,
    /// zstd compression level, 0 to disable (1 to 22; higher levels trade
    /// backup CPU for a smaller repository).
    #[arg(long, default_value_t = cairn_format::config::DEFAULT_COMPRESSION_LEVEL)]
    pub compression: i32,
    /// Target pack size in MiB.
    #[arg(long, default_value_t = 16)]
    pub pack_size_mib: u32,
    /// Argon2id memory cost of the key in MiB.
    #[arg(long, default_value_t = 64)]
    pub kdf_memory_mib: u32,
    /// Argon2id passes.
    #[arg(long, default_value_t = 3)]
    pub kdf_iterations: u32,
}

/// Snapshot filters shared by commands that pick snapshots.
#[derive(Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// Only snapshots of this host (repeatable).
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only snapshots with these tags (`a,b` needs both; repeat for either).
    #[arg(long = "tag", value_name = "TAGS")]
    pub tags: Vec<String>,
    /// Only snapshots that include this path (repeatable).
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
    /// Newest snapshot taken at or before this time: `2026-11-17 02:00`,
    /// `2026-11-17` (end of that day), RFC 3339. Local time zone unless given.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Files and folders to back up.
    #[arg(value_name = "PATH")]
    pub paths: Vec<OsString>,
    /// With --stdin-from-command: the command and its arguments, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
    /// Read the content from standard input.
    #[arg(long, conflicts_with = "stdin_from_command")]
    pub stdin: bool,
    /// Run the command given after `--` and store its standard output.
    #[arg(long)]
    pub stdin_from_command: bool,
    /// File name for --stdin or --stdin-from-command.
    #[arg(long, default_value = "stdin", value_name = "NAME")]
    pub stdin_filename: String,
    /// Exclude paths matching this pattern (repeatable). A pattern starting
    /// with `/` matches that absolute path and all below it; any other
    /// matches at any depth (`*.tmp`, `node_modules`, `etc/ssl`). `*` stays
    /// within one name, `**` spans folders, `[abc]` and `?` as in a shell.
    #[arg(short = 'e', long = "exclude", value_name = "PATTERN")]
    pub excludes: Vec<String>,
    /// As --exclude, ignoring case (`*.tmp` also leaves out `X.TMP`).
    #[arg(long = "iexclude", value_name = "PATTERN")]
    pub iexcludes: Vec<String>,
    /// Read exclude patterns from a file, one per line.
    #[arg(long = "exclude-file", value_name = "FILE")]
    pub exclude_files: Vec<PathBuf>,
    /// Exclude folders that contain a file of this name.
    #[arg(long = "exclude-if-present", value_name = "NAME")]
    pub exclude_if_present: Vec<String>,
    /// Exclude folders marked as caches by a CACHEDIR.TAG file (with its
    /// standard signature; bford.info/cachedir).
    #[arg(long)]
    pub exclude_caches: bool,
    /// Exclude files larger than this (`500M`, `2G`; K, M, G, T are 1024-based).
    #[arg(long, value_name = "SIZE", value_parser = cairn_repo::units::parse_size)]
    pub exclude_larger_than: Option<u64>,
    /// Read the paths to back up from this file, one per line (blank lines
    /// and lines starting with `#` are skipped); with paths on the command
    /// line, both are backed up.
    #[arg(long = "files-from", value_name = "FILE")]
    pub files_from: Vec<PathBuf>,
    /// Do not cross file-system boundaries.
    #[arg(short = 'x', long)]
    pub one_file_system: bool,
    /// Tag the snapshot (repeatable; `a,b` adds both).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Host name to record (default: this machine's).
    #[arg(long)]
    pub host: Option<String>,
    /// Compare against this snapshot instead of the latest of the same host and paths.
    #[arg(long, value_name = "SNAPSHOT")]
    pub parent: Option<String>,
    /// Read every file, even unchanged ones.
    #[arg(long)]
    pub force: bool,
    /// Store every new chunk whole, never as a delta against a similar
    /// stored chunk: a changed database dump adds several times the bytes
    /// (5x for a PostgreSQL dump, 18x for an SQLite one on the benchmark),
    /// but each chunk reads back on its own and damage to one stored chunk
    /// reaches no other.
    #[arg(long)]
    pub no_deltas: bool,
    /// Do everything but write: read, chunk, compress and encrypt, then
    /// report what would be added; no pack, index or snapshot is stored.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Snapshot time (RFC 3339 or `YYYY-MM-DD HH:MM`), default now.
    #[arg(long, value_name = "TIME")]
    pub time: Option<String>,
}

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Only the newest N snapshots of each group (by default, of each host
    /// and set of paths, as restic).
    #[arg(long, value_name = "N")]
    pub latest: Option<usize>,
    /// List the snapshots in groups sharing these fields: a list of host,
    /// paths, tags.
    #[arg(long, value_name = "FIELDS")]
    pub group_by: Option<String>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Snapshot: `latest`, an id or id prefix; `ID:PATH` also works.
    pub snapshot: String,
    /// Only list below this path.
    pub path: Option<String>,
    /// Show mode, owner, size and time.
    #[arg(short, long)]
    pub long: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct DumpArgs {
    /// Snapshot: `latest`, an id or id prefix; `ID:PATH` also works.
    pub snapshot: String,
    /// Path of the file (with --archive: file or folder; default the whole snapshot).
    pub path: Option<String>,
    /// Write the path and everything below it as an archive in this format.
    #[arg(long, value_name = "FORMAT")]
    pub archive: Option<cairn_view::archive::ArchiveFormat>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct MountArgs {
    /// An empty folder to show the snapshots in.
    pub mountpoint: PathBuf,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Let other users browse too (the snapshot's modes and owners apply;
    /// needs `user_allow_other` in /etc/fuse.conf unless run as root).
    #[arg(long)]
    pub allow_other: bool,
    /// Memory for decoded file content and folders, in MiB, shared by all
    /// readers (the process peaks at about 1.3 times this, plus the key
    /// derivation's memory while unlocking).
    #[arg(long, value_name = "MIB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(8..))]
    pub cache_size: u64,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (default: the config's serve.listen, else
    /// 127.0.0.1:8080). One off loopback needs the config's tokens and TLS.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Make a token for NAME: print it once, and the line that lets it in
    /// (its hash) for the config's [serve.tokens]; serve nothing.
    #[arg(long, value_name = "NAME")]
    pub new_token: Option<String>,
    /// Serve this repository of the config (without -r and this, the
    /// config's only repository).
    #[arg(long, value_name = "NAME", conflicts_with = "new_token")]
    pub repository: Option<String>,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Memory for decoded file content and folders, in MiB, shared by all
    /// requests.
    #[arg(long, value_name = "MIB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(8..))]
    pub cache_size: u64,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Snapshot, or `SNAPSHOT:PATH` for one file or folder.
    pub snapshot: String,
    /// Folder to restore into (created if missing).
    #[arg(short, long, value_name = "DIR")]
    pub target: PathBuf,
    /// Only restore paths matching this pattern (repeatable), with the
    /// folders above them. Patterns are matched against the path in the
    /// snapshot: one starting with `/` is anchored there (`/etc/ssh`), any
    /// other matches at any depth (`*.conf`, `ssh/ssh_config`).
    #[arg(short = 'i', long = "include", value_name = "PATTERN")]
    pub includes: Vec<String>,
    /// Do not restore paths matching this pattern (repeatable; as --include).
    #[arg(short = 'e', long = "exclude", value_name = "PATTERN")]
    pub excludes: Vec<String>,
    /// Make the restored folders equal the snapshot's: delete what they
    /// hold that the snapshot does not (after the restore succeeded;
    /// never through a symlink; paths excluded, or not included, are left
    /// alone). Try it with --dry-run first.
    #[arg(long)]
    pub delete: bool,
    /// Drop this many leading path components below what is restored, as
    /// `tar --strip-components` (`cairn restore latest:/srv/app/data
    /// --strip-components 1` puts data's subfolders' contents in the target).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub strip_components: usize,
    /// As --include, ignoring case (`*.jpg` also matches `IMG.JPG`).
    #[arg(long = "iinclude", value_name = "PATTERN")]
    pub iincludes: Vec<String>,
    /// As --exclude, ignoring case.
    #[arg(long = "iexclude", value_name = "PATTERN")]
    pub iexcludes: Vec<String>,
    /// What to do with files that already exist.
    #[arg(long, value_enum, default_value = "never")]
    pub overwrite: cairn_restore::Overwrite,
    /// Before anything is replaced or deleted (--overwrite, --delete), back
    /// up what would be into a snapshot tagged `pre-restore` in the same
    /// repository; if that fails, nothing is restored.
    #[arg(long)]
    pub save_replaced: bool,
    /// Read restored files back and compare them with the snapshot.
    #[arg(long)]
    pub verify: bool,
    /// List what would be restored; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Also read and verify all data.
    #[arg(long)]
    pub read_data: bool,
    /// Read a subset of the data: `N/M` (group N of M) or `P%`.
    #[arg(long, value_name = "SUBSET", conflicts_with = "read_data", value_parser = cairn_check::ReadData::parse_subset)]
    pub read_data_subset: Option<cairn_check::ReadData>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatKind {
    Config,
    Snapshot,
    Index,
    Tree,
    Pack,
    Key,
    Blob,
}

#[derive(Args, Debug)]
pub struct CatArgs {
    /// What to print.
    #[arg(value_enum)]
    pub kind: CatKind,
    /// Its id (snapshot: also `latest` or a prefix).
    pub id: Option<String>,
}
