//! The jobs of the config, as the run history knows them: their status
//! against RPO and RTO, their runs, the drills, the Prometheus metrics;
//! and starting a run or a drill now. A run is `cairn job run` (a drill
//! `cairn drill`) started as a child process, exactly as the scheduler
//! starts it: its own lock, hooks and history, and it survives nothing of
//! this server's state. Its output lines become the operation's log.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_jobs::Config;
use cairn_monitor::{History, RunKind};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Shared;
use crate::api::{ApiError, blocking};
use crate::auth::Who;
use crate::ops::OpKind;

/// What the server knows to run jobs.
pub struct Jobs {
    pub config: Config,
    pub config_path: PathBuf,
    /// This program, for `cairn job run` and `cairn drill`.
    pub exe: PathBuf,
    /// The metadata cache the children use, if not the default.
    pub cache_dir: Option<PathBuf>,
}

fn jobs(app: &Shared) -> Result<&Jobs, ApiError> {
    app.jobs.as_ref().ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "no jobs: cairn serve was started without a config file (--config)")
    })
}

fn history(app: &Shared) -> Result<History, ApiError> {
    History::open(&app.state_dir).map_err(ApiError::repo)
}

fn job_json(jobs: &Jobs, h: &History, name: &str, app: &Shared) -> Result<Value, ApiError> {
    let status =
        cairn_jobs::status::job_status(&jobs.config, h, name, jiff::Timestamp::now()).map_err(ApiError::repo)?;
    let counts = h.counts(name).map_err(ApiError::repo)?;
    let backups: u64 = counts.iter().filter(|(k, _, _)| *k == RunKind::Backup).map(|(_, _, n)| n).sum();
    let good: u64 = counts
        .iter()
        .filter(|(k, o, _)| {
            *k == RunKind::Backup && matches!(o, cairn_monitor::Outcome::Success | cairn_monitor::Outcome::Warning)
        })
        .map(|(_, _, n)| n)
        .sum();
    let job = jobs.config.job[name].get_ref();
    let mut v = serde_json::to_value(&status).unwrap_or_default();
    if let Value::Object(m) = &mut v {
        m.insert("schedule".into(), json!(job.schedule.as_ref().map(|s| s.to_string())));
        m.insert("repositories".into(), json!(job.repositories.get_ref()));
        m.insert("runs".into(), json!(backups));
        m.insert("success_rate".into(), json!((backups > 0).then(|| good as f64 / backups as f64)));
        m.insert("running".into(), json!(app.ops.running(OpKind::JobRun, name)));
    }
    Ok(v)
}

/// `GET /jobs`: every job's status.
pub async fn list(State(app): State<Shared>) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let jobs = jobs(&app)?;
        let h = history(&app)?;
        let all: Result<Vec<Value>, ApiError> = jobs.config.job.keys().map(|n| job_json(jobs, &h, n, &app)).collect();
        Ok(Json(Value::Array(all?)))
    })
    .await
}

fn known<'a>(jobs: &Jobs, name: &'a str) -> Result<&'a str, ApiError> {
    if jobs.config.job.contains_key(name) {
        Ok(name)
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, format!("no job named {name:?} in the config")))
    }
}

/// `GET /jobs/{name}`: one job's status.
pub async fn one(State(app): State<Shared>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let jobs = jobs(&app)?;
        let name = known(jobs, &name)?;
        Ok(Json(job_json(jobs, &history(&app)?, name, &app)?))
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    limit: Option<usize>,
}

/// `GET /jobs/{name}/history`: its runs, newest first.
pub async fn runs(
    State(app): State<Shared>,
    Path(name): Path<String>,
    Query(q): Query<Limit>,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let jobs = jobs(&app)?;
        let name = known(jobs, &name)?;
        let runs = history(&app)?.list(Some(name), q.limit.unwrap_or(100)).map_err(ApiError::repo)?;
        Ok(Json(json!(runs)))
    })
    .await
}

/// `GET /drills`: the restore drills of every job, newest first.
pub async fn drills(State(app): State<Shared>, Query(q): Query<Limit>) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        jobs(&app)?;
        let runs = history(&app)?.list(None, usize::MAX).map_err(ApiError::repo)?;
        let drills: Vec<_> =
            runs.into_iter().filter(|r| r.kind == RunKind::Drill).take(q.limit.unwrap_or(100)).collect();
        Ok(Json(json!(drills)))
    })
    .await
}

