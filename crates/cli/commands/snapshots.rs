//! `cairn snapshots`: list snapshots.

use std::io::Write;

use anyhow::Result;
use cairn_repo::select;

use crate::cli::{Global, SnapshotsArgs};
use crate::output::{bytes, local_time, table};

pub fn run(g: &Global, a: &SnapshotsArgs) -> Result<i32> {
    let repo = super::open(g)?;
    let all = repo.snapshots()?;
    let f = super::filter(&a.filter)?;
    let list: Vec<_> = select::filtered(&all, &f).collect();
    if g.json {
        let v: Vec<serde_json::Value> = list
            .iter()
            .map(|(id, s)| {
                let mut v = serde_json::to_value(s).unwrap_or_default();
                v["id"] = serde_json::json!(id);
                v["short_id"] = serde_json::json!(id.short());
                v
            })
            .collect();
        writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(0);
    }
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
    writeln!(std::io::stdout(), "{} snapshots", rows.len())?;
    Ok(0)
}
