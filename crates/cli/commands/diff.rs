//! `cairn diff`: what changed between two snapshots (computed by
//! cairn-view's `diff`; here only the output).

use std::io::Write;

use anyhow::Result;
use cairn_view::diff::{Change, DiffSummary, diff};

use crate::cli::{DiffArgs, Global};
use crate::output::bytes;

fn symbol(c: Change) -> char {
    match c {
        Change::Added => '+',
        Change::Removed => '-',
        Change::Modified => 'M',
        Change::Metadata => 'U',
        Change::Type => 'T',
    }
}

pub fn run(g: &Global, a: &DiffArgs) -> Result<i32> {
    let repo = super::open(g)?;
    let (id1, s1) = super::find_snapshot(&repo, &a.first, &a.filter)?;
    let (id2, s2) = super::find_snapshot(&repo, &a.second, &a.filter)?;
    let repo = repo.load_index()?;
    let changes = diff(&repo, &s1.tree, &s2.tree, a.metadata)?;
    let sum = DiffSummary::of(&changes);
    if g.json {
        let v = serde_json::json!({ "first": id1, "second": id2, "changes": changes, "summary": sum });
        writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(0);
    }
    writeln!(std::io::stdout(), "comparing snapshot {} to {}:", id1.short(), id2.short())?;
    for e in &changes {
        let size = match (e.size_before, e.size_after) {
            (Some(b), Some(a)) if a != b => format!("  ({} -> {})", bytes(b), bytes(a)),
            (None, Some(a)) | (Some(a), None) => format!("  ({})", bytes(a)),
            _ => String::new(),
        };
        writeln!(std::io::stdout(), "{}  {}{size}", symbol(e.change), e.path)?;
    }
    writeln!(
        std::io::stdout(),
        "{} added, {} removed, {} modified, {} metadata only, {} type changed; {} added, {} removed",
        sum.added,
        sum.removed,
        sum.modified,
        sum.metadata,
        sum.type_changed,
        bytes(sum.bytes_added),
        bytes(sum.bytes_removed)
    )?;
    Ok(0)
}
