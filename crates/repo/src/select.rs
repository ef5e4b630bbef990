//! Choosing snapshots: `latest`, id prefixes, host/tag/path filters and a
//! point in time (`--at`), following restic's conventions.

use cairn_format::SnapshotId;
use cairn_format::snapshot::Snapshot;

use crate::{RepoError, Result};

/// Restricts which snapshots a selector considers.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Any of these hosts (empty: any host).
    pub hosts: Vec<String>,
    /// Any of these tag sets; a set is `a,b` and needs all its tags.
    pub tags: Vec<String>,
    /// The snapshot must include all of these paths.
    pub paths: Vec<String>,
    /// Only snapshots taken at or before this time.
    pub at: Option<jiff::Timestamp>,
}

impl Filter {
    /// Whether a snapshot passes the filter.
    pub fn matches(&self, s: &Snapshot) -> bool {
        let host_ok = self.hosts.is_empty() || self.hosts.contains(&s.hostname);
        let tags_ok = self.tags.is_empty()
            || self
                .tags
                .iter()
                .any(|set| set.split(',').filter(|t| !t.is_empty()).all(|t| s.tags.iter().any(|x| x == t)));
        let paths_ok = self.paths.iter().all(|p| s.paths.iter().any(|x| x == p));
        let time_ok = self.at.is_none_or(|at| s.time <= at);
        host_ok && tags_ok && paths_ok && time_ok
    }
}

/// The snapshots passing `filter`, oldest first (input must be oldest first).
pub fn filtered<'a>(
    all: &'a [(SnapshotId, Snapshot)],
    filter: &'a Filter,
) -> impl DoubleEndedIterator<Item = &'a (SnapshotId, Snapshot)> + 'a {
    all.iter().filter(move |(_, s)| filter.matches(s))
}

/// The snapshots a command acts on: each of `specs` resolved under `filter`,
/// or, when none is given, every snapshot passing `filter` (oldest first).
pub fn choose(
    all: &[(SnapshotId, Snapshot)],
    specs: &[String],
    filter: &Filter,
) -> Result<Vec<(SnapshotId, Snapshot)>> {
    if specs.is_empty() {
        return Ok(filtered(all, filter).cloned().collect());
    }
    specs.iter().map(|s| select(all, s, filter)).collect()
}

/// Resolves a selector: `latest` (the newest passing `filter`) or a unique
/// prefix of a snapshot id. `all` must be sorted oldest first.
pub fn select(all: &[(SnapshotId, Snapshot)], spec: &str, filter: &Filter) -> Result<(SnapshotId, Snapshot)> {
    if spec == "latest" {
        return filtered(all, filter)
            .next_back()
            .cloned()
            .ok_or_else(|| RepoError::SnapshotNotFound(describe(spec, filter)));
    }
    let spec_lower = spec.to_ascii_lowercase();
    if spec_lower.is_empty() || !spec_lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RepoError::Invalid(format!(
            "invalid snapshot {spec:?}: give `latest` or a snapshot id (a prefix of it is enough)"
        )));
    }
    let mut hits = all.iter().filter(|(id, _)| id.to_hex().starts_with(&spec_lower));
    match (hits.next(), hits.next()) {
        (Some(one), None) => Ok(one.clone()),
        (Some(_), Some(_)) => Err(RepoError::AmbiguousSnapshot(spec.into())),
        (None, _) => Err(RepoError::SnapshotNotFound(spec.into())),
    }
}

fn describe(spec: &str, f: &Filter) -> String {
    let mut s = spec.to_string();
    for h in &f.hosts {
        s.push_str(&format!(" --host {h}"));
    }
    for t in &f.tags {
        s.push_str(&format!(" --tag {t}"));
    }
    for p in &f.paths {
        s.push_str(&format!(" --path {p}"));
    }
    if let Some(at) = f.at {
        s.push_str(&format!(" --at {at}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_format::BlobId;

    fn snap(t: i64, host: &str, tags: &[&str]) -> Snapshot {
        Snapshot {
            version: 1,
            time: jiff::Timestamp::from_second(t).expect("valid"),
            tree: BlobId::default(),
            paths: vec!["/data".into()],
            hostname: host.into(),
            username: "u".into(),
            uid: 0,
            gid: 0,
            tags: tags.iter().map(|s| s.to_string()).collect(),
            parent: None,
            excludes: vec![],
            program_version: "t".into(),
            summary: None,
            protected: false,
            original: None,
            repaired: vec![],
        }
    }

    #[test]
    fn latest_prefix_and_at() {
        let all = vec![
            (SnapshotId::from_bytes([0xaa; 32]), snap(100, "a", &["x"])),
            (SnapshotId::from_bytes([0xab; 32]), snap(200, "b", &["x", "y"])),
            (SnapshotId::from_bytes([0xcc; 32]), snap(300, "a", &[])),
        ];
        let none = Filter::default();
        assert_eq!(select(&all, "latest", &none).expect("found").0, all[2].0);
        assert_eq!(select(&all, "cc", &none).expect("found").0, all[2].0);
        assert!(matches!(select(&all, "a", &none), Err(RepoError::AmbiguousSnapshot(_))));
        assert!(matches!(select(&all, "ff", &none), Err(RepoError::SnapshotNotFound(_))));
        assert!(select(&all, "zz", &none).is_err());
        let at = Filter { at: Some(jiff::Timestamp::from_second(250).expect("valid")), ..Filter::default() };
        assert_eq!(select(&all, "latest", &at).expect("found").0, all[1].0);
        let at = Filter { at: Some(jiff::Timestamp::from_second(200).expect("valid")), ..Filter::default() };
        assert_eq!(select(&all, "latest", &at).expect("found").0, all[1].0, "at is inclusive");
        let host = Filter { hosts: vec!["a".into()], at: at.at, ..Filter::default() };
        assert_eq!(select(&all, "latest", &host).expect("found").0, all[0].0);
        let tags = Filter { tags: vec!["x,y".into()], ..Filter::default() };
        assert_eq!(select(&all, "latest", &tags).expect("found").0, all[1].0);
        let early = Filter { at: Some(jiff::Timestamp::from_second(50).expect("valid")), ..Filter::default() };
        assert!(select(&all, "latest", &early).is_err());
    }
}
