//! `cairn serve`: a repository's snapshots over HTTP. A thin adapter like
//! the mount: what is where comes from a [`cairn_view::View`] (its
//! snapshots, trees and cached blobs); this crate parses requests,
//! refuses what it must, and streams answers. Engine calls run on
//! blocking threads, never on the async ones that serve connections.
//!
//! Every request but the dashboard's static files names a token
//! (crate::auth); a loopback address may be served over plain HTTP, any
//! other only with configured tokens and TLS (docs/DESIGN.md's safety
//! rules). Requests that change something are checked for their origin
//! and written to the audit log (crate::guard, crate::audit).

mod actions;
mod api;
mod audit;
pub mod auth;
mod dashboard;
mod dav;
mod guard;
mod jobs;
mod openapi;
mod ops;
mod paths;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::FromRef;
use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use cairn_view::View;

pub use api::router;
pub use auth::Tokens;
pub use jobs::Jobs;

/// Serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// An address other than loopback, without what it needs.
    #[error(
        "cannot serve on {0}: an address other than loopback (127.0.0.1, ::1) needs {1} in the config's [serve] section (see docs/CONFIG.md); or serve on loopback and reach it through an SSH tunnel (ssh -L 8080:127.0.0.1:8080 HOST)"
    )]
    NotLoopback(SocketAddr, &'static str),
    /// A configured token's hash cannot be read.
    #[error(transparent)]
    BadHash(#[from] auth::BadHash),
    /// The certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The address could not be bound (in use, not this host's).
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// What had to be done once listening (writing the run's token) failed.
    #[error("{0}")]
    Ready(String),
    /// The server stopped with an error.
    #[error("serving on {0} failed: {1}")]
    Serve(SocketAddr, std::io::Error),
}

/// The TLS certificate and key files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// How to serve.
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub tls: Option<TlsFiles>,
    /// Who may come in.
    pub tokens: Tokens,
    /// Whether `tokens` came from the config (a run's own token does not
    /// open an address off loopback: nobody elsewhere could know it).
    pub configured_tokens: bool,
    /// Where the audit log is written and the run history read.
    pub state_dir: PathBuf,
    /// The config's jobs, when it has any.
    pub jobs: Option<Jobs>,
}

/// Checks that `addr` may be served with what is configured.
pub fn check_address(addr: SocketAddr, configured_tokens: bool, tls: bool) -> Result<(), ServeError> {
    match (addr.ip().is_loopback(), configured_tokens, tls) {
        (true, _, _) | (false, true, true) => Ok(()),
        (false, false, false) => Err(ServeError::NotLoopback(addr, "tokens and TLS")),
        (false, false, true) => Err(ServeError::NotLoopback(addr, "tokens")),
        (false, true, false) => Err(ServeError::NotLoopback(addr, "TLS (tls-certificate, tls-key)")),
    }
}

/// What every request handler can reach.
pub struct App {
    pub view: Arc<View>,
    pub tokens: Tokens,
    pub audit: audit::AuditLog,
    /// Whether connections are TLS (the origin browsers send says https).
    pub tls: bool,
    pub state_dir: PathBuf,
    pub jobs: Option<Jobs>,
    /// Job runs and restores of this server run.
    pub ops: Arc<ops::Operations>,
}

/// The state handlers share (a handle to [`App`]).
#[derive(Clone)]
pub struct Shared(pub Arc<App>);

impl std::ops::Deref for Shared {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

impl FromRef<Shared> for Arc<View> {
    fn from_ref(app: &Shared) -> Arc<View> {
        app.view.clone()
    }
}

/// The address a connection came from, over plain TCP or TLS.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, tls::TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, tls::TlsListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// Serves `view` as `options` say (the address checked first) until the
/// process ends; `ready` is told the address bound (with the port the
/// system chose for port 0) once requests are accepted; if it fails,
/// nothing is served and its error is returned.
pub fn serve(
    options: ServeOptions,
    view: Arc<View>,
    ready: impl FnOnce(SocketAddr) -> Result<(), String>,
) -> Result<(), ServeError> {
    let addr = options.listen;
    check_address(addr, options.configured_tokens, options.tls.is_some())?;
    let tls = options.tls.as_ref().map(|t| tls::config(&t.certificate, &t.key)).transpose()?;
    let app = Shared(Arc::new(App {
        view,
        tokens: options.tokens,
        audit: audit::AuditLog::in_folder(&options.state_dir),
        tls: tls.is_some(),
        state_dir: options.state_dir,
        jobs: options.jobs,
        ops: Arc::default(),
    }));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ServeError::Serve(addr, e))?;
    // Held here until the runtime has let go of this thread: the last
    // reference to the view (and its storage's own runtime) must not be
    // dropped inside an async context, which tokio refuses with a panic
    // (a port in use did exactly that).
    let keep = app.clone();
    let served = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| ServeError::Bind(addr, e))?;
        let bound = listener.local_addr().map_err(|e| ServeError::Bind(addr, e))?;
        let service = router(app).into_make_service_with_connect_info::<Peer>();
        match tls {
            Some(config) => {
                let listener = tls::TlsListener::new(listener, config).map_err(|e| ServeError::Bind(addr, e))?;
                ready(bound).map_err(ServeError::Ready)?;
                axum::serve(listener, service).await.map_err(|e| ServeError::Serve(bound, e))
            }
            None => {
                ready(bound).map_err(ServeError::Ready)?;
                axum::serve(listener, service).await.map_err(|e| ServeError::Serve(bound, e))
            }
        }
    });
    drop(keep);
    served
}
