//! The REST API under `/api/v1`, JSON in and out: the snapshots (with
//! filters), one snapshot, a folder of a snapshot, a file's content with
//! HTTP ranges, a folder as a tar or zip stream, and the OpenAPI document
//! that describes them. Errors are
//! `{"error": "..."}` with a status that says whose fault it was.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use cairn_format::SnapshotId;
use cairn_format::snapshot::Snapshot;
use cairn_format::tree::{Node, NodeKind};
use cairn_view::archive::{ArchiveFormat, Start, write_archive};
use cairn_view::{FileContent, View};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Who;
use crate::{Shared, paths};

/// The routes, over `app`, behind the gate (crate::guard).
pub fn router(app: Shared) -> Router {
    let view = app.view.clone();
    let handler = dav_server::DavHandler::builder()
        .filesystem(Box::new(crate::dav::DavView::new(view.clone())))
        .strip_prefix("/dav")
        // dav-server reads 16 KiB at a time by default: each read a trip to
        // a blocking thread, a quarter of `cairn dump`'s speed measured.
        .read_buf_size(PIECE)
        .build_handler();
    // Every method of `/dav/...` goes to the WebDAV handler.
    let dav = move |req: axum::extract::Request| {
        let handler = handler.clone();
        async move { handler.handle(req).await.map(Body::new) }
    };
    Router::new()
        .route("/", get(crate::dashboard::index))
        .route("/assets/app.js", get(crate::dashboard::script))
        .route("/assets/style.css", get(crate::dashboard::style))
        .route("/api/v1/openapi.json", get(|| async { Json(crate::openapi::document()) }))
        .route("/api/v1/session", get(session).post(sign_in).delete(sign_out))
        .route("/api/v1/snapshots", get(list))
        .route("/api/v1/snapshots/{snapshot}", get(one).delete(crate::actions::forget))
        .route("/api/v1/snapshots/{snapshot}/restore", post(crate::actions::restore))
        .route("/api/v1/repository", get(repository))
        .route("/api/v1/repositories", get(crate::jobs::repositories))
        .route("/api/v1/jobs", get(crate::jobs::list))
        .route("/api/v1/jobs/{name}", get(crate::jobs::one))
        .route("/api/v1/jobs/{name}/history", get(crate::jobs::runs))
        .route("/api/v1/jobs/{name}/run", post(crate::jobs::run))
        .route("/api/v1/jobs/{name}/drill", post(crate::jobs::drill))
        .route("/api/v1/drills", get(crate::jobs::drills))
        .route("/api/v1/operations", get(crate::ops::list))
        .route("/api/v1/operations/{id}", get(crate::ops::one))
        .route("/api/v1/events", get(crate::ops::events))
        .route("/metrics", get(crate::jobs::metrics))
        .route("/api/v1/snapshots/{snapshot}/browse", get(browse_root))
        .route("/api/v1/snapshots/{snapshot}/browse/{*path}", get(browse))
        .route("/api/v1/snapshots/{snapshot}/download/{*path}", get(download))
        .route("/api/v1/snapshots/{snapshot}/archive", get(archive_root))
        .route("/api/v1/snapshots/{snapshot}/archive/{*path}", get(archive))
        .route("/dav", any(dav.clone()))
        .route("/dav/", any(dav.clone()))
        .route("/dav/{*path}", any(dav))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint: see /api/v1/openapi.json") })
        .layer(axum::middleware::from_fn_with_state(app.clone(), crate::guard::guard))
        .layer(axum::middleware::from_fn(crate::dashboard::protect))
        .with_state(app)
}

/// `GET /repository`: where it is, its snapshots, and how it grew: each
/// snapshot's time and the bytes it added (stored, after compression),
/// summed (forgotten snapshots and prune not counted).
async fn repository(State(app): State<Shared>) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let list = snapshots(&app.view)?;
        let mut total = 0u64;
        let growth: Vec<Value> = list
            .iter()
            .map(|(id, s)| {
                let added = s.summary.as_ref().map_or(0, |m| m.bytes_added);
                total += added;
                json!({ "id": id.to_hex(), "time": s.time, "added": added, "total": total,
                        "duration_seconds": s.summary.as_ref().map(|m| (m.end - m.start).as_secs_f64()) })
            })
            .collect();
        let location = app.view.with_repo(|r| r.repo().location().to_string());
        Ok(Json(json!({ "location": location, "snapshots": list.len(), "growth": growth })))
    })
    .await
}

/// Who the request is from.
async fn session(Extension(who): Extension<Who>) -> Json<Value> {
    Json(json!({ "who": who.0 }))
}

