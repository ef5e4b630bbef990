//! What a restore would do to each path of a plan as it comes, for `--dry-run`: the
//! same rules as the restore itself (`--overwrite`, symlinks in the way),
//! read from the target without changing it.

use std::path::Path;

use crate::beneath::{Beneath, Found};
use crate::plan::{Item, ItemKind};
use crate::write::{Overwrite, may_write};

/// What a restore would do with one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing there yet: it would be created.
    Create,
    /// A folder already there would be reused (and given the snapshot's metadata).
    Reuse,
    /// What is there would be replaced.
    Replace,
    /// What is there would be kept (see `--overwrite`).
    Keep,
    /// It would fail, for this reason.
    Fail(String),
}

impl Action {
    /// One word for listings.
    pub fn verb(&self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Reuse => "reuse",
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Fail(_) => "fail",
        }
    }
}

/// What a restore into one target would do with each item, for
/// `--dry-run`: the target is read, never changed.
pub struct Preview {
    /// The target, if it exists (else everything would be created).
    root: Option<Beneath>,
    overwrite: Overwrite,
}

impl Preview {
    /// A preview of restoring into `target` under `overwrite`.
    pub fn new(target: &Path, overwrite: Overwrite) -> Self {
        Self { root: Beneath::open_existing(target).ok(), overwrite }
    }

    /// The action for `item`.
    pub fn action(&self, item: &Item) -> Action {
        let Some(root) = &self.root else { return Action::Create };
        let at = match root.at(&item.rel) {
            Ok(at) => at,
            // A folder above is missing: it is created first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Action::Create,
            // A folder above is blocked: the restore fails there too.
            Err(e) => return Action::Fail(e.to_string()),
        };
        let found = at.found();
        let overwrite = self.overwrite;
        match (&item.kind, found) {
            (_, Found::Nothing) => Action::Create,
            (ItemKind::Dir, Found::Dir) => Action::Reuse,
            (ItemKind::Dir, _) if overwrite != Overwrite::Never => Action::Replace,
            (ItemKind::Dir, _) => Action::Fail("something other than a folder is in the way".into()),
            (ItemKind::File, _) if may_write(&at, &item.node, overwrite) => Action::Replace,
            // `if-changed` with the same size and mtime keeps it.
            (ItemKind::File, _) => Action::Keep,
            (_, _) if overwrite == Overwrite::Never => Action::Keep,
            (_, _) => Action::Replace,
        }
    }
}
