//! `cairn serve`: the snapshots over HTTP (crates/serve), on a loopback
//! address, until interrupted.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use cairn_view::{View, ViewOptions};

use crate::cli::{Global, ServeArgs};

pub fn run(g: &Global, a: &ServeArgs) -> Result<i32> {
    // Refused before the password is asked for.
    cairn_serve::check_address(a.listen)?;
    let options = ViewOptions {
        filter: super::filter(&a.filter)?,
        cache_bytes: a.cache_size << 20,
        refresh: Duration::from_secs(2),
    };
    let view = Arc::new(View::open(super::open(g)?, options)?);
    cairn_serve::serve(a.listen, view, |addr| {
        eprintln!("cairn: serving http://{addr}/api/v1/ (read-only); press Ctrl-C to stop");
    })?;
    Ok(0)
}
