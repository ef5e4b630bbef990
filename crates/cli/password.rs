//! Getting the repository password, in restic's order of precedence:
//! `--password-command`, then `--password-file`, then `CAIRN_PASSWORD`, then
//! a prompt on a terminal. An empty password is refused unless
//! `--insecure-no-password` says it is meant.

use std::io::IsTerminal;

use anyhow::{Context, Result, bail};

use cairn_jobs::repository::first_line;

use crate::cli::Global;

/// The repository password; `confirm` asks twice at a prompt (init).
pub fn password(g: &Global, confirm: bool) -> Result<Vec<u8>> {
    let (p, from) = if let Some(cmd) = &g.password_command {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("running password command {cmd:?}"))?;
        if !out.status.success() {
            bail!("password command {cmd:?} failed ({}); fix it or give the password another way", out.status);
        }
        (first_line(out.stdout), format!("password command {cmd:?}"))
    } else if let Some(f) = &g.password_file {
        let s = std::fs::read(f)
            .with_context(|| format!("reading password file {} (fix the path or give CAIRN_PASSWORD)", f.display()))?;
        (first_line(s), format!("password file {}", f.display()))
    } else if let Some(p) = std::env::var_os("CAIRN_PASSWORD") {
        (p.into_encoded_bytes(), "CAIRN_PASSWORD".to_string())
    } else if g.insecure_no_password {
        return Ok(Vec::new());
    } else if std::io::stderr().is_terminal() {
        let p = rpassword::prompt_password("enter password for repository: ").context("reading password")?;
        if confirm {
            let again = rpassword::prompt_password("enter password again: ").context("reading password")?;
            if again != p {
                bail!("passwords do not match; run the command again");
            }
        }
        (p.into_bytes(), "the prompt".to_string())
    } else {
        bail!(
            "no password given: set CAIRN_PASSWORD, CAIRN_PASSWORD_FILE or CAIRN_PASSWORD_COMMAND (or run in a terminal to be asked)"
        );
    };
    if p.is_empty() && !g.insecure_no_password {
        bail!(
            "the password from {from} is empty; give a real one (or --insecure-no-password for a repository meant to have none)"
        );
    }
    Ok(p)
}
