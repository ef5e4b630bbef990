//! `cairn check`: structure, and data with --read-data.

use anyhow::Result;
use cairn_check::ReadData;

use crate::cli::{CheckArgs, Global};
use crate::errors::{EXIT_ERROR, EXIT_OK};
use crate::output::bytes;
use crate::progress;

pub fn run(g: &Global, a: &CheckArgs) -> Result<i32> {
    let read = if a.read_data { ReadData::All } else { a.read_data_subset.unwrap_or(ReadData::None) };
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