/// Opens a dashboard session for the token the request showed: a cookie
/// the browser sends by itself, only to this server (SameSite=Strict),
/// never to scripts (HttpOnly).
async fn sign_in(State(app): State<Shared>, Extension(who): Extension<Who>) -> Response {
    let id = app.tokens.open_session(&who);
    let cookie = format!(
        "{}={id}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}",
        crate::auth::COOKIE,
        crate::Tokens::session_seconds(),
        if app.tls { "; Secure" } else { "" }
    );
    let mut r = Json(json!({ "who": who.0 })).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Ends the session.
async fn sign_out(State(app): State<Shared>, headers: HeaderMap) -> Response {
    app.tokens.close_session(&headers);
    let gone = format!("{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict", crate::auth::COOKIE);
    ([(header::SET_COOKIE, gone)], StatusCode::NO_CONTENT).into_response()
}

/// An answer that is not the one asked for.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    /// The repository could not be read: the server's side.
    pub(crate) fn repo(e: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl From<paths::PathError> for ApiError {
    fn from(e: paths::PathError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(json!({ "error": &self.message }))).into_response();
        r.extensions_mut().insert(crate::guard::Detail(self.message));
        r
    }
}

/// Runs engine work on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("request failed: {e}"))))
}

/// Filters of the snapshot list, as `cairn snapshots` has them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Filters {
    host: Option<String>,
    tag: Option<String>,
    path: Option<String>,
}

fn snapshot_json(id: &SnapshotId, s: &Snapshot) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Value::Object(m) = &mut v {
        m.insert("id".into(), json!(id.to_hex()));
        m.insert("short_id".into(), json!(id.short()));
    }
    v
}

fn snapshots(view: &View) -> Result<Vec<(SnapshotId, Snapshot)>, ApiError> {
    match view.snapshots() {
        // Nothing shown yet and the list failed: say why rather than "none".
        (list, Some(e)) if list.is_empty() => Err(ApiError::repo(e)),
        (list, _) => Ok(list),
    }
}

async fn list(State(view): State<Arc<View>>, Query(f): Query<Filters>) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let shown: Vec<Value> = snapshots(&view)?
            .iter()
            .filter(|(_, s)| f.host.as_ref().is_none_or(|h| &s.hostname == h))
            .filter(|(_, s)| f.tag.as_ref().is_none_or(|t| s.tags.contains(t)))
            .filter(|(_, s)| f.path.as_ref().is_none_or(|p| s.paths.contains(p)))
            .map(|(id, s)| snapshot_json(id, s))
            .collect();
        Ok(Json(Value::Array(shown)))
    })
    .await
}

/// The snapshot `key` names: `latest`, a whole id or a prefix of one.
pub(crate) fn resolve(view: &View, key: &str) -> Result<(SnapshotId, Snapshot), ApiError> {
    let mut list = snapshots(view)?;
    // A whole id the view has not seen: maybe written since its last look.
    if key.len() == 64 && !list.iter().any(|(id, _)| id.to_hex() == key) {
        view.reread();
        list = snapshots(view)?;
    }
    if key == "latest" {
        return list
            .last()
            .cloned()
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "the repository has no snapshot"));
    }
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{key:?} is not a snapshot: give `latest` or a snapshot id (or its first characters)"),
        ));
    }
    let key = key.to_ascii_lowercase();
    let mut found = list.into_iter().filter(|(id, _)| id.to_hex().starts_with(&key));
    match (found.next(), found.next()) {
        (Some(one), None) => Ok(one),
        (None, _) => Err(ApiError::new(StatusCode::NOT_FOUND, format!("no snapshot {key}"))),
        (Some(_), Some(_)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{key} is the start of several snapshot ids: give more of it"),
        )),
    }
}

async fn one(State(view): State<Arc<View>>, Path(key): Path<String>) -> Result<Json<Value>, ApiError> {
    blocking(move || resolve(&view, &key).map(|(id, s)| Json(snapshot_json(&id, &s)))).await
}

/// The node at `path` in snapshot `key`, and the path as shown; the root is
/// a folder node of its own.
fn node_at(view: &View, key: &str, path: &str) -> Result<(String, Node), ApiError> {
    let parts = paths::components(path)?;
    let (_, snapshot) = resolve(view, key)?;
    let mut node = Node { subtree: Some(snapshot.tree), ..Node::new(b"", NodeKind::Dir) };
    let mut shown = String::new();
    for part in parts {
        let Some(subtree) = node.subtree.filter(|_| node.kind == NodeKind::Dir) else {
            return Err(ApiError::new(StatusCode::NOT_FOUND, format!("{shown} is not a folder")));
        };
        let tree = view.tree(&subtree).map_err(ApiError::repo)?;
        shown.push('/');
        shown.push_str(part);
        node = tree
            .find(part.as_bytes())
            .cloned()
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("{shown}: not in snapshot {key}")))?;
    }
    if shown.is_empty() {
        shown.push('/');
    }
    Ok((shown, node))
}

