//! `cairn history`, `cairn status` and `cairn notify test`: what the jobs'
//! monitoring knows (crates/jobs and crates/monitor do the work; this
//! prints it and sets the exit code).

use anyhow::{Context, Result, bail};
use cairn_jobs::Config;
use cairn_jobs::config::{default_path, default_state_dir};
use cairn_monitor::History;
use cairn_monitor::notify::{self, Event, Message};

use crate::cli::{DrillArgs, Global, HistoryArgs, NotifyAction, NotifyArgs, StateArgs, StatusArgs};
use crate::errors::{EXIT_ERROR, EXIT_OK};
use crate::output::bytes;

fn config(g: &Global) -> Result<Config> {
    let root = nix::unistd::geteuid().is_root();
    let path = default_path(g.config.as_deref(), root).context("no config file: give --config FILE")?;
    Ok(Config::load(&path)?)
}

fn history_of(state: &StateArgs) -> Result<History> {
    let dir = state
        .state_dir
        .clone()
        .or_else(|| default_state_dir(nix::unistd::geteuid().is_root()))
        .context("no state folder: give --state-dir")?;
    Ok(History::open(&dir)?)
}

fn short(s: &Option<String>) -> &str {
    s.as_deref().map_or("-", |s| &s[..s.len().min(8)])
}

pub fn history(g: &Global, a: &HistoryArgs) -> Result<i32> {
    let h = history_of(&a.state)?;
    let runs = h.list(a.job.as_deref(), a.limit)?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(EXIT_OK);
    }
    let tz = jiff::tz::TimeZone::system();
    for r in &runs {
        println!(
            "{}  {:<12} {:<6} {:<12} {:<11} {:>7.1}s  {:>4} files  read {:>9}  added {:>9}  snapshot {}{}",
            tz.to_datetime(r.started).strftime("%Y-%m-%d %H:%M:%S"),
            r.job,
            r.kind.as_str(),
            r.repository.as_deref().unwrap_or("-"),
            r.outcome.as_str(),
            r.duration().as_secs_f64(),
            r.files,
            bytes(r.bytes_read),
            bytes(r.bytes_added),
            short(&r.snapshot),
            r.error.as_deref().map(|e| format!("  error: {e}")).unwrap_or_default(),
        );
    }
    if runs.is_empty() && !g.quiet {
        eprintln!("no runs recorded yet");
    }
    Ok(EXIT_OK)
}

pub fn status(g: &Global, a: &StatusArgs) -> Result<i32> {
    let config = config(g)?;
    let h = history_of(&a.state)?;
    let names: Vec<&String> = match &a.job {
        Some(j) if !config.job.contains_key(j) => bail!("no job named {j:?} in the config"),
        Some(j) => vec![j],
        None => config.job.keys().collect(),
    };
    let now = jiff::Timestamp::now();
    let mut all = Vec::new();
    for n in names {
        let s = cairn_jobs::status::job_status(&config, &h, n, now)?;
        if a.notify {
            cairn_jobs::watch::Watch::open(&config, n, &run_options(g, &a.state)?).check_freshness(now);
        }
        all.push(s);
    }
    let well = all.iter().all(|s| s.is_well());
    if g.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else if !g.quiet {
        for s in &all {
            let last = s.last.as_ref().map_or("never run".to_string(), |r| r.outcome.as_str().to_string());
            let age = s
                .age_seconds
                .map_or("no good snapshot".to_string(), |a| format!("newest good snapshot {:.1}h old", a / 3600.0));
            let rpo = s.rpo_seconds.map(|r| format!(" (max-age {:.1}h)", r / 3600.0)).unwrap_or_default();
            let verdict = if s.is_well() { "OK" } else { "PROBLEM" };
            println!("{verdict:<8} {}: last run {last}; {age}{rpo}", s.job);
            for p in &s.problems {
                println!("         - {p}");
            }
        }
    }
    Ok(if well { EXIT_OK } else { EXIT_ERROR })
}

pub fn notify(g: &Global, a: &NotifyArgs) -> Result<i32> {
    let NotifyAction::Test { channel } = &a.action;
    let config = config(g)?;
    if config.notify.is_empty() {
        bail!("the config has no [notify.NAME] channel");
    }
    if let Some(c) = channel
        && !config.notify.contains_key(c)
    {
        bail!("no channel named {c:?} in the config");
    }
    let host = super::backup::hostname();
    let msg = Message {
        event: Event::Test,
        job: String::new(),
        title: format!("test message from cairn on {host}"),
        body: "If you read this, cairn's notifications reach you on this channel.".into(),
        time: jiff::Timestamp::now(),
        host,
    };
    let chosen =
        config.notify.iter().filter(|(n, _)| channel.as_ref().is_none_or(|c| c == *n)).map(|(n, c)| (n, c.get_ref()));
    let names: Vec<String> = chosen.clone().map(|(n, _)| n.clone()).collect();
    let failed = notify::send_all(chosen, &msg);
    for n in names {
        match failed.iter().find(|e| e.channel == n) {
            Some(e) => eprintln!("cairn: error: {e}"),
            None if !g.quiet => println!("{n}: sent"),
            None => {}
        }
    }
    Ok(if failed.is_empty() { EXIT_OK } else { EXIT_ERROR })
}

fn run_options(g: &Global, state: &StateArgs) -> Result<cairn_jobs::RunOptions> {
    Ok(cairn_jobs::RunOptions {
        hostname: super::backup::hostname(),
        state_dir: state
            .state_dir
            .clone()
            .or_else(|| default_state_dir(nix::unistd::geteuid().is_root()))
            .context("no state folder: give --state-dir")?,
        cache_dir: if g.no_cache { None } else { super::cache_root(g) },
    })
}

pub fn drill(g: &Global, a: &DrillArgs) -> Result<i32> {
    let config = config(g)?;
    if !config.job.contains_key(&a.job) {
        bail!("no job named {:?} in the config", a.job);
    }
    let opts = run_options(g, &a.state)?;
    let r = cairn_jobs::drill::drill(&config, &a.job, &opts)?;
    if g.json {
        println!(
            "{}",
            serde_json::json!({
                "job": a.job, "snapshot": r.snapshot, "files": r.files, "bytes": r.bytes,
                "databases": r.databases.iter().map(|(n, c)| serde_json::json!({"name": n, "checked": c})).collect::<Vec<_>>(),
                "skipped": r.skipped.iter().map(|(n, c)| serde_json::json!({"name": n, "why": c})).collect::<Vec<_>>(),
                "rto_seconds": r.seconds, "rto_target_seconds": r.rto,
            })
        );
    } else if !g.quiet {
        println!(
            "drill of job {}: snapshot {} restored and read back, {} files, {} in {:.1}s{}",
            a.job,
            short(&r.snapshot),
            r.files,
            bytes(r.bytes),
            r.seconds,
            r.rto.map(|t| format!(" (RTO {t:.0}s)")).unwrap_or_default()
        );
        for (n, c) in &r.databases {
            println!("  database {n}: loaded into a scratch copy, {c}");
        }
        for (n, why) in &r.skipped {
            println!("  database {n}: not loaded: {why}");
        }
    }
    Ok(EXIT_OK)
}
