//! `cairn check`: structure, and data with --read-data.

use anyhow::{Result, bail};
use cairn_check::ReadData;

use crate::cli::{CheckArgs, Global};
use crate::errors::{EXIT_ERROR, EXIT_OK};
use crate::output::bytes;
use crate::progress;

fn read_data(a: &CheckArgs) -> Result<ReadData> {
    if a.read_data {
        return Ok(ReadData::All);
    }
    let Some(s) = a.read_data_subset.as_deref() else {
        return Ok(ReadData::None);
    };
    if let Some(p) = s.strip_suffix('%') {
        let p: f64 =
            p.trim().parse().map_err(|_| anyhow::anyhow!("invalid --read-data-subset {s:?}: use N/M or P%"))?;
        if !(0.0..=100.0).contains(&p) || p == 0.0 {
            bail!("invalid --read-data-subset {s:?}: the percentage must be above 0 and at most 100");
        }
        return Ok(ReadData::Percent(p));
    }
    if let Some((n, m)) = s.split_once('/')
        && let (Ok(n), Ok(m)) = (n.trim().parse::<u32>(), m.trim().parse::<u32>())
        && m > 0
        && (1..=m).contains(&n)
    {
        return Ok(ReadData::Subset(n, m));
    }
    bail!("invalid --read-data-subset {s:?}: use N/M (1 <= N <= M) or P%")
}

pub fn run(g: &Global, a: &CheckArgs) -> Result<i32> {
    let read = read_data(a)?;
    let repo = super::open(g)?;
    let bar = progress::bar(progress::enabled(g.quiet, g.json) && read != ReadData::None, "check");
    let report = cairn_check::check(repo, read, &progress::CheckProgress { bar: bar.clone() })?;
    if let Some(pb) = bar {
        pb.finish_and_clear();
    }
    if g.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for n in &report.notes {
            if !g.quiet {
                println!("note: {n}");
            }
        }
        for p in &report.problems {
            let affects = if p.affects.is_empty() {
                "no snapshot affected".to_string()
            } else {
                format!("affects {}", p.affects.join(", "))
            };
            eprintln!("error: {}: {} ({affects})", p.object, p.message);
        }
        if !g.quiet {
            println!(
                "checked {} snapshots, {} packs{}: {}",
                report.snapshots,
                report.packs,
                if read != ReadData::None {
                    format!(
                        ", read {} packs ({}), verified {} blobs",
                        report.packs_read,
                        bytes(report.bytes_read),
                        report.blobs_verified
                    )
                } else {
                    String::new()
                },
                if report.problems.is_empty() {
                    "no errors".to_string()
                } else {
                    format!("{} errors", report.problems.len())
                }
            );
        }
    }
    Ok(if report.problems.is_empty() { EXIT_OK } else { EXIT_ERROR })
}
