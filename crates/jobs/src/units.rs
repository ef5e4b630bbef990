//! Schedules handed to the system: a systemd service and timer per job and
//! per job's drill (`Persistent=true`, so a run missed while the machine
//! was off happens at the next boot; the service sandboxed), or crontab
//! lines.

use std::path::{Path, PathBuf};

use crate::schedule::Schedule;

/// What a schedule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduled {
    /// The job (`cairn job run NAME`).
    Job,
    /// Its restore drill (`cairn drill NAME`).
    Drill,
}

impl Scheduled {
    /// The prefix of its unit names.
    pub fn prefix(self) -> &'static str {
        match self {
            Scheduled::Job => "cairn-job-",
            Scheduled::Drill => "cairn-drill-",
        }
    }

    /// The cairn command it runs for job `job`.
    fn command(self, job: &str) -> String {
        match self {
            Scheduled::Job => format!("job run {job}"),
            Scheduled::Drill => format!("drill {job}"),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Scheduled::Job => "backup job",
            Scheduled::Drill => "restore drill of job",
        }
    }
}

/// The unit name of what `what` runs for job `name`, without suffix.
pub fn unit_name(what: Scheduled, name: &str) -> String {
    format!("{}{name}", what.prefix())
}

/// What a job's units run and may write.
#[derive(Debug, Clone)]
pub struct UnitSpec<'a> {
    /// The job.
    pub job: &'a str,
    /// Its run or its drill.
    pub what: Scheduled,
    /// When.
    pub schedule: &'a Schedule,
    /// The cairn binary.
    pub binary: &'a Path,
    /// The config file.
    pub config: &'a Path,
    /// Folders the run writes: its state and cache folders and local
    /// repositories. Everything else is read-only to it.
    pub writable: &'a [PathBuf],
}

/// A job's systemd service, then its timer.
pub fn systemd_units(spec: &UnitSpec) -> (String, String) {
    let writable: Vec<String> = spec.writable.iter().map(|p| format!("-{}", p.display())).collect();
    let service = format!(
        "# Written by `cairn schedule install`; `cairn schedule remove` deletes it.\n\
         [Unit]\n\
         Description=cairn {describe} {job}\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={binary} --config {config} {command}\n\
         Nice=10\n\
         IOSchedulingClass=idle\n\
         # Reads everything, writes only where the job writes (hooks that\n\
         # write elsewhere need a drop-in with more ReadWritePaths=).\n\
         ProtectSystem=strict\n\
         ReadWritePaths={writable}\n\
         PrivateTmp=true\n\
         NoNewPrivileges=true\n",
        job = spec.job,
        describe = spec.what.describe(),
        command = spec.what.command(spec.job),
        binary = spec.binary.display(),
        config = spec.config.display(),
        writable = writable.join(" "),
    );
    let timer = format!(
        "# Written by `cairn schedule install`; `cairn schedule remove` deletes it.\n\
         [Unit]\n\
         Description=Schedule of cairn {describe} {job} ({schedule})\n\
         \n\
         [Timer]\n\
         OnCalendar={calendar}\n\
         # A run missed while the machine was off happens when it is back.\n\
         Persistent=true\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n",
        job = spec.job,
        describe = spec.what.describe(),
        schedule = spec.schedule,
        calendar = spec.schedule.on_calendar(),
    );
    (service, timer)
}

/// A crontab line running the job.
pub fn crontab_line(spec: &UnitSpec) -> String {
    format!(
        "{} {} --config {} {}",
        spec.schedule.cron(),
        spec.binary.display(),
        spec.config.display(),
        spec.what.command(spec.job)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_run_the_job_at_its_times_and_write_only_where_it_writes() {
        let schedule = Schedule::parse("weekly mon 03:30").unwrap();
        let writable = [PathBuf::from("/var/lib/cairn"), PathBuf::from("/srv/backup")];
        let mut spec = UnitSpec {
            job: "app",
            what: Scheduled::Job,
            schedule: &schedule,
            binary: Path::new("/usr/bin/cairn"),
            config: Path::new("/etc/cairn/cairn.toml"),
            writable: &writable,
        };
        let (service, timer) = systemd_units(&spec);
        assert!(service.contains("ExecStart=/usr/bin/cairn --config /etc/cairn/cairn.toml job run app\n"), "{service}");
        assert!(service.contains("ReadWritePaths=-/var/lib/cairn -/srv/backup\n"), "{service}");
        assert!(service.contains("ProtectSystem=strict\n") && service.contains("NoNewPrivileges=true\n"));
        assert!(timer.contains("OnCalendar=Mon *-*-* 03:30:00\n") && timer.contains("Persistent=true\n"), "{timer}");
        assert_eq!(crontab_line(&spec), "30 3 * * 1 /usr/bin/cairn --config /etc/cairn/cairn.toml job run app");
        spec.what = Scheduled::Drill;
        let (service, _) = systemd_units(&spec);
        assert!(service.contains("ExecStart=/usr/bin/cairn --config /etc/cairn/cairn.toml drill app\n"), "{service}");
        assert_eq!(unit_name(spec.what, "app"), "cairn-drill-app");
        assert_eq!(crontab_line(&spec), "30 3 * * 1 /usr/bin/cairn --config /etc/cairn/cairn.toml drill app");
    }
}
