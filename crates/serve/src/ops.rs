//! Work the server runs on after answering: job runs and restores. Each
//! is an [`Operation`] with an id, its progress and how it ended; every
//! change of one is also sent to the server-sent event stream
//! (`/api/v1/events`) that the dashboard listens to.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::broadcast;

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpKind {
    JobRun,
    Drill,
    Restore,
}

/// Where an operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpState {
    Running,
    Succeeded,
    Failed,
}

/// One operation as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Operation {
    pub id: u64,
    pub kind: OpKind,
    /// The job, or `SNAPSHOT:PATH -> TARGET`.
    pub what: String,
    /// The token that started it.
    pub who: String,
    pub started: jiff::Timestamp,
    pub ended: Option<jiff::Timestamp>,
    pub state: OpState,
    /// Bytes done and to do, where known (a restore).
    pub done_bytes: u64,
    pub total_bytes: Option<u64>,
    /// Its last lines of output (a job run's), or warnings.
    pub log: VecDeque<String>,
    /// How it ended, one line.
    pub result: Option<String>,
}

/// Lines of output kept per operation.
const LOG_LINES: usize = 50;
/// Finished operations kept.
const FINISHED_KEPT: usize = 100;

/// The operations of this server run.
pub struct Operations {
    list: Mutex<Vec<Operation>>,
    events: broadcast::Sender<Operation>,
}

impl Default for Operations {
    fn default() -> Self {
        Self { list: Mutex::new(Vec::new()), events: broadcast::channel(256).0 }
    }
}

impl Operations {
    /// Registers a new running operation; returns its id.
    pub fn start(&self, kind: OpKind, what: String, who: String, total_bytes: Option<u64>) -> u64 {
        let mut list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        let id = list.last().map_or(1, |o| o.id + 1);
        let op = Operation {
            id,
            kind,
            what,
            who,
            started: jiff::Timestamp::now(),
            ended: None,
            state: OpState::Running,
            done_bytes: 0,
            total_bytes,
            log: VecDeque::new(),
            result: None,
        };
        let _ = self.events.send(op.clone());
        list.push(op);
        // Forget the oldest finished ones beyond the limit.
        let finished = list.iter().filter(|o| o.state != OpState::Running).count();
        if finished > FINISHED_KEPT {
            let mut extra = finished - FINISHED_KEPT;
            list.retain(|o| {
                let drop = extra > 0 && o.state != OpState::Running;
                extra -= usize::from(drop);
                !drop
            });
        }
        id
    }

    /// Changes operation `id` with `f` and tells the listeners.
    pub fn update(&self, id: u64, f: impl FnOnce(&mut Operation)) {
        let mut list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(op) = list.iter_mut().find(|o| o.id == id) {
            f(op);
            while op.log.len() > LOG_LINES {
                op.log.pop_front();
            }
            let _ = self.events.send(op.clone());
        }
    }

    /// Ends operation `id`.
    pub fn finish(&self, id: u64, ok: bool, result: String) {
        self.update(id, |op| {
            op.state = if ok { OpState::Succeeded } else { OpState::Failed };
            op.ended = Some(jiff::Timestamp::now());
            op.result = Some(result);
        });
    }

    /// All operations, oldest first.
    pub fn list(&self) -> Vec<Operation> {
        self.list.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The operation of `kind` on `what` under way, if one is.
    pub fn running(&self, kind: OpKind, what: &str) -> Option<u64> {
        let list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        list.iter().find(|o| o.kind == kind && o.state == OpState::Running && o.what == what).map(|o| o.id)
    }

    /// Operation `id` as it is now.
    pub fn get(&self, id: u64) -> Option<Operation> {
        self.list.lock().unwrap_or_else(|p| p.into_inner()).iter().find(|o| o.id == id).cloned()
    }

    /// A stream of changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Operation> {
        self.events.subscribe()
    }
}

/// `GET /operations`: this server run's operations, oldest first.
pub async fn list(axum::extract::State(app): axum::extract::State<crate::Shared>) -> axum::Json<Vec<Operation>> {
    axum::Json(app.ops.list())
}

/// `GET /operations/{id}`.
pub async fn one(
    axum::extract::State(app): axum::extract::State<crate::Shared>,
    axum::extract::Path(id): axum::extract::Path<u64>,
) -> Result<axum::Json<Operation>, crate::api::ApiError> {
    app.ops.get(id).map(axum::Json).ok_or_else(|| {
        crate::api::ApiError::new(axum::http::StatusCode::NOT_FOUND, format!("no operation {id} in this server run"))
    })
}

/// `GET /events`: server-sent events, one `operation` event (the
/// operation as JSON) for each that runs now and for every change after.
/// A listener too slow to keep up is told (`lagged`) and goes on.
pub async fn events(
    axum::extract::State(app): axum::extract::State<crate::Shared>,
) -> axum::response::sse::Sse<
    impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let rx = app.ops.subscribe();
    let now: VecDeque<Operation> = app.ops.list().into_iter().filter(|o| o.state == OpState::Running).collect();
    let event = |op: &Operation| Event::default().event("operation").json_data(op).unwrap_or_default();
    let stream = futures_util::stream::unfold((now, rx), move |(mut now, mut rx)| async move {
        if let Some(op) = now.pop_front() {
            return Some((Ok(event(&op)), (now, rx)));
        }
        match rx.recv().await {
            Ok(op) => Some((Ok(event(&op)), (now, rx))),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                Some((Ok(Event::default().event("lagged").data(n.to_string())), (now, rx)))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
