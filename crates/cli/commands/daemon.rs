//! `cairn daemon`: the jobs' schedules run in the foreground (crates/jobs
//! has the loop); this handles the signals and prints the event lines.

use std::io::Write;

use anyhow::{Context, Result};
use cairn_jobs::config::{default_path, default_state_dir};
use cairn_jobs::daemon::Stop;
use cairn_jobs::{Config, RunOptions};

use crate::cli::{DaemonArgs, Global};

pub fn run(g: &Global, a: &DaemonArgs) -> Result<i32> {
    // The first signal lets a running job finish; the second ends it.
    let (tx, stop) = crossbeam_channel::unbounded();
    crate::signals::watch("daemon", move |_| {
        let _ = tx.send(Stop);
    })?;
    let root = nix::unistd::geteuid().is_root();
    let path = default_path(g.config.as_deref(), root).context("no config file: give --config FILE")?;
    let config = std::sync::Arc::new(Config::load(&path)?);
    let opts = RunOptions {
        hostname: super::backup::hostname(),
        state_dir: a
            .state_dir
            .clone()
            .or_else(|| default_state_dir(root))
            .context("no state folder: give --state-dir")?,
        cache_dir: if g.no_cache { None } else { super::cache_root(g) },
    };
    if let Some(listen) = &config.metrics.listen {
        // Checked by `Config::load`.
        let addr: std::net::SocketAddr = listen.get_ref().parse()?;
        let (shared, state) = (config.clone(), opts.state_dir.clone());
        let bound = cairn_monitor::metrics::serve(addr, move || {
            cairn_monitor::History::open(&state)
                .and_then(|h| cairn_jobs::status::metrics_text(&shared, &h, jiff::Timestamp::now()))
                .unwrap_or_else(|e| format!("# cairn: {e}\n"))
        })
        .with_context(|| format!("serving metrics on {addr} (metrics.listen)"))?;
        if !addr.ip().is_loopback() {
            eprintln!(
                "cairn: warning: metrics served on {bound}, beyond this machine: they name jobs and repositories"
            );
        }
    }
    let mut log = |mut event: serde_json::Value| {
        event["time"] = serde_json::Value::String(jiff::Timestamp::now().to_string());
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{event}");
        let _ = out.flush();
    };
    cairn_jobs::daemon::run(&config, &opts, &stop, &mut log);
    Ok(0)
}