/// `GET /repositories`: the config's repositories as their newest job
/// runs found them (snapshots, bytes of packs, when).
pub async fn repositories(State(app): State<Shared>) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let jobs = jobs(&app)?;
        let known = history(&app)?.repositories().map_err(ApiError::repo)?;
        let all: Vec<Value> = jobs
            .config
            .repository
            .iter()
            .map(|(name, r)| {
                let k = known.iter().find(|k| &k.name == name);
                json!({ "name": name, "location": r.get_ref().location,
                        "snapshots": k.map(|k| k.snapshots), "size_bytes": k.map(|k| k.size_bytes),
                        "at": k.and_then(|k| k.at) })
            })
            .collect();
        Ok(Json(Value::Array(all)))
    })
    .await
}

/// `GET /metrics`: the Prometheus text `cairn daemon` serves.
pub async fn metrics(State(app): State<Shared>) -> Result<Response, ApiError> {
    blocking(move || {
        let jobs = jobs(&app)?;
        let text = cairn_jobs::status::metrics_text(&jobs.config, &history(&app)?, jiff::Timestamp::now())
            .map_err(ApiError::repo)?;
        Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response())
    })
    .await
}

/// `POST /jobs/{name}/run`: starts a run now (202 with the operation).
pub async fn run(State(app): State<Shared>, Extension(who): Extension<Who>, Path(name): Path<String>) -> Response {
    start(app, who, name, OpKind::JobRun)
}

/// `POST /jobs/{name}/drill`: starts a restore drill now.
pub async fn drill(State(app): State<Shared>, Extension(who): Extension<Who>, Path(name): Path<String>) -> Response {
    start(app, who, name, OpKind::Drill)
}

fn start(app: Shared, who: Who, name: String, kind: OpKind) -> Response {
    let jobs = match jobs(&app).and_then(|j| known(j, &name).map(|_| j)) {
        Ok(j) => j,
        Err(e) => return e.into_response(),
    };
    if let Some(id) = app.ops.running(kind, &name) {
        return ApiError::new(StatusCode::CONFLICT, format!("{name} is already running (operation {id})"))
            .into_response();
    }
    let mut cmd = Command::new(&jobs.exe);
    cmd.arg("--config").arg(&jobs.config_path);
    if let Some(c) = &jobs.cache_dir {
        cmd.arg("--cache-dir").arg(c);
    }
    match kind {
        OpKind::Drill => cmd.args(["drill", &name]),
        _ => cmd.args(["job", "run", &name]),
    };
    cmd.arg("--state-dir").arg(&app.state_dir);
    // The served repository's password is not the job's business.
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(|k| k.starts_with("CAIRN_")) {
            cmd.env_remove(k);
        }
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot start {}: {e}", jobs.exe.display()),
            )
            .into_response();
        }
    };
    let id = app.ops.start(kind, name.clone(), who.0, None);
    let pipes = [
        child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        child.stderr.take().map(|p| Box::new(p) as _),
    ];
    let readers: Vec<_> = pipes
        .into_iter()
        .flatten()
        .map(|pipe| {
            let app = app.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                    app.ops.update(id, |op| op.log.push_back(line));
                }
            })
        })
        .collect();
    std::thread::spawn(move || {
        for r in readers {
            let _ = r.join();
        }
        let status = child.wait();
        let code = status.as_ref().ok().and_then(|s| s.code());
        let last =
            app.ops.list().into_iter().find(|o| o.id == id).and_then(|o| o.log.back().cloned()).unwrap_or_default();
        // 3: a snapshot was written, some sources unreadable.
        let ok = matches!(code, Some(0 | 3));
        let result = match code {
            Some(c) => format!("exit {c}: {last}"),
            None => format!("ended by a signal: {last}"),
        };
        // The run's snapshot shows at once, not at the view's next look.
        app.view.reread();
        app.ops.finish(id, ok, result);
        app.audit.ended(&app.ops, id);
    });
    (StatusCode::ACCEPTED, Json(json!({ "operation": id }))).into_response()
}
