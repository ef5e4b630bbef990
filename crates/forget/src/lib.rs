//! Retention: groups a repository's snapshots (by host, paths and/or tags),
//! applies a [`policy::Policy`] to each group, and removes the snapshots no
//! rule keeps. Removing a snapshot deletes only its file; the data it alone
//! used is reclaimed later by prune.
//!
//! ```
//! use cairn_forget::policy::{Candidate, Policy, apply};
//! let t: jiff::Timestamp = "2026-11-23T02:00:00Z".parse().unwrap();
//! let snaps = [Candidate { time: t, tags: &[], protected: false }];
//! let keep = apply(&Policy { last: 1, ..Policy::default() }, &snaps, &jiff::tz::TimeZone::UTC);
//! assert_eq!(keep[0].len(), 1);
//! ```

pub mod options;
pub mod policy;

pub use options::KeepOptions;

use std::collections::BTreeMap;

use cairn_format::SnapshotId;
use cairn_format::snapshot::Snapshot;
use cairn_repo::{Repository, Result};
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::policy::{Candidate, Policy, Reason};

/// Which snapshot fields make up a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupBy {
    /// Same host.
    pub host: bool,
    /// Same set of paths.
    pub paths: bool,
    /// Same set of tags.
    pub tags: bool,
}

impl Default for GroupBy {
    /// restic's default: host and paths.
    fn default() -> Self {
        GroupBy { host: true, paths: true, tags: false }
    }
}

impl GroupBy {
    /// Parses `host,paths,tags` (any subset; empty: one group for all).
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let mut g = GroupBy { host: false, paths: false, tags: false };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "host" => g.host = true,
                "paths" | "path" => g.paths = true,
                "tags" | "tag" => g.tags = true,
                _ => return Err(format!("invalid --group-by {s:?}: use a list of host, paths and tags")),
            }
        }
        Ok(g)
    }
}

/// What the snapshots of one group share.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct GroupKey {
    /// Host name, when grouping by host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Sorted paths, when grouping by paths.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// Sorted tags, when grouping by tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

impl GroupKey {
    fn of(s: &Snapshot, by: GroupBy) -> Self {
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        GroupKey {
            host: by.host.then(|| s.hostname.clone()),
            paths: by.paths.then(|| sorted(&s.paths)),
            tags: by.tags.then(|| sorted(&s.tags)),
        }
    }
}

impl std::fmt::Display for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(h) = &self.host {
            parts.push(format!("host {h}"));
        }
        if let Some(p) = &self.paths {
            parts.push(format!("paths [{}]", p.join(", ")));
        }
        if let Some(t) = &self.tags {
            parts.push(format!("tags [{}]", t.join(", ")));
        }
        if parts.is_empty() {
            parts.push("all snapshots".into());
        }
        write!(f, "{}", parts.join(", "))
    }
}

/// Snapshots (oldest first) in their groups, groups in key order, each
/// group oldest first.
pub fn groups(snapshots: &[(SnapshotId, Snapshot)], by: GroupBy) -> Vec<(GroupKey, Vec<(SnapshotId, Snapshot)>)> {
    let mut map: std::collections::BTreeMap<GroupKey, Vec<(SnapshotId, Snapshot)>> = Default::default();
    for (id, s) in snapshots {
        map.entry(GroupKey::of(s, by)).or_default().push((*id, s.clone()));
    }
    map.into_iter().collect()
}

/// One snapshot's fate.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// The snapshot.
    pub id: SnapshotId,
    /// When it was taken.
    pub time: jiff::Timestamp,
    /// Why it is kept; empty when it is removed.
    pub reasons: Vec<Reason>,
}

impl Decision {
    /// Whether a rule keeps it.
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// A group and the decisions for its snapshots, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// What the group's snapshots share.
    pub key: GroupKey,
    /// Newest first.
    pub snapshots: Vec<Decision>,
}

/// Applies `policy` to `snapshots`, group by group, bucketing calendar
/// periods in `tz`.
pub fn plan(snapshots: &[(SnapshotId, Snapshot)], policy: &Policy, by: GroupBy, tz: &TimeZone) -> Vec<Group> {
    let mut groups: BTreeMap<GroupKey, Vec<&(SnapshotId, Snapshot)>> = BTreeMap::new();
    for s in snapshots {
        groups.entry(GroupKey::of(&s.1, by)).or_default().push(s);
    }
    groups
        .into_iter()
        .map(|(key, members)| {
            let candidates: Vec<Candidate> = members
                .iter()
                .map(|(_, s)| Candidate { time: s.time, tags: &s.tags, protected: s.protected })
                .collect();
            let reasons = policy::apply(policy, &candidates, tz);
            let mut snapshots: Vec<Decision> = members
                .iter()
                .zip(reasons)
                .map(|((id, s), reasons)| Decision { id: *id, time: s.time, reasons })
                .collect();
            snapshots.sort_by(|a, b| b.time.cmp(&a.time).then(a.id.cmp(&b.id)));
            Group { key, snapshots }
        })
        .collect()
}

/// Deletes the snapshots the plan removes; returns how many.
pub fn execute(repo: &Repository, groups: &[Group]) -> Result<usize> {
    let mut n = 0;
    for d in groups.iter().flat_map(|g| &g.snapshots).filter(|d| !d.keep()) {
        repo.delete_snapshot(&d.id)?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(host: &str, path: &str, time: &str) -> Snapshot {
        Snapshot {
            version: 1,
            time: time.parse().expect("time"),
            tree: cairn_format::BlobId::from_bytes([0; 32]),
            paths: vec![path.into()],
            hostname: host.into(),
            username: "root".into(),
            uid: 0,
            gid: 0,
            tags: vec![],
            parent: None,
            excludes: vec![],
            program_version: "test".into(),
            summary: None,
            protected: false,
            original: None,
            repaired: vec![],
        }
    }

    #[test]
    fn several_hosts_are_separate_groups() {
        let list: Vec<(SnapshotId, Snapshot)> = [
            ("a", "/etc", "2026-01-01T00:00Z"),
            ("a", "/etc", "2026-01-02T00:00Z"),
            ("b", "/etc", "2026-01-01T00:00Z"),
            ("b", "/etc", "2026-01-03T00:00Z"),
            ("b", "/srv", "2026-01-04T00:00Z"),
        ]
        .iter()
        .enumerate()
        .map(|(i, (h, p, t))| (SnapshotId::from_bytes([i as u8; 32]), snap(h, p, t)))
        .collect();
        let policy = Policy { last: 1, ..Policy::default() };
        let groups = plan(&list, &policy, GroupBy::default(), &TimeZone::UTC);
        let kept: Vec<(String, Vec<u8>)> = groups
            .iter()
            .map(|g| (g.key.to_string(), g.snapshots.iter().filter(|d| d.keep()).map(|d| d.id.as_bytes()[0]).collect()))
            .collect();
        assert_eq!(
            kept,
            vec![
                ("host a, paths [/etc]".to_string(), vec![1]),
                ("host b, paths [/etc]".to_string(), vec![3]),
                ("host b, paths [/srv]".to_string(), vec![4]),
            ]
        );
        // One group for everything: only the newest stays.
        let all = plan(&list, &policy, GroupBy::parse("").unwrap(), &TimeZone::UTC);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].snapshots.iter().filter(|d| d.keep()).count(), 1);
        assert!(GroupBy::parse("host,colour").is_err());
    }
}
