//! `cairn serve`: the snapshots over HTTP (crates/serve), until
//! interrupted; and `--new-token`, which makes a token for the config.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use cairn_jobs::Config;
use cairn_jobs::config::{default_path, default_state_dir};
use cairn_serve::{Jobs, ServeOptions, TlsFiles, Tokens, auth};
use cairn_view::{View, ViewOptions};

use crate::cli::{Global, ServeArgs};

/// The config and its path, if there is one: `--config` must exist, the
/// default may not.
fn config(g: &Global, root: bool) -> Result<Option<(PathBuf, Config)>> {
    let Some(path) = default_path(g.config.as_deref(), root) else { return Ok(None) };
    if g.config.is_none() && !path.exists() {
        return Ok(None);
    }
    let config = Config::load(&path)?;
    Ok(Some((path, config)))
}

/// Writes this run's token owner-only where the user (and only they) can
/// read it; a stale file from an earlier run is replaced.
fn write_run_token(dir: &Path, port: u16, token: &str) -> Result<std::path::PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("serve-{port}.token"));
    let _ = std::fs::remove_file(&path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(token.as_bytes())?;
    Ok(path)
}

pub fn run(g: &Global, a: &ServeArgs) -> Result<i32> {
    if let Some(name) = &a.new_token {
        let token = auth::new_token();
        println!("token for {name} (shown once; give it as Authorization: Bearer TOKEN, or as the password):");
        println!("  {token}");
        println!("add to the config's [serve.tokens]:");
        println!("  {name} = \"{}\"", auth::hash_token(&token));
        return Ok(0);
    }
    let root = nix::unistd::geteuid().is_root();
    let config = config(g, root)?;
    let serve = config.as_ref().map(|(_, c)| &c.serve);
    let listen: SocketAddr = match (a.listen, serve.and_then(|s| s.listen.as_ref())) {
        (Some(l), _) => l,
        // Checked when the config was read.
        (None, Some(l)) => l.get_ref().parse()?,
        (None, None) => "127.0.0.1:8080".parse()?,
    };
    let tls = serve.and_then(|s| Some(TlsFiles { certificate: s.tls_certificate.clone()?, key: s.tls_key.clone()? }));
    let hashes: Vec<(String, String)> =
        serve.map(|s| s.tokens.iter().map(|(n, h)| (n.clone(), h.get_ref().clone())).collect()).unwrap_or_default();
    let configured_tokens = !hashes.is_empty();
    // Refused before the password is asked for.
    cairn_serve::check_address(listen, configured_tokens, tls.is_some())?;
    let state_dir =
        a.state.state_dir.clone().or_else(|| default_state_dir(root)).context("no state folder: give --state-dir")?;
    let run_token = (!configured_tokens).then(auth::new_token);
    let tokens = match &run_token {
        Some(t) => Tokens::for_this_run(t),
        None => Tokens::configured(hashes)?,
    };
    let options = ViewOptions {
        filter: super::filter(&a.filter)?,
        cache_bytes: a.cache_size << 20,
        refresh: Duration::from_secs(2),
    };
    let repo = match (&a.repository, g.repo.as_deref().filter(|r| !r.is_empty()), &config) {
        (None, Some(_), _) => super::open(g)?,
        (Some(_), Some(_), _) => anyhow::bail!("give -r LOCATION or --repository NAME, not both"),
        (name, None, Some((path, c))) => {
            let name = match name {
                Some(n) => n.clone(),
                None if c.repository.len() == 1 => c.repository.keys().next().cloned().unwrap_or_default(),
                None => anyhow::bail!(
                    "{} names {} repositories: say which to serve with --repository NAME",
                    path.display(),
                    c.repository.len()
                ),
            };
            let cfg = c
                .repository
                .get(&name)
                .with_context(|| format!("no repository named {name:?} in {}", path.display()))?;
            let cache = if g.no_cache { None } else { super::cache_root(g) };
            cairn_jobs::repository::open(&name, cfg.get_ref(), cache)?
        }
        (_, None, None) => anyhow::bail!("no repository given: use -r/--repo, or --config with a [repository.NAME]"),
    };
    let view = Arc::new(View::open(repo, options)?);
    let jobs = match config {
        Some((config_path, config)) if !config.job.is_empty() => Some(Jobs {
            config,
            config_path,
            exe: std::env::current_exe().context("finding this program, to run jobs")?,
            cache_dir: if g.no_cache { None } else { super::cache_root(g) },
        }),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    cairn_serve::serve(
        ServeOptions { listen, tls, tokens, configured_tokens, state_dir: state_dir.clone(), jobs },
        view,
        |addr| {
            // Written before anything is served: a server whose token
            // nobody can read would refuse every request.
            if let Some(t) = &run_token {
                let path = write_run_token(&state_dir, addr.port(), t)
                    .map_err(|e| format!("{e:#}: give a --state-dir you can write, or tokens in the config"))?;
                eprintln!("cairn: serving {scheme}://{addr}/ (API /api/v1/, WebDAV /dav/); press Ctrl-C to stop");
                if std::io::stderr().is_terminal() {
                    eprintln!(
                        "cairn: this run's token is in {} (owner-only); open {scheme}://{addr}/#token={t}",
                        path.display()
                    );
                } else {
                    eprintln!("cairn: this run's token is in {} (owner-only)", path.display());
                }
            } else {
                eprintln!("cairn: serving {scheme}://{addr}/ (API /api/v1/, WebDAV /dav/); press Ctrl-C to stop");
            }
            Ok(())
        },
    )?;
    Ok(0)
}