fn entry_json(n: &Node) -> Value {
    let mtime = jiff::Timestamp::new(n.mtime.0, n.mtime.1 as i32).map(|t| t.to_string()).unwrap_or_default();
    let mut v = json!({
        "name": String::from_utf8_lossy(&n.name.0),
        "type": n.kind,
        "size": n.size,
        "mode": n.mode,
        "uid": n.uid,
        "gid": n.gid,
        "mtime": mtime,
    });
    if let (Value::Object(m), Some(t)) = (&mut v, &n.target) {
        m.insert("target".into(), json!(String::from_utf8_lossy(&t.0)));
    }
    v
}

async fn browse_root(State(view): State<Arc<View>>, Path(key): Path<String>) -> Result<Json<Value>, ApiError> {
    browse(State(view), Path((key, String::new()))).await
}

async fn browse(
    State(view): State<Arc<View>>,
    Path((key, path)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let (shown, node) = node_at(&view, &key, &path)?;
        let Some(subtree) = node.subtree.filter(|_| node.kind == NodeKind::Dir) else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("{shown} is not a folder: its content is at /api/v1/snapshots/{key}/download{shown}"),
            ));
        };
        let tree = view.tree(&subtree).map_err(ApiError::repo)?;
        let entries: Vec<Value> = tree.nodes.iter().map(entry_json).collect();
        Ok(Json(json!({ "path": shown, "entries": entries })))
    })
    .await
}

/// What a `Range` header asks of a body of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    /// No range, or one this server answers with the whole body
    /// (several ranges, another unit: RFC 9110 lets a server ignore them).
    Whole,
    /// Bytes `start..end`.
    Part(u64, u64),
    /// A range wholly past the end.
    Unsatisfiable,
}

fn wanted(range: Option<&str>, len: u64) -> Wanted {
    let Some(spec) = range.and_then(|r| r.trim().strip_prefix("bytes=")) else { return Wanted::Whole };
    if spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((a, b)) = spec.split_once('-') else { return Wanted::Whole };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.parse::<u64>().ok(), b.parse::<u64>().ok()) {
        // The last b bytes.
        (None, Some(n)) if a.is_empty() => {
            if n == 0 {
                return Wanted::Unsatisfiable;
            }
            (len.saturating_sub(n), len)
        }
        (Some(s), None) if b.is_empty() => (s, len),
        (Some(s), Some(e)) if s <= e => (s, e.saturating_add(1).min(len)),
        _ => return Wanted::Whole,
    };
    if parsed.0 >= len { Wanted::Unsatisfiable } else { Wanted::Part(parsed.0, parsed.1) }
}

/// Bytes a download reads and sends at a time.
const PIECE: usize = 1 << 20;

/// `filename*` of a Content-Disposition (RFC 6266): every byte but plain
/// ones percent-encoded, so no name can break the header.
fn disposition(name: &[u8]) -> HeaderValue {
    let mut v = String::from("attachment; filename*=UTF-8''");
    for &b in name {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            v.push(b as char);
        } else {
            v.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

async fn download(
    State(view): State<Arc<View>>,
    Path((key, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let v = view.clone();
    let (node, content) = blocking(move || {
        let (shown, node) = node_at(&v, &key, &path)?;
        if node.kind != NodeKind::File {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("{shown} is not a file")));
        }
        let content = FileContent::new(&*v, &node).map_err(ApiError::repo)?;
        Ok((node, content))
    })
    .await?;
    let len = content.len();
    let range = headers.get(header::RANGE).and_then(|r| r.to_str().ok());
    let (status, start, end) = match wanted(range, len) {
        Wanted::Whole => (StatusCode::OK, 0, len),
        Wanted::Part(s, e) => (StatusCode::PARTIAL_CONTENT, s, e),
        Wanted::Unsatisfiable => {
            let mut r =
                ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, format!("the file has {len} bytes")).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    // The content is read on a blocking thread, a piece at a time, a few
    // pieces ahead of the client: memory stays bounded whatever the size.
    let (tx, body) = channel_body();
    tokio::task::spawn_blocking(move || {
        let mut at = start;
        let mut buf = vec![0u8; PIECE];
        while at < end {
            let want = PIECE.min((end - at) as usize);
            let piece = match content.read_at(&*view, at, &mut buf[..want]) {
                Ok(0) => Err(std::io::Error::other(format!("content ends at {at} of {len} bytes"))),
                Ok(n) => Ok(buf[..n].to_vec()),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            let failed = piece.is_err();
            at += piece.as_ref().map_or(0, |p| p.len() as u64);
            // The client went away, or the read failed (the connection is
            // then cut short: the length told was not reached).
            if tx.blocking_send(piece).is_err() || failed {
                return;
            }
        }
    });
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    h.insert(header::CONTENT_DISPOSITION, disposition(&node.name.0));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(response)
}

/// The archive format asked for (`?format=tar|zip`, tar when not given).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchiveQuery {
    format: Option<String>,
}

/// A `Write` that hands what is written, in pieces of [`PIECE`] bytes, to
/// the body of a response; a client gone away is a broken pipe.
struct ToBody {
    tx: tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
    buf: Vec<u8>,
}

impl ToBody {
    fn send(&mut self) -> std::io::Result<()> {
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE));
        self.tx.blocking_send(Ok(piece)).map_err(|_| std::io::ErrorKind::BrokenPipe.into())
    }
}

impl std::io::Write for ToBody {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIECE {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() { Ok(()) } else { self.send() }
    }
}

/// A body fed by a blocking writer a few pieces ahead of the client.
fn channel_body() -> (tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>, Body) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    (tx, Body::from_stream(stream))
}

