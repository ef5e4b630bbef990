//! Formatting for people: sizes, times, tables.

/// `1.5 GiB` style sizes.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.2} {}", UNITS[u]) }
}

/// A timestamp in the local time zone, to the second.
pub fn local_time(t: jiff::Timestamp) -> String {
    t.to_zoned_datetime(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// Prints rows as a left-aligned table with a header. A closed output
/// (`cairn snapshots | head`) is an error to end quietly on, not a panic.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    use std::io::Write;
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    let mut line = |cells: &[String]| {
        let s: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        writeln!(out, "{}", s.join("  ").trim_end())
    };
    line(&header.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
    line(&["-".repeat(widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1))])?;
    for r in rows {
        line(r)?;
    }
    Ok(())
}

/// `rwxr-xr-x` with a type letter.
pub fn mode(m: u32, kind: cairn_format::tree::NodeKind) -> String {
    use cairn_format::tree::NodeKind::*;
    let t = match kind {
        Dir => 'd',
        Symlink => 'l',
        Fifo => 'p',
        Socket => 's',
        Chardev => 'c',
        Blockdev => 'b',
        File => '-',
    };
    let mut s = String::from(t);
    for shift in [6, 3, 0] {
        let b = (m >> shift) & 7;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        s.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// A time of the repository's format (`[seconds, nanoseconds]`) as RFC 3339,
/// the one time format of every `--json` output.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    jiff::Timestamp::new(secs, nanos as i32).map(|t| t.to_string()).unwrap_or_default()
}
