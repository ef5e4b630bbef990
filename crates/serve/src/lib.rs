//! `cairn serve`: a repository's snapshots over HTTP, read-only. A thin
//! adapter like the mount: what is where comes from a [`cairn_view::View`]
//! (its snapshots, trees and cached blobs); this crate parses requests,
//! refuses what it must, and streams answers. Engine calls run on
//! blocking threads, never on the async ones that serve connections.
//!
//! Only loopback addresses are served: authentication and TLS, which any
//! other address needs (docs/DESIGN.md's safety rules), do not exist yet.

mod api;
mod dav;
mod openapi;
mod paths;

use std::net::SocketAddr;
use std::sync::Arc;

use cairn_view::View;

pub use api::router;

/// Serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// An address other than loopback was asked for.
    #[error(
        "cannot serve on {0}: only loopback addresses (127.0.0.1, ::1) are served, since cairn serve has no authentication or TLS yet; to reach it from elsewhere use an SSH tunnel (ssh -L 8080:127.0.0.1:8080 HOST)"
    )]
    NotLoopback(SocketAddr),
    /// The address could not be bound (in use, not this host's).
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// The server stopped with an error.
    #[error("serving on {0} failed: {1}")]
    Serve(SocketAddr, std::io::Error),
}

/// Checks that `addr` may be served.
pub fn check_address(addr: SocketAddr) -> Result<(), ServeError> {
    if addr.ip().is_loopback() { Ok(()) } else { Err(ServeError::NotLoopback(addr)) }
}

/// Serves `view` on `addr` (checked first) until the process ends;
/// `ready` is told the address bound (with the port the system chose for
/// port 0) once requests are accepted.
pub fn serve(addr: SocketAddr, view: Arc<View>, ready: impl FnOnce(SocketAddr)) -> Result<(), ServeError> {
    check_address(addr)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ServeError::Serve(addr, e))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| ServeError::Bind(addr, e))?;
        let bound = listener.local_addr().map_err(|e| ServeError::Bind(addr, e))?;
        ready(bound);
        axum::serve(listener, router(view)).await.map_err(|e| ServeError::Serve(bound, e))
    })
}