async fn archive_root(
    State(view): State<Arc<View>>,
    Path(key): Path<String>,
    query: Query<ArchiveQuery>,
) -> Result<Response, ApiError> {
    archive(State(view), Path((key, String::new())), query).await
}

/// A folder (or the whole snapshot) as a tar or zip stream, as `cairn dump
/// --archive` writes it. A failure once the stream has begun cuts it short
/// (the client sees an incomplete archive, never a wrong one).
async fn archive(
    State(view): State<Arc<View>>,
    Path((key, path)): Path<(String, String)>,
    Query(q): Query<ArchiveQuery>,
) -> Result<Response, ApiError> {
    let (format, ext, mime) = match q.format.as_deref() {
        None | Some("tar") => (ArchiveFormat::Tar, "tar", "application/x-tar"),
        Some("zip") => (ArchiveFormat::Zip, "zip", "application/zip"),
        Some(other) => {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("format {other:?}: give tar or zip")));
        }
    };
    let v = view.clone();
    let (shown, node) = blocking(move || node_at(&v, &key, &path)).await?;
    let name = if shown == "/" { "snapshot".to_string() } else { String::from_utf8_lossy(&node.name.0).into_owned() };
    let (tx, body) = channel_body();
    tokio::task::spawn_blocking(move || {
        let mut out = ToBody { tx: tx.clone(), buf: Vec::with_capacity(PIECE) };
        // The root is a folder node of node_at's making, not an entry.
        let start = match node.subtree {
            Some(tree) if shown == "/" => Start::Root(tree),
            _ => Start::Node(shown.as_bytes(), &node),
        };
        let written = view.with_repo(|repo| write_archive(format, repo, start, &mut out));
        if let Err(e) = written {
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::CONTENT_DISPOSITION, disposition(format!("{name}.{ext}").as_bytes()));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_as_rfc_9110_reads_them() {
        assert_eq!(wanted(None, 100), Wanted::Whole);
        assert_eq!(wanted(Some("bytes=0-9"), 100), Wanted::Part(0, 10));
        assert_eq!(wanted(Some("bytes=90-"), 100), Wanted::Part(90, 100));
        assert_eq!(wanted(Some("bytes=-5"), 100), Wanted::Part(95, 100));
        assert_eq!(wanted(Some("bytes=-500"), 100), Wanted::Part(0, 100));
        assert_eq!(wanted(Some("bytes=50-5000"), 100), Wanted::Part(50, 100));
        assert_eq!(wanted(Some("bytes=100-"), 100), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=-0"), 100), Wanted::Unsatisfiable);
        for ignored in ["bytes=5-1", "bytes=0-1,5-6", "items=0-1", "bytes=x-y", "bytes=5"] {
            assert_eq!(wanted(Some(ignored), 100), Wanted::Whole, "{ignored}");
        }
    }

    #[test]
    fn a_file_name_cannot_break_the_header() {
        let v = disposition(b"a b\r\nSet-Cookie: x\";\xff.txt");
        assert_eq!(v.to_str().unwrap(), "attachment; filename*=UTF-8''a%20b%0D%0ASet-Cookie%3A%20x%22%3B%FF.txt");
    }
}
