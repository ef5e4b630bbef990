//! The snapshots of a repository as folders, in restic's layout so that
//! its users find their way: `ids/ID` (the short id), `snapshots/TIME`
//! with a `latest` link, `hosts/HOST/TIME` and `tags/TAG/TIME`, each with
//! its own `latest`. TIME is the snapshot's time in the local zone to the
//! second; two snapshots in one second get `-1`, `-2` after the later ones.
//! A [`Layout`] is rebuilt whole when the set of snapshots changes: it is
//! small (a few hundred bytes per snapshot), and a rebuilt one cannot
//! disagree with itself.

use std::collections::BTreeMap;

use cairn_format::snapshot::Snapshot;
use cairn_format::{BlobId, SnapshotId};
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// A snapshot as the layout shows it: a folder whose contents are its tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRef {
    /// The snapshot's id.
    pub id: SnapshotId,
    /// When it was taken (the folder's times).
    pub time: Timestamp,
    /// Its root tree.
    pub tree: BlobId,
}

/// One name in a folder of the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A folder of the layout (`ids`, `hosts/HOST`, ...).
    Folder(Folder),
    /// A snapshot's root.
    Snapshot(SnapshotRef),
    /// A symbolic link (`latest`), its target relative to its folder.
    Link(String),
}

/// A folder of the layout: its entries by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Folder {
    entries: BTreeMap<String, Entry>,
}

impl Folder {
    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// Every entry, by name.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    fn folder(&mut self, name: &str) -> &mut Folder {
        let entry = self.entries.entry(name.to_string()).or_insert_with(|| Entry::Folder(Folder::default()));
        match entry {
            Entry::Folder(f) => f,
            // Only `add` makes other entries, under names that never clash
            // with a folder's (times, ids).
            _ => unreachable!("layout folder {name} is not a folder"),
        }
    }

    /// Adds `snap` under its time name (made unique) and points `latest` at
    /// it; snapshots come oldest first, so the last one added is the newest.
    fn add_by_time(&mut self, name: &str, snap: &SnapshotRef) {
        let mut unique = name.to_string();
        let mut n = 0;
        while self.entries.contains_key(&unique) {
            n += 1;
            unique = format!("{name}-{n}");
        }
        self.entries.insert(unique.clone(), Entry::Snapshot(snap.clone()));
        self.entries.insert("latest".into(), Entry::Link(unique));
    }
}

/// The whole layout: the root folder and what lies below it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    root: Folder,
}

/// A host or tag as a single file name: no `/`, never `.` or `..` or empty.
fn file_name(s: &str) -> String {
    let name = s.replace(['/', '\0'], "_");
    if name.is_empty() || name == "." || name == ".." || name == "latest" { format!("_{name}") } else { name }
}

impl Layout {
    /// The layout of `snapshots` (oldest first), times shown in `tz`.
    pub fn new(snapshots: &[(SnapshotId, Snapshot)], tz: &TimeZone) -> Self {
        let mut root = Folder::default();
        for name in ["ids", "snapshots", "hosts", "tags"] {
            root.folder(name);
        }
        for (id, s) in snapshots {
            let snap = SnapshotRef { id: *id, time: s.time, tree: s.tree };
            let time = s.time.to_zoned_datetime(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string();
            root.folder("ids").entries.insert(id.short(), Entry::Snapshot(snap.clone()));
            root.folder("snapshots").add_by_time(&time, &snap);
            root.folder("hosts").folder(&file_name(&s.hostname)).add_by_time(&time, &snap);
            for tag in &s.tags {
                root.folder("tags").folder(&file_name(tag)).add_by_time(&time, &snap);
            }
        }
        Self { root }
    }

    /// The root folder.
    pub fn root(&self) -> &Folder {
        &self.root
    }

    /// The entry at `path` (names from the root); `None` for the root itself
    /// or a path that names nothing.
    pub fn get<'a>(&self, path: impl IntoIterator<Item = &'a str>) -> Option<&Entry> {
        let mut path = path.into_iter();
        let mut entry = self.root.get(path.next()?)?;
        for name in path {
            let Entry::Folder(f) = entry else { return None };
            entry = f.get(name)?;
        }
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(secs: i64, host: &str, tags: &[&str], n: u8) -> (SnapshotId, Snapshot) {
        let s = Snapshot {
            version: 1,
            time: Timestamp::from_second(secs).expect("time"),
            tree: BlobId::from_bytes([n; 32]),
            paths: vec!["/".into()],
            hostname: host.into(),
            username: "u".into(),
            uid: 0,
            gid: 0,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            parent: None,
            excludes: vec![],
            program_version: "cairn test".into(),
            summary: None,
            protected: false,
            original: None,
            repaired: vec![],
        };
        (SnapshotId::from_bytes([n; 32]), s)
    }

    fn names(f: Option<&Entry>) -> Vec<String> {
        match f {
            Some(Entry::Folder(f)) => f.entries().map(|(n, _)| n.to_string()).collect(),
            other => panic!("not a folder: {other:?}"),
        }
    }

    #[test]
    fn snapshots_appear_by_id_time_host_and_tag_with_latest_links() {
        let all = [snap(0, "web", &["daily"], 1), snap(0, "db", &[], 2), snap(60, "web", &["daily", "a/b"], 3)];
        let layout = Layout::new(&all, &TimeZone::UTC);
        assert_eq!(layout.get([]), None);
        assert_eq!(layout.root().entries().map(|(n, _)| n).collect::<Vec<_>>(), ["hosts", "ids", "snapshots", "tags"]);
        assert_eq!(
            names(layout.get(["snapshots"])),
            ["1970-01-01T00:00:00+00:00", "1970-01-01T00:00:00+00:00-1", "1970-01-01T00:01:00+00:00", "latest"]
        );
        assert_eq!(layout.get(["snapshots", "latest"]), Some(&Entry::Link("1970-01-01T00:01:00+00:00".into())));
        assert_eq!(names(layout.get(["hosts"])), ["db", "web"]);
        assert_eq!(layout.get(["hosts", "db", "latest"]), Some(&Entry::Link("1970-01-01T00:00:00+00:00".into())));
        assert_eq!(names(layout.get(["tags"])), ["a_b", "daily"]);
        assert_eq!(names(layout.get(["tags", "daily"])).len(), 3);
        let id = all[1].0.short();
        match layout.get(["ids", id.as_str()]) {
            Some(Entry::Snapshot(s)) => assert_eq!(s.tree, all[1].1.tree),
            other => panic!("{other:?}"),
        }
        assert_eq!(layout.get(["snapshots", "nope"]), None);
        assert_eq!(layout.get(["snapshots", "latest", "x"]), None);
    }

    #[test]
    fn hostile_host_and_tag_names_stay_single_names() {
        let all = [snap(0, "..", &["", ".", "latest", "x/../../etc"], 1)];
        let layout = Layout::new(&all, &TimeZone::UTC);
        assert_eq!(names(layout.get(["hosts"])), ["_.."]);
        assert_eq!(names(layout.get(["tags"])), ["_", "_.", "_latest", "x_.._.._etc"]);
    }
}
