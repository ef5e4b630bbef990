//! Maintenance state in the repository (docs/FORMAT.md, "Deletion plans" and
//! "Run markers"): prune's plans of packs to delete, and the markers that
//! running backups and prunes keep so that a prune never deletes a pack a
//! backup in progress may still refer to. No exclusive lock: backups never
//! wait for anything.

use std::collections::HashSet;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cairn_backend::{Backend, FileKind};
use cairn_crypto::{Keyring, ObjectKind};
use cairn_format::lifecycle::{DeletionPlan, RunKind, RunMarker};
use cairn_format::{FORMAT_VERSION, MarkerId, PackId, PlanId, payload};

use crate::{IndexedRepository, RepoError, Repository, Result, Sketches};

/// How often a run refreshes its marker.
pub const HEARTBEAT: Duration = Duration::from_secs(5 * 60);
/// A marker not refreshed for this long belongs to a run that died (or
/// whose machine slept); prune then ignores it, and the run itself refuses
/// to write its snapshot.
pub const STALE_AFTER: Duration = Duration::from_secs(2 * 60 * 60);

impl Repository {
    /// All deletion plans, oldest first.
    pub fn deletion_plans(&self) -> Result<Vec<(PlanId, DeletionPlan)>> {
        let mut out = Vec::new();
        for id in self.list_ids::<PlanId>(FileKind::Deletion)? {
            let plain = self.open_file(FileKind::Deletion, ObjectKind::DeletionPlan, id.as_bytes())?;
            let plan = DeletionPlan::decode(&plain)
                .map_err(|e| RepoError::format(format!("deletion plan {}", id.short()), e))?;
            out.push((id, plan));
        }
        out.sort_by(|a, b| a.1.created.cmp(&b.1.created).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Stores a deletion plan; returns its id.
    pub fn save_deletion_plan(&self, plan: &DeletionPlan) -> Result<PlanId> {
        self.save_file(FileKind::Deletion, ObjectKind::DeletionPlan, &plan.encode()).map(PlanId::from_bytes)
    }

    /// Removes a deletion plan whose packs are gone (or rescued).
    pub fn delete_deletion_plan(&self, id: &PlanId) -> Result<()> {
        Ok(self.backend.delete(FileKind::Deletion, &id.to_hex())?)
    }

    /// Every run marker: `Err` for one that cannot be read (a prune must
    /// then assume the worst about it).
    pub fn run_markers(&self) -> Result<Vec<(MarkerId, std::result::Result<RunMarker, RepoError>)>> {
        let ids = self.list_ids::<MarkerId>(FileKind::Marker)?;
        Ok(ids.into_iter().map(|id| (id, read_marker(&self.backend, &self.keyring, &id))).collect())
    }

    /// Writes this run's marker and keeps it fresh until the guard drops.
    pub fn start_run(&self, kind: RunKind, hostname: &str) -> Result<RunGuard> {
        let mut raw = [0u8; 32];
        cairn_crypto::random_bytes(&mut raw)?;
        let id = MarkerId::from_bytes(raw);
        let now = jiff::Timestamp::now();
        let marker = RunMarker {
            version: FORMAT_VERSION,
            kind,
            hostname: hostname.to_string(),
            pid: std::process::id(),
            process: process_identity(std::process::id()),
            started: now,
            updated: now,
            plans_seen: None,
        };
        let in_flight = cairn_backend::interrupt::file(&self.backend, &FileKind::Marker.path(&id.to_hex()));
        write_marker(&self.backend, &self.keyring, &id, &marker)?;
        let shared = Arc::new(Mutex::new(Heartbeat { marker, last_beat: Instant::now(), lapsed: false }));
        let (stop, stopped) = mpsc::channel::<()>();
        let (backend, keyring, beat) = (self.backend.clone(), self.keyring.clone(), shared.clone());
        let thread = std::thread::Builder::new()
            .name("heartbeat".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(HEARTBEAT) {
                    let mut h = beat.lock().unwrap_or_else(|p| p.into_inner());
                    h.beat(&backend, &keyring, &id);
                }
            })
            .map_err(|e| RepoError::Invalid(format!("cannot start the heartbeat thread: {e}")))?;
        Ok(RunGuard {
            id,
            backend: self.backend.clone(),
            keyring: self.keyring.clone(),
            shared,
            stop: Some(stop),
            thread: Some(thread),
            _in_flight: in_flight,
        })
    }

    /// Loads the index as a backup must see it: first announces the run
    /// (its marker), then reads the deletion plans, records them in the
    /// marker as honoured, and leaves out every blob copy in a marked pack,
    /// so nothing this backup stores can depend on a pack about to go.
    /// The marker lives as long as the returned repository.
    pub fn load_index_for_backup(self, hostname: &str) -> Result<IndexedRepository> {
        let guard = self.start_run(RunKind::Backup, hostname)?;
        let plans = self.deletion_plans()?;
        guard.set_plans_seen(plans.iter().map(|(id, _)| *id).collect())?;
        let marked: HashSet<PackId> = plans.iter().flat_map(|(_, p)| p.packs.iter().map(|m| m.id)).collect();
        let mut repo = self.load_index_filtered(|pack| !marked.contains(pack), Sketches::Kept)?;
        repo.run = Some(guard);
        Ok(repo)
    }
}

struct Heartbeat {
    marker: RunMarker,
    last_beat: Instant,
    /// A refresh came later than [`STALE_AFTER`] (the machine slept): a
    /// prune may have taken the run for dead.
    lapsed: bool,
}

impl Heartbeat {
    fn beat(&mut self, backend: &Backend, keyring: &Keyring, id: &MarkerId) {
        if self.last_beat.elapsed() >= STALE_AFTER {
            self.lapsed = true;
        }
        self.marker.updated = jiff::Timestamp::now();
        // A failed refresh is retried at the next beat; the marker only
        // turns stale if refreshes fail for STALE_AFTER.
        if write_marker(backend, keyring, id, &self.marker).is_ok() {
            self.last_beat = Instant::now();
        }
    }
}

/// A run's marker in `running/`; dropping the guard removes it.
pub struct RunGuard {
    id: MarkerId,
    backend: Backend,
    keyring: Arc<Keyring>,
    shared: Arc<Mutex<Heartbeat>>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Removes the marker if the process is interrupted.
    _in_flight: cairn_backend::interrupt::InFlight,
}

impl std::fmt::Debug for RunGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RunGuard({})", self.id.short())
    }
}

