//! Opening a repository the config names: its storage with the config's
//! options, unlocked with the password from the config's source.

use std::path::PathBuf;

use cairn_backend::{Backend, Options};
use cairn_repo::Repository;

use crate::JobError;
use crate::config::RepositoryConfig;

/// Opens and unlocks the repository `name`; a remote one keeps its
/// metadata cache under `cache_dir`.
pub fn open(name: &str, cfg: &RepositoryConfig, cache_dir: Option<PathBuf>) -> Result<Repository, JobError> {
    let failed = |e: String| JobError::Repository { name: name.to_string(), message: e };
    let options = Options {
        service: cfg.options.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        limit_upload: None,
        limit_download: None,
        log_requests: false,
        cache_dir,
        cache_max_bytes: 0,
        must_exist: true,
    };
    let backend = Backend::open_with(&cfg.location, &options).map_err(|e| failed(e.to_string()))?;
    Repository::ensure_exists(&backend).map_err(|e| failed(e.to_string()))?;
    let password = password(cfg).map_err(failed)?;
    Repository::open(backend, &password).map_err(|e| failed(e.to_string()))
}

/// The password from the one source the config gives (checked on load).
fn password(cfg: &RepositoryConfig) -> Result<Vec<u8>, String> {
    let p = if let Some(p) = &cfg.password {
        p.get_ref().as_bytes().to_vec()
    } else if let Some(f) = &cfg.password_file {
        first_line(std::fs::read(f).map_err(|e| format!("reading password-file {}: {e}", f.display()))?)
    } else if let Some(cmd) = &cfg.password_command {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("running password-command {cmd:?}: {e}"))?;
        if !out.status.success() {
            return Err(format!("password-command {cmd:?} failed ({})", out.status));
        }
        first_line(out.stdout)
    } else {
        return Err("no password source".into());
    };
    if p.is_empty() {
        return Err("the password is empty".into());
    }
    Ok(p)
}

/// A password file's or command's first line, without its line ending.
pub fn first_line(mut s: Vec<u8>) -> Vec<u8> {
    if let Some(i) = s.iter().position(|b| *b == b'\n') {
        s.truncate(i);
    }
    if s.last() == Some(&b'\r') {
        s.pop();
    }
    s
}
