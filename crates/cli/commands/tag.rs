//! `cairn tag`: change the tags or the protection of snapshots. Snapshot
//! files are immutable, so each changed snapshot is saved anew (its id
//! changes; `original` keeps the first one) and the old file deleted.

use anyhow::{Result, bail};
use cairn_repo::select;

use crate::cli::{Global, TagArgs};

fn split(v: &[String]) -> Vec<String> {
    v.iter().flat_map(|t| t.split(',')).filter(|t| !t.is_empty()).map(str::to_string).collect()
}

pub fn run(g: &Global, a: &TagArgs) -> Result<i32> {
    if a.add.is_empty() && a.remove.is_empty() && a.set.is_empty() && !a.protect && !a.unprotect {
        bail!("nothing to change: give --add, --remove, --set, --protect or --unprotect");
    }
    let edits = !a.add.is_empty() || !a.remove.is_empty();
    if !a.set.is_empty() && edits {
        bail!("--set replaces all tags: use it without --add and --remove");
    }
    let repo = super::open(g)?;
    let all = repo.snapshots()?;
    let f = super::filter(&a.filter)?;
    let chosen = select::choose(&all, &a.snapshots, &f)?;
    let (add, remove, set) = (split(&a.add), split(&a.remove), split(&a.set));
    let mut changed = Vec::new();
    for (id, snap) in chosen {
        let mut new = snap.clone();
        if !a.set.is_empty() {
            new.tags = set.clone();
        }
        new.tags.retain(|t| !remove.contains(t));
        for t in &add {
            if !new.tags.contains(t) {
                new.tags.push(t.clone());
            }
        }
        if a.protect {
            new.protected = true;
        }
        if a.unprotect {
            new.protected = false;
        }
        if new == snap {
            continue;
        }
        let new_id = repo.rewrite_snapshot(&id, new)?;
        changed.push((id, new_id));
    }
    if g.json {
        let v: Vec<_> = changed.iter().map(|(old, new)| serde_json::json!({ "old": old, "new": new })).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if !g.quiet {
        for (old, new) in &changed {
            println!("snapshot {} saved as {}", old.short(), new.short());
        }
        println!("{} snapshot(s) changed", changed.len());
    }
    Ok(0)
}