impl RunGuard {
    /// This run's marker id.
    pub fn id(&self) -> MarkerId {
        self.id
    }

    /// Records the deletion plans this run honours.
    pub fn set_plans_seen(&self, plans: Vec<PlanId>) -> Result<()> {
        let mut h = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        h.marker.plans_seen = Some(plans);
        h.marker.updated = jiff::Timestamp::now();
        write_marker(&self.backend, &self.keyring, &self.id, &h.marker)?;
        h.last_beat = Instant::now();
        Ok(())
    }

    /// Fails if the marker may have looked dead to a prune at some point
    /// (it went unrefreshed for [`STALE_AFTER`], e.g. while the machine
    /// slept): the data this run relied on may be gone, so it must not
    /// write a snapshot.
    pub fn ensure_alive(&self) -> Result<()> {
        let h = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        if h.lapsed || h.last_beat.elapsed() >= STALE_AFTER {
            return Err(RepoError::Invalid(format!(
                "this run's marker went unrefreshed for over {} minutes (did the machine sleep?), so a prune may \
                 have removed data it relies on; no snapshot was written: run the backup again",
                STALE_AFTER.as_secs() / 60
            )));
        }
        Ok(())
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // A marker left behind (crash, or this delete failing) only delays
        // a prune's deletions until it is stale.
        let _ = self.backend.delete(FileKind::Marker, &self.id.to_hex());
    }
}

/// Whether a marker still stands for a live run at `now`.
pub fn is_live(marker: &RunMarker, now: jiff::Timestamp) -> bool {
    now.duration_since(marker.updated).as_secs_f64() < STALE_AFTER.as_secs_f64()
}

fn write_marker(backend: &Backend, keyring: &Keyring, id: &MarkerId, marker: &RunMarker) -> Result<()> {
    let sealed = keyring.seal(
        ObjectKind::RunMarker,
        id.as_bytes(),
        &payload::encode(&marker.encode(), cairn_format::Compression::None),
    )?;
    Ok(backend.write(FileKind::Marker, &id.to_hex(), sealed)?)
}

fn read_marker(backend: &Backend, keyring: &Keyring, id: &MarkerId) -> Result<RunMarker> {
    let object = || format!("run marker {}", id.short());
    let bytes = backend.read(FileKind::Marker, &id.to_hex())?;
    let plain =
        keyring.open(ObjectKind::RunMarker, id.as_bytes(), &bytes).map_err(|e| RepoError::corrupt(object(), e))?;
    let json = payload::decode(&plain, 1 << 20).map_err(|e| RepoError::format(object(), e))?;
    RunMarker::decode(&json).map_err(|e| RepoError::format(object(), e))
}

/// Identifies one process on this host for as long as the host runs: the
/// boot id and the process's start time in clock ticks since boot. A pid
/// alone is reused once its process is gone. `None` where /proc is absent.
pub fn process_identity(pid: u32) -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces:
    // count fields after its closing one. Start time is field 22.
    let after = &stat[stat.rfind(')')? + 1..];
    let start = after.split_whitespace().nth(19)?;
    Some(format!("{}:{start}", boot.trim()))
}
