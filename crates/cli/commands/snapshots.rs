//! `cairn snapshots`: list snapshots, optionally the newest N of each group
//! (`--latest`) and in groups (`--group-by`), as restic does.

use std::io::Write;

use anyhow::Result;
use cairn_forget::GroupBy;
use cairn_format::SnapshotId;
use cairn_format::snapshot::Snapshot;
use cairn_repo::select;

use crate::cli::{Global, SnapshotsArgs};
use crate::output::{bytes, local_time, table};

fn json(list: &[(SnapshotId, Snapshot)]) -> Vec<serde_json::Value> {
    list.iter()
        .map(|(id, s)| {
            let mut v = serde_json::to_value(s).unwrap_or_default();
            v["id"] = serde_json::json!(id);
            v["short_id"] = serde_json::json!(id.short());
            v
        })
        .collect()
}

fn print_table(list: &[(SnapshotId, Snapshot)]) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|(id, s)| {
            vec![
                id.short(),
                local_time(s.time),
                s.hostname.clone(),
                if s.protected {
                    format!("{} (protected)", s.tags.join(",")).trim_start().to_string()
                } else {
                    s.tags.join(",")
                },
                s.paths.join(" "),
                s.summary.as_ref().map(|x| bytes(x.total_bytes)).unwrap_or_default(),
            ]
        })
        .collect();
    table(&["ID", "Time", "Host", "Tags", "Paths", "Size"], &rows)?;
    writeln!(std::io::stdout(), "{} snapshots", rows.len())
}

pub fn run(g: &Global, a: &SnapshotsArgs) -> Result<i32> {
    let by = a.group_by.as_deref().map(GroupBy::parse).transpose().map_err(anyhow::Error::msg)?;
    let repo = super::open(g)?;
    let all = repo.snapshots()?;
    let f = super::filter(&a.filter)?;
    let list: Vec<(SnapshotId, Snapshot)> = select::filtered(&all, &f).cloned().collect();
    let mut groups = cairn_forget::groups(&list, by.unwrap_or_default());
    if let Some(n) = a.latest {
        for (_, g) in &mut groups {
            g.drain(..g.len().saturating_sub(n));
        }
    }
    let mut out = std::io::stdout();
    if by.is_some() {
        if g.json {
            let v: Vec<serde_json::Value> =
                groups.iter().map(|(k, l)| serde_json::json!({ "group_key": k, "snapshots": json(l) })).collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            return Ok(0);
        }
        for (i, (k, l)) in groups.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            writeln!(out, "snapshots for {k}:")?;
            print_table(l)?;
        }
        return Ok(0);
    }
    // Without --group-by, one list in time order (--latest kept per group).
    let mut shown: Vec<(SnapshotId, Snapshot)> = groups.into_iter().flat_map(|(_, l)| l).collect();
    shown.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
    if g.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&json(&shown))?)?;
        return Ok(0);
    }
    print_table(&shown)?;
    Ok(0)
}
