//! `cairn forget`: remove snapshots by a retention policy, or by id. Only
//! snapshot files are deleted; prune frees the data no snapshot uses.

use anyhow::{Result, bail};
use cairn_forget::{GroupBy, plan};
use cairn_repo::select;

use crate::cli::{ForgetArgs, Global};
use crate::output::{local_time, table};

pub fn run(g: &Global, a: &ForgetArgs) -> Result<i32> {
    let policy = a.keep.policy();
    let group_by = GroupBy::parse(&a.group_by).map_err(anyhow::Error::msg)?;
    if policy.is_empty() && a.snapshots.is_empty() {
        bail!("no policy given, so nothing would be kept: give --keep-* options, or the snapshots to remove");
    }
    let repo = super::open(g)?;
    let all = repo.snapshots()?;
    let mut by_id = Vec::new();
    for spec in &a.snapshots {
        let (id, snap) = select::select(&all, spec, &Default::default())?;
        if snap.protected {
            bail!("snapshot {} is protected: lift that first with `cairn tag --unprotect {}`", id.short(), id.short());
        }
        by_id.push(id);
    }
    let f = super::filter(&a.filter)?;
    let considered: Vec<_> = select::filtered(&all, &f).filter(|(id, _)| !by_id.contains(id)).cloned().collect();
    let groups = if policy.is_empty() {
        Vec::new()
    } else {
        plan(&considered, &policy, group_by, &jiff::tz::TimeZone::system())
    };
    let removed: Vec<_> = by_id
        .iter()
        .copied()
        .chain(groups.iter().flat_map(|gr| gr.snapshots.iter().filter(|d| !d.keep()).map(|d| d.id)))
        .collect();

    let mut json = serde_json::json!({ "groups": groups, "removed": removed, "dry_run": a.dry_run });
    if !g.json && !g.quiet {
        for gr in &groups {
            let kept = gr.snapshots.iter().filter(|d| d.keep()).count();
            println!("{}: keep {kept}, remove {}", gr.key, gr.snapshots.len() - kept);
            let rows: Vec<Vec<String>> = gr
                .snapshots
                .iter()
                .map(|d| {
                    let reasons: Vec<String> = d.reasons.iter().map(ToString::to_string).collect();
                    vec![
                        d.id.short(),
                        local_time(d.time),
                        if d.keep() { "keep" } else { "remove" }.to_string(),
                        reasons.join(", "),
                    ]
                })
                .collect();
            table(&["ID", "Time", "Action", "Reasons"], &rows)?;
            println!();
        }
        for id in &by_id {
            println!("remove {} (given on the command line)", id.short());
        }
    }
    if a.dry_run {
        if g.json {
            println!("{}", serde_json::to_string_pretty(&json)?);
        } else if !g.quiet {
            println!("dry run: would remove {} snapshot(s)", removed.len());
        }
        return Ok(0);
    }
    for id in &removed {
        repo.delete_snapshot(id)?;
    }
    if a.prune {
        if g.json {
            let report = super::prune::prune_repo(super::open(g)?, &a.prune_opts, false)?;
            json["prune"] = serde_json::to_value(report)?;
            println!("{}", serde_json::to_string_pretty(&json)?);
            return Ok(0);
        }
        if !g.quiet {
            println!("removed {} snapshot(s); pruning", removed.len());
        }
        return super::prune::run(g, &a.prune_opts, false);
    }
    if g.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else if !g.quiet {
        println!("removed {} snapshot(s); run `cairn prune` to free the space only they used", removed.len());
    }
    Ok(0)
}
