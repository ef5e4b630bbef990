//! `cairn cache`: the local caches of remote repositories, and removing
//! those not used for a while.

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::{CacheArgs, Global};
use crate::output::{bytes, local_time, table};

#[derive(Serialize)]
struct Report {
    root: String,
    caches: Vec<cairn_backend::CacheEntry>,
    removed: Vec<String>,
}

pub fn run(g: &Global, a: &CacheArgs) -> Result<i32> {
    let Some(root) = super::cache_root(g) else {
        anyhow::bail!("no cache folder: set --cache-dir or CAIRN_CACHE_DIR (HOME is not set)");
    };
    let now = jiff::Timestamp::now().as_second().max(0) as u64;
    let mut removed = Vec::new();
    let mut caches = cairn_backend::list_caches(&root);
    if a.cleanup {
        let max_age = a.max_age.saturating_mul(86_400);
        for c in caches.iter().filter(|c| now.saturating_sub(c.last_used) > max_age) {
            let dir = root.join(&c.repository);
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing cache {}", dir.display()))?;
            removed.push(c.repository.clone());
        }
        caches.retain(|c| !removed.contains(&c.repository));
    }
    if g.json {
        let report = Report { root: root.display().to_string(), caches, removed };
        let mut v = serde_json::to_value(&report)?;
        for c in v["caches"].as_array_mut().into_iter().flatten() {
            let secs = c["last_used"].as_i64().unwrap_or(0);
            c["last_used"] = crate::output::rfc3339(secs, 0).into();
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    if g.quiet {
        return Ok(0);
    }
    for r in &removed {
        println!("removed cache {}", &r[..8]);
    }
    let rows: Vec<Vec<String>> = caches
        .iter()
        .map(|c| {
            let used = jiff::Timestamp::from_second(c.last_used as i64).map(local_time).unwrap_or_default();
            vec![c.repository[..8].to_string(), bytes(c.bytes), c.files.to_string(), used]
        })
        .collect();
    println!("caches in {}", root.display());
    table(&["repository", "size", "files", "last used"], &rows)?;
    Ok(0)
}
