//! What the API changes on a snapshot's behalf: a restore into a folder on
//! the server, and forgetting a snapshot. A restore goes only into a
//! folder that is new or empty, so it never replaces anything; it runs as
//! an operation with its bytes counted. Forgetting refuses protected
//! snapshots, as `cairn forget` does, and takes a whole id or a unique
//! prefix, never `latest` (which would mean another snapshot a moment
//! later).

use std::path::{Component, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use cairn_restore::{Matcher, Overwrite, RestoreOptions, RestoreProgress, Select};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Shared;
use crate::api::{ApiError, blocking, resolve};
use crate::auth::Who;
use crate::ops::{OpKind, Operations};

/// The body of `POST /snapshots/{snapshot}/restore`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// A file or folder of the snapshot; none: all of it.
    path: Option<String>,
    /// An absolute folder on the server, new or empty.
    target: PathBuf,
}

/// Checks that `target` is a place a restore may go: absolute, no `..`,
/// and nothing there yet (a missing folder, or an empty one).
fn fresh_target(target: &std::path::Path) -> Result<(), ApiError> {
    let bad = |m: String| Err(ApiError::new(StatusCode::BAD_REQUEST, m));
    if !target.is_absolute() || target.components().any(|c| matches!(c, Component::ParentDir | Component::CurDir)) {
        return bad(format!("target {}: give an absolute folder without . or ..", target.display()));
    }
    match std::fs::symlink_metadata(target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => bad(format!("target {}: {e}", target.display())),
        Ok(m) if !m.is_dir() => bad(format!("target {} exists and is not a folder", target.display())),
        Ok(_) => match std::fs::read_dir(target).map(|mut d| d.next().is_none()) {
            Ok(true) => Ok(()),
            Ok(false) => Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "target {} is not empty: the API restores only into a new or empty folder (use cairn restore for more)",
                    target.display()
                ),
            )),
            Err(e) => bad(format!("target {}: {e}", target.display())),
        },
    }
}

/// Counts restored bytes into the operation, about every 1%.
struct Progress {
    ops: Arc<Operations>,
    id: u64,
    done: AtomicU64,
    told: AtomicU64,
    step: u64,
}

impl RestoreProgress for Progress {
    fn bytes(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if done - self.told.load(Ordering::Relaxed) >= self.step {
            self.told.store(done, Ordering::Relaxed);
            self.ops.update(self.id, |op| op.done_bytes = done);
        }
    }

    fn warning(&self, msg: &str) {
        let msg = msg.to_string();
        self.ops.update(self.id, |op| op.log.push_back(msg));
    }
}

/// `POST /snapshots/{snapshot}/restore`: starts a restore (202 with the
/// operation).
pub async fn restore(
    State(app): State<Shared>,
    Extension(who): Extension<Who>,
    Path(key): Path<String>,
    Json(req): Json<RestoreRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let path = match &req.path {
        Some(p) => Some(format!("/{}", crate::paths::components(p)?.join("/"))),
        None => None,
    };
    fresh_target(&req.target)?;
    let view = app.view.clone();
    let (id, snap) = blocking(move || resolve(&view, &key)).await?;
    let (app2, target) = (app.clone(), req.target.clone());
    let op = blocking(move || {
        let none = Matcher::default();
        let select = Select { path: path.as_deref(), include: &none, exclude: &none, strip_components: 0 };
        let total = app2
            .view
            .with_repo(|repo| cairn_restore::total_bytes(repo, &snap.tree, &select))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
        let what = format!("{}:{} -> {}", id.short(), path.as_deref().unwrap_or("/"), target.display());
        let op = app2.ops.start(OpKind::Restore, what, who.0, Some(total));
        let app3 = app2.clone();
        std::thread::spawn(move || {
            let progress = Progress {
                ops: app3.ops.clone(),
                id: op,
                done: AtomicU64::new(0),
                told: AtomicU64::new(0),
                step: (total / 100).max(1 << 20),
            };
            let opts = RestoreOptions { overwrite: Overwrite::Never, verify: false, delete: Vec::new() };
            let none = Matcher::default();
            let select = Select { path: path.as_deref(), include: &none, exclude: &none, strip_components: 0 };
            let result = app3
                .view
                .with_repo(|repo| cairn_restore::restore(repo, &snap.tree, &select, &target, &opts, &progress));
            let done = progress.done.load(Ordering::Relaxed);
            app3.ops.update(op, |o| o.done_bytes = done);
            match result {
                Ok(s) if s.errors == 0 => app3.ops.finish(
                    op,
                    true,
                    format!("restored {} files, {} folders, {} others, {} bytes", s.files, s.dirs, s.others, s.bytes),
                ),
                Ok(s) => {
                    app3.ops.finish(op, false, format!("{} path(s) could not be restored (see the log)", s.errors))
                }
                Err(e) => app3.ops.finish(op, false, e.to_string()),
            }
            app3.audit.ended(&app3.ops, op);
        });
        Ok(op)
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "operation": op }))))
}

/// `DELETE /snapshots/{snapshot}`: forgets one snapshot (its data stays
/// until `cairn prune`).
pub async fn forget(State(app): State<Shared>, Path(key): Path<String>) -> Result<Json<Value>, ApiError> {
    if key == "latest" {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "give the snapshot's id to forget it, not latest"));
    }
    blocking(move || {
        let (id, _) = resolve(&app.view, &key)?;
        // Read again, not the view's copy: `cairn tag --protect` may have
        // changed it since the view read it.
        let snap = match app.view.with_repo(|r| r.repo().load_snapshot(&id)) {
            Ok(s) => s,
            Err(cairn_repo::RepoError::Backend(e)) if e.is_not_found() => {
                app.view.reread();
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("no snapshot {}: it was removed or changed (a tag change gives it a new id)", id.short()),
                ));
            }
            Err(e) => return Err(ApiError::repo(e)),
        };
        if snap.protected {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "snapshot {} is protected: lift that first with `cairn tag --unprotect {}`",
                    id.short(),
                    id.short()
                ),
            ));
        }
        app.view.with_repo(|r| r.repo().delete_snapshot(&id)).map_err(ApiError::repo)?;
        app.view.reread();
        Ok(Json(json!({ "forgotten": id.to_hex(), "next": "cairn prune frees the space only it used" })))
    })
    .await
}
