//! `cairn schedule install|remove|list`: the jobs' schedules as systemd
//! timers or crontab lines (crates/jobs writes the units).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cairn_jobs::Config;
use cairn_jobs::config::{default_path, default_state_dir};
use cairn_jobs::units::{Scheduled, UnitSpec, crontab_line, systemd_units, unit_name};

use crate::cli::{Global, ScheduleAction, ScheduleArgs, UnitArgs};
use crate::output::local_time;

pub fn run(g: &Global, a: &ScheduleArgs) -> Result<i32> {
    let root = nix::unistd::geteuid().is_root();
    let path = default_path(g.config.as_deref(), root).context("no config file: give --config FILE")?;
    let config = Config::load(&path)?;
    // The units name the config as it is found from anywhere.
    let path = std::path::absolute(&path)?;
    match &a.action {
        ScheduleAction::List => list(&config),
        ScheduleAction::Install { units, cron } => install(g, &config, &path, units, *cron, root),
        ScheduleAction::Remove { units } => remove(units, root),
    }
}

/// Every schedule of the config: each job's, and each job's drill's.
fn scheduled(config: &Config) -> Vec<(&String, Scheduled, &cairn_jobs::schedule::Schedule)> {
    let mut all = Vec::new();
    for (n, j) in &config.job {
        let j = j.get_ref();
        all.extend(j.schedule.as_ref().map(|s| (n, Scheduled::Job, s)));
        all.extend(j.drill.as_ref().and_then(|d| d.schedule.as_ref()).map(|s| (n, Scheduled::Drill, s)));
    }
    all
}

fn list(config: &Config) -> Result<i32> {
    let tz = jiff::tz::TimeZone::system();
    let now = tz.to_datetime(jiff::Timestamp::now());
    for (name, what, s) in scheduled(config) {
        let next = s
            .next_after(now)
            .and_then(|t| t.to_zoned_datetime(tz.clone()).ok())
            .map_or_else(|| "never".to_string(), |t| local_time(t.timestamp()));
        let name = match what {
            Scheduled::Job => name.to_string(),
            Scheduled::Drill => format!("{name} (drill)"),
        };
        println!("{name}: {s} (next {next}; systemd {})", s.on_calendar());
    }
    Ok(0)
}

/// The unit folder: given, or the system's (root) or the user's.
fn unit_dir(u: &UnitArgs, root: bool) -> Result<PathBuf> {
    if let Some(d) = &u.unit_dir {
        return Ok(d.clone());
    }
    if root {
        return Ok(PathBuf::from("/etc/systemd/system"));
    }
    let home = std::env::var_os("HOME").context("no HOME: give --unit-dir")?;
    Ok(PathBuf::from(home).join(".config/systemd/user"))
}

fn systemctl(root: bool, args: &[&str]) -> Result<()> {
    let mut c = std::process::Command::new("systemctl");
    if !root {
        c.arg("--user");
    }
    let status = c.args(args).status().context("running systemctl (or give --no-enable)")?;
    if !status.success() {
        bail!(
            "systemctl {} failed ({status}); without systemd, run the schedules with `cairn daemon` or install them with --cron",
            args.join(" ")
        );
    }
    Ok(())
}

fn install(g: &Global, config: &Config, path: &Path, u: &UnitArgs, cron: bool, root: bool) -> Result<i32> {
    let jobs = scheduled(config);
    if jobs.is_empty() {
        bail!("no job in {} has a schedule: add schedule = \"daily 02:00\" to one", path.display());
    }
    let binary = std::env::current_exe().context("finding the cairn binary")?;
    let mut writable: Vec<PathBuf> = default_state_dir(root).into_iter().collect();
    writable.extend(super::cache_root(g));
    for r in config.repository.values() {
        if let Ok(cairn_backend::Location::Local(p)) = cairn_backend::Location::parse(&r.get_ref().location) {
            writable.push(PathBuf::from(p));
        }
    }
    let dir = unit_dir(u, root)?;
    if !cron {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut timers = Vec::new();
    for (name, what, schedule) in jobs {
        let spec = UnitSpec { job: name, what, schedule, binary: &binary, config: path, writable: &writable };
        if cron {
            println!("{}", crontab_line(&spec));
            continue;
        }
        let (service, timer) = systemd_units(&spec);
        let unit = unit_name(what, name);
        for (suffix, text) in [("service", service), ("timer", timer)] {
            let file = dir.join(format!("{unit}.{suffix}"));
            std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
            // Unit files are read by systemd, not secret; the umask is 077.
            std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        }
        println!("wrote {unit}.service and {unit}.timer ({schedule}) in {}", dir.display());
        timers.push(format!("{unit}.timer"));
    }
    if !cron && !u.no_enable {
        systemctl(root, &["daemon-reload"])?;
        for t in &timers {
            systemctl(root, &["enable", "--now", t])?;
        }
    }
    Ok(0)
}

fn remove(u: &UnitArgs, root: bool) -> Result<i32> {
    let dir = unit_dir(u, root)?;
    let mut ours: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| [Scheduled::Job, Scheduled::Drill].iter().any(|w| n.starts_with(w.prefix())))
        .filter(|n| n.ends_with(".timer") || n.ends_with(".service"))
        .collect();
    ours.sort();
    if !u.no_enable {
        for t in ours.iter().filter(|n| n.ends_with(".timer")) {
            systemctl(root, &["disable", "--now", t])?;
        }
    }
    for n in &ours {
        std::fs::remove_file(dir.join(n)).with_context(|| format!("removing {n}"))?;
        println!("removed {}", dir.join(n).display());
    }
    if !u.no_enable && !ours.is_empty() {
        systemctl(root, &["daemon-reload"])?;
    }
    Ok(0)
}
