//! The documents of repository maintenance (docs/FORMAT.md, "Deletion
//! plans" and "Run markers"): prune's list of packs to delete, and the
//! marker each backup and prune keeps in `running/` while it works.

use serde::{Deserialize, Serialize};

use crate::{BlobKind, PackId};

/// Packs prune has marked for deletion; they are deleted by a later step
/// once no backup that might still use them is running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionPlan {
    /// Format version of this document.
    pub version: u32,
    /// When the packs were marked.
    pub created: jiff::Timestamp,
    /// Host of the prune that marked them.
    pub hostname: String,
    /// The packs.
    pub packs: Vec<MarkedPack>,
}

/// One pack of a deletion plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkedPack {
    /// The pack.
    pub id: PackId,
    /// Its blob kind (which folder it is in).
    #[serde(with = "kind_name")]
    pub kind: BlobKind,
}

mod kind_name {
    use super::BlobKind;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(k: &BlobKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(k.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BlobKind, D::Error> {
        match String::deserialize(d)?.as_str() {
            "data" => Ok(BlobKind::Data),
            "tree" => Ok(BlobKind::Tree),
            other => Err(serde::de::Error::custom(format!("unknown blob kind {other:?}"))),
        }
    }
}

/// What a run marker stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    /// A backup: it may reference any blob its index showed it.
    Backup,
    /// A prune: only one runs at a time.
    Prune,
}

/// A backup or prune in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMarker {
    /// Format version of this document.
    pub version: u32,
    /// Backup or prune.
    pub kind: RunKind,
    /// Host and process.
    pub hostname: String,
    /// Process id on that host.
    pub pid: u32,
    /// Which process of that pid: the host's boot id and the process's
    /// start time (Linux: `/proc/sys/kernel/random/boot_id` and field 22 of
    /// `/proc/<pid>/stat`), so a pid reused by another process after the
    /// run died is not taken for the run. Absent where unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// When the run started.
    pub started: jiff::Timestamp,
    /// Refreshed while the run is alive; a marker not refreshed for a long
    /// time belongs to a run that died.
    pub updated: jiff::Timestamp,
    /// The deletion plans this run had seen when it loaded the index (and so
    /// honours); absent until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plans_seen: Option<Vec<crate::PlanId>>,
}

crate::json_document!(DeletionPlan);
crate::json_document!(RunMarker);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_round_trip() {
        let t: jiff::Timestamp = "2026-11-23T02:00:00Z".parse().expect("time");
        let p = DeletionPlan {
            version: 1,
            created: t,
            hostname: "h".into(),
            packs: vec![MarkedPack { id: PackId::from_bytes([1; 32]), kind: BlobKind::Tree }],
        };
        assert_eq!(DeletionPlan::decode(&p.encode()).ok(), Some(p));
        let m = RunMarker {
            version: 1,
            kind: RunKind::Backup,
            hostname: "h".into(),
            pid: 7,
            process: Some("boot:123".into()),
            started: t,
            updated: t,
            plans_seen: Some(vec![]),
        };
        assert_eq!(RunMarker::decode(&m.encode()).ok(), Some(m));
        assert!(RunMarker::decode(br#"{"version":2}"#).is_err());
    }
}
