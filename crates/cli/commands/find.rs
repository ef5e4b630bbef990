//! `cairn find`: which snapshots hold files matching a pattern, and where
//! (the search is cairn-view's `find`; here the output).

use std::io::Write;

use anyhow::Result;
use cairn_repo::pattern::Matcher;
use cairn_repo::select;
use cairn_view::find::Finder;

use crate::cli::{FindArgs, Global};
use crate::output::local_time;

pub fn run(g: &Global, a: &FindArgs) -> Result<i32> {
    let matcher = Matcher::new(&a.patterns)?;
    let repo = super::open(g)?;
    let all = repo.snapshots()?;
    let f = super::filter(&a.filter)?;
    let chosen = select::choose(&all, &a.snapshots, &f)?;
    let repo = repo.load_index()?;
    let mut finder = Finder::new(&matcher);
    let mut json = Vec::new();
    let mut total = 0;
    for (id, snap) in &chosen {
        let hits = finder.search(&repo, snap.tree)?;
        if hits.is_empty() {
            continue;
        }
        total += hits.len();
        if g.json {
            json.push(serde_json::json!({ "snapshot": id, "time": snap.time, "hits": *hits }));
            continue;
        }
        writeln!(std::io::stdout(), "snapshot {} of {}:", id.short(), local_time(snap.time))?;
        for h in hits.iter() {
            let t = local_time(h.mtime);
            writeln!(std::io::stdout(), "  {:>12}  {t}  {}", h.size, h.path)?;
        }
    }
    if g.json {
        writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        writeln!(std::io::stdout(), "{total} matches in {} snapshot(s) searched", chosen.len())?;
    }
    Ok(0)
}
