//! `cairn config check`: reads the config file of repositories and jobs
//! and checks it (crates/jobs has the model and the checks).

use anyhow::{Context, Result};
use cairn_jobs::Config;
use cairn_jobs::config::default_path;

use crate::cli::{ConfigAction, ConfigArgs, Global};

pub fn run(g: &Global, a: &ConfigArgs) -> Result<i32> {
    match a.action {
        ConfigAction::Check => check(g),
    }
}

fn check(g: &Global) -> Result<i32> {
    let path = default_path(g.config.as_deref(), nix::unistd::geteuid().is_root())
        .context("no config file: give --config FILE (or set HOME)")?;
    let config = Config::load(&path)?;
    let repos: Vec<&str> = config.repository.keys().map(String::as_str).collect();
    let jobs: Vec<&str> = config.job.keys().map(String::as_str).collect();
    if g.json {
        let json = serde_json::json!({ "file": path, "repositories": repos, "jobs": jobs });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else if !g.quiet {
        println!(
            "{}: sound; {} repositories ({}), {} jobs ({})",
            path.display(),
            repos.len(),
            repos.join(", "),
            jobs.len(),
            jobs.join(", ")
        );
    }
    Ok(0)
}
